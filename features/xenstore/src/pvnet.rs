//! PV network devices between two domUs, declared in the host device tree
//! (Oxen's own binding, docs/pv-devices.md): read and validated at boot,
//! and the xenstore nodes a toolstack would write for each (libxl's layout
//! and permissions), so that unmodified netfront and netback connect with
//! no dom0.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use oxen_core::hostdt::{DtError, Fdt, NodeId};

use crate::{DomId, Perm, PermKind};

/// The binding's `compatible`.
pub const COMPATIBLE: &str = "oxen,vif";
/// The backend domain: a phandle of a `xen,domain` node.
pub const BACKEND: &str = "oxen,backend";
/// The device index within the frontend (`device/vif/<index>`).
pub const INDEX: &str = "oxen,index";
/// Six bytes; Xen's `00:16:3e` range from the IDs when absent.
pub const MAC: &str = "mac-address";

/// One declared device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vif {
    /// The node, for messages.
    pub path: String,
    pub frontend: DomId,
    pub backend: DomId,
    pub index: u32,
    pub mac: [u8; 6],
}

/// The MAC a device gets when the tree gives none: Xen's OUI, then the
/// frontend's ID and the index (unique per device in one system).
pub fn default_mac(frontend: DomId, index: u32) -> [u8; 6] {
    [
        0x00,
        0x16,
        0x3e,
        (frontend >> 8) as u8 & 0x7f,
        frontend as u8,
        index as u8,
    ]
}

