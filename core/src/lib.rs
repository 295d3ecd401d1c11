//! Oxen core: boot at EL2, traps, memory management, host device-tree
//! parsing, and the subsystem registry that optional Xen interfaces plug into.
//!
//! Everything that is pure logic (device-tree parsing and validation, page
//! tables, ESR decoding, the registry) builds and is tested on the host; the
//! hardware layers (`arch`, `drivers`, `boot`) only build for
//! `aarch64-unknown-none`.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
// Only `arch` and `drivers` may use unsafe code (each allows it).
#![deny(unsafe_code)]

extern crate alloc;

pub mod bootargs;
pub mod budget;
pub mod check;
pub mod config;
pub mod console;
pub mod console_cmd;
pub mod console_mux;
pub mod enhanced;
pub mod esr;
pub mod frames;
pub mod guest_dt;
pub mod guest_layout;
pub mod hostdt;
pub mod hypercall;
pub mod inject;
pub mod loader;
pub mod memmap;
pub mod pagetable;
pub mod ports;
pub mod services;
pub mod small_sort;
pub use arch::shared;
pub mod stage2;
pub mod subsystem;
#[cfg(any(test, feature = "test-dtc"))]
pub mod test_dtc;
pub mod vgic;
pub mod vpl011;
pub mod vpsci;
pub mod xen;

pub mod arch;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod boot;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod drivers;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod hv;

/// The Xen version Oxen presents itself as, everywhere a guest can see one.
pub const XEN_VERSION: (u16, u16) = (4, 20);

/// Oxen's own version, from Cargo.
pub const OXEN_VERSION: &str = env!("CARGO_PKG_VERSION");
