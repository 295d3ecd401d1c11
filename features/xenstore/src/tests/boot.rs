//! The request sequence a Linux 6.1/6.12 domU sends at boot (spec
//! xenstore.md §1.3), answered as Linux expects. Our `/local/domain/<id>`
//! is owned by the domain, so `DIRECTORY backend` is `ENOENT` (Xen with
//! init-dom0less: `EACCES`); Linux treats both as absent.

use crate::fake::*;
use crate::wire::ty;

fn event(msgs: &[Msg]) -> String {
    let e: Vec<&Msg> = msgs.iter().filter(|m| m.ty == ty::WATCH_EVENT).collect();
    assert_eq!(e.len(), 1, "{msgs:?}");
    e[0].text()
}

#[test]
fn linux_boot_sequence_is_answered_as_listed() {
    let mut w = World::new();
    assert_eq!(
        w.ok(
            1,
            ty::READ,
            0,
            &z("control/platform-feature-xs_reset_watches")
        ),
        b"1"
    );
    assert_eq!(w.ok(1, ty::RESET_WATCHES, 0, b"\0"), b"OK\0");

    let m = w.req(1, ty::WATCH, 0, &zs(&["memory/target", "FFFF0001"]));
    assert_eq!(m[0].payload, b"OK\0");
    assert_eq!(event(&m), "memory/target\0FFFF0001\0");
    let m = w.req(1, ty::WATCH, 0, &zs(&["control/shutdown", "FFFF0002"]));
    assert_eq!(event(&m), "control/shutdown\0FFFF0002\0");
    assert_eq!(w.ok(1, ty::READ, 0, &z("memory/target")), b"262144");
    assert_eq!(w.ok(1, ty::READ, 0, &z("memory/static-max")), b"262144");
    let m = w.req(1, ty::WATCH, 0, &zs(&["control/sysrq", "FFFF0003"]));
    assert_eq!(event(&m), "control/sysrq\0FFFF0003\0");

    assert_eq!(w.ok(1, ty::TRANSACTION_START, 0, b"\0"), b"1\0");
    assert_eq!(w.ok(1, ty::READ, 1, &z("control/shutdown")), b"");
    assert_eq!(w.ok(1, ty::TRANSACTION_END, 1, &z("F")), b"OK\0");
    for f in ["feature-poweroff", "feature-reboot", "feature-suspend"] {
        let m = w.req(1, ty::WRITE, 0, &wv(&format!("control/{f}"), "1"));
        assert_eq!(m.len(), 1, "no watch covers control/{f}");
        assert_eq!(m[0].payload, b"OK\0");
    }
    assert_eq!(w.ok(1, ty::TRANSACTION_START, 0, b"\0"), b"2\0");
    assert_eq!(w.ok(1, ty::READ, 2, &z("control/sysrq")), b"");
    assert_eq!(w.ok(1, ty::TRANSACTION_END, 2, &z("F")), b"OK\0");

    w.err(1, ty::DIRECTORY, 0, &z("backend"), crate::Error::ENOENT);
    let m = w.req(1, ty::WATCH, 0, &zs(&["backend", "FFFF0004"]));
    assert_eq!(event(&m), "backend\0FFFF0004\0");
    for _ in 0..2 {
        assert_eq!(w.ok(1, ty::DIRECTORY, 0, &z("device")), b"suspend\0");
        assert_eq!(
            w.ok(1, ty::DIRECTORY, 0, &z("device/suspend")),
            b"event-channel\0"
        );
        w.err(
            1,
            ty::READ,
            0,
            &z("device/suspend/event-channel/state"),
            crate::Error::ENOENT,
        );
    }
    let m = w.req(1, ty::WATCH, 0, &zs(&["device", "FFFF0005"]));
    assert_eq!(event(&m), "device\0FFFF0005\0");
    let m = w.req(1, ty::WATCH, 0, &zs(&["cpu", "FFFF0006"]));
    assert_eq!(event(&m), "cpu\0FFFF0006\0");
    assert_eq!(w.ok(1, ty::READ, 0, &z("cpu/0/availability")), b"online");
}

#[test]
fn toolstack_shutdown_request_reaches_linux_watch_with_relative_path() {
    let mut w = World::new();
    w.watch(1, "control/shutdown", "FFFF0002");
    w.xs.write("/local/domain/1/control/shutdown", b"poweroff")
        .unwrap();
    assert_eq!(
        w.events(1),
        [("control/shutdown".into(), "FFFF0002".into())]
    );
}
