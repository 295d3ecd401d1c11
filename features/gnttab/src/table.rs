//! One domain's grant table: its frames (shared with the guest), the
//! hypervisor's active state behind each entry (pin counts, the page
//! pinned), and its maptrack (the mappings it holds of other domains'
//! grants, indexed by handle).

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use oxen_core::xen::DomId;

use crate::abi::{ENTRIES_PER_FRAME, MAPTRACK_PER_FRAME, gntst, gtf};
use crate::env::{Env, GrantFrame};

/// Pin-count layout (Xen's `GNTPIN_*`): four 8-bit counters in one word.
/// Oxen only ever uses the two host-mapping counters: Arm refuses device
/// mappings.
pub(crate) const PIN_HOST_WRITE: u32 = 1;
pub(crate) const PIN_HOST_READ: u32 = 1 << 8;
const PIN_WRITERS: u32 = 0xff | 0xff << 16;

/// The pin increment of one host mapping or copy.
pub(crate) fn pin_incr(readonly: bool) -> u32 {
    if readonly {
        PIN_HOST_READ
    } else {
        PIN_HOST_WRITE
    }
}

/// Whether adding `incr` once more could overflow its 8-bit counter: Xen
/// refuses once a counter reaches 128.
pub(crate) fn pin_would_overflow(pin: u32, incr: u32) -> bool {
    pin & (incr << 7) != 0
}

/// Whether any writable pin is held.
pub(crate) fn has_writers(pin: u32) -> bool {
    pin & PIN_WRITERS != 0
}

/// The hypervisor's view of one grant entry while it is in use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Active<P> {
    /// Pin counts; non-zero while mapped or copied from or to.
    pub pin: u32,
    /// The domain that pinned it: the only one that may pin it again until
    /// the pins drop to zero.
    pub domid: DomId,
    /// The page pinned (set while `pin` is non-zero).
    pub page: Option<P>,
}

/// One mapping a domain holds of another domain's grant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Mapping<P> {
    /// The granting domain; `None` once it was destroyed and the mapping
    /// torn down under the mapper (the handle then only waits to be
    /// unmapped).
    pub granter: Option<DomId>,
    pub gref: u32,
    pub readonly: bool,
    /// Where the page is mapped in the mapper (page-aligned).
    pub gpa: u64,
    pub page: P,
}

/// A frame of the table and where the guest placed it.
pub(crate) struct Placed<F> {
    pub frame: F,
    pub gfn: Option<u64>,
}

/// One domain's grant table.
pub(crate) struct Table<F, P> {
    pub max_frames: u32,
    pub max_maptrack_frames: u32,
    pub frames: Vec<Placed<F>>,
    pub active: Vec<Active<P>>,
    /// Indexed by handle; grows by [`MAPTRACK_PER_FRAME`] handles at a
    /// time, up to `max_maptrack_frames` frames' worth.
    pub maptrack: Vec<Option<Mapping<P>>>,
    /// Handles ready for use: fresh ones in order, then freed ones in the
    /// order they were freed, as Xen hands them out.
    free_handles: VecDeque<u32>,
}

impl<F: GrantFrame, P: Copy> Table<F, P> {
    pub fn new(max_frames: u32, max_maptrack_frames: u32) -> Self {
        Self {
            max_frames,
            max_maptrack_frames,
            frames: Vec::new(),
            active: Vec::new(),
            maptrack: Vec::new(),
            free_handles: VecDeque::new(),
        }
    }

    pub fn nr_frames(&self) -> u32 {
        self.frames.len() as u32
    }

    pub fn nr_entries(&self) -> u32 {
        self.nr_frames() * ENTRIES_PER_FRAME
    }

    /// Grows the table to `nr` frames (no-op if it has them). All or
    /// nothing: on allocation failure the frames taken are given back.
    pub fn grow<E: Env<Frame = F, Page = P>>(&mut self, env: &mut E, nr: u32) -> bool {
        let old = self.frames.len();
        while self.nr_frames() < nr {
            match env.alloc_frame() {
                Some(frame) => self.frames.push(Placed { frame, gfn: None }),
                None => {
                    for p in self.frames.drain(old..) {
                        env.free_frame(p.frame);
                    }
                    return false;
                }
            }
        }
        let inactive = Active {
            pin: 0,
            domid: 0,
            page: None,
        };
        // Exactly what the frames need, and a refusal rather than a panic
        // when the heap cannot give it.
        let want = (self.nr_entries() as usize).saturating_sub(self.active.len());
        if self.active.try_reserve_exact(want).is_err() {
            for p in self.frames.drain(old..) {
                env.free_frame(p.frame);
            }
            return false;
        }
        self.active.resize(self.nr_entries() as usize, inactive);
        true
    }

