//! Access to physical memory through the identity map: boot modules,
//! guest RAM and stage-2 table pages. The boot CPU records once what
//! physical memory is ([`register`]): RAM banks, what the hypervisor
//! occupies itself (image, heap and stacks, the host device tree) and the
//! boot modules. Every function here then checks its range against that
//! record, so code above it — the hypercall paths, domain building — needs
//! no `unsafe`: a module is only ever read, and only RAM that is neither
//! the hypervisor's nor a module's is ever written.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::memmap::Range;
use crate::shared::SharedPage;

/// What physical memory is, as the boot CPU found it.
struct PhysLayout {
    ram: Vec<Range>,
    /// The hypervisor's own memory: never a guest's, never written here.
    hypervisor: Vec<Range>,
    /// Boot modules: read, never written.
    modules: Vec<Range>,
    /// RAM less the hypervisor and the modules, sorted and disjoint: what
    /// may be written (every exit that copies hypercall arguments asks).
    writable: Vec<Range>,
}

static LAYOUT: spin::Once<PhysLayout> = spin::Once::new();

/// Records the physical memory layout; only the first call counts.
pub fn register(ram: &[Range], hypervisor: &[Range], modules: &[Range]) {
    LAYOUT.call_once(|| {
        let mut writable: crate::memmap::RangeSet = ram.iter().copied().collect();
        for r in hypervisor.iter().chain(modules) {
            writable.remove(*r);
        }
        PhysLayout {
            ram: ram.to_vec(),
            hypervisor: hypervisor.to_vec(),
            modules: modules.to_vec(),
            writable: writable.iter().copied().collect(),
        }
    });
}

#[inline]
fn layout() -> Option<&'static PhysLayout> {
    LAYOUT.get()
}

/// RAM the hypervisor took for itself after [`register`] (the heap's
/// domain reserve): no longer writable for guests.
static LATE_START: AtomicU64 = AtomicU64::new(0);
static LATE_END: AtomicU64 = AtomicU64::new(0);

/// Takes `r`, RAM outside the hypervisor and the modules, for the
/// hypervisor: from then on nothing here writes it for a guest. Once
/// (`false` for a second call or a range that is not such RAM).
pub fn claim_for_hypervisor(r: Range) -> bool {
    if !is_guest_ram(r) {
        return false;
    }
    if LATE_END
        .compare_exchange(0, r.end, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return false;
    }
    LATE_START.store(r.start, Ordering::Release);
    true
}

/// Whether `pa` is in a RAM bank (`false` before [`register`]).
pub fn is_ram(pa: u64) -> bool {
    layout().is_some_and(|l| l.ram.iter().any(|b| b.contains(pa)))
}

/// Whether `r` is RAM that belongs to no one Oxen knows of but guests and
/// the frame allocator: inside a bank, clear of the hypervisor and of
/// every boot module.
#[inline(always)]
pub fn is_guest_ram(r: Range) -> bool {
    let late = (
        LATE_START.load(Ordering::Acquire),
        LATE_END.load(Ordering::Acquire),
    );
    if r.start < late.1 && late.0 < r.end {
        return false;
    }
    // One piece of `writable` covering `r` is the same as "inside a bank
    // and clear of the rest": the pieces are what is left of the banks.
    // A plain loop: this is on every guest-memory copy, and closures are
    // not inlined in a size-optimised build.
    let Some(l) = layout() else {
        return false;
    };
    if r.is_empty() {
        return false;
    }
    for w in l.writable.iter() {
        if w.covers(&r) {
            return true;
        }
    }
    false
}

/// The bytes of `r` if it lies inside one boot module (and RAM, and clear
/// of the hypervisor). Boot modules are never written, so the slice stays
/// valid and unchanged.
pub fn module_bytes(r: Range) -> Option<&'static [u8]> {
    let l = layout()?;
    let ok = !r.is_empty()
        && l.modules.iter().any(|m| m.covers(&r))
        && l.ram.iter().any(|b| b.covers(&r))
        && !l.hypervisor.iter().any(|h| h.overlaps(&r));
    // SAFETY: `r` is identity-mapped RAM inside a boot module, which
    // nothing writes (checked above against the recorded layout).
    ok.then(|| unsafe { core::slice::from_raw_parts(r.start as *const u8, r.size() as usize) })
}

