//! The crate registers the grant-table subsystem with core: first in
//! order, providing grant tables to domains with a `/hypervisor` node, and
//! contributing the grant window as `reg[0]` of that node.

use oxen_core::config::Enhanced;
use oxen_core::enhanced::{grant, hypervisor_node};
use oxen_core::guest_layout::GUEST_GNTTAB;
use oxen_core::memmap::Range;
use oxen_core::subsystem::{DomainSetup, Interface, Registry};

use oxen_gnttab as _;

fn setup(enhanced: Enhanced, granted: &[Interface]) -> DomainSetup<'_> {
    DomainSetup {
        domid: 1,
        path: "/chosen/domU1",
        enhanced,
        vcpus: 1,
        ram: &[],
        ram_split: [128 << 20, 0],
        ipa_bits: 40,
        granted,
        max_grant_frames: 64,
        max_maptrack_frames: 1024,
        max_evtchn_port: 1023,
    }
}

#[test]
fn linking_the_crate_registers_gnttab_with_core() {
    let registry = Registry::linked().expect("a consistent registry");
    assert_eq!(registry.names(), ["gnttab"]);
    let s = registry.iter().next().unwrap();
    assert_eq!((s.order(), s.provides()), (10, Some(Interface::GrantTable)));
    assert_eq!(registry.options().count(), 0);
}

#[test]
fn grant_tables_go_to_domains_with_a_hypervisor_node() {
    let registry = Registry::linked().unwrap();
    let s = registry.iter().next().unwrap();
    assert!(s.grants(Enhanced::NoXenstore));
    assert!(s.grants(Enhanced::Enabled));
    assert!(!s.grants(Enhanced::Absent));
    assert!(!s.grants(Enhanced::Disabled));
    assert_eq!(
        grant("/chosen/domU1", Enhanced::Absent, &registry),
        Ok(vec![])
    );
}

#[test]
fn the_grant_window_is_reg_0_of_the_hypervisor_node() {
    let registry = Registry::linked().unwrap();
    let node = hypervisor_node(
        &registry,
        &setup(Enhanced::NoXenstore, &[Interface::GrantTable]),
    )
    .unwrap();
    assert_eq!(node.reg, [GUEST_GNTTAB]);
    assert_eq!(
        GUEST_GNTTAB,
        Range {
            start: 0x3800_0000,
            end: 0x3900_0000
        }
    );
    let without = hypervisor_node(&registry, &setup(Enhanced::NoXenstore, &[])).unwrap();
    assert!(without.reg.is_empty());
}
