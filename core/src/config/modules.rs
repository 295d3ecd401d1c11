//! Each domain's boot modules: kinds, count, kernel format and placement.
//!
//! A domain takes one kernel that is an arm64 Image, at most one ramdisk and
//! at most one partial device tree, all in host RAM and clear of each other
//! and of Oxen.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{ModuleRef, Report};
use crate::hostdt::{BootModule, DtError, Fdt, ModuleKind, NodeId, Platform};
use crate::memmap::{Range, RangeSet};

/// A domain's modules, each of the right kind and number.
pub(super) struct DomainModules {
    pub kernel: ModuleRef,
    pub ramdisk: Option<ModuleRef>,
    pub device_tree: Option<ModuleRef>,
}

/// Where an arm64 Image keeps its magic, and the magic.
const ARM64_MAGIC_OFFSET: usize = 0x38;
const ARM64_MAGIC: [u8; 4] = *b"ARM\x64";
/// An arm64 Image header's length.
const ARM64_HEADER_LEN: u64 = 64;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// U-Boot's legacy image magic, big-endian at offset 0.
const UIMAGE_MAGIC: u32 = 0x2705_1956;
/// An arm32 zImage's magic, little-endian at offset 0x24.
const ZIMAGE_MAGIC: u32 = 0x016f_2818;
const ZIMAGE_MAGIC_OFFSET: usize = 0x24;
/// A flattened device tree's magic, big-endian at offset 0.
const FDT_MAGIC: u32 = 0xd00d_feed;
const ELF_MAGIC: [u8; 4] = *b"\x7fELF";

const ONE_OF_EACH: &str = "a domain takes one kernel, at most one ramdisk and at most one \
                           device tree";

/// Reads the modules of the domain at `node` (in tree order), checking
/// their kinds and the kernel's format.
pub(super) fn read_domain_modules<'m>(
    fdt: &Fdt<'_>,
    platform: &Platform,
    node: NodeId,
    path: &str,
    module_head: &dyn Fn(Range) -> Option<&'m [u8]>,
    report: &mut Report,
) -> Option<DomainModules> {
    let ram: RangeSet = platform.memory.iter().copied().collect();
    let mut kernel: Option<&BootModule> = None;
    let mut ramdisk: Option<&BootModule> = None;
    let mut device_tree: Option<&BootModule> = None;
    let mut ok = true;
    for m in platform.modules.iter().filter(|m| m.domain == Some(node)) {
        let slot = match m.kind {
            ModuleKind::Kernel => &mut kernel,
            ModuleKind::Ramdisk => &mut ramdisk,
            ModuleKind::DeviceTree => &mut device_tree,
            ModuleKind::XsmPolicy => {
                report.errors.push(DtError::prop(
                    &m.path,
                    "compatible",
                    format!(
                        "= {} makes it an XSM policy, which Oxen does not use and a domain \
                         cannot take (remove it from {path})",
                        compatible_list(fdt, m.node)
                    ),
                ));
                ok = false;
                continue;
            }
            ModuleKind::Unknown => {
                report.errors.push(DtError::prop(
                    &m.path,
                    "compatible",
                    format!(
                        "= {} does not say what the module holds (only the first two such \
                         modules in the tree are taken as kernel and ramdisk); add \
                         \"multiboot,kernel\", \"multiboot,ramdisk\" or \"multiboot,device-tree\"",
                        compatible_list(fdt, m.node)
                    ),
                ));
                ok = false;
                continue;
            }
        };
        match slot {
            Some(first) => {
                report.errors.push(DtError::node(
                    &m.path,
                    format!(
                        "is a second {} for {path} (the first is {}); {ONE_OF_EACH}",
                        m.kind.name(),
                        first.path
                    ),
                ));
                ok = false;
            }
            None => *slot = Some(m),
        }
    }
    let Some(kernel) = kernel else {
        report.errors.push(DtError::node(
            path,
            "has no kernel boot module (expected a child node with compatible = \
             \"multiboot,kernel\", \"multiboot,module\" and a reg)",
        ));
        return None;
    };
    // A module outside RAM is reported by `check_placement`; its bytes are
    // not worth reading.
    if ram.covers(&kernel.range)
        && let Some(head) = module_head(kernel.range)
        && let Some(problem) = kernel_problem(head, kernel.range.size())
    {
        report.errors.push(DtError::node(&kernel.path, problem));
        ok = false;
    }
    if let Some(dt) = device_tree
        && ram.covers(&dt.range)
        && let Some(head) = module_head(dt.range)
        && head.get(..4) != Some(&FDT_MAGIC.to_be_bytes()[..])
    {
        report.errors.push(DtError::node(
            &dt.path,
            format!(
                "is not a device tree blob (expected the magic {FDT_MAGIC:#x} at offset 0, as \
                 dtc writes)"
            ),
        ));
        ok = false;
    }
    ok.then(|| DomainModules {
        kernel: module_ref(kernel),
        ramdisk: ramdisk.map(module_ref),
        device_tree: device_tree.map(module_ref),
    })
}

