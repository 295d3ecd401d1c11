//! `grant_table_op` (hypercall 20): decoding each sub-op's argument array,
//! running it against the grant tables as Xen does on Arm, and writing the
//! per-element status back.

use oxen_core::xen::errno::{EFAULT, EILSEQ, EINVAL, ENOSYS, EOPNOTSUPP, EPERM, ESRCH, Errno};
use oxen_core::xen::{DOMID_SELF, DomId};

use crate::abi::{
    self, INVALID_GFN, PAGE_SIZE, arg_size, cache, cmd, get, gntcopy, gntmap, gntst, put,
};
use crate::env::{CacheOp, Env, GrantFrame};
use crate::table::{Active, Mapping, has_writers, pin_incr, pin_would_overflow};
use crate::tables::GrantTables;

/// Most elements of a batched sub-op (map, unmap, copy, swap,
/// cache_flush) that [`arg_bytes`] asks the caller to copy in at once.
pub const MAX_BATCH: u32 = 256;

/// How many bytes at the guest's argument pointer `grant_table_op(cmd, _,
/// count)` reads and writes back: copy that many in before calling
/// [`GrantTables::grant_table_op`] and out after it. Batches are capped at
/// [`MAX_BATCH`] elements (see the return value of `grant_table_op`); 0
/// when the call fails before reading anything.
pub fn arg_bytes(cmd: u64, count: u64) -> usize {
    let (cmd, count) = (cmd as u32, count as u32);
    let op = cmd & cmd::MASK;
    if (count as i32) < 0 || (op != cmd::CACHE_FLUSH && cmd >> cmd::ARG_SHIFT != 0) {
        return 0;
    }
    let Some(size) = arg_size(op) else { return 0 };
    let elements = match op {
        cmd::QUERY_SIZE | cmd::SETUP_TABLE | cmd::GET_STATUS_FRAMES => u32::from(count == 1),
        // Xen reads exactly one element whatever the count.
        cmd::SET_VERSION | cmd::GET_VERSION => 1,
        _ => count.min(MAX_BATCH),
    };
    elements as usize * size
}

/// One side of a `copy`.
#[derive(Debug, Clone, Copy)]
struct CopyPtr {
    /// A grant reference (low 32 bits) or a guest frame, by the op's flags.
    ref_or_gmfn: u64,
    domid: DomId,
    offset: usize,
}

impl CopyPtr {
    fn read(el: &[u8], at: usize) -> Self {
        Self {
            ref_or_gmfn: get::<8>(el, at + abi::copy::PTR_REF_OR_GMFN),
            domid: get::<2>(el, at + abi::copy::PTR_DOMID) as DomId,
            offset: get::<2>(el, at + abi::copy::PTR_OFFSET) as usize,
        }
    }

    fn gref(&self) -> u32 {
        self.ref_or_gmfn as u32
    }
}

/// Runs `f` on each of the `count` elements of `size` bytes in `args`:
/// 0 when all were done, the number done when `args` held fewer, the
/// first error `f` returns (elements before it stay done).
fn each(
    args: &mut [u8],
    count: u32,
    size: usize,
    mut f: impl FnMut(&mut [u8]) -> Result<(), Errno>,
) -> i64 {
    let fits = (args.len() / size).min(count as usize);
    if count > 0 && fits == 0 {
        return EFAULT.ret();
    }
    for el in args.chunks_exact_mut(size).take(fits) {
        if let Err(e) = f(el) {
            return e.ret();
        }
    }
    if fits < count as usize {
        fits as i64
    } else {
        0
    }
}

/// The single element of a non-batched sub-op.
fn one(args: &mut [u8], size: usize) -> Result<&mut [u8], Errno> {
    args.get_mut(..size).ok_or(EFAULT)
}

fn status(el: &mut [u8], off: usize, st: i16) {
    put::<2>(el, off, st as u16 as u64);
}

impl<F: GrantFrame, P: Copy + PartialEq> GrantTables<F, P> {
    /// `grant_table_op(cmd, uop, count)` from `caller`, with `args` holding
    /// the [`arg_bytes`]`(cmd, count)` bytes copied from `uop`; statuses
    /// and outputs are written into `args`, to be copied back.
    ///
    /// Returns x0: 0, a negated errno, or — for a batch larger than `args`
    /// holds — the number `n > 0` of elements done: the caller copies them
    /// back and continues with `uop` advanced by `n` elements and `count -
    /// n` (looping, or restarting the hypercall as Xen's continuations do).
    /// `cmd` and `count` are the raw registers; like Xen, only their low 32
    /// bits count.
    pub fn grant_table_op<E: Env<Frame = F, Page = P>>(
        &mut self,
        env: &mut E,
        caller: DomId,
        cmd: u64,
        count: u64,
        args: &mut [u8],
    ) -> i64 {
        let (cmd, count) = (cmd as u32, count as u32);
        if !self.tables.contains_key(&caller) {
            // As a Xen built without grant tables.
            return ENOSYS.ret();
        }
        if (count as i32) < 0 {
            return EINVAL.ret();
        }
        let (op, opaque) = (cmd & cmd::MASK, cmd >> cmd::ARG_SHIFT);
        if op != cmd::CACHE_FLUSH && opaque != 0 {
            return EINVAL.ret();
        }
        let result = match op {
            cmd::MAP_GRANT_REF => {
                return each(args, count, abi::map::SIZE, |el| {
                    self.map_grant_ref(env, caller, el);
                    Ok(())
                });
            }
            cmd::UNMAP_GRANT_REF => {
                return each(args, count, abi::unmap::SIZE, |el| {
                    let host_addr = get::<8>(el, abi::unmap::HOST_ADDR);
                    let handle = get::<4>(el, abi::unmap::HANDLE) as u32;
                    let st = self.unmap(env, caller, host_addr, 0, handle);
                    status(el, abi::unmap::STATUS, st);
                    Ok(())
                });
            }
            cmd::UNMAP_AND_REPLACE => {
                return each(args, count, abi::unmap_and_replace::SIZE, |el| {
                    let host_addr = get::<8>(el, abi::unmap_and_replace::HOST_ADDR);
                    let new_addr = get::<8>(el, abi::unmap_and_replace::NEW_ADDR);
                    let handle = get::<4>(el, abi::unmap_and_replace::HANDLE) as u32;
                    let st = self.unmap(env, caller, host_addr, new_addr, handle);
                    status(el, abi::unmap_and_replace::STATUS, st);
                    Ok(())
                });
            }
            cmd::COPY => {
                return each(args, count, abi::copy::SIZE, |el| {
                    let st = self.copy(env, caller, el);
                    status(el, abi::copy::STATUS, st);
                    Ok(())
                });
            }
            cmd::SWAP_GRANT_REF => {
                return each(args, count, abi::swap_grant_ref::SIZE, |el| {
                    let a = get::<4>(el, abi::swap_grant_ref::REF_A) as u32;
                    let b = get::<4>(el, abi::swap_grant_ref::REF_B) as u32;
                    let st = self.swap(caller, a, b);
                    status(el, abi::swap_grant_ref::STATUS, st);
                    Ok(())
                });
            }
            cmd::CACHE_FLUSH => {
                let mut cur_ref = opaque;
                return each(args, count, abi::cache_flush::SIZE, |el| {
                    let r = self.cache_flush(env, caller, el, cur_ref);
                    cur_ref = 0;
                    r
                });
            }
            cmd::QUERY_SIZE => self.query_size(caller, count, args),
            cmd::SETUP_TABLE => self.setup_table(env, caller, count, args),
            cmd::GET_STATUS_FRAMES => self.get_status_frames(caller, count, args),
            cmd::SET_VERSION => set_version(args),
            cmd::GET_VERSION => self.get_version(caller, args),
            // Arm has no PV guests, and Xen offers transfer only to those.
            cmd::TRANSFER => Err(EOPNOTSUPP),
            // dump_table included: Xen no longer implements it.
            _ => Err(ENOSYS),
        };
        match result {
            Ok(()) => 0,
            Err(e) => e.ret(),
        }
    }

    /// `DOMID_SELF` or the caller's own ID, for sub-ops that may name only
    /// the caller (an unprivileged domain, as every Oxen domain is).
    fn own_domain(&self, caller: DomId, dom: DomId) -> Result<DomId, i16> {
        let d = if dom == DOMID_SELF { caller } else { dom };
        if !self.tables.contains_key(&d) {
            Err(gntst::BAD_DOMAIN)
        } else if d != caller {
            Err(gntst::PERMISSION_DENIED)
        } else {
            Ok(d)
        }
    }

