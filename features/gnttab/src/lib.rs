//! Xen grant tables, version 1, as Xen serves them to Arm guests: per-domain
//! tables whose frames the guest places in its grant window with
//! `XENMEM_add_to_physmap`, and `grant_table_op` to map another domain's
//! granted page into the caller's stage-2, unmap it, or copy through
//! grants.
//!
//! The logic is pure: memory and stage-2 changes go through [`Env`], which
//! the hypervisor implements over real pages and the tests fake.
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
mod env;
mod ops;
mod service;
mod table;
mod tables;

#[cfg(test)]
mod fake;

pub use env::{CacheOp, Env, GrantFrame, MapError};
pub use ops::{MAX_BATCH, arg_bytes};
pub use tables::{GrantTables, Revoked, TableError};

use linkme::distributed_slice;
use oxen_core::config::Enhanced;
use oxen_core::guest_layout::GUEST_GNTTAB;
use oxen_core::subsystem::{
    DomainSetup, HypervisorParts, InitError, Interface, SUBSYSTEMS, Subsystem,
};

struct GrantTableSubsystem;

impl Subsystem for GrantTableSubsystem {
    fn name(&self) -> &'static str {
        "gnttab"
    }

    /// First: the grant window is `reg[0]` of `/hypervisor`.
    fn order(&self) -> u32 {
        10
    }

    fn provides(&self) -> Option<Interface> {
        Some(Interface::GrantTable)
    }

    /// Domains with a `/hypervisor` node. (Xen lets every domU use grant
    /// tables, advertised or not.)
    fn grants(&self, enhanced: Enhanced) -> bool {
        matches!(enhanced, Enhanced::NoXenstore | Enhanced::Enabled)
    }

    fn hypervisor_node(&self, dom: &DomainSetup<'_>, node: &mut HypervisorParts) {
        if dom.has(Interface::GrantTable) {
            node.reg.push(GUEST_GNTTAB);
        }
    }

    fn domain_created(&self, dom: &DomainSetup<'_>) -> Result<(), InitError> {
        service::domain_created(dom).map_err(|message| InitError { message })
    }

    fn domain_destroyed(&self, domid: oxen_core::xen::DomId) {
        service::domain_destroyed(domid);
    }

    fn heap_budget(&self, dom: &oxen_core::subsystem::BudgetInput<'_>) -> u64 {
        if !dom.has(Interface::GrantTable) {
            return 0;
        }
        heap_budget(dom.max_grant_frames, dom.max_maptrack_frames)
    }
}

/// The heap a domain's grant table can hold at its bounds: an active
/// entry per grant of `max_grant_frames` and a maptrack entry per mapping
/// of `max_maptrack_frames`, each in a `Vec` that may have doubled past
/// what it holds, plus the table itself.
pub fn heap_budget(max_grant_frames: u32, max_maptrack_frames: u32) -> u64 {
    use core::mem::size_of;
    type P = oxen_core::shared::SharedPage;
    let grants = u64::from(max_grant_frames) * 512;
    let mappings = u64::from(max_maptrack_frames) * 256;
    2 * grants * size_of::<table::Active<P>>() as u64
        + 2 * mappings * size_of::<Option<table::Mapping<P>>>() as u64
        + u64::from(max_grant_frames) * 64
        + 16 * 1024
}

#[distributed_slice(SUBSYSTEMS)]
static GRANT_TABLES: &dyn Subsystem = &GrantTableSubsystem;

#[cfg(test)]
mod budget_tests {
    use super::*;

    #[test]
    fn the_heap_budget_covers_every_grant_and_mapping_at_the_bounds_and_grows_with_them() {
        type P = oxen_core::shared::SharedPage;
        let at_bounds = 64 * 512 * core::mem::size_of::<table::Active<P>>() as u64
            + 1024 * 256 * core::mem::size_of::<Option<table::Mapping<P>>>() as u64;
        assert!(heap_budget(64, 1024) >= at_bounds);
        assert!(heap_budget(64, 1024) > heap_budget(64, 0));
        assert!(heap_budget(64, 0) > heap_budget(1, 0));
    }
}
