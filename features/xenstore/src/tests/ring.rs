//! The ring protocol: framing, wrap, partial messages, protocol errors,
//! back-pressure, reset, notifications.

use crate::fake::*;
use crate::wire::{Header, ring, ty};
use crate::{Quotas, RingPage, SERVER_FEATURES, Xenstore};

/// A server with domain 1 introduced on a page whose indices start at
/// `start` (guests must not assume 0).
fn world_at(start: u32) -> (Xenstore<FakePage>, FakePage) {
    let mut xs = Xenstore::new(Quotas::default());
    let page = FakePage::new();
    for off in [
        ring::REQ_CONS,
        ring::REQ_PROD,
        ring::RSP_CONS,
        ring::RSP_PROD,
    ] {
        page.store_u32(off, start);
    }
    xs.introduce_domain(&info(1), page.clone()).unwrap();
    (xs, page)
}

#[test]
fn introduce_advertises_features_and_connects_leaving_indices() {
    let (mut xs, page) = world_at(500);
    assert_eq!(page.load_u32(ring::SERVER_FEATURES), SERVER_FEATURES);
    assert_eq!(page.load_u32(ring::CONNECTION), ring::CONNECTED);
    assert_eq!(page.load_u32(ring::ERROR), 0);
    assert_eq!(page.load_u32(ring::REQ_PROD), 500);
    assert_eq!(page.load_u32(ring::RSP_PROD), 500);
    assert_eq!(
        xs.take_notifications(),
        [1],
        "a waiting guest needs a signal"
    );
}

#[test]
fn request_split_across_two_kicks_is_answered_once_complete() {
    let (mut xs, page) = world_at(0);
    let msg = Header::message(ty::READ, 1, 0, &z("domid"));
    page.push_raw(&msg[..10]);
    xs.kick(1);
    assert!(page.recv().is_empty());
    assert_eq!(
        page.load_u32(ring::REQ_CONS),
        10,
        "partial bytes are consumed and kept"
    );
    page.push_raw(&msg[10..20]);
    xs.kick(1);
    assert!(page.recv().is_empty());
    page.push_raw(&msg[20..]);
    xs.kick(1);
    assert_eq!(page.recv()[0].payload, b"1");
}

#[test]
fn request_and_reply_wrap_around_the_ring() {
    let (mut xs, page) = world_at(1010);
    page.send(ty::READ, 3, 0, &z("name"));
    xs.kick(1);
    let m = page.recv();
    assert_eq!((m[0].req_id, m[0].payload.as_slice()), (3, &b"domU1"[..]));
}

#[test]
fn indices_wrap_at_u32_max() {
    let (mut xs, page) = world_at(u32::MAX - 5);
    for i in 0..3 {
        page.send(ty::READ, i, 0, &z("domid"));
        xs.kick(1);
        assert_eq!(page.recv()[0].payload, b"1");
    }
    assert!(page.load_u32(ring::REQ_CONS) < 100);
}

#[test]
fn several_requests_in_one_kick_are_all_answered_in_order() {
    let (mut xs, page) = world_at(0);
    for i in 0..10 {
        page.send(ty::READ, i, 0, &z("domid"));
    }
    xs.kick(1);
    let ids: Vec<u32> = page.recv().iter().map(|m| m.req_id).collect();
    assert_eq!(ids, (0..10).collect::<Vec<_>>());
}

#[test]
fn header_longer_than_4096_is_proto_error_and_domain_is_ignored() {
    let mut w = World::new();
    let page = w.page(1);
    let mut h = Header::message(ty::READ, 1, 0, b"");
    h[12..16].copy_from_slice(&4097u32.to_le_bytes());
    page.push_raw(&h);
    w.xs.kick(1);
    assert_eq!(page.load_u32(ring::ERROR), ring::ERROR_PROTO);
    page.send(ty::READ, 2, 0, &z("domid"));
    w.xs.kick(1);
    assert!(page.recv().is_empty());
    assert_eq!(w.read(2, "domid").unwrap(), "2");
}

#[test]
fn payload_of_exactly_4096_is_accepted() {
    let (mut xs, page) = world_at(0);
    let mut payload = z("data/x");
    payload.resize(4096, b'v');
    let msg = Header::message(ty::WRITE, 1, 0, &payload);
    let mut sent = 0;
    while sent < msg.len() {
        let n = page.req_space().min(msg.len() - sent);
        page.push_raw(&msg[sent..sent + n]);
        sent += n;
        xs.kick(1);
    }
    assert_eq!(
        page.recv()[0].error().as_deref(),
        Some("ENOSPC"),
        "handled: over the node size"
    );
}

