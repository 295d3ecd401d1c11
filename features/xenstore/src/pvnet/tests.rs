use std::string::ToString;

use super::*;

/// `domU1` (ID 1, phandle 0x1), `domU2` (ID 2, phandle 0x2) and `domU3`
/// (ID 3, phandle 0x3, no xenstore) under `/chosen`, holding `d1`, `d2`.
fn dtb(d1: &str, d2: &str) -> oxen_core::test_dtc::Blob {
    let dts = format!(
        "/dts-v1/;\n/ {{\n chosen {{\n  \
         domU1 {{ compatible = \"xen,domain\"; phandle = <1>; {d1} }};\n  \
         domU2 {{ compatible = \"xen,domain\"; phandle = <2>; {d2} }};\n  \
         domU3 {{ compatible = \"xen,domain\"; phandle = <3>; }};\n  \
         other {{ phandle = <9>; }};\n }};\n}};\n"
    );
    oxen_core::test_dtc::dtb(&dts)
}

fn read(d1: &str, d2: &str) -> Result<Vec<Vif>, Vec<String>> {
    let blob = dtb(d1, d2);
    let fdt = Fdt::parse(blob.bytes()).unwrap();
    let domains = [
        (fdt.find("/chosen/domU1").unwrap(), 1),
        (fdt.find("/chosen/domU2").unwrap(), 2),
        (fdt.find("/chosen/domU3").unwrap(), 3),
    ];
    read_vifs(&fdt, &domains, &|d| d != 3).map_err(|e| e.iter().map(ToString::to_string).collect())
}

fn vif(body: &str) -> String {
    format!("vif0 {{ compatible = \"oxen,vif\"; {body} }};")
}

#[test]
fn a_vif_names_its_backend_and_gets_a_mac_from_xens_range() {
    let v = read(&vif("oxen,backend = <2>;"), "").unwrap();
    assert_eq!(
        v,
        [Vif {
            path: "/chosen/domU1/vif0".into(),
            frontend: 1,
            backend: 2,
            index: 0,
            mac: [0x00, 0x16, 0x3e, 0, 1, 0],
        }]
    );
    assert_eq!(mac_string(&v[0].mac), "00:16:3e:00:01:00");
}

#[test]
fn index_and_mac_are_read_when_given() {
    let v = read(
        &vif("oxen,backend = <2>; oxen,index = <3>; mac-address = [00 16 3e 12 34 56];"),
        "",
    )
    .unwrap();
    assert_eq!(
        (v[0].index, v[0].mac),
        (3, [0, 0x16, 0x3e, 0x12, 0x34, 0x56])
    );
}

#[test]
fn no_tree_vifs_is_no_devices() {
    assert_eq!(read("", ""), Ok(vec![]));
}

#[test]
fn a_missing_or_unknown_backend_is_named() {
    assert_eq!(
        read(&vif(""), ""),
        Err(vec![
            "/chosen/domU1/vif0: oxen,backend is missing (expected <&phandle> of the backend's \
             xen,domain node)"
                .to_string()
        ])
    );
    assert_eq!(
        read(&vif("oxen,backend = <9>;"), ""),
        Err(vec![
            "/chosen/domU1/vif0: oxen,backend = <0x9> is not the phandle of a xen,domain node \
             (expected <&phandle> of the backend's xen,domain node)"
                .to_string()
        ])
    );
    assert_eq!(
        read(&vif("oxen,backend = <2 3>;"), ""),
        Err(vec![
            "/chosen/domU1/vif0: oxen,backend = <0x2 0x3> is not one cell (expected <&phandle>)"
                .to_string()
        ])
    );
}

#[test]
fn the_same_domain_at_both_ends_is_refused() {
    assert_eq!(
        read(&vif("oxen,backend = <1>;"), ""),
        Err(vec![
            "/chosen/domU1/vif0: oxen,backend = <0x1> is the frontend's own domain (expected \
             another xen,domain node)"
                .to_string()
        ])
    );
}

#[test]
fn a_duplicate_index_is_refused_naming_both_nodes() {
    let two = "vif0 { compatible = \"oxen,vif\"; oxen,backend = <2>; }; \
               vif1 { compatible = \"oxen,vif\"; oxen,backend = <2>; oxen,index = <0>; \
               mac-address = [00 16 3e 00 00 09]; };";
    assert_eq!(
        read(two, ""),
        Err(vec![
            "/chosen/domU1/vif1: oxen,index = <0> is the index of /chosen/domU1/vif0 too \
             (expected an index no other vif of this domain has)"
                .to_string()
        ])
    );
}

