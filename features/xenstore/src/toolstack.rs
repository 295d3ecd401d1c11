//! The nodes the toolstack (the hypervisor) writes for a domain it
//! introduces: init-dom0less's set, owned by the domain.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::path::home;
use crate::{DomId, Perm, PermKind};

/// What the toolstack (the hypervisor) knows of a domain when it
/// introduces it.
#[derive(Clone, Debug)]
pub struct DomainInfo<'a> {
    pub domid: DomId,
    pub name: &'a str,
    pub memory_kib: u64,
    pub vcpus: u32,
    pub port: u32,
    pub ring_gfn: u64,
}

/// One node to write: absolute path, value, permission list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolstackNode {
    pub path: String,
    pub value: String,
    pub perms: Vec<Perm>,
}

/// The deterministic UUID Oxen gives a domain (no toolstack makes one):
/// `6f78656e` is "oxen" in ASCII, the last group the domain ID.
pub fn domain_uuid(domid: DomId) -> String {
    format!("6f78656e-0000-4000-8000-{domid:012x}")
}

/// `/vm/<uuid>` of a domain.
pub fn vm_path(domid: DomId) -> String {
    format!("/vm/{}", domain_uuid(domid))
}

/// Every node `introduce_domain` writes, parents before children.
///
/// `/local/domain/<id>` and everything below it is owned by the domain
/// (`n<id>`): the domain may add its own top-level keys, nobody else may
/// read them. Linux needs `control/` writable (it writes its features and
/// acks shutdown requests), `cpu/<n>/availability = online` for every vCPU
/// (it offlines any that reads `offline`) and `memory/target` =
/// `memory/static-max` (else its balloon driver gives memory back). `/vm`
/// nodes are the hypervisor's (`n0`).
pub fn toolstack_nodes(info: &DomainInfo<'_>) -> Vec<ToolstackNode> {
    let id = info.domid;
    let own = vec![Perm {
        dom: id,
        kind: PermKind::None,
    }];
    let hyp = vec![Perm {
        dom: 0,
        kind: PermKind::None,
    }];
    let h = home(id);
    let mem = format!("{}", info.memory_kib);
    let uuid = domain_uuid(id);
    let vm = vm_path(id);

    let mut local: Vec<(String, String)> = vec![
        (String::new(), String::new()),
        (String::from("name"), String::from(info.name)),
        (String::from("domid"), format!("{id}")),
        (String::from("vm"), vm.clone()),
        (String::from("cpu"), String::new()),
    ];
    for n in 0..info.vcpus {
        local.push((format!("cpu/{n}"), String::new()));
        local.push((format!("cpu/{n}/availability"), String::from("online")));
    }
    let rest: &[(&str, &str)] = &[
        ("memory", ""),
        ("memory/static-max", &mem),
        ("memory/target", &mem),
        ("memory/videoram", "-1"),
        ("device", ""),
        ("device/suspend", ""),
        ("device/suspend/event-channel", ""),
        ("control", ""),
        ("control/shutdown", ""),
        ("control/sysrq", ""),
        ("control/feature-poweroff", "1"),
        ("control/feature-reboot", "1"),
        ("control/feature-suspend", ""),
        ("control/platform-feature-multiprocessor-suspend", "1"),
        ("control/platform-feature-xs_reset_watches", "1"),
        ("data", ""),
        ("drivers", ""),
        ("feature", ""),
        ("attr", ""),
        ("error", ""),
        ("store", ""),
    ];
    local.extend(
        rest.iter()
            .map(|(k, v)| (String::from(*k), String::from(*v))),
    );
    local.push((String::from("store/port"), format!("{}", info.port)));
    local.push((String::from("store/ring-ref"), format!("{}", info.ring_gfn)));

    let mut nodes: Vec<ToolstackNode> = local
        .into_iter()
        .map(|(rel, value)| ToolstackNode {
            path: if rel.is_empty() {
                h.clone()
            } else {
                format!("{h}/{rel}")
            },
            value,
            perms: own.clone(),
        })
        .collect();
    for (path, value) in [
        (String::from("/vm"), String::new()),
        (vm.clone(), String::new()),
        (format!("{vm}/name"), String::from(info.name)),
        (format!("{vm}/uuid"), uuid),
    ] {
        nodes.push(ToolstackNode {
            path,
            value,
            perms: hyp.clone(),
        });
    }
    nodes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> DomainInfo<'static> {
        DomainInfo {
            domid: 3,
            name: "domU3",
            memory_kib: 262144,
            vcpus: 2,
            port: 1,
            ring_gfn: 0x39001,
        }
    }

    fn value(nodes: &[ToolstackNode], path: &str) -> String {
        nodes.iter().find(|n| n.path == path).unwrap().value.clone()
    }

    #[test]
    fn lists_parents_before_children() {
        let nodes = toolstack_nodes(&info());
        for (i, n) in nodes.iter().enumerate() {
            if let Some(p) = crate::path::parent(&n.path) {
                let known =
                    p == "/local/domain" || p == "/" || nodes[..i].iter().any(|m| m.path == p);
                assert!(known, "{} listed before its parent", n.path);
            }
        }
    }

    #[test]
    fn every_vcpu_is_online_and_memory_target_is_static_max() {
        let nodes = toolstack_nodes(&info());
        assert_eq!(
            value(&nodes, "/local/domain/3/cpu/0/availability"),
            "online"
        );
        assert_eq!(
            value(&nodes, "/local/domain/3/cpu/1/availability"),
            "online"
        );
        assert!(
            !nodes
                .iter()
                .any(|n| n.path.starts_with("/local/domain/3/cpu/2"))
        );
        assert_eq!(value(&nodes, "/local/domain/3/memory/target"), "262144");
        assert_eq!(value(&nodes, "/local/domain/3/memory/static-max"), "262144");
        assert_eq!(value(&nodes, "/local/domain/3/store/ring-ref"), "233473");
    }

    #[test]
    fn uuid_is_deterministic_per_domain() {
        assert_eq!(domain_uuid(3), "6f78656e-0000-4000-8000-000000000003");
        assert_eq!(
            value(&toolstack_nodes(&info()), "/local/domain/3/vm"),
            vm_path(3)
        );
    }
}