    fn query_size(&self, caller: DomId, count: u32, args: &mut [u8]) -> Result<(), Errno> {
        use abi::query_size::{DOM, MAX_NR_FRAMES, NR_FRAMES, SIZE, STATUS};
        if count != 1 {
            return Err(EINVAL);
        }
        let el = one(args, SIZE)?;
        match self.own_domain(caller, get::<2>(el, DOM) as DomId) {
            Ok(d) => {
                let (nr, max) = self
                    .tables
                    .get(&d)
                    .map_or((0, 0), |t| (t.nr_frames(), t.max_frames));
                put::<4>(el, NR_FRAMES, u64::from(nr));
                put::<4>(el, MAX_NR_FRAMES, u64::from(max));
                status(el, STATUS, gntst::OKAY);
            }
            Err(st) => status(el, STATUS, st),
        }
        Ok(())
    }

    /// Grows the table to `nr_frames` and lists where each frame is placed
    /// in the guest (`INVALID_GFN` where it is not): Arm guests obtain
    /// frames only through `add_to_physmap`.
    fn setup_table<E: Env<Frame = F, Page = P>>(
        &mut self,
        env: &mut E,
        caller: DomId,
        count: u32,
        args: &mut [u8],
    ) -> Result<(), Errno> {
        use abi::setup_table::{DOM, FRAME_LIST, NR_FRAMES, SIZE, STATUS};
        if count != 1 {
            return Err(EINVAL);
        }
        let el = one(args, SIZE)?;
        let nr = get::<4>(el, NR_FRAMES) as u32;
        let list = get::<8>(el, FRAME_LIST);
        let d = match self.own_domain(caller, get::<2>(el, DOM) as DomId) {
            Ok(d) => d,
            Err(st) => {
                status(el, STATUS, st);
                return Ok(());
            }
        };
        let Some(t) = self.tables.get_mut(&d) else {
            status(el, STATUS, gntst::BAD_DOMAIN);
            return Ok(());
        };
        if nr > t.max_frames || !t.grow(env, nr) {
            status(el, STATUS, gntst::GENERAL_ERROR);
            return Ok(());
        }
        let bytes: alloc::vec::Vec<u8> = t
            .frames
            .iter()
            .take(nr as usize)
            .flat_map(|p| p.gfn.unwrap_or(INVALID_GFN).to_le_bytes())
            .collect();
        let st = if nr > 0 && env.write_guest(caller, list, &bytes).is_err() {
            gntst::BAD_VIRT_ADDR
        } else {
            gntst::OKAY
        };
        status(el, STATUS, st);
        Ok(())
    }

    /// Version 1 has no status frames: only a request for none succeeds.
    fn get_status_frames(&self, caller: DomId, count: u32, args: &mut [u8]) -> Result<(), Errno> {
        use abi::get_status_frames::{DOM, NR_FRAMES, SIZE, STATUS};
        if count != 1 {
            return Err(EINVAL);
        }
        let el = one(args, SIZE)?;
        let st = match self.own_domain(caller, get::<2>(el, DOM) as DomId) {
            Ok(_) if get::<4>(el, NR_FRAMES) > 0 => gntst::GENERAL_ERROR,
            Ok(_) => gntst::OKAY,
            Err(st) => st,
        };
        status(el, STATUS, st);
        Ok(())
    }

    fn get_version(&self, caller: DomId, args: &mut [u8]) -> Result<(), Errno> {
        use abi::get_version::{DOM, SIZE, VERSION};
        let el = one(args, SIZE)?;
        match self.own_domain(caller, get::<2>(el, DOM) as DomId) {
            Ok(_) => {
                put::<4>(el, VERSION, u64::from(abi::VERSION));
                Ok(())
            }
            Err(gntst::BAD_DOMAIN) => Err(ESRCH),
            Err(_) => Err(EPERM),
        }
    }

    fn map_grant_ref<E: Env<Frame = F, Page = P>>(
        &mut self,
        env: &mut E,
        caller: DomId,
        el: &mut [u8],
    ) {
        use abi::map::{DEV_BUS_ADDR, DOM, FLAGS, HANDLE, HOST_ADDR, REF, STATUS};
        let host_addr = get::<8>(el, HOST_ADDR);
        let flags = get::<4>(el, FLAGS) as u32;
        let gref = get::<4>(el, REF) as u32;
        let dom = get::<2>(el, DOM) as DomId;
        match self.map(env, caller, host_addr, flags, gref, dom) {
            Ok((handle, addr)) => {
                put::<4>(el, HANDLE, u64::from(handle));
                put::<8>(el, DEV_BUS_ADDR, addr);
                status(el, STATUS, gntst::OKAY);
            }
            Err(st) => status(el, STATUS, st),
        }
    }

    /// One `map_grant_ref`, checked in Xen's order; returns the handle and
    /// the page's host address.
    fn map<E: Env<Frame = F, Page = P>>(
        &mut self,
        env: &mut E,
        caller: DomId,
        host_addr: u64,
        flags: u32,
        gref: u32,
        dom: DomId,
    ) -> Result<(u32, u64), i16> {
        if flags & (gntmap::DEVICE_MAP | gntmap::HOST_MAP) == 0 {
            return Err(gntst::BAD_GNTREF);
        }
        // Translated guests have no device or PTE mappings.
        if flags & (gntmap::DEVICE_MAP | gntmap::APPLICATION_MAP | gntmap::CONTAINS_PTE) != 0 {
            return Err(gntst::GENERAL_ERROR);
        }
        // A real domain ID: DOMID_SELF is not one here.
        if !self.tables.contains_key(&dom) {
            return Err(gntst::BAD_DOMAIN);
        }
        if dom != caller && !env.may_connect(caller, dom) {
            return Err(gntst::PERMISSION_DENIED);
        }
        let mapper = self.tables.get_mut(&caller).ok_or(gntst::BAD_DOMAIN)?;
        let handle = mapper.get_handle().ok_or(gntst::NO_SPACE)?;
        let result = self.pin_and_map(env, caller, host_addr, flags, gref, dom);
        let mapper = self.tables.get_mut(&caller).ok_or(gntst::BAD_DOMAIN)?;
        match (result, mapper.maptrack.get_mut(handle as usize)) {
            (Ok(m), Some(slot)) => {
                *slot = Some(m);
                Ok((handle, env.page_address(m.page)))
            }
            (Err(st), _) => {
                mapper.put_handle(handle);
                Err(st)
            }
            // Cannot happen: `get_handle` hands out handles inside the
            // maptrack. Undo the mapping rather than lose it.
            (Ok(m), None) => {
                let _ = env.unmap_foreign(caller, m.gpa, m.page);
                if let Some(g) = self.tables.get_mut(&dom) {
                    g.unpin(gref, m.readonly);
                    g.reduce_status(gref, m.readonly);
                }
                Err(gntst::GENERAL_ERROR)
            }
        }
    }

    fn pin_and_map<E: Env<Frame = F, Page = P>>(
        &mut self,
        env: &mut E,
        caller: DomId,
        host_addr: u64,
        flags: u32,
        gref: u32,
        dom: DomId,
    ) -> Result<Mapping<P>, i16> {
        let readonly = flags & gntmap::READONLY != 0;
        let incr = pin_incr(readonly);
        let t = self.tables.get_mut(&dom).ok_or(gntst::BAD_DOMAIN)?;
        let act = t.active(gref).ok_or(gntst::BAD_GNTREF)?;
        if act.pin != 0 && (act.domid != caller || pin_would_overflow(act.pin, incr)) {
            return Err(gntst::GENERAL_ERROR);
        }
        if act.pin == 0 || (!readonly && !has_writers(act.pin)) {
            t.set_status(gref, caller, readonly, true)?;
            if act.pin == 0 {
                let gfn = t
                    .slot(gref)
                    .map_or(u64::MAX, |(f, i)| u64::from(f.frame(i)));
                let Some(page) = env.own_page(dom, gfn, !readonly) else {
                    t.reduce_status(gref, readonly);
                    return Err(gntst::BAD_PAGE);
                };
                if let Some(a) = t.active_mut(gref) {
                    *a = Active {
                        pin: 0,
                        domid: caller,
                        page: Some(page),
                    };
                }
            }
        }
        let a = t.active_mut(gref).ok_or(gntst::BAD_GNTREF)?;
        // A pinned entry always has its page: set above when the pin was 0.
        let Some(page) = a.page else {
            return Err(gntst::GENERAL_ERROR);
        };
        a.pin += incr;
        let gpa = host_addr & !(PAGE_SIZE as u64 - 1);
        // Arm's create_grant_host_mapping takes nothing but a host mapping.
        let created = if flags & !gntmap::READONLY != gntmap::HOST_MAP {
            Err(gntst::GENERAL_ERROR)
        } else {
            env.map_foreign(caller, gpa, page, readonly)
                .map_err(|_| gntst::GENERAL_ERROR)
        };
        if let Err(st) = created {
            t.unpin(gref, readonly);
            t.reduce_status(gref, readonly);
            return Err(st);
        }
        Ok(Mapping {
            granter: Some(dom),
            gref,
            readonly,
            gpa,
            page,
        })
    }

