//! What the running hypervisor offers subsystems: pages shared with
//! guests, stage-2 mappings of them, and the event-channel upcall. Core
//! installs the implementation at boot; subsystems reach it through
//! [`services`] and their host tests substitute a fake of their own.
// Guest-facing: no unwrap, expect or unchecked index outside the tests
// (issue 16; each remaining exception says why it cannot fail).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use crate::shared::SharedPage;
use crate::xen::DomId;
use crate::xen::errno::Errno;

/// Hypervisor operations a subsystem may use.
pub trait Services: Sync {
    /// A zeroed page owned by the hypervisor (e.g. a shared_info page or a
    /// grant-table frame).
    fn alloc_page(&self) -> Option<SharedPage>;
    /// Returns a page from [`Services::alloc_page`].
    fn free_page(&self, page: SharedPage);
    /// The page of `dom`'s own RAM at guest frame `gfn`, if it is RAM.
    fn guest_page(&self, dom: DomId, gfn: u64) -> Option<SharedPage>;
    /// Maps `page` into `dom`'s guest-physical space at `gfn`, replacing
    /// whatever was there (TLBs are invalidated).
    fn map(&self, dom: DomId, gfn: u64, page: SharedPage, writable: bool) -> Result<(), Errno>;
    /// Removes the mapping at `gfn` (TLBs are invalidated).
    fn unmap(&self, dom: DomId, gfn: u64) -> Result<(), Errno>;
    /// Maps `page` (another domain's RAM, for a grant) into `dom` at `gfn`,
    /// never executable; `EBUSY` if something is mapped there already.
    fn map_foreign(
        &self,
        dom: DomId,
        gfn: u64,
        page: SharedPage,
        writable: bool,
    ) -> Result<(), Errno>;
    /// Removes a mapping made by [`Services::map_foreign`], only if `gfn`
    /// still maps `page`; `ENOENT` otherwise. TLBs are invalidated.
    fn unmap_foreign(&self, dom: DomId, gfn: u64, page: SharedPage) -> Result<(), Errno>;
    /// Cleans and/or invalidates data-cache lines of `page` at
    /// `[offset, offset + len)`.
    fn cache_maintenance(
        &self,
        page: SharedPage,
        offset: usize,
        len: usize,
        clean: bool,
        invalidate: bool,
    );
    /// Whether domains `a` and `b` may be connected (interdomain event
    /// channels, grant mappings): the connection policy.
    fn may_connect(&self, a: DomId, b: DomId) -> bool;
    /// Records that the configuration connects `a` and `b`, and tells every
    /// subsystem (`Subsystem::domains_connected`).
    fn connect(&self, a: DomId, b: DomId);
    /// Raises the event-channel upcall (PPI 31) on `vcpu` of `dom`.
    fn upcall(&self, dom: DomId, vcpu: usize);
    /// Number of vCPUs of `dom`, if it exists.
    fn vcpus(&self, dom: DomId) -> Option<usize>;
    /// Sets one of `dom`'s HVM parameters (what `HVMOP_get_param` reads);
    /// `EINVAL` for an index past the table, `ESRCH` for no such domain.
    fn set_hvm_param(&self, dom: DomId, index: u32, value: u64) -> Result<(), Errno>;
}

static SERVICES: spin::Once<&'static dyn Services> = spin::Once::new();

/// Installs the implementation (once, at boot).
pub fn install(s: &'static dyn Services) {
    SERVICES.call_once(|| s);
}

/// The hypervisor's services.
// Boot installs the services before it creates any domain, so no guest
// can reach a subsystem before this succeeds: the `expect` is a boot-order
// bug check, not reachable from guest input.
#[allow(clippy::expect_used)]
pub fn services() -> &'static dyn Services {
    *SERVICES
        .get()
        .expect("subsystem used hypervisor services before boot installed them")
}
