//! Grant tables in the running hypervisor: every domain's table behind one
//! lock, the [`Env`] over core's services, and the hypercall, the
//! `add_to_physmap` space and the domain lifecycle hooks.

use alloc::vec;

use linkme::distributed_slice;
use oxen_core::hypercall::{Caller, HYPERCALLS, Hypercall, PHYSMAP_SPACES, PhysmapSpace, Request};
use oxen_core::services::services;
use oxen_core::shared::SharedPage;
use oxen_core::subsystem::{DomainSetup, Interface};
use oxen_core::xen::errno::{EBUSY, EFAULT, ENOMEM, Errno};
use oxen_core::xen::{DomId, nr};

use crate::abi::arg_size;
use crate::{CacheOp, Env, GrantTables, MapError, arg_bytes};

type Tables = GrantTables<SharedPage, SharedPage>;

static TABLES: spin::Lazy<spin::Mutex<Tables>> =
    spin::Lazy::new(|| spin::Mutex::new(Tables::new()));

/// The hypervisor as grant tables see it; `caller` is the vCPU making a
/// hypercall, when there is one.
struct HvEnv<'a> {
    caller: Option<&'a mut dyn Caller>,
}

impl Env for HvEnv<'_> {
    type Frame = SharedPage;
    type Page = SharedPage;

    fn alloc_frame(&mut self) -> Option<SharedPage> {
        services().alloc_page()
    }

    fn free_frame(&mut self, frame: SharedPage) {
        services().free_page(frame);
    }

    fn map_frame(&mut self, dom: DomId, gfn: u64, frame: &SharedPage) -> Result<(), Errno> {
        services().map(dom, gfn, *frame, true)
    }

    fn may_connect(&self, a: DomId, b: DomId) -> bool {
        services().may_connect(a, b)
    }

    fn own_page(&self, dom: DomId, gfn: u64, _writable: bool) -> Option<SharedPage> {
        // Only writable RAM of the domain itself is ever handed out.
        services().guest_page(dom, gfn)
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
        services()
            .map_foreign(mapper, gpa >> 12, page, !readonly)
            .map_err(|e| match e {
                EBUSY => MapError::Occupied,
                ENOMEM => MapError::NoMemory,
                _ => MapError::OutOfRange,
            })
    }

    fn unmap_foreign(&mut self, mapper: DomId, gpa: u64, page: SharedPage) -> Result<(), MapError> {
        services()
            .unmap_foreign(mapper, gpa >> 12, page)
            .map_err(|_| MapError::NotMapped)
    }

    fn copy(
        &mut self,
        src: SharedPage,
        src_offset: usize,
        dst: SharedPage,
        dst_offset: usize,
        len: usize,
    ) {
        let mut buf = vec![0u8; len];
        src.read(src_offset, &mut buf);
        dst.write(dst_offset, &buf);
    }

    fn write_guest(&mut self, dom: DomId, va: u64, bytes: &[u8]) -> Result<(), Errno> {
        match &mut self.caller {
            Some(c) if c.domid() == dom => c.write(va, bytes),
            _ => Err(EFAULT),
        }
    }

    fn cache_maintenance(&mut self, page: SharedPage, offset: usize, len: usize, op: CacheOp) {
        services().cache_maintenance(page, offset, len, op.clean, op.invalidate);
    }
}

/// Argument bytes that [`grant_table_op`] keeps on the stack.
const SMALL_ARGS: usize = 64;

