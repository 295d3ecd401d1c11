//! Watches: matching, event paths, permissions, the immediate event.

use crate::fake::*;
use crate::wire::ty;
use crate::{Error, Perm, PermKind};

fn ev(path: &str, token: &str) -> (String, String) {
    (path.into(), token.into())
}

/// Domain 1 opens `data` to domain 2 for writing and reading.
fn shared_data(w: &mut World) {
    w.ok(1, ty::SET_PERMS, 0, &zs(&["data", "n1", "b2"]));
}

#[test]
fn watch_replies_ok_then_immediate_event_with_path_as_given() {
    let mut w = World::new();
    let msgs = w.req(
        1,
        ty::WATCH,
        0,
        &zs(&["control/shutdown", "FFFF800081C98268"]),
    );
    assert_eq!(msgs.len(), 2);
    assert_eq!(
        (msgs[0].ty, msgs[0].payload.as_slice()),
        (ty::WATCH, &b"OK\0"[..])
    );
    assert_eq!(msgs[1].ty, ty::WATCH_EVENT);
    assert_eq!((msgs[1].req_id, msgs[1].tx_id), (0, 0));
    assert_eq!(msgs[1].payload, b"control/shutdown\0FFFF800081C98268\0");
}

#[test]
fn immediate_event_fires_even_for_missing_node() {
    let mut w = World::new();
    let msgs = w.req(1, ty::WATCH, 0, &zs(&["/nonexistent/x", "t"]));
    assert_eq!(msgs[1].payload, b"/nonexistent/x\0t\0");
}

#[test]
fn write_by_other_domain_fires_relative_watch() {
    let mut w = World::new();
    shared_data(&mut w);
    w.watch(1, "data", "T");
    w.write(2, "/local/domain/1/data/x", "v").unwrap();
    assert_eq!(w.events(1), [ev("data/x", "T")]);
}

#[test]
fn write_by_other_domain_fires_absolute_watch_with_absolute_path() {
    let mut w = World::new();
    shared_data(&mut w);
    w.watch(1, "/local/domain/1/data", "A");
    w.write(2, "/local/domain/1/data/x", "v").unwrap();
    assert_eq!(w.events(1), [ev("/local/domain/1/data/x", "A")]);
}

#[test]
fn unchanged_write_still_fires() {
    let mut w = World::new();
    w.write(1, "data/x", "v").unwrap();
    w.watch(1, "data/x", "T");
    let msgs = w.req(1, ty::WRITE, 0, &wv("data/x", "v"));
    assert_eq!(msgs.len(), 2, "reply then event");
    assert_eq!(msgs[0].ty, ty::WRITE);
    assert_eq!(msgs[1].payload, b"data/x\0T\0");
}

#[test]
fn write_fires_once_on_written_path_not_on_created_parents() {
    let mut w = World::new();
    w.watch(1, "data/a", "T");
    w.write(1, "data/a/b/c", "v").unwrap();
    assert_eq!(
        w.events(1),
        [ev("data/a/b/c", "T")],
        "not data/a nor data/a/b"
    );
    w.watch(1, "data", "D");
    w.write(1, "data/a/b/d", "v").unwrap();
    let got = w.events(1);
    assert!(
        got.contains(&ev("data/a/b/d", "T"))
            && got.contains(&ev("data/a/b/d", "D"))
            && got.len() == 2
    );
}

#[test]
fn mkdir_fires_only_when_it_creates() {
    let mut w = World::new();
    w.watch(1, "data", "T");
    w.ok(1, ty::MKDIR, 0, &z("data/d"));
    assert_eq!(w.events(1), [ev("data/d", "T")]);
    w.ok(1, ty::MKDIR, 0, &z("data/d"));
    assert_eq!(w.events(1), []);
}

#[test]
fn rm_fires_deepest_first_exact_below_and_recursive_at_root() {
    let mut w = World::new();
    w.write(1, "data/a/b", "").unwrap();
    for (p, t) in [
        ("data", "up"),
        ("data/a", "root"),
        ("data/a/b", "leaf"),
        ("data/a/none", "absent"),
    ] {
        w.watch(1, p, t);
    }
    w.ok(1, ty::RM, 0, &z("data/a"));
    let got = w.events(1);
    assert_eq!(got[0], ev("data/a/b", "leaf"));
    assert!(got.contains(&ev("data/a", "root")) && got.contains(&ev("data/a", "up")));
    assert_eq!(got.len(), 3, "{got:?}");
}

#[test]
fn set_perms_fires_and_reaches_watcher_that_lost_access() {
    let mut w = World::new();
    w.write(1, "data/x", "v").unwrap();
    w.ok(1, ty::SET_PERMS, 0, &zs(&["data/x", "n1", "r2"]));
    w.watch(2, "/local/domain/1/data/x", "T");
    w.ok(1, ty::SET_PERMS, 0, &zs(&["data/x", "n1"]));
    assert_eq!(w.events(2), [ev("/local/domain/1/data/x", "T")]);
    w.write(1, "data/x", "secret").unwrap();
    assert_eq!(w.events(2), []);
}

#[test]
fn event_needs_read_on_node_or_parent() {
    let mut w = World::new();
    w.watch(2, "/local/domain/1", "T");
    w.write(1, "data/x", "v").unwrap();
    assert_eq!(w.events(2), [], "2 reads neither data/x nor data");
    w.ok(1, ty::SET_PERMS, 0, &zs(&["data", "n1", "r2"]));
    w.events(2);
    w.write(1, "data/y", "v").unwrap();
    w.ok(1, ty::SET_PERMS, 0, &zs(&["data/y", "n1"]));
    w.events(2);
    w.write(1, "data/y", "w").unwrap();
    assert_eq!(
        w.events(2),
        [ev("/local/domain/1/data/y", "T")],
        "2 reads the parent only"
    );
}

