//! PSCI as this guest uses it: the common function IDs, results and calls
//! (re-exported here), and powering off its way.

pub use oxen_guest_common::psci::*;

use oxen_guest_common::println;

use crate::arch;

/// Powers the domain off; does not return.
pub fn system_off() -> ! {
    let r = call(SYSTEM_OFF, 0, 0, 0);
    println!("PSCI SYSTEM_OFF returned {r}");
    loop {
        arch::irq_disable();
        arch::wfi();
    }
}
