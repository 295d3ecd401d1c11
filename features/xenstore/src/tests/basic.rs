use crate::Error;
use crate::fake::*;
use crate::wire::ty;

#[test]
fn read_returns_value_without_nul() {
    let mut w = World::new();
    assert_eq!(w.ok(1, ty::READ, 0, &z("domid")), b"1");
}

#[test]
fn write_then_read_back() {
    let mut w = World::new();
    w.write(1, "data/x", "hello").unwrap();
    assert_eq!(w.read(1, "data/x").unwrap(), "hello");
    w.err(1, ty::READ, 0, &z("data/y"), Error::ENOENT);
}
