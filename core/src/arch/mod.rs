//! aarch64 at EL2: the image header and entry points, exception vectors,
//! the MMU, firmware (PSCI) calls and small CPU helpers. With `drivers`,
//! the only code in Oxen that uses `unsafe`.

pub mod cpu;
pub mod entry;
pub mod exception;
pub mod guest;
pub mod heap;
pub mod mem;
pub mod mmu;
pub mod psci;
