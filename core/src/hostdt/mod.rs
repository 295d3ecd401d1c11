//! The host device tree: parsed once (with `fdt-rs`) into an owned tree of
//! nodes and properties, then read into typed platform facts with every
//! error collected.

pub mod early;
mod fdt;
mod platform;

pub use fdt::{DtError, Fdt, FdtError, Node, NodeId, Prop};
pub use platform::{
    BootModule, Conduit, Cpu, Gic, ModuleKind, Platform, Psci, Timer, Uart, read_bootargs,
};

#[cfg(test)]
pub(crate) mod testdt;
