//! A bare-metal arm64 domU that measures the hypervisor under it, for
//! `cargo xtask bench` (docs/performance.md). What it does is chosen by
//! `bench=` on its bootargs:
//!
//! - `hello`: prints `bench: first line` at once and powers off (the time
//!   from QEMU's start to that line is the time to the first guest
//!   instruction, plus one line of output);
//! - `hypercalls`: times `bench.n` calls (default 1000) of `xen_version`
//!   and one cheap operation of each subsystem with the virtual counter;
//! - `ping` / `pong`: event-channel round trips with another domain over a
//!   static channel on `bench.port` (default 10), with the ABI
//!   `bench.evtchn=2l|fifo`, `bench.n` round trips.
//!
//! Results are lines `BENCH <name> n=<count> ticks=<total> hz=<counter
//! frequency>`, then `bench: done`. With no hypervisor (entered at EL2 by
//! QEMU) only `hello` makes sense.
//!
//! Boot: an arm64 Image loaded at guest RAM + `text_offset`, entered with
//! the MMU off and x0 = the device tree; it keeps the MMU off and runs on
//! vCPU 0 only.

#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
// Without a heap, a failure's text travels by value in a fixed buffer.
#![expect(clippy::result_large_err)]

mod arch;
mod console;
mod dt;
mod evtchn;
mod msg;
mod psci;
mod xen;

use core::arch::global_asm;

use msg::Msg;

/// Bytes of stack.
const STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct Stack([u8; STACK_SIZE]);

/// The only stack (only the entry code names it).
#[unsafe(no_mangle)]
static mut GUEST_STACK: Stack = Stack([0; STACK_SIZE]);

global_asm!(
    r#"
    .section .text.head, "ax"
    .global _start
_start:
    /* arm64 Image header (Linux Documentation/arch/arm64/booting.rst). */
    b       guest_entry             /* code0 */
    .long   0                       /* code1 */
    .quad   _text_offset            /* load offset from a 2 MiB aligned base */
    .quad   _image_size             /* bytes from _start to the end of BSS */
    .quad   0x2                     /* little-endian, 4 KiB pages */
    .quad   0, 0, 0
    .ascii  "ARM\x64"
    .long   0

guest_entry:
    mov     x19, x0                 /* the device tree */
    mov     x1, #(3 << 20)          /* CPACR_EL1.FPEN: FP/SIMD untrapped */
    msr     cpacr_el1, x1
    isb
    ldr     x1, =__bss_start
    ldr     x2, =__bss_end
1:  cmp     x1, x2
    b.hs    2f
    str     xzr, [x1], #8
    b       1b
2:  ldr     x1, =GUEST_STACK
    add     x1, x1, #{stack_size}
    mov     sp, x1
    mrs     x1, CurrentEL
    cmp     x1, #(1 << 2)
    b.ne    3f                      /* with no hypervisor: no EL1 vectors */
    ldr     x1, =guest_vectors
    msr     vbar_el1, x1
    isb
3:  mov     x29, xzr
    mov     x30, xzr
    mov     x0, x19
    bl      guest_main
4:  wfi
    b       4b

    /*
     * Every exception is unexpected: report it and stop. The guest never
     * unmasks interrupts, so only synchronous exceptions and SErrors come.
     */
    .section .text.vectors, "ax"
    .balign 2048
guest_vectors:
    .rept   16
    .balign 128
    b       guest_exception_entry
    .endr
guest_exception_entry:
    ldr     x1, =GUEST_STACK
    add     x1, x1, #{stack_size}
    mov     sp, x1
    bl      guest_exception
"#,
    stack_size = const STACK_SIZE,
);

/// What the bootargs ask for.
struct Args<'a> {
    mode: &'a str,
    n: u32,
    port: u32,
    abi: &'a str,
}

impl<'a> Args<'a> {
    fn parse(bootargs: &'a str) -> Result<Self, Msg> {
        let num = |key: &str, default: u32| match dt::bootarg(bootargs, key) {
            None => Ok(default),
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| msg!("{key}={v} is not a positive number")),
        };
        Ok(Self {
            mode: dt::bootarg(bootargs, "bench").unwrap_or("hello"),
            n: num("bench.n", 1000)?,
            port: num("bench.port", 10)?,
            abi: dt::bootarg(bootargs, "bench.evtchn").unwrap_or("2l"),
        })
    }
}

