//! The domains of a dom0less host device tree, read and validated.
//!
//! Xen's `xen,domain` bindings are read with every error collected.
//! [`read_system`] walks the `xen,domain` children of `/chosen` in tree order
//! (giving them domain IDs 1, 2, … as Xen does), reads each node's properties
//! (`domain.rs`) and boot modules (`modules.rs`), then checks what only makes
//! sense across domains: module placement and the memory budget. Nothing is
//! acted on here; the effects of each setting are decided by whoever builds
//! the domain. `docs/bindings.md` lists every property and its errors.

mod domain;
mod modules;
#[cfg(test)]
pub(crate) mod testdts;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::guest_layout::GUEST_GICV3_GICR0;
use crate::hostdt::{DtError, Fdt, NodeId, Platform};
use crate::memmap::{Range, RangeSet};

/// The value of a domain's `xen,enhanced` property, parsed once; the effects
/// are decided elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enhanced {
    /// No `xen,enhanced` property.
    Absent,
    /// `xen,enhanced = "disabled"`.
    Disabled,
    /// `xen,enhanced = "no-xenstore"`.
    NoXenstore,
    /// `xen,enhanced = "enabled"`, or the property with no value.
    Enabled,
    /// `xen,enhanced = "legacy"`: xenstore set up late by `init-dom0less`.
    Legacy,
}

impl Enhanced {
    /// How the setting is written in the device tree (`"absent"` when it is
    /// not), for the boot log.
    pub fn name(self) -> &'static str {
        match self {
            Self::Absent => "absent",
            Self::Disabled => "disabled",
            Self::NoXenstore => "no-xenstore",
            Self::Enabled => "enabled",
            Self::Legacy => "legacy",
        }
    }
}

impl fmt::Display for Enhanced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A boot module given to a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleRef {
    /// The module's node, e.g. `/chosen/domU1/module@4a000000`.
    pub path: String,
    /// Where the module lies in host RAM.
    pub range: Range,
    /// The module's `bootargs` (the kernel command line, for a kernel).
    pub bootargs: Option<String>,
}

/// One validated `xen,domain` node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainConfig {
    pub node: NodeId,
    /// The node's path, e.g. `/chosen/domU1`.
    pub path: String,
    /// The node name, e.g. `domU1`.
    pub name: String,
    /// 1, 2, … in tree order of the `xen,domain` children of `/chosen`, as
    /// Xen allocates them.
    pub domid: u16,
    /// Guest RAM in KiB (`memory`; Xen's unit), a whole number of 4 KiB pages.
    pub memory_kib: u64,
    /// Number of vCPUs (`cpus`).
    pub vcpus: u32,
    /// Whether the domain has an emulated PL011 (`vpl011`) at SPI 32.
    pub vpl011: bool,
    /// Number of virtual SPIs (`nr_spis`, defaulted and raised for `vpl011`).
    pub nr_spis: u32,
    pub enhanced: Enhanced,
    pub kernel: ModuleRef,
    pub ramdisk: Option<ModuleRef>,
    /// A partial device tree (`multiboot,device-tree`).
    pub device_tree: Option<ModuleRef>,
    pub max_grant_frames: u32,
    pub max_maptrack_frames: u32,
    /// Highest event-channel port the domain may use.
    pub max_evtchn_port: u32,
    /// Stage-2 table pages the domain may have live at once
    /// (`xen,domain-p2m-mem-mb`, else [`default_p2m_pages`]).
    pub p2m_pages: u64,
}

impl DomainConfig {
    /// Guest RAM in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_kib * KIB
    }
}

/// Machine-wide bounds the per-domain values are checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most vCPUs a domain may have (further capped at [`GUEST_MAX_VCPUS`]).
    pub max_vcpus: u32,
    /// SPIs of the host GIC: a domain's default `nr_spis` (capped at
    /// [`MAX_NR_SPIS`]).
    pub host_spis: u32,
}

/// Every domain of the system, and what was ignored on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemConfig {
    /// In domain-ID order.
    pub domains: Vec<DomainConfig>,
    /// Properties and nodes Xen knows but Oxen ignores (and ones nobody
    /// knows), to be reported once at boot.
    pub ignored: Vec<DtError>,
}

const KIB: u64 = 1024;

