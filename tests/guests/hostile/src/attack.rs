//! The attack: `count` calls drawn from one seeded generator, each ending
//! in an errno, an injected abort or a defined result, all counted.
//!
//! The guest may hurt only itself, and only where it does not run: every
//! value that could be an address or a frame of its own RAM is moved into
//! the *scratch* area (16 MiB of RAM the guest never uses for itself) or
//! the last MiB of RAM, so whatever the hypervisor writes for a call (a
//! `vcpu_info`, a runstate area, a copy's destination, a `shared_info`
//! mapped over a frame) lands where nothing is kept. The same holds for
//! its xenstore ring's frame. Three calls that would end the run are kept
//! out — PSCI SYSTEM_OFF, SYSTEM_RESET (and RESET2, SYSTEM_OFF2) and
//! CPU_OFF, `sched_op(shutdown)` with a reason that stops the domain — and
//! closing or resetting its own xenstore port, so the xenstore traffic
//! keeps reaching the server. Calls that wait (SCHEDOP_block,
//! CPU_SUSPEND, WFI) are made with the virtual timer armed, so they end.

use oxen_guest_common::println;
use oxen_guest_common::xen::Shared;

use crate::rng::Rng;
use crate::xen::{self, DOMID_SELF, nr};

/// `console_io`, which the common numbers leave out.
const CONSOLE_IO: u64 = 18;
use crate::{Layout, arch, checks, trap};

/// What a call came back with.
enum Result {
    /// A hypercall's x0: 0 or more is a result, less an errno.
    Xen(i64),
    /// A PSCI or SMCCC call's result (int32).
    Psci(i32),
    /// An access or system-register operation that completed.
    Done,
}

/// The outcome counts of a run.
pub struct Stats {
    pub calls: u64,
    pub ok: u64,
    /// Hypercalls that returned `-n`, by n (0 unused; the last bucket is
    /// every n past it).
    pub errno: [u64; 136],
    /// PSCI results by `-r` (0 is success).
    pub psci: [u64; 10],
    pub psci_other: u64,
    /// Calls during which the guest took an exception.
    pub aborted: u64,
    /// Calls of each kind: hypercall, PSCI, MMIO, system register,
    /// xenstore, isolation probe.
    pub kinds: [u64; 6],
}

/// Start and length of the scratch area, inside RAM.
const SCRATCH_OFFSET: u64 = 16 << 20;
const SCRATCH_LEN: u64 = 16 << 20;
/// The tail of RAM the guest leaves alone too (pointers across its end).
const TAIL_LEN: u64 = 1 << 20;

/// The guest and its generator.
pub struct Attack<'a> {
    pub rng: Rng,
    l: &'a Layout,
    scratch: u64,
    ram_end: u64,
    xs_ring: u64,
    xs_port: u32,
    peers: [u16; 4],
    npeers: usize,
}

/// Unmapped windows of a domU's IPA space (QEMU's host devices among
/// them, which the domain must never reach) and addresses past the IPA
/// size.
const UNMAPPED: [u64; 12] = [
    0,
    0x1000,
    0x0800_0000,
    0x0801_0000,
    0x0900_0000,
    0x0a00_0000,
    0x1000_0000,
    0x3ec0_0000,
    0x3900_0000,
    0xff_ffff_f000,
    1 << 44,
    0x8_0000_0000,
];

impl<'a> Attack<'a> {
    pub fn new(l: &'a Layout, seed: u64, bootargs: &str) -> Self {
        let mut peers = [0u16; 4];
        let mut npeers = 0;
        if let Some(list) = oxen_guest_common::dt::bootarg(bootargs, "hostile.peers") {
            for p in list.split(',').filter_map(|p| p.parse().ok()) {
                if npeers < peers.len() {
                    peers[npeers] = p;
                    npeers += 1;
                }
            }
        }
        let (xs_ring, xs_port) = match (
            xen::hvm_param(xen::HVM_PARAM_STORE_PFN),
            xen::hvm_param(xen::HVM_PARAM_STORE_EVTCHN),
        ) {
            (Ok(pfn), Ok(port)) if pfn != 0 => (pfn << 12, port as u32),
            _ => (0, 0),
        };
        Self {
            rng: Rng::new(seed),
            l,
            scratch: l.ram.0 + SCRATCH_OFFSET,
            ram_end: l.ram.0 + l.ram.1,
            xs_ring,
            xs_port,
            peers,
            npeers,
        }
    }

