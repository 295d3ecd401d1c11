//! Powering the domain off through PSCI (`HVC #0`).

use oxen_guest_common::println;
use oxen_guest_common::psci::SYSTEM_OFF;

use crate::arch::{self, smccc};

/// Powers the domain off; does not return. With no hypervisor (the guest
/// at EL2, started by QEMU) there is nobody to ask over HVC, so it waits
/// for the runner to stop QEMU.
pub fn system_off() -> ! {
    if arch::current_el() == 1 {
        let r = smccc(SYSTEM_OFF, 0, 0, 0);
        println!("bench: PSCI SYSTEM_OFF returned {r:#x}");
    }
    loop {
        arch::wfi();
    }
}
