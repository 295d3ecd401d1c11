use crate::fake::*;
use crate::wire::ty;

#[test]
fn toolstack_write_fires_a_relative_watch_into_the_ring_and_notifies() {
    let mut w = World::new();
    let m = w.req(1, ty::WATCH, 0, &zs(&["control/shutdown", "TOK"]));
    assert!(m.iter().any(|m| m.ty == ty::WATCH));
    let _ = w.events(1);
    w.xs.take_notifications();
    w.xs.write("/local/domain/1/control/shutdown", b"poweroff")
        .unwrap();
    assert_eq!(w.xs.take_notifications(), [1]);
    let ev: Vec<_> = w
        .page(1)
        .recv()
        .into_iter()
        .filter(|m| m.ty == ty::WATCH_EVENT)
        .map(|m| m.text())
        .collect();
    assert_eq!(ev, ["control/shutdown\0TOK\0"]);
}
