//! Permissions between two domains, with no dom0.

use crate::fake::*;
use crate::wire::ty;
use crate::{Error, Perm, PermKind};

#[test]
fn other_domains_home_is_unreadable_and_missing_nodes_there_are_eacces() {
    let mut w = World::new();
    w.err(2, ty::READ, 0, &z("/local/domain/1/name"), Error::EACCES);
    w.err(2, ty::READ, 0, &z("/local/domain/1/none"), Error::EACCES);
    w.err(2, ty::DIRECTORY, 0, &z("/local/domain/1"), Error::EACCES);
    w.err(
        2,
        ty::WRITE,
        0,
        &wv("/local/domain/1/x", "v"),
        Error::EACCES,
    );
    w.err(2, ty::RM, 0, &z("/local/domain/1/none"), Error::EACCES);
    w.err(2, ty::RM, 0, &z("/local/domain/1/name"), Error::EACCES);
    w.err(2, ty::MKDIR, 0, &z("/local/domain/1/name"), Error::EACCES);
}

#[test]
fn hypervisor_nodes_are_unreadable_to_domus() {
    let mut w = World::new();
    w.err(1, ty::DIRECTORY, 0, &z("/local/domain"), Error::EACCES);
    w.err(1, ty::READ, 0, &z("/tool"), Error::EACCES);
    w.err(1, ty::WRITE, 0, &wv("/tool/x", ""), Error::EACCES);
    w.err(1, ty::WRITE, 0, &wv("/newtop", ""), Error::EACCES);
}

#[test]
fn read_grant_lets_other_domain_read_but_not_write() {
    let mut w = World::new();
    w.write(1, "data/x", "v").unwrap();
    w.ok(1, ty::SET_PERMS, 0, &zs(&["data/x", "n1", "r2"]));
    assert_eq!(w.read(2, "/local/domain/1/data/x").unwrap(), "v");
    w.err(
        2,
        ty::WRITE,
        0,
        &wv("/local/domain/1/data/x", "w"),
        Error::EACCES,
    );
    w.err(
        2,
        ty::SET_PERMS,
        0,
        &zs(&["/local/domain/1/data/x", "b1"]),
        Error::EACCES,
    );
}

#[test]
fn permissions_apply_to_the_node_not_its_ancestors() {
    let mut w = World::new();
    w.write(1, "data/x", "v").unwrap();
    w.ok(1, ty::SET_PERMS, 0, &zs(&["data/x", "r1"]));
    // data and the home stay unreadable to 2, yet the node itself is open.
    assert_eq!(w.read(2, "/local/domain/1/data/x").unwrap(), "v");
}

#[test]
fn missing_node_under_readable_parent_is_enoent() {
    let mut w = World::new();
    w.ok(1, ty::SET_PERMS, 0, &zs(&["data", "n1", "r2"]));
    w.err(
        2,
        ty::READ,
        0,
        &z("/local/domain/1/data/none"),
        Error::ENOENT,
    );
    // Creating needs write on the nearest existing ancestor.
    w.err(
        2,
        ty::WRITE,
        0,
        &wv("/local/domain/1/data/new", ""),
        Error::EACCES,
    );
}

#[test]
fn first_entry_naming_the_caller_wins_over_the_default() {
    let mut w = World::new();
    w.write(1, "data/x", "v").unwrap();
    w.ok(1, ty::SET_PERMS, 0, &zs(&["data/x", "b1", "n2"]));
    w.err(2, ty::READ, 0, &z("/local/domain/1/data/x"), Error::EACCES);
    w.introduce(3);
    assert_eq!(w.read(3, "/local/domain/1/data/x").unwrap(), "v");
}

#[test]
fn node_created_by_another_domain_is_owned_by_it_with_inherited_entries() {
    let mut w = World::new();
    w.ok(1, ty::SET_PERMS, 0, &zs(&["data", "n1", "b2"]));
    w.write(2, "/local/domain/1/data/from2", "x").unwrap();
    let perms = w.xs.get_perms("/local/domain/1/data/from2").unwrap();
    assert_eq!(
        perms,
        [
            Perm {
                dom: 2,
                kind: PermKind::None
            },
            Perm {
                dom: 2,
                kind: PermKind::Both
            }
        ]
    );
    assert_eq!(
        w.ok(2, ty::GET_PERMS, 0, &z("/local/domain/1/data/from2")),
        b"n2\0b2\0"
    );
    // Owner 2 has full access; 1 falls back to entry 0's flag.
    w.err(1, ty::READ, 0, &z("data/from2"), Error::EACCES);
}