    pub fn peers_copy(&self) -> ([u16; 4], usize) {
        (self.peers, self.npeers)
    }

    /// Where a map that must fail is asked to go: an extended region if
    /// there is one (where a granted page would be mapped), else unmapped.
    pub fn unmapped_target(&mut self) -> u64 {
        if self.l.nhyp > 1 {
            self.l.hyp[1].0 + (self.rng.below(256) << 12)
        } else {
            0x1000_0000
        }
    }

    pub fn store(&self) -> Option<(u64, u32)> {
        (self.xs_ring != 0).then_some((self.xs_ring, self.xs_port))
    }

    /// Whether guest address `a` holds something the guest keeps: its RAM
    /// outside scratch and the tail.
    fn kept(&self, a: u64) -> bool {
        a >= self.l.ram.0
            && a < self.ram_end - TAIL_LEN
            && !(a >= self.scratch && a < self.scratch + SCRATCH_LEN)
    }

    /// `v` unless, read as an address or a frame number, it names
    /// something the guest keeps (or its xenstore ring's frame); then a
    /// scratch address or frame instead.
    fn safe(&self, v: u64) -> u64 {
        let xs_frame = self.xs_ring >> 12;
        if self.kept(v) || (self.xs_ring != 0 && v >> 12 == xs_frame) {
            return self.scratch + v % SCRATCH_LEN;
        }
        if v < 1 << 52 && (self.kept(v << 12) || (self.xs_ring != 0 && v == xs_frame)) {
            return (self.scratch >> 12) + v % (SCRATCH_LEN >> 12);
        }
        v
    }

    /// `safe` for a 64-bit field and for each 32-bit half of it, as a
    /// structure may read either.
    fn safe_word(&self, w: u64) -> u64 {
        let mut w = self.safe(w);
        for shift in [0, 32] {
            let half = (w >> shift) & 0xffff_ffff;
            let fixed = self.safe(half) & 0xffff_ffff;
            w = (w & !(0xffff_ffff << shift)) | (fixed << shift);
        }
        w
    }

    /// A pointer: into scratch (often at a page's end), across the end of
    /// RAM, unmapped, into the emulated devices, the grant window, the
    /// xenstore page, an extended region, a kernel-like virtual address,
    /// NULL, or anything.
    pub fn ptr(&mut self) -> u64 {
        let r = &mut self.rng;
        let p = match r.below(12) {
            0..=2 => {
                let off = r.below(SCRATCH_LEN - 4096);
                self.scratch + if r.one_in(4) { off } else { off & !7 }
            }
            3 => self.scratch + (r.below(SCRATCH_LEN >> 12) << 12) + 4096 - 1 - r.below(64),
            4 => self.ram_end - 1 - r.below(8192),
            5 => r.pick(&UNMAPPED) + r.below(0x1000),
            6 => match r.below(3) {
                0 => self.l.gicd.0 + r.below(self.l.gicd.1.max(1)),
                1 => self.l.gicr.0 + r.below(self.l.gicr.1.max(1)),
                _ => self.l.uart + r.below(0x1000),
            },
            7 => {
                if r.one_in(2) && self.l.nhyp > 0 {
                    self.l.hyp[0].0 + r.below(self.l.hyp[0].1)
                } else {
                    0x3900_0000 + r.below(0x2000)
                }
            }
            8 if self.l.nhyp > 1 => {
                let (b, n) = self.l.hyp[1 + r.below(self.l.nhyp as u64 - 1) as usize];
                b + r.below(n)
            }
            9 => 0xffff_0000_0000_0000 | (r.next() & 0xffff_ffff_ffff),
            10 => r.below(64),
            _ => r.next(),
        };
        self.safe(p)
    }