/// Xen's `gnttab_max_frames` default: a domain's default and most grant-table
/// frames.
pub const MAX_GRANT_FRAMES: u32 = 64;
/// Xen's `gnttab_max_maptrack_frames` default: a domain's default and most
/// maptrack frames.
pub const MAX_MAPTRACK_FRAMES: u32 = 1024;
/// Xen's `max_evtchn_port` for dom0less domUs.
pub const MAX_EVTCHN_PORT: u32 = 1023;
/// vCPUs whose redistributors fit Xen's guest GICR region (128 KiB each).
pub const GUEST_MAX_VCPUS: u32 =
    ((GUEST_GICV3_GICR0.end - GUEST_GICV3_GICR0.start) / (128 * KIB)) as u32;
/// Most virtual SPIs: the vGIC describes interrupts in groups of 32
/// (`GICD_TYPER.ITLinesNumber`), and 960 SPIs (INTIDs 32–991) is the most
/// that keeps every group clear of the special INTIDs 1020–1023.
pub const MAX_NR_SPIS: u32 = 960;
/// Xen's default P2M pool of a dom0less domain, in 4 KiB pages: 1 MiB per
/// vCPU, 4 KiB per MiB of RAM and 512 KiB for extended regions, rounded up
/// to whole MiB (Xen's `domain_p2m_pages`, kept equal to libxl's).
pub fn default_p2m_pages(memory_kib: u64, vcpus: u32) -> u64 {
    let kib = 4 * (256 * u64::from(vcpus) + memory_kib / 1024 + 128);
    kib.div_ceil(1024) * 256
}

/// Xen's `DOMID_FIRST_RESERVED`: IDs from here on are not for guests.
const DOMID_FIRST_RESERVED: usize = 0x7ff0;

/// Errors and ignored settings, collected as the tree is read.
#[derive(Default)]
struct Report {
    errors: Vec<DtError>,
    ignored: Vec<DtError>,
}

/// Reads and validates every `xen,domain` child of `/chosen`.
///
/// `free` is host RAM less the hypervisor image, its device tree and reserved
/// memory; the boot modules are taken out of it here. `hypervisor` lists the
/// ranges Oxen occupies itself (image, device tree), which no module may
/// overlap. `module_head(range)` returns the first bytes of a module (at
/// least 64 if it is that long) so the kernel's format can be checked; `None`
/// skips the check. Every error is collected; any error fails the whole
/// system.
pub fn read_system<'m>(
    fdt: &Fdt<'_>,
    platform: &Platform,
    free: &RangeSet,
    hypervisor: &[Range],
    module_head: &dyn Fn(Range) -> Option<&'m [u8]>,
    limits: &Limits,
) -> Result<SystemConfig, Vec<DtError>> {
    let mut report = Report::default();
    let mut domains = Vec::new();
    let mut requests = Vec::new();

    let domain_nodes: Vec<NodeId> = match fdt.find("/chosen") {
        Some(chosen) => fdt
            .children(chosen)
            .filter(|&c| fdt.is_compatible(c, "xen,domain"))
            .collect(),
        None => Vec::new(),
    };
    check_lookalike_domains(fdt, &mut report);
    for (index, &node) in domain_nodes.iter().enumerate() {
        let path = fdt.path(node);
        let domid = allocate_domid(index, &path).map_err(|e| report.errors.push(e));
        let name = fdt.node(node).name;
        if let Some(first) = domain_nodes[..index]
            .iter()
            .position(|&n| fdt.node(n).name == name)
        {
            report.errors.push(DtError::node(
                &path,
                format!(
                    "is a second xen,domain node named \"{name}\" (domain {}; the first is \
                     domain {}): the node name is the domain's name on the console and in \
                     xenstore, so each must be unique",
                    index + 1,
                    first + 1
                ),
            ));
        }
        let props = domain::read_properties(fdt, node, &path, limits, &mut report);
        let mods =
            modules::read_domain_modules(fdt, platform, node, &path, module_head, &mut report);
        let name = String::from(fdt.node(node).name);
        if let Some(kib) = props.memory_kib {
            requests.push((name.clone(), kib));
        }
        if let (Ok(domid), Some(p), Some(m)) = (domid, props.complete(), mods) {
            domains.push(DomainConfig {
                node,
                path,
                name,
                domid,
                memory_kib: p.memory_kib,
                vcpus: p.vcpus,
                vpl011: p.vpl011,
                nr_spis: p.nr_spis,
                enhanced: p.enhanced,
                kernel: m.kernel,
                ramdisk: m.ramdisk,
                device_tree: m.device_tree,
                max_grant_frames: p.max_grant_frames,
                max_maptrack_frames: p.max_maptrack_frames,
                max_evtchn_port: MAX_EVTCHN_PORT,
                p2m_pages: p.p2m_mem_mb.map_or_else(
                    || default_p2m_pages(p.memory_kib, p.vcpus),
                    |mb| u64::from(mb) * 256,
                ),
            });
        }
    }
    modules::ignore_dom0_modules(platform, &mut report);
    modules::check_placement(platform, hypervisor, &mut report);
    check_memory_budget(platform, free, &requests, &mut report);

    if report.errors.is_empty() {
        Ok(SystemConfig {
            domains,
            ignored: report.ignored,
        })
    } else {
        Err(report.errors)
    }
}

