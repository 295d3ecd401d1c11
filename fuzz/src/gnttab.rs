//! `grant_table_op` from three guests, with the guests writing grant
//! entries into their table frames behind the hypervisor's back and
//! placing frames with `add_to_physmap`, and domains destroyed and built
//! again. The hypervisor around the tables is a fake over a fixed pool of
//! host pages (Oxen's own `SharedPage`, which panics on a bad offset as in
//! the hypervisor), so a long run does not leak.

use std::collections::BTreeMap;

use oxen_core::shared::{SharedPage, test_page};
use oxen_core::xen::DomId;
use oxen_core::xen::errno::{EFAULT, Errno};
use oxen_gnttab::abi::Entry;
use oxen_gnttab::{CacheOp, Env, GrantFrame, GrantTables, MapError, arg_bytes};

use crate::input::Input;

const DOMAINS: u16 = 3;
/// First guest frame of RAM (0x4000_0000); each domain has `RAM_PAGES`.
const RAM: u64 = 0x4_0000;
const RAM_PAGES: u64 = 8;
/// Grant-table frames the fake hypervisor can hand out at once.
const FRAME_POOL: usize = 16;

/// RAM pages (per domain) then the frame pool, allocated once.
fn pool() -> &'static [SharedPage] {
    thread_local! {
        static POOL: &'static [SharedPage] = Box::leak(
            (0..DOMAINS as usize * RAM_PAGES as usize + FRAME_POOL)
                .map(|_| test_page())
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        );
    }
    POOL.with(|p| *p)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ram,
    GrantFrame,
    Foreign,
}

#[derive(Clone, Copy)]
struct S2 {
    page: SharedPage,
    writable: bool,
    kind: Kind,
}

struct FuzzEnv {
    s2: BTreeMap<(DomId, u64), S2>,
    free: Vec<SharedPage>,
    denied: Option<(DomId, DomId)>,
}

impl FuzzEnv {
    fn new() -> Self {
        let p = pool();
        let mut env = FuzzEnv {
            s2: BTreeMap::new(),
            free: p[DOMAINS as usize * RAM_PAGES as usize..].to_vec(),
            denied: None,
        };
        for dom in 1..=DOMAINS {
            env.add_ram(dom);
        }
        env
    }

    fn add_ram(&mut self, dom: DomId) {
        for i in 0..RAM_PAGES {
            let page = pool()[usize::from(dom - 1) * RAM_PAGES as usize + i as usize];
            self.s2.insert(
                (dom, RAM + i),
                S2 {
                    page,
                    writable: true,
                    kind: Kind::Ram,
                },
            );
        }
    }

    /// The domain's stage-2 is gone with it.
    fn drop_domain(&mut self, dom: DomId) {
        self.s2.retain(|&(d, _), _| d != dom);
    }
}

impl Env for FuzzEnv {
    type Frame = SharedPage;
    type Page = SharedPage;

    fn alloc_frame(&mut self) -> Option<SharedPage> {
        let f = self.free.pop()?;
        f.zero();
        Some(f)
    }

    fn free_frame(&mut self, frame: SharedPage) {
        assert!(
            !self
                .s2
                .values()
                .any(|e| e.page == frame && e.kind == Kind::Foreign),
            "a freed grant frame is still mapped in another domain"
        );
        self.free.push(frame);
    }

    fn map_frame(&mut self, dom: DomId, gfn: u64, frame: &SharedPage) -> Result<(), Errno> {
        self.s2.insert(
            (dom, gfn),
            S2 {
                page: *frame,
                writable: true,
                kind: Kind::GrantFrame,
            },
        );
        Ok(())
    }

    fn may_connect(&self, a: DomId, b: DomId) -> bool {
        self.denied != Some((a, b)) && self.denied != Some((b, a))
    }

    fn own_page(&self, dom: DomId, gfn: u64, writable: bool) -> Option<SharedPage> {
        self.s2
            .get(&(dom, gfn))
            .filter(|e| e.kind != Kind::Foreign && (e.writable || !writable))
            .map(|e| e.page)
    }

    fn page_address(&self, page: SharedPage) -> u64 {
        page.pa()
    }

    fn map_foreign(
        &mut self,
        mapper: DomId,
        gpa: u64,
        page: SharedPage,
        readonly: bool,
    ) -> Result<(), MapError> {
        if gpa >> 40 != 0 {
            return Err(MapError::OutOfRange);
        }
        if self.s2.contains_key(&(mapper, gpa >> 12)) {
            return Err(MapError::Occupied);
        }
        self.s2.insert(
            (mapper, gpa >> 12),
            S2 {
                page,
                writable: !readonly,
                kind: Kind::Foreign,
            },
        );
        Ok(())
    }

    fn unmap_foreign(&mut self, mapper: DomId, gpa: u64, page: SharedPage) -> Result<(), MapError> {
        match self.s2.get(&(mapper, gpa >> 12)) {
            Some(e) if e.kind == Kind::Foreign && e.page == page => {
                self.s2.remove(&(mapper, gpa >> 12));
                Ok(())
            }
            _ => Err(MapError::NotMapped),
        }
    }

    fn copy(
        &mut self,
        src: SharedPage,
        src_offset: usize,
        dst: SharedPage,
        dst_offset: usize,
        len: usize,
    ) {
        assert!(src_offset + len <= 4096 && dst_offset + len <= 4096);
        let mut buf = vec![0; len];
        src.read(src_offset, &mut buf);
        dst.write(dst_offset, &buf);
    }

