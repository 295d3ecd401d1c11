//! The subsystem registers itself across crates through core's slice, and
//! honours Xen's `ext_regions` option.

use oxen_core::bootargs::BootArgs;
use oxen_core::subsystem::{InitContext, Registry};

#[test]
fn linking_the_crate_registers_extended_regions_with_core() {
    let registry = Registry::linked().expect("a consistent registry");
    assert_eq!(registry.names(), ["extended-regions"]);
    assert_eq!(registry.options().collect::<Vec<_>>(), ["ext_regions"]);
}

#[test]
fn ext_regions_option_is_honoured_and_validated() {
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
