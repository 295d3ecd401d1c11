//! A bare-metal arm64 domU that measures the hypervisor under it, for
//! `cargo xtask bench` (docs/performance.md). What it does is chosen by
//! `bench=` on its bootargs:
//!
//! - `hello`: prints `bench: first line` at once and powers off (the time
//!   from QEMU's start to that line is the time to the first guest
//!   instruction, plus one line of output), then `BENCH hello.at` with the
//!   physical counter as it printed it;
//! - `hypercalls`: times `bench.n` calls (default 1000) of `xen_version`
//!   and one cheap operation of each subsystem with the virtual counter;
//! - `ping` / `pong`: event-channel round trips with another domain over a
//!   static channel on `bench.port` (default 10), with the ABI
//!   `bench.evtchn=2l|fifo`, `bench.n` round trips;
//! - `xenstore`: `bench.n` xenstore READ and WRITE round trips over the
//!   domain's ring (`xen,enhanced = "enabled"`);
//! - `timer`: `bench.n` virtual-timer interrupts, from the due time to the
//!   guest's handler (`irq.rs`);
//! - `sgi`: `bench.n` SGIs from vCPU 0 to vCPU 1, from the sending to
//!   vCPU 1's handler (the domain needs 2 vCPUs).
//!
//! Results are lines `BENCH <name> n=<count> ticks=<total> hz=<counter
//! frequency>`, then `bench: done`. With no hypervisor (entered at EL2 by
//! QEMU) only `hello` makes sense.
//!
//! Boot: an arm64 Image loaded at guest RAM + `text_offset`, entered with
//! the MMU off and x0 = the device tree; it keeps the MMU off and runs on
//! vCPU 0 only (`sgi` starts vCPU 1 too).

#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
// Without a heap, a failure's text travels by value in a fixed buffer.
#![expect(clippy::result_large_err)]

mod arch;
mod evtchn;
mod irq;
mod psci;
mod xen;
mod xenstore;

use core::arch::global_asm;

use oxen_guest_common::boot::STACK_SIZE;
use oxen_guest_common::dt::{self, Dt};
use oxen_guest_common::msg::Msg;
use oxen_guest_common::{console, msg, println};

// The entry code is the common crate's (`oxen_guest_common::boot`); it
// installs these vectors under a hypervisor.
global_asm!(
    r#"
    /*
     * The IRQ vector (current EL with SP_ELx, the guest's only mode) reads
     * the counter first, for the latency benches, and calls `guest_irq`
     * with every register the C ABI lets it clobber saved. Every other
     * exception is unexpected: report it and stop, from the top of the
     * boot stack again.
     */
    .section .text.vectors, "ax"
    .balign 2048
    .global guest_vectors
guest_vectors:
    .rept   5
    .balign 128
    b       guest_exception_entry
    .endr
    .balign 128
    b       guest_irq_entry
    .rept   10
    .balign 128
    b       guest_exception_entry
    .endr
guest_irq_entry:
    sub     sp, sp, #160
    stp     x0, x1, [sp, #0]
    mrs     x0, cntvct_el0
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x30, [sp, #144]
    bl      guest_irq
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x30, [sp, #144]
    ldp     x0, x1, [sp, #0]
    add     sp, sp, #160
    eret
guest_exception_entry:
    ldr     x1, =GUEST_BOOT_STACK
    add     x1, x1, #{stack_size}
    mov     sp, x1
    bl      guest_exception
"#,
    stack_size = const STACK_SIZE,
);

/// An IRQ, `now` being the virtual counter at the vector.
#[unsafe(no_mangle)]
extern "C" fn guest_irq(now: u64) {
    irq::handle(now);
}

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

/// vCPU 0 after the entry code.
#[unsafe(no_mangle)]
extern "C" fn guest_main(dtb: usize) -> ! {
    let dt = match Dt::at(dtb) {
        Ok(dt) => dt,
        Err(why) => {
            console::init(console::VPL011_BASE);
            fail(why);
        }
    };
    // A vPL011 (SBSA UART) under a hypervisor, QEMU's PL011 without one.
    let uart = dt.top_base(|n| n.is_compatible("arm,sbsa-uart") || n.is_compatible("arm,pl011"));
    let Some(uart) = uart else {
        // Nothing to print on: the runner sees no line and says so.
        psci::system_off();
    };
    console::init(uart);
    let bootargs = dt.bootargs();
    match Args::parse(bootargs).and_then(|a| run(&a, &dt)) {
        Ok(()) => println!("bench: done"),
        Err(why) => fail(why),
    }
    psci::system_off()
}

fn fail(why: Msg) -> ! {
    println!("bench: FAIL {why}");
    psci::system_off()
}

fn run(a: &Args, dt: &Dt) -> Result<(), Msg> {
    match a.mode {
        "hello" => {
            let now = arch::physical_ticks();
            println!("bench: first line");
            // When it came, on the machine's clock: under -icount, the
            // instructions every CPU ran since QEMU started.
            report(&msg!("hello.at"), 1, now);
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
        "xenstore" => xenstore_round_trips(a.n),
        "timer" => irq::timer(dt, a.n, |name, n, ticks| report(&msg!("{name}"), n, ticks)),
        "sgi" => irq::sgi(dt, a.n, |name, n, ticks| report(&msg!("{name}"), n, ticks)),
        other => Err(msg!(
            "bench={other} is not hello, hypercalls, ping, pong, xenstore, timer or sgi"
        )),
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

/// Times `n` xenstore READs of `domid` and `n` WRITEs of `data/bench`,
/// each a full round trip over the ring.
fn xenstore_round_trips(n: u32) -> Result<(), Msg> {
    let ring = xenstore::Ring::connect()?;
    let mut id = 0u32;
    let mut round = |ty: u32, payload: &[u8]| {
        id = id.wrapping_add(1);
        ring.call(ty, id, payload)
    };
    for (name, ty, payload) in [
        ("xenstore.read", xenstore::XS_READ, &b"domid\0"[..]),
        ("xenstore.write", xenstore::XS_WRITE, &b"data/bench\0x"[..]),
    ] {
        for _ in 0..10 {
            round(ty, payload).map_err(|e| msg!("{name}: {e}"))?;
        }
        let start = arch::ticks();
        for _ in 0..n {
            round(ty, payload).map_err(|e| msg!("{name}: {e}"))?;
        }
        report(&msg!("{name}"), n, arch::ticks() - start);
    }
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