/// Copies `data` to guest RAM at `pa`; `false` (nothing written) unless
/// the whole destination is RAM outside the hypervisor and the modules.
/// Raw copies, never references: a guest may use that memory meanwhile.
#[inline(always)]
pub fn write_ram(pa: u64, data: &[u8]) -> bool {
    let Some(r) = Range::with_size(pa, data.len() as u64) else {
        return false;
    };
    if data.is_empty() {
        return true;
    }
    if !is_guest_ram(r) {
        return false;
    }
    // SAFETY: identity-mapped RAM that is not the hypervisor's (checked
    // above); no Rust reference to it exists.
    unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), pa as *mut u8, data.len()) };
    true
}

/// Copies guest RAM at `pa` into `out`; `false` (nothing read) unless the
/// whole source is RAM outside the hypervisor and the modules.
#[inline(always)]
pub fn read_ram(pa: u64, out: &mut [u8]) -> bool {
    let Some(r) = Range::with_size(pa, out.len() as u64) else {
        return false;
    };
    if out.is_empty() {
        return true;
    }
    if !is_guest_ram(r) {
        return false;
    }
    // SAFETY: identity-mapped RAM that is not the hypervisor's (checked
    // above); `out` is a distinct Rust buffer.
    unsafe { core::ptr::copy_nonoverlapping(pa as *const u8, out.as_mut_ptr(), out.len()) };
    true
}

/// Zeroes guest RAM `r`; `false` (nothing written) unless it is all RAM
/// outside the hypervisor and the modules.
pub fn zero_ram(r: Range) -> bool {
    if r.is_empty() {
        return true;
    }
    if !is_guest_ram(r) {
        return false;
    }
    // SAFETY: RAM that is not the hypervisor's, checked above.
    unsafe { zero(r) };
    true
}

/// A handle on the 4 KiB page at `pa` if it is RAM outside the hypervisor
/// and the modules: a page from the frame allocator or of a domain's RAM.
/// Whatever a guest writes there, the atomic overlays of [`SharedPage`]
/// read it soundly, and it can never be the hypervisor's own memory.
pub fn shared_page(pa: u64) -> Option<SharedPage> {
    let r = Range::with_size(pa, 4096)?;
    // SAFETY: a page-aligned page of identity-mapped RAM that is not the
    // hypervisor's (checked); RAM stays mapped for the hypervisor's life.
    (pa.is_multiple_of(4096) && is_guest_ram(r)).then(|| unsafe { SharedPage::new(pa) })
}

/// Largest device tree Oxen accepts (Linux uses the same bound).
pub const MAX_DTB_SIZE: usize = 2 * 1024 * 1024;

/// Why x0 holds no device tree Oxen can read.
pub enum NoDtb {
    Null,
    Misaligned,
    Blob(crate::hostdt::FdtError),
}

impl core::fmt::Display for NoDtb {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Null => f.write_str(
                "is no device tree; Oxen needs one (boot it like an arm64 Linux Image, with the \
                 DTB's address in x0)",
            ),
            Self::Misaligned => f.write_str(
                "is not 8-byte aligned, as the arm64 boot protocol requires of a device tree",
            ),
            Self::Blob(e) => write!(f, "{e}"),
        }
    }
}

/// The device tree the loader passed at `dtb` (x0), as a byte slice of its
/// header's `totalsize`: non-null, 8-byte aligned, a size between the
/// header's and [`MAX_DTB_SIZE`]. The arm64 boot protocol is what promises
/// that a tree is there and stays untouched; the reader bounds-checks the
/// rest.
pub fn boot_dtb(dtb: usize) -> Result<&'static [u8], NoDtb> {
    if dtb == 0 {
        return Err(NoDtb::Null);
    }
    if !dtb.is_multiple_of(8) {
        return Err(NoDtb::Misaligned);
    }
    // SAFETY: the boot protocol puts a device tree (header at least 40
    // bytes) at x0; the MMU is off so any address is readable.
    let header = unsafe { core::slice::from_raw_parts(dtb as *const u8, 8) };
    let size = crate::hostdt::dtb_total_size(header).map_err(NoDtb::Blob)?;
    if !(crate::hostdt::FDT_HEADER_LEN..=MAX_DTB_SIZE).contains(&size) {
        // Past Oxen's (and Linux's) bound, or too short for its header.
        return Err(NoDtb::Blob(crate::hostdt::FdtError::TotalSize {
            totalsize: size as u32,
            available: MAX_DTB_SIZE,
        }));
    }
    // SAFETY: the header says the tree is `size` bytes long (bounded
    // above), and the boot protocol guarantees it lies in memory that stays
    // untouched.
    Ok(unsafe { core::slice::from_raw_parts(dtb as *const u8, size) })
}