    fn domid(&mut self) -> u64 {
        let r = &mut self.rng;
        match r.below(6) {
            0 => u64::from(DOMID_SELF),
            1 => r.below(5),
            2 => 0x7ff0 + r.below(16),
            3 if self.npeers > 0 => u64::from(self.peers[r.below(self.npeers as u64) as usize]),
            _ => r.below(0x10000),
        }
    }

    fn port(&mut self) -> u64 {
        let r = &mut self.rng;
        match r.below(4) {
            0 => r.below(16),
            1 => r.pick(&[10, 12, 1023, 1024, 4095, 4096, 1 << 17, (1 << 17) - 1]),
            2 => r.below(1 << 18),
            _ => r.next() & 0xffff_ffff,
        }
    }

    /// A value for an argument or a structure field.
    pub fn val(&mut self) -> u64 {
        let v = match self.rng.below(11) {
            0 => 0,
            1 => self.rng.below(16),
            2 => self.rng.below(4096),
            3 => self.domid(),
            4 => self.port(),
            5 => self.rng.pick(&[
                u64::MAX,
                u64::from(u32::MAX),
                1 << 31,
                0x7fff_ffff,
                1 << 63,
                0xffff,
                0x8000,
            ]),
            6 => self.ptr(),
            7 => self.ptr() >> 12,
            _ => self.rng.next(),
        };
        self.safe_word(v)
    }

    /// Fills the 256 bytes at `at` (8-aligned, in scratch) with fields: 64-
    /// bit values, pairs of 32-bit ones, or four 16-bit ones (domain IDs,
    /// sizes, flags).
    fn fill(&mut self, at: u64) {
        let s = Shared(at as usize);
        for i in 0..32 {
            let w = match self.rng.below(3) {
                0 => self.val(),
                1 => (self.val() & 0xffff_ffff) | (self.val() << 32),
                _ => {
                    let mut w = 0;
                    for k in 0..4 {
                        let h = if self.rng.one_in(2) {
                            self.domid()
                        } else {
                            self.rng.below(8)
                        };
                        w |= (h & 0xffff) << (16 * k);
                    }
                    w
                }
            };
            s.w64(i * 8, self.safe_word(w));
        }
    }

    /// An argument structure: usually in scratch, filled, sometimes
    /// across a page end or misaligned; otherwise a hostile pointer.
    fn arg(&mut self) -> u64 {
        match self.rng.below(10) {
            0..=6 => {
                let page = self.scratch + (self.rng.below((SCRATCH_LEN >> 12) - 1) << 12);
                let at = if self.rng.one_in(3) {
                    page + 4096 - 8 * (1 + self.rng.below(16))
                } else {
                    page + 8 * self.rng.below(64)
                };
                self.fill(at);
                at + if self.rng.one_in(8) {
                    self.rng.below(8)
                } else {
                    0
                }
            }
            _ => self.ptr(),
        }
    }

    /// A scratch structure whose first fields the caller then sets.
    fn own_arg(&mut self) -> Shared {
        let at = self.scratch + (self.rng.below((SCRATCH_LEN >> 12) - 1) << 12);
        self.fill(at);
        Shared(at as usize)
    }

