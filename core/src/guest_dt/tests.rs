use alloc::string::ToString;
use alloc::vec;
use std::path::PathBuf;
use std::process::Command;

use super::*;
use crate::guest_layout::{GUEST_EVTCHN_PPI, GUEST_GNTTAB, GUEST_RAM0, GUEST_RAM1, ram_split};
use crate::hostdt::testdt::Blob;
use crate::hostdt::{Fdt, NodeId};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The banks Xen fills for a domain with `bytes` of RAM.
fn ram(bytes: u64) -> Vec<Range> {
    let [b0, b1] = ram_split(bytes);
    let mut banks = vec![Range {
        start: GUEST_RAM0.start,
        end: GUEST_RAM0.start + b0,
    }];
    if b1 != 0 {
        banks.push(Range {
            start: GUEST_RAM1.start,
            end: GUEST_RAM1.start + b1,
        });
    }
    banks
}

/// The configuration of spec §2.7: 2 vCPUs, 512 MiB, vpl011, a ramdisk.
fn example_spec(memory: &[Range]) -> GuestDtSpec<'_> {
    GuestDtSpec {
        vcpus: 2,
        gic: GicVersion::V3,
        cpu_compatible: Some("arm,cortex-a57"),
        cpu_clock_frequency: None,
        memory,
        bootargs: Some("console=ttyAMA0"),
        initrd: Some(Range {
            start: 0x4820_0000,
            end: 0x48a1_c000,
        }),
        vpl011: true,
        timer_clock_frequency: None,
    }
}

/// The `/hypervisor` node of spec §2.7 (Xen 4.23, 512 MiB, 40-bit IPA).
fn example_hypervisor() -> HypervisorNode {
    HypervisorNode {
        version: (4, 23),
        reg: vec![
            GUEST_GNTTAB,
            Range {
                start: 0x6000_0000,
                end: 0x1_0000_0000,
            },
            Range {
                start: 0x2_0000_0000,
                end: 0x100_0000_0000,
            },
        ],
        interrupt_ppi: Some(GUEST_EVTCHN_PPI),
    }
}

fn build_blob(spec: &GuestDtSpec<'_>, hypervisor: Option<&HypervisorNode>) -> Blob {
    Blob::new(&build(spec, hypervisor).expect("the guest device tree builds"))
}

fn parse(blob: &Blob) -> Fdt<'_> {
    Fdt::parse(blob.bytes()).expect("the generated blob parses")
}

fn node(fdt: &Fdt<'_>, path: &str) -> NodeId {
    fdt.ids()
        .find(|&id| fdt.path(id) == path)
        .unwrap_or_else(|| panic!("no node {path}"))
}

fn has_node(fdt: &Fdt<'_>, path: &str) -> bool {
    fdt.ids().any(|id| fdt.path(id) == path)
}

fn cells(fdt: &Fdt<'_>, path: &str, prop: &str) -> Vec<u32> {
    let p = fdt
        .prop(node(fdt, path), prop)
        .unwrap_or_else(|| panic!("{path} has no {prop}"));
    assert_eq!(p.value.len() % 4, 0, "{path}/{prop} is not whole cells");
    (0..p.cells()).map(|i| p.cell(i).unwrap()).collect()
}

fn strings<'dt>(fdt: &Fdt<'dt>, path: &str, prop: &str) -> Vec<&'dt str> {
    let p = fdt
        .prop(node(fdt, path), prop)
        .unwrap_or_else(|| panic!("{path} has no {prop}"));
    assert_eq!(
        p.value.last(),
        Some(&0),
        "{path}/{prop} is not NUL-terminated"
    );
    p.strings().collect()
}

fn prop_names<'dt>(fdt: &Fdt<'dt>, path: &str) -> Vec<&'dt str> {
    fdt.node(node(fdt, path))
        .props
        .iter()
        .map(|p| p.name)
        .collect()
}

fn child_names<'dt>(fdt: &Fdt<'dt>, path: &str) -> Vec<&'dt str> {
    fdt.children(node(fdt, path))
        .map(|c| fdt.node(c).name)
        .collect()
}

fn has_prop(fdt: &Fdt<'_>, path: &str, prop: &str) -> bool {
    fdt.has_prop(node(fdt, path), prop)
}

// ---- the whole tree -------------------------------------------------------

/// An expected property value, written as the spec's dts writes it.
enum V {
    Cells(&'static [u32]),
    Strs(&'static [&'static str]),
    Empty,
}