/// Stage-2 table pages, allocated from the hypervisor heap (identity-mapped,
/// so a page's address is its physical address). Only pages it handed out
/// are ever read or written through it.
#[derive(Default)]
pub struct HeapTables {
    /// First page of each allocation → number of pages.
    blocks: BTreeMap<u64, usize>,
}

impl HeapTables {
    /// `n` zeroed, `n`-page-aligned pages.
    pub fn alloc(&mut self, n: usize) -> Option<u64> {
        let layout = Layout::from_size_align(n.checked_mul(4096)?, n.checked_mul(4096)?).ok()?;
        if layout.size() == 0 {
            return None;
        }
        // SAFETY: a non-zero-sized layout; the memory is zeroed by the allocator.
        let p = unsafe { alloc::alloc::alloc_zeroed(layout) };
        if p.is_null() {
            return None;
        }
        self.blocks.insert(p as u64, n);
        Some(p as u64)
    }

    /// Frees an allocation by its first page (a multi-page one, the
    /// concatenated root, goes whole); any other address is ignored.
    pub fn free(&mut self, pa: u64) {
        if let Some(n) = self.blocks.remove(&pa) {
            // The layout `alloc` used (it succeeded, so it is valid).
            if let Ok(layout) = Layout::from_size_align(n * 4096, n * 4096) {
                // SAFETY: `pa` was returned by `alloc` with this layout.
                unsafe { alloc::alloc::dealloc(pa as *mut u8, layout) };
            }
        }
    }

    /// Whether `pa` is a page of one of this allocator's allocations.
    fn owns(&self, pa: u64) -> bool {
        pa.is_multiple_of(4096)
            && self
                .blocks
                .range(..=pa)
                .next_back()
                .is_some_and(|(&first, &n)| pa < first + n as u64 * 4096)
    }

    /// The table page at `pa`.
    ///
    /// # Panics
    ///
    /// If `pa` is not a page this allocator handed out: the stage-2 code
    /// only follows descriptors it wrote itself, so that is a bug in Oxen.
    pub fn table(&self, pa: u64) -> &[u64; 512] {
        assert!(
            self.owns(pa),
            "stage-2 table {pa:#x} was not allocated here"
        );
        // SAFETY: a live, aligned page of this allocator (checked).
        unsafe { &*(pa as *const [u64; 512]) }
    }

    /// The table page at `pa`, writable; `&mut self` makes it exclusive.
    ///
    /// # Panics
    ///
    /// As [`HeapTables::table`].
    pub fn table_mut(&mut self, pa: u64) -> &mut [u64; 512] {
        assert!(
            self.owns(pa),
            "stage-2 table {pa:#x} was not allocated here"
        );
        // SAFETY: a live, aligned page of this allocator (checked), and the
        // exclusive borrow of the allocator stands for the page's.
        unsafe { &mut *(pa as *mut [u64; 512]) }
    }
}

/// Zeroes a physical range, with `DC ZVA` (a whole block per instruction)
/// where the CPU permits it: a domain's RAM is zeroed at every build, and
/// the compiler's `memset` stores 8 bytes per three instructions.
///
/// # Safety
///
/// `r` must be RAM (identity-mapped Normal memory) owned by the caller,
/// with no live reference to it.
unsafe fn zero(r: Range) {
    let dczid: u64;
    // SAFETY: reading DCZID_EL0 has no side effects.
    unsafe {
        core::arch::asm!("mrs {}, dczid_el0", out(reg) dczid, options(nomem, nostack, preserves_flags))
    };
    let block = 4u64 << (dczid & 0xf);
    let prohibited = dczid & (1 << 4) != 0;
    let first = r.start.next_multiple_of(block);
    let last = r.end & !(block - 1);
    if prohibited || first >= last {
        // SAFETY: per the contract the range is exclusively owned RAM.
        unsafe { core::ptr::write_bytes(r.start as *mut u8, 0, r.size() as usize) };
        return;
    }
    for edge in [
        Range {
            start: r.start,
            end: first,
        },
        Range {
            start: last,
            end: r.end,
        },
    ] {
        // SAFETY: a part of the caller's range.
        unsafe { core::ptr::write_bytes(edge.start as *mut u8, 0, edge.size() as usize) };
    }
    let mut a = first;
    while a < last {
        // SAFETY: `a` is a block-aligned address inside the caller's RAM;
        // DC ZVA writes zeros to that one block, as stores would.
        unsafe { core::arch::asm!("dc zva, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += block;
    }
}
