//! Oxen's xenstore server: the store of nodes with Xen's permission model,
//! watches, transactions and quotas, and the shared-ring protocol a guest
//! speaks to it, following C xenstored 4.20.
//!
//! Pure logic: a guest's ring page is reached only through [`RingPage`],
//! and signalling is left to the caller ([`Xenstore::take_notifications`]),
//! so everything here runs in host tests. There is no dom0: no guest is
//! privileged, and the hypervisor's own requests (the `Xenstore::write`
//! family) play the toolstack's part. `docs/xenstore.md` lists the protocol
//! coverage, bounds and differences from Xen's servers.
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

mod conn;
mod error;
mod path;
mod perm;
/// PV network devices declared in the host tree, and their nodes.
pub mod pvnet;
mod quota;
mod server;
/// The subsystem in the running hypervisor: ring pages, the port, console
/// commands (`service.rs`, glue over core's services).
mod service;
mod toolstack;
mod tree;
mod view;
mod watch;
pub mod wire;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

pub use conn::RingPage;
pub use error::Error;
pub use oxen_core::xen::DomId;
pub use perm::{Perm, PermKind};
pub use quota::{Quotas, TRANSACTION_BYTES};
pub use server::{REQUESTS_PER_KICK, SERVER_FEATURES, Xenstore};
pub use toolstack::{DomainInfo, ToolstackNode, domain_uuid, toolstack_nodes, vm_path};
