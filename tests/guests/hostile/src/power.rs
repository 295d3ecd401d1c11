//! Ending the run through PSCI (`HVC #0`): power-off, or a reboot for the
//! reboot check.

use oxen_guest_common::arch::{smccc, wfi};
use oxen_guest_common::println;

/// PSCI SYSTEM_RESET (0x84000009): the hypervisor builds the domain again.
const SYSTEM_RESET: u32 = 0x8400_0009;

/// Powers the domain off; does not return.
pub fn off() -> ! {
    let r = smccc(oxen_guest_common::psci::SYSTEM_OFF, 0, 0, 0);
    println!("hostile: PSCI SYSTEM_OFF returned {r:#x}");
    loop {
        wfi();
    }
}

/// Reboots the domain; does not return.
pub fn reset() -> ! {
    let r = smccc(SYSTEM_RESET, 0, 0, 0);
    println!("hostile: PSCI SYSTEM_RESET returned {r:#x}");
    loop {
        wfi();
    }
}