/// `grant_table_op(cmd, uop, count)`: the argument array is copied in,
/// processed, and copied back, one batch of at most `MAX_BATCH` elements
/// per entry into the hypervisor; the rest is a continuation
/// (`Request::Continue`), as in Xen.
fn grant_table_op(c: &mut dyn Caller, a: [u64; 5]) -> i64 {
    let (cmd, uop, mut count) = (a[0], a[1], a[2]);
    let size = arg_size((cmd as u32) & crate::abi::cmd::MASK).unwrap_or(0) as u64;
    let mut stack = [0u8; SMALL_ARGS];
    let mut heap = alloc::vec::Vec::new();
    // Single-element calls (query_size, set_version, …) fit on the
    // stack: no allocation on their path.
    let len = arg_bytes(cmd, count);
    // (The handler only sees bytes a successful read wrote.)
    let mut buf: &mut [u8] = match stack.get_mut(..len) {
        Some(small) => small,
        None => {
            heap.clear();
            heap.resize(len, 0);
            &mut heap
        }
    };
    // Like Xen, which copies element by element: the elements before
    // the first unreadable one are still done, then -EFAULT.
    let mut fault = None;
    if let Err(e) = c.read(uop, buf) {
        let whole = (buf.len() as u64).checked_div(size).unwrap_or(0);
        let readable = (0..whole)
            .take_while(|k| {
                c.read(uop + k * size, &mut vec![0u8; size as usize])
                    .is_ok()
            })
            .count() as u64;
        if readable == 0 {
            return e.ret();
        }
        fault = Some(e);
        count = readable;
        let whole_buf = core::mem::take(&mut buf);
        // `readable * size` ≤ `whole * size` ≤ the buffer's length.
        buf = whole_buf
            .get_mut(..(readable * size) as usize)
            .unwrap_or(&mut []);
        let _ = c.read(uop, buf);
    }
    let domid = c.domid();
    let r = TABLES.lock().grant_table_op(
        &mut HvEnv {
            caller: Some(&mut *c),
        },
        domid,
        cmd,
        count,
        buf,
    );
    if let Err(e) = c.write(uop, buf) {
        return e.ret();
    }
    if let Some(e) = fault {
        return if r < 0 { r } else { e.ret() };
    }
    match u64::try_from(r) {
        // Part of the batch was done: the rest in a continuation, so
        // that a count of 2^31 does not keep the pCPU for seconds.
        Ok(done) if done > 0 && done < count && size > 0 => {
            c.request(Request::Continue([
                cmd,
                uop.wrapping_add(done * size),
                count - done,
                a[3],
                a[4],
            ]));
            0
        }
        Ok(done) if done > 0 => 0,
        _ => r,
    }
}

#[distributed_slice(HYPERCALLS)]
static GRANT_TABLE_OP: Hypercall = Hypercall {
    nr: nr::GRANT_TABLE_OP,
    name: "grant_table_op",
    interface: Some(Interface::GrantTable),
    handler: grant_table_op,
};

fn add_to_physmap(c: &mut dyn Caller, idx: u64, gpfn: u64) -> Result<(), Errno> {
    let domid = c.domid();
    TABLES
        .lock()
        .add_to_physmap(&mut HvEnv { caller: Some(c) }, domid, idx, gpfn)
}

#[distributed_slice(PHYSMAP_SPACES)]
static GRANT_TABLE_SPACE: PhysmapSpace = PhysmapSpace {
    space: oxen_core::hypercall::memory::XENMAPSPACE_GRANT_TABLE,
    interface: Interface::GrantTable,
    handler: add_to_physmap,
};

/// A domain was built: it gets a table if it was given grant tables.
pub(crate) fn domain_created(dom: &DomainSetup<'_>) -> Result<(), alloc::string::String> {
    if !dom.has(Interface::GrantTable) {
        return Ok(());
    }
    TABLES
        .lock()
        .domain_created(
            &mut HvEnv { caller: None },
            dom.domid,
            dom.max_grant_frames,
            dom.max_maptrack_frames,
        )
        .map_err(|e| alloc::format!("{e}"))
}

/// A domain is gone: what others mapped from it is revoked, its frames
/// freed.
pub(crate) fn domain_destroyed(domid: DomId) {
    let mut t = TABLES.lock();
    if t.has_domain(domid) {
        t.domain_destroyed(&mut HvEnv { caller: None }, domid);
    }
}