/// Spec §2.7, node by node and property by property, in emission order.
const SPEC_2_7: &[(&str, &[(&str, V)])] = &[
    (
        "/",
        &[
            ("#address-cells", V::Cells(&[2])),
            ("#size-cells", V::Cells(&[2])),
        ],
    ),
    (
        "/chosen",
        &[
            ("bootargs", V::Strs(&["console=ttyAMA0"])),
            ("linux,initrd-start", V::Cells(&[0x0, 0x4820_0000])),
            ("linux,initrd-end", V::Cells(&[0x0, 0x48a1_c000])),
        ],
    ),
    (
        "/cpus",
        &[
            ("#address-cells", V::Cells(&[1])),
            ("#size-cells", V::Cells(&[0])),
        ],
    ),
    (
        "/cpus/cpu@0",
        &[
            ("compatible", V::Strs(&["arm,cortex-a57"])),
            ("device_type", V::Strs(&["cpu"])),
            ("reg", V::Cells(&[0x0])),
            ("enable-method", V::Strs(&["psci"])),
        ],
    ),
    (
        "/cpus/cpu@1",
        &[
            ("compatible", V::Strs(&["arm,cortex-a57"])),
            ("device_type", V::Strs(&["cpu"])),
            ("reg", V::Cells(&[0x1])),
            ("enable-method", V::Strs(&["psci"])),
        ],
    ),
    (
        "/memory@40000000",
        &[
            ("device_type", V::Strs(&["memory"])),
            ("reg", V::Cells(&[0x0, 0x4000_0000, 0x0, 0x2000_0000])),
        ],
    ),
    (
        "/interrupt-controller@3001000",
        &[
            ("#address-cells", V::Cells(&[0])),
            ("#interrupt-cells", V::Cells(&[3])),
            ("interrupt-controller", V::Empty),
            ("compatible", V::Strs(&["arm,gic-v3"])),
            ("#redistributor-regions", V::Cells(&[1])),
            (
                "reg",
                V::Cells(&[
                    0x0, 0x300_1000, 0x0, 0x1_0000, 0x0, 0x302_0000, 0x0, 0x100_0000,
                ]),
            ),
            ("linux,phandle", V::Cells(&[0xfde8])),
            ("phandle", V::Cells(&[0xfde8])),
        ],
    ),
    (
        "/timer",
        &[
            ("compatible", V::Strs(&["arm,armv8-timer"])),
            (
                "interrupts",
                V::Cells(&[0x1, 0xd, 0xf08, 0x1, 0xe, 0xf08, 0x1, 0xb, 0xf08]),
            ),
            ("interrupt-parent", V::Cells(&[0xfde8])),
        ],
    ),
    (
        "/hypervisor",
        &[
            ("compatible", V::Strs(&["xen,xen-4.23", "xen,xen"])),
            (
                "reg",
                V::Cells(&[
                    0x0,
                    0x3800_0000,
                    0x0,
                    0x100_0000,
                    0x0,
                    0x6000_0000,
                    0x0,
                    0xa000_0000,
                    0x2,
                    0x0,
                    0xfe,
                    0x0,
                ]),
            ),
            ("interrupts", V::Cells(&[0x1, 0xf, 0xf08])),
            ("interrupt-parent", V::Cells(&[0xfde8])),
        ],
    ),
    (
        "/psci",
        &[
            (
                "compatible",
                V::Strs(&["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]),
            ),
            ("method", V::Strs(&["hvc"])),
            ("cpu_off", V::Cells(&[0x1])),
            ("cpu_on", V::Cells(&[0x2])),
        ],
    ),
    (
        "/sbsa-uart@22000000",
        &[
            ("compatible", V::Strs(&["arm,sbsa-uart"])),
            ("reg", V::Cells(&[0x0, 0x2200_0000, 0x0, 0x1000])),
            ("interrupts", V::Cells(&[0x0, 0x0, 0xf04])),
            ("interrupt-parent", V::Cells(&[0xfde8])),
            ("current-speed", V::Cells(&[0x1c200])),
        ],
    ),
];

#[test]
fn example_config_matches_spec_2_7_node_by_node_and_property_by_property() {
    let memory = ram(512 * MIB);
    let spec = example_spec(&memory);
    let hypervisor = example_hypervisor();

    let blob = build_blob(&spec, Some(&hypervisor));
    let fdt = parse(&blob);

    let paths: Vec<String> = fdt.ids().map(|id| fdt.path(id)).collect();
    let expected_paths: Vec<&str> = SPEC_2_7.iter().map(|(p, _)| *p).collect();
    assert_eq!(paths, expected_paths);
    for (path, props) in SPEC_2_7 {
        let expected_names: Vec<&str> = props.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            prop_names(&fdt, path),
            expected_names,
            "properties of {path}"
        );
        for (name, value) in *props {
            match value {
                V::Cells(c) => assert_eq!(cells(&fdt, path, name), *c, "{path} {name}"),
                V::Strs(s) => assert_eq!(strings(&fdt, path, name), *s, "{path} {name}"),
                V::Empty => assert!(
                    fdt.prop(node(&fdt, path), name).unwrap().value.is_empty(),
                    "{path} {name} is not empty"
                ),
            }
        }
    }
}

/// Spec §2.7's dts text, as given there.
const SPEC_2_7_DTS: &str = r#"/dts-v1/;
/ {
    #address-cells = <0x2>;
    #size-cells = <0x2>;
    chosen {
        bootargs = "console=ttyAMA0";
        linux,initrd-start = <0x0 0x48200000>;
        linux,initrd-end = <0x0 0x48a1c000>;            /* example */
    };
    cpus {
        #address-cells = <0x1>;
        #size-cells = <0x0>;
        cpu@0 { compatible = "arm,cortex-a57"; device_type = "cpu"; reg = <0x0>; enable-method = "psci"; };
        cpu@1 { compatible = "arm,cortex-a57"; device_type = "cpu"; reg = <0x1>; enable-method = "psci"; };
    };
    memory@40000000 { device_type = "memory"; reg = <0x0 0x40000000 0x0 0x20000000>; };
    interrupt-controller@3001000 {
        #address-cells = <0x0>;
        #interrupt-cells = <0x3>;
        interrupt-controller;
        compatible = "arm,gic-v3";
        #redistributor-regions = <0x1>;
        reg = <0x0 0x3001000 0x0 0x10000 0x0 0x3020000 0x0 0x1000000>;
        linux,phandle = <0xfde8>;
        phandle = <0xfde8>;
    };
    timer {
        compatible = "arm,armv8-timer";
        interrupts = <0x1 0xd 0xf08 0x1 0xe 0xf08 0x1 0xb 0xf08>;
        interrupt-parent = <0xfde8>;
    };
    hypervisor {
        compatible = "xen,xen-4.23", "xen,xen";
        reg = <0x0 0x38000000 0x0 0x1000000 0x0 0x60000000 0x0 0xa0000000 0x2 0x0 0xfe 0x0>;
        interrupts = <0x1 0xf 0xf08>;
        interrupt-parent = <0xfde8>;
    };
    psci {
        compatible = "arm,psci-1.0", "arm,psci-0.2", "arm,psci";
        method = "hvc";
        cpu_off = <0x1>;
        cpu_on = <0x2>;
    };
    sbsa-uart@22000000 {
        compatible = "arm,sbsa-uart";
        reg = <0x0 0x22000000 0x0 0x1000>;
        interrupts = <0x0 0x0 0xf04>;
        interrupt-parent = <0xfde8>;
        current-speed = <0x1c200>;
    };
};
"#;

const DTC: &str = "/usr/bin/dtc";

/// Runs `dtc` with `args`, panicking with an install hint if it is missing.
fn dtc(args: &[&str]) -> String {
    assert!(
        std::path::Path::new(DTC).exists(),
        "{DTC} is missing: install the device tree compiler \
         (Debian/Ubuntu: `apt-get install device-tree-compiler`)"
    );
    let out = Command::new(DTC)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {DTC}: {e}"));
    assert!(
        out.status.success(),
        "dtc {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("dtc prints UTF-8")
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("oxen-guest-dt-{}-{name}", std::process::id()))
}

/// Asserts that `ours` and the dts text `dts` hold the same tree. `name`
/// keeps concurrent tests' scratch files apart.
fn assert_same_tree_as_dts(name: &str, ours: &[u8], dts: &str) {
    let (ours_dtb, spec_dts, spec_dtb) = (
        scratch(&format!("{name}-ours.dtb")),
        scratch(&format!("{name}-spec.dts")),
        scratch(&format!("{name}-spec.dtb")),
    );
    std::fs::write(&ours_dtb, ours).unwrap();
    std::fs::write(&spec_dts, dts).unwrap();

    // Both go through dtc's dtb reader so formatting cannot differ, only
    // content: nodes, their order, properties, their order and values.
    dtc(&[
        "-q",
        "-I",
        "dts",
        "-O",
        "dtb",
        "-o",
        spec_dtb.to_str().unwrap(),
        spec_dts.to_str().unwrap(),
    ]);
    let expected = dtc(&["-q", "-I", "dtb", "-O", "dts", spec_dtb.to_str().unwrap()]);
    let actual = dtc(&["-q", "-I", "dtb", "-O", "dts", ours_dtb.to_str().unwrap()]);
    for f in [&ours_dtb, &spec_dts, &spec_dtb] {
        let _ = std::fs::remove_file(f);
    }

    assert_eq!(actual, expected);
}

#[test]
fn example_config_decompiles_with_dtc_to_the_spec_2_7_dts() {
    let memory = ram(512 * MIB);

    let ours = build(&example_spec(&memory), Some(&example_hypervisor())).unwrap();

    assert_same_tree_as_dts("v3", &ours, SPEC_2_7_DTS);
}

/// Spec §2.4 row 6's GICv2 node, in dts.
const GICV2_NODE_DTS: &str = r#"    interrupt-controller@3001000 {
        #address-cells = <0x0>;
        #interrupt-cells = <0x3>;
        interrupt-controller;
        compatible = "arm,gic-400";
        reg = <0x0 0x3001000 0x0 0x1000 0x0 0x3002000 0x0 0x2000>;
        linux,phandle = <0xfde8>;
        phandle = <0xfde8>;
    };
