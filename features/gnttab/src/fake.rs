//! A fake hypervisor for the tests: guest RAM and grant frames are real
//! shared pages (leaked heap pages), each domain's stage-2 is a map from
//! guest frame to page, and every change the grant tables ask for is
//! logged.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use oxen_core::shared::{SharedPage, test_page};
use oxen_core::xen::DomId;
use oxen_core::xen::errno::{EFAULT, Errno};

use crate::env::{CacheOp, Env, MapError};

/// What a stage-2 entry maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ram,
    GrantFrame,
    Foreign,
}

#[derive(Debug, Clone, Copy)]
pub struct S2Entry {
    pub page: SharedPage,
    pub writable: bool,
    pub kind: Kind,
}

/// A change the grant tables made through the fake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    MapFrame {
        dom: DomId,
        gfn: u64,
    },
    MapForeign {
        mapper: DomId,
        gpa: u64,
        page: u64,
        readonly: bool,
    },
    /// Includes the TLB invalidation the contract requires.
    UnmapForeign {
        mapper: DomId,
        gpa: u64,
    },
    FreeFrame(u64),
    Cache {
        page: u64,
        offset: usize,
        len: usize,
        op: CacheOp,
    },
}

/// A guest virtual address `write_guest` refuses.
pub const BAD_VA: u64 = 0xdead_0000;

pub struct FakeEnv {
    pub s2: BTreeMap<(DomId, u64), S2Entry>,
    /// Pairs the connection policy keeps apart (either way round).
    pub denied: Vec<(DomId, DomId)>,
    pub log: Vec<Event>,
    /// Frames `alloc_frame` may still hand out (`None`: no limit).
    pub frames_left: Option<usize>,
    /// What `write_guest` wrote, by (domain, address).
    pub guest_writes: BTreeMap<(DomId, u64), Vec<u8>>,
}

impl FakeEnv {
    pub fn new() -> Self {
        Self {
            s2: BTreeMap::new(),
            denied: Vec::new(),
            log: Vec::new(),
            frames_left: None,
            guest_writes: BTreeMap::new(),
        }
    }

    /// Gives `dom` a page of RAM at `gfn`.
    pub fn add_ram(&mut self, dom: DomId, gfn: u64) -> SharedPage {
        let page = test_page();
        self.s2.insert(
            (dom, gfn),
            S2Entry {
                page,
                writable: true,
                kind: Kind::Ram,
            },
        );
        page
    }

    /// The page `dom` reaches at `gfn`, if any.
    pub fn at(&self, dom: DomId, gfn: u64) -> Option<S2Entry> {
        self.s2.get(&(dom, gfn)).copied()
    }

    /// A guest load of `len` bytes at `gpa` (inside one page).
    pub fn read(&self, dom: DomId, gpa: u64, len: usize) -> Option<Vec<u8>> {
        let e = self.at(dom, gpa >> 12)?;
        let mut out = alloc::vec![0; len];
        e.page.read((gpa & 0xfff) as usize, &mut out);
        Some(out)
    }

    /// A guest store at `gpa` (inside one page); `Err` is the stage-2
    /// fault the guest would take.
    pub fn write(&self, dom: DomId, gpa: u64, bytes: &[u8]) -> Result<(), &'static str> {
        let e = self.at(dom, gpa >> 12).ok_or("translation fault")?;
        if !e.writable {
            return Err("permission fault");
        }
        e.page.write((gpa & 0xfff) as usize, bytes);
        Ok(())
    }
}

impl Env for FakeEnv {
    type Frame = SharedPage;
    type Page = SharedPage;

    fn alloc_frame(&mut self) -> Option<SharedPage> {
        if let Some(left) = &mut self.frames_left {
            *left = left.checked_sub(1)?;
        }
        Some(test_page())
    }

    fn free_frame(&mut self, frame: SharedPage) {
        self.log.push(Event::FreeFrame(frame.pa()));
    }

