//! A PV device handshake between two domUs with no dom0 (spec xenstore.md
//! §4): the toolstack's nodes, each end watching the other's `state`.

use crate::fake::*;
use crate::wire::ty;
use crate::{Perm, PermKind};

fn perms(owner: u16, reader: u16) -> [Perm; 2] {
    [
        Perm {
            dom: owner,
            kind: PermKind::None,
        },
        Perm {
            dom: reader,
            kind: PermKind::Read,
        },
    ]
}

#[test]
fn frontend_and_backend_see_each_others_state_changes() {
    let mut w = World::new();
    let (f, b) = (1u16, 2u16);
    let front = "/local/domain/1/device/vif/0";
    let back = "/local/domain/2/backend/vif/1/0";
    for (dir, owner, reader, other, other_id) in [(front, f, b, back, b), (back, b, f, front, f)] {
        w.xs.write_with_perms(dir, b"", &perms(owner, reader))
            .unwrap();
        for (k, v) in [
            ("state", "1".into()),
            ("other", other.into()),
            ("other-id", format!("{other_id}")),
        ] {
            w.xs.write_with_perms(&format!("{dir}/{k}"), v.as_bytes(), &perms(owner, reader))
                .unwrap();
        }
    }

    // Each end finds the other and watches its state (absolute path).
    assert_eq!(w.read(b, &format!("{front}/state")).unwrap(), "1");
    w.watch(f, &format!("{back}/state"), "F");
    w.watch(b, &format!("{front}/state"), "B");

    // Backend to InitWait; the frontend hears of it.
    w.write(b, "backend/vif/1/0/state", "2").unwrap();
    assert_eq!(w.events(f), [(format!("{back}/state"), "F".into())]);

    // Frontend publishes its rings and Connected in one transaction.
    let p = w.ok(f, ty::TRANSACTION_START, 0, b"\0");
    let t: u32 = core::str::from_utf8(&p[..p.len() - 1])
        .unwrap()
        .parse()
        .unwrap();
    w.ok(f, ty::WRITE, t, &wv("device/vif/0/tx-ring-ref", "8"));
    w.ok(f, ty::WRITE, t, &wv("device/vif/0/state", "4"));
    assert_eq!(w.events(b), []);
    w.ok(f, ty::TRANSACTION_END, t, &z("T"));
    assert_eq!(w.events(b), [(format!("{front}/state"), "B".into())]);
    // New frontend keys inherit the directory's list: the backend reads them.
    assert_eq!(w.read(b, &format!("{front}/tx-ring-ref")).unwrap(), "8");

    // The frontend domain goes away: its nodes vanish, the backend hears.
    w.xs.release_domain(f);
    assert_eq!(w.events(b), [(format!("{front}/state"), "B".into())]);
    // Gone, and its parent with it: the nearest node left is /local/domain.
    w.err(
        b,
        ty::READ,
        0,
        &z(&format!("{front}/state")),
        crate::Error::EACCES,
    );
}