/// The kinds of `compatible` a boot module may carry; a node under
/// `/chosen` whose children carry them was meant to be a domain.
fn is_module_like(fdt: &Fdt<'_>, id: NodeId) -> bool {
    fdt.prop(id, "compatible").is_some_and(|p| {
        p.strings()
            .any(|s| s.starts_with("multiboot,") || s == "xen,multiboot-module")
            || p.value.windows(10).any(|w| w == b"multiboot,")
    })
}

/// Refuses a child of `/chosen` that holds boot modules (or whose
/// `compatible` reads like Xen's domain one) without being compatible with
/// `"xen,domain"`: it would otherwise vanish, its modules taken for dom0's.
fn check_lookalike_domains(fdt: &Fdt<'_>, report: &mut Report) {
    let Some(chosen) = fdt.find("/chosen") else {
        return;
    };
    // Xen looks for domains among the direct children of /chosen only.
    for id in fdt.ids().filter(|&id| fdt.depth(id) > 2) {
        let mut up = fdt.node(id).parent;
        let mut under_chosen = false;
        while let Some(p) = up {
            under_chosen |= p == chosen;
            up = fdt.node(p).parent;
        }
        if under_chosen && fdt.is_compatible(id, "xen,domain") {
            report.errors.push(DtError::node(
                fdt.path(id),
                "is compatible with \"xen,domain\" but is not a direct child of /chosen, the \
                 only place domains are read from (move it up)",
            ));
        }
    }
    for id in fdt.children(chosen) {
        if fdt.is_compatible(id, "xen,domain") {
            continue;
        }
        let modules: Vec<String> = fdt
            .children(id)
            .filter(|&c| is_module_like(fdt, c))
            .map(|c| fdt.path(c))
            .collect();
        let prop = fdt.prop(id, "compatible");
        let looks_like = prop.is_some_and(|p| {
            p.value
                .windows(7)
                .any(|w| w.eq_ignore_ascii_case(b"xen,dom"))
                || p.strings().any(|s| s.eq_ignore_ascii_case("xen,domain"))
        });
        if modules.is_empty() && !looks_like {
            continue;
        }
        let found = match prop {
            Some(p) => format!("= {} is not", p.display()),
            None => String::from("is missing, so it is not"),
        };
        let why = if modules.is_empty() {
            String::new()
        } else {
            format!(", yet the node holds boot modules ({})", modules.join(", "))
        };
        report.errors.push(DtError::prop(
            fdt.path(id),
            "compatible",
            format!(
                "{found} \"xen,domain\"{why}: write compatible = \"xen,domain\" to make it a \
                 domain"
            ),
        ));
    }
}

/// The domain ID of the `index`th `xen,domain` node (counting from 0).
fn allocate_domid(index: usize, path: &str) -> Result<u16, DtError> {
    let domid = index + 1;
    if domid >= DOMID_FIRST_RESERVED {
        return Err(DtError::node(
            path,
            format!(
                "would be domain {domid}, but guest domain IDs end at {} (at most {} xen,domain nodes)",
                DOMID_FIRST_RESERVED - 1,
                DOMID_FIRST_RESERVED - 1
            ),
        ));
    }
    // Checked just above: DOMID_FIRST_RESERVED fits in a u16.
    Ok(domid as u16)
}

