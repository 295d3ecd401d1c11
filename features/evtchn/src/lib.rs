//! Xen event channels for Oxen's guests: the per-domain port tables, every
//! `event_channel_op` sub-op with Xen's errors, both delivery ABIs (2-level
//! and FIFO), `vcpu_info` registration, ports served inside the hypervisor,
//! and static channels from the host device tree.
//!
//! Pure logic: guest memory is reached only through [`SharedPage`], and the
//! rest of the hypervisor (upcall injection, subsystems listening on ports)
//! through [`Env`], so everything here runs in host tests. `docs/evtchn.md`
//! describes the interface, the connection policy and the differences from
//! Xen.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
// Guest input reaches everything here: no unwrap, expect or unchecked
// index outside the tests.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

extern crate alloc;

pub mod abi;
mod channels;
mod check;
mod domain;
mod env;
mod fifo;
mod hypercall;
mod l2;
mod service;
mod static_channels;

#[cfg(test)]
mod fake;

pub use abi::{arg_size, has_output};
pub use channels::{EventChannels, Policy, PortStatus, Status};
pub use check::{check_static_channels, describe as describe_static_channels};
pub use env::{Env, SharedPage};
pub use static_channels::{COMPATIBLE, PROPERTY, StaticChannel, StaticEnd, read_static_channels};

/// An event-channel port number (`evtchn_port_t`).
pub type Port = u32;

/// The heap a domain's event channels can hold at their bounds: a channel
/// record per port up to `max_port` (in a `Vec` that may have doubled),
/// the FIFO's references to its event-array pages and per-vCPU queues,
/// and the domain's own record.
pub fn heap_budget(max_port: u32, vcpus: u32) -> u64 {
    let ports = u64::from(max_port) + 1;
    2 * ports * core::mem::size_of::<domain::Channel>() as u64
        + abi::fifo::MAX_PAGES as u64 * 64
        + u64::from(vcpus) * 1024
        + 16 * 1024
}

#[cfg(test)]
mod budget_tests {
    #[test]
    fn the_heap_budget_covers_a_channel_per_port_and_grows_with_the_ports() {
        let per_port = core::mem::size_of::<crate::domain::Channel>() as u64;
        assert!(super::heap_budget(1023, 1) >= 1024 * per_port);
        assert!(super::heap_budget(4095, 1) > super::heap_budget(1023, 1));
        assert!(super::heap_budget(1023, 4) > super::heap_budget(1023, 1));
    }
}