    /// One `unmap_grant_ref` (`new_addr` 0) or `unmap_and_replace`.
    fn unmap<E: Env<Frame = F, Page = P>>(
        &mut self,
        env: &mut E,
        caller: DomId,
        host_addr: u64,
        new_addr: u64,
        handle: u32,
    ) -> i16 {
        let Some(mapper) = self.tables.get_mut(&caller) else {
            return gntst::BAD_DOMAIN;
        };
        let Some(&Some(m)) = mapper.maptrack.get(handle as usize) else {
            return gntst::BAD_HANDLE;
        };
        let Some(granter) = m.granter else {
            // The granter is gone and the page was unmapped then.
            mapper.put_handle(handle);
            return gntst::OKAY;
        };
        // Xen unmaps nothing without an address, and succeeds.
        if host_addr == 0 {
            return gntst::OKAY;
        }
        // Arm cannot replace a grant mapping with another page.
        if new_addr != 0 {
            return gntst::GENERAL_ERROR;
        }
        if host_addr & !(PAGE_SIZE as u64 - 1) != m.gpa
            || env.unmap_foreign(caller, m.gpa, m.page).is_err()
        {
            return gntst::GENERAL_ERROR;
        }
        mapper.put_handle(handle);
        if let Some(g) = self.tables.get_mut(&granter) {
            g.unpin(m.gref, m.readonly);
            g.reduce_status(m.gref, m.readonly);
        }
        gntst::OKAY
    }

    /// The domain one side of a copy names: only `DOMID_SELF` may be
    /// addressed by frame number.
    fn copy_domain(&self, caller: DomId, ptr: &CopyPtr, by_gref: bool) -> Result<DomId, i16> {
        if ptr.domid != DOMID_SELF && !by_gref {
            return Err(gntst::PERMISSION_DENIED);
        }
        let d = if ptr.domid == DOMID_SELF {
            caller
        } else {
            ptr.domid
        };
        if self.tables.contains_key(&d) {
            Ok(d)
        } else {
            Err(gntst::BAD_DOMAIN)
        }
    }

    /// One `copy` element; returns its status.
    fn copy<E: Env<Frame = F, Page = P>>(&mut self, env: &mut E, caller: DomId, el: &[u8]) -> i16 {
        use abi::copy::{DEST, FLAGS, LEN, SOURCE};
        let src = CopyPtr::read(el, SOURCE);
        let dst = CopyPtr::read(el, DEST);
        let len = get::<2>(el, LEN) as usize;
        let flags = get::<2>(el, FLAGS) as u16;
        if len == 0 {
            return gntst::OKAY;
        }
        let src_gref = flags & gntcopy::SOURCE_GREF != 0;
        let dst_gref = flags & gntcopy::DEST_GREF != 0;
        let doms = self
            .copy_domain(caller, &src, src_gref)
            .and_then(|s| Ok((s, self.copy_domain(caller, &dst, dst_gref)?)));
        let (sdom, ddom) = match doms {
            Ok(d) => d,
            Err(st) => return st,
        };
        if [sdom, ddom]
            .iter()
            .any(|&d| d != caller && !env.may_connect(caller, d))
        {
            return gntst::PERMISSION_DENIED;
        }
        let src_page = match self.claim(env, caller, sdom, &src, src_gref, true) {
            Ok(p) => p,
            Err(st) => return st,
        };
        let dst_page = match self.claim(env, caller, ddom, &dst, dst_gref, false) {
            Ok(p) => p,
            Err(st) => {
                self.release(sdom, &src, src_gref, true);
                return st;
            }
        };
        let st = if src.offset + len > PAGE_SIZE || dst.offset + len > PAGE_SIZE {
            gntst::BAD_COPY_ARG
        } else {
            env.copy(src_page, src.offset, dst_page, dst.offset, len);
            gntst::OKAY
        };
        self.release(ddom, &dst, dst_gref, false);
        self.release(sdom, &src, src_gref, true);
        st
    }

    /// The page one side of a copy reaches: a grant of `dom` to the caller
    /// (pinned for the copy) or the caller's own frame.
    fn claim<E: Env<Frame = F, Page = P>>(
        &mut self,
        env: &mut E,
        caller: DomId,
        dom: DomId,
        ptr: &CopyPtr,
        by_gref: bool,
        readonly: bool,
    ) -> Result<P, i16> {
        if !by_gref {
            return env
                .own_page(dom, ptr.ref_or_gmfn, !readonly)
                .ok_or(gntst::BAD_PAGE);
        }
        let gref = ptr.gref();
        let incr = pin_incr(readonly);
        let t = self.tables.get_mut(&dom).ok_or(gntst::BAD_DOMAIN)?;
        let act = t.active(gref).ok_or(gntst::BAD_GNTREF)?;
        if act.pin != 0 && (act.domid != caller || pin_would_overflow(act.pin, incr)) {
            return Err(gntst::GENERAL_ERROR);
        }
        if act.pin == 0 || (!readonly && !has_writers(act.pin)) {
            t.set_status(gref, caller, readonly, false)?;
            let gfn = t
                .slot(gref)
                .map_or(u64::MAX, |(f, i)| u64::from(f.frame(i)));
            // Xen looks the frame up again here even when it is pinned, to
            // check it may now be written.
            let Some(page) = env.own_page(dom, gfn, !readonly) else {
                t.reduce_status(gref, readonly);
                return Err(gntst::BAD_PAGE);
            };
            if act.pin == 0
                && let Some(a) = t.active_mut(gref)
            {
                *a = Active {
                    pin: 0,
                    domid: caller,
                    page: Some(page),
                };
            }
        }
        let a = t.active_mut(gref).ok_or(gntst::BAD_GNTREF)?;
        // A pinned entry always has its page: set above when the pin was 0.
        let Some(page) = a.page else {
            return Err(gntst::GENERAL_ERROR);
        };
        a.pin += incr;
        Ok(page)
    }

    /// Undoes [`Self::claim`] once the copy is done.
    fn release(&mut self, dom: DomId, ptr: &CopyPtr, by_gref: bool, readonly: bool) {
        if !by_gref {
            return;
        }
        if let Some(t) = self.tables.get_mut(&dom) {
            t.unpin(ptr.gref(), readonly);
            t.reduce_status(ptr.gref(), readonly);
        }
    }

    /// Exchanges two entries of the caller's own table.
    fn swap(&mut self, caller: DomId, a: u32, b: u32) -> i16 {
        let Some(t) = self.tables.get(&caller) else {
            return gntst::BAD_DOMAIN;
        };
        let (Some(act_a), Some(act_b), Some((fa, ia)), Some((fb, ib))) =
            (t.active(a), t.active(b), t.slot(a), t.slot(b))
        else {
            return gntst::BAD_GNTREF;
        };
        if a == b {
            return gntst::OKAY;
        }
        if act_a.pin != 0 || act_b.pin != 0 {
            return gntst::EAGAIN;
        }
        let (ea, eb) = (fa.entry(ia), fb.entry(ib));
        fa.store(ia, eb);
        fb.store(ib, ea);
        gntst::OKAY
    }

    /// One `cache_flush` element. Oxen domains are never direct-mapped, so
    /// the only host addresses they learn are those of pages granted to
    /// them (`dev_bus_addr` of `map_grant_ref`): any other address is
    /// `EINVAL`. `cur_ref` is where Xen's continuation resumed the search.
    fn cache_flush<E: Env<Frame = F, Page = P>>(
        &self,
        env: &mut E,
        caller: DomId,
        el: &[u8],
        cur_ref: u32,
    ) -> Result<(), Errno> {
        use abi::cache_flush::{ADDR, LENGTH, OFFSET, OP};
        let addr = get::<8>(el, ADDR);
        let offset = get::<2>(el, OFFSET) as usize;
        let length = get::<2>(el, LENGTH) as usize;
        let op = get::<4>(el, OP) as u32;
        if offset >= PAGE_SIZE
            || length > PAGE_SIZE
            || offset + length > PAGE_SIZE
            || op & !(cache::CLEAN | cache::INVAL) != 0
        {
            return Err(EINVAL);
        }
        if length == 0 || op == 0 {
            return if cur_ref == 0 { Ok(()) } else { Err(EILSEQ) };
        }
        let frame = addr / PAGE_SIZE as u64;
        let page = self
            .tables
            .values()
            .flat_map(|t| t.active.iter().skip(cur_ref as usize))
            .find(|a| {
                a.pin != 0
                    && a.domid == caller
                    && a.page
                        .is_some_and(|p| env.page_address(p) / PAGE_SIZE as u64 == frame)
            })
            .and_then(|a| a.page)
            .ok_or(EINVAL)?;
        let how = CacheOp {
            clean: op & cache::CLEAN != 0,
            invalidate: op & cache::INVAL != 0,
        };
        env.cache_maintenance(page, offset, length, how);
        Ok(())
    }
}

