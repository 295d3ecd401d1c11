//! MMIO device drivers the hypervisor itself uses.

pub mod gic;
pub mod pl011;
