//! Static event channels: `xen,evtchn-v1` nodes of the host device tree,
//! read and validated with every error collected, then bound before any
//! domain runs.
//!
//! Each node sits in the `xen,domain` node of the domain that owns the port
//! and says `xen,evtchn = <local-port &peer>`; the peer node, in the other
//! domain (or the same one), names this node back.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use oxen_core::hostdt::{DtError, Fdt, NodeId};
use oxen_core::xen::DomId;

use crate::Port;
use crate::channels::EventChannels;
use crate::domain::State;
use crate::env::{Env, SharedPage};

/// The `compatible` of a static event-channel node (Xen matches exactly
/// this; its documentation's `"xen,evtchn"` is not accepted by the code).
pub const COMPATIBLE: &str = "xen,evtchn-v1";
/// The property holding `<local-port phandle>`.
pub const PROPERTY: &str = "xen,evtchn";

/// One end of a static channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticEnd {
    /// The `xen,evtchn-v1` node, for messages.
    pub path: String,
    pub dom: DomId,
    pub port: Port,
}

/// A static channel, its ends in the order Xen binds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticChannel {
    /// The node met first in the tree: Xen allocates its port unbound.
    pub local: StaticEnd,
    /// The node it names: Xen binds its port to `local`'s, which leaves this
    /// port pending before the guest runs.
    pub remote: StaticEnd,
}

/// One node's own `xen,evtchn`, checked.
struct NodeEnd {
    dom: DomId,
    port: Port,
    peer: NodeId,
    display: String,
}

const EXPECTED: &str = "expected <local-port &peer>, the peer being the \
                        xen,evtchn-v1 node at the other end";

/// Reads every static event channel: the `xen,evtchn-v1` nodes that are
/// children of `/chosen` or of its children, in tree order. `domains` maps
/// each `xen,domain` node to its domain ID (all of them: a channel in a
/// node missing from it is reported as outside any domain).
///
/// Errors, each naming the node, the property and its value: a node outside
/// any `xen,domain` node (Oxen runs no dom0); `xen,evtchn` missing or not
/// two cells; port 0; a phandle no node has, the node itself, a node that
/// is not `xen,evtchn-v1` or is outside any `xen,domain` node; a peer that
/// does not name this node back; a domain's port used by two channels.
pub fn read_static_channels(
    fdt: &Fdt<'_>,
    domains: &[(NodeId, DomId)],
) -> Result<Vec<StaticChannel>, Vec<DtError>> {
    let Some(chosen) = fdt.find("/chosen") else {
        return Ok(Vec::new());
    };
    let is_channel = |n: NodeId| fdt.is_compatible(n, COMPATIBLE);
    let mut nodes: Vec<NodeId> = fdt.children(chosen).filter(|&n| is_channel(n)).collect();
    for child in fdt.children(chosen) {
        nodes.extend(fdt.children(child).filter(|&n| is_channel(n)));
    }
    let owner = |n: NodeId| {
        let parent = fdt.node(n).parent?;
        domains
            .iter()
            .find(|(id, _)| *id == parent)
            .map(|&(_, d)| d)
    };

    let mut errors = Vec::new();
    let mut ends: BTreeMap<NodeId, NodeEnd> = BTreeMap::new();
    for &n in &nodes {
        match read_end(fdt, n, &owner, &is_channel) {
            Ok(end) => {
                ends.insert(n, end);
            }
            Err(e) => errors.push(e),
        }
    }

    let mut channels = Vec::new();
    let mut used: BTreeMap<(DomId, Port), String> = BTreeMap::new();
    let mut paired = Vec::new();
    for &n in &nodes {
        if paired.contains(&n) {
            continue;
        }
        let Some(end) = ends.get(&n) else { continue };
        let path = fdt.path(n);
        // A peer with errors of its own has been reported already.
        let Some(peer) = ends.get(&end.peer) else {
            continue;
        };
        if peer.peer != n {
            errors.push(DtError::prop(
                &path,
                PROPERTY,
                format!(
                    "= {} refers to {}, whose {PROPERTY} = {} does not refer back to this \
                     node (the two nodes of a channel must name each other)",
                    end.display,
                    fdt.path(end.peer),
                    peer.display
                ),
            ));
            continue;
        }
        paired.push(n);
        paired.push(end.peer);
        let mut clash = false;
        for (node, e) in [(n, end), (end.peer, peer)] {
            let node_path = fdt.path(node);
            if let Some(other) = used.get(&(e.dom, e.port)) {
                let dom_path = fdt.path(fdt.node(node).parent.unwrap_or(0));
                errors.push(DtError::prop(
                    &node_path,
                    PROPERTY,
                    format!(
                        "= {} uses port {} of {dom_path}, which {other} already uses (a \
                         port belongs to one channel)",
                        e.display, e.port
                    ),
                ));
                clash = true;
            } else {
                used.insert((e.dom, e.port), node_path);
            }
        }
        if !clash {
            channels.push(StaticChannel {
                local: StaticEnd {
                    path,
                    dom: end.dom,
                    port: end.port,
                },
                remote: StaticEnd {
                    path: fdt.path(end.peer),
                    dom: peer.dom,
                    port: peer.port,
                },
            });
        }
    }
    if errors.is_empty() {
        Ok(channels)
    } else {
        Err(errors)
    }
}