    fn write_guest(&mut self, _dom: DomId, va: u64, _bytes: &[u8]) -> Result<(), Errno> {
        if va & 1 != 0 {
            return Err(EFAULT);
        }
        Ok(())
    }

    fn cache_maintenance(&mut self, _page: SharedPage, offset: usize, len: usize, _op: CacheOp) {
        assert!(offset + len <= 4096, "cache maintenance past the page");
    }
}

fn domain(i: &mut Input<'_>) -> DomId {
    match i.u8() {
        0..=239 => 1 + DomId::from(i.below(DOMAINS as u8)),
        240..=247 => 0x7ff0,
        248..=251 => 0,
        _ => i.u16(),
    }
}

/// A guest frame number worth trying: its RAM, the grant window, the
/// extended region mappers use, or anything.
fn gfn(i: &mut Input<'_>) -> u64 {
    match i.below(4) {
        0 => RAM + u64::from(i.below(RAM_PAGES as u8 + 1)),
        1 => 0x3_8000 + u64::from(i.below(8)),
        2 => 0x4_8000 + u64::from(i.u8()),
        _ => i.u64(),
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    for p in pool() {
        p.zero();
    }
    let mut i = Input::new(data);
    let mut env = FuzzEnv::new();
    let mut gt: GrantTables<SharedPage, SharedPage> = GrantTables::new();
    let limits = |i: &mut Input<'_>| (1 + u32::from(i.below(4)), u32::from(i.below(3)));
    for dom in 1..=DOMAINS {
        let (f, m) = limits(&mut i);
        let _ = gt.domain_created(&mut env, dom, f, m);
    }
    if i.below(4) == 0 {
        env.denied = Some((1, 2));
    }
    let mut ops = 0;
    while !i.is_empty() && ops < 256 {
        ops += 1;
        match i.below(16) {
            0..=7 => {
                let caller = domain(&mut i);
                let cmd = match i.below(8) {
                    0 => i.u64(),
                    1 => u64::from(i.u32()),
                    _ => u64::from(i.below(14)),
                };
                let count = match i.below(8) {
                    0 => i.u64(),
                    1..=3 => u64::from(i.u8()),
                    _ => 1,
                };
                let size = arg_bytes(cmd, count);
                // Sometimes the caller copied in less than asked for (a
                // fault half-way through the guest's array).
                let size = if i.below(16) == 0 {
                    size.min(usize::from(i.u16()))
                } else {
                    size
                };
                let mut args = i.bytes(size).to_vec();
                args.resize(size, 0);
                let rc = gt.grant_table_op(&mut env, caller, cmd, count, &mut args);
                assert!(
                    rc <= 0 || (rc as u64) < count,
                    "grant_table_op returned {rc} for a count of {count}"
                );
            }
            // The guest writes an entry of its table.
            8..=10 => {
                let dom = 1 + DomId::from(i.below(DOMAINS as u8));
                let gref = i.index();
                let entry = Entry {
                    flags: i.u16(),
                    domid: domain(&mut i),
                    frame: match i.below(2) {
                        0 => (RAM + u64::from(i.below(RAM_PAGES as u8 + 1))) as u32,
                        _ => i.u32(),
                    },
                };
                if let Some(f) = gt.frame(dom, gref / 512) {
                    f.store(gref as usize % 512, entry);
                }
            }
            // XENMEM_add_to_physmap, space grant_table, and its removal.
            11 | 12 => {
                let dom = domain(&mut i);
                let idx = match i.below(4) {
                    0 => i.u64(),
                    _ => u64::from(i.below(8)),
                };
                let g = gfn(&mut i);
                if i.below(4) == 0 {
                    env.s2.remove(&(dom, g));
                    let _ = gt.frame_removed(dom, g);
                } else if !env.s2.contains_key(&(dom, g)) {
                    let _ = gt.add_to_physmap(&mut env, dom, idx, g);
                }
            }
            // Queries of the hypervisor.
            13 => {
                let dom = domain(&mut i);
                let gref = i.index();
                let _ = gt.pin(dom, gref);
                let _ = gt.nr_frames(dom);
                let _ = gt.frame_gfn(dom, i.index());
                let page = pool()[usize::from(i.below(DOMAINS as u8 * RAM_PAGES as u8))];
                let _ = gt.page_in_use(dom, page);
            }
            // The hypervisor seeds an entry (the xenstore ring's grant).
            14 => {
                let dom = domain(&mut i);
                let _ = gt.seed_entry(dom, i.index(), i.u16(), domain(&mut i), i.u32());
            }
            // A domain destroyed, and maybe built again.
            _ => {
                let dom = 1 + DomId::from(i.below(DOMAINS as u8));
                for r in gt.domain_destroyed(&mut env, dom) {
                    assert!(
                        r.result.is_ok(),
                        "revoking a mapping of d{dom} in d{} failed",
                        r.mapper
                    );
                }
                env.drop_domain(dom);
                if i.below(2) == 0 {
                    env.add_ram(dom);
                    let (f, m) = limits(&mut i);
                    let _ = gt.domain_created(&mut env, dom, f, m);
                }
            }
        }
    }
    for dom in 1..=DOMAINS {
        let _ = gt.domain_destroyed(&mut env, dom);
        env.drop_domain(dom);
    }
    assert_eq!(env.free.len(), FRAME_POOL, "grant frames leaked");
}
