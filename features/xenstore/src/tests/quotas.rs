//! Each quota reached, its error, and the other domain unaffected.

use crate::fake::*;
use crate::wire::ty;
use crate::{Error, Quotas, toolstack_nodes};

fn owned_after_introduce(dom: u16) -> usize {
    toolstack_nodes(&info(dom))
        .iter()
        .filter(|n| n.perms[0].dom == dom)
        .count()
}

#[test]
fn nodes_per_domain_quota_is_enospc_and_other_domain_keeps_working() {
    let q = Quotas {
        nodes_per_domain: 50,
        ..Quotas::default()
    };
    let mut w = World::with_quotas(q);
    let room = 50 - owned_after_introduce(1);
    for i in 0..room {
        w.write(1, &format!("data/n{i}"), "").unwrap();
    }
    w.err(1, ty::WRITE, 0, &wv("data/one-more", ""), Error::ENOSPC);
    w.err(1, ty::MKDIR, 0, &z("data/one-more"), Error::ENOSPC);
    w.write(2, "data/fine", "").unwrap();
    w.ok(1, ty::RM, 0, &z("data/n0"));
    w.write(1, "data/one-more", "").unwrap();
}

#[test]
fn creating_parents_counts_every_new_node() {
    let q = Quotas {
        nodes_per_domain: 50,
        ..Quotas::default()
    };
    let mut w = World::with_quotas(q);
    let room = 50 - owned_after_introduce(1);
    for i in 0..room - 2 {
        w.write(1, &format!("data/n{i}"), "").unwrap();
    }
    w.err(1, ty::WRITE, 0, &wv("data/a/b/c", ""), Error::ENOSPC);
    w.err(1, ty::READ, 0, &z("data/a"), Error::ENOENT);
    w.write(1, "data/a/b", "").unwrap();
}

#[test]
fn node_size_quota_counts_header_perms_value_and_children() {
    let mut w = World::new();
    // 16-byte header + one 8-byte perm entry + value.
    let fits = "v".repeat(2048 - 16 - 8);
    w.write(1, "data/big", &fits).unwrap();
    w.err(
        1,
        ty::WRITE,
        0,
        &wv("data/big2", &format!("{fits}v")),
        Error::ENOSPC,
    );
    // A full node cannot take a child: its own size would grow.
    w.err(1, ty::WRITE, 0, &wv("data/big/c", ""), Error::ENOSPC);
    w.err(
        1,
        ty::SET_PERMS,
        0,
        &zs(&["data/big", "n1", "r2"]),
        Error::ENOSPC,
    );
    // The hypervisor is exempt; the other domain is unaffected.
    w.xs.write("/local/domain/1/data/huge", &[b'x'; 3000])
        .unwrap();
    w.write(2, "data/big", &fits).unwrap();
}

#[test]
fn perms_per_node_quota_is_enospc() {
    let mut w = World::new();
    w.ok(
        1,
        ty::SET_PERMS,
        0,
        &zs(&["data", "n1", "r2", "r3", "r4", "r5"]),
    );
    w.err(
        1,
        ty::SET_PERMS,
        0,
        &zs(&["data", "n1", "r2", "r3", "r4", "r5", "r6"]),
        Error::ENOSPC,
    );
    w.ok(2, ty::SET_PERMS, 0, &zs(&["data", "n2", "r1"]));
}

#[test]
fn path_quota_counts_below_the_home_and_is_einval() {
    let mut w = World::new();
    let rel = "a".repeat(2048);
    w.err(1, ty::READ, 0, &z(&rel), Error::ENOENT);
    w.err(1, ty::READ, 0, &z(&format!("{rel}a")), Error::EINVAL);
    w.err(
        1,
        ty::READ,
        0,
        &z(&format!("/local/domain/1/{rel}a")),
        Error::EINVAL,
    );
    w.write(2, "data/fine", "").unwrap();
}

#[test]
fn watches_quota_is_e2big_after_c_xenstoreds_129() {
    let mut w = World::new();
    for i in 0..129 {
        let m = w.call(1, ty::WATCH, 0, &zs(&["data", &format!("t{i}")]));
        assert_eq!(m.ty, ty::WATCH, "watch {i}");
    }
    w.err(1, ty::WATCH, 0, &zs(&["data", "over"]), Error::E2BIG);
    w.call(2, ty::WATCH, 0, &zs(&["data", "fine"]));
    w.ok(1, ty::UNWATCH, 0, &zs(&["data", "t0"]));
    w.call(1, ty::WATCH, 0, &zs(&["data", "again"]));
}

#[test]
fn transactions_quota_is_enospc_after_the_eleventh() {
    let mut w = World::new();
    for _ in 0..11 {
        w.ok(1, ty::TRANSACTION_START, 0, b"\0");
    }
    w.err(1, ty::TRANSACTION_START, 0, b"\0", Error::ENOSPC);
    w.ok(2, ty::TRANSACTION_START, 0, b"\0");
}