/// Checks one node's own `xen,evtchn` (not yet its peer's).
fn read_end(
    fdt: &Fdt<'_>,
    n: NodeId,
    owner: &dyn Fn(NodeId) -> Option<DomId>,
    is_channel: &dyn Fn(NodeId) -> bool,
) -> Result<NodeEnd, DtError> {
    let path = fdt.path(n);
    let dom = owner(n).ok_or_else(|| {
        DtError::node(
            &path,
            "is a xen,evtchn-v1 node outside any xen,domain node; Oxen runs no dom0, so \
             a static event channel must be a child of the xen,domain node of the domain \
             that owns the port",
        )
    })?;
    let prop = fdt
        .prop(n, PROPERTY)
        .ok_or_else(|| DtError::prop(&path, PROPERTY, format!("is missing ({EXPECTED})")))?;
    let display = prop.display();
    let err = |msg: String| DtError::prop(&path, PROPERTY, format!("= {display} {msg}"));
    let (Some(port), Some(target), 8) = (prop.cell(0), prop.cell(1), prop.value.len()) else {
        return Err(err(format!("is not two cells ({EXPECTED})")));
    };
    if port == 0 {
        return Err(err(String::from(
            "names port 0, which every domain reserves (expected a port from 1 up to the \
             domain's highest, 1023 by default)",
        )));
    }
    let peer = fdt.by_phandle(target).ok_or_else(|| {
        err(format!(
            "refers to phandle {target:#x}, which no node has ({EXPECTED})"
        ))
    })?;
    if peer == n {
        return Err(err(format!("refers to this node itself ({EXPECTED})")));
    }
    let peer_path = fdt.path(peer);
    if !is_channel(peer) {
        return Err(err(format!(
            "refers to {peer_path}, which is not a xen,evtchn-v1 node ({EXPECTED})"
        )));
    }
    if owner(peer).is_none() {
        return Err(err(format!(
            "refers to {peer_path}, which is not inside a xen,domain node (expected a \
             xen,evtchn-v1 node that is a child of a xen,domain node)"
        )));
    }
    Ok(NodeEnd {
        dom,
        port,
        peer,
        display,
    })
}

/// How a static end's port can be bound.
#[derive(Clone, Copy, PartialEq, Eq)]
enum EndState {
    Free,
    /// Still unbound towards the other end's domain: left so when that
    /// domain was destroyed, to be reconnected now that it is rebuilt.
    Waiting,
}

