//! The host device tree: parsed once (with `fdt-rs`) into an owned tree of
//! nodes and properties, then read into typed platform facts with every
//! error collected.

pub mod early;
mod fdt;
mod platform;

pub use fdt::{DtError, Fdt, FdtError, Node, NodeId, Prop};
pub use platform::{read_bootargs, 
    BootModule, Conduit, Cpu, Gic, ModuleKind, Platform, Psci, Timer, Uart,
};

#[cfg(test)]
pub(crate) mod testdt;
