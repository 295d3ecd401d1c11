//! Every message type's success reply and its errors.

use crate::Error;
use crate::fake::*;
use crate::wire::{Header, ty};

#[test]
fn replies_echo_type_req_id_and_tx_id() {
    let mut w = World::new();
    let page = w.page(1);
    page.send(ty::READ, 0xdead, 0, &z("domid"));
    w.xs.kick(1);
    let m = page.recv().pop().unwrap();
    assert_eq!((m.ty, m.req_id, m.tx_id), (ty::READ, 0xdead, 0));
    page.send(ty::READ, 77, 42, &z("domid"));
    w.xs.kick(1);
    let m = page.recv().pop().unwrap();
    assert_eq!((m.ty, m.req_id, m.tx_id), (ty::ERROR, 77, 42));
    assert_eq!(m.payload, b"ENOENT\0");
}

#[test]
fn read_returns_value_without_nul() {
    let mut w = World::new();
    assert_eq!(w.ok(1, ty::READ, 0, &z("domid")), b"1");
    assert_eq!(w.ok(1, ty::READ, 0, &z("/local/domain/1/name")), b"domU1");
}

#[test]
fn read_errors() {
    let mut w = World::new();
    w.err(1, ty::READ, 0, &z("data/none"), Error::ENOENT);
    w.err(1, ty::READ, 0, b"domid", Error::EINVAL);
    w.err(1, ty::READ, 0, b"domid\0x\0", Error::EINVAL);
    w.err(1, ty::READ, 0, &z("bad path"), Error::EINVAL);
    w.err(1, ty::READ, 0, &z("data/"), Error::EINVAL);
    w.err(1, ty::READ, 0, &z("data//x"), Error::EINVAL);
    w.err(1, ty::READ, 0, &z(""), Error::EINVAL);
    w.err(1, ty::READ, 0, &z("@introduceDomain"), Error::EINVAL);
}

#[test]
fn write_stores_binary_value_after_first_nul() {
    let mut w = World::new();
    w.ok(1, ty::WRITE, 0, b"data/bin\0a\0b");
    assert_eq!(w.ok(1, ty::READ, 0, &z("data/bin")), b"a\0b");
    w.ok(1, ty::WRITE, 0, b"data/empty\0");
    assert_eq!(w.ok(1, ty::READ, 0, &z("data/empty")), b"");
}

#[test]
fn write_creates_parents_with_empty_values() {
    let mut w = World::new();
    assert_eq!(w.ok(1, ty::WRITE, 0, &wv("data/a/b/c", "v")), b"OK\0");
    assert_eq!(w.read(1, "data/a/b").unwrap(), "");
    assert_eq!(w.ok(1, ty::DIRECTORY, 0, &z("data/a")), b"b\0");
}

#[test]
fn write_errors() {
    let mut w = World::new();
    w.err(1, ty::WRITE, 0, b"data/x", Error::EINVAL);
    w.err(1, ty::WRITE, 0, &wv("@x", "v"), Error::EINVAL);
    w.err(1, ty::WRITE, 0, &wv("data/x.y", "v"), Error::EINVAL);
}

#[test]
fn directory_lists_children_in_creation_order() {
    let mut w = World::new();
    w.write(1, "data/b", "").unwrap();
    w.write(1, "data/a", "").unwrap();
    assert_eq!(w.ok(1, ty::DIRECTORY, 0, &z("data")), b"b\0a\0");
    assert_eq!(w.ok(1, ty::DIRECTORY, 0, &z("data/a")), b"");
    w.err(1, ty::DIRECTORY, 0, &z("data/none"), Error::ENOENT);
}

#[test]
fn directory_too_big_for_a_reply_is_e2big_and_directory_part_pages_it() {
    let mut w = World::new();
    let name = "x".repeat(1000);
    w.xs.write("/big", b"").unwrap();
    let everyone_reads = [crate::Perm {
        dom: 0,
        kind: crate::PermKind::Read,
    }];
    w.xs.set_perms("/big", &everyone_reads).unwrap();
    for i in 0..5 {
        w.xs.write(&format!("/big/{i}{name}"), b"").unwrap();
    }
    w.err(1, ty::DIRECTORY, 0, &z("/big"), Error::E2BIG);
    // Children total 5 * 1002 bytes: the first part takes the 4 that fit.
    let gen_and = w.ok(1, ty::DIRECTORY_PART, 0, &zs(&["/big", "0"]));
    let gen_end = gen_and.iter().position(|&b| b == 0).unwrap();
    let first = &gen_and[gen_end + 1..];
    assert_eq!(first.len(), 4 * 1002, "no extra NUL: the list goes on");
    let rest = w.ok(1, ty::DIRECTORY_PART, 0, &zs(&["/big", "4008"]));
    let rest = &rest[gen_end + 1..];
    assert_eq!(rest.len(), 1002 + 1, "ends with the extra NUL");
    assert_eq!(rest.last(), Some(&0));
    let past = w.ok(1, ty::DIRECTORY_PART, 0, &zs(&["/big", "99999"]));
    assert!(past.ends_with(b"\0\0"));
    w.err(1, ty::DIRECTORY_PART, 0, &z("/big"), Error::EINVAL);
    w.err(1, ty::DIRECTORY_PART, 0, &zs(&["/big", "x"]), Error::EINVAL);
}