fn module_ref(m: &BootModule) -> ModuleRef {
    ModuleRef {
        path: m.path.clone(),
        range: m.range,
        bootargs: m.bootargs.clone(),
    }
}

/// A node's `compatible` as written, e.g. `"multiboot,module"`.
fn compatible_list(fdt: &Fdt<'_>, node: NodeId) -> String {
    let Some(p) = fdt.prop(node, "compatible") else {
        return String::from("<none>");
    };
    let quoted: Vec<String> = p.strings().map(|s| format!("\"{s}\"")).collect();
    quoted.join(", ")
}

/// What is wrong with a kernel whose first bytes are `head`, if anything.
fn kernel_problem(head: &[u8], size: u64) -> Option<String> {
    if head.get(ARM64_MAGIC_OFFSET..ARM64_MAGIC_OFFSET + 4) == Some(&ARM64_MAGIC[..]) {
        return None;
    }
    let what = if head.starts_with(&GZIP_MAGIC) {
        String::from("is gzip-compressed; Oxen loads uncompressed arm64 Images")
    } else if head.get(..4) == Some(&UIMAGE_MAGIC.to_be_bytes()[..]) {
        String::from("is a U-Boot uImage; Oxen loads bare arm64 Images")
    } else if head.get(ZIMAGE_MAGIC_OFFSET..ZIMAGE_MAGIC_OFFSET + 4)
        == Some(&ZIMAGE_MAGIC.to_le_bytes()[..])
    {
        String::from("is an arm32 zImage; Oxen runs 64-bit guests only")
    } else if head.starts_with(&ELF_MAGIC) {
        String::from("is an ELF file (a vmlinux?); Oxen loads arm64 Images")
    } else if head.get(..4) == Some(&FDT_MAGIC.to_be_bytes()[..]) {
        String::from("is a device tree blob, not a kernel")
    } else if size < ARM64_HEADER_LEN {
        format!("is only {size} bytes, shorter than an arm64 Image header ({ARM64_HEADER_LEN})")
    } else {
        String::from("is not an arm64 Image")
    };
    Some(format!(
        "{what} (expected an arm64 Image, such as Linux's arch/arm64/boot/Image, with the \
         magic \"ARM\\x64\" at offset 0x38)"
    ))
}

/// Lists modules outside every `xen,domain` node: they would be dom0's, and
/// Oxen runs no dom0.
pub(super) fn ignore_dom0_modules(platform: &Platform, report: &mut Report) {
    for m in platform.modules.iter().filter(|m| m.domain.is_none()) {
        report.ignored.push(DtError::node(
            &m.path,
            format!(
                "({}) is outside every xen,domain node, so it would be dom0's; Oxen runs no \
                 dom0 and ignores it",
                m.kind.name()
            ),
        ));
    }
}