/// A device as `oxen-check` lists it.
pub fn describe(v: &Vif) -> oxen_core::subsystem::Connection {
    oxen_core::subsystem::Connection {
        kind: "PV network device",
        path: v.path.clone(),
        detail: alloc::format!(
            "vif {} of d{} (frontend) served by d{} (backend), mac {}",
            v.index,
            v.frontend,
            v.backend,
            mac_string(&v.mac)
        ),
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_string(mac: &[u8; 6]) -> String {
    let parts: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

/// Reads every `oxen,vif` node. `domains` maps each `xen,domain` node to
/// its ID; `has_xenstore` says whether a domain was given xenstore (both
/// ends need it: the devices are described there). Every mistake is
/// reported, naming the node and property.
pub fn read_vifs(
    fdt: &Fdt<'_>,
    domains: &[(NodeId, DomId)],
    has_xenstore: &dyn Fn(DomId) -> bool,
) -> Result<Vec<Vif>, Vec<DtError>> {
    let Some(chosen) = fdt.find("/chosen") else {
        return Ok(Vec::new());
    };
    let dom_of = |n: NodeId| domains.iter().find(|(id, _)| *id == n).map(|&(_, d)| d);
    let mut errors = Vec::new();
    let mut vifs: Vec<Vif> = Vec::new();
    let mut nodes: Vec<NodeId> = fdt
        .children(chosen)
        .filter(|&n| fdt.is_compatible(n, COMPATIBLE))
        .collect();
    for d in fdt.children(chosen) {
        nodes.extend(
            fdt.children(d)
                .filter(|&n| fdt.is_compatible(n, COMPATIBLE)),
        );
    }
    for n in nodes {
        match read_vif(fdt, n, &dom_of, has_xenstore) {
            Ok(v) => vifs.push(v),
            Err(e) => errors.extend(e),
        }
    }
    let mut seen: BTreeSet<(DomId, u32)> = BTreeSet::new();
    for v in &vifs {
        if !seen.insert((v.frontend, v.index)) {
            let first = vifs
                .iter()
                .find(|o| (o.frontend, o.index) == (v.frontend, v.index))
                .map_or("", |o| o.path.as_str());
            errors.push(DtError::prop(
                &v.path,
                INDEX,
                format!(
                    "= <{}> is the index of {first} too (expected an index no other vif of \
                     this domain has)",
                    v.index
                ),
            ));
        }
    }
    let mut macs: BTreeSet<[u8; 6]> = BTreeSet::new();
    for v in &vifs {
        if !macs.insert(v.mac) {
            errors.push(DtError::prop(
                &v.path,
                MAC,
                format!(
                    "= {} is another vif's address too (expected one address per device)",
                    mac_string(&v.mac)
                ),
            ));
        }
    }
    if errors.is_empty() {
        Ok(vifs)
    } else {
        Err(errors)
    }
}

fn read_vif(
    fdt: &Fdt<'_>,
    n: NodeId,
    dom_of: &dyn Fn(NodeId) -> Option<DomId>,
    has_xenstore: &dyn Fn(DomId) -> bool,
) -> Result<Vif, Vec<DtError>> {
    let path = fdt.path(n);
    let frontend = fdt.node(n).parent.and_then(dom_of).ok_or_else(|| {
        alloc::vec![DtError::node(
            &path,
            "is an oxen,vif node outside any xen,domain node (expected it inside the \
             xen,domain node of the frontend domain)",
        )]
    })?;
    let mut errors = Vec::new();
    let backend = match fdt.prop(n, BACKEND) {
        None => {
            errors.push(DtError::prop(
                &path,
                BACKEND,
                "is missing (expected <&phandle> of the backend's xen,domain node)",
            ));
            None
        }
        Some(p) => {
            let shown = p.display();
            match (p.cell(0), p.value.len()) {
                (Some(ph), 4) => match fdt.by_phandle(ph).and_then(dom_of) {
                    Some(b) if b == frontend => {
                        errors.push(DtError::prop(
                            &path,
                            BACKEND,
                            format!(
                                "= {shown} is the frontend's own domain (expected another \
                                 xen,domain node)"
                            ),
                        ));
                        None
                    }
                    Some(b) => Some(b),
                    None => {
                        errors.push(DtError::prop(
                            &path,
                            BACKEND,
                            format!(
                                "= {shown} is not the phandle of a xen,domain node (expected \
                                 <&phandle> of the backend's xen,domain node)"
                            ),
                        ));
                        None
                    }
                },
                _ => {
                    errors.push(DtError::prop(
                        &path,
                        BACKEND,
                        format!("= {shown} is not one cell (expected <&phandle>)"),
                    ));
                    None
                }
            }
        }
    };
    let index = match fdt.prop(n, INDEX) {
        None => 0,
        Some(p) => match (p.cell(0), p.value.len()) {
            (Some(i), 4) if i <= 255 => i,
            _ => {
                errors.push(DtError::prop(
                    &path,
                    INDEX,
                    format!("= {} is not one cell of 0 to 255", p.display()),
                ));
                0
            }
        },
    };
    let mac = match fdt.prop(n, MAC) {
        None => default_mac(frontend, index),
        Some(p) => match <[u8; 6]>::try_from(p.value) {
            Ok(m) if m[0] & 1 == 0 && m != [0; 6] => m,
            Ok(m) => {
                errors.push(DtError::prop(
                    &path,
                    MAC,
                    format!(
                        "= {} is {} (expected a unicast address, e.g. [00 16 3e 00 01 00])",
                        mac_string(&m),
                        if m == [0; 6] {
                            "all zeros"
                        } else {
                            "a multicast address"
                        }
                    ),
                ));
                [0; 6]
            }
            Err(_) => {
                errors.push(DtError::prop(
                    &path,
                    MAC,
                    format!(
                        "= {} is {} bytes (expected 6, e.g. [00 16 3e 00 01 00])",
                        p.display(),
                        p.value.len()
                    ),
                ));
                [0; 6]
            }
        },
    };
    for (dom, what) in [(Some(frontend), "frontend"), (backend, "backend")] {
        if let Some(d) = dom
            && !has_xenstore(d)
        {
            let prop = if what == "frontend" {
                "compatible"
            } else {
                BACKEND
            };
            errors.push(DtError::prop(
                &path,
                prop,
                format!(
                    "names domain {d} as the {what}, which has no xenstore (expected its \
                     xen,enhanced to be \"enabled\": PV devices are described in xenstore)"
                ),
            ));
        }
    }
    match (errors.is_empty(), backend) {
        (true, Some(backend)) => Ok(Vif {
            path,
            frontend,
            backend,
            index,
            mac,
        }),
        _ => Err(errors),
    }
}

/// One node a toolstack writes for a device: absolute path, value, perms.
pub type DeviceNode = (String, String, Vec<Perm>);

/// The frontend's directory.
pub fn frontend_dir(v: &Vif) -> String {
    format!("/local/domain/{}/device/vif/{}", v.frontend, v.index)
}

/// The backend's directory.
pub fn backend_dir(v: &Vif) -> String {
    format!(
        "/local/domain/{}/backend/vif/{}/{}",
        v.backend, v.frontend, v.index
    )
}

/// What libxl writes for a vif, with its permissions: the frontend's
/// directory owned by the frontend and readable by the backend, the
/// backend's owned by the backend and readable by the frontend, both in
/// `state` 1 (Initialising). `hotplug-status = connected` is written too:
/// there is no dom0 to run the backend's hotplug script, and netback
/// waits for it before it connects (docs/pv-devices.md).
pub fn device_nodes(v: &Vif) -> Vec<DeviceNode> {
    let f = v.frontend;
    let b = v.backend;
    let fperm = alloc::vec![
        Perm {
            dom: f,
            kind: PermKind::None
        },
        Perm {
            dom: b,
            kind: PermKind::Read
        },
    ];
    let bperm = alloc::vec![
        Perm {
            dom: b,
            kind: PermKind::None
        },
        Perm {
            dom: f,
            kind: PermKind::Read
        },
    ];
    let fdir = frontend_dir(v);
    let bdir = backend_dir(v);
    let mac = mac_string(&v.mac);
    let mut out: Vec<DeviceNode> = Vec::new();
    let mut put = |dir: &str, key: &str, value: String, perms: &Vec<Perm>| {
        let path = if key.is_empty() {
            String::from(dir)
        } else {
            format!("{dir}/{key}")
        };
        out.push((path, value, perms.clone()));
    };
    // The backend's half first, and each half's `state` last: a bus probes
    // a device once its `state` reads 1, so a driver in a running domain
    // (a rebuilt peer) never sees a half-written directory.
    put(&bdir, "", String::new(), &bperm);
    put(&bdir, "frontend", fdir.clone(), &bperm);
    put(&bdir, "frontend-id", format!("{f}"), &bperm);
    put(&bdir, "online", String::from("1"), &bperm);
    put(
        &bdir,
        "script",
        String::from("/etc/xen/scripts/vif-bridge"),
        &bperm,
    );
    put(&bdir, "mac", mac.clone(), &bperm);
    put(&bdir, "handle", format!("{}", v.index), &bperm);
    put(&bdir, "type", String::from("vif"), &bperm);
    put(&bdir, "hotplug-status", String::from("connected"), &bperm);
    put(&bdir, "state", String::from("1"), &bperm);
    put(&fdir, "", String::new(), &fperm);
    put(&fdir, "backend", bdir.clone(), &fperm);
    put(&fdir, "backend-id", format!("{b}"), &fperm);
    put(&fdir, "handle", format!("{}", v.index), &fperm);
    put(&fdir, "mac", mac, &fperm);
    put(&fdir, "trusted", String::from("1"), &fperm);
    put(&fdir, "state", String::from("1"), &fperm);
    out
}

#[cfg(test)]
mod tests;