"#;

#[test]
fn example_config_on_a_gicv2_host_decompiles_to_spec_2_7_with_the_gicv2_node() {
    let memory = ram(512 * MIB);
    let spec = GuestDtSpec {
        gic: GicVersion::V2,
        ..example_spec(&memory)
    };
    let v3_node = &SPEC_2_7_DTS[SPEC_2_7_DTS.find("    interrupt-controller@").unwrap()
        ..SPEC_2_7_DTS.find("    timer {").unwrap()];
    let dts = SPEC_2_7_DTS.replace(v3_node, GICV2_NODE_DTS);
    assert_ne!(dts, SPEC_2_7_DTS);

    let ours = build(&spec, Some(&example_hypervisor())).unwrap();

    assert_same_tree_as_dts("v2", &ours, &dts);
}

#[test]
fn header_has_no_memory_reservations_boot_cpu_0_and_exact_size() {
    let memory = ram(512 * MIB);
    let dtb = build(&example_spec(&memory), None).unwrap();

    let blob = Blob::new(&dtb);
    let fdt = parse(&blob);

    assert!(fdt.mem_reserve().is_empty());
    assert_eq!(fdt.boot_cpuid(), 0);
    assert_eq!(fdt.total_size(), dtb.len());
}

#[test]
fn nodes_are_emitted_in_xen_order() {
    let memory = ram(512 * MIB);
    let blob = build_blob(&example_spec(&memory), Some(&example_hypervisor()));

    let fdt = parse(&blob);

    assert_eq!(
        child_names(&fdt, "/"),
        [
            "chosen",
            "cpus",
            "memory@40000000",
            "interrupt-controller@3001000",
            "timer",
            "hypervisor",
            "psci",
            "sbsa-uart@22000000"
        ]
    );
}

