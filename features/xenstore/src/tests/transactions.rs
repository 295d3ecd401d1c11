//! Transactions: isolation, conflicts by generation, ids, limits.

use crate::Error;
use crate::fake::*;
use crate::wire::ty;

fn start(w: &mut World, dom: u16) -> u32 {
    let p = w.ok(dom, ty::TRANSACTION_START, 0, b"\0");
    assert_eq!(p.last(), Some(&0));
    core::str::from_utf8(&p[..p.len() - 1])
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn ids_are_nonzero_distinct_decimal() {
    let mut w = World::new();
    let a = start(&mut w, 1);
    let b = start(&mut w, 1);
    assert!(a != 0 && b != 0 && a != b);
}

#[test]
fn own_changes_are_visible_inside_and_hidden_outside_until_commit() {
    let mut w = World::new();
    let t = start(&mut w, 1);
    w.ok(1, ty::WRITE, t, &wv("data/x", "v"));
    assert_eq!(w.ok(1, ty::READ, t, &z("data/x")), b"v");
    assert_eq!(w.ok(1, ty::DIRECTORY, t, &z("data")), b"x\0");
    w.err(1, ty::READ, 0, &z("data/x"), Error::ENOENT);
    w.ok(1, ty::TRANSACTION_END, t, &z("T"));
    assert_eq!(w.read(1, "data/x").unwrap(), "v");
}

#[test]
fn abort_discards_changes() {
    let mut w = World::new();
    let t = start(&mut w, 1);
    w.ok(1, ty::WRITE, t, &wv("data/x", "v"));
    w.ok(1, ty::RM, t, &z("name"));
    w.ok(1, ty::TRANSACTION_END, t, &z("F"));
    w.err(1, ty::READ, 0, &z("data/x"), Error::ENOENT);
    assert_eq!(w.read(1, "name").unwrap(), "domU1");
    w.err(1, ty::TRANSACTION_END, t, &z("F"), Error::ENOENT);
}

#[test]
fn commit_is_eagain_when_a_read_node_changed_and_the_transaction_is_gone() {
    let mut w = World::new();
    w.write(1, "data/x", "old").unwrap();
    let t = start(&mut w, 1);
    assert_eq!(w.ok(1, ty::READ, t, &z("data/x")), b"old");
    w.ok(1, ty::WRITE, t, &wv("data/y", "from-tx"));
    w.xs.write("/local/domain/1/data/x", b"new").unwrap();
    w.err(1, ty::TRANSACTION_END, t, &z("T"), Error::EAGAIN);
    w.err(1, ty::READ, 0, &z("data/y"), Error::ENOENT);
    w.err(1, ty::TRANSACTION_END, t, &z("T"), Error::ENOENT);
}

#[test]
fn commit_is_eagain_when_an_absent_node_appeared() {
    let mut w = World::new();
    let t = start(&mut w, 1);
    w.err(1, ty::READ, t, &z("data/x"), Error::ENOENT);
    w.write(1, "data/x", "v").unwrap();
    w.err(1, ty::TRANSACTION_END, t, &z("T"), Error::EAGAIN);
}

#[test]
fn commit_is_eagain_when_a_listed_directory_got_a_child() {
    let mut w = World::new();
    let t = start(&mut w, 1);
    w.ok(1, ty::DIRECTORY, t, &z("data"));
    w.write(1, "data/new", "v").unwrap();
    w.err(1, ty::TRANSACTION_END, t, &z("T"), Error::EAGAIN);
}

#[test]
fn unrelated_change_does_not_conflict() {
    let mut w = World::new();
    w.write(1, "data/x", "v").unwrap();
    let t = start(&mut w, 1);
    w.ok(1, ty::READ, t, &z("data/x"));
    w.ok(1, ty::WRITE, t, &wv("data/x", "tx"));
    w.write(1, "control/shutdown", "").unwrap();
    w.ok(1, ty::TRANSACTION_END, t, &z("T"));
    assert_eq!(w.read(1, "data/x").unwrap(), "tx");
}

#[test]
fn transaction_sees_others_later_changes_to_untouched_nodes() {
    let mut w = World::new();
    let t = start(&mut w, 1);
    w.write(1, "data/x", "later").unwrap();
    assert_eq!(w.ok(1, ty::READ, t, &z("data/x")), b"later");
    w.ok(1, ty::TRANSACTION_END, t, &z("T"));
}

#[test]
fn watches_fire_at_commit_not_before() {
    let mut w = World::new();
    w.watch(1, "control/shutdown", "S");
    let t = start(&mut w, 1);
    w.ok(1, ty::WRITE, t, &wv("control/shutdown", ""));
    assert_eq!(w.events(1), []);
    let msgs = w.req(1, ty::TRANSACTION_END, t, &z("T"));
    assert_eq!(msgs[0].ty, ty::TRANSACTION_END);
    assert_eq!(msgs[1].payload, b"control/shutdown\0S\0");
}

#[test]
fn aborted_transaction_fires_nothing() {
    let mut w = World::new();
    w.watch(1, "data", "S");
    let t = start(&mut w, 1);
    w.ok(1, ty::WRITE, t, &wv("data/x", ""));
    let msgs = w.req(1, ty::TRANSACTION_END, t, &z("F"));
    assert_eq!(msgs.len(), 1);
}

#[test]
fn end_payload_other_than_t_or_f_is_einval() {
    let mut w = World::new();
    let t = start(&mut w, 1);
    for bad in [&b"X\0"[..], b"T", b"TT\0", b"T\0F\0", b""] {
        w.err(1, ty::TRANSACTION_END, t, bad, Error::EINVAL);
    }
    w.ok(1, ty::TRANSACTION_END, t, &z("F"));
    w.err(1, ty::TRANSACTION_END, 0, &z("T"), Error::ENOENT);
}

#[test]
fn start_with_live_id_is_ebusy_and_with_unknown_id_enoent() {
    let mut w = World::new();
    let t = start(&mut w, 1);
    w.err(1, ty::TRANSACTION_START, t, b"\0", Error::EBUSY);
    w.err(1, ty::TRANSACTION_START, t + 100, b"\0", Error::ENOENT);
}

#[test]
fn unknown_tx_id_is_enoent_for_node_requests() {
    let mut w = World::new();
    for t in [
        ty::READ,
        ty::DIRECTORY,
        ty::WRITE,
        ty::MKDIR,
        ty::RM,
        ty::GET_PERMS,
        ty::RESET_WATCHES,
    ] {
        w.err(1, t, 9, &z("data"), Error::ENOENT);
    }
}

#[test]
fn transactions_are_per_domain() {
    let mut w = World::new();
    let t = start(&mut w, 1);
    w.err(2, ty::READ, t, &z("domid"), Error::ENOENT);
}

#[test]
fn reset_watches_drops_transactions() {
    let mut w = World::new();
    let t = start(&mut w, 1);
    w.ok(1, ty::WRITE, t, &wv("data/x", "v"));
    w.ok(1, ty::RESET_WATCHES, 0, b"\0");
    w.err(1, ty::TRANSACTION_END, t, &z("T"), Error::ENOENT);
    w.err(1, ty::READ, 0, &z("data/x"), Error::ENOENT);
}

#[test]
fn rm_inside_transaction_commits_whole_subtree() {
    let mut w = World::new();
    w.write(1, "data/a/b", "").unwrap();
    let t = start(&mut w, 1);
    w.ok(1, ty::RM, t, &z("data/a"));
    w.err(1, ty::READ, t, &z("data/a/b"), Error::ENOENT);
    assert_eq!(w.read(1, "data/a/b").unwrap(), "");
    w.ok(1, ty::TRANSACTION_END, t, &z("T"));
    w.err(1, ty::READ, 0, &z("data/a"), Error::ENOENT);
    assert_eq!(
        w.xs.directory("/local/domain/1/data").unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn shutdown_ack_in_transaction_as_linux_does() {
    let mut w = World::new();
    w.xs.write("/local/domain/1/control/shutdown", b"poweroff")
        .unwrap();
    let t = start(&mut w, 1);
    assert_eq!(w.ok(1, ty::READ, t, &z("control/shutdown")), b"poweroff");
    w.ok(1, ty::WRITE, t, &wv("control/shutdown", ""));
    w.ok(1, ty::TRANSACTION_END, t, &z("T"));
    assert_eq!(w.xs.read("/local/domain/1/control/shutdown").unwrap(), b"");
}
