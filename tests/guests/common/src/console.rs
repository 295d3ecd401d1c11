//! Output through the domain's emulated SBSA UART (vPL011), or QEMU's own
//! PL011 when a guest runs with no hypervisor: poll the flag register's
//! TXFF, write the data register. Both hypervisors print a domain's UART
//! output line by line; `console_io` output would be invisible on a
//! release build of Xen.

use core::fmt;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::arch::mmio;

/// Where both hypervisors put a domain's vPL011: somewhere to try to say
/// why when the device tree cannot be read to find it.
pub const VPL011_BASE: usize = 0x2200_0000;

/// Data register.
const DR: usize = 0x000;
/// Flag register.
const FR: usize = 0x018;
/// Interrupt mask set/clear register.
pub const IMSC: usize = 0x038;
/// Raw interrupt status.
pub const RIS: usize = 0x03c;
/// Interrupt clear register.
pub const ICR: usize = 0x044;
/// FR: the transmit FIFO is full.
const FR_TXFF: u32 = 1 << 5;
/// The transmit interrupt bit of IMSC, RIS, MIS and ICR.
pub const INT_TX: u32 = 1 << 5;

/// The UART's guest-physical base; 0 until the device tree named it.
static BASE: AtomicUsize = AtomicUsize::new(0);

/// Starts printing to the UART at `base`, which must be the UART's
/// physical base as the device tree gives it.
pub fn init(base: usize) {
    BASE.store(base, Ordering::Release);
}

/// The UART's base, once known.
pub fn base() -> Option<usize> {
    match BASE.load(Ordering::Acquire) {
        0 => None,
        b => Some(b),
    }
}

fn put(base: usize, b: u8) {
    // A full FIFO drains as the hypervisor consumes it; neither Xen's nor
    // Oxen's ever stays full.
    // SAFETY: `base` is the UART the device tree names (see `init`); FR
    // and DR are its registers.
    while unsafe { mmio::read32(base + FR) } & FR_TXFF != 0 {
        core::hint::spin_loop();
    }
    // SAFETY: as above.
    unsafe { mmio::write32(base + DR, u32::from(b)) };
}

/// The console as a `fmt::Write` sink. Without a UART, output is dropped.
pub struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(base) = base() {
            for b in s.bytes() {
                put(base, b);
            }
        }
        Ok(())
    }
}

/// Prints a line to the console. Lines printed by two vCPUs at once would
/// mix, so the guests print from vCPU 0 only.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(
            &mut $crate::console::Console,
            format_args!("{}\n", format_args!($($arg)*)),
        );
    }};
}

/// Reads UART register `offset` (the console must be initialised).
pub fn reg(offset: usize) -> u32 {
    match base() {
        // SAFETY: `base` is the UART the device tree names; callers pass
        // one of its register offsets.
        Some(b) => unsafe { mmio::read32(b + offset) },
        None => 0,
    }
}

/// Writes UART register `offset` (ignored before the console is set up).
pub fn set_reg(offset: usize, v: u32) {
    if let Some(b) = base() {
        // SAFETY: as for `reg`.
        unsafe { mmio::write32(b + offset, v) };
    }
}
