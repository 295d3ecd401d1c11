//! Introducing and releasing domains; the toolstack's nodes; the console
//! listing.

use crate::fake::*;
use crate::wire::ty;
use crate::{DomainInfo, Error, Perm, PermKind, Quotas, Xenstore, domain_uuid, toolstack_nodes};

fn n(dom: u16) -> Vec<Perm> {
    vec![Perm {
        dom,
        kind: PermKind::None,
    }]
}

#[test]
fn new_store_has_the_base_nodes_owned_by_the_hypervisor() {
    let xs: Xenstore<FakePage> = Xenstore::new(Quotas::default());
    assert_eq!(xs.directory("/").unwrap(), ["tool", "local"]);
    assert_eq!(xs.directory("/tool").unwrap(), ["xenstored"]);
    assert_eq!(xs.directory("/local/domain").unwrap(), Vec::<String>::new());
    for p in [
        "/",
        "/tool",
        "/tool/xenstored",
        "/local",
        "/local/domain",
        "@introduceDomain",
        "@releaseDomain",
    ] {
        assert_eq!(xs.get_perms(p).unwrap(), n(0), "{p}");
    }
}

#[test]
fn toolstack_nodes_are_written_with_their_perms() {
    let w = World::new();
    for node in toolstack_nodes(&info(1)) {
        assert_eq!(
            w.xs.read(&node.path).unwrap(),
            node.value.as_bytes(),
            "{}",
            node.path
        );
        assert_eq!(
            w.xs.get_perms(&node.path).unwrap(),
            node.perms,
            "{}",
            node.path
        );
    }
    assert_eq!(w.xs.get_perms("/local/domain/1").unwrap(), n(1));
    assert_eq!(
        w.xs.get_perms("/local/domain/1/control/shutdown").unwrap(),
        n(1)
    );
    let vm = format!("/vm/{}", domain_uuid(1));
    assert_eq!(w.xs.get_perms(&format!("{vm}/name")).unwrap(), n(0));
}

#[test]
fn domain_reads_its_toolstack_nodes_but_not_its_vm_node() {
    let mut w = World::new();
    for (p, v) in [
        ("name", "domU1"),
        ("domid", "1"),
        ("memory/target", "262144"),
        ("memory/static-max", "262144"),
        ("memory/videoram", "-1"),
        ("cpu/0/availability", "online"),
        ("control/platform-feature-xs_reset_watches", "1"),
        ("control/feature-poweroff", "1"),
        ("store/port", "1"),
        ("store/ring-ref", "233473"),
        ("device/suspend/event-channel", ""),
    ] {
        assert_eq!(w.read(1, p).unwrap(), v, "{p}");
    }
    let vm = w.read(1, "vm").unwrap();
    assert_eq!(vm, format!("/vm/{}", domain_uuid(1)));
    w.err(1, ty::READ, 0, &z(&format!("{vm}/uuid")), Error::EACCES);
    assert_eq!(
        w.xs.read(&format!("{vm}/uuid")).unwrap(),
        domain_uuid(1).as_bytes()
    );
}

#[test]
fn every_vcpu_gets_an_online_availability_node() {
    let mut xs: Xenstore<FakePage> = Xenstore::new(Quotas::default());
    let info = DomainInfo {
        vcpus: 4,
        ..info(3)
    };
    xs.introduce_domain(&info, FakePage::new()).unwrap();
    assert_eq!(
        xs.directory("/local/domain/3/cpu").unwrap(),
        ["0", "1", "2", "3"]
    );
    assert_eq!(
        xs.read("/local/domain/3/cpu/3/availability").unwrap(),
        b"online"
    );
}

#[test]
fn domain_zero_and_reserved_ids_cannot_be_introduced() {
    let mut xs: Xenstore<FakePage> = Xenstore::new(Quotas::default());
    for domid in [0, 0x7ff0, 0xffff] {
        let i = DomainInfo { domid, ..info(1) };
        assert_eq!(xs.introduce_domain(&i, FakePage::new()), Err(Error::EINVAL));
    }
}

#[test]
fn release_removes_home_vm_and_every_node_owned_by_the_domain() {
    let mut w = World::new();
    w.ok(1, ty::SET_PERMS, 0, &zs(&["data", "n1", "b2"]));
    w.write(2, "/local/domain/1/data/from2", "x").unwrap();
    w.write(1, "data/mine", "x").unwrap();
    w.xs.release_domain(2);
    assert!(!w.xs.is_introduced(2));
    assert_eq!(w.xs.read("/local/domain/2"), Err(Error::ENOENT));
    assert_eq!(
        w.xs.read(&format!("/vm/{}", domain_uuid(2))),
        Err(Error::ENOENT)
    );
    assert_eq!(w.xs.read("/local/domain/1/data/from2"), Err(Error::ENOENT));
    assert_eq!(w.read(1, "data/mine").unwrap(), "x");
    assert_eq!(w.xs.directory("/local/domain").unwrap(), ["1"]);
}

#[test]
fn release_fires_watches_on_removed_nodes() {
    let mut w = World::new();
    w.ok(1, ty::SET_PERMS, 0, &zs(&["data", "n1", "b2"]));
    w.write(2, "/local/domain/1/data/from2", "x").unwrap();
    w.watch(1, "data", "T");
    w.xs.release_domain(2);
    assert_eq!(w.events(1), [("data/from2".into(), "T".into())]);
}

#[test]
fn release_is_seen_by_nobody_unprivileged() {
    let mut w = World::new();
    w.watch(1, "@releaseDomain", "R");
    w.watch(1, "/", "all");
    w.xs.release_domain(2);
    assert_eq!(w.events(1), []);
}

#[test]
fn reintroduce_releases_first_and_starts_clean() {
    let mut w = World::new();
    w.write(2, "data/old", "x").unwrap();
    w.watch(2, "data", "T");
    w.introduce(2);
    assert_eq!(w.xs.read("/local/domain/2/data/old"), Err(Error::ENOENT));
    w.write(2, "data/new", "x").unwrap();
    assert_eq!(w.events(2), []);
    assert_eq!(w.read(2, "name").unwrap(), "domU2");
}

#[test]
fn released_domain_is_no_longer_served() {
    let mut w = World::new();
    let page = w.page(2);
    w.xs.release_domain(2);
    page.send(ty::READ, 1, 0, &z("domid"));
    w.xs.kick(2);
    assert!(page.recv().is_empty());
    w.xs.release_domain(2);
}

#[test]
fn ls_lists_subtree_with_values_and_perms_bounded() {
    let mut w = World::new();
    w.xs.write("/local/domain/1/data/q", b"a\"b\n").unwrap();
    let lines = w.xs.ls("/local/domain/1", 3);
    assert_eq!(lines[0], "/local/domain/1 = \"\"  (n1)");
    assert_eq!(lines[1], "/local/domain/1/name = \"domU1\"  (n1)");
    assert_eq!(lines.len(), 4);
    assert!(lines[3].starts_with("... ") && lines[3].ends_with(" more"));
    let data = w.xs.ls("/local/domain/1/data", 10);
    assert_eq!(
        data,
        [
            "/local/domain/1/data = \"\"  (n1)",
            "/local/domain/1/data/q = \"a\\\"b\\x0a\"  (n1)"
        ]
    );
    assert_eq!(w.xs.ls("/nonesuch", 10), ["/nonesuch: ENOENT"]);
    w.ok(1, ty::SET_PERMS, 0, &zs(&["data", "n1", "r2"]));
    assert_eq!(
        w.xs.ls("/local/domain/1/data", 1)[0],
        "/local/domain/1/data = \"\"  (n1,r2)"
    );
}
