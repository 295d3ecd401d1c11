//! Powering the domain off through PSCI (`HVC #0`).

use crate::arch::{self, smccc};

const SYSTEM_OFF: u32 = 0x8400_0008;

/// Powers the domain off; does not return. With no hypervisor (the guest
/// at EL2, started by QEMU) there is nobody to ask over HVC, so it waits
/// for the runner to stop QEMU.
pub fn system_off() -> ! {
    if arch::current_el() == 1 {
        let r = smccc(SYSTEM_OFF, 0, 0, 0);
        crate::println!("bench: PSCI SYSTEM_OFF returned {r:#x}");
    }
    loop {
        arch::wfi();
    }
}
