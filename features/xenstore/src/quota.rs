//! The per-domain bounds on what a guest can make the store hold.

/// Limits applied to guests (the hypervisor's own requests are exempt).
/// The defaults are C xenstored 4.20's, plus a bound on queued watch events
/// that C xenstored does not have (it drops events after 20 s instead).
#[derive(Clone, Debug)]
pub struct Quotas {
    /// Nodes a domain may own; creating one more is `ENOSPC`.
    pub nodes_per_domain: usize,
    /// Bytes of a node as C xenstored sizes it (16 + 8 per permission entry
    /// + value + each child name and its NUL); more is `ENOSPC`.
    pub node_size: usize,
    /// Entries of a permission list; more is `ENOSPC`.
    pub perms_per_node: usize,
    /// Path length, counted below `/local/domain/<n>/` for paths there;
    /// more is `EINVAL`.
    pub path_max: usize,
    /// Watches per domain. As in C xenstored the count is tested before
    /// adding (`count > limit` fails), so `limit + 1` fit; then `E2BIG`.
    pub watches_per_domain: usize,
    /// Open transactions per domain, tested like watches (`limit + 1` fit);
    /// then `ENOSPC`.
    pub transactions_per_domain: usize,
    /// Distinct nodes one transaction may read or write; then `ENOSPC`.
    pub nodes_per_transaction: usize,
    /// Replies a domain may have queued and undelivered before its request
    /// ring is no longer read (back-pressure, no error).
    pub outstanding_requests: usize,
    /// Watch events queued for a domain and not yet in its ring; further
    /// events are dropped and counted.
    pub queued_events: usize,
}

/// Bytes one transaction may hold by default: the names of the nodes it
/// looked at and its copies of the nodes it changed (names and sizes); more
/// is `ENOSPC`. Not in C xenstored, which bounds a domain's memory as a
/// whole (2.5 MiB) instead. See `Xenstore::set_transaction_bytes`.
pub const TRANSACTION_BYTES: usize = 256 * 1024;

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            nodes_per_domain: 1000,
            node_size: 2048,
            perms_per_node: 5,
            path_max: 2048,
            watches_per_domain: 128,
            transactions_per_domain: 10,
            nodes_per_transaction: 1024,
            outstanding_requests: 20,
            queued_events: 256,
        }
    }
}