    fn hypercall(&mut self) -> Result {
        const KNOWN: [u64; 10] = [12, 17, 18, 20, 20, 21, 24, 29, 32, 34];
        let nr = match self.rng.below(20) {
            0..=16 => self.rng.pick(&KNOWN),
            17 | 18 => self.rng.below(64),
            _ => self.rng.next(),
        };
        let mut a = [
            self.rng.below(16),
            self.arg(),
            self.val(),
            self.val(),
            self.val(),
        ];
        if self.rng.one_in(10) {
            a[0] = self.val();
        }
        let mut timer = false;
        match nr {
            nr::MEMORY_OP if self.rng.one_in(2) => {
                a[0] = xen::XENMEM_ADD_TO_PHYSMAP;
                if self.rng.one_in(2) {
                    // A plausible add_to_physmap with a hostile detail.
                    let s = self.own_arg();
                    let dom = self.domid() as u16;
                    let space = self.rng.pick(&[0, 1, 1, 2, 3, 4, 5, 99]);
                    let idx = self.rng.pick(&[0, 1, 2, 3, 31, 32, 64, u64::MAX]);
                    let p = self.ptr() >> 12;
                    let gpfn = self.safe(p);
                    s.w16(0, dom);
                    s.w16(2, self.rng.below(3) as u16);
                    s.w32(4, space);
                    s.w64(8, idx);
                    s.w64(16, gpfn);
                    a[1] = s.0 as u64;
                }
            }
            CONSOLE_IO => {
                a[0] = self.rng.below(3);
                // Long writes only from where nothing can be read: a
                // readable one would just be printed.
                a[1] = if self.rng.one_in(10) {
                    self.val()
                } else {
                    self.rng.below(80)
                };
                a[2] = self.arg();
                if a[1] > 4096 && self.kept_or_readable(a[2]) {
                    a[1] = self.rng.below(80);
                }
            }
            nr::GRANT_TABLE_OP => {
                a[0] = if self.rng.one_in(8) {
                    self.val()
                } else {
                    self.rng.below(14)
                };
                a[2] = self
                    .rng
                    .pick(&[1, 1, 1, 1, 2, 3, 0, 16, 0x7fff_ffff, u64::MAX, 1 << 32]);
            }
            nr::SCHED_OP => {
                let cmd = self.rng.pick(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 99]);
                a[0] = cmd;
                match cmd {
                    1 => timer = true,
                    2 => {
                        // A shutdown whose reason does not stop the domain:
                        // suspend, soft reset, or one that does not exist;
                        // or a pointer the hypervisor cannot read.
                        if self.rng.one_in(4) {
                            a[1] = self.rng.pick(&UNMAPPED[1..9]);
                        } else {
                            let s = self.own_arg();
                            s.w32(0, self.rng.pick(&[2, 5, 6, 7, 99, u32::MAX]));
                            a[1] = s.0 as u64;
                        }
                    }
                    _ => {}
                }
            }
            nr::VCPU_OP => {
                a[0] = self
                    .rng
                    .pick(&[10, 10, 5, 0, 1, 2, 3, 4, 6, 7, 8, 11, 13, 99]);
                a[1] = self.rng.pick(&[0, 0, 1, 2, 0xffff_ffff]);
                a[2] = self.arg();
                // Nothing that takes the boot vCPU down.
                if a[0] == 2 && a[1] == 0 {
                    a[0] = 99;
                }
            }
            nr::EVENT_CHANNEL_OP => {
                a[0] = if self.rng.one_in(10) {
                    self.val()
                } else {
                    self.rng.below(14)
                };
                // Keep the store port: close, bind_vcpu and reset of this
                // domain would cut the xenstore traffic off.
                let s = Shared(a[1] as usize);
                let in_scratch = a[1] >= self.scratch
                    && a[1] + 16 <= self.scratch + SCRATCH_LEN
                    && a[1].is_multiple_of(4);
                match a[0] {
                    3 | 8 if in_scratch && s.r32(0) == self.xs_port => s.w32(0, 0x7777),
                    3 | 8 if !in_scratch => a[1] = self.rng.pick(&UNMAPPED[1..9]),
                    10 if in_scratch && matches!(s.r16(0), 0x7ff0 | 1) => s.w16(0, self.peer_or(3)),
                    10 if !in_scratch => a[1] = self.rng.pick(&UNMAPPED[1..9]),
                    _ => {}
                }
            }
            nr::HVM_OP => {
                a[0] = self.rng.pick(&[0, 1, 1, 2, 3, 5, 99]);
            }
            nr::VM_ASSIST => {
                a[0] = self.rng.below(4);
                a[1] = self.rng.pick(&[0, 1, 2, 5, 31, 32, u64::MAX]);
            }
            _ => {}
        }
        if timer {
            self.wakeable();
            arch::timer_arm(arch::ms(2));
        }
        let r = trap::hypercall(nr, a);
        if timer {
            arch::timer_stop();
        }
        Result::Xen(r)
    }

    /// Undoes what the random accesses may have done to the guest's GIC
    /// that would keep its timer's interrupt from waking it: a wait for an
    /// interrupt that cannot come would never end, on hardware too.
    fn wakeable(&self) {
        checks::timer_wakes(self.l);
    }

    fn peer_or(&mut self, default: u16) -> u16 {
        if self.npeers > 0 {
            self.peers[self.rng.below(self.npeers as u64) as usize]
        } else {
            default
        }
    }

    /// Whether the hypervisor could read a long buffer at `p`: it lies in
    /// RAM.
    fn kept_or_readable(&self, p: u64) -> bool {
        p >= self.l.ram.0 && p < self.ram_end
    }

    fn psci(&mut self) -> Result {
        const FIDS: [u64; 22] = [
            0x8400_0000,
            0x8400_0001,
            0xc400_0001,
            0x8400_0003,
            0xc400_0003,
            0x8400_0004,
            0xc400_0004,
            0x8400_0005,
            0x8400_0006,
            0x8400_0007,
            0x8400_000a,
            0x8400_000b,
            0x8400_000c,
            0x8400_000e,
            0xc400_000e,
            0x8400_000f,
            0x8400_0010,
            0x8400_0011,
            0x8000_0000,
            0x8000_0001,
            0x8000_8000,
            0x8400_0013,
        ];
        let fid = if self.rng.one_in(8) {
            self.rng.next()
        } else {
            self.rng.pick(&FIDS)
        };
        // The calls that end the run, whatever the upper bits say.
        if matches!(
            fid as u32,
            0x8400_0002
                | 0x8400_0008
                | 0x8400_0009
                | 0x8400_0012
                | 0xc400_0012
                | 0x8400_0015
                | 0xc400_0015
        ) {
            return Result::Psci(0);
        }
        let target = self.rng.pick(&[0, 1, 2, 0x100, 0x1_0000, u64::MAX]);
        let (a1, a2, a3) = match fid as u32 & 0xbfff_ffff {
            // CPU_ON: a target, an entry point, a context ID.
            0x8400_0003 => (target, self.val(), self.val()),
            0x8400_0004 => (target, self.rng.below(4), 0),
            _ => (self.val(), self.val(), self.val()),
        };
        let suspend = matches!(
            fid as u32 & 0xbfff_ffff,
            0x8400_0001 | 0x8400_000c | 0x8400_000e
        );
        if suspend {
            self.wakeable();
            arch::timer_arm(arch::ms(2));
        }
        let r = trap::smccc(self.rng.one_in(4), fid, a1, a2, a3);
        if suspend {
            arch::timer_stop();
        }
        Result::Psci(r as u32 as i32)
    }

    fn mmio(&mut self) -> Result {
        let r = &mut self.rng;
        let addr = match r.below(10) {
            0..=2 => self.l.gicd.0 + r.below(self.l.gicd.1.max(1)),
            3 | 4 => self.l.gicr.0 + r.below(self.l.gicr.1.clamp(1, 0x4_0000)),
            5 => self.l.gicr.0 + r.below(self.l.gicr.1.max(1)),
            6 => self.l.uart + r.below(0x1000),
            _ => self.ptr(),
        };
        let aligned = if self.rng.one_in(5) { addr } else { addr & !7 };
        let kind = self.rng.below(18);
        let v = self.val();
        if self.kept(aligned) || self.kept(aligned + 16) {
            // A load or store the generator aimed at what the guest keeps.
            return Result::Done;
        }
        trap::access(kind, self.safe(aligned), v);
        Result::Done
    }

    fn sysreg(&mut self) -> Result {
        let which = self.rng.below(trap::SYSREGS + 4);
        if which >= trap::SYSREGS {
            match which - trap::SYSREGS {
                0 => trap::hvc_other(self.rng.next()),
                _ => {
                    self.wakeable();
                    arch::timer_arm(arch::ms(1));
                    trap::wfi();
                    arch::timer_stop();
                }
            }
            return Result::Done;
        }
        let v = self.val();
        trap::sysreg(which, v);
        Result::Done
    }

    /// One piece of xenstore traffic on the ring: a request (well formed
    /// or lying about its length), garbage, an index jump, a reset
    /// request, or a write anywhere in the page; usually signalled.
    fn xenstore(&mut self) -> Result {
        let Some((ring, port)) = self.store() else {
            return self.hypercall();
        };
        let p = Shared(ring as usize);
        const REQ_CONS: usize = 2048;
        const REQ_PROD: usize = 2052;
        const RSP_CONS: usize = 2056;
        const RSP_PROD: usize = 2060;
        const CONNECTION: usize = 2068;
        let put = |prod: &mut u32, b: u8| {
            p.w8((*prod % 1024) as usize, b);
            *prod = prod.wrapping_add(1);
        };
        let mut prod = p.r32(REQ_PROD);
        match self.rng.below(12) {
            0..=5 => {
                const PATHS: [&[u8]; 10] = [
                    b"domid\0",
                    b"data/h\0",
                    b"data/h\0v",
                    b"/local/domain/2/name\0",
                    b"/local/domain\0",
                    b"data/h\0tok\0",
                    b"//\0",
                    b"data/\xff\xfe\0",
                    b"",
                    b"\0\0\0",
                ];
                let ty = if self.rng.one_in(4) {
                    self.rng.next() as u32
                } else {
                    self.rng.below(24) as u32
                };
                let body = self.rng.pick(&PATHS);
                let extra = if self.rng.one_in(4) {
                    self.rng.below(300) as usize
                } else {
                    0
                };
                let mut len = (body.len() + extra) as u32;
                if self.rng.one_in(6) {
                    len = self
                        .rng
                        .pick(&[4096, 4097, 5000, 0xffff, u32::MAX, len + 7]);
                }
                let tx = self.rng.pick(&[0, 0, 1, 2, 9999, u32::MAX]);
                let id = self.rng.next() as u32;
                for w in [ty, id, tx, len] {
                    for b in w.to_le_bytes() {
                        put(&mut prod, b);
                    }
                }
                for &b in body {
                    put(&mut prod, b);
                }
                for _ in 0..extra {
                    let b = self.rng.next() as u8;
                    put(&mut prod, b);
                }
            }
            6 => {
                for _ in 0..self.rng.below(64) {
                    let b = self.rng.next() as u8;
                    put(&mut prod, b);
                }
            }
            7 => {
                prod = match self.rng.below(3) {
                    0 => self.rng.next() as u32,
                    1 => prod.wrapping_add(self.rng.below(5000) as u32),
                    _ => p.r32(REQ_CONS).wrapping_sub(1),
                };
            }
            8 => p.w32(RSP_CONS, self.rng.next() as u32),
            9 => p.w32(CONNECTION, 1),
            10 => p.w32(RSP_CONS, p.r32(RSP_PROD)),
            _ => {
                let off = (self.rng.below(1024) * 4) as usize;
                p.w32(off, self.rng.next() as u32);
                prod = p.r32(REQ_PROD);
            }
        }
        arch::barrier();
        p.w32(REQ_PROD, prod);
        arch::barrier();
        if self.rng.one_in(5) {
            return Result::Done;
        }
        Result::Xen(xen::send(port))
    }

    /// One call of a random kind.
    fn call(&mut self, stats: &mut Stats) -> Result {
        let kind = match self.rng.below(20) {
            0..=8 => 0,
            9..=11 => 1,
            12..=14 => 2,
            15 | 16 => 3,
            _ => 4,
        };
        stats.kinds[kind] += 1;
        match kind {
            0 => self.hypercall(),
            1 => self.psci(),
            2 => self.mmio(),
            3 => self.sysreg(),
            _ => self.xenstore(),
        }
    }
}

