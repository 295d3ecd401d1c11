//! Every domain's grant table, and what the hypervisor does to them
//! outside `grant_table_op`: creating and destroying them, placing frames
//! in the guest (`XENMEM_add_to_physmap`) and seeding reserved entries.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

use oxen_core::config::{MAX_GRANT_FRAMES, MAX_MAPTRACK_FRAMES};
use oxen_core::xen::DomId;
use oxen_core::xen::errno::{EBUSY, EINVAL, ESRCH, Errno};

use crate::abi::{Entry, INITIAL_FRAMES};
use crate::env::{Env, GrantFrame, MapError};
use crate::table::Table;

/// The grant tables of all domains, with the mappings between them.
///
/// Not internally locked: the hypervisor keeps it behind one lock, so
/// hypercalls from different CPUs are serialised.
pub struct GrantTables<F, P> {
    pub(crate) tables: BTreeMap<DomId, Table<F, P>>,
}

/// Why a grant table could not be set up or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableError {
    /// `domain_created` for a domain that already has a table.
    Exists(DomId),
    /// No table for that domain.
    NoDomain(DomId),
    /// `max_grant_frames` outside what the hypervisor supports.
    MaxFrames { dom: DomId, value: u32 },
    /// `max_maptrack_frames` above what the hypervisor supports.
    MaxMaptrackFrames { dom: DomId, value: u32 },
    /// No memory for the table's first frame.
    OutOfMemory(DomId),
    /// An entry beyond the table's current size.
    NoEntry { dom: DomId, gref: u32, entries: u32 },
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Exists(dom) => write!(f, "domain {dom} already has a grant table"),
            Self::NoDomain(dom) => write!(f, "domain {dom} has no grant table"),
            Self::MaxFrames { dom, value } => write!(
                f,
                "domain {dom}: max_grant_frames = <{value}> is out of range \
                 ({INITIAL_FRAMES} to {MAX_GRANT_FRAMES})"
            ),
            Self::MaxMaptrackFrames { dom, value } => write!(
                f,
                "domain {dom}: max_maptrack_frames = <{value}> is out of range \
                 (0 to {MAX_MAPTRACK_FRAMES})"
            ),
            Self::OutOfMemory(dom) => {
                write!(f, "domain {dom}: no memory for its grant-table frame")
            }
            Self::NoEntry { dom, gref, entries } => write!(
                f,
                "domain {dom}: grant entry {gref} is beyond its table of {entries} entries"
            ),
        }
    }
}

/// One mapping of a destroyed domain's page that was torn down in the
/// domain that had mapped it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revoked {
    pub mapper: DomId,
    /// Where the page was mapped in `mapper`.
    pub gpa: u64,
    /// What [`Env::unmap_foreign`] answered. An error means the page may
    /// still be mapped in `mapper`, so it must not be reused.
    pub result: Result<(), MapError>,
}

impl<F, P> Default for GrantTables<F, P> {
    fn default() -> Self {
        Self {
            tables: BTreeMap::new(),
        }
    }
}