    /// The frame holding entry `gref` and the entry's index in it; `None`
    /// for a reference at or beyond [`Table::nr_entries`].
    pub fn slot(&self, gref: u32) -> Option<(&F, usize)> {
        let per = ENTRIES_PER_FRAME;
        let placed = self.frames.get((gref / per) as usize)?;
        Some((&placed.frame, (gref % per) as usize))
    }

    /// The active state of entry `gref`, if the table has that entry.
    pub fn active(&self, gref: u32) -> Option<Active<P>> {
        self.active.get(gref as usize).copied()
    }

    /// The active state of entry `gref`, to change.
    pub fn active_mut(&mut self, gref: u32) -> Option<&mut Active<P>> {
        self.active.get_mut(gref as usize)
    }

    /// Drops one pin of `gref` (a mapping or copy ended).
    pub fn unpin(&mut self, gref: u32, readonly: bool) {
        if let Some(a) = self.active_mut(gref) {
            a.pin = a.pin.saturating_sub(pin_incr(readonly));
        }
    }

    /// A free mapping handle, growing the maptrack by a frame's worth when
    /// none is left and the limit allows.
    pub fn get_handle(&mut self) -> Option<u32> {
        if self.free_handles.is_empty() {
            let frames = self.maptrack.len() as u32 / MAPTRACK_PER_FRAME;
            let per = MAPTRACK_PER_FRAME as usize;
            // One frame's worth exactly (no doubling), and no handle when
            // the heap cannot give it: the map fails with `no_space`.
            if frames < self.max_maptrack_frames
                && self.maptrack.try_reserve_exact(per).is_ok()
                && self.free_handles.try_reserve_exact(per).is_ok()
            {
                let first = self.maptrack.len() as u32;
                self.maptrack.resize(self.maptrack.len() + per, None);
                self.free_handles.extend(first..first + MAPTRACK_PER_FRAME);
            }
        }
        self.free_handles.pop_front()
    }

    /// Frees `handle` (its mapping is gone).
    pub fn put_handle(&mut self, handle: u32) {
        if let Some(m) = self.maptrack.get_mut(handle as usize) {
            *m = None;
            self.free_handles.push_back(handle);
        }
    }

    /// Marks entry `gref` as being read (and written unless `readonly`) by
    /// `user`, after checking the entry grants it that, as Xen's
    /// `_set_status_v1`: the type and domid are only checked while the
    /// entry is not pinned yet; `mapping` also refuses sub-page grants.
    /// The guest may race the update, so it retries a few times.
    pub fn set_status(
        &self,
        gref: u32,
        user: DomId,
        readonly: bool,
        mapping: bool,
    ) -> Result<(), i16> {
        let pinned = self.active(gref).ok_or(gntst::BAD_GNTREF)?.pin != 0;
        let (frame, i) = self.slot(gref).ok_or(gntst::BAD_GNTREF)?;
        let type_mask = gtf::TYPE_MASK | if mapping { gtf::SUB_PAGE } else { 0 };
        let mut current = frame.header(i);
        for _ in 0..5 {
            let (flags, domid) = (current as u16, (current >> 16) as u16);
            if !pinned && (flags & type_mask != gtf::PERMIT_ACCESS || domid != user) {
                return Err(gntst::GENERAL_ERROR);
            }
            let mut new = flags | gtf::READING;
            if !readonly {
                if flags & gtf::READONLY != 0 {
                    return Err(gntst::GENERAL_ERROR);
                }
                new |= gtf::WRITING;
            }
            let new = (current & 0xffff_0000) | u32::from(new);
            let seen = frame.compare_exchange_header(i, current, new);
            if seen == current {
                return Ok(());
            }
            current = seen;
        }
        // The guest keeps changing the entry under us.
        Err(gntst::GENERAL_ERROR)
    }

    /// Clears `GTF_reading` once no pin is left and `GTF_writing` once no
    /// writable pin is left (the latter only after a writable use).
    pub fn reduce_status(&self, gref: u32, readonly: bool) {
        let Some(Active { pin, .. }) = self.active(gref) else {
            return;
        };
        let mut clear = 0;
        if pin == 0 {
            clear |= gtf::READING;
        }
        if !readonly && !has_writers(pin) {
            clear |= gtf::WRITING;
        }
        if clear != 0
            && let Some((frame, i)) = self.slot(gref)
        {
            frame.clear_flags(i, clear);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_overflow_is_refused_at_128_of_either_counter() {
        assert!(!pin_would_overflow(127 * PIN_HOST_READ, PIN_HOST_READ));
        assert!(pin_would_overflow(128 * PIN_HOST_READ, PIN_HOST_READ));
        assert!(!pin_would_overflow(128 * PIN_HOST_READ, PIN_HOST_WRITE));
        assert!(pin_would_overflow(128 * PIN_HOST_WRITE, PIN_HOST_WRITE));
    }

    #[test]
    fn only_write_pins_count_as_writers() {
        assert!(!has_writers(5 * PIN_HOST_READ));
        assert!(has_writers(PIN_HOST_WRITE));
    }
}