impl<P: SharedPage> EventChannels<P> {
    /// Binds static channels before the domains run, as Xen does: `local`'s
    /// port is allocated unbound, then `remote`'s is bound to it, which
    /// leaves `remote`'s port pending (with vCPU 0's selector bit and
    /// upcall flag set, and [`Env::upcall`] called, since every port starts
    /// unmasked). Each pair of domains is then connected for
    /// [`crate::Policy::Silo`].
    ///
    /// After a domain is rebuilt, binding the channels that involve it again
    /// reconnects them: a port its peer still holds unbound towards it is
    /// reused, and the rebuilt domain's port is the one left pending.
    ///
    /// Every channel is checked before any is bound; errors name the node:
    /// a port above the domain's highest port (`-ENOSPC` in Xen), a port in
    /// use (`-EBUSY`; for instance the xenstore port), a port named twice, a
    /// domain that does not exist.
    pub fn bind_static<E: Env<Page = P>>(
        &mut self,
        env: &E,
        channels: &[StaticChannel],
    ) -> Result<(), Vec<DtError>> {
        let mut errors = Vec::new();
        let mut plans = Vec::new();
        let mut seen: Vec<(DomId, Port, &str)> = Vec::new();
        for ch in channels {
            let mut ok = true;
            for (end, other) in [(&ch.local, &ch.remote), (&ch.remote, &ch.local)] {
                if let Some(&(_, _, first)) = seen
                    .iter()
                    .find(|&&(d, p, _)| (d, p) == (end.dom, end.port))
                {
                    errors.push(DtError::prop(
                        &end.path,
                        PROPERTY,
                        format!(
                            "names port {} of domain {}, which {first} names too (a port \
                             belongs to one channel)",
                            end.port, end.dom
                        ),
                    ));
                    ok = false;
                }
                seen.push((end.dom, end.port, &end.path));
                if let Err(e) = self.static_end_state(end, other.dom) {
                    errors.push(e);
                    ok = false;
                }
            }
            if ok {
                plans.push(ch);
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        for ch in plans {
            let (l, r) = (&ch.local, &ch.remote);
            let local_state = self.static_end_state(l, r.dom).ok();
            let remote_state = self.static_end_state(r, l.dom).ok();
            if remote_state == Some(EndState::Waiting) && local_state == Some(EndState::Free) {
                self.connect(env, (l.dom, l.port), (r.dom, r.port));
            } else {
                if let Some(d) = self.domains.get_mut(&l.dom) {
                    d.bind(l.port, State::Unbound { remote: r.dom }, 0);
                }
                self.connect(env, (r.dom, r.port), (l.dom, l.port));
            }
            self.allow(l.dom, r.dom);
        }
        Ok(())
    }

    fn static_end_state(&self, end: &StaticEnd, other: DomId) -> Result<EndState, DtError> {
        let err = |msg: String| DtError::prop(&end.path, PROPERTY, msg);
        let Some(d) = self.domains.get(&end.dom) else {
            return Err(DtError::node(
                &end.path,
                format!("belongs to domain {}, which has no event channels", end.dom),
            ));
        };
        let limit = d.limit();
        if end.port > limit {
            return Err(err(format!(
                "names port {}, but domain {} has ports 1 to {limit} (expected a port in \
                 that range)",
                end.port, end.dom
            )));
        }
        if d.check_port(end.port).is_ok() {
            return Ok(EndState::Free);
        }
        let what = match d.channel(end.port).state {
            State::Unbound { remote } if remote == other => return Ok(EndState::Waiting),
            State::Hypervisor { callback, .. } => match oxen_core::ports::listener(callback) {
                Some(l) => format!("Oxen's {} uses", l.name),
                None => String::from("Oxen itself uses"),
            },
            State::Unbound { remote } => {
                format!("is already allocated, unbound to domain {remote}")
            }
            State::Interdomain { remote, port } => {
                format!("is already connected to port {port} of domain {remote}")
            }
            State::Virq(_) | State::Ipi | State::Reserved | State::Free => {
                String::from("is already in use")
            }
        };
        Err(err(format!(
            "names port {} of domain {}, which {what} (expected a free port)",
            end.port, end.dom
        )))
    }
}

#[cfg(test)]
mod tests {
    use std::string::ToString;

    use oxen_core::xen::DOMID_SELF;

    use super::*;
    use crate::abi::shared;
    use crate::fake::Sys;
    use crate::{Policy, Status};

    use oxen_core::test_dtc::Blob;

    /// Compiles a host tree with `domU1` (ID 1) and `domU2` (ID 2) under
    /// `/chosen`, holding `d1` and `d2`, and `chosen` besides them.
    fn dtb(d1: &str, d2: &str, chosen: &str) -> Blob {
        let dts = format!(
            "/dts-v1/;\n/ {{\n #address-cells = <2>;\n #size-cells = <2>;\n chosen {{\n  \
             domU1 {{ compatible = \"xen,domain\"; {d1} }};\n  \
             domU2 {{ compatible = \"xen,domain\"; {d2} }};\n  {chosen}\n }};\n}};\n"
        );
        oxen_core::test_dtc::dtb(&dts)
    }

    fn read_blob(blob: &Blob) -> Result<Vec<StaticChannel>, Vec<std::string::String>> {
        let fdt = Fdt::parse(blob.bytes()).unwrap();
        let domains = [
            (fdt.find("/chosen/domU1").unwrap(), 1),
            (fdt.find("/chosen/domU2").unwrap(), 2),
        ];
        read_static_channels(&fdt, &domains)
            .map_err(|e| e.iter().map(ToString::to_string).collect())
    }

    fn read(d1: &str, d2: &str, chosen: &str) -> Result<Vec<StaticChannel>, Vec<String>> {
        read_blob(&dtb(d1, d2, chosen))
    }

    /// Phandles are given explicitly so that messages are predictable:
    /// `ecN` has 0x10N.
    fn ch(n: &str, port: u32, peer: &str) -> String {
        let phandle = 0x100 + NAMES.iter().position(|x| *x == n).unwrap();
        format!(
            "{n}: {n} {{ compatible = \"xen,evtchn-v1\"; xen,evtchn = <{port} &{peer}>; \
             phandle = <{phandle:#x}>; }};"
        )
    }

    const NAMES: [&str; 10] = [
        "ec0", "ec1", "ec2", "ec3", "ec4", "ec5", "ec6", "bad1", "bad2", "bad3",
    ];

    fn end(path: &str, dom: DomId, port: Port) -> StaticEnd {
        StaticEnd {
            path: path.to_string(),
            dom,
            port,
        }
    }

    fn status(s: &Sys, dom: DomId, port: Port) -> Status {
        s.ev.status(dom, DOMID_SELF, port).unwrap().status
    }

    fn bind(s: &mut Sys, channels: &[StaticChannel]) -> Result<(), Vec<String>> {
        s.ev.bind_static(&s.env, channels)
            .map_err(|e| e.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn a_pair_naming_each_other_reads_as_one_channel_in_tree_order() {
        let got = read(&ch("ec1", 10, "ec2"), &ch("ec2", 10, "ec1"), "").unwrap();
        assert_eq!(
            got,
            [StaticChannel {
                local: end("/chosen/domU1/ec1", 1, 10),
                remote: end("/chosen/domU2/ec2", 2, 10),
            }]
        );
    }

    #[test]
    fn h10_a_bound_pair_is_interdomain_in_both_domains() {
        let channels = read(&ch("ec1", 10, "ec2"), &ch("ec2", 10, "ec1"), "").unwrap();
        let mut s = Sys::new(Policy::Silo, false, &[(1, 1), (2, 1)]);
        bind(&mut s, &channels).unwrap();
        assert_eq!(
            status(&s, 1, 10),
            Status::Interdomain {
                remote: 2,
                port: 10
            }
        );
        assert_eq!(
            status(&s, 2, 10),
            Status::Interdomain {
                remote: 1,
                port: 10
            }
        );
    }

    #[test]
    fn e8_the_remote_side_starts_pending_with_its_upcall_raised() {
        let channels = read(&ch("ec1", 10, "ec2"), &ch("ec2", 12, "ec1"), "").unwrap();
        let mut s = Sys::new(Policy::Silo, false, &[(1, 1), (2, 1)]);
        bind(&mut s, &channels).unwrap();
        assert!(s.l2_pending(2, 12));
        assert_eq!(s.sel0(2), 1);
        assert_eq!(s.si(2).byte(shared::UPCALL_PENDING), 1);
        assert!(!s.l2_pending(1, 10));
        assert_eq!(s.env.take_upcalls(), [(2, 0)]);
    }

    #[test]
    fn the_booting_txt_example_leaves_xens_ports_pending() {
        let d1 = [ch("ec3", 0xb, "ec5"), ch("ec4", 0xc, "ec6")].concat();
        let d2 = [ch("ec5", 0xb, "ec3"), ch("ec6", 0xd, "ec4")].concat();
        let channels = read(&d1, &d2, "").unwrap();
        let mut s = Sys::new(Policy::Silo, false, &[(1, 1), (2, 1)]);
        bind(&mut s, &channels).unwrap();
        assert!(s.l2_pending(2, 11));
        assert!(s.l2_pending(2, 13));
        assert!(!s.l2_pending(1, 11));
        assert!(!s.l2_pending(1, 12));
        assert_eq!(
            status(&s, 1, 12),
            Status::Interdomain {
                remote: 2,
                port: 13
            }
        );
    }

    #[test]
    fn a_channel_may_join_two_ports_of_one_domain() {
        let d1 = [ch("ec1", 3, "ec2"), ch("ec2", 4, "ec1")].concat();
        let channels = read(&d1, "", "").unwrap();
        let mut s = Sys::new(Policy::Silo, false, &[(1, 1), (2, 1)]);
        bind(&mut s, &channels).unwrap();
        assert_eq!(status(&s, 1, 3), Status::Interdomain { remote: 1, port: 4 });
        assert!(s.l2_pending(1, 4));
    }

    #[test]
    fn h11_a_peer_naming_a_third_node_is_refused() {
        let d2 = [ch("ec2", 10, "ec3"), ch("ec3", 11, "ec2")].concat();
        let errors = read(&ch("ec1", 10, "ec2"), &d2, "").unwrap_err();
        assert_eq!(
            errors,
            [
                "/chosen/domU1/ec1: xen,evtchn = <0xa 0x102> refers to /chosen/domU2/ec2, whose \
              xen,evtchn = <0xa 0x103> does not refer back to this node (the two nodes of a \
              channel must name each other)"
            ]
        );
    }

    #[test]
    fn h12_a_phandle_no_node_has_is_refused() {
        let d1 = "ec1 { compatible = \"xen,evtchn-v1\"; xen,evtchn = <10 0x99>; };";
        let errors = read(d1, "", "").unwrap_err();
        assert_eq!(
            errors,
            [
                "/chosen/domU1/ec1: xen,evtchn = <0xa 0x99> refers to phandle 0x99, which no \
              node has (expected <local-port &peer>, the peer being the xen,evtchn-v1 node \
              at the other end)"
            ]
        );
    }

    #[test]
    fn h13_a_single_cell_is_refused() {
        let d1 = "ec1 { compatible = \"xen,evtchn-v1\"; xen,evtchn = <0xa>; };";
        let errors = read(d1, "", "").unwrap_err();
        assert_eq!(
            errors,
            [
                "/chosen/domU1/ec1: xen,evtchn = <0xa> is not two cells (expected <local-port \
              &peer>, the peer being the xen,evtchn-v1 node at the other end)"
            ]
        );
    }

    #[test]
    fn three_cells_are_refused_too() {
        let d1 = "ec1: ec1 { compatible = \"xen,evtchn-v1\"; xen,evtchn = <10 &ec2 0>; };";
        let errors = read(d1, &ch("ec2", 10, "ec1"), "").unwrap_err();
        assert!(
            errors[0]
                .starts_with("/chosen/domU1/ec1: xen,evtchn = <0xa 0x102 0x0> is not two cells"),
            "{errors:?}"
        );
    }

    #[test]
    fn h14_a_port_above_the_domains_limit_is_refused_when_binding() {
        let channels = read(&ch("ec1", 1024, "ec2"), &ch("ec2", 10, "ec1"), "").unwrap();
        let mut s = Sys::new(Policy::Silo, false, &[(1, 1), (2, 1)]);
        let errors = bind(&mut s, &channels).unwrap_err();
        assert_eq!(
            errors,
            [
                "/chosen/domU1/ec1: xen,evtchn names port 1024, but domain 1 has ports 1 to \
              1023 (expected a port in that range)"
            ]
        );
        assert_eq!(status(&s, 2, 10), Status::Closed, "nothing was bound");
    }

    #[test]
    fn h15_a_port_the_hypervisor_holds_is_refused_naming_who_holds_it() {
        // The listener a subsystem (xenstore) registers names the holder.
        #[linkme::distributed_slice(oxen_core::ports::PORT_LISTENERS)]
        static HOLDER: oxen_core::ports::PortListener = oxen_core::ports::PortListener {
            id: 7,
            name: "xenstore",
            event: |_, _| {},
        };
        let channels = read(&ch("ec1", 1, "ec2"), &ch("ec2", 1, "ec1"), "").unwrap();
        let mut s = Sys::new(Policy::Silo, false, &[(1, 1), (2, 1)]);
        s.ev.bind_hypervisor(1, 1, 7, 0).unwrap();
        s.ev.bind_hypervisor(2, 1, 8, 0).unwrap();
        let errors = bind(&mut s, &channels).unwrap_err();
        assert_eq!(
            errors,
            [
                "/chosen/domU1/ec1: xen,evtchn names port 1 of domain 1, which Oxen's xenstore \
                 uses (expected a free port)",
                "/chosen/domU2/ec2: xen,evtchn names port 1 of domain 2, which Oxen itself \
                 uses (expected a free port)",
            ]
        );
    }

    #[test]
    fn h16_a_node_compatible_with_plain_xen_evtchn_is_ignored() {
        let d1 = "ec1: ec1 { compatible = \"xen,evtchn\"; xen,evtchn = <10 &ec2>; };";
        let d2 = "ec2: ec2 { compatible = \"xen,evtchn\"; xen,evtchn = <10 &ec1>; };";
        assert_eq!(read(d1, d2, ""), Ok(vec![]));
    }

    #[test]
    fn h17_a_channel_directly_under_chosen_is_refused() {
        let errors = read(&ch("ec1", 10, "ec0"), "", &ch("ec0", 10, "ec1")).unwrap_err();
        assert_eq!(
            errors,
            [
                "/chosen/ec0: is a xen,evtchn-v1 node outside any xen,domain node; Oxen runs \
                 no dom0, so a static event channel must be a child of the xen,domain node \
                 of the domain that owns the port",
                "/chosen/domU1/ec1: xen,evtchn = <0xa 0x100> refers to /chosen/ec0, which is \
                 not inside a xen,domain node (expected a xen,evtchn-v1 node that is a child \
                 of a xen,domain node)",
            ]
        );
    }

    #[test]
    fn a_missing_property_is_refused() {
        let d1 = "ec1 { compatible = \"xen,evtchn-v1\"; };";
        let errors = read(d1, "", "").unwrap_err();
        assert_eq!(
            errors,
            [
                "/chosen/domU1/ec1: xen,evtchn is missing (expected <local-port &peer>, the \
              peer being the xen,evtchn-v1 node at the other end)"
            ]
        );
    }

    #[test]
    fn port_0_is_refused() {
        let errors = read(&ch("ec1", 0, "ec2"), &ch("ec2", 10, "ec1"), "").unwrap_err();
        assert_eq!(
            errors,
            [
                "/chosen/domU1/ec1: xen,evtchn = <0x0 0x102> names port 0, which every domain \
              reserves (expected a port from 1 up to the domain's highest, 1023 by default)"
            ]
        );
    }

    #[test]
    fn a_node_naming_itself_is_refused() {
        let errors = read(&ch("ec1", 10, "ec1"), "", "").unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].contains("refers to this node itself"),
            "{errors:?}"
        );
    }

    #[test]
    fn a_peer_that_is_not_a_channel_node_is_refused() {
        let d2 = "other: other { xen,evtchn = <10 &ec1>; };";
        let errors = read(&ch("ec1", 10, "other"), d2, "").unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].contains("refers to /chosen/domU2/other, which is not a xen,evtchn-v1 node"),
            "{errors:?}"
        );
    }