/// Checks that the domains' memory, together, fits in the free host RAM
/// that is left once the boot modules are set aside.
fn check_memory_budget(
    platform: &Platform,
    free: &RangeSet,
    requests: &[(String, u64)],
    report: &mut Report,
) {
    let mut available = free.clone();
    // Every module stays in place until its domain is built, including
    // modules no domain uses (they are not worth the risk of reusing).
    for m in &platform.modules {
        available.remove(m.range);
    }
    let available_kib = available.total() / KIB;
    let total_kib = requests
        .iter()
        .fold(0u64, |sum, (_, kib)| sum.saturating_add(*kib));
    if total_kib <= available_kib {
        return;
    }
    let each: Vec<String> = requests
        .iter()
        .map(|(name, kib)| format!("{name} {}", size_kib(*kib)))
        .collect();
    let asked = if requests.len() > 1 {
        format!("{} = {}", each.join(" + "), size_kib(total_kib))
    } else {
        each.join("")
    };
    report.errors.push(DtError::node(
        "/chosen",
        format!(
            "domains ask for more memory than is free: {asked}, but {} of host RAM is free \
             (RAM less Oxen, its device tree, reserved memory and boot modules)",
            size_kib(available_kib)
        ),
    ));
}

/// A size given in KiB, in the largest binary unit that shows it exactly.
fn size_kib(kib: u64) -> String {
    if kib != 0 && kib.is_multiple_of(KIB * KIB) {
        format!("{} GiB", kib / (KIB * KIB))
    } else if kib != 0 && kib.is_multiple_of(KIB) {
        format!("{} MiB", kib / KIB)
    } else {
        format!("{kib} KiB")
    }
}

#[cfg(test)]
mod tests {
    use super::testdts::{DOMU1, DOMU2, Host, dtb_with, edit};
    use super::*;

    fn errors_with_domu1(from: &str, to: &str) -> Vec<String> {
        Host::new(&edit(DOMU1, from, to)).read().unwrap_err()
    }

    #[test]
    fn a_mistyped_domain_compatible_names_the_node_and_its_modules() {
        let errors = errors_with_domu1("\"xen,domain\"", "\"xen,domian\"");

        assert_eq!(
            errors,
            [
                "/chosen/domU1: compatible = \"xen,domian\" is not \"xen,domain\", yet the node \
                 holds boot modules (/chosen/domU1/module@48000000, \
                 /chosen/domU1/module@4a000000): write compatible = \"xen,domain\" to make it a \
                 domain"
            ]
        );
    }