impl<F: GrantFrame, P: Copy + PartialEq> GrantTables<F, P> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Gives `dom` a version-1 table of one frame that may grow to
    /// `max_frames` (Xen's `max_grant_frames`, 1 to 64) and lets it hold
    /// `max_maptrack_frames` × 256 mappings of other domains' grants
    /// (`max_maptrack_frames`, 0 to 1024).
    pub fn domain_created<E: Env<Frame = F, Page = P>>(
        &mut self,
        env: &mut E,
        dom: DomId,
        max_frames: u32,
        max_maptrack_frames: u32,
    ) -> Result<(), TableError> {
        if self.tables.contains_key(&dom) {
            return Err(TableError::Exists(dom));
        }
        if !(INITIAL_FRAMES..=MAX_GRANT_FRAMES).contains(&max_frames) {
            return Err(TableError::MaxFrames {
                dom,
                value: max_frames,
            });
        }
        if max_maptrack_frames > MAX_MAPTRACK_FRAMES {
            return Err(TableError::MaxMaptrackFrames {
                dom,
                value: max_maptrack_frames,
            });
        }
        let mut table = Table::new(max_frames, max_maptrack_frames);
        if !table.grow(env, INITIAL_FRAMES) {
            return Err(TableError::OutOfMemory(dom));
        }
        self.tables.insert(dom, table);
        Ok(())
    }

    /// Removes `dom`'s table. Call it before the domain's memory is freed:
    ///
    /// * the pins `dom`'s own mappings held on other domains' grants are
    ///   dropped (their `GTF_reading`/`GTF_writing` cleared), as Xen does;
    /// * every mapping another domain holds of `dom`'s pages is removed
    ///   from that domain's stage-2 now (Xen instead keeps the page alive
    ///   until it is unmapped). The mapper's handle stays allocated until it
    ///   unmaps it, which then succeeds without touching its stage-2;
    /// * the table's frames are given back to the hypervisor.
    ///
    /// Returns the mappings torn down in other domains.
    pub fn domain_destroyed<E: Env<Frame = F, Page = P>>(
        &mut self,
        env: &mut E,
        dom: DomId,
    ) -> Vec<Revoked> {
        let Some(table) = self.tables.remove(&dom) else {
            return Vec::new();
        };
        for m in table.maptrack.iter().flatten() {
            let Some(g) = m.granter else { continue };
            if let Some(granter) = self.tables.get_mut(&g) {
                granter.unpin(m.gref, m.readonly);
                granter.reduce_status(m.gref, m.readonly);
            }
        }
        let mut revoked = Vec::new();
        for (&mapper, t) in self.tables.iter_mut() {
            for m in t.maptrack.iter_mut().flatten() {
                if m.granter == Some(dom) {
                    let result = env.unmap_foreign(mapper, m.gpa, m.page);
                    revoked.push(Revoked {
                        mapper,
                        gpa: m.gpa,
                        result,
                    });
                    m.granter = None;
                }
            }
        }
        for placed in table.frames {
            env.free_frame(placed.frame);
        }
        revoked
    }

    /// `XENMEM_add_to_physmap` with space `grant_table`: places frame `idx`
    /// of `dom`'s table at guest frame `gfn`, first growing the table to
    /// `idx + 1` frames. `EINVAL` when `idx` is not below the domain's
    /// `max_grant_frames` (or memory runs out); `EBUSY` when that frame is
    /// already placed (Xen maps a hypervisor page at one gfn at a time; the
    /// guest must remove it first); otherwise what [`Env::map_frame`]
    /// answers. Status frames (`idx` with bit 31) do not exist in version 1,
    /// so they are out of range.
    pub fn add_to_physmap<E: Env<Frame = F, Page = P>>(
        &mut self,
        env: &mut E,
        dom: DomId,
        idx: u64,
        gfn: u64,
    ) -> Result<(), Errno> {
        let table = self.tables.get_mut(&dom).ok_or(ESRCH)?;
        let idx = u32::try_from(idx)
            .ok()
            .filter(|&i| i < table.max_frames)
            .ok_or(EINVAL)?;
        if !table.grow(env, idx + 1) {
            return Err(EINVAL);
        }
        let Some(placed) = table.frames.get_mut(idx as usize) else {
            // Cannot happen: the table was just grown to `idx + 1` frames.
            return Err(EINVAL);
        };
        if placed.gfn.is_some() {
            return Err(EBUSY);
        }
        env.map_frame(dom, gfn, &placed.frame)?;
        placed.gfn = Some(gfn);
        Ok(())
    }

    /// The hypervisor removed guest frame `gfn` from `dom`'s stage-2
    /// (`XENMEM_remove_from_physmap`): if a grant-table frame was placed
    /// there it may now be placed again. Returns that frame's index.
    pub fn frame_removed(&mut self, dom: DomId, gfn: u64) -> Option<u32> {
        let table = self.tables.get_mut(&dom)?;
        let idx = table.frames.iter().position(|p| p.gfn == Some(gfn))?;
        if let Some(p) = table.frames.get_mut(idx) {
            p.gfn = None;
        }
        Some(idx as u32)
    }

    /// Writes entry `gref` of `dom`'s table before the domain runs: the
    /// reserved xenstore entry (1) is seeded with
    /// `{GTF_permit_access, xenstore domain, xenstore page gfn}`.
    pub fn seed_entry(
        &mut self,
        dom: DomId,
        gref: u32,
        flags: u16,
        domid: DomId,
        frame: u32,
    ) -> Result<(), TableError> {
        let table = self.tables.get(&dom).ok_or(TableError::NoDomain(dom))?;
        let Some((f, i)) = table.slot(gref) else {
            return Err(TableError::NoEntry {
                dom,
                gref,
                entries: table.nr_entries(),
            });
        };
        f.store(
            i,
            Entry {
                flags,
                domid,
                frame,
            },
        );
        Ok(())
    }

    /// Whether `dom` has a table.
    pub fn has_domain(&self, dom: DomId) -> bool {
        self.tables.contains_key(&dom)
    }

    /// Frames in `dom`'s table now.
    pub fn nr_frames(&self, dom: DomId) -> Option<u32> {
        self.tables.get(&dom).map(|t| t.nr_frames())
    }

    /// Frame `idx` of `dom`'s table.
    pub fn frame(&self, dom: DomId, idx: u32) -> Option<&F> {
        Some(&self.tables.get(&dom)?.frames.get(idx as usize)?.frame)
    }

    /// Where frame `idx` of `dom`'s table is placed in the guest.
    pub fn frame_gfn(&self, dom: DomId, idx: u32) -> Option<u64> {
        self.tables.get(&dom)?.frames.get(idx as usize)?.gfn
    }

    /// Whether `page` of `granter` is pinned by a grant (mapped in another
    /// domain or being copied): the hypervisor must not free or move it.
    pub fn page_in_use(&self, granter: DomId, page: P) -> bool {
        self.tables
            .get(&granter)
            .is_some_and(|t| t.active.iter().any(|a| a.pin != 0 && a.page == Some(page)))
    }

    /// The pin word of entry `gref` of `dom` (Xen's `GNTPIN_*` layout:
    /// writable host mappings in bits 0–7, read-only ones in bits 8–15).
    pub fn pin(&self, dom: DomId, gref: u32) -> Option<u32> {
        Some(self.tables.get(&dom)?.active.get(gref as usize)?.pin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{gntmap, gtf};
    use crate::fake::*;

    const PERMIT: u16 = gtf::PERMIT_ACCESS;
    const HOST: u32 = gntmap::HOST_MAP;

    #[test]
    fn a_new_domain_has_one_frame_placed_nowhere() {
        let w = World::new();
        assert_eq!(w.gt.nr_frames(D1), Some(1));
        assert_eq!(w.gt.frame_gfn(D1, 0), None);
        assert!(w.gt.frame(D1, 1).is_none());
    }

    #[test]
    fn creating_a_domain_twice_is_refused() {
        let mut w = World::new();
        let e = w.gt.domain_created(&mut w.env, D1, 64, 1024).unwrap_err();
        assert_eq!(e, TableError::Exists(D1));
        assert_eq!(e.to_string(), "domain 1 already has a grant table");
    }

    #[test]
    fn max_grant_frames_out_of_range_is_refused_naming_domain_value_and_range() {
        let mut w = World::new();
        for v in [0, 65] {
            let e = w.gt.domain_created(&mut w.env, 4, v, 1024).unwrap_err();
            assert_eq!(
                e.to_string(),
                alloc::format!("domain 4: max_grant_frames = <{v}> is out of range (1 to 64)")
            );
        }
        assert!(!w.gt.has_domain(4));
    }

    #[test]
    fn max_maptrack_frames_above_1024_is_refused() {
        let mut w = World::new();
        let e = w.gt.domain_created(&mut w.env, 4, 64, 1025).unwrap_err();
        assert_eq!(
            e.to_string(),
            "domain 4: max_maptrack_frames = <1025> is out of range (0 to 1024)"
        );
        assert!(w.gt.domain_created(&mut w.env, 4, 1, 0).is_ok());
    }

    #[test]
    fn no_memory_for_the_first_frame_is_reported() {
        let mut w = World::new();
        w.env.frames_left = Some(0);
        let e = w.gt.domain_created(&mut w.env, 4, 64, 1024).unwrap_err();
        assert_eq!(e, TableError::OutOfMemory(4));
        assert!(!w.gt.has_domain(4));
    }

    #[test]
    fn c12_add_to_physmap_places_frame_0_in_the_grant_window() {
        let mut w = World::new();
        assert_eq!(w.gt.add_to_physmap(&mut w.env, D1, 0, 0x38000), Ok(()));
        let placed = w.env.at(D1, 0x38000).unwrap();
        assert_eq!((placed.kind, placed.writable), (Kind::GrantFrame, true));
        assert_eq!(placed.page, *w.gt.frame(D1, 0).unwrap());
        assert_eq!(w.gt.frame_gfn(D1, 0), Some(0x38000));
    }

    #[test]
    fn c13_add_to_physmap_at_or_beyond_max_frames_is_einval_and_grows_nothing() {
        let mut w = World::new();
        for idx in [64, 0x8000_0000, u64::MAX] {
            assert_eq!(
                w.gt.add_to_physmap(&mut w.env, D1, idx, 0x38040),
                Err(EINVAL)
            );
        }
        assert_eq!(w.gt.nr_frames(D1), Some(1));
        assert_eq!(w.gt.add_to_physmap(&mut w.env, D1, 63, 0x3803f), Ok(()));
        assert_eq!(w.gt.nr_frames(D1), Some(64));
        // At its bound D1 grows no further; D2's table is its own.
        assert_eq!(
            w.gt.add_to_physmap(&mut w.env, D1, 64, 0x38040),
            Err(EINVAL)
        );
        assert_eq!(w.gt.add_to_physmap(&mut w.env, D2, 63, 0x3803f), Ok(()));
        assert_eq!(w.gt.nr_frames(D2), Some(64));
    }

    #[test]
    fn add_to_physmap_grows_the_table_to_idx_plus_one_frames() {
        let mut w = World::with_limits(8, 1);
        assert_eq!(w.gt.add_to_physmap(&mut w.env, D1, 3, 0x38003), Ok(()));
        assert_eq!(w.gt.nr_frames(D1), Some(4));
        assert_eq!(
            (0..4).map(|i| w.gt.frame_gfn(D1, i)).collect::<Vec<_>>(),
            [None, None, None, Some(0x38003)]
        );
        // Entries of the new frames can be granted and mapped.
        w.grant(D1, 4 * 512 - 1, PERMIT, D2, RAM);
        assert_eq!(w.map(D2, EXT, HOST, 4 * 512 - 1, D1).1, 0);
        assert_eq!(w.gt.add_to_physmap(&mut w.env, D1, 8, 0x38008), Err(EINVAL));
    }

    #[test]
    fn placing_a_frame_again_is_ebusy_until_it_is_removed() {
        let mut w = World::new();
        w.gt.add_to_physmap(&mut w.env, D1, 0, 0x38000).unwrap();
        assert_eq!(w.gt.add_to_physmap(&mut w.env, D1, 0, 0x38100), Err(EBUSY));
        assert_eq!(w.gt.add_to_physmap(&mut w.env, D1, 0, 0x38000), Err(EBUSY));
        assert_eq!(w.gt.frame_removed(D1, 0x38100), None);
        assert_eq!(w.gt.frame_removed(D1, 0x38000), Some(0));
        assert_eq!(w.gt.add_to_physmap(&mut w.env, D1, 0, 0x38100), Ok(()));
        assert_eq!(w.gt.frame_gfn(D1, 0), Some(0x38100));
    }

    #[test]
    fn running_out_of_memory_while_growing_is_einval_and_keeps_the_table() {
        let mut w = World::new();
        w.env.frames_left = Some(1);
        assert_eq!(w.gt.add_to_physmap(&mut w.env, D1, 3, 0x38003), Err(EINVAL));
        assert_eq!(w.gt.nr_frames(D1), Some(1));
        let freed = w
            .env
            .log
            .iter()
            .filter(|e| matches!(e, Event::FreeFrame(_)))
            .count();
        assert_eq!(freed, 1, "the frame taken is given back");
    }

    #[test]
    fn add_to_physmap_for_a_domain_without_a_table_is_esrch() {
        let mut w = World::new();
        assert_eq!(w.gt.add_to_physmap(&mut w.env, 9, 0, 0x38000), Err(ESRCH));
    }

    #[test]
    fn seed_entry_reserves_entry_1_for_the_xenstore_domain_which_can_map_it() {
        let mut w = World::new();
        w.gt.seed_entry(D1, 1, PERMIT, D3, (RAM + 3) as u32)
            .unwrap();
        let e = w.gt.frame(D1, 0).unwrap().entry(1);
        assert_eq!(
            e,
            Entry {
                flags: PERMIT,
                domid: D3,
                frame: (RAM + 3) as u32
            }
        );
        assert_eq!(w.map(D3, EXT, HOST, 1, D1).1, 0);
        assert_eq!(w.map(D2, EXT, HOST, 1, D1).1, -1, "only for xenstore");
    }

    #[test]
    fn seed_entry_beyond_the_table_or_for_a_missing_domain_is_refused() {
        let mut w = World::new();
        assert_eq!(
            w.gt.seed_entry(D1, 512, PERMIT, D3, 1)
                .unwrap_err()
                .to_string(),
            "domain 1: grant entry 512 is beyond its table of 512 entries"
        );
        assert_eq!(
            w.gt.seed_entry(9, 1, PERMIT, D3, 1),
            Err(TableError::NoDomain(9))
        );
    }

    #[test]
    fn destroying_a_granter_unmaps_its_pages_from_every_mapper_and_frees_its_frames() {
        let mut w = World::new();
        w.grant(D1, 8, PERMIT, D2, RAM + 1);
        w.grant(D1, 9, PERMIT, D3, RAM + 2);
        w.map(D2, EXT, HOST, 8, D1);
        w.map(D3, EXT + 0x1000, HOST, 9, D1);
        let frame = w.gt.frame(D1, 0).unwrap().pa();
        let revoked = w.gt.domain_destroyed(&mut w.env, D1);
        assert_eq!(
            revoked,
            [
                Revoked {
                    mapper: D2,
                    gpa: EXT,
                    result: Ok(())
                },
                Revoked {
                    mapper: D3,
                    gpa: EXT + 0x1000,
                    result: Ok(())
                },
            ]
        );
        assert!(w.env.at(D2, EXT >> 12).is_none());
        assert!(w.env.at(D3, (EXT >> 12) + 1).is_none());
        assert!(w.env.log.contains(&Event::FreeFrame(frame)));
        assert!(!w.gt.has_domain(D1));
    }

    #[test]
    fn after_its_granter_is_gone_a_mapper_unmaps_its_handle_without_touching_its_stage2() {
        let mut w = World::new();
        w.grant(D1, 8, PERMIT, D2, RAM + 1);
        let (_, _, h, _) = w.map(D2, EXT, HOST, 8, D1);
        w.gt.domain_destroyed(&mut w.env, D1);
        let events = w.env.log.len();
        assert_eq!(w.unmap(D2, EXT, h), 0);
        assert_eq!(w.env.log.len(), events);
        assert_eq!(w.unmap(D2, EXT, h), -4, "then the handle is free");
    }

    #[test]
    fn a_rebuilt_domain_with_the_same_id_starts_fresh_and_old_handles_do_not_touch_it() {
        let mut w = World::new();
        w.grant(D1, 8, PERMIT, D2, RAM + 1);
        let (_, _, old, _) = w.map(D2, EXT, HOST, 8, D1);
        w.gt.domain_destroyed(&mut w.env, D1);
        w.gt.domain_created(&mut w.env, D1, 64, 1024).unwrap();
        assert_eq!(w.flags(D1, 8), 0);
        w.grant(D1, 8, PERMIT, D2, RAM + 1);
        let (_, st, new, _) = w.map(D2, EXT + 0x1000, HOST, 8, D1);
        assert_eq!((st, w.gt.pin(D1, 8)), (0, Some(1)));
        assert_eq!(w.unmap(D2, EXT, old), 0);
        assert_eq!(
            w.gt.pin(D1, 8),
            Some(1),
            "the orphaned handle released nothing"
        );
        assert_eq!(w.unmap(D2, EXT + 0x1000, new), 0);
        assert_eq!(w.gt.pin(D1, 8), Some(0));
    }

    #[test]
    fn destroying_a_mapper_drops_its_pins_so_the_granter_can_revoke() {
        let mut w = World::new();
        w.grant(D1, 8, PERMIT, D2, RAM + 1);
        w.map(D2, EXT, HOST, 8, D1);
        assert_eq!(w.gt.domain_destroyed(&mut w.env, D2), []);
        assert_eq!((w.gt.pin(D1, 8), w.flags(D1, 8)), (Some(0), PERMIT));
        assert!(guest_revokes(w.gt.frame(D1, 0).unwrap(), 8));
    }

    #[test]
    fn a_page_is_in_use_only_while_a_grant_pins_it() {
        let mut w = World::new();
        w.grant(D1, 8, PERMIT, D2, RAM + 1);
        let page = w.ram(D1, RAM + 1);
        assert!(!w.gt.page_in_use(D1, page));
        let (_, _, h, _) = w.map(D2, EXT, HOST, 8, D1);
        assert!(w.gt.page_in_use(D1, page));
        assert!(!w.gt.page_in_use(D2, page));
        w.unmap(D2, EXT, h);
        assert!(!w.gt.page_in_use(D1, page));
    }
}