/// Arm offers version 1 only: asking for 2 is `ENOSYS` (as Xen does when
/// the version-2 maximum is off), anything but 1 or 2 `EINVAL`; the
/// version in force is written back in every case.
fn set_version(args: &mut [u8]) -> Result<(), Errno> {
    use abi::set_version::{SIZE, VERSION};
    let el = one(args, SIZE)?;
    let asked = get::<4>(el, VERSION);
    put::<4>(el, VERSION, u64::from(abi::VERSION));
    match asked {
        1 => Ok(()),
        2 => Err(ENOSYS),
        _ => Err(EINVAL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::gtf;
    use crate::fake::*;
    use oxen_core::shared::SharedPage;

    const PERMIT: u16 = gtf::PERMIT_ACCESS;
    const HOST: u32 = gntmap::HOST_MAP;
    const RO: u32 = gntmap::READONLY;
    const SRC_GREF: u16 = gntcopy::SOURCE_GREF;
    const DST_GREF: u16 = gntcopy::DEST_GREF;

    /// D1 grants its page RAM+1 as entry 8 to D2.
    fn granted(flags: u16) -> World {
        let w = World::new();
        w.grant(D1, 8, flags, D2, RAM + 1);
        w
    }

    fn query_size(w: &mut World, caller: DomId, dom: DomId, count: u32) -> (i64, [u8; 16]) {
        let mut b = [0u8; 16];
        b[0..2].copy_from_slice(&dom.to_le_bytes());
        b[4..16].fill(0x55);
        (w.op(caller, 6, count, &mut b), b)
    }

    fn version_op(w: &mut World, cmd: u32, field_at: usize, value: u32) -> (i64, u32) {
        let mut b = [0u8; 8];
        b[field_at..field_at + 4].copy_from_slice(&value.to_le_bytes());
        let rc = w.op(D1, cmd, 1, &mut b);
        (rc, u32_at(&b, field_at))
    }

    fn setup_table(w: &mut World, dom: DomId, nr: u32, list: u64, count: u32) -> (i64, i16) {
        let mut b = [0u8; 24];
        b[0..2].copy_from_slice(&dom.to_le_bytes());
        b[4..8].copy_from_slice(&nr.to_le_bytes());
        b[8..10].copy_from_slice(&0x7777u16.to_le_bytes());
        b[16..24].copy_from_slice(&list.to_le_bytes());
        (w.op(D1, 2, count, &mut b), i16_at(&b, 8))
    }

    fn copy(w: &mut World, caller: DomId, src: Ptr, dst: Ptr, len: u16, flags: u16) -> i16 {
        let mut b = copy_arg(src, dst, len, flags);
        assert_eq!(w.op(caller, 5, 1, &mut b), 0);
        i16_at(&b, 36)
    }

    fn swap(w: &mut World, a: u32, b: u32) -> i16 {
        let mut arg = [0u8; 12];
        arg[0..4].copy_from_slice(&a.to_le_bytes());
        arg[4..8].copy_from_slice(&b.to_le_bytes());
        assert_eq!(w.op(D1, 11, 1, &mut arg), 0);
        i16_at(&arg, 8)
    }

    fn cache_flush(
        w: &mut World,
        caller: DomId,
        cmd: u32,
        addr: u64,
        off: u16,
        len: u16,
        op: u32,
    ) -> i64 {
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&addr.to_le_bytes());
        b[8..10].copy_from_slice(&off.to_le_bytes());
        b[10..12].copy_from_slice(&len.to_le_bytes());
        b[12..16].copy_from_slice(&op.to_le_bytes());
        w.op(caller, cmd, 1, &mut b)
    }

    fn foreign_events(w: &World) -> usize {
        w.env
            .log
            .iter()
            .filter(|e| matches!(e, Event::MapForeign { .. } | Event::UnmapForeign { .. }))
            .count()
    }

    // ---- dispatch, sizes, versions ----

    #[test]
    fn c14_query_size_reports_one_frame_of_at_most_64_at_xens_offsets() {
        let mut w = World::new();
        let (rc, b) = query_size(&mut w, D1, DOMID_SELF, 1);
        assert_eq!(rc, 0);
        assert_eq!((u32_at(&b, 4), u32_at(&b, 8), i16_at(&b, 12)), (1, 64, 0));
    }

    #[test]
    fn c15_query_size_with_a_count_other_than_one_is_einval() {
        let mut w = World::new();
        assert_eq!(query_size(&mut w, D1, DOMID_SELF, 2).0, -22);
        assert_eq!(query_size(&mut w, D1, DOMID_SELF, 0).0, -22);
    }

    #[test]
    fn query_size_of_another_domain_is_denied_and_of_a_missing_one_bad_domain() {
        let mut w = World::new();
        let (rc, b) = query_size(&mut w, D1, D2, 1);
        assert_eq!((rc, i16_at(&b, 12)), (0, gntst::PERMISSION_DENIED));
        assert_eq!(u32_at(&b, 4), 0x5555_5555, "sizes are not written");
        let (rc, b) = query_size(&mut w, D1, 99, 1);
        assert_eq!((rc, i16_at(&b, 12)), (0, gntst::BAD_DOMAIN));
        let (_, b) = query_size(&mut w, D1, D1, 1);
        assert_eq!(i16_at(&b, 12), 0, "its own ID is as good as DOMID_SELF");
    }

    #[test]
    fn c16_set_version_1_is_accepted_2_is_enosys_3_is_einval_and_1_reads_back() {
        let mut w = World::new();
        assert_eq!(version_op(&mut w, 8, 0, 1), (0, 1));
        assert_eq!(version_op(&mut w, 8, 0, 2), (-38, 1));
        assert_eq!(version_op(&mut w, 8, 0, 3), (-22, 1));
        assert_eq!(version_op(&mut w, 8, 0, 0), (-22, 1));
    }

    #[test]
    fn c17_get_version_is_1_at_offset_4_for_self_only() {
        let mut w = World::new();
        let mut b = [0u8; 8];
        b[0..2].copy_from_slice(&DOMID_SELF.to_le_bytes());
        assert_eq!(w.op(D1, 10, 1, &mut b), 0);
        assert_eq!((u32_at(&b, 4), u16::from_le_bytes([b[2], b[3]])), (1, 0));
        b[0..2].copy_from_slice(&D2.to_le_bytes());
        assert_eq!(w.op(D1, 10, 1, &mut b), -1, "EPERM");
        b[0..2].copy_from_slice(&99u16.to_le_bytes());
        assert_eq!(w.op(D1, 10, 1, &mut b), -3, "ESRCH");
    }

    #[test]
    fn set_and_get_version_read_one_element_whatever_the_count() {
        let mut w = World::new();
        let mut b = [0u8; 8];
        b[0..4].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(w.op(D1, 8, 0, &mut b), -22);
        assert_eq!(u32_at(&b, 0), 1);
    }

    #[test]
    fn a_negative_count_is_einval_for_every_sub_op() {
        let mut w = World::new();
        for cmd in 0..=13 {
            let mut b = [0u8; 64];
            assert_eq!(w.op(D1, cmd, 0x8000_0000, &mut b), -22, "sub-op {cmd}");
        }
    }

    #[test]
    fn only_the_low_32_bits_of_cmd_and_count_count() {
        let mut w = World::new();
        let mut b = [0u8; 16];
        b[0..2].copy_from_slice(&DOMID_SELF.to_le_bytes());
        let rc =
            w.gt.grant_table_op(&mut w.env, D1, 6 | 1 << 32, 1 | 1 << 32, &mut b);
        assert_eq!((rc, u32_at(&b, 8)), (0, 64));
    }

    #[test]
    fn continuation_bits_are_einval_except_on_cache_flush() {
        let mut w = World::new();
        let (rc, _) = query_size(&mut w, D1, DOMID_SELF, 1);
        assert_eq!(rc, 0);
        let mut b = [0u8; 16];
        assert_eq!(w.op(D1, 1 << 12 | 6, 1, &mut b), -22);
        assert_eq!(w.op(D1, 1 << 12 | 12, 0, &mut b), 0);
    }

    #[test]
    fn unknown_sub_ops_and_dump_table_are_enosys() {
        let mut w = World::new();
        for cmd in [3, 13, 99, 0xfff] {
            let mut b = [0u8; 64];
            assert_eq!(w.op(D1, cmd, 1, &mut b), -38, "sub-op {cmd}");
        }
    }

    #[test]
    fn transfer_is_eopnotsupp_whatever_the_count() {
        let mut w = World::new();
        let mut b = [0u8; 24];
        assert_eq!(w.op(D1, 4, 1, &mut b), -95);
        assert_eq!(w.op(D1, 4, 0, &mut b), -95);
    }

    #[test]
    fn a_domain_without_a_grant_table_gets_enosys() {
        let mut w = World::new();
        let (rc, _) = query_size(&mut w, 9, DOMID_SELF, 1);
        assert_eq!(rc, -38);
    }

    #[test]
    fn setup_table_grows_the_table_and_lists_placed_gfns_and_invalid_gfn_for_the_rest() {
        let mut w = World::new();
        w.gt.add_to_physmap(&mut w.env, D1, 0, 0x38000).unwrap();
        assert_eq!(setup_table(&mut w, DOMID_SELF, 3, 0x1000, 1), (0, 0));
        let mut want = alloc::vec::Vec::new();
        for gfn in [0x38000u64, u64::MAX, u64::MAX] {
            want.extend_from_slice(&gfn.to_le_bytes());
        }
        assert_eq!(w.env.guest_writes[&(D1, 0x1000)], want);
        assert_eq!(w.gt.nr_frames(D1), Some(3));
    }

    #[test]
    fn setup_table_errors_are_xens() {
        let mut w = World::new();
        assert_eq!(
            setup_table(&mut w, DOMID_SELF, 65, 0x1000, 1),
            (0, gntst::GENERAL_ERROR)
        );
        assert_eq!(setup_table(&mut w, DOMID_SELF, 1, 0x1000, 2).0, -22);
        assert_eq!(
            setup_table(&mut w, DOMID_SELF, 1, BAD_VA, 1),
            (0, gntst::BAD_VIRT_ADDR)
        );
        assert_eq!(
            setup_table(&mut w, D2, 1, 0x1000, 1),
            (0, gntst::PERMISSION_DENIED)
        );
        assert_eq!(
            setup_table(&mut w, 99, 1, 0x1000, 1),
            (0, gntst::BAD_DOMAIN)
        );
        w.env.frames_left = Some(0);
        assert_eq!(
            setup_table(&mut w, DOMID_SELF, 2, 0x1000, 1),
            (0, gntst::GENERAL_ERROR)
        );
        assert_eq!(w.gt.nr_frames(D1), Some(1));
    }

    #[test]
    fn get_status_frames_has_none_to_give_in_version_1() {
        let mut w = World::new();
        let call = |w: &mut World, nr: u32, count: u32| {
            let mut b = [0u8; 16];
            b[0..4].copy_from_slice(&nr.to_le_bytes());
            b[4..6].copy_from_slice(&DOMID_SELF.to_le_bytes());
            b[6..8].copy_from_slice(&0x7777u16.to_le_bytes());
            (w.op(D1, 9, count, &mut b), i16_at(&b, 6))
        };
        assert_eq!(call(&mut w, 0, 1), (0, 0));
        assert_eq!(call(&mut w, 1, 1), (0, gntst::GENERAL_ERROR));
        assert_eq!(call(&mut w, 0, 2).0, -22);
    }

    #[test]
    fn arg_bytes_is_what_each_sub_op_reads() {
        assert_eq!(arg_bytes(0, 3), 96);
        assert_eq!(arg_bytes(5, 1000), 256 * 40);
        assert_eq!(arg_bytes(6, 1), 16);
        assert_eq!(arg_bytes(6, 2), 0);
        assert_eq!(arg_bytes(8, 0), 4);
        assert_eq!(arg_bytes(10, 7), 8);
        assert_eq!(arg_bytes(4, 1), 0);
        assert_eq!(arg_bytes(3, 1), 0);
        assert_eq!(arg_bytes(0, 0x8000_0000), 0);
        assert_eq!(arg_bytes(1 << 12 | 1, 1), 0);
        assert_eq!(arg_bytes(1 << 12 | 12, 1), 16);
    }

    #[test]
    fn a_batch_longer_than_the_buffer_does_what_fits_and_says_how_many() {
        let mut w = granted(PERMIT);
        let mut b = [0u8; 64];
        b[..32].copy_from_slice(&map_arg(EXT, HOST, 8, D1));
        b[32..].copy_from_slice(&map_arg(EXT + 0x1000, HOST, 8, D1));
        assert_eq!(w.op(D2, 0, 3, &mut b), 2);
        assert_eq!((map_result(&b[..32]).0, map_result(&b[32..]).0), (0, 0));
        assert_eq!(w.op(D2, 0, 1, &mut []), -14, "EFAULT");
        assert_eq!(w.op(D2, 0, 0, &mut []), 0);
    }

    // ---- map_grant_ref ----

    #[test]
    fn c45_device_pte_and_application_mappings_are_general_errors() {
        let mut w = granted(PERMIT);
        for flags in [
            HOST | gntmap::CONTAINS_PTE,
            gntmap::DEVICE_MAP,
            HOST | gntmap::APPLICATION_MAP,
        ] {
            let (rc, st, _, _) = w.map(D2, EXT, flags, 8, D1);
            assert_eq!((rc, st), (0, -1), "flags {flags:#x}");
        }
        assert_eq!(foreign_events(&w), 0);
        assert_eq!(w.flags(D1, 8), PERMIT);
    }

    #[test]
    fn c46_map_without_host_or_device_flag_is_bad_gntref() {
        let mut w = granted(PERMIT);
        assert_eq!(w.map(D2, EXT, 0, 8, D1).1, -3);
        assert_eq!(w.map(D2, EXT, gntmap::APPLICATION_MAP, 8, D1).1, -3);
    }

    #[test]
    fn map_naming_domid_self_or_a_missing_domain_is_bad_domain() {
        let mut w = granted(PERMIT);
        assert_eq!(w.map(D2, EXT, HOST, 8, DOMID_SELF).1, gntst::BAD_DOMAIN);
        assert_eq!(w.map(D2, EXT, HOST, 8, 99).1, gntst::BAD_DOMAIN);
    }

    #[test]
    fn map_between_domains_the_connection_policy_keeps_apart_is_permission_denied() {
        let mut w = granted(PERMIT);
        w.env.denied.push((D1, D2));
        assert_eq!(w.map(D2, EXT, HOST, 8, D1).1, gntst::PERMISSION_DENIED);
        assert_eq!(w.flags(D1, 8), PERMIT);
    }

    #[test]
    fn map_of_a_ref_beyond_the_table_is_bad_gntref_and_leaks_no_handle() {
        let mut w = World::with_limits(64, 1);
        w.grant(D1, 8, PERMIT, D2, RAM + 1);
        for _ in 0..300 {
            assert_eq!(w.map(D2, EXT, HOST, 512, D1).1, gntst::BAD_GNTREF);
        }
        assert_eq!(w.map(D2, EXT, HOST, 8, D1).1, 0);
    }

    #[test]
    fn map_of_a_grant_to_another_domain_is_general_error_and_leaves_the_entry() {
        let mut w = World::new();
        w.grant(D1, 8, PERMIT, D3, RAM + 1);
        assert_eq!(w.map(D2, EXT, HOST, 8, D1).1, gntst::GENERAL_ERROR);
        assert_eq!(w.flags(D1, 8), PERMIT);
        assert_eq!(w.gt.pin(D1, 8), Some(0));
    }

    #[test]
    fn map_of_an_entry_that_does_not_permit_access_is_general_error() {
        for flags in [
            gtf::INVALID,
            gtf::ACCEPT_TRANSFER,
            gtf::TRANSITIVE,
            PERMIT | gtf::SUB_PAGE,
        ] {
            let mut w = granted(flags);
            assert_eq!(w.map(D2, EXT, HOST | RO, 8, D1).1, -1, "flags {flags:#x}");
            assert_eq!(w.flags(D1, 8), flags);
        }
    }

    #[test]
    fn read_only_grant_mapped_writable_is_general_error_and_read_only_works() {
        let mut w = granted(PERMIT | gtf::READONLY);
        assert_eq!(w.map(D2, EXT, HOST, 8, D1).1, gntst::GENERAL_ERROR);
        assert_eq!(w.flags(D1, 8), PERMIT | gtf::READONLY);
        assert_eq!(foreign_events(&w), 0);
        let (rc, st, _, _) = w.map(D2, EXT, HOST | RO, 8, D1);
        assert_eq!((rc, st), (0, 0));
        assert_eq!(w.flags(D1, 8), PERMIT | gtf::READONLY | gtf::READING);
        assert!(!w.env.at(D2, EXT >> 12).unwrap().writable);
        assert_eq!(w.env.write(D2, EXT, b"x"), Err("permission fault"));
    }

    #[test]
    fn a_granted_frame_that_is_not_ram_is_bad_page_and_the_in_use_flags_are_cleared() {
        let mut w = World::new();
        w.grant(D1, 8, PERMIT, D2, 0x9_9999);
        assert_eq!(w.map(D2, EXT, HOST, 8, D1).1, gntst::BAD_PAGE);
        assert_eq!(w.flags(D1, 8), PERMIT);
        assert_eq!(w.gt.pin(D1, 8), Some(0));
    }

    #[test]
    fn a_page_the_granter_maps_from_elsewhere_cannot_be_granted_on() {
        let mut w = granted(PERMIT);
        assert_eq!(w.map(D2, EXT, HOST, 8, D1).1, 0);
        // D2 re-grants the foreign page it now maps to D3.
        w.grant(D2, 8, PERMIT, D3, EXT >> 12);
        assert_eq!(w.map(D3, EXT, HOST, 8, D2).1, gntst::BAD_PAGE);
    }

    #[test]
    fn map_onto_an_address_in_use_is_general_error_and_unpins() {
        let mut w = granted(PERMIT);
        assert_eq!(w.map(D2, RAM << 12, HOST, 8, D1).1, gntst::GENERAL_ERROR);
        assert_eq!(w.gt.pin(D1, 8), Some(0));
        assert_eq!(w.flags(D1, 8), PERMIT);
    }

    #[test]
    fn map_with_flag_bits_arm_does_not_know_fails_after_pinning_and_undoes_it() {
        let mut w = granted(PERMIT);
        assert_eq!(w.map(D2, EXT, HOST | 1 << 5, 8, D1).1, gntst::GENERAL_ERROR);
        assert_eq!((w.gt.pin(D1, 8), w.flags(D1, 8)), (Some(0), PERMIT));
        assert_eq!(w.map(D2, EXT, HOST | 1 << 5, 600, D1).1, gntst::BAD_GNTREF);
    }

    #[test]
    fn grant_map_write_unmap_revoke_between_two_domains() {
        let mut w = World::new();
        // D1 places its first grant frame in the grant window and grants
        // RAM+1 to D2 by writing entry 8 there, as Linux does.
        w.gt.add_to_physmap(&mut w.env, D1, 0, 0x38000).unwrap();
        let entry_gpa = (0x38000 << 12) + 8 * 8;
        w.env
            .write(D1, entry_gpa + 4, &((RAM + 1) as u32).to_le_bytes())
            .unwrap();
        w.env.write(D1, entry_gpa + 2, &D2.to_le_bytes()).unwrap();
        w.env.write(D1, entry_gpa, &PERMIT.to_le_bytes()).unwrap();

        let (rc, st, handle, addr) = w.map(D2, EXT, HOST, 8, D1);
        assert_eq!((rc, st, handle), (0, 0, 0));
        let page = w.ram(D1, RAM + 1);
        assert_eq!(
            addr,
            page.pa(),
            "dev_bus_addr is the host address, as Xen's"
        );
        assert_eq!(
            w.env.log.last(),
            Some(&Event::MapForeign {
                mapper: D2,
                gpa: EXT,
                page: page.pa(),
                readonly: false
            })
        );
        let flags = w.env.read(D1, entry_gpa, 2).unwrap();
        assert_eq!(flags, (PERMIT | gtf::READING | gtf::WRITING).to_le_bytes());

        // D2 writes through its mapping; D1 sees it in its own RAM.
        w.env.write(D2, EXT + 16, b"hello").unwrap();
        assert_eq!(w.env.read(D1, ((RAM + 1) << 12) + 16, 5).unwrap(), b"hello");
        let frame: SharedPage = *w.gt.frame(D1, 0).unwrap();
        assert!(!guest_revokes(&frame, 8), "in use: D1 cannot end access");

        assert_eq!(w.unmap(D2, EXT, handle), 0);
        assert_eq!(
            w.env.log.last(),
            Some(&Event::UnmapForeign {
                mapper: D2,
                gpa: EXT
            })
        );
        assert_eq!(w.env.read(D2, EXT, 1), None);
        assert_eq!(w.flags(D1, 8), PERMIT);
        assert!(guest_revokes(&frame, 8));
        assert_eq!(
            w.map(D2, EXT, HOST, 8, D1).1,
            gntst::GENERAL_ERROR,
            "revoked"
        );
    }

    #[test]
    fn a_grant_cleared_while_mapped_stays_mapped_and_pinned_as_in_xen() {
        let mut w = granted(PERMIT);
        let (_, _, h1, _) = w.map(D2, EXT, HOST | RO, 8, D1);
        // A misbehaving D1 overwrites the entry anyway.
        w.grant(D1, 8, 0, 0, 0);
        assert_eq!(w.env.read(D2, EXT, 1), Some(alloc::vec![0]), "still mapped");
        // Pinned by D2, so D2 may map it again without the entry's consent.
        let (_, st, h2, _) = w.map(D2, EXT + 0x1000, HOST, 8, D1);
        assert_eq!(st, 0);
        assert_eq!(w.flags(D1, 8), gtf::READING | gtf::WRITING);
        assert_eq!(w.unmap(D2, EXT + 0x1000, h2), 0);
        assert_eq!(w.flags(D1, 8), gtf::READING);
        assert_eq!(w.unmap(D2, EXT, h1), 0);
        assert_eq!(w.flags(D1, 8), 0);
    }

    #[test]
    fn pins_count_each_mapping_and_gtf_writing_follows_the_writable_ones() {
        let mut w = granted(PERMIT);
        let (_, _, a, _) = w.map(D2, EXT, HOST | RO, 8, D1);
        let (_, _, b, _) = w.map(D2, EXT + 0x1000, HOST | RO, 8, D1);
        assert_eq!(w.gt.pin(D1, 8), Some(0x200));
        assert_eq!(w.flags(D1, 8), PERMIT | gtf::READING);
        let (_, _, c, _) = w.map(D2, EXT + 0x2000, HOST, 8, D1);
        assert_eq!(w.gt.pin(D1, 8), Some(0x201));
        assert_eq!(w.flags(D1, 8), PERMIT | gtf::READING | gtf::WRITING);
        assert_eq!(w.unmap(D2, EXT + 0x2000, c), 0);
        assert_eq!(w.flags(D1, 8), PERMIT | gtf::READING);
        assert_eq!(w.unmap(D2, EXT, a), 0);
        assert_eq!(w.flags(D1, 8), PERMIT | gtf::READING);
        assert_eq!(w.unmap(D2, EXT + 0x1000, b), 0);
        assert_eq!((w.gt.pin(D1, 8), w.flags(D1, 8)), (Some(0), PERMIT));
    }

    #[test]
    fn a_129th_read_only_mapping_of_one_grant_would_overflow_and_is_general_error() {
        let mut w = granted(PERMIT);
        for i in 0..128 {
            assert_eq!(
                w.map(D2, EXT + i * 0x1000, HOST | RO, 8, D1).1,
                0,
                "mapping {i}"
            );
        }
        assert_eq!(
            w.map(D2, EXT + 128 * 0x1000, HOST | RO, 8, D1).1,
            gntst::GENERAL_ERROR
        );
        assert_eq!(
            w.map(D2, EXT + 128 * 0x1000, HOST, 8, D1).1,
            0,
            "the write counter is apart"
        );
    }

    #[test]
    fn maptrack_exhausts_at_256_mappings_per_frame_with_no_space() {
        let mut w = World::with_limits(64, 1);
        for gref in 8..8 + 257 {
            w.grant(D1, gref, PERMIT | gtf::READONLY, D2, RAM + 1);
        }
        for i in 0..256u32 {
            let (_, st, handle, _) = w.map(D2, EXT + u64::from(i) * 0x1000, HOST | RO, 8 + i, D1);
            assert_eq!((st, handle), (0, i));
        }
        let gpa = EXT + 256 * 0x1000;
        assert_eq!(w.map(D2, gpa, HOST | RO, 264, D1).1, gntst::NO_SPACE);
        assert_eq!(gntst::NO_SPACE, -13);
        // Xen takes the handle before looking at the reference.
        assert_eq!(w.map(D2, gpa, HOST | RO, 9999, D1).1, gntst::NO_SPACE);
        assert_eq!(w.unmap(D2, EXT, 0), 0);
        let (_, st, handle, _) = w.map(D2, gpa, HOST | RO, 264, D1);
        assert_eq!((st, handle), (0, 0));
    }

    #[test]
    fn a_domain_at_its_maptrack_bound_leaves_another_mapping() {
        let mut w = World::with_limits(64, 1);
        for gref in 8..8 + 257 {
            w.grant(D1, gref, PERMIT | gtf::READONLY, D2, RAM + 1);
        }
        w.grant(D1, 300, PERMIT | gtf::READONLY, D3, RAM + 2);
        for i in 0..256u32 {
            assert_eq!(
                w.map(D2, EXT + u64::from(i) * 0x1000, HOST | RO, 8 + i, D1)
                    .1,
                0
            );
        }
        assert_eq!(
            w.map(D2, EXT + 256 * 0x1000, HOST | RO, 264, D1).1,
            gntst::NO_SPACE
        );
        // D3's maptrack is its own; D1's grants still work for it.
        let (_, st, handle, _) = w.map(D3, EXT, HOST | RO, 300, D1);
        assert_eq!((st, handle), (0, 0));
    }

    #[test]
    fn a_failed_stage2_map_is_general_error_and_releases_the_pin() {
        let mut w = granted(PERMIT);
        // Something already sits at the address: the stage-2 change fails
        // as it does when the domain's table budget is spent.
        w.env.add_ram(D2, EXT >> 12);
        assert_eq!(w.map(D2, EXT, HOST, 8, D1).1, gntst::GENERAL_ERROR);
        assert_eq!(w.gt.pin(D1, 8), Some(0));
        assert_eq!(w.flags(D1, 8) & (gtf::READING | gtf::WRITING), 0);
        assert_eq!(w.map(D2, EXT + 0x1000, HOST, 8, D1).1, 0);
    }

    #[test]
    fn no_maptrack_frames_allow_no_mapping() {
        let mut w = World::with_limits(64, 0);
        w.grant(D1, 8, PERMIT, D2, RAM + 1);
        assert_eq!(w.map(D2, EXT, HOST, 8, D1).1, gntst::NO_SPACE);
    }

    #[test]
    fn handles_belong_to_the_mapping_domain() {
        let mut w = granted(PERMIT);
        w.grant(D1, 9, PERMIT, D3, RAM + 2);
        assert_eq!(w.map(D2, EXT, HOST, 8, D1).2, 0);
        assert_eq!(w.map(D3, EXT, HOST, 9, D1).2, 0);
    }

    #[test]
    fn freed_handles_are_reused_after_the_fresh_ones_oldest_first() {
        let mut w = granted(PERMIT | gtf::READONLY);
        let handles: alloc::vec::Vec<u32> = (0..3)
            .map(|i| w.map(D2, EXT + i * 0x1000, HOST | RO, 8, D1).2)
            .collect();
        assert_eq!(handles, [0, 1, 2]);
        assert_eq!(w.unmap(D2, EXT + 0x1000, 1), 0);
        assert_eq!(w.map(D2, EXT + 0x1000, HOST | RO, 8, D1).2, 3);
    }

    // ---- unmap_grant_ref, unmap_and_replace ----

    #[test]
    fn unmapping_twice_is_bad_handle() {
        let mut w = granted(PERMIT);
        let (_, _, h, _) = w.map(D2, EXT, HOST, 8, D1);
        assert_eq!(w.unmap(D2, EXT, h), 0);
        assert_eq!(w.unmap(D2, EXT, h), gntst::BAD_HANDLE);
        assert_eq!(w.flags(D1, 8), PERMIT);
    }

    #[test]
    fn unmapping_a_handle_never_handed_out_is_bad_handle() {
        let mut w = granted(PERMIT);
        assert_eq!(w.unmap(D2, EXT, 0), gntst::BAD_HANDLE);
        w.map(D2, EXT, HOST, 8, D1);
        assert_eq!(w.unmap(D2, EXT, 1), gntst::BAD_HANDLE);
        assert_eq!(w.unmap(D2, EXT, 5000), gntst::BAD_HANDLE);
        assert_eq!(
            w.unmap(D3, EXT, 0),
            gntst::BAD_HANDLE,
            "handles are per domain"
        );
    }

    #[test]
    fn unmap_without_an_address_succeeds_and_keeps_the_mapping_as_in_xen() {
        let mut w = granted(PERMIT);
        let (_, _, h, _) = w.map(D2, EXT, HOST, 8, D1);
        assert_eq!(w.unmap(D2, 0, h), 0);
        assert!(w.env.at(D2, EXT >> 12).is_some());
        assert_eq!(w.gt.pin(D1, 8), Some(1));
        assert_eq!(w.unmap(D2, EXT, h), 0);
        assert_eq!(w.gt.pin(D1, 8), Some(0));
    }

    #[test]
    fn unmap_at_another_address_is_general_error_and_keeps_the_mapping() {
        let mut w = granted(PERMIT);
        let (_, _, h, _) = w.map(D2, EXT, HOST, 8, D1);
        assert_eq!(w.unmap(D2, EXT + 0x1000, h), gntst::GENERAL_ERROR);
        assert_eq!(
            w.unmap(D2, EXT + 0x123, h),
            0,
            "the offset in the page does not matter"
        );
    }

    #[test]
    fn unmap_ignores_dev_bus_addr_as_arm_has_no_device_mappings() {
        let mut w = granted(PERMIT);
        let (_, _, h, _) = w.map(D2, EXT, HOST, 8, D1);
        let mut b = unmap_arg(EXT, 0x1234_5000, h);
        assert_eq!(w.op(D2, 1, 1, &mut b), 0);
        assert_eq!(i16_at(&b, 20), 0);
        assert_eq!(
            (u64_at(&b, 0), u64_at(&b, 8), u32_at(&b, 16)),
            (EXT, 0x1234_5000, h)
        );
    }

    #[test]
    fn unmap_and_replace_with_a_new_address_is_general_error_and_without_one_unmaps() {
        let mut w = granted(PERMIT);
        let (_, _, h, _) = w.map(D2, EXT, HOST, 8, D1);
        let call = |w: &mut World, new_addr: u64| {
            let mut b = [0u8; 24];
            b[0..8].copy_from_slice(&EXT.to_le_bytes());
            b[8..16].copy_from_slice(&new_addr.to_le_bytes());
            b[16..20].copy_from_slice(&h.to_le_bytes());
            assert_eq!(w.op(D2, 7, 1, &mut b), 0);
            i16_at(&b, 20)
        };
        assert_eq!(call(&mut w, EXT + 0x1000), gntst::GENERAL_ERROR);
        assert!(w.env.at(D2, EXT >> 12).is_some());
        assert_eq!(call(&mut w, 0), 0);
        assert!(w.env.at(D2, EXT >> 12).is_none());
    }

    // ---- copy ----

    #[test]
    fn copy_from_a_grant_into_the_callers_own_frame() {
        let mut w = granted(PERMIT | gtf::READONLY);
        w.ram(D1, RAM + 1).write(100, b"grant");
        let st = copy(
            &mut w,
            D2,
            Ptr(8, D1, 100),
            Ptr(RAM + 2, DOMID_SELF, 7),
            5,
            SRC_GREF,
        );
        assert_eq!(st, 0);
        assert_eq!(w.env.read(D2, ((RAM + 2) << 12) + 7, 5).unwrap(), b"grant");
        assert_eq!(
            (w.gt.pin(D1, 8), w.flags(D1, 8)),
            (Some(0), PERMIT | gtf::READONLY)
        );
    }

    #[test]
    fn copy_from_the_callers_own_frame_into_a_grant() {
        let mut w = granted(PERMIT);
        w.ram(D2, RAM + 3).write(0, b"reply");
        let st = copy(
            &mut w,
            D2,
            Ptr(RAM + 3, DOMID_SELF, 0),
            Ptr(8, D1, 4090),
            5,
            DST_GREF,
        );
        assert_eq!(st, 0);
        assert_eq!(
            w.env.read(D1, ((RAM + 1) << 12) + 4090, 5).unwrap(),
            b"reply"
        );
        assert_eq!(w.flags(D1, 8), PERMIT);
    }

    #[test]
    fn copy_between_two_grants_pins_both_only_for_the_copy() {
        let mut w = granted(PERMIT);
        w.grant(D3, 8, PERMIT | gtf::READONLY, D2, RAM + 5);
        w.ram(D3, RAM + 5).write(0, b"abc");
        let st = copy(
            &mut w,
            D2,
            Ptr(8, D3, 0),
            Ptr(8, D1, 0),
            3,
            SRC_GREF | DST_GREF,
        );
        assert_eq!(st, 0);
        assert_eq!(w.env.read(D1, (RAM + 1) << 12, 3).unwrap(), b"abc");
        assert_eq!((w.gt.pin(D1, 8), w.gt.pin(D3, 8)), (Some(0), Some(0)));
    }

    #[test]
    fn copy_across_a_page_end_is_bad_copy_arg_and_unpins() {
        let mut w = granted(PERMIT);
        let own = Ptr(RAM + 2, DOMID_SELF, 0);
        assert_eq!(
            copy(&mut w, D2, Ptr(8, D1, 4000), own, 200, SRC_GREF),
            gntst::BAD_COPY_ARG
        );
        assert_eq!(
            copy(&mut w, D2, own, Ptr(8, D1, 4090), 7, DST_GREF),
            gntst::BAD_COPY_ARG
        );
        assert_eq!((w.gt.pin(D1, 8), w.flags(D1, 8)), (Some(0), PERMIT));
        assert_eq!(copy(&mut w, D2, own, Ptr(8, D1, 4090), 6, DST_GREF), 0);
    }

    #[test]
    fn copy_by_frame_number_is_only_for_domid_self() {
        let mut w = granted(PERMIT);
        let own = Ptr(RAM + 2, DOMID_SELF, 0);
        assert_eq!(
            copy(&mut w, D2, Ptr(RAM + 1, D1, 0), own, 4, 0),
            gntst::PERMISSION_DENIED
        );
        assert_eq!(
            copy(&mut w, D2, Ptr(RAM + 1, D2, 0), own, 4, 0),
            gntst::PERMISSION_DENIED
        );
        assert_eq!(copy(&mut w, D2, Ptr(RAM + 1, DOMID_SELF, 0), own, 4, 0), 0);
    }

    #[test]
    fn copy_into_a_read_only_grant_is_general_error() {
        let mut w = granted(PERMIT | gtf::READONLY);
        let own = Ptr(RAM + 2, DOMID_SELF, 0);
        assert_eq!(
            copy(&mut w, D2, own, Ptr(8, D1, 0), 4, DST_GREF),
            gntst::GENERAL_ERROR
        );
        assert_eq!(w.flags(D1, 8), PERMIT | gtf::READONLY);
    }

    #[test]
    fn copy_with_a_bad_ref_domain_or_frame_gets_xens_status() {
        let mut w = granted(PERMIT);
        let own = Ptr(RAM + 2, DOMID_SELF, 0);
        assert_eq!(
            copy(&mut w, D2, Ptr(600, D1, 0), own, 4, SRC_GREF),
            gntst::BAD_GNTREF
        );
        assert_eq!(
            copy(&mut w, D2, Ptr(8, 99, 0), own, 4, SRC_GREF),
            gntst::BAD_DOMAIN
        );
        assert_eq!(
            copy(&mut w, D2, Ptr(0x9_9999, DOMID_SELF, 0), own, 4, 0),
            gntst::BAD_PAGE
        );
        assert_eq!(
            copy(&mut w, D3, Ptr(8, D1, 0), own, 4, SRC_GREF),
            gntst::GENERAL_ERROR
        );
    }

    #[test]
    fn a_zero_length_copy_succeeds_whatever_it_names() {
        let mut w = World::new();
        assert_eq!(
            copy(&mut w, D2, Ptr(1, 99, 5000), Ptr(2, 98, 0), 0, SRC_GREF),
            0
        );
    }

    #[test]
    fn copy_failing_on_its_destination_releases_its_source() {
        let mut w = granted(PERMIT);
        let bad = Ptr(0x9_9999, DOMID_SELF, 0);
        assert_eq!(
            copy(&mut w, D2, Ptr(8, D1, 0), bad, 4, SRC_GREF),
            gntst::BAD_PAGE
        );
        assert_eq!((w.gt.pin(D1, 8), w.flags(D1, 8)), (Some(0), PERMIT));
    }

    #[test]
    fn copy_between_domains_the_connection_policy_keeps_apart_is_permission_denied() {
        let mut w = granted(PERMIT);
        w.env.denied.push((D2, D1));
        let own = Ptr(RAM + 2, DOMID_SELF, 0);
        assert_eq!(
            copy(&mut w, D2, Ptr(8, D1, 0), own, 4, SRC_GREF),
            gntst::PERMISSION_DENIED
        );
        assert_eq!(w.flags(D1, 8), PERMIT);
    }

    #[test]
    fn each_copy_of_a_batch_gets_its_own_status() {
        let mut w = granted(PERMIT);
        let own = Ptr(RAM + 2, DOMID_SELF, 0);
        let mut b = [0u8; 80];
        b[..40].copy_from_slice(&copy_arg(Ptr(8, D1, 0), own, 16, SRC_GREF));
        b[40..].copy_from_slice(&copy_arg(Ptr(8, D1, 4095), own, 2, SRC_GREF));
        assert_eq!(w.op(D2, 5, 2, &mut b), 0);
        assert_eq!((i16_at(&b, 36), i16_at(&b, 76)), (0, gntst::BAD_COPY_ARG));
    }

    // ---- swap_grant_ref ----

    #[test]
    fn swap_exchanges_two_entries_of_the_callers_table() {
        let mut w = World::new();
        w.grant(D1, 8, PERMIT, D2, RAM + 1);
        w.gt.add_to_physmap(&mut w.env, D1, 1, 0x38001).unwrap();
        w.grant(D1, 600, PERMIT | gtf::READONLY, D3, RAM + 2);
        assert_eq!(swap(&mut w, 8, 600), 0);
        assert_eq!(w.gt.frame(D1, 0).unwrap().entry(8).domid, D3);
        assert_eq!(w.gt.frame(D1, 1).unwrap().entry(88).domid, D2);
        assert_eq!(w.flags(D1, 8), PERMIT | gtf::READONLY);
    }

    #[test]
    fn swap_with_a_bad_ref_is_bad_gntref_the_same_ref_okay_and_a_pinned_one_eagain() {
        let mut w = granted(PERMIT);
        assert_eq!(swap(&mut w, 8, 512), gntst::BAD_GNTREF);
        assert_eq!(swap(&mut w, 512, 8), gntst::BAD_GNTREF);
        assert_eq!(swap(&mut w, 8, 8), 0);
        w.map(D2, EXT, HOST, 8, D1);
        assert_eq!(swap(&mut w, 9, 8), gntst::EAGAIN);
        assert_eq!(swap(&mut w, 8, 9), gntst::EAGAIN);
    }

    // ---- cache_flush ----

    #[test]
    fn cache_flush_of_a_page_granted_and_mapped_maintains_it() {
        let mut w = granted(PERMIT);
        let (_, _, _, addr) = w.map(D2, EXT, HOST, 8, D1);
        assert_eq!(cache_flush(&mut w, D2, 12, addr + 5, 16, 32, 3), 0);
        assert_eq!(
            w.env.log.last(),
            Some(&Event::Cache {
                page: addr,
                offset: 16,
                len: 32,
                op: CacheOp {
                    clean: true,
                    invalidate: true
                }
            })
        );
    }

    #[test]
    fn cache_flush_outside_the_page_or_with_unknown_ops_is_einval() {
        let mut w = granted(PERMIT);
        let (_, _, _, addr) = w.map(D2, EXT, HOST, 8, D1);
        for (off, len, op) in [
            (4096, 1, 1),
            (0, 4097, 1),
            (4000, 200, 1),
            (0, 8, 4),
            (0, 8, 1 << 31),
        ] {
            assert_eq!(
                cache_flush(&mut w, D2, 12, addr, off, len, op),
                -22,
                "{off} {len} {op:#x}"
            );
        }
    }

    #[test]
    fn cache_flush_of_nothing_succeeds_unless_resuming_a_continuation() {
        let mut w = World::new();
        assert_eq!(cache_flush(&mut w, D2, 12, 0, 0, 0, 1), 0);
        assert_eq!(cache_flush(&mut w, D2, 12, 0, 0, 8, 0), 0);
        assert_eq!(
            cache_flush(&mut w, D2, 1 << 12 | 12, 0, 0, 0, 1),
            -84,
            "EILSEQ"
        );
    }

    #[test]
    fn cache_flush_of_a_page_not_granted_to_the_caller_is_einval() {
        let mut w = granted(PERMIT);
        let (_, _, _, addr) = w.map(D2, EXT, HOST, 8, D1);
        assert_eq!(cache_flush(&mut w, D3, 12, addr, 0, 8, 1), -22);
        let own = w.ram(D2, RAM).pa();
        assert_eq!(cache_flush(&mut w, D2, 12, own, 0, 8, 1), -22);
    }
}
