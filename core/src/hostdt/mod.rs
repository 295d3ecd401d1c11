//! The host device tree: parsed once (with Oxen's own reader, `blob.rs`) into an owned tree of
//! nodes and properties, then read into typed platform facts with every
//! error collected.

mod blob;
pub mod early;
mod fdt;
mod platform;

pub use blob::{FdtError, HEADER_LEN as FDT_HEADER_LEN, total_size as dtb_total_size};
pub use fdt::{DtError, Fdt, Node, NodeId, Prop};
pub use platform::{
    BootModule, Conduit, Cpu, Gic, ModuleKind, Platform, Psci, Timer, Uart, read_bootargs,
};

#[cfg(test)]
pub(crate) mod testdt;