    #[test]
    fn a_port_used_by_two_channels_is_refused() {
        let d1 = [ch("ec1", 10, "ec2"), ch("ec3", 10, "ec4")].concat();
        let d2 = [ch("ec2", 10, "ec1"), ch("ec4", 11, "ec3")].concat();
        let errors = read(&d1, &d2, "").unwrap_err();
        assert_eq!(
            errors,
            [
                "/chosen/domU1/ec3: xen,evtchn = <0xa 0x104> uses port 10 of /chosen/domU1, \
              which /chosen/domU1/ec1 already uses (a port belongs to one channel)"
            ]
        );
    }

    #[test]
    fn every_error_in_the_tree_is_reported() {
        let d1 = [
            "bad1 { compatible = \"xen,evtchn-v1\"; };".to_string(),
            ch("bad2", 0, "ec2"),
            ch("ec1", 10, "ec2"),
        ]
        .concat();
        let d2 = [ch("ec2", 10, "ec1"), ch("bad3", 5, "bad3")].concat();
        let errors = read(&d1, &d2, "").unwrap_err();
        let nodes: Vec<&str> = errors
            .iter()
            .map(|e| e.split(':').next().unwrap())
            .collect();
        assert_eq!(
            nodes,
            [
                "/chosen/domU1/bad1",
                "/chosen/domU1/bad2",
                "/chosen/domU2/bad3"
            ]
        );
    }