#[test]
fn root_has_two_address_and_size_cells_and_no_interrupt_parent() {
    let memory = ram(128 * MIB);
    let blob = build_blob(&example_spec(&memory), None);

    let fdt = parse(&blob);

    assert_eq!(prop_names(&fdt, "/"), ["#address-cells", "#size-cells"]);
    assert_eq!(cells(&fdt, "/", "#address-cells"), [2]);
    assert_eq!(cells(&fdt, "/", "#size-cells"), [2]);
}

// ---- /chosen --------------------------------------------------------------

#[test]
fn chosen_initrd_properties_bracket_the_ramdisk_as_two_cell_values() {
    let memory = ram(4 * GIB);
    let spec = GuestDtSpec {
        initrd: Some(Range {
            start: 0x1_2345_6000,
            end: 0x1_2400_0000,
        }),
        ..example_spec(&memory)
    };

    let blob = build_blob(&spec, None);
    let fdt = parse(&blob);

    assert_eq!(
        cells(&fdt, "/chosen", "linux,initrd-start"),
        [0x1, 0x2345_6000]
    );
    assert_eq!(
        cells(&fdt, "/chosen", "linux,initrd-end"),
        [0x1, 0x2400_0000]
    );
}

#[test]
fn chosen_initrd_values_do_not_change_the_tree_size() {
    let memory = ram(512 * MIB);
    let low = GuestDtSpec {
        initrd: Some(Range { start: 1, end: 2 }),
        ..example_spec(&memory)
    };
    let high = GuestDtSpec {
        initrd: Some(Range {
            start: 0xff_0000_0000,
            end: 0xff_8000_0000,
        }),
        ..example_spec(&memory)
    };

    let (a, b) = (build(&low, None).unwrap(), build(&high, None).unwrap());

    assert_eq!(a.len(), b.len());
    assert_ne!(a, b);
}

#[test]
fn chosen_has_no_initrd_properties_without_a_ramdisk() {
    let memory = ram(512 * MIB);
    for initrd in [
        None,
        Some(Range {
            start: 0x4820_0000,
            end: 0x4820_0000,
        }),
    ] {
        let spec = GuestDtSpec {
            initrd,
            ..example_spec(&memory)
        };

        let blob = build_blob(&spec, None);
        let fdt = parse(&blob);

        assert_eq!(
            prop_names(&fdt, "/chosen"),
            ["bootargs"],
            "initrd {initrd:?}"
        );
    }
}

#[test]
fn chosen_has_no_bootargs_property_without_bootargs() {
    let memory = ram(512 * MIB);
    let spec = GuestDtSpec {
        bootargs: None,
        ..example_spec(&memory)
    };

    let blob = build_blob(&spec, None);
    let fdt = parse(&blob);

    assert!(!has_prop(&fdt, "/chosen", "bootargs"));
    assert!(has_prop(&fdt, "/chosen", "linux,initrd-start"));
}

#[test]
fn chosen_bootargs_are_copied_as_one_string() {
    let memory = ram(512 * MIB);
    let spec = GuestDtSpec {
        bootargs: Some("console=ttyAMA0 root=/dev/ram0 rdinit=/bin/sh"),
        ..example_spec(&memory)
    };

    let blob = build_blob(&spec, None);
    let fdt = parse(&blob);

    assert_eq!(
        fdt.prop_str(node(&fdt, "/chosen"), "bootargs"),
        Some("console=ttyAMA0 root=/dev/ram0 rdinit=/bin/sh")
    );
}

#[test]
fn chosen_never_has_stdout_path() {
    let memory = ram(512 * MIB);
    let blob = build_blob(&example_spec(&memory), Some(&example_hypervisor()));

    let fdt = parse(&blob);

    assert!(!has_prop(&fdt, "/chosen", "stdout-path"));
    assert!(!has_node(&fdt, "/aliases"));
}

// ---- /cpus ----------------------------------------------------------------