#[test]
fn nodes_per_transaction_quota_is_enospc() {
    let q = Quotas {
        nodes_per_transaction: 6,
        ..Quotas::default()
    };
    let mut w = World::with_quotas(q);
    let p = w.ok(1, ty::TRANSACTION_START, 0, b"\0");
    let t: u32 = core::str::from_utf8(&p[..p.len() - 1])
        .unwrap()
        .parse()
        .unwrap();
    // data/a: reads data/a and data, changes both.
    w.ok(1, ty::WRITE, t, &wv("data/a", ""));
    w.ok(1, ty::WRITE, t, &wv("data/b", ""));
    w.ok(1, ty::READ, t, &z("name"));
    w.ok(1, ty::READ, t, &z("domid"));
    w.ok(1, ty::READ, t, &z("vm"));
    w.err(1, ty::READ, t, &z("cpu"), Error::ENOSPC);
    w.err(1, ty::WRITE, t, &wv("data/c", ""), Error::ENOSPC);
    w.ok(1, ty::READ, t, &z("data/a"));
    w.write(2, "data/fine", "").unwrap();
    w.ok(1, ty::TRANSACTION_END, t, &z("T"));
    assert_eq!(w.read(1, "data/b").unwrap(), "");
}

#[test]
fn queued_events_beyond_the_bound_are_dropped_and_counted() {
    let q = Quotas {
        queued_events: 2,
        ..Quotas::default()
    };
    let mut w = World::with_quotas(q);
    // Each event is 925 bytes: the first leaves 99 bytes of the ring, the
    // second starts there and is the first of the two queued.
    let token = "T".repeat(900);
    w.watch(1, "data", &token);
    w.watch(2, "data", "t2");
    for i in 0..6 {
        w.xs.write(&format!("/local/domain/1/data/e{i}"), b"")
            .unwrap();
    }
    // One in the ring, two queued, three dropped.
    assert_eq!(w.xs.dropped_events(1), Some(3));
    let mut got = Vec::new();
    for _ in 0..5 {
        got.extend(w.events(1));
    }
    assert_eq!(got.len(), 3);
    // Domain 2's queue is its own.
    w.xs.write("/local/domain/2/data/e", b"").unwrap();
    assert_eq!(w.events(2).len(), 1);
    assert_eq!(w.xs.dropped_events(2), Some(0));
}

#[test]
fn transaction_bytes_quota_is_enospc_and_request_fails_whole() {
    let mut w = World::new();
    w.xs.set_transaction_bytes(8 * 1024);
    let p = w.ok(1, ty::TRANSACTION_START, 0, b"\0");
    let t: u32 = core::str::from_utf8(&p[..p.len() - 1])
        .unwrap()
        .parse()
        .unwrap();
    let value = "v".repeat(1500);
    // Rewriting a node it already holds does not grow it.
    for _ in 0..20 {
        w.ok(1, ty::WRITE, t, &wv("data/n0", &value));
    }
    let mut written = 0;
    for i in 0..10 {
        let m = w.call(1, ty::WRITE, t, &wv(&format!("data/n{i}"), &value));
        if m.error().as_deref() == Some("ENOSPC") {
            break;
        }
        assert_eq!(m.ty, ty::WRITE);
        written += 1;
    }
    assert!((3..10).contains(&written), "{written}");
    w.err(
        1,
        ty::READ,
        t,
        &z(&format!("data/n{written}")),
        Error::ENOENT,
    );
    let t2 = w.ok(2, ty::TRANSACTION_START, 0, b"\0");
    let t2: u32 = core::str::from_utf8(&t2[..t2.len() - 1])
        .unwrap()
        .parse()
        .unwrap();
    w.ok(2, ty::WRITE, t2, &wv("data/n0", &value));
    w.ok(2, ty::TRANSACTION_END, t2, &z("T"));
    w.ok(1, ty::TRANSACTION_END, t, &z("T"));
}

#[test]
fn commit_that_would_exceed_the_node_quota_is_enospc() {
    let q = Quotas {
        nodes_per_domain: 50,
        ..Quotas::default()
    };
    let mut w = World::with_quotas(q);
    let room = 50 - owned_after_introduce(1);
    let start = |w: &mut World| -> u32 {
        let p = w.ok(1, ty::TRANSACTION_START, 0, b"\0");
        core::str::from_utf8(&p[..p.len() - 1])
            .unwrap()
            .parse()
            .unwrap()
    };
    let (a, b) = (start(&mut w), start(&mut w));
    for i in 0..room {
        w.ok(1, ty::WRITE, a, &wv(&format!("data/a{i}"), ""));
        w.ok(1, ty::WRITE, b, &wv(&format!("attr/b{i}"), ""));
    }
    w.ok(1, ty::TRANSACTION_END, a, &z("T"));
    w.err(1, ty::TRANSACTION_END, b, &z("T"), Error::ENOSPC);
}

#[test]
fn toolstack_nodes_owned_by_a_domain_are_28_plus_2_per_vcpu() {
    for vcpus in [1, 4] {
        let i = crate::DomainInfo { vcpus, ..info(1) };
        let owned = toolstack_nodes(&i)
            .iter()
            .filter(|n| n.perms[0].dom == 1)
            .count();
        assert_eq!(owned, 28 + 2 * vcpus as usize);
    }
}
