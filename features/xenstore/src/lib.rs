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

extern crate alloc;

/// A domain's connection: ring I/O, queued output, watches, transactions.
mod conn;
/// Error names of `XS_ERROR` replies.
mod error;
/// Node names: validation and canonical form.
mod path;
/// Permission lists and access checks.
mod perm;
/// Per-domain bounds.
mod quota;
/// Request dispatch, watch delivery, privileged access.
mod server;
/// The subsystem in the running hypervisor: ring pages, the port, console
/// commands.
mod service;
/// The nodes written for an introduced domain.
mod toolstack;
/// The committed node tree.
mod tree;
/// The store as one request sees it (in or out of a transaction).
mod view;
/// Watches and events.
mod watch;
/// Wire format constants and helpers.
pub mod wire;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

pub use conn::RingPage;
pub use error::Error;
pub use oxen_core::xen::DomId;
pub use perm::{Perm, PermKind};
pub use quota::Quotas;
pub use server::{REQUESTS_PER_KICK, SERVER_FEATURES, Xenstore};
pub use toolstack::{DomainInfo, ToolstackNode, domain_uuid, toolstack_nodes, vm_path};