#[test]
fn request_index_jump_is_ringidx_error() {
    let mut w = World::new();
    let page = w.page(1);
    let cons = page.load_u32(ring::REQ_CONS);
    page.store_u32(ring::REQ_PROD, cons.wrapping_add(1025));
    w.xs.kick(1);
    assert_eq!(page.load_u32(ring::ERROR), ring::ERROR_RINGIDX);
    assert_eq!(w.read(2, "domid").unwrap(), "2");
}

#[test]
fn response_index_jump_is_ringidx_error() {
    let mut w = World::new();
    let page = w.page(1);
    let prod = page.load_u32(ring::RSP_PROD);
    page.store_u32(ring::RSP_CONS, prod.wrapping_add(5));
    page.send(ty::READ, 1, 0, &z("domid"));
    w.xs.kick(1);
    assert_eq!(page.load_u32(ring::ERROR), ring::ERROR_RINGIDX);
}

#[test]
fn unconsumed_replies_stop_reading_requests_until_the_guest_catches_up() {
    let (mut xs, page) = world_at(0);
    xs.write("/local/domain/1/data/big", &[b'v'; 1000]).unwrap();
    for i in 0..30 {
        page.send(ty::READ, i, 0, &z("data/big"));
    }
    let all = page.load_u32(ring::REQ_PROD);
    xs.kick(1);
    // Each reply is 1016 bytes: the ring holds about one, 20 wait.
    let cons = page.load_u32(ring::REQ_CONS);
    assert!(cons < all, "back-pressure: requests left unread");
    assert_eq!(page.rsp_pending(), 1024, "the response ring is full");
    let mut ids = Vec::new();
    for _ in 0..100 {
        ids.extend(page.recv().iter().map(|m| m.req_id));
        xs.kick(1);
    }
    assert_eq!(ids, (0..30).collect::<Vec<_>>());
    assert_eq!(page.load_u32(ring::REQ_CONS), all);
}

#[test]
fn reset_request_empties_rings_and_drops_watches_transactions_and_partial_input() {
    let mut w = World::new();
    w.watch(1, "data", "T");
    w.ok(1, ty::TRANSACTION_START, 0, b"\0");
    let page = w.page(1);
    page.push_raw(&Header::message(ty::READ, 9, 0, &z("domid"))[..7]);
    w.xs.kick(1);
    page.store_u32(ring::CONNECTION, ring::RECONNECT);
    page.send(ty::READ, 10, 0, &z("domid"));
    w.xs.take_notifications();
    w.xs.kick(1);
    assert_eq!(page.load_u32(ring::CONNECTION), ring::CONNECTED);
    for off in [
        ring::REQ_CONS,
        ring::REQ_PROD,
        ring::RSP_CONS,
        ring::RSP_PROD,
    ] {
        assert_eq!(page.load_u32(off), 0);
    }
    assert_eq!(w.xs.take_notifications(), [1]);
    // A clean stream from a packet boundary; no watch, no transaction.
    w.write(1, "data/x", "v").unwrap();
    assert_eq!(w.events(1), []);
    w.err(1, ty::TRANSACTION_END, 1, &z("F"), crate::Error::ENOENT);
}

#[test]
fn reset_revives_a_connection_stopped_by_an_error() {
    let mut w = World::new();
    let page = w.page(1);
    let cons = page.load_u32(ring::REQ_CONS);
    page.store_u32(ring::REQ_PROD, cons.wrapping_add(4000));
    w.xs.kick(1);
    assert_eq!(page.load_u32(ring::ERROR), ring::ERROR_RINGIDX);
    page.store_u32(ring::CONNECTION, ring::RECONNECT);
    w.xs.kick(1);
    assert_eq!(page.load_u32(ring::ERROR), 0);
    assert_eq!(w.read(1, "domid").unwrap(), "1");
}

#[test]
fn notifications_name_each_moved_ring_once() {
    let mut w = World::new();
    w.page(1).send(ty::READ, 1, 0, &z("domid"));
    w.page(1).send(ty::READ, 2, 0, &z("domid"));
    w.xs.kick(1);
    assert_eq!(w.xs.take_notifications(), [1]);
    assert_eq!(w.xs.take_notifications(), []);
    w.xs.kick(1);
    assert_eq!(w.xs.take_notifications(), [], "nothing moved");
}

#[test]
fn event_for_another_domain_notifies_it() {
    let mut w = World::new();
    w.ok(1, ty::SET_PERMS, 0, &zs(&["data", "n1", "b2"]));
    w.watch(1, "data", "T");
    w.xs.take_notifications();
    w.page(2)
        .send(ty::WRITE, 1, 0, &wv("/local/domain/1/data/x", ""));
    w.xs.kick(2);
    assert_eq!(w.xs.take_notifications(), [1, 2]);
}