    fn map_frame(&mut self, dom: DomId, gfn: u64, frame: &SharedPage) -> Result<(), Errno> {
        self.s2.insert(
            (dom, gfn),
            S2Entry {
                page: *frame,
                writable: true,
                kind: Kind::GrantFrame,
            },
        );
        self.log.push(Event::MapFrame { dom, gfn });
        Ok(())
    }

    fn may_connect(&self, a: DomId, b: DomId) -> bool {
        !self.denied.contains(&(a, b)) && !self.denied.contains(&(b, a))
    }

    fn own_page(&self, dom: DomId, gfn: u64, writable: bool) -> Option<SharedPage> {
        self.at(dom, gfn)
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
        if self.s2.contains_key(&(mapper, gpa >> 12)) {
            return Err(MapError::Occupied);
        }
        self.s2.insert(
            (mapper, gpa >> 12),
            S2Entry {
                page,
                writable: !readonly,
                kind: Kind::Foreign,
            },
        );
        self.log.push(Event::MapForeign {
            mapper,
            gpa,
            page: page.pa(),
            readonly,
        });
        Ok(())
    }

    fn unmap_foreign(&mut self, mapper: DomId, gpa: u64, page: SharedPage) -> Result<(), MapError> {
        match self.at(mapper, gpa >> 12) {
            Some(e) if e.kind == Kind::Foreign && e.page == page => {
                self.s2.remove(&(mapper, gpa >> 12));
                self.log.push(Event::UnmapForeign { mapper, gpa });
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
        let mut buf = alloc::vec![0; len];
        src.read(src_offset, &mut buf);
        dst.write(dst_offset, &buf);
    }

    fn write_guest(&mut self, dom: DomId, va: u64, bytes: &[u8]) -> Result<(), Errno> {
        if va == BAD_VA {
            return Err(EFAULT);
        }
        self.guest_writes.insert((dom, va), bytes.to_vec());
        Ok(())
    }

    fn cache_maintenance(&mut self, page: SharedPage, offset: usize, len: usize, op: CacheOp) {
        self.log.push(Event::Cache {
            page: page.pa(),
            offset,
            len,
            op,
        });
    }
}

// ---- A world of domains, and the guest's view of the argument structs ----
//
// The encoders below write fields at the offsets of Xen's public header for
// arm64 (spec §3.5.6), as literal numbers: they must not share constants with
// the code under test, so a wrong offset there fails the tests.

use crate::abi::{Entry, gtf};
use crate::env::GrantFrame;
use crate::tables::GrantTables;

pub type Tables = GrantTables<SharedPage, SharedPage>;

pub const D1: DomId = 1;
pub const D2: DomId = 2;
pub const D3: DomId = 3;
/// First guest frame of RAM (0x4000_0000); each domain has 8 pages there.
pub const RAM: u64 = 0x4_0000;
/// Where mappers put grants: the start of a domU's first extended region.
pub const EXT: u64 = 0x4800_0000;

pub struct World {
    pub env: FakeEnv,
    pub gt: Tables,
}

impl World {
    /// Domains 1 to 3 with Xen's default limits.
    pub fn new() -> Self {
        Self::with_limits(64, 1024)
    }

    pub fn with_limits(max_frames: u32, max_maptrack_frames: u32) -> Self {
        let mut env = FakeEnv::new();
        let mut gt = Tables::new();
        for dom in [D1, D2, D3] {
            gt.domain_created(&mut env, dom, max_frames, max_maptrack_frames)
                .unwrap();
            for gfn in RAM..RAM + 8 {
                env.add_ram(dom, gfn);
            }
        }
        Self { env, gt }
    }

    /// The guest `dom` writes entry `gref` of its table.
    pub fn grant(&self, dom: DomId, gref: u32, flags: u16, domid: DomId, frame: u64) {
        let f = self.gt.frame(dom, gref / 512).expect("frame exists");
        f.store(
            gref as usize % 512,
            Entry {
                flags,
                domid,
                frame: frame as u32,
            },
        );
    }

    pub fn flags(&self, dom: DomId, gref: u32) -> u16 {
        self.gt
            .frame(dom, gref / 512)
            .unwrap()
            .entry(gref as usize % 512)
            .flags
    }

    pub fn op(&mut self, caller: DomId, cmd: u32, count: u32, args: &mut [u8]) -> i64 {
        self.gt.grant_table_op(
            &mut self.env,
            caller,
            u64::from(cmd),
            u64::from(count),
            args,
        )
    }

    /// `map_grant_ref` of one element: (rc, status, handle, dev_bus_addr).
    pub fn map(
        &mut self,
        caller: DomId,
        gpa: u64,
        flags: u32,
        gref: u32,
        dom: DomId,
    ) -> (i64, i16, u32, u64) {
        let mut b = map_arg(gpa, flags, gref, dom);
        let rc = self.op(caller, 0, 1, &mut b);
        let (st, handle, addr) = map_result(&b);
        (rc, st, handle, addr)
    }

    /// `unmap_grant_ref` of one element: its status.
    pub fn unmap(&mut self, caller: DomId, gpa: u64, handle: u32) -> i16 {
        let mut b = unmap_arg(gpa, 0, handle);
        assert_eq!(self.op(caller, 1, 1, &mut b), 0);
        i16_at(&b, 20)
    }

    /// D1's RAM page at `gfn`.
    pub fn ram(&self, dom: DomId, gfn: u64) -> SharedPage {
        self.env.at(dom, gfn).unwrap().page
    }
}

/// The guest's half of revoking a grant, as Linux does it: clear the
/// entry unless the hypervisor marks it in use.
pub fn guest_revokes(frame: &SharedPage, index: usize) -> bool {
    let mut seen = frame.load_u16(index * 8);
    loop {
        if seen & (gtf::READING | gtf::WRITING) != 0 {
            return false;
        }
        match frame.compare_exchange_u16(index * 8, seen, 0) {
            Ok(_) => return true,
            Err(now) => seen = now,
        }
    }
}

pub fn i16_at(b: &[u8], off: usize) -> i16 {
    i16::from_le_bytes([b[off], b[off + 1]])
}

pub fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

pub fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

pub fn map_arg(host_addr: u64, flags: u32, gref: u32, dom: DomId) -> [u8; 32] {
    let mut b = [0xaau8; 32];
    b[0..8].copy_from_slice(&host_addr.to_le_bytes());
    b[8..12].copy_from_slice(&flags.to_le_bytes());
    b[12..16].copy_from_slice(&gref.to_le_bytes());
    b[16..18].copy_from_slice(&dom.to_le_bytes());
    b
}

/// (status @18, handle @20, dev_bus_addr @24).
pub fn map_result(b: &[u8]) -> (i16, u32, u64) {
    (i16_at(b, 18), u32_at(b, 20), u64_at(b, 24))
}

pub fn unmap_arg(host_addr: u64, dev_bus_addr: u64, handle: u32) -> [u8; 24] {
    let mut b = [0u8; 24];
    b[0..8].copy_from_slice(&host_addr.to_le_bytes());
    b[8..16].copy_from_slice(&dev_bus_addr.to_le_bytes());
    b[16..20].copy_from_slice(&handle.to_le_bytes());
    b[20..22].copy_from_slice(&0x7777u16.to_le_bytes());
    b
}

/// One side of a copy: a grant reference or guest frame, a domain, an
/// offset.
#[derive(Clone, Copy)]
pub struct Ptr(pub u64, pub DomId, pub u16);

pub fn copy_arg(src: Ptr, dst: Ptr, len: u16, flags: u16) -> [u8; 40] {
    let mut b = [0u8; 40];
    for (at, p) in [(0, src), (16, dst)] {
        b[at..at + 8].copy_from_slice(&p.0.to_le_bytes());
        b[at + 8..at + 10].copy_from_slice(&p.1.to_le_bytes());
        b[at + 10..at + 12].copy_from_slice(&p.2.to_le_bytes());
    }
    b[32..34].copy_from_slice(&len.to_le_bytes());
    b[34..36].copy_from_slice(&flags.to_le_bytes());
    b[36..38].copy_from_slice(&0x7777u16.to_le_bytes());
    b
}
