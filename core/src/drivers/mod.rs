//! MMIO device drivers the hypervisor itself uses.
#![allow(unsafe_code)]

pub mod gic;
pub mod pl011;
