//! The subsystem registers itself across crates through core's slice, and
//! honours Xen's `ext_regions` option.

use oxen_core::bootargs::BootArgs;
use oxen_core::subsystem::{InitContext, Registry};

/// The `ext_regions` option is global state: tests that touch or depend on
/// it take turns.
static OPTION: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn linking_the_crate_registers_extended_regions_with_core() {
    let registry = Registry::linked().expect("a consistent registry");
    assert_eq!(registry.names(), ["extended-regions"]);
    assert_eq!(registry.options().collect::<Vec<_>>(), ["ext_regions"]);
}

#[test]
fn ext_regions_option_is_honoured_and_validated() {
    let _turn = OPTION.lock().unwrap();
    let registry = Registry::linked().unwrap();
    let init = |line: &str| {
        let args = BootArgs::parse(line);
        let failures = registry.init_all(&InitContext { bootargs: &args });
        (failures, oxen_extended_regions::enabled())
    };
    assert_eq!(init("ext_regions=no"), (vec![], false));
    assert_eq!(init(""), (vec![], true));
    let (failures, _) = init("ext_regions=sometimes");
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].0, "extended-regions");
    assert!(failures[0].1.message.contains("\"ext_regions=sometimes\""));
}

#[test]
fn contributes_its_regions_after_whatever_came_before() {
    use oxen_core::config::Enhanced;
    use oxen_core::memmap::Range;
    use oxen_core::subsystem::{DomainSetup, HypervisorParts, Interface};

    let _turn = OPTION.lock().unwrap();
    let registry = Registry::linked().unwrap();
    let granted = [Interface::ExtendedRegions];
    let dom = DomainSetup {
        domid: 1,
        path: "/chosen/domU1",
        enhanced: Enhanced::NoXenstore,
        vcpus: 1,
        ram: &[],
        ram_split: [512 << 20, 0],
        ipa_bits: 40,
        granted: &granted,
        max_grant_frames: 64,
        max_maptrack_frames: 1024,
        max_evtchn_port: 1023,
    };
    let grant = Range {
        start: 0x3800_0000,
        end: 0x3900_0000,
    };
    let mut parts = HypervisorParts {
        reg: vec![grant],
        interrupt_ppi: None,
    };
    for s in registry.iter() {
        assert!(s.grants(Enhanced::NoXenstore));
        assert!(!s.grants(Enhanced::Absent));
        s.hypervisor_node(&dom, &mut parts);
    }
    assert_eq!(
        parts.reg,
        [
            grant,
            Range {
                start: 0x6000_0000,
                end: 0x1_0000_0000
            },
            Range {
                start: 0x2_0000_0000,
                end: 0x100_0000_0000
            }
        ]
    );
}
