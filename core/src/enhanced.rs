//! What a domain's `xen,enhanced` value asks for, whether this image can
//! give it, and the `/hypervisor` node its subsystems compose.
//!
//! Core only knows Xen's guest ABI: a domain with a `/hypervisor` node is
//! promised grant tables (`reg[0]`) and event channels (`interrupts`), and
//! `"enabled"` adds xenstore. Which interface each linked subsystem opens
//! for a value is the subsystem's own decision ([`Subsystem::grants`]).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::config::Enhanced;
use crate::guest_dt::HypervisorNode;
use crate::hostdt::DtError;
use crate::subsystem::{DomainSetup, HypervisorParts, Interface, Registry};

/// Whether the domain's device tree gets a `/hypervisor` node.
pub fn has_hypervisor_node(mode: Enhanced) -> bool {
    matches!(mode, Enhanced::NoXenstore | Enhanced::Enabled)
}

/// The interfaces a value promises the guest, or why Oxen refuses it.
pub fn required(mode: Enhanced) -> Result<&'static [Interface], &'static str> {
    match mode {
        Enhanced::Absent | Enhanced::Disabled => Ok(&[]),
        Enhanced::NoXenstore => Ok(&[Interface::GrantTable, Interface::EventChannel]),
        Enhanced::Enabled => Ok(&[
            Interface::GrantTable,
            Interface::EventChannel,
            Interface::Xenstore,
        ]),
        Enhanced::Legacy => Err(
            "leaves xenstore to be set up later by a dom0 toolstack (init-dom0less), which a \
             dom0less Oxen system does not have; use \"enabled\" (xenstore served by Oxen) or \
             \"no-xenstore\"",
        ),
    }
}

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The interfaces a domain gets, checked against what is linked.
pub fn grant(path: &str, mode: Enhanced, registry: &Registry) -> Result<Vec<Interface>, DtError> {
    let value = match mode {
        Enhanced::Absent => String::from("(absent)"),
        other => format!("\"{}\"", other.name()),
    };
    let needed = required(mode)
        .map_err(|why| DtError::prop(path, "xen,enhanced", format!("= {value} {why}")))?;
    let offered = |i: Interface| {
        registry
            .iter()
            .any(|s| s.provides() == Some(i) && s.grants(mode))
    };
    let missing: Vec<Interface> = needed.iter().copied().filter(|i| !offered(*i)).collect();
    if !missing.is_empty() {
        let what: Vec<&str> = missing.iter().map(|i| i.describe()).collect();
        let features: Vec<&str> = missing.iter().map(|i| i.cargo_feature()).collect();
        return Err(DtError::prop(
            path,
            "xen,enhanced",
            format!(
                "= {value} needs {}, which this image does not have (build Oxen with the cargo feature{} {})",
                what.join(" and "),
                if features.len() > 1 { "s" } else { "" },
                quoted_list(&features)
            ),
        ));
    }
    let mut granted: Vec<Interface> = registry
        .iter()
        .filter(|s| s.grants(mode))
        .filter_map(|s| s.provides())
        .collect();
    crate::small_sort::sort(&mut granted);
    granted.dedup();
    Ok(granted)
}