#[test]
fn cpus_get_one_node_per_vcpu_started_by_psci() {
    let memory = ram(512 * MIB);
    let spec = GuestDtSpec {
        vcpus: 4,
        ..example_spec(&memory)
    };

    let blob = build_blob(&spec, None);
    let fdt = parse(&blob);

    assert_eq!(cells(&fdt, "/cpus", "#address-cells"), [1]);
    assert_eq!(cells(&fdt, "/cpus", "#size-cells"), [0]);
    assert_eq!(
        child_names(&fdt, "/cpus"),
        ["cpu@0", "cpu@1", "cpu@2", "cpu@3"]
    );
    for i in 0..4u32 {
        let path = format!("/cpus/cpu@{i}");
        assert_eq!(cells(&fdt, &path, "reg"), [i]);
        assert_eq!(strings(&fdt, &path, "device_type"), ["cpu"]);
        assert_eq!(strings(&fdt, &path, "enable-method"), ["psci"]);
    }
}

#[test]
fn vcpu_16_is_cpu_at_100_with_reg_0x100() {
    let memory = ram(512 * MIB);
    let spec = GuestDtSpec {
        vcpus: 17,
        ..example_spec(&memory)
    };

    let blob = build_blob(&spec, None);
    let fdt = parse(&blob);

    let names = child_names(&fdt, "/cpus");
    assert_eq!(names.len(), 17);
    assert_eq!(names[15], "cpu@f");
    assert_eq!(names[16], "cpu@100");
    assert_eq!(cells(&fdt, "/cpus/cpu@f", "reg"), [0xf]);
    assert_eq!(cells(&fdt, "/cpus/cpu@100", "reg"), [0x100]);
}

#[test]
fn vcpu_affinity_puts_sixteen_vcpus_in_each_cluster() {
    assert_eq!(vcpu_affinity(0), 0x0);
    assert_eq!(vcpu_affinity(15), 0xf);
    assert_eq!(vcpu_affinity(16), 0x100);
    assert_eq!(vcpu_affinity(33), 0x201);
    assert_eq!(vcpu_affinity(127), 0x70f);
}

#[test]
fn cpu_compatible_list_is_copied_verbatim() {
    let memory = ram(512 * MIB);
    let spec = GuestDtSpec {
        cpu_compatible: Some("arm,cortex-a72\0arm,armv8"),
        ..example_spec(&memory)
    };

    let blob = build_blob(&spec, None);
    let fdt = parse(&blob);

    let p = fdt.prop(node(&fdt, "/cpus/cpu@1"), "compatible").unwrap();
    assert_eq!(p.value, b"arm,cortex-a72\0arm,armv8\0");
}

#[test]
fn cpu_clock_frequency_is_copied_between_reg_and_enable_method() {
    let memory = ram(512 * MIB);
    let spec = GuestDtSpec {
        cpu_clock_frequency: Some(1_800_000_000),
        ..example_spec(&memory)
    };

    let blob = build_blob(&spec, None);
    let fdt = parse(&blob);

    assert_eq!(
        prop_names(&fdt, "/cpus/cpu@0"),
        [
            "compatible",
            "device_type",
            "reg",
            "clock-frequency",
            "enable-method"
        ]
    );
    assert_eq!(
        cells(&fdt, "/cpus/cpu@0", "clock-frequency"),
        [1_800_000_000]
    );
}

#[test]
fn cpu_without_host_compatible_or_clock_has_neither_property() {
    let memory = ram(512 * MIB);
    let spec = GuestDtSpec {
        cpu_compatible: None,
        cpu_clock_frequency: None,
        ..example_spec(&memory)
    };

    let blob = build_blob(&spec, None);
    let fdt = parse(&blob);

    assert_eq!(
        prop_names(&fdt, "/cpus/cpu@0"),
        ["device_type", "reg", "enable-method"]
    );
}

// ---- /memory --------------------------------------------------------------

#[test]
fn memory_node_is_named_for_the_first_bank_without_leading_zeros() {
    let memory = [Range {
        start: 0x8_0000_0000,
        end: 0x8_1000_0000,
    }];
    let spec = example_spec(&memory);

    let blob = build_blob(&spec, None);
    let fdt = parse(&blob);

    assert_eq!(
        strings(&fdt, "/memory@800000000", "device_type"),
        ["memory"]
    );
    assert_eq!(
        cells(&fdt, "/memory@800000000", "reg"),
        [0x8, 0x0, 0x0, 0x1000_0000]
    );
}

#[test]
fn four_gib_domain_lists_both_banks_in_one_memory_node() {
    let memory = ram(4 * GIB);
    let spec = example_spec(&memory);

    let blob = build_blob(&spec, None);
    let fdt = parse(&blob);

    let memory_nodes = child_names(&fdt, "/")
        .into_iter()
        .filter(|n| n.starts_with("memory"))
        .count();
    assert_eq!(memory_nodes, 1);
    assert_eq!(
        cells(&fdt, "/memory@40000000", "reg"),
        [
            0x0,
            0x4000_0000,
            0x0,
            0xc000_0000,
            0x2,
            0x0,
            0x0,
            0x4000_0000
        ]
    );
}

// ---- GIC, timer, psci, vpl011 ---------------------------------------------

