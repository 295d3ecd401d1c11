//! Booting an image under QEMU: interactively, or captured with a
//! wall-clock limit for tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::boards::{self, Board};

/// Devices QEMU would add by default that nothing here uses and that need
/// files of their own: `virt`'s default virtio NIC loads an option ROM
/// (`efi-virtio.rom`) from `ipxe-qemu`, a package a plain install of
/// `qemu-system-arm` without recommends leaves out.
pub const NO_DEFAULT_DEVICES: [&str; 2] = ["-nic", "none"];

/// A QEMU machine of one of the boards (`boards::BOARDS`) booting a
/// hypervisor image.
#[derive(Debug, Clone)]
pub struct Machine {
    /// `-M`, `-cpu` and the machine's own options come from here.
    pub board: &'static Board,
    pub image: PathBuf,
    pub smp: u32,
    pub memory: String,
    pub dtb: Option<PathBuf>,
    /// `-device loader,file=F,addr=A` for each boot module.
    pub loaders: Vec<(PathBuf, u64)>,
    /// Boot through U-Boot (its `u-boot.bin`) from a directory that QEMU
    /// shows as a FAT disk, instead of loading `image` with `-kernel`.
    pub uboot: Option<(PathBuf, PathBuf)>,
    /// `-icount shift=N,sleep=off`: virtual time from the instruction
    /// count, not the host's clock.
    pub icount_shift: Option<u32>,
}

impl Machine {
    /// QEMU `virt` with a GICv3 ([`boards::HOME`]).
    pub fn new(image: &Path, smp: u32) -> Self {
        Self::on(boards::HOME, image, smp)
    }

    /// `board`'s machine, with the RAM it gets for a boot with no domains.
    pub fn on(board: &'static Board, image: &Path, smp: u32) -> Self {
        Self {
            board,
            image: image.to_path_buf(),
            smp,
            memory: board.memory.into(),
            dtb: None,
            loaders: Vec::new(),
            uboot: None,
            icount_shift: None,
        }
    }

    pub fn args(&self) -> Vec<String> {
        let mut a = self.board.qemu_args("", self.smp, &self.memory);
        match &self.uboot {
            None => a.extend(["-kernel".into(), self.image.display().to_string()]),
            Some((bios, disk)) => a.extend([
                "-bios".into(),
                bios.display().to_string(),
                "-drive".into(),
                format!(
                    "if=virtio,format=raw,readonly=on,file=fat:{}",
                    disk.display()
                ),
            ]),
        }
        a.extend([
            // A reset (Oxen's answer to a panic) ends the run instead of
            // booting again.
            "-no-reboot".into(),
        ]);
        if let Some(shift) = self.icount_shift {
            a.push("-icount".into());
            a.push(format!("shift={shift},sleep=off"));
        }
        if let Some(dtb) = &self.dtb {
            a.push("-dtb".into());
            a.push(dtb.display().to_string());
        }
        for (file, addr) in &self.loaders {
            a.push("-device".into());
            a.push(format!(
                "loader,file={},addr={addr:#x},force-raw=on",
                file.display()
            ));
        }
        a
    }
}

/// Boots with the console on this terminal (Ctrl-a x quits QEMU).
pub fn run_interactive(m: &Machine) -> Result<(), String> {
    let mut cmd = Command::new("qemu-system-aarch64");
    cmd.args(m.args()).arg("-nographic");
    eprintln!("+ {}", crate::show(&cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start qemu-system-aarch64: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("QEMU exited with {status}"))
    }
}

/// What a captured run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub log: String,
    /// QEMU's exit status; `None` if it was killed.
    pub status: Option<i32>,
    pub timed_out: bool,
    /// Killed early because the hypervisor reported a fault.
    pub faulted: bool,
    pub elapsed: Duration,
}

/// Boots headless, collecting the console until QEMU exits or `limit`
/// passes. A hypervisor fault (which halts a CPU rather than the machine)
/// ends the run early.
pub fn run_captured(m: &Machine, limit: Duration) -> Result<Outcome, String> {
    run_captured_until(m, limit, &|_| false, &[])
}

/// As [`run_captured`], but also stops QEMU (status `None`, not timed out)
/// as soon as `done` holds for the console so far: for systems that keep
/// running, such as Xen once its domains powered off. Each `input` pair
/// (after, bytes) types `bytes` on the console once `after` has appeared
/// past where the previous pair's text did.
pub fn run_captured_until(
    m: &Machine,
    limit: Duration,
    done: &dyn Fn(&str) -> bool,
    input: &[(String, Vec<u8>)],
) -> Result<Outcome, String> {
    let mut cmd = Command::new("qemu-system-aarch64");
    cmd.args(m.args())
        .args(["-display", "none", "-monitor", "none", "-serial", "stdio"])
        .stdin(if input.is_empty() {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start qemu-system-aarch64: {e}"))?;
    let log = Arc::new(Mutex::new(String::new()));
    let fault = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let log = Arc::clone(&log);
        let fault = Arc::clone(&fault);
        readers.push(std::thread::spawn(move || {
            let mut r = BufReader::new(stream);
            let mut line = Vec::new();
            while r.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                let text = String::from_utf8_lossy(&line).replace('\r', "");
                if text.contains("*** FAULT") {
                    fault.store(true, Ordering::Relaxed);
                }
                log.lock().unwrap().push_str(&text);
                line.clear();
            }
        }));
    }
    let mut stdin = child.stdin.take();
    let mut typed = 0;
    // Where in the console the next `after` is looked for.
    let mut typed_at = 0;
    let mut timed_out = false;
    let mut faulted = false;
    let mut fault_seen_at: Option<Instant> = None;
    let mut seen = 0;
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break st.code();
        }
        let len = log.lock().unwrap().len();
        if len != seen {
            seen = len;
            if let (Some((after, bytes)), Some(pipe)) = (input.get(typed), stdin.as_mut()) {
                let found = log.lock().unwrap()[typed_at..].find(after.as_str());
                if let Some(at) = found {
                    typed_at += at + after.len();
                    typed += 1;
                    // Slowly, as a person types: the UART's FIFO is small.
                    for b in bytes {
                        use std::io::Write;
                        let _ = pipe.write_all(&[*b]).and_then(|()| pipe.flush());
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
            if done(&log.lock().unwrap()) {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
        if fault.load(Ordering::Relaxed) {
            // Give the report a moment to finish printing.
            let t = *fault_seen_at.get_or_insert_with(Instant::now);
            if t.elapsed() > Duration::from_millis(500) {
                faulted = true;
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
        if start.elapsed() > limit {
            timed_out = true;
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    for r in readers {
        let _ = r.join();
    }
    let log = log.lock().unwrap().clone();
    Ok(Outcome {
        log,
        status,
        timed_out,
        faulted,
        elapsed: start.elapsed(),
    })
}