impl Stats {
    const fn new() -> Self {
        Self {
            calls: 0,
            ok: 0,
            errno: [0; 136],
            psci: [0; 10],
            psci_other: 0,
            aborted: 0,
            kinds: [0; 6],
        }
    }

    fn count(&mut self, r: Result, aborted: bool) {
        self.calls += 1;
        if aborted {
            self.aborted += 1;
            return;
        }
        match r {
            Result::Xen(v) if v >= 0 => self.ok += 1,
            Result::Xen(v) => {
                let n = v.unsigned_abs().min(self.errno.len() as u64 - 1);
                self.errno[n as usize] += 1;
            }
            Result::Psci(0) => self.ok += 1,
            Result::Psci(v) if v < 0 && v > -(self.psci.len() as i32) => {
                self.psci[v.unsigned_abs() as usize] += 1
            }
            Result::Psci(_) => self.psci_other += 1,
            Result::Done => self.ok += 1,
        }
    }

    /// The outcome counts, as `hostile: outcome …` lines short enough for
    /// the hypervisor's console (which cuts lines at 128 bytes): the
    /// totals, the exceptions by class, the errnos and the PSCI results.
    pub fn print(&self, seed: u64) {
        use core::fmt::Write;
        let mut c = oxen_guest_common::console::Console;
        let (ec, serrors, irqs) = trap::counts();
        println!(
            "hostile: outcome seed={seed:#x} calls={} ok={} aborted={} serror={serrors} irq={irqs}",
            self.calls, self.ok, self.aborted
        );
        let _ = write!(c, "hostile: outcome aborts");
        for (i, n) in ec.iter().enumerate().filter(|(_, n)| **n > 0) {
            let _ = write!(c, " ec{i:#04x}={n}");
        }
        let _ = write!(c, "\nhostile: outcome errno");
        for (i, n) in self.errno.iter().enumerate().filter(|(_, n)| **n > 0) {
            let _ = write!(c, " -{i}={n}");
        }
        let _ = write!(c, "\nhostile: outcome psci");
        for (i, n) in self.psci.iter().enumerate().filter(|(_, n)| **n > 0) {
            let _ = write!(c, " -{i}={n}");
        }
        let k = &self.kinds;
        let _ = writeln!(
            c,
            " other={}\nhostile: outcome kinds hypercall={} psci={} mmio={} sysreg={} xenstore={} probe={}",
            self.psci_other, k[0], k[1], k[2], k[3], k[4], k[5]
        );
    }
}

/// Makes `count` calls from `seed`; every 512th is one of the isolation
/// probes of `checks` (a map or copy of a peer's grant).
pub fn run(l: &Layout, bootargs: &str, seed: u64, count: u64) -> u64 {
    let mut a = Attack::new(l, seed, bootargs);
    let mut stats = Stats::new();
    let mut breaches = 0;
    let start = arch::ticks();
    for i in 0..count {
        let before = trap::total();
        let r = if i % 512 == 511 {
            stats.kinds[5] += 1;
            breaches += checks::probe_peer_grants(&mut a, i);
            Result::Done
        } else {
            a.call(&mut stats)
        };
        stats.count(r, trap::total() != before);
        if (i + 1) % 10_000 == 0 {
            println!("");
            println!(
                "hostile: {} calls, {} ms",
                i + 1,
                arch::ticks().wrapping_sub(start) / arch::ms(1).max(1)
            );
        }
    }
    let took = arch::ticks().wrapping_sub(start) / arch::ms(1).max(1);
    // Random vPL011 data may have left a line open.
    println!("");
    println!("hostile: {count} calls in {took} ms");
    stats.print(seed);
    breaches
}