#[test]
fn set_perms_needs_ownership_and_cannot_change_owner() {
    let mut w = World::new();
    w.ok(1, ty::SET_PERMS, 0, &zs(&["data", "n1", "b2"]));
    w.err(
        2,
        ty::SET_PERMS,
        0,
        &zs(&["/local/domain/1/data", "n1", "b2"]),
        Error::EACCES,
    );
    w.err(1, ty::SET_PERMS, 0, &zs(&["data", "n2"]), Error::EPERM);
    w.err(
        1,
        ty::SET_PERMS,
        0,
        &zs(&["@releaseDomain", "n0", "r1"]),
        Error::EACCES,
    );
}

#[test]
fn set_perms_naming_an_owner_that_is_no_domain_is_enoent_before_anything_else() {
    let mut w = World::new();
    w.write(1, "data/sp", "v").unwrap();
    // Domain 7 does not exist: ENOENT even though the owner would change
    // (EPERM) and even on a node the caller cannot reach.
    w.err(1, ty::SET_PERMS, 0, &zs(&["data/sp", "n7"]), Error::ENOENT);
    w.err(
        2,
        ty::SET_PERMS,
        0,
        &zs(&["/local/domain/1/data/sp", "n7"]),
        Error::ENOENT,
    );
    // Entries after the owner naming no domain are kept (and ignored).
    w.ok(1, ty::SET_PERMS, 0, &zs(&["data/sp", "n1", "r7"]));
    // Malformed lists keep their own error.
    w.err(1, ty::SET_PERMS, 0, &zs(&["data/sp", "x7"]), Error::EINVAL);
}

#[test]
fn write_grant_lets_other_domain_modify_and_remove() {
    let mut w = World::new();
    w.write(1, "data/x", "v").unwrap();
    w.ok(1, ty::SET_PERMS, 0, &zs(&["data/x", "n1", "w2"]));
    w.write(2, "/local/domain/1/data/x", "new").unwrap();
    assert_eq!(w.read(1, "data/x").unwrap(), "new");
    w.err(2, ty::READ, 0, &z("/local/domain/1/data/x"), Error::EACCES);
    w.ok(2, ty::RM, 0, &z("/local/domain/1/data/x"));
    w.err(1, ty::READ, 0, &z("data/x"), Error::ENOENT);
}

#[test]
fn hypervisor_sees_and_changes_everything() {
    let mut w = World::new();
    assert_eq!(w.xs.read("/local/domain/1/name").unwrap(), b"domU1");
    w.xs.write("/local/domain/1/data/h", b"x").unwrap();
    // A hypervisor-created node keeps its parent's owner.
    assert_eq!(
        w.xs.get_perms("/local/domain/1/data/h").unwrap(),
        [Perm {
            dom: 1,
            kind: PermKind::None
        }]
    );
    w.xs.set_perms(
        "/local/domain/1/data/h",
        &[Perm {
            dom: 2,
            kind: PermKind::Read,
        }],
    )
    .unwrap();
    assert_eq!(w.read(1, "data/h").unwrap(), "x");
    assert_eq!(w.xs.directory("/local/domain").unwrap(), ["1", "2"]);
    w.xs.rm("/local/domain/1/data/h").unwrap();
    assert_eq!(w.xs.read("/local/domain/1/data/h"), Err(Error::ENOENT));
    assert_eq!(w.xs.read("relative"), Err(Error::EINVAL));
}

#[test]
fn recycled_domid_does_not_inherit_old_grants() {
    let mut w = World::new();
    w.write(1, "data/x", "v").unwrap();
    w.ok(1, ty::SET_PERMS, 0, &zs(&["data/x", "n1", "r2"]));
    w.xs.release_domain(2);
    w.introduce(2);
    w.err(2, ty::READ, 0, &z("/local/domain/1/data/x"), Error::EACCES);
    // A grant written after the new domain 2 appeared counts.
    w.ok(1, ty::SET_PERMS, 0, &zs(&["data/x", "n1", "r2"]));
    assert_eq!(w.read(2, "/local/domain/1/data/x").unwrap(), "v");
}

#[test]
fn toolstack_device_nodes_are_readable_by_the_named_frontend_only() {
    let mut w = World::new();
    w.introduce(3);
    let perms = [
        Perm {
            dom: 2,
            kind: PermKind::None,
        },
        Perm {
            dom: 1,
            kind: PermKind::Read,
        },
    ];
    w.xs.write_with_perms("/local/domain/2/backend/vif/1/0/state", b"1", &perms)
        .unwrap();
    assert_eq!(
        w.read(1, "/local/domain/2/backend/vif/1/0/state").unwrap(),
        "1"
    );
    assert_eq!(w.read(2, "backend/vif/1/0/state").unwrap(), "1");
    w.err(
        3,
        ty::READ,
        0,
        &z("/local/domain/2/backend/vif/1/0/state"),
        Error::EACCES,
    );
    w.err(
        1,
        ty::WRITE,
        0,
        &wv("/local/domain/2/backend/vif/1/0/state", "4"),
        Error::EACCES,
    );
}
