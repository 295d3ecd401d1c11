//! The run's output (`oxen_guest_common::report`), and its end: the
//! closing line, then power-off.

use oxen_guest_common::msg::Msg;
pub use oxen_guest_common::report::case;

use crate::power;

/// Prints the closing line and powers the domain off.
pub fn finish() -> ! {
    oxen_guest_common::report::summary();
    power::off()
}

/// Fails the running case with `why` and ends the run: for faults and
/// panics that leave nothing sensible to continue with.
pub fn fatal(why: Msg) -> ! {
    oxen_guest_common::report::fail_running(why);
    finish()
}