#[test]
fn get_perms_lists_entries_owner_first() {
    let mut w = World::new();
    assert_eq!(w.ok(1, ty::GET_PERMS, 0, &z("name")), b"n1\0");
    w.ok(1, ty::SET_PERMS, 0, &zs(&["data", "r1", "w2", "b3"]));
    assert_eq!(w.ok(1, ty::GET_PERMS, 0, &z("data")), b"r1\0w2\0b3\0");
    w.err(1, ty::GET_PERMS, 0, &z("@introduceDomain"), Error::EACCES);
    w.err(1, ty::GET_PERMS, 0, &z("@nonesuch"), Error::ENOENT);
    w.err(1, ty::GET_PERMS, 0, &z("data/none"), Error::ENOENT);
}

#[test]
fn mkdir_creates_once_and_accepts_existing() {
    let mut w = World::new();
    w.ok(1, ty::MKDIR, 0, &z("data/d"));
    assert_eq!(w.read(1, "data/d").unwrap(), "");
    w.write(1, "data/d", "keep").unwrap();
    w.ok(1, ty::MKDIR, 0, &z("data/d"));
    assert_eq!(w.read(1, "data/d").unwrap(), "keep");
    w.err(1, ty::MKDIR, 0, b"data/e", Error::EINVAL);
}

#[test]
fn rm_is_recursive_and_missing_leaf_is_ok() {
    let mut w = World::new();
    w.write(1, "data/a/b/c", "v").unwrap();
    w.ok(1, ty::RM, 0, &z("data/a"));
    w.err(1, ty::READ, 0, &z("data/a/b/c"), Error::ENOENT);
    assert_eq!(w.ok(1, ty::DIRECTORY, 0, &z("data")), b"");
    w.ok(1, ty::RM, 0, &z("data/a"));
    w.err(1, ty::RM, 0, &z("data/a/b"), Error::ENOENT);
    w.err(1, ty::RM, 0, &z("/"), Error::EINVAL);
}

#[test]
fn set_perms_errors() {
    let mut w = World::new();
    w.err(1, ty::SET_PERMS, 0, &z("data"), Error::EINVAL);
    w.err(1, ty::SET_PERMS, 0, &zs(&["data", "x1"]), Error::EINVAL);
    w.err(1, ty::SET_PERMS, 0, b"data\0n1", Error::EINVAL);
    w.err(
        1,
        ty::SET_PERMS,
        0,
        &zs(&["data/none", "n1"]),
        Error::ENOENT,
    );
    w.ok(1, ty::SET_PERMS, 0, &zs(&["data", "r1"]));
}

#[test]
fn get_domain_path_answers_any_domid() {
    let mut w = World::new();
    assert_eq!(
        w.ok(1, ty::GET_DOMAIN_PATH, 0, &z("7")),
        b"/local/domain/7\0"
    );
    w.err(1, ty::GET_DOMAIN_PATH, 0, &z("x"), Error::EINVAL);
    w.err(1, ty::GET_DOMAIN_PATH, 0, b"7", Error::EINVAL);
}

#[test]
fn privileged_messages_are_eacces_for_every_domu() {
    let mut w = World::new();
    for t in [
        ty::CONTROL,
        ty::INTRODUCE,
        ty::RELEASE,
        ty::IS_DOMAIN_INTRODUCED,
        ty::RESUME,
        ty::SET_TARGET,
    ] {
        w.err(1, t, 0, &z("1"), Error::EACCES);
    }
}

#[test]
fn unknown_and_server_only_types_are_enosys() {
    let mut w = World::new();
    for t in [
        ty::WATCH_EVENT,
        ty::ERROR,
        20,
        ty::GET_FEATURE,
        ty::SET_FEATURE,
        ty::GET_QUOTA,
        ty::SET_QUOTA,
        99,
        0xffff,
    ] {
        w.err(1, t, 0, &z("x"), Error::ENOSYS);
    }
}

#[test]
fn reply_that_would_exceed_4096_bytes_is_e2big() {
    let mut w = World::new();
    w.xs.write("/huge", &[b'v'; 5000]).unwrap();
    w.xs.set_perms(
        "/huge",
        &[crate::Perm {
            dom: 0,
            kind: crate::PermKind::Read,
        }],
    )
    .unwrap();
    w.err(1, ty::READ, 0, &z("/huge"), Error::E2BIG);
}

#[test]
fn handle_message_returns_reply_and_own_events() {
    let mut w = World::new();
    let out =
        w.xs.handle_message(1, &Header::message(ty::WATCH, 5, 0, &zs(&["data", "tok"])));
    assert_eq!(out.len(), 2);
    assert_eq!(out[0], Header::message(ty::WATCH, 5, 0, b"OK\0"));
    assert_eq!(
        out[1],
        Header::message(ty::WATCH_EVENT, 0, 0, b"data\0tok\0")
    );
    let bad = w.xs.handle_message(1, &[1, 2, 3]);
    assert_eq!(bad.len(), 1);
    assert!(
        w.xs.handle_message(9, &Header::message(ty::READ, 1, 0, b"x\0"))
            .is_empty()
    );
}
