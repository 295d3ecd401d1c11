//! The xenstore server from three guests: well-formed requests built from
//! the words of the protocol (paths, permissions, watch tokens,
//! transaction ends), raw bytes through the shared ring, guests that
//! scribble over their ring indices, fill their rings without reading
//! replies, and domains released and introduced again; with quotas small
//! enough that every bound is reached.

use std::cell::RefCell;
use std::rc::Rc;

use oxen_xenstore::wire::{HEADER_LEN, Header, ring};
use oxen_xenstore::{DomId, DomainInfo, Perm, PermKind, Quotas, RingPage, Xenstore};

use crate::input::Input;

const DOMAINS: u16 = 3;

/// A ring page; clones share the memory, as the guest's and the server's
/// mappings do. Offsets past the page panic, as a bug should.
#[derive(Clone)]
struct Page(Rc<RefCell<[u8; 4096]>>);

impl RingPage for Page {
    fn load_u32(&self, off: usize) -> u32 {
        let b = self.0.borrow();
        u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
    }
    fn store_u32(&self, off: usize, v: u32) {
        self.0.borrow_mut()[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn read(&self, off: usize, out: &mut [u8]) {
        out.copy_from_slice(&self.0.borrow()[off..off + out.len()]);
    }
    fn write(&self, off: usize, data: &[u8]) {
        self.0.borrow_mut()[off..off + data.len()].copy_from_slice(data);
    }
}

impl Page {
    /// The guest appends bytes to its request ring, as far as they fit.
    fn push(&self, bytes: &[u8]) {
        let prod = self.load_u32(ring::REQ_PROD);
        let used = prod.wrapping_sub(self.load_u32(ring::REQ_CONS));
        let room = (ring::SIZE.saturating_sub(used)) as usize;
        let mut p = prod;
        for &b in bytes.iter().take(room) {
            self.write(ring::REQ + (p % ring::SIZE) as usize, &[b]);
            p = p.wrapping_add(1);
        }
        self.store_u32(ring::REQ_PROD, p);
    }

    /// The guest consumes every reply waiting.
    fn consume(&self) {
        let prod = self.load_u32(ring::RSP_PROD);
        self.store_u32(ring::RSP_CONS, prod);
    }
}

/// Words of the protocol that payloads are made of.
const WORDS: &[&[u8]] = &[
    b"/local/domain/1",
    b"/local/domain/2",
    b"/local/domain/3",
    b"/local/domain/1/data",
    b"/local/domain/2/device/vif/0",
    b"/local/domain/1/device/vif/0/state",
    b"/local/domain",
    b"/tool/xenstored",
    b"/vm",
    b"/",
    b"data",
    b"data/a",
    b"device/vif/0/state",
    b"control/shutdown",
    b"@introduceDomain",
    b"@releaseDomain",
    b"@other",
    b"tok",
    b"4",
    b"n0",
    b"n1",
    b"r2",
    b"w3",
    b"b1",
    b"x9",
    b"T",
    b"F",
    b"1",
    b"0",
    b"..",
    b"//",
    b"a\x01b",
];

fn payload(i: &mut Input<'_>) -> Vec<u8> {
    let mut p = Vec::new();
    for _ in 0..i.below(6) {
        match i.below(8) {
            0..=4 => p.extend_from_slice(WORDS[usize::from(i.below(WORDS.len() as u8))]),
            5 => {
                let n = usize::from(i.u8());
                p.extend_from_slice(i.bytes(n));
            }
            6 => {
                // A long component, near the path and node-size bounds.
                let n = 200 * usize::from(1 + i.below(16));
                p.extend(std::iter::repeat_n(b'x', n));
            }
            _ => {}
        }
        if i.below(4) != 0 {
            p.push(0);
        }
    }
    p
}

fn quotas(i: &mut Input<'_>) -> Quotas {
    let mut q = Quotas::default();
    if i.below(2) == 0 {
        q.nodes_per_domain = usize::from(i.below(32));
        q.node_size = 64 + usize::from(i.u8()) * 8;
        q.perms_per_node = usize::from(i.below(6));
        q.path_max = 16 + usize::from(i.u8());
        q.watches_per_domain = usize::from(i.below(8));
        q.transactions_per_domain = usize::from(i.below(4));
        q.nodes_per_transaction = usize::from(i.below(32));
        q.outstanding_requests = 1 + usize::from(i.below(8));
        q.queued_events = usize::from(i.below(16));
    }
    q
}

fn info(dom: DomId) -> DomainInfo<'static> {
    DomainInfo {
        domid: dom,
        name: ["domU1", "domU2", "domU3"][usize::from(dom - 1) % 3],
        memory_kib: 262144,
        vcpus: 1,
        port: 1,
        ring_gfn: 0x3_9000,
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut i = Input::new(data);
    let q = quotas(&mut i);
    let mut xs: Xenstore<Page> = Xenstore::new(q);
    if i.below(2) == 0 {
        xs.set_transaction_bytes(usize::from(i.u16()));
    }
    let mut pages: Vec<Page> = Vec::new();
    for dom in 1..=DOMAINS {
        let p = Page(Rc::new(RefCell::new([0; 4096])));
        xs.introduce_domain(&info(dom), p.clone())
            .expect("a fresh domain is introduced");
        pages.push(p);
    }
    let mut ops = 0;
    while !i.is_empty() && ops < 256 {
        ops += 1;
        let dom = 1 + DomId::from(i.below(DOMAINS as u8));
        let page = &pages[usize::from(dom - 1)];
        match i.below(16) {
            // A request handled directly.
            0..=6 => {
                let ty = match i.below(8) {
                    0 => i.u32(),
                    _ => u32::from(i.below(28)),
                };
                let tx = match i.below(4) {
                    0 => i.u32(),
                    _ => u32::from(i.below(4)),
                };
                let msg = Header::message(ty, i.u32(), tx, &payload(&mut i));
                // The first piece may be the rest of a message already
                // half in the ring (`handle_message` drains the queue);
                // every other is whole.
                for reply in xs.handle_message(dom, &msg).iter().skip(1) {
                    let h = Header::parse(reply).expect("a queued message has a header");
                    assert_eq!(
                        reply.len(),
                        HEADER_LEN + h.len as usize,
                        "a queued message's length field is wrong"
                    );
                }
            }
            // The same through the ring, in pieces, with raw bytes.
            7..=9 => {
                let msg = match i.below(3) {
                    0 => {
                        let n = usize::from(i.u8());
                        i.bytes(n).to_vec()
                    }
                    _ => {
                        let ty = u32::from(i.below(28));
                        let tx = u32::from(i.below(4));
                        let mut m = Header::message(ty, i.u32(), tx, &payload(&mut i));
                        if i.below(8) == 0 {
                            // A lying length field.
                            m[12..16].copy_from_slice(&i.u32().to_le_bytes());
                        }
                        m
                    }
                };
                page.push(&msg);
                xs.kick(dom);
                if i.below(2) == 0 {
                    page.consume();
                }
            }
            // The guest scribbles over its ring's indices or flags.
            10 => {
                let off = [
                    ring::REQ_CONS,
                    ring::REQ_PROD,
                    ring::RSP_CONS,
                    ring::RSP_PROD,
                    ring::CONNECTION,
                    ring::ERROR,
                ][usize::from(i.below(6))];
                page.store_u32(off, i.u32());
                xs.kick(dom);
            }
            // The guest reads its replies.
            11 => {
                page.consume();
                xs.kick(dom);
                let _ = xs.needs_kick(dom);
            }
            // The hypervisor writes, reads and removes as the toolstack.
            12 => {
                let path = String::from_utf8_lossy(&payload(&mut i)).into_owned();
                match i.below(4) {
                    0 => {
                        let _ = xs.write(&path, i.bytes(16));
                    }
                    1 => {
                        let _ = xs.rm(&path);
                    }
                    2 => {
                        let perms = [Perm {
                            dom: 1 + DomId::from(i.below(DOMAINS as u8)),
                            kind: PermKind::Read,
                        }];
                        let _ = xs.set_perms(&path, &perms);
                    }
                    _ => {
                        let _ = xs.read(&path);
                        let _ = xs.directory(&path);
                        let _ = xs.ls(&path, 16);
                    }
                }
            }
            // A domain released, and maybe introduced again.
            13 => {
                xs.release_domain(dom);
                if i.below(2) == 0 {
                    let _ = xs.introduce_domain(&info(dom), page.clone());
                }
            }
            _ => {
                let _ = xs.take_notifications();
                let _ = xs.dropped_events(dom);
            }
        }
    }
}