#[test]
fn bad_macs_are_refused() {
    let e = read(
        &vif("oxen,backend = <2>; mac-address = [01 16 3e 00 00 01];"),
        "",
    )
    .unwrap_err();
    assert_eq!(
        e,
        [
            "/chosen/domU1/vif0: mac-address = 01:16:3e:00:00:01 is a multicast address (expected \
          a unicast address, e.g. [00 16 3e 00 01 00])"
        ]
    );
    let e = read(&vif("oxen,backend = <2>; mac-address = [00 16 3e];"), "").unwrap_err();
    assert!(e[0].contains("is 3 bytes (expected 6"), "{e:?}");
    let e = read(
        &vif("oxen,backend = <2>; mac-address = [00 00 00 00 00 00];"),
        "",
    )
    .unwrap_err();
    assert!(e[0].contains("all zeros"), "{e:?}");
}

#[test]
fn both_ends_need_xenstore() {
    assert_eq!(
        read(&vif("oxen,backend = <3>;"), ""),
        Err(vec![
            "/chosen/domU1/vif0: oxen,backend names domain 3 as the backend, which has no \
             xenstore (expected its xen,enhanced to be \"enabled\": PV devices are described \
             in xenstore)"
                .to_string()
        ])
    );
}

#[test]
fn every_mistake_is_reported() {
    let e = read(
        &vif("oxen,index = <300>; mac-address = [00];"),
        "vif0 { compatible = \"oxen,vif\"; oxen,backend = <2>; };",
    )
    .unwrap_err();
    assert_eq!(e.len(), 4, "{e:?}");
    assert!(e.iter().any(|l| l.contains("oxen,backend is missing")));
    assert!(
        e.iter()
            .any(|l| l.contains("oxen,index = <0x12c> is not one cell of 0 to 255"))
    );
    assert!(e.iter().any(|l| l.contains("mac-address")));
    assert!(
        e.iter().any(
            |l| l.starts_with("/chosen/domU2/vif0: oxen,backend = <0x2> is the frontend's own")
        )
    );
}

#[test]
fn the_toolstack_nodes_follow_libxl_with_hotplug_status_connected() {
    let v = Vif {
        path: String::new(),
        frontend: 1,
        backend: 2,
        index: 0,
        mac: default_mac(1, 0),
    };
    let nodes = device_nodes(&v);
    let get = |p: &str| nodes.iter().find(|(path, _, _)| path == p).unwrap();
    let f = "/local/domain/1/device/vif/0";
    let b = "/local/domain/2/backend/vif/1/0";
    assert_eq!(get(&format!("{f}/backend")).1, b);
    assert_eq!(get(&format!("{f}/backend-id")).1, "2");
    assert_eq!(get(&format!("{f}/state")).1, "1");
    assert_eq!(get(&format!("{f}/mac")).1, "00:16:3e:00:01:00");
    assert_eq!(get(&format!("{b}/frontend")).1, f);
    assert_eq!(get(&format!("{b}/frontend-id")).1, "1");
    assert_eq!(get(&format!("{b}/hotplug-status")).1, "connected");
    assert_eq!(get(&format!("{b}/script")).1, "/etc/xen/scripts/vif-bridge");
    let show = |p: &Vec<Perm>| {
        p.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    assert_eq!(show(&get(f).2), "n1,r2");
    assert_eq!(show(&get(&format!("{b}/state")).2), "n2,r1");
}

#[test]
fn each_half_is_written_backend_first_with_state_last() {
    let v = Vif {
        path: String::new(),
        frontend: 1,
        backend: 2,
        index: 0,
        mac: default_mac(1, 0),
    };
    let paths: Vec<String> = device_nodes(&v).into_iter().map(|(p, _, _)| p).collect();
    let b_state = paths
        .iter()
        .position(|p| p == "/local/domain/2/backend/vif/1/0/state")
        .unwrap();
    let f_dir = paths
        .iter()
        .position(|p| p == "/local/domain/1/device/vif/0")
        .unwrap();
    assert_eq!(b_state + 1, f_dir, "{paths:?}");
    assert_eq!(paths.last().unwrap(), "/local/domain/1/device/vif/0/state");
}