/// The UART: a vPL011 (SBSA UART) under a hypervisor, QEMU's PL011
/// without one.
fn find_uart(dt: &dt::Dt) -> Option<usize> {
    dt.find(|n| n.depth == 1 && (n.is_compatible("arm,sbsa-uart") || n.is_compatible("arm,pl011")))
        .ok()
        .flatten()
        .and_then(|n| n.cells("reg"))
        .filter(|r| r.len() >= 2)
        .map(|r| r.num(0, 2) as usize)
}

/// vCPU 0 after the entry code.
#[unsafe(no_mangle)]
extern "C" fn guest_main(dtb: usize) -> ! {
    let dt = match dt::Dt::at(dtb) {
        Ok(dt) => dt,
        Err(why) => {
            // Both hypervisors put the vPL011 here; try to say why.
            console::init(0x2200_0000);
            fail(why);
        }
    };
    let Some(uart) = find_uart(&dt) else {
        // Nothing to print on: the runner sees no line and says so.
        psci::system_off();
    };
    console::init(uart);
    let bootargs = dt
        .top("chosen")
        .ok()
        .flatten()
        .and_then(|c| c.str("bootargs"))
        .unwrap_or("");
    match Args::parse(bootargs).and_then(|a| run(&a)) {
        Ok(()) => println!("bench: done"),
        Err(why) => fail(why),
    }
    psci::system_off()
}

fn fail(why: Msg) -> ! {
    println!("bench: FAIL {why}");
    psci::system_off()
}

fn run(a: &Args) -> Result<(), Msg> {
    match a.mode {
        "hello" => {
            println!("bench: first line");
            Ok(())
        }
        "hypercalls" => hypercalls(a.n),
        "ping" | "pong" => {
            let abi = evtchn::Abi::parse(a.abi)
                .ok_or_else(|| msg!("bench.evtchn={} is not 2l or fifo", a.abi))?;
            let port = evtchn::Port::setup(abi, a.port)?;
            if a.mode == "ping" {
                let ticks = evtchn::ping(&port, 20, a.n)?;
                report(&msg!("evtchn.{}", abi.name()), a.n, ticks);
            } else {
                let answered = evtchn::pong(&port)?;
                println!("bench: answered {answered} event(s)");
            }
            Ok(())
        }
        other => Err(msg!("bench={other} is not hello, hypercalls, ping or pong")),
    }
}

fn report(name: &Msg, n: u32, ticks: u64) {
    println!(
        "BENCH {name} n={n} ticks={ticks} hz={}",
        arch::ticks_per_second()
    );
}

/// Times `n` calls of `f` after a few untimed ones; fails on the first
/// error.
fn time_calls(name: &str, n: u32, f: impl Fn() -> xen::HcResult) -> Result<(), Msg> {
    for _ in 0..10 {
        f().map_err(|e| msg!("{name} failed: {e}"))?;
    }
    let start = arch::ticks();
    for _ in 0..n {
        f().map_err(|e| msg!("{name} failed: {e}"))?;
    }
    let ticks = arch::ticks() - start;
    report(&msg!("{name}"), n, ticks);
    Ok(())
}

/// One cheap call per interface: the core (`xen_version`), grant tables
/// (`query_size`) and event channels (`status` of port 1, free).
fn hypercalls(n: u32) -> Result<(), Msg> {
    time_calls("hypercall.xen_version", n, xen::xen_version)?;
    time_calls("hypercall.gnttab_query_size", n, xen::gnttab_query_size)?;
    time_calls("hypercall.evtchn_status", n, || xen::evtchn_status(1))?;
    Ok(())
}

/// Any exception: say which and stop.
#[unsafe(no_mangle)]
extern "C" fn guest_exception() -> ! {
    let (esr, elr): (u64, u64);
    // SAFETY: reading the EL1 exception registers has no side effects.
    unsafe {
        core::arch::asm!(
            "mrs {0}, esr_el1",
            "mrs {1}, elr_el1",
            out(reg) esr, out(reg) elr,
            options(nomem, nostack, preserves_flags)
        )
    };
    fail(msg!("unexpected exception, ESR {esr:#x} at {elr:#x}"))
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    fail(msg!("panic: {info}"))
}