#[test]
fn gic_is_gicv3_at_xen_addresses_with_phandle_65000() {
    let memory = ram(512 * MIB);
    let blob = build_blob(&example_spec(&memory), None);

    let fdt = parse(&blob);

    let gic = "/interrupt-controller@3001000";
    assert_eq!(cells(&fdt, gic, "#address-cells"), [0]);
    assert_eq!(cells(&fdt, gic, "#interrupt-cells"), [3]);
    assert!(
        fdt.prop(node(&fdt, gic), "interrupt-controller")
            .unwrap()
            .value
            .is_empty()
    );
    assert_eq!(strings(&fdt, gic, "compatible"), ["arm,gic-v3"]);
    assert_eq!(cells(&fdt, gic, "#redistributor-regions"), [1]);
    assert_eq!(
        cells(&fdt, gic, "reg"),
        [
            0x0, 0x300_1000, 0x0, 0x1_0000, 0x0, 0x302_0000, 0x0, 0x100_0000
        ]
    );
    assert_eq!(cells(&fdt, gic, "linux,phandle"), [65000]);
    assert_eq!(cells(&fdt, gic, "phandle"), [65000]);
}

#[test]
fn gicv2_node_is_a_gic_400_with_distributor_and_cpu_interface_in_xen_order() {
    let memory = ram(512 * MIB);
    let spec = GuestDtSpec {
        gic: GicVersion::V2,
        ..example_spec(&memory)
    };

    let blob = build_blob(&spec, None);
    let fdt = parse(&blob);

    let gic = "/interrupt-controller@3001000";
    assert_eq!(
        prop_names(&fdt, gic),
        [
            "#address-cells",
            "#interrupt-cells",
            "interrupt-controller",
            "compatible",
            "reg",
            "linux,phandle",
            "phandle"
        ]
    );
    assert_eq!(cells(&fdt, gic, "#address-cells"), [0]);
    assert_eq!(cells(&fdt, gic, "#interrupt-cells"), [3]);
    assert_eq!(strings(&fdt, gic, "compatible"), ["arm,gic-400"]);
    assert_eq!(
        cells(&fdt, gic, "reg"),
        [0x0, 0x300_1000, 0x0, 0x1000, 0x0, 0x300_2000, 0x0, 0x2000]
    );
    assert_eq!(cells(&fdt, gic, "linux,phandle"), [65000]);
    assert_eq!(cells(&fdt, gic, "phandle"), [65000]);
}

#[test]
fn gicv2_domain_takes_at_most_8_vcpus() {
    let memory = ram(512 * MIB);
    let ok = GuestDtSpec {
        vcpus: 8,
        gic: GicVersion::V2,
        ..example_spec(&memory)
    };
    let too_many = GuestDtSpec { vcpus: 9, ..ok };

    assert!(build(&ok, None).is_ok());
    assert_eq!(
        error(&too_many, None),
        "/cpus: 9 vCPUs is out of range (expected 1 to 8)"
    );
}

#[test]
fn gic_redistributor_window_does_not_shrink_with_fewer_vcpus() {
    let memory = ram(512 * MIB);
    let spec = GuestDtSpec {
        vcpus: 1,
        ..example_spec(&memory)
    };

    let blob = build_blob(&spec, None);
    let fdt = parse(&blob);

    assert_eq!(
        cells(&fdt, "/interrupt-controller@3001000", "reg")[4..],
        [0x0, 0x302_0000, 0x0, 0x100_0000]
    );
}

#[test]
fn timer_interrupts_are_secure_nonsecure_and_virtual_ppis_level_low() {
    let memory = ram(512 * MIB);
    let blob = build_blob(&example_spec(&memory), None);

    let fdt = parse(&blob);

    assert_eq!(strings(&fdt, "/timer", "compatible"), ["arm,armv8-timer"]);
    assert_eq!(
        cells(&fdt, "/timer", "interrupts"),
        [1, 13, 0xf08, 1, 14, 0xf08, 1, 11, 0xf08]
    );
    assert_eq!(cells(&fdt, "/timer", "interrupt-parent"), [0xfde8]);
    assert!(!has_prop(&fdt, "/timer", "clock-frequency"));
}

#[test]
fn timer_clock_frequency_is_copied_last_when_the_host_has_one() {
    let memory = ram(512 * MIB);
    let spec = GuestDtSpec {
        timer_clock_frequency: Some(62_500_000),
        ..example_spec(&memory)
    };

    let blob = build_blob(&spec, None);
    let fdt = parse(&blob);

    assert_eq!(
        prop_names(&fdt, "/timer"),
        [
            "compatible",
            "interrupts",
            "interrupt-parent",
            "clock-frequency"
        ]
    );
    assert_eq!(cells(&fdt, "/timer", "clock-frequency"), [62_500_000]);
}