    #[test]
    fn a_domain_compatible_without_its_nul_is_named_as_bytes() {
        let errors = errors_with_domu1(
            "compatible = \"xen,domain\";",
            "compatible = [78 65 6e 2c 64 6f 6d 61 69 6e];",
        );

        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with(
                "/chosen/domU1: compatible = [the bytes \"xen,domain\" without a terminating \
                 NUL] is not \"xen,domain\", yet the node holds boot modules"
            ),
            "{errors:?}"
        );
    }

    #[test]
    fn a_domain_node_without_compatible_but_with_modules_is_refused() {
        let errors = errors_with_domu1("compatible = \"xen,domain\";", "");

        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with(
                "/chosen/domU1: compatible is missing, so it is not \"xen,domain\", yet the node \
                 holds boot modules"
            ),
            "{errors:?}"
        );
    }

    #[test]
    fn a_domain_compatible_in_the_wrong_case_is_refused_even_without_modules() {
        let node = "\n        domU9 {\n            compatible = \"Xen,Domain\";\n        };\n";
        let host = Host::new(&format!("{DOMU1}{node}"));

        let errors = host.read().unwrap_err();

        assert_eq!(
            errors,
            [
                "/chosen/domU9: compatible = \"Xen,Domain\" is not \"xen,domain\": write \
                 compatible = \"xen,domain\" to make it a domain"
            ]
        );
    }

    #[test]
    fn damaged_domain_trees_are_refused_or_read_but_never_panic() {
        let host = Host::new(&format!("{DOMU1}{DOMU2}"));
        let base = super::testdts::dtb(&host.dts()).bytes().to_vec();
        let mut seed = 5u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize
        };
        for _ in 0..3000 {
            let mut b = base.clone();
            for _ in 0..1 + next() % 3 {
                let at = next() % b.len();
                b[at] = if next() % 2 == 0 {
                    next() as u8
                } else {
                    b[at] ^ 0x20
                };
            }
            let blob = crate::hostdt::testdt::Blob::new(&b);
            let Ok(fdt) = Fdt::parse(blob.bytes()) else {
                continue;
            };
            let Ok(platform) = Platform::read(&fdt) else {
                continue;
            };
            let free: RangeSet = platform.memory.iter().copied().collect();
            let head = |_: Range| -> Option<&[u8]> { None };
            let _ = read_system(&fdt, &platform, &free, &[], &head, &host.limits);
        }
    }

    #[test]
    fn a_domain_node_nested_below_chosen_is_refused() {
        let nested = format!("\n        domains {{{}        }};\n", DOMU2);
        let host = Host::new(&format!("{DOMU1}{nested}"));

        let errors = host.read().unwrap_err();

        assert_eq!(
            errors,
            [
                "/chosen/domains/domU2: is compatible with \"xen,domain\" but is not a direct \
                 child of /chosen, the only place domains are read from (move it up)"
            ]
        );
    }

    #[test]
    fn two_domain_nodes_with_one_name_are_refused() {
        // dtc refuses this tree unless forced; fdtput and U-Boot's `fdt`
        // write it without a word.
        let second = edit(DOMU2, "domU2 {", "domU1 {");
        let host = Host::new(&format!("{DOMU1}{second}"));
        let blob = dtb_with(&["-f"], &host.dts());

        let errors = host.read_blob(&blob).unwrap_err();

        assert_eq!(
            errors,
            [
                "/chosen/domU1: is a second xen,domain node named \"domU1\" (domain 2; the first \
                 is domain 1): the node name is the domain's name on the console and in \
                 xenstore, so each must be unique"
            ]
        );
    }

    #[test]
    fn no_xen_domain_node_gives_an_empty_system() {
        let host = Host::new("");

        let system = host.read().unwrap();

        assert!(system.domains.is_empty());
        assert!(system.ignored.is_empty());
    }

    #[test]
    fn a_complete_domain_is_read_with_its_modules() {
        let host = Host::new(DOMU1);

        let system = host.read().unwrap();

        assert_eq!(system.domains.len(), 1);
        let d = &system.domains[0];
        assert_eq!(
            (d.path.as_str(), d.name.as_str(), d.domid),
            ("/chosen/domU1", "domU1", 1)
        );
        assert_eq!(d.memory_kib, 131_072);
        assert_eq!(d.memory_bytes(), 128 << 20);
        assert_eq!(d.vcpus, 2);
        assert!(d.vpl011);
        assert_eq!(d.enhanced, Enhanced::NoXenstore);
        assert_eq!(d.kernel.path, "/chosen/domU1/module@48000000");
        assert_eq!(
            d.kernel.range,
            Range::with_size(0x4800_0000, 0x100_0000).unwrap()
        );
        assert_eq!(
            d.kernel.bootargs.as_deref(),
            Some("console=ttyAMA0 earlycon=xenboot")
        );
        let ramdisk = d.ramdisk.as_ref().unwrap();
        assert_eq!(ramdisk.path, "/chosen/domU1/module@4a000000");
        assert_eq!(
            ramdisk.range,
            Range::with_size(0x4a00_0000, 0x80_0000).unwrap()
        );
        assert_eq!(d.device_tree, None);
        assert!(system.ignored.is_empty(), "{:?}", system.ignored);
    }

    #[test]
    fn optional_properties_take_xen_defaults() {
        let dom = edit(DOMU1, "vpl011;", "");
        let dom = edit(&dom, "xen,enhanced = \"no-xenstore\";", "");
        let host = Host::new(&dom);

        let d = &host.read().unwrap().domains[0];

        assert!(!d.vpl011);
        assert_eq!(d.enhanced, Enhanced::Absent);
        assert_eq!(d.nr_spis, host.limits.host_spis);
        assert_eq!(d.max_grant_frames, 64);
        assert_eq!(d.max_maptrack_frames, 1024);
        assert_eq!(d.max_evtchn_port, 1023);
    }

    #[test]
    fn domids_count_from_1_in_tree_order_of_xen_domain_nodes() {
        let host = Host::new(&format!("{DOMU2}{DOMU1}"));

        let system = host.read().unwrap();

        let ids: Vec<(&str, u16)> = system
            .domains
            .iter()
            .map(|d| (d.name.as_str(), d.domid))
            .collect();
        assert_eq!(ids, [("domU2", 1), ("domU1", 2)]);
    }

    #[test]
    fn chosen_children_that_are_not_xen_domain_are_skipped_without_a_domid() {
        let cpupool = r#"
        cpupool0 {
            compatible = "xen,cpupool";
            cpupool-cpus = <&cpu0>;
        };
        "#;
        let host = Host::new(&format!("{cpupool}{DOMU1}"));

        let system = host.read().unwrap();

        assert_eq!(system.domains.len(), 1);
        assert_eq!(system.domains[0].domid, 1);
        assert!(system.ignored.is_empty(), "{:?}", system.ignored);
    }

    #[test]
    fn domid_past_xen_guest_range_names_the_node_and_the_limit() {
        let err = allocate_domid(0x7fef, "/chosen/domU32752").unwrap_err();

        assert_eq!(
            err.to_string(),
            "/chosen/domU32752: would be domain 32752, but guest domain IDs end at 32751 \
             (at most 32751 xen,domain nodes)"
        );
        assert_eq!(allocate_domid(0x7fee, "/chosen/last"), Ok(0x7fef));
    }

    #[test]
    fn memory_beyond_free_ram_lists_each_request_and_what_is_free() {
        let one = edit(DOMU1, "memory = <0 131072>;", "memory = <0 786432>;");
        let two = edit(DOMU2, "memory = <0 262144>;", "memory = <0 524288>;");
        let host = Host::new(&format!("{one}{two}"));

        let errs = host.read().unwrap_err();

        // 1 GiB of RAM less 1 MiB of device tree, 2 MiB of Oxen and 16 + 8 +
        // 16 MiB of modules.
        assert_eq!(
            errs,
            [
                "/chosen: domains ask for more memory than is free: domU1 768 MiB + domU2 512 MiB \
              = 1280 MiB, but 981 MiB of host RAM is free (RAM less Oxen, its device tree, \
              reserved memory and boot modules)"
            ]
        );
    }

    #[test]
    fn memory_budget_sets_the_boot_modules_aside() {
        // 981 MiB is free once the 40 MiB of modules are set aside.
        let fits = edit(DOMU1, "memory = <0 131072>;", "memory = <0 742400>;");
        let over = edit(DOMU1, "memory = <0 131072>;", "memory = <0 742404>;");

        let ok = Host::new(&format!("{fits}{DOMU2}")).read();
        let errs = Host::new(&format!("{over}{DOMU2}")).read().unwrap_err();

        assert!(ok.is_ok(), "{ok:?}");
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].contains("domU1 742404 KiB + domU2 256 MiB = 1004548 KiB, but 981 MiB"),
            "{errs:?}"
        );
    }

    #[test]
    fn reserved_memory_is_not_free_for_domains() {
        let dom = edit(DOMU1, "memory = <0 131072>;", "memory = <0 1007616>;");
        let host = Host::new(&dom);
        let reserved = Host {
            reserved: Some((0x7000_0000, 0x100_0000)),
            ..Host::new(&dom)
        };

        assert!(host.read().is_ok());
        let errs = reserved.read().unwrap_err();

        assert!(
            errs[0].contains("domU1 984 MiB, but 981 MiB of host RAM is free"),
            "{errs:?}"
        );
    }

    #[test]
    fn errors_of_every_domain_are_all_reported() {
        let one = edit(DOMU1, "cpus = <2>;", "");
        let two = edit(DOMU2, "memory = <0 262144>;", "");
        let host = Host::new(&format!("{one}{two}"));

        let errs = host.read().unwrap_err();

        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert!(errs[0].starts_with("/chosen/domU1: cpus is missing"));
        assert!(errs[1].starts_with("/chosen/domU2: memory is missing"));
    }

    #[test]
    fn sizes_are_shown_in_the_largest_exact_unit() {
        assert_eq!(size_kib(2 << 20), "2 GiB");
        assert_eq!(size_kib(1536), "1536 KiB");
        assert_eq!(size_kib(3 << 10), "3 MiB");
        assert_eq!(size_kib(0), "0 KiB");
    }
}