/// Checks that every domain's module lies in host RAM and overlaps neither
/// another module nor Oxen itself.
pub(super) fn check_placement(platform: &Platform, hypervisor: &[Range], report: &mut Report) {
    let ram: RangeSet = platform.memory.iter().copied().collect();
    let banks: Vec<String> = platform.memory.iter().map(|r| format!("{r}")).collect();
    let modules: Vec<&BootModule> = platform
        .modules
        .iter()
        .filter(|m| m.domain.is_some())
        .collect();
    for (i, m) in modules.iter().enumerate() {
        let at = m.range;
        if !ram.covers(&at) {
            report.errors.push(DtError::prop(
                &m.path,
                "reg",
                format!(
                    "{at} is not inside host RAM (expected within one of: {})",
                    banks.join(", ")
                ),
            ));
        }
        for own in hypervisor.iter().filter(|h| h.overlaps(&at)) {
            report.errors.push(DtError::prop(
                &m.path,
                "reg",
                format!(
                    "{at} overlaps {own}, which Oxen occupies itself (its image, heap and \
                     stacks, or the host device tree)"
                ),
            ));
        }
        for other in modules[..i].iter().filter(|o| o.range.overlaps(&at)) {
            // Xen gives two domains one module when kind and address agree
            // (the same kernel for several domains, loaded once).
            let shared = other.kind == m.kind && other.domain != m.domain;
            let message = if shared && other.range == at {
                continue;
            } else if shared && other.range.start == at.start {
                format!(
                    "{at} starts where {} ({}) does, but their sizes differ: a {} shared by \
                     several domains needs the same reg in each",
                    other.path,
                    other.range,
                    m.kind.name()
                )
            } else if other.domain != m.domain {
                format!(
                    "{at} overlaps {} at {} (only a module of the same kind at the same reg \
                     may be shared between domains)",
                    other.path, other.range
                )
            } else {
                format!("{at} overlaps {} at {}", other.path, other.range)
            };
            report.errors.push(DtError::prop(&m.path, "reg", message));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testdts::{DOMU1, DOMU2, Host, edit, with_child};
    use super::*;

    const KERNEL: &str = "compatible = \"multiboot,kernel\", \"multiboot,module\";";
    const RAMDISK: &str = "compatible = \"multiboot,ramdisk\", \"multiboot,module\";";

    fn errors_of(host: &Host) -> Vec<String> {
        host.read().unwrap_err()
    }

    fn with_module(name: &str, compatible: &str, reg: &str) -> String {
        with_child(
            DOMU1,
            &format!("{name} {{ compatible = {compatible}; reg = <{reg}>; }};"),
        )
    }

    /// A 64-byte head whose only content is `bytes` at `offset`.
    fn head_with(offset: usize, bytes: &[u8]) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[offset..offset + bytes.len()].copy_from_slice(bytes);
        h
    }

    fn kernel_error(head: Vec<u8>) -> Vec<String> {
        let mut host = Host::new(DOMU1);
        host.heads.push((0x4800_0000, head));
        errors_of(&host)
    }

    #[test]
    fn domain_without_a_kernel_is_refused() {
        let dom = edit(DOMU1, KERNEL, "compatible = \"vendor,firmware-blob\";");

        let errs = errors_of(&Host::new(&dom));

        assert_eq!(
            errs,
            [
                "/chosen/domU1: has no kernel boot module (expected a child node with compatible \
              = \"multiboot,kernel\", \"multiboot,module\" and a reg)"
            ]
        );
    }

    #[test]
    fn second_kernel_names_both_modules() {
        let dom = with_module(
            "module@4c000000",
            "\"multiboot,kernel\", \"multiboot,module\"",
            "0x4c000000 0x100000",
        );

        let errs = errors_of(&Host::new(&dom));

        assert_eq!(
            errs,
            [
                "/chosen/domU1/module@4c000000: is a second kernel for /chosen/domU1 (the first \
              is /chosen/domU1/module@48000000); a domain takes one kernel, at most one \
              ramdisk and at most one device tree"
            ]
        );
    }

    #[test]
    fn second_ramdisk_names_both_modules() {
        let dom = with_module(
            "module@4c000000",
            "\"multiboot,ramdisk\", \"multiboot,module\"",
            "0x4c000000 0x100000",
        );

        let errs = errors_of(&Host::new(&dom));

        assert_eq!(
            errs,
            [
                "/chosen/domU1/module@4c000000: is a second ramdisk for /chosen/domU1 (the first \
              is /chosen/domU1/module@4a000000); a domain takes one kernel, at most one \
              ramdisk and at most one device tree"
            ]
        );
    }

    #[test]
    fn second_device_tree_is_refused() {
        let dom = with_module(
            "module@4c000000",
            "\"multiboot,device-tree\", \"multiboot,module\"",
            "0x4c000000 0x1000",
        );
        let dom = with_child(
            &dom,
            "module@4d000000 { compatible = \"multiboot,device-tree\", \
             \"multiboot,module\"; reg = <0x4d000000 0x1000>; };",
        );
        let mut host = Host::new(&dom);
        host.heads
            .push((0x4c00_0000, FDT_MAGIC.to_be_bytes().to_vec()));
        host.heads
            .push((0x4d00_0000, FDT_MAGIC.to_be_bytes().to_vec()));

        let errs = errors_of(&host);

        assert_eq!(
            errs,
            [
                "/chosen/domU1/module@4d000000: is a second device-tree for /chosen/domU1 (the \
              first is /chosen/domU1/module@4c000000); a domain takes one kernel, at most one \
              ramdisk and at most one device tree"
            ]
        );
    }

    #[test]
    fn partial_device_tree_is_given_to_the_domain() {
        let dom = with_module(
            "module@4c000000",
            "\"multiboot,device-tree\", \"multiboot,module\"",
            "0x4c000000 0x1000",
        );
        let mut host = Host::new(&dom);
        host.heads
            .push((0x4c00_0000, FDT_MAGIC.to_be_bytes().to_vec()));

        let system = host.read().unwrap();

        let dt = system.domains[0].device_tree.as_ref().unwrap();
        assert_eq!(dt.path, "/chosen/domU1/module@4c000000");
        assert_eq!(dt.range, Range::with_size(0x4c00_0000, 0x1000).unwrap());
    }

    #[test]
    fn partial_device_tree_without_the_fdt_magic_is_refused() {
        let dom = with_module(
            "module@4c000000",
            "\"multiboot,device-tree\", \"multiboot,module\"",
            "0x4c000000 0x1000",
        );
        let mut host = Host::new(&dom);
        host.heads.push((0x4c00_0000, vec![0u8; 64]));

        assert_eq!(
            errors_of(&host),
            [
                "/chosen/domU1/module@4c000000: is not a device tree blob (expected the magic \
              0xd00dfeed at offset 0, as dtc writes)"
            ]
        );
    }

    #[test]
    fn xsm_policy_inside_a_domain_is_refused() {
        let dom = with_module(
            "module@4c000000",
            "\"xen,xsm-policy\", \"multiboot,module\"",
            "0x4c000000 0x1000",
        );

        assert_eq!(
            errors_of(&Host::new(&dom)),
            [
                "/chosen/domU1/module@4c000000: compatible = \"xen,xsm-policy\", \
              \"multiboot,module\" makes it an XSM policy, which Oxen does not use and a \
              domain cannot take (remove it from /chosen/domU1)"
            ]
        );
    }

    #[test]
    fn third_bare_multiboot_module_must_say_what_it_holds() {
        // Xen guesses the first two bare modules of the whole tree as
        // kernel and ramdisk; the third has no kind.
        let bare = "compatible = \"multiboot,module\";";
        let one = edit(DOMU1, KERNEL, bare);
        let one = edit(&one, RAMDISK, bare);
        let two = edit(DOMU2, KERNEL, bare);

        let errs = errors_of(&Host::new(&format!("{one}{two}")));

        assert_eq!(
            errs,
            [
                "/chosen/domU2/module@4c000000: compatible = \"multiboot,module\" does not say \
                 what the module holds (only the first two such modules in the tree are taken \
                 as kernel and ramdisk); add \"multiboot,kernel\", \"multiboot,ramdisk\" or \
                 \"multiboot,device-tree\"",
                "/chosen/domU2: has no kernel boot module (expected a child node with \
                 compatible = \"multiboot,kernel\", \"multiboot,module\" and a reg)"
            ]
        );
    }

    #[test]
    fn legacy_xen_module_names_are_accepted() {
        let dom = edit(
            DOMU1,
            KERNEL,
            "compatible = \"xen,linux-zimage\", \"xen,multiboot-module\";",
        );
        let dom = edit(
            &dom,
            RAMDISK,
            "compatible = \"xen,linux-initrd\", \"xen,multiboot-module\";",
        );

        let d = &Host::new(&dom).read().unwrap().domains[0];

        assert_eq!(d.kernel.path, "/chosen/domU1/module@48000000");
        assert_eq!(
            d.ramdisk.as_ref().map(|r| r.path.as_str()),
            Some("/chosen/domU1/module@4a000000")
        );
    }

    #[test]
    fn module_outside_host_ram_is_refused_with_the_banks() {
        let dom = edit(
            DOMU1,
            "reg = <0x4a000000 0x800000>;",
            "reg = <0x80000000 0x800000>;",
        );

        assert_eq!(
            errors_of(&Host::new(&dom)),
            [
                "/chosen/domU1/module@4a000000: reg 0x0080000000-0x0080800000 is not inside host \
              RAM (expected within one of: 0x0040000000-0x0080000000)"
            ]
        );
    }

    #[test]
    fn module_straddling_the_end_of_ram_is_refused() {
        let dom = edit(
            DOMU1,
            "reg = <0x4a000000 0x800000>;",
            "reg = <0x7ff00000 0x200000>;",
        );

        let errs = errors_of(&Host::new(&dom));

        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(errs[0].contains("0x007ff00000-0x0080100000 is not inside host RAM"));
    }

    #[test]
    fn overlapping_modules_name_both() {
        let dom = edit(
            DOMU1,
            "reg = <0x4a000000 0x800000>;",
            "reg = <0x48f00000 0x800000>;",
        );

        assert_eq!(
            errors_of(&Host::new(&dom)),
            [
                "/chosen/domU1/module@4a000000: reg 0x0048f00000-0x0049700000 overlaps \
              /chosen/domU1/module@48000000 at 0x0048000000-0x0049000000"
            ]
        );
    }

    #[test]
    fn modules_of_different_domains_may_not_overlap() {
        let two = edit(
            DOMU2,
            "reg = <0x4c000000 0x1000000>;",
            "reg = <0x4a400000 0x100000>;",
        );

        let errs = errors_of(&Host::new(&format!("{DOMU1}{two}")));

        assert_eq!(
            errs,
            [
                "/chosen/domU2/module@4c000000: reg 0x004a400000-0x004a500000 overlaps \
              /chosen/domU1/module@4a000000 at 0x004a000000-0x004a800000 (only a module of the \
              same kind at the same reg may be shared between domains)"
            ]
        );
    }

    #[test]
    fn two_domains_may_share_one_kernel_module_as_in_xen() {
        let two = edit(
            DOMU2,
            "reg = <0x4c000000 0x1000000>;",
            "reg = <0x48000000 0x1000000>;",
        );

        let system = Host::new(&format!("{DOMU1}{two}")).read().unwrap();

        let kernels: Vec<Range> = system.domains.iter().map(|d| d.kernel.range).collect();
        assert_eq!(
            kernels,
            [Range::with_size(0x4800_0000, 0x100_0000).unwrap(); 2]
        );
    }

    #[test]
    fn a_shared_kernel_with_two_sizes_is_refused() {
        let two = edit(
            DOMU2,
            "reg = <0x4c000000 0x1000000>;",
            "reg = <0x48000000 0x800000>;",
        );

        let errs = errors_of(&Host::new(&format!("{DOMU1}{two}")));

        assert_eq!(
            errs,
            [
                "/chosen/domU2/module@4c000000: reg 0x0048000000-0x0048800000 starts where \
                 /chosen/domU1/module@48000000 (0x0048000000-0x0049000000) does, but their sizes \
                 differ: a kernel shared by several domains needs the same reg in each"
            ]
        );
    }

    #[test]
    fn a_kernel_at_another_domains_ramdisk_is_refused_as_overlapping() {
        let two = edit(
            DOMU2,
            "reg = <0x4c000000 0x1000000>;",
            "reg = <0x4a000000 0x800000>;",
        );

        let errs = errors_of(&Host::new(&format!("{DOMU1}{two}")));

        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(errs[0].contains("overlaps /chosen/domU1/module@4a000000"));
    }

    fn platform_errors_with(from: &str, to: &str) -> Vec<String> {
        Host::new(&edit(DOMU1, from, to)).platform_errors()
    }

    #[test]
    fn a_mistyped_module_kind_is_named_with_the_accepted_kinds() {
        let errs = platform_errors_with("\"multiboot,ramdisk\"", "\"multiboot,ramdsk\"");

        assert_eq!(
            errs,
            [
                "/chosen/domU1/module@4a000000: compatible = \"multiboot,ramdsk\", \
                 \"multiboot,module\" has \"multiboot,ramdsk\", which is no boot-module kind \
                 (expected \"multiboot,kernel\", \"multiboot,ramdisk\" or \
                 \"multiboot,device-tree\" (or Xen's older \"xen,linux-zimage\", \
                 \"xen,linux-initrd\", \"xen,xsm-policy\"), then \"multiboot,module\")"
            ]
        );
    }

    #[test]
    fn a_module_kind_without_multiboot_module_is_not_skipped_silently() {
        let errs = platform_errors_with(
            "compatible = \"multiboot,kernel\", \"multiboot,module\";",
            "compatible = \"multiboot,kernel\";",
        );

        assert_eq!(
            errs,
            [
                "/chosen/domU1/module@48000000: compatible = \"multiboot,kernel\" lacks \
                 \"multiboot,module\", so it is no boot module (write compatible = \
                 \"multiboot,kernel\", \"multiboot,module\")"
            ]
        );
    }

    #[test]
    fn a_mistyped_multiboot_module_is_named() {
        let errs = platform_errors_with(
            "compatible = \"multiboot,kernel\", \"multiboot,module\";",
            "compatible = \"multiboot,kernel\", \"multiboot,modules\";",
        );

        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(
            errs[0].contains("has \"multiboot,modules\", which is no boot-module kind"),
            "{errs:#?}"
        );
    }

    #[test]
    fn a_module_reg_of_the_wrong_cell_count_names_the_parent_cells() {
        let errs = platform_errors_with(
            "reg = <0x48000000 0x1000000>;",
            "reg = <0x0 0x48000000 0x1000000>;",
        );

        assert_eq!(
            errs,
            [
                "/chosen/domU1/module@48000000: reg = <0x0 0x48000000 0x1000000> is not a list \
                 of (address, size) pairs of 1+1 cells"
            ]
        );
    }

    #[test]
    fn a_module_under_size_cells_of_zero_says_no_size_can_be_written() {
        let errs = platform_errors_with("#size-cells = <1>;", "#size-cells = <0>;");

        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert!(
            errs[0].starts_with("/chosen/domU1/module@48000000: reg has 0 non-empty range(s)"),
            "{errs:#?}"
        );
        assert!(
            errs[0].ends_with(
                "(/chosen/domU1 has #size-cells = <0>, so no size can be written; expected <1> \
                 or <2>)"
            ),
            "{errs:#?}"
        );
    }

    #[test]
    fn a_domain_without_address_cells_says_the_defaults_apply() {
        let errs =
            platform_errors_with("#address-cells = <1>;\n            #size-cells = <1>;", "");

        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert!(
            errs[0].ends_with(
                "is not a list of (address, size) pairs of 2+1 cells (/chosen/domU1 has no \
                 #address-cells or #size-cells, so the DT spec's defaults 2 and 1 apply)"
            ),
            "{errs:#?}"
        );
    }

    #[test]
    fn module_overlapping_oxen_is_refused_naming_the_range() {
        let dom = edit(
            DOMU1,
            "reg = <0x4a000000 0x800000>;",
            "reg = <0x40300000 0x200000>;",
        );

        assert_eq!(
            errors_of(&Host::new(&dom)),
            [
                "/chosen/domU1/module@4a000000: reg 0x0040300000-0x0040500000 overlaps \
              0x0040200000-0x0040400000, which Oxen occupies itself (its image, heap and \
              stacks, or the host device tree)"
            ]
        );
    }

    #[test]
    fn gzip_kernel_is_refused_as_compressed() {
        assert_eq!(
            kernel_error(head_with(0, &GZIP_MAGIC)),
            [
                "/chosen/domU1/module@48000000: is gzip-compressed; Oxen loads uncompressed \
              arm64 Images (expected an arm64 Image, such as Linux's arch/arm64/boot/Image, \
              with the magic \"ARM\\x64\" at offset 0x38)"
            ]
        );
    }

    #[test]
    fn uimage_kernel_is_recognised() {
        let errs = kernel_error(head_with(0, &UIMAGE_MAGIC.to_be_bytes()));

        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with(
                "/chosen/domU1/module@48000000: is a U-Boot uImage; Oxen loads bare arm64 \
                 Images (expected an arm64 Image"
            ),
            "{errs:?}"
        );
    }

    #[test]
    fn arm32_zimage_kernel_is_recognised() {
        let errs = kernel_error(head_with(0x24, &ZIMAGE_MAGIC.to_le_bytes()));

        assert!(
            errs[0].starts_with(
                "/chosen/domU1/module@48000000: is an arm32 zImage; Oxen runs 64-bit guests \
                 only (expected"
            ),
            "{errs:?}"
        );
    }

    #[test]
    fn elf_kernel_is_recognised() {
        let errs = kernel_error(head_with(0, &ELF_MAGIC));

        assert!(
            errs[0].starts_with(
                "/chosen/domU1/module@48000000: is an ELF file (a vmlinux?); Oxen loads arm64 \
                 Images (expected"
            ),
            "{errs:?}"
        );
    }

    #[test]
    fn device_tree_given_as_kernel_is_recognised() {
        let errs = kernel_error(head_with(0, &FDT_MAGIC.to_be_bytes()));

        assert!(
            errs[0].starts_with(
                "/chosen/domU1/module@48000000: is a device tree blob, not a kernel (expected"
            ),
            "{errs:?}"
        );
    }

    #[test]
    fn unrecognised_kernel_says_what_is_accepted() {
        let errs = kernel_error(vec![0xaa; 64]);

        assert_eq!(
            errs,
            [
                "/chosen/domU1/module@48000000: is not an arm64 Image (expected an arm64 Image, \
              such as Linux's arch/arm64/boot/Image, with the magic \"ARM\\x64\" at offset \
              0x38)"
            ]
        );
    }

    #[test]
    fn kernel_shorter_than_an_image_header_is_refused() {
        let dom = edit(
            DOMU1,
            "reg = <0x48000000 0x1000000>;",
            "reg = <0x48000000 0x20>;",
        );
        let mut host = Host::new(&dom);
        host.heads.push((0x4800_0000, vec![0u8; 0x20]));

        let errs = errors_of(&host);

        assert!(
            errs[0].starts_with(
                "/chosen/domU1/module@48000000: is only 32 bytes, shorter than an arm64 Image \
                 header (64) (expected"
            ),
            "{errs:?}"
        );
    }

    #[test]
    fn arm64_image_magic_is_accepted() {
        assert_eq!(kernel_problem(&head_with(0x38, b"ARM\x64"), 64), None);
    }

    #[test]
    fn unreadable_kernel_head_skips_the_format_check() {
        let mut host = Host::new(DOMU1);
        host.heads.push((0x4800_0000, head_with(0, &GZIP_MAGIC)));
        host.unreadable.push(0x4800_0000);

        assert!(host.read().is_ok());
    }

    #[test]
    fn modules_outside_every_domain_are_ignored_as_dom0_modules() {
        let dom0 = r#"
        module@50000000 {
            compatible = "multiboot,kernel", "multiboot,module";
            reg = <0x50000000 0x1000000>;
        };
        "#;

        let system = Host::new(&format!("{dom0}{DOMU1}")).read().unwrap();

        let ignored: Vec<String> = system.ignored.iter().map(ToString::to_string).collect();
        assert_eq!(
            ignored,
            [
                "/chosen/module@50000000: (kernel) is outside every xen,domain node, so it would \
              be dom0's; Oxen runs no dom0 and ignores it"
            ]
        );
    }
}