    #[test]
    fn a_tree_without_chosen_has_no_channels() {
        let blob = {
            let mut bytes = dtb("", "", "").bytes().to_vec();
            // Rename /chosen so that it is not found: same length keeps the
            // blob valid.
            let at = bytes.windows(7).position(|w| w == b"chosen\0").unwrap();
            bytes[at..at + 6].copy_from_slice(b"chasen");
            Blob::new(&bytes)
        };
        let fdt = Fdt::parse(blob.bytes()).unwrap();
        assert_eq!(read_static_channels(&fdt, &[]), Ok(vec![]));
    }

    #[test]
    fn bind_static_checks_everything_before_binding_anything() {
        let d1 = [ch("ec1", 10, "ec2"), ch("ec3", 11, "ec4")].concat();
        let d2 = [ch("ec2", 10, "ec1"), ch("ec4", 1, "ec3")].concat();
        let channels = read(&d1, &d2, "").unwrap();
        let mut s = Sys::new(Policy::Silo, false, &[(1, 1), (2, 1)]);
        s.ev.bind_hypervisor(2, 1, 7, 0).unwrap();
        let errors = bind(&mut s, &channels).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("/chosen/domU2/ec4:"), "{errors:?}");
        assert_eq!(status(&s, 1, 10), Status::Closed);
        assert_eq!(
            s.ev.alloc_unbound(1, DOMID_SELF, 2),
            Err(oxen_core::xen::errno::EPERM)
        );
    }

    #[test]
    fn bind_static_names_a_port_given_twice_and_a_missing_domain() {
        let twice = StaticChannel {
            local: end("/a", 1, 5),
            remote: end("/b", 1, 5),
        };
        let ghost = StaticChannel {
            local: end("/c", 1, 6),
            remote: end("/d", 9, 6),
        };
        let mut s = Sys::new(Policy::Silo, false, &[(1, 1)]);
        let errors = bind(&mut s, &[twice, ghost]).unwrap_err();
        assert_eq!(
            errors,
            [
                "/b: xen,evtchn names port 5 of domain 1, which /a names too (a port belongs \
                 to one channel)",
                "/d: belongs to domain 9, which has no event channels",
            ]
        );
    }

    #[test]
    fn static_channels_connect_their_domains_under_silo() {
        let channels = read(&ch("ec1", 10, "ec2"), &ch("ec2", 10, "ec1"), "").unwrap();
        let mut s = Sys::new(Policy::Silo, false, &[(1, 1), (2, 1)]);
        assert!(!s.ev.connected(1, 2));
        bind(&mut s, &channels).unwrap();
        assert!(s.ev.connected(2, 1));
        let p = s.ev.alloc_unbound(2, DOMID_SELF, 1).unwrap();
        assert_eq!(s.ev.bind_interdomain(&s.env, 1, 2, p), Ok(1));
    }

    #[test]
    fn a_rebuilt_domain_is_reconnected_and_its_port_left_pending() {
        let channels = read(&ch("ec1", 10, "ec2"), &ch("ec2", 12, "ec1"), "").unwrap();
        let mut s = Sys::new(Policy::Silo, false, &[(1, 1), (2, 1)]);
        bind(&mut s, &channels).unwrap();
        s.ev.domain_destroyed(1);
        assert_eq!(status(&s, 2, 12), Status::Unbound { remote: 1 });
        let fresh = crate::fake::FakePage::new();
        s.ev.domain_created(1, 1, 1023, fresh.clone()).unwrap();
        s.shared.insert(1, fresh);
        s.env.take_upcalls();
        bind(&mut s, &channels).unwrap();
        assert_eq!(
            status(&s, 1, 10),
            Status::Interdomain {
                remote: 2,
                port: 12
            }
        );
        assert_eq!(
            status(&s, 2, 12),
            Status::Interdomain {
                remote: 1,
                port: 10
            }
        );
        assert!(s.l2_pending(1, 10));
        assert_eq!(s.env.take_upcalls(), [(1, 0)]);
    }

    #[test]
    fn binding_the_same_channels_twice_is_refused() {
        let channels = read(&ch("ec1", 10, "ec2"), &ch("ec2", 12, "ec1"), "").unwrap();
        let mut s = Sys::new(Policy::Silo, false, &[(1, 1), (2, 1)]);
        bind(&mut s, &channels).unwrap();
        let errors = bind(&mut s, &channels).unwrap_err();
        assert_eq!(
            errors[0],
            "/chosen/domU1/ec1: xen,evtchn names port 10 of domain 1, which is already \
             connected to port 12 of domain 2 (expected a free port)"
        );
    }
}