#[test]
fn psci_node_offers_xen_vpsci_over_hvc() {
    let memory = ram(512 * MIB);
    let blob = build_blob(&example_spec(&memory), None);

    let fdt = parse(&blob);

    assert_eq!(
        strings(&fdt, "/psci", "compatible"),
        ["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]
    );
    assert_eq!(strings(&fdt, "/psci", "method"), ["hvc"]);
    assert_eq!(cells(&fdt, "/psci", "cpu_off"), [1]);
    assert_eq!(cells(&fdt, "/psci", "cpu_on"), [2]);
}

#[test]
fn vpl011_is_an_sbsa_uart_on_spi_32_level_high() {
    let memory = ram(512 * MIB);
    let blob = build_blob(&example_spec(&memory), None);

    let fdt = parse(&blob);

    let uart = "/sbsa-uart@22000000";
    assert_eq!(strings(&fdt, uart, "compatible"), ["arm,sbsa-uart"]);
    assert_eq!(cells(&fdt, uart, "reg"), [0x0, 0x2200_0000, 0x0, 0x1000]);
    assert_eq!(cells(&fdt, uart, "interrupts"), [0, 0, 0xf04]);
    assert_eq!(cells(&fdt, uart, "interrupt-parent"), [0xfde8]);
    assert_eq!(cells(&fdt, uart, "current-speed"), [115_200]);
}

#[test]
fn no_uart_node_without_vpl011() {
    let memory = ram(512 * MIB);
    let spec = GuestDtSpec {
        vpl011: false,
        ..example_spec(&memory)
    };

    let blob = build_blob(&spec, None);
    let fdt = parse(&blob);

    assert!(!child_names(&fdt, "/").iter().any(|n| n.contains("uart")));
}

#[test]
fn gic_interrupt_encodes_ppis_and_spis_with_all_cpu_mask() {
    assert_eq!(gic_interrupt(31, IRQ_TYPE_LEVEL_LOW), [1, 15, 0xf08]);
    assert_eq!(gic_interrupt(16, IRQ_TYPE_LEVEL_HIGH), [1, 0, 0xf04]);
    assert_eq!(gic_interrupt(32, IRQ_TYPE_LEVEL_HIGH), [0, 0, 0xf04]);
    assert_eq!(gic_interrupt(75, IRQ_TYPE_LEVEL_LOW), [0, 43, 0xf08]);
}

// ---- /hypervisor ----------------------------------------------------------

#[test]
fn no_hypervisor_node_when_none() {
    let memory = ram(512 * MIB);
    let blob = build_blob(&example_spec(&memory), None);

    let fdt = parse(&blob);

    assert!(!has_node(&fdt, "/hypervisor"));
    assert!(has_node(&fdt, "/psci"));
}

#[test]
fn hypervisor_absence_changes_nothing_else() {
    let memory = ram(512 * MIB);
    let with = build_blob(&example_spec(&memory), Some(&example_hypervisor()));
    let without = build_blob(&example_spec(&memory), None);

    let (with, without) = (parse(&with), parse(&without));

    // One line per property: path, name and raw value.
    let listing = |fdt: &Fdt<'_>| -> Vec<String> {
        fdt.ids()
            .filter(|&id| fdt.path(id) != "/hypervisor")
            .flat_map(|id| {
                let path = fdt.path(id);
                fdt.node(id)
                    .props
                    .iter()
                    .map(move |p| format!("{path} {} {:?}", p.name, p.value))
            })
            .collect()
    };
    assert_eq!(listing(&with), listing(&without));
}

#[test]
fn enabled_and_no_xenstore_domains_get_byte_identical_trees() {
    // The builder never sees the xen,enhanced mode: both modes compose the
    // same /hypervisor node, and must get the same bytes (oracle D15).
    let memory = ram(512 * MIB);
    let enabled = example_hypervisor();
    let no_xenstore = example_hypervisor();

    let a = build(&example_spec(&memory), Some(&enabled)).unwrap();
    let b = build(&example_spec(&memory), Some(&no_xenstore)).unwrap();

    assert_eq!(a, b);
}

#[test]
fn hypervisor_compatible_is_versioned_then_generic_in_one_property() {
    let memory = ram(512 * MIB);
    let h = HypervisorNode {
        version: (4, 20),
        ..example_hypervisor()
    };

    let blob = build_blob(&example_spec(&memory), Some(&h));
    let fdt = parse(&blob);

    let p = fdt.prop(node(&fdt, "/hypervisor"), "compatible").unwrap();
    assert_eq!(p.value, b"xen,xen-4.20\0xen,xen\0");
}

#[test]
fn hypervisor_reg_lists_grant_window_then_extended_regions_in_root_cells() {
    let memory = ram(4 * GIB);
    let h = HypervisorNode {
        reg: vec![
            GUEST_GNTTAB,
            Range {
                start: 0x2_4000_0000,
                end: 0x100_0000_0000,
            },
        ],
        ..example_hypervisor()
    };

    let blob = build_blob(&example_spec(&memory), Some(&h));
    let fdt = parse(&blob);

    assert_eq!(
        cells(&fdt, "/hypervisor", "reg"),
        [
            0x0,
            0x3800_0000,
            0x0,
            0x100_0000,
            0x2,
            0x4000_0000,
            0xfd,
            0xc000_0000
        ]
    );
}

#[test]
fn hypervisor_with_empty_reg_gets_xen_no_grant_table_entry() {
    let memory = ram(512 * MIB);
    let h = HypervisorNode {
        reg: Vec::new(),
        ..example_hypervisor()
    };

    let blob = build_blob(&example_spec(&memory), Some(&h));
    let fdt = parse(&blob);

    assert_eq!(cells(&fdt, "/hypervisor", "reg"), [0, 0, 0, 0]);
}

