//! [`Services`] for the running hypervisor: pages from the frame
//! allocator, stage-2 mappings of a live domain, and the upcall.

use super::{hv, sched};
use crate::arch::guest::{self, reg};
use crate::guest_layout::GUEST_EVTCHN_PPI;
use crate::memmap::Range;
use crate::services::Services;
use crate::shared::SharedPage;
use crate::stage2::{S2Attrs, S2Mem};
use crate::xen::DomId;
use crate::xen::errno::{EBUSY, EINVAL, ENOENT, ENOMEM, ESRCH, Errno};

/// The hypervisor's implementation.
pub struct HvServices;

/// Invalidates every stage-1/stage-2 TLB entry of `vttbr`'s VMID on every
/// CPU, from whichever domain is loaded here.
fn flush_vmid(vttbr: u64) {
    let saved = reg::vttbr();
    reg::set_vttbr(vttbr);
    guest::flush_guest_tlb();
    reg::set_vttbr(saved);
}

/// Runs `change` on `dom`'s live stage-2 for the page at `gfn`, then
/// invalidates the domain's TLB entries if it succeeded.
fn change_stage2(
    dom: DomId,
    gfn: u64,
    change: impl FnOnce(
        &mut crate::stage2::Stage2,
        &mut crate::stage2::Budgeted<super::domain::HeapTables>,
        u64,
        Range,
    ) -> Result<(), Errno>,
) -> Result<(), Errno> {
    let d = hv().domain(dom).ok_or(ESRCH)?;
    let ipa = gfn.checked_mul(4096).ok_or(EINVAL)?;
    let range = Range::with_size(ipa, 4096).ok_or(EINVAL)?;
    {
        let mut m = d.mem.lock();
        let super::domain::DomainMem { stage2, tables, .. } = &mut *m;
        change(stage2.as_mut().ok_or(ESRCH)?, tables, ipa, range)?;
    }
    flush_vmid(d.vttbr);
    Ok(())
}

fn map_error(e: crate::stage2::S2Error) -> Errno {
    match e {
        crate::stage2::S2Error::OutOfTables => ENOMEM,
        _ => EINVAL,
    }
}

impl Services for HvServices {
    fn alloc_page(&self) -> Option<SharedPage> {
        let r = hv().frames.lock().alloc(4096, 4096)?;
        let Some(p) = crate::arch::mem::shared_page(r.start) else {
            hv().frames.lock().free(r);
            return None;
        };
        p.zero();
        Some(p)
    }

    fn free_page(&self, page: SharedPage) {
        hv().frames.lock().free(Range {
            start: page.pa(),
            end: page.pa() + 4096,
        });
    }

    fn guest_page(&self, dom: DomId, gfn: u64) -> Option<SharedPage> {
        let d = hv().domain(dom)?;
        let m = d.mem.lock();
        let ipa = gfn.checked_mul(4096)?;
        let (pa, attrs) = m.stage2.as_ref()?.translate(&m.tables, ipa)?;
        let page = Range::with_size(pa & !0xfff, 4096)?;
        // Only the domain's own RAM: never a page Oxen mapped into it.
        // (Freed only at its teardown, after every subsystem has let go of
        // it in domain_destroyed.)
        (attrs.mem == S2Mem::Normal && attrs.write && m.owns_host(page))
            .then(|| crate::arch::mem::shared_page(page.start))
            .flatten()
    }

    fn map(&self, dom: DomId, gfn: u64, page: SharedPage, writable: bool) -> Result<(), Errno> {
        change_stage2(dom, gfn, |s2, tables, _ipa, range| {
            let attrs = S2Attrs {
                mem: S2Mem::Normal,
                write: writable,
                exec: false,
            };
            s2.map(tables, range, page.pa(), attrs).map_err(map_error)
        })
    }

    fn unmap(&self, dom: DomId, gfn: u64) -> Result<(), Errno> {
        change_stage2(dom, gfn, |s2, tables, _ipa, range| {
            s2.unmap(tables, range).map_err(|_| EINVAL)
        })
    }

    fn map_foreign(
        &self,
        dom: DomId,
        gfn: u64,
        page: SharedPage,
        writable: bool,
    ) -> Result<(), Errno> {
        change_stage2(dom, gfn, |s2, tables, ipa, range| {
            if s2.translate(tables, ipa).is_some() {
                return Err(EBUSY);
            }
            let attrs = S2Attrs {
                mem: S2Mem::Normal,
                write: writable,
                exec: false,
            };
            s2.map(tables, range, page.pa(), attrs).map_err(map_error)
        })
    }

    fn unmap_foreign(&self, dom: DomId, gfn: u64, page: SharedPage) -> Result<(), Errno> {
        change_stage2(dom, gfn, |s2, tables, ipa, range| {
            match s2.translate(tables, ipa) {
                Some((pa, _)) if pa & !0xfff == page.pa() => {}
                _ => return Err(ENOENT),
            }
            s2.unmap(tables, range).map_err(|_| EINVAL)
        })
    }

    fn cache_maintenance(
        &self,
        page: SharedPage,
        offset: usize,
        len: usize,
        clean: bool,
        invalidate: bool,
    ) {
        let start = page.pa() + offset.min(4096) as u64;
        let end = page.pa() + (offset + len).min(4096) as u64;
        guest::dcache_range(start, end, clean, invalidate);
    }

    fn may_connect(&self, a: DomId, b: DomId) -> bool {
        let hv = hv();
        a == b
            || !hv.silo
            || hv
                .connections
                .lock()
                .iter()
                .any(|&(x, y)| (x, y) == (a, b) || (y, x) == (a, b))
    }

    fn connect(&self, a: DomId, b: DomId) {
        {
            let mut c = hv().connections.lock();
            if !c.iter().any(|&(x, y)| (x, y) == (a, b) || (y, x) == (a, b)) {
                c.push((a, b));
            }
        }
        for s in hv().registry.iter() {
            s.domains_connected(a, b);
        }
    }

    fn upcall(&self, dom: DomId, vcpu: usize) {
        if let Some(d) = hv().domain(dom) {
            let kicks = d.vgic.lock().inject(vcpu, GUEST_EVTCHN_PPI);
            sched::notify_mask(&d, kicks.0);
            sched::notify(&d, vcpu);
        }
    }

    fn vcpus(&self, dom: DomId) -> Option<usize> {
        hv().domain(dom).map(|d| d.vcpus.len())
    }

    fn set_hvm_param(&self, dom: DomId, index: u32, value: u64) -> Result<(), Errno> {
        let d = hv().domain(dom).ok_or(ESRCH)?;
        let mut params = d.hvm_params.lock();
        *params.get_mut(index as usize).ok_or(EINVAL)? = value;
        Ok(())
    }
}

/// The instance boot installs.
pub static SERVICES: HvServices = HvServices;