#[test]
fn duplicate_watch_is_eexist_and_other_token_is_fine() {
    let mut w = World::new();
    w.watch(1, "data", "T");
    w.err(1, ty::WATCH, 0, &zs(&["data", "T"]), Error::EEXIST);
    w.err(
        1,
        ty::WATCH,
        0,
        &zs(&["/local/domain/1/data", "T"]),
        Error::EEXIST,
    );
    w.watch(1, "data", "U");
}

#[test]
fn watch_argument_errors() {
    let mut w = World::new();
    w.err(1, ty::WATCH, 0, &z("data"), Error::EINVAL);
    w.err(1, ty::WATCH, 0, &zs(&["data", "T", "1"]), Error::EINVAL);
    w.err(1, ty::WATCH, 0, b"data\0T", Error::EINVAL);
    w.err(1, ty::WATCH, 0, &zs(&["bad path", "T"]), Error::EINVAL);
    w.err(1, ty::UNWATCH, 0, &z("data"), Error::EINVAL);
}

#[test]
fn watch_ignores_unknown_tx_id() {
    let mut w = World::new();
    let msgs = w.req(1, ty::WATCH, 77, &zs(&["data", "T"]));
    assert_eq!(msgs[0].ty, ty::WATCH);
    w.ok(1, ty::UNWATCH, 77, &zs(&["data", "T"]));
}

#[test]
fn unwatch_stops_events_and_unknown_is_enoent() {
    let mut w = World::new();
    w.watch(1, "data", "T");
    w.ok(1, ty::UNWATCH, 0, &zs(&["data", "T"]));
    w.write(1, "data/x", "v").unwrap();
    assert_eq!(w.events(1), []);
    w.err(1, ty::UNWATCH, 0, &zs(&["data", "T"]), Error::ENOENT);
}

#[test]
fn reset_watches_drops_every_watch() {
    let mut w = World::new();
    w.watch(1, "data", "T");
    w.watch(1, "control", "C");
    assert_eq!(w.ok(1, ty::RESET_WATCHES, 0, &z("")), b"OK\0");
    w.write(1, "data/x", "v").unwrap();
    w.write(1, "control/shutdown", "").unwrap();
    assert_eq!(w.events(1), []);
}

#[test]
fn root_watch_sees_everything_readable() {
    let mut w = World::new();
    w.watch(1, "/", "R");
    w.write(1, "data/x", "v").unwrap();
    w.write(2, "data/y", "v").unwrap();
    assert_eq!(w.events(1), [ev("/local/domain/1/data/x", "R")]);
}

#[test]
fn identical_undelivered_event_is_queued_once() {
    let mut w = World::new();
    let token = "T".repeat(1000);
    w.watch(1, "data", &token);
    // The event is 1024 bytes: it fills the ring, later ones queue whole.
    w.xs.write("/local/domain/1/data/x", b"1").unwrap();
    for _ in 0..3 {
        w.xs.write("/local/domain/1/data/y", b"2").unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..10 {
        got.extend(w.events(1));
    }
    let paths: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, ["data/x", "data/y"]);
}

#[test]
fn release_domain_is_seen_only_by_watchers_granted_read() {
    let mut w = World::new();
    let msgs = w.req(1, ty::WATCH, 0, &zs(&["@releaseDomain", "R"]));
    assert_eq!(msgs[1].payload, b"@releaseDomain\0R\0");
    w.watch(1, "@introduceDomain", "I");
    w.xs.release_domain(2);
    w.introduce(2);
    assert_eq!(w.events(1), []);
    let grant = [
        Perm {
            dom: 0,
            kind: PermKind::None,
        },
        Perm {
            dom: 1,
            kind: PermKind::Read,
        },
    ];
    w.xs.set_perms("@releaseDomain", &grant).unwrap();
    w.xs.set_perms("@introduceDomain", &grant).unwrap();
    // The permission changes fire too.
    assert_eq!(
        w.events(1),
        [ev("@releaseDomain", "R"), ev("@introduceDomain", "I")]
    );
    w.xs.release_domain(2);
    w.introduce(2);
    assert_eq!(
        w.events(1),
        [ev("@releaseDomain", "R"), ev("@introduceDomain", "I")]
    );
}

#[test]
fn hypervisor_write_fires_watches() {
    let mut w = World::new();
    w.watch(1, "control/shutdown", "S");
    w.xs.write("/local/domain/1/control/shutdown", b"poweroff")
        .unwrap();
    assert!(w.xs.take_notifications().contains(&1));
    assert_eq!(w.page(1).recv()[0].payload, b"control/shutdown\0S\0");
}

#[test]
fn event_too_long_for_a_message_is_dropped_and_counted() {
    let mut w = World::new();
    let token = "T".repeat(4000);
    w.watch(1, "/local/domain/1", &token);
    let long = "d".repeat(100);
    w.write(1, &format!("data/{long}"), "").unwrap();
    assert_eq!(w.events(1), []);
    assert_eq!(w.xs.dropped_events(1), Some(1));
    w.write(1, "data/x", "").unwrap();
    assert_eq!(w.events(1).len(), 1, "a shorter path fits");
}

#[test]
fn watch_on_other_domains_node_is_allowed_but_silent_without_read() {
    let mut w = World::new();
    w.watch(2, "/local/domain/1/control/shutdown", "S");
    w.xs.write("/local/domain/1/control/shutdown", b"poweroff")
        .unwrap();
    assert_eq!(w.events(2), []);
}