#[test]
fn kick_for_unknown_domain_is_ignored() {
    let mut w = World::new();
    w.xs.kick(9);
    assert_eq!(w.xs.take_notifications(), []);
}

#[test]
fn garbage_stream_never_panics() {
    // A cheap deterministic fuzz: random bytes as requests from domain 1.
    let mut w = World::new();
    let page = w.page(1);
    let mut x: u32 = 0x1234_5678;
    for _ in 0..2000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let t = x % 30;
        let len = (x >> 8) % 40;
        let payload: Vec<u8> = (0..len)
            .map(|i| b"ab/\0@-_x1"[((x >> (i % 24)) as usize + i as usize) % 9])
            .collect();
        if page.req_space() >= 16 + payload.len() {
            page.send(t, x, (x >> 20) % 3, &payload);
        }
        w.xs.kick(1);
        page.recv();
    }
    assert_eq!(page.load_u32(ring::ERROR), 0);
}

/// A guest that keeps its request ring full of READs and consumes every
/// reply at once, concurrently with the server.
#[derive(Clone)]
struct Flood(FakePage, std::rc::Rc<core::cell::Cell<u32>>);

impl RingPage for Flood {
    fn load_u32(&self, off: usize) -> u32 {
        if off == ring::REQ_PROD {
            while self.0.req_space() >= 25 {
                self.0.send(ty::READ, self.1.get(), 0, &z("domid"));
                self.1.set(self.1.get() + 1);
            }
        }
        self.0.load_u32(off)
    }
    fn store_u32(&self, off: usize, v: u32) {
        self.0.store_u32(off, v);
        if off == ring::RSP_PROD {
            self.0.store_u32(ring::RSP_CONS, v);
        }
    }
    fn read(&self, off: usize, out: &mut [u8]) {
        self.0.read(off, out);
    }
    fn write(&self, off: usize, data: &[u8]) {
        self.0.write(off, data);
    }
}

#[test]
fn kick_stops_after_its_budget_against_a_flooding_guest_and_says_so() {
    let mut xs = Xenstore::new(Quotas::default());
    let sent = std::rc::Rc::new(core::cell::Cell::new(0));
    let page = Flood(FakePage::new(), sent.clone());
    xs.introduce_domain(&info(1), page.clone()).unwrap();
    xs.kick(1);
    assert!(xs.needs_kick(1), "more input waiting");
    let consumed = page.0.load_u32(ring::REQ_CONS) / 22; // 16 + "domid\0"
    assert_eq!(consumed as usize, crate::REQUESTS_PER_KICK);
}

#[test]
fn kick_answers_a_full_ring_of_requests_at_once() {
    let (mut xs, page) = world_at(0);
    let mut sent = 0;
    while page.req_space() >= 25 {
        page.send(ty::READ, sent, 0, &z("domid"));
        sent += 1;
    }
    xs.kick(1);
    assert!(!xs.needs_kick(1));
    assert_eq!(page.recv().len() as u32, sent);
}

#[test]
fn backpressured_domain_does_not_stall_others() {
    let mut w = World::new();
    w.xs.write("/local/domain/1/data/big", &[b'v'; 1000])
        .unwrap();
    let page = w.page(1);
    for i in 0..30 {
        page.send(ty::READ, i, 0, &z("data/big"));
    }
    w.xs.kick(1);
    assert_ne!(page.load_u32(ring::REQ_CONS), page.load_u32(ring::REQ_PROD));
    assert_eq!(w.read(2, "domid").unwrap(), "2");
    w.write(2, "data/x", "v").unwrap();
}

#[test]
fn reset_drops_output_not_yet_in_the_ring() {
    let (mut xs, page) = world_at(0);
    xs.write("/local/domain/1/data/big", &[b'v'; 1000]).unwrap();
    for i in 0..5 {
        page.send(ty::READ, i, 0, &z("data/big"));
    }
    xs.kick(1);
    assert_eq!(page.rsp_pending(), 1024, "replies wait behind a full ring");
    page.store_u32(ring::CONNECTION, ring::RECONNECT);
    xs.kick(1);
    assert_eq!(page.rsp_pending(), 0);
    page.send(ty::READ, 9, 0, &z("domid"));
    xs.kick(1);
    let m = page.recv();
    assert_eq!(m.len(), 1, "only the new reply: {m:?}");
    assert_eq!((m[0].req_id, m[0].payload.as_slice()), (9, &b"1"[..]));
}