/// The `/hypervisor` node of a domain, composed from the subsystems'
/// contributions in declared order; `None` when the domain has no node.
pub fn hypervisor_node(registry: &Registry, dom: &DomainSetup<'_>) -> Option<HypervisorNode> {
    if !has_hypervisor_node(dom.enhanced) {
        return None;
    }
    let mut parts = HypervisorParts::default();
    for s in registry.iter() {
        s.hypervisor_node(dom, &mut parts);
    }
    Some(HypervisorNode {
        version: crate::XEN_VERSION,
        reg: parts.reg,
        interrupt_ppi: parts.interrupt_ppi,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memmap::Range;
    use crate::subsystem::Subsystem;

    struct Fake {
        name: &'static str,
        order: u32,
        provides: Interface,
        modes: &'static [Enhanced],
        reg: Option<Range>,
        ppi: Option<u32>,
    }

    impl Subsystem for Fake {
        fn name(&self) -> &'static str {
            self.name
        }
        fn order(&self) -> u32 {
            self.order
        }
        fn provides(&self) -> Option<Interface> {
            Some(self.provides)
        }
        fn grants(&self, mode: Enhanced) -> bool {
            self.modes.contains(&mode)
        }
        fn hypervisor_node(&self, _dom: &DomainSetup<'_>, node: &mut HypervisorParts) {
            node.reg.extend(self.reg);
            if self.ppi.is_some() {
                node.interrupt_ppi = self.ppi;
            }
        }
    }

    const NODE_MODES: &[Enhanced] = &[Enhanced::NoXenstore, Enhanced::Enabled];
    static GNTTAB: Fake = Fake {
        name: "gnttab",
        order: 10,
        provides: Interface::GrantTable,
        modes: NODE_MODES,
        reg: Some(Range {
            start: 0x3800_0000,
            end: 0x3900_0000,
        }),
        ppi: None,
    };
    static EVTCHN: Fake = Fake {
        name: "evtchn",
        order: 20,
        provides: Interface::EventChannel,
        modes: NODE_MODES,
        reg: None,
        ppi: Some(31),
    };
    static EXT: Fake = Fake {
        name: "extended-regions",
        order: 30,
        provides: Interface::ExtendedRegions,
        modes: NODE_MODES,
        reg: Some(Range {
            start: 0x4800_0000,
            end: 0x1_0000_0000,
        }),
        ppi: None,
    };

    fn reg(list: &[&'static dyn Subsystem]) -> Registry {
        Registry::from_slice(list).unwrap()
    }

    fn err(mode: Enhanced, list: &[&'static dyn Subsystem]) -> String {
        grant("/chosen/domU1", mode, &reg(list))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn absent_and_disabled_grant_nothing_and_need_nothing() {
        for mode in [Enhanced::Absent, Enhanced::Disabled] {
            assert_eq!(grant("/d", mode, &reg(&[&GNTTAB, &EVTCHN])), Ok(vec![]));
            assert_eq!(grant("/d", mode, &reg(&[])), Ok(vec![]));
            assert!(!has_hypervisor_node(mode));
        }
    }

    #[test]
    fn no_xenstore_grants_grant_tables_and_event_channels() {
        let g = grant("/d", Enhanced::NoXenstore, &reg(&[&EVTCHN, &GNTTAB, &EXT])).unwrap();
        assert_eq!(
            g,
            [
                Interface::GrantTable,
                Interface::EventChannel,
                Interface::ExtendedRegions
            ]
        );
    }

    #[test]
    fn no_xenstore_without_evtchn_names_the_missing_feature() {
        assert_eq!(
            err(Enhanced::NoXenstore, &[&GNTTAB]),
            "/chosen/domU1: xen,enhanced = \"no-xenstore\" needs event channels, which this \
             image does not have (build Oxen with the cargo feature \"evtchn\")"
        );
    }

    #[test]
    fn enabled_without_xenstore_names_the_domain_value_and_feature() {
        assert_eq!(
            err(Enhanced::Enabled, &[&GNTTAB, &EVTCHN]),
            "/chosen/domU1: xen,enhanced = \"enabled\" needs xenstore, which this image does \
             not have (build Oxen with the cargo feature \"xenstore\")"
        );
    }

    #[test]
    fn several_missing_interfaces_are_listed_together() {
        assert_eq!(
            err(Enhanced::NoXenstore, &[]),
            "/chosen/domU1: xen,enhanced = \"no-xenstore\" needs grant tables and event \
             channels, which this image does not have (build Oxen with the cargo features \
             \"gnttab\", \"evtchn\")"
        );
    }

    #[test]
    fn legacy_is_refused_with_the_reason() {
        let e = err(Enhanced::Legacy, &[&GNTTAB, &EVTCHN]);
        assert!(
            e.starts_with("/chosen/domU1: xen,enhanced = \"legacy\" leaves xenstore"),
            "{e}"
        );
    }

    #[test]
    fn node_reg_follows_declared_order_not_slice_order() {
        let r = reg(&[&EXT, &EVTCHN, &GNTTAB]);
        let granted = [Interface::GrantTable, Interface::EventChannel];
        let dom = DomainSetup {
            domid: 1,
            path: "/chosen/domU1",
            enhanced: Enhanced::NoXenstore,
            vcpus: 1,
            ram: &[],
            ram_split: [0, 0],
            ipa_bits: 40,
            granted: &granted,
            max_grant_frames: 64,
            max_maptrack_frames: 1024,
            max_evtchn_port: 1023,
        };
        let node = hypervisor_node(&r, &dom).unwrap();
        assert_eq!(
            node.reg[0],
            Range {
                start: 0x3800_0000,
                end: 0x3900_0000
            }
        );
        assert_eq!(node.reg[1].start, 0x4800_0000);
        assert_eq!(node.interrupt_ppi, Some(31));
        assert_eq!(node.version, crate::XEN_VERSION);
        let absent = DomainSetup {
            enhanced: Enhanced::Absent,
            ..dom
        };
        assert_eq!(hypervisor_node(&r, &absent), None);
    }
}
