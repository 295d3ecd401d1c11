//! `xs`, the guests' xenstore client (`/bin/xs` in the initramfs): one
//! command per invocation, through the kernel's `/dev/xen/xenbus`.
//!
//! ```text
//! xs read PATH            the value, then a newline
//! xs write PATH VALUE
//! xs rm PATH
//! xs dir PATH             one child per line
//! xs perms PATH           the permissions on one line (`n1 b2`)
//! xs setperms PATH PERM…  e.g. `xs setperms data/x n1 b2`
//! xs watch PATH COUNT     each event's path, one per line: the immediate
//!                         event, then COUNT more; then it exits
//! xs domid                the value of `domid`
//! ```
//!
//! Relative paths are the server's: relative to `/local/domain/<domid>`.
//! A failure prints `xs: <op> <path>: <ENAME>` on stderr (the server's
//! errno name, or the system call's) and exits with status 1; a bad
//! command line prints the usage and exits with 2.
//!
//! A static Linux ELF with no libc: `_start` below, raw `svc #0` system
//! calls (aarch64 numbers), no heap; the message format is in `lib.rs`.
//! The kernel implements WATCH for `/dev/xen/xenbus` users itself and
//! forwards the events with our token, so the file must be open read-write;
//! replies may be preceded by watch events, which a one-shot command skips.

#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

use core::arch::{asm, global_asm};

use xs::{Command, HEADER, Header, PAYLOAD_MAX, TOKEN, USAGE, ty};

// The kernel enters with sp at argc, then argv[], NULL, envp[], NULL, auxv
// (16-byte aligned). Clear the frame chain and pass sp on.
global_asm!(
    r#"
    .section .text._start, "ax"
    .global _start
_start:
    mov     x29, xzr
    mov     x30, xzr
    mov     x0, sp
    bl      {start}
    brk     #0
"#,
    start = sym start,
);

/// aarch64 Linux system call numbers (include/uapi/asm-generic/unistd.h).
mod nr {
    pub const OPENAT: usize = 56;
    pub const CLOSE: usize = 57;
    pub const READ: usize = 63;
    pub const WRITE: usize = 64;
    pub const EXIT_GROUP: usize = 94;
}

const AT_FDCWD: isize = -100;
const O_RDWR: usize = 2;
const STDOUT: usize = 1;
const STDERR: usize = 2;

/// A system call with up to four arguments; negative results are errnos.
fn syscall(n: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
    let ret: isize;
    // SAFETY: the calls made here (openat, read, write, close,
    // exit_group) only read or write the buffers their arguments describe,
    // which the safe wrappers below take as slices that live across the
    // call; the kernel preserves every register but x0.
    unsafe {
        asm!(
            "svc #0",
            in("x8") n,
            inlateout("x0") a as isize => ret,
            in("x1") b,
            in("x2") c,
            in("x3") d,
            options(nostack),
        );
    }
    ret
}

fn exit(code: i32) -> ! {
    syscall(nr::EXIT_GROUP, code as usize, 0, 0, 0);
    loop {
        core::hint::spin_loop();
    }
}

fn read(fd: usize, buf: &mut [u8]) -> isize {
    syscall(nr::READ, fd, buf.as_mut_ptr() as usize, buf.len(), 0)
}

fn write(fd: usize, buf: &[u8]) -> isize {
    syscall(nr::WRITE, fd, buf.as_ptr() as usize, buf.len(), 0)
}

