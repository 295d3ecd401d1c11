//! A bare-metal arm64 domU that attacks the hypervisor on purpose and
//! checks that it cannot reach the other domains. What it does is chosen
//! by `hostile.mode=` on its bootargs:
//!
//! - `attack` (the default): `hostile.count` calls (default 100,000),
//!   seeded by `hostile.seed` (default [`DEFAULT_SEED`]): random
//!   hypercalls and sub-ops with random arguments, PSCI and SMCCC calls,
//!   MMIO in the emulated and the unmapped windows, trapped system
//!   registers, and random and malformed xenstore traffic
//!   ([`attack`]); then the isolation checks ([`checks`]);
//! - `noisy`: for `hostile.seconds`, a saturated console and interrupts
//!   kept pending, next to a `timer` domain on the same CPU;
//! - `timer`: measures how late its virtual timer's interrupt comes while
//!   a `noisy` domain runs, against one scheduling slice;
//! - `reboot` / `witness`: the reboot check: the rebooting domain fills
//!   its RAM and a page it grants with a pattern, reboots through PSCI
//!   SYSTEM_RESET, and after the reboot finds none of it; the witness
//!   keeps the boot count for it (a rebuilt domain remembers nothing) and
//!   checks that its mapping of the granted page went with the old domain.
//!
//! It prints `TEST <name> PASS|FAIL` lines and `N passed, M failed` like
//! the ABI guest, then powers off. Boot: an arm64 Image at guest RAM +
//! `text_offset`, entered with the MMU off and x0 = the device tree; it
//! keeps the MMU off and runs on vCPU 0 only, with IRQs masked.

#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
// Without a heap, a case's failure text travels by value in a fixed buffer.
#![expect(clippy::result_large_err)]

mod arch;
mod attack;
mod checks;
mod power;
mod report;
mod rng;
mod trap;
mod xen;

use oxen_guest_common::dt::{self, Dt};
use oxen_guest_common::{console, msg, println};
// `crate::ensure` for the checks: the macro is the common report's.
pub(crate) use oxen_guest_common::ensure;

/// The seed of `cargo xtask test`'s run unless the bootargs name one.
pub const DEFAULT_SEED: u64 = 0xdd_ba11_5eed;
/// Calls per run unless the bootargs say.
pub const DEFAULT_COUNT: u64 = 100_000;

/// Where things are in this domain, from its device tree.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub ram: (u64, u64),
    pub dtb: u64,
    pub gicd: (u64, u64),
    /// The GIC's second region: a GICv3's redistributors, or a GICv2's CPU
    /// interface.
    pub gicr: (u64, u64),
    /// Whether the GIC is a GICv2 (`arm,gic-400`): the guest gets its
    /// host's version.
    pub v2: bool,
    pub uart: u64,
    /// `/hypervisor` `reg`: the grant window first, then the extended
    /// regions (at most 4 kept).
    pub hyp: [(u64, u64); 5],
    pub nhyp: usize,
}

impl Layout {
    fn read(dt: &Dt, dtb: usize, uart: usize) -> Self {
        let pair = |name: &str, i: usize| {
            dt.find(|n| n.depth == 1 && n.name().starts_with(name))
                .ok()
                .flatten()
                .and_then(|n| n.cells("reg"))
                .filter(|r| r.len() >= 4 * (i + 1))
                .map(|r| (r.num(4 * i, 2), r.num(4 * i + 2, 2)))
                .unwrap_or((0, 0))
        };
        let mut hyp = [(0, 0); 5];
        let mut nhyp = 0;
        for (i, h) in hyp.iter_mut().enumerate() {
            let p = pair("hypervisor", i);
            if p.1 == 0 {
                break;
            }
            *h = p;
            nhyp += 1;
        }
        Self {
            ram: pair("memory", 0),
            dtb: dtb as u64,
            gicd: pair("interrupt-controller", 0),
            gicr: pair("interrupt-controller", 1),
            v2: dt
                .find(|n| n.depth == 1 && n.name().starts_with("interrupt-controller"))
                .ok()
                .flatten()
                .is_some_and(|n| n.is_compatible("arm,gic-400")),
            uart: uart as u64,
            hyp,
            nhyp,
        }
    }
}

/// A number from the bootargs (decimal or 0x-hex), or `default`.
pub fn arg_num(bootargs: &str, key: &str, default: u64) -> u64 {
    match dt::bootarg(bootargs, key) {
        None => default,
        Some(v) => match v.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).unwrap_or(default),
            None => v.parse().unwrap_or(default),
        },
    }
}

/// vCPU 0 after the entry code.
#[unsafe(no_mangle)]
extern "C" fn guest_main(dtb: usize) -> ! {
    let dt = match Dt::at(dtb) {
        Ok(dt) => dt,
        Err(why) => {
            console::init(console::VPL011_BASE);
            report::fatal(why);
        }
    };
    let Some(uart) = dt.top_base(|n| n.is_compatible("arm,sbsa-uart")) else {
        power::off();
    };
    console::init(uart);
    let bootargs = dt.bootargs();
    let layout = Layout::read(&dt, dtb, uart);
    let mode = dt::bootarg(bootargs, "hostile.mode").unwrap_or("attack");
    println!("hostile guest: mode {mode}, bootargs \"{bootargs}\"");
    match mode {
        "attack" => {
            let seed = arg_num(bootargs, "hostile.seed", DEFAULT_SEED);
            let count = arg_num(bootargs, "hostile.count", DEFAULT_COUNT);
            // Printed first, so that any failure can be replayed.
            println!("hostile: seed {seed:#x} count {count}");
            let breaches = attack::run(&layout, bootargs, seed, count);
            checks::after_attack(&layout, bootargs, breaches);
        }
        "noisy" => checks::noisy(&layout, bootargs),
        "timer" => checks::timer(&layout, bootargs),
        "reboot" => checks::reboot(&layout, bootargs),
        "witness" => checks::witness(&layout, bootargs),
        other => report::fatal(msg!(
            "hostile.mode={other} is not attack, noisy, timer, reboot or witness"
        )),
    }
    report::finish()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    report::fatal(msg!("panic: {info}"))
}
