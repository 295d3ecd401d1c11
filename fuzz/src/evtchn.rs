//! `event_channel_op` from three guests, with the guests also writing
//! their shared pages (`shared_info`, FIFO control blocks and event
//! arrays) behind the hypervisor's back, and the hypervisor doing what it
//! does between hypercalls: VIRQs, ports it serves, `vcpu_info`
//! registration, domains destroyed and built again.
//!
//! Guest RAM is Oxen's own `SharedPage` over a fixed pool of host pages,
//! zeroed for each input: its accessors panic on a misaligned or
//! out-of-page offset exactly as in the hypervisor.

use std::cell::RefCell;

use oxen_core::shared::{SharedPage, test_page};
use oxen_core::xen::DomId;
use oxen_evtchn::{Env, EventChannels, Policy, Port, arg_size, has_output};

use crate::input::Input;

/// Guest frames per domain that exist (0..FRAMES); others are holes.
const FRAMES: u64 = 8;
/// Domains 1..=DOMAINS; a caller may also be one that does not exist.
const DOMAINS: u16 = 3;

/// The page pool: `FRAMES` frames of RAM for each domain, then one
/// `shared_info` per domain (index 0 is domain 0, never used). Allocated
/// once and kept, so a long run does not leak a page per input.
fn pool() -> &'static [SharedPage] {
    thread_local! {
        static POOL: &'static [SharedPage] = Box::leak(
            (0..(FRAMES as usize + 1) * (DOMAINS as usize + 1))
                .map(|_| test_page())
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        );
    }
    POOL.with(|p| *p)
}

fn ram(dom: DomId, gfn: u64) -> Option<SharedPage> {
    (1..=DOMAINS).contains(&dom).then_some(())?;
    (gfn < FRAMES).then_some(())?;
    pool()
        .get(usize::from(dom) * FRAMES as usize + gfn as usize)
        .copied()
}

fn shared_info(dom: DomId) -> SharedPage {
    pool()[(DOMAINS as usize + 1) * FRAMES as usize + usize::from(dom)]
}

#[derive(Default)]
struct FuzzEnv {
    upcalls: RefCell<usize>,
}

impl Env for FuzzEnv {
    type Page = SharedPage;

    fn guest_page(&self, dom: DomId, gfn: u64) -> Option<SharedPage> {
        ram(dom, gfn)
    }

    fn upcall(&self, _dom: DomId, _vcpu: usize) {
        *self.upcalls.borrow_mut() += 1;
    }

    fn notify_hypervisor(&self, _callback: u32, _dom: DomId, _port: Port) {}
}

fn domain(i: &mut Input<'_>) -> DomId {
    // Mostly a real domain; sometimes none, DOMID_SELF or anything.
    match i.u8() {
        0..=239 => 1 + DomId::from(i.below(DOMAINS as u8)),
        240..=247 => 0x7ff0,
        248..=251 => 0,
        _ => i.u16(),
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    for p in pool() {
        p.zero();
    }
    let mut i = Input::new(data);
    let flags = i.u8();
    let policy = if flags & 1 == 0 {
        Policy::Open
    } else {
        Policy::Silo
    };
    let mut ev: EventChannels<SharedPage> = EventChannels::new(policy, flags & 2 == 0);
    let env = FuzzEnv::default();
    let max_port = |i: &mut Input<'_>| match i.below(4) {
        0 => 1023,
        1 => 4095,
        2 => u32::from(i.u8()),
        _ => i.u32() % 200_000,
    };
    for d in 1..=DOMAINS {
        let vcpus = 1 + usize::from(i.below(4));
        let mp = max_port(&mut i);
        let _ = ev.domain_created(d, vcpus, mp, shared_info(d));
    }
    if flags & 4 == 0 {
        ev.allow(1, 2);
    }
    let mut ops = 0;
    while !i.is_empty() && ops < 512 {
        ops += 1;
        match i.below(16) {
            // The hypercall, most of the time.
            0..=8 => {
                let caller = domain(&mut i);
                let cmd = match i.below(8) {
                    0 => i.u32(),
                    _ => u32::from(i.below(16)),
                };
                let size = match (arg_size(cmd), i.below(16)) {
                    (Some(s), 1..) => s,
                    (_, _) => usize::from(i.below(32)),
                };
                let mut arg = i.bytes(size).to_vec();
                arg.resize(size, 0);
                let before = arg.clone();
                let rc = ev.event_channel_op(&env, caller, cmd, &mut arg);
                assert!(rc <= 0, "event_channel_op returned {rc}");
                if rc != 0 || !has_output(cmd) {
                    assert_eq!(arg, before, "a failed or output-less op wrote its argument");
                }
            }
            // The guest writes its RAM (FIFO control blocks, event arrays).
            9 | 10 => {
                let dom = 1 + DomId::from(i.below(DOMAINS as u8));
                let gfn = u64::from(i.below(FRAMES as u8));
                let off = usize::from(i.u16() % 512) * 8;
                let v = i.u64();
                if let Some(p) = ram(dom, gfn) {
                    p.store_u64(off, v);
                }
            }
            // The guest writes its shared_info page.
            11 => {
                let dom = 1 + DomId::from(i.below(DOMAINS as u8));
                let off = usize::from(i.u16() % 512) * 8;
                shared_info(dom).store_u64(off, i.u64());
            }
            // VCPUOP_register_vcpu_info and the shared_info placement.
            12 => {
                let dom = domain(&mut i);
                let vcpu = usize::from(i.u8());
                let gfn = u64::from(i.below(FRAMES as u8 + 2));
                let offset = match i.below(4) {
                    0 => i.u32(),
                    _ => u32::from(i.u16() % 4096),
                };
                let _ = ev.register_vcpu_info(&env, dom, vcpu, gfn, offset);
                let _ = ev.map_shared_info(dom, u64::from(i.below(2)), gfn);
            }
            // The hypervisor's own ports and VIRQs.
            13 => {
                let dom = domain(&mut i);
                match i.below(4) {
                    0 => {
                        let _ = ev.bind_hypervisor(dom, i.index(), i.u32(), domain(&mut i));
                    }
                    1 => {
                        let _ = ev.notify(&env, dom, i.index());
                    }
                    2 => {
                        let _ = ev.unbind_hypervisor(dom, i.index());
                    }
                    _ => {
                        let _ = ev.raise_virq(&env, dom, usize::from(i.u8()), i.index());
                    }
                }
            }
            // Queries the hypervisor makes.
            14 => {
                let dom = domain(&mut i);
                let _ = ev.upcall_pending(dom, usize::from(i.u8()));
                let _ = ev.is_pending(dom, i.index());
                let _ = ev.uses_fifo(dom);
                let _ = ev.shared_info_gfn(dom);
            }
            // A domain destroyed, and maybe built again.
            _ => {
                let dom = 1 + DomId::from(i.below(DOMAINS as u8));
                ev.domain_destroyed(dom);
                if i.below(2) == 0 {
                    shared_info(dom).zero();
                    let vcpus = 1 + usize::from(i.below(4));
                    let mp = max_port(&mut i);
                    let _ = ev.domain_created(dom, vcpus, mp, shared_info(dom));
                }
            }
        }
    }
    for d in 1..=DOMAINS {
        ev.domain_destroyed(d);
    }
}