/// Writes all of `buf`, or returns the errno.
fn write_all(fd: usize, mut buf: &[u8]) -> Result<(), isize> {
    while !buf.is_empty() {
        let n = write(fd, buf);
        if n < 0 {
            return Err(n);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// Writes pieces to a file as one `write` where they fit (so a line is
/// never split between readers); output errors are ignored, as there is
/// nowhere to report them.
fn put(fd: usize, parts: &[&[u8]]) {
    let mut line = [0u8; PAYLOAD_MAX + 256];
    let mut n = 0;
    for p in parts {
        if n + p.len() > line.len() {
            let _ = write_all(fd, &line[..n]);
            n = 0;
            if p.len() > line.len() {
                let _ = write_all(fd, p);
                continue;
            }
        }
        line[n..n + p.len()].copy_from_slice(p);
        n += p.len();
    }
    let _ = write_all(fd, &line[..n]);
}

/// Why a command failed: the server's error name, a system call's errno,
/// or something else.
enum Failure<'a> {
    Server(&'a [u8]),
    Errno(isize),
    Other(&'static str),
}

/// Prints `xs: <op> <path>: <why>` and exits with status 1.
fn fail(cmd: &Command, why: Failure) -> ! {
    let mut num = [0; 20];
    let why: &[u8] = match why {
        Failure::Server(name) => name,
        Failure::Errno(e) => match xs::errno_name(e) {
            Some(name) => name.as_bytes(),
            None => xs::decimal(e.unsigned_abs() as u64, &mut num),
        },
        Failure::Other(s) => s.as_bytes(),
    };
    put(
        STDERR,
        &[
            b"xs: ",
            cmd.op().as_bytes(),
            b" ",
            cmd.path(),
            b": ",
            why,
            b"\n",
        ],
    );
    exit(1)
}

/// Fills `buf` from `fd`.
fn read_exact(fd: usize, buf: &mut [u8]) -> Result<(), Failure<'static>> {
    let mut got = 0;
    while got < buf.len() {
        let n = read(fd, &mut buf[got..]);
        if n < 0 {
            return Err(Failure::Errno(n));
        }
        if n == 0 {
            return Err(Failure::Other("unexpected end of file"));
        }
        got += n as usize;
    }
    Ok(())
}

/// Reads one message into `buf` and returns its header and payload.
fn read_msg(
    fd: usize,
    buf: &mut [u8; HEADER + PAYLOAD_MAX],
) -> Result<(Header, &[u8]), Failure<'static>> {
    let (head, body) = buf.split_at_mut(HEADER);
    read_exact(fd, head)?;
    let mut h = [0; HEADER];
    h.copy_from_slice(head);
    let h = Header::from_bytes(&h);
    let len = h.len as usize;
    if len > PAYLOAD_MAX {
        return Err(Failure::Other("reply longer than 4096 bytes"));
    }
    read_exact(fd, &mut body[..len])?;
    Ok((h, &body[..len]))
}

/// The request id of our one request (the kernel gives user space's back).
const REQ_ID: u32 = 1;

/// Runs one command; returns the exit status.
fn run(args: &[&[u8]]) -> i32 {
    let Some(cmd) = Command::parse(args) else {
        put(STDERR, &[b"xs: ", USAGE.as_bytes(), b"\n"]);
        return 2;
    };
    let mut out = [0u8; HEADER + PAYLOAD_MAX];
    let Some(n) = cmd.encode(REQ_ID, &mut out) else {
        fail(&cmd, Failure::Other("request too long for one message"));
    };
    let fd = syscall(
        nr::OPENAT,
        AT_FDCWD as usize,
        c"/dev/xen/xenbus".as_ptr() as usize,
        O_RDWR,
        0,
    );
    if fd < 0 {
        fail(&cmd, Failure::Errno(fd));
    }
    let fd = fd as usize;
    if let Err(e) = write_all(fd, &out[..n]) {
        fail(&cmd, Failure::Errno(e));
    }
    let mut buf = [0u8; HEADER + PAYLOAD_MAX];
    let mut events = 0u32;
    loop {
        let (h, payload) = match read_msg(fd, &mut buf) {
            Ok(m) => m,
            Err(e) => fail(&cmd, e),
        };
        if h.ty == ty::WATCH_EVENT {
            // Only `watch` registers one on this file; anything else is
            // not ours.
            if let (Command::Watch(_, count), Some((path, TOKEN))) =
                (&cmd, xs::watch_event(payload))
            {
                put(STDOUT, &[path, b"\n"]);
                if events == *count {
                    break;
                }
                events += 1;
            }
            continue;
        }
        if h.req_id != REQ_ID {
            continue;
        }
        if h.ty == ty::ERROR {
            fail(&cmd, Failure::Server(xs::error_name(payload)));
        }
        if h.ty != cmd.ty() {
            fail(&cmd, Failure::Other("a reply of another type"));
        }
        match cmd {
            Command::Read(_) | Command::Domid => put(STDOUT, &[payload, b"\n"]),
            Command::Dir(_) => {
                for child in xs::strings(payload) {
                    put(STDOUT, &[child, b"\n"]);
                }
            }
            Command::Perms(_) => {
                let mut sep: &[u8] = b"";
                for perm in xs::strings(payload) {
                    put(STDOUT, &[sep, perm]);
                    sep = b" ";
                }
                put(STDOUT, &[b"\n"]);
            }
            // `OK`; the events come next.
            Command::Watch(..) => continue,
            Command::Write(..) | Command::Rm(_) | Command::SetPerms(..) => {}
        }
        break;
    }
    syscall(nr::CLOSE, fd, 0, 0, 0);
    0
}

/// The most arguments `xs` looks at (`setperms` takes one per entry).
const MAX_ARGS: usize = 32;

/// Entered from `_start` with the initial stack pointer.
extern "C" fn start(sp: *const usize) -> ! {
    // SAFETY: Linux's ELF loader puts argc at the initial sp, followed by
    // argc pointers to NUL-terminated strings that live for the whole
    // process; we read no further than argc of them.
    let (argc, argv) = unsafe { (*sp, sp.add(1).cast::<*const u8>()) };
    let mut args: [&[u8]; MAX_ARGS] = [&[]; MAX_ARGS];
    let n = argc.saturating_sub(1).min(MAX_ARGS);
    for (i, arg) in args.iter_mut().enumerate().take(n) {
        // SAFETY: as above, argv[1..argc] are valid C strings.
        *arg = unsafe {
            let p = *argv.add(i + 1);
            let mut len = 0;
            while *p.add(len) != 0 {
                len += 1;
            }
            core::slice::from_raw_parts(p, len)
        };
    }
    if argc.saturating_sub(1) > MAX_ARGS {
        put(STDERR, &[b"xs: too many arguments\n"]);
        exit(2);
    }
    exit(run(&args[..n]))
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    put(STDERR, &[b"xs: internal error\n"]);
    exit(3)
}