#[test]
fn hypervisor_interrupt_is_the_upcall_ppi_level_low_on_all_cpus() {
    let memory = ram(512 * MIB);
    let blob = build_blob(&example_spec(&memory), Some(&example_hypervisor()));

    let fdt = parse(&blob);

    assert_eq!(cells(&fdt, "/hypervisor", "interrupts"), [1, 15, 0xf08]);
    assert_eq!(cells(&fdt, "/hypervisor", "interrupt-parent"), [0xfde8]);
}

#[test]
fn hypervisor_without_upcall_has_neither_interrupts_nor_parent() {
    let memory = ram(512 * MIB);
    let h = HypervisorNode {
        interrupt_ppi: None,
        ..example_hypervisor()
    };

    let blob = build_blob(&example_spec(&memory), Some(&h));
    let fdt = parse(&blob);

    assert_eq!(prop_names(&fdt, "/hypervisor"), ["compatible", "reg"]);
}

// ---- refused inputs -------------------------------------------------------

fn error(spec: &GuestDtSpec<'_>, hypervisor: Option<&HypervisorNode>) -> String {
    build(spec, hypervisor)
        .expect_err("the input is refused")
        .to_string()
}

#[test]
fn zero_vcpus_is_refused_naming_the_accepted_range() {
    let memory = ram(512 * MIB);
    let spec = GuestDtSpec {
        vcpus: 0,
        ..example_spec(&memory)
    };

    assert_eq!(
        error(&spec, None),
        "/cpus: 0 vCPUs is out of range (expected 1 to 128)"
    );
}

#[test]
fn vcpus_above_128_are_refused_naming_the_limit() {
    let memory = ram(512 * MIB);
    let ok = GuestDtSpec {
        vcpus: 128,
        ..example_spec(&memory)
    };
    let too_many = GuestDtSpec {
        vcpus: 129,
        ..example_spec(&memory)
    };

    assert!(build(&ok, None).is_ok());
    assert_eq!(
        error(&too_many, None),
        "/cpus: 129 vCPUs is out of range (expected 1 to 128)"
    );
}

#[test]
fn no_memory_bank_is_refused() {
    let spec = example_spec(&[]);

    assert_eq!(
        error(&spec, None),
        "/memory: reg has no bank (expected at least one)"
    );
}

#[test]
fn empty_memory_bank_is_refused_naming_its_index_and_range() {
    let memory = [
        GUEST_RAM0,
        Range {
            start: 0x2_0000_0000,
            end: 0x2_0000_0000,
        },
    ];
    let spec = example_spec(&memory);

    assert_eq!(
        error(&spec, None),
        "/memory: reg bank 1 = 0x200000000-0x200000000 is empty or inverted \
         (expected a range with end above start)"
    );
}

#[test]
fn inverted_initrd_is_refused_naming_both_ends() {
    let memory = ram(512 * MIB);
    let spec = GuestDtSpec {
        initrd: Some(Range {
            start: 0x4900_0000,
            end: 0x4820_0000,
        }),
        ..example_spec(&memory)
    };

    assert_eq!(
        error(&spec, None),
        "/chosen: linux,initrd-start = 0x49000000 is above linux,initrd-end = 0x48200000 \
         (expected start <= end)"
    );
}

#[test]
fn bootargs_with_a_nul_are_refused() {
    let memory = ram(512 * MIB);
    let spec = GuestDtSpec {
        bootargs: Some("console=ttyAMA0\0quiet"),
        ..example_spec(&memory)
    };

    assert_eq!(
        error(&spec, None),
        "/chosen: bootargs = \"console=ttyAMA0\\0quiet\" contains a NUL byte \
         (expected text without NUL)"
    );
}

#[test]
fn hypervisor_interrupt_that_is_not_a_ppi_is_refused() {
    let memory = ram(512 * MIB);
    for intid in [15, 32] {
        let h = HypervisorNode {
            interrupt_ppi: Some(intid),
            ..example_hypervisor()
        };

        assert_eq!(
            error(&example_spec(&memory), Some(&h)),
            format!("/hypervisor: interrupts = INTID {intid} is not a PPI (expected 16 to 31)")
        );
    }
}

#[test]
fn inverted_hypervisor_reg_entry_is_refused_naming_its_index() {
    let memory = ram(512 * MIB);
    let h = HypervisorNode {
        reg: vec![
            GUEST_GNTTAB,
            Range {
                start: 0x7000_0000,
                end: 0x6000_0000,
            },
        ],
        ..example_hypervisor()
    };

    assert_eq!(
        error(&example_spec(&memory), Some(&h)),
        "/hypervisor: reg entry 1 = 0x70000000-0x60000000 ends before it starts \
         (expected start <= end)"
    );
}

#[test]
fn tree_larger_than_2_mib_is_refused_with_its_size() {
    let memory = ram(512 * MIB);
    let huge = "x".repeat(GUEST_DTB_MAX);
    let spec = GuestDtSpec {
        bootargs: Some(&huge),
        ..example_spec(&memory)
    };

    let err = build(&spec, None).unwrap_err();

    match err {
        GuestDtError::TooLarge(size) => assert!(size > GUEST_DTB_MAX, "size {size}"),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}
