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

/// The heap a domain's xenstore connection can hold at its quotas: its
/// nodes (each at most `node_size`, plus the tree's and the names'
/// overhead), one more transaction than the quota (as C xenstored lets
/// through) of [`TRANSACTION_BYTES`] each, its watches (path and token of
/// at most a payload each), the replies and events queued for its ring,
/// and the ring's own buffers.
pub fn heap_budget(q: &Quotas) -> u64 {
    const PAYLOAD: u64 = 4096 + 16;
    const NODE_OVERHEAD: u64 = 256;
    let nodes = q.nodes_per_domain as u64 * (q.node_size as u64 + NODE_OVERHEAD);
    let transactions = (q.transactions_per_domain as u64 + 1) * TRANSACTION_BYTES as u64;
    let watches = (q.watches_per_domain as u64 + 1) * (PAYLOAD + 128);
    let queued = (q.outstanding_requests + q.queued_events) as u64 * (PAYLOAD + 64);
    nodes + transactions + watches + queued + 4 * PAYLOAD + 16 * 1024
}

#[cfg(test)]
mod budget_tests {
    use super::*;

    #[test]
    fn the_heap_budget_covers_full_nodes_and_transactions_at_the_quotas() {
        let q = Quotas::default();
        let floor = (q.nodes_per_domain * q.node_size
            + (q.transactions_per_domain + 1) * TRANSACTION_BYTES) as u64;
        assert!(heap_budget(&q) >= floor);
        let more = Quotas {
            nodes_per_domain: 2 * q.nodes_per_domain,
            ..q
        };
        assert!(heap_budget(&more) > heap_budget(&Quotas::default()));
    }
}
