//! One `xen,domain` node's properties and sub-nodes, boot modules aside.
//!
//! Each property is used, refused with an error, or listed as ignored.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{
    Enhanced, GUEST_MAX_VCPUS, KIB, Limits, MAX_GRANT_FRAMES, MAX_MAPTRACK_FRAMES, MAX_NR_SPIS,
    Report, size_kib,
};
use crate::guest_layout::{GUEST_RAM_BANKS, GUEST_VPL011_SPI};
use crate::hostdt::{DtError, Fdt, NodeId, Prop};

/// Each property as read; `None` where it was in error (already reported).
pub(super) struct Properties {
    pub memory_kib: Option<u64>,
    pub vcpus: Option<u32>,
    pub vpl011: Option<bool>,
    pub nr_spis: Option<u32>,
    pub enhanced: Option<Enhanced>,
    pub max_grant_frames: Option<u32>,
    pub max_maptrack_frames: Option<u32>,
    /// `xen,domain-p2m-mem-mb`: `Some(None)` when absent.
    pub p2m_mem_mb: Option<Option<u32>>,
}

/// Every property of a domain, all valid.
pub(super) struct Complete {
    pub memory_kib: u64,
    pub vcpus: u32,
    pub vpl011: bool,
    pub nr_spis: u32,
    pub enhanced: Enhanced,
    pub max_grant_frames: u32,
    pub max_maptrack_frames: u32,
    pub p2m_mem_mb: Option<u32>,
}

impl Properties {
    /// The properties, if every one of them was valid.
    pub fn complete(&self) -> Option<Complete> {
        Some(Complete {
            memory_kib: self.memory_kib?,
            vcpus: self.vcpus?,
            vpl011: self.vpl011?,
            nr_spis: self.nr_spis?,
            enhanced: self.enhanced?,
            max_grant_frames: self.max_grant_frames?,
            max_maptrack_frames: self.max_maptrack_frames?,
            p2m_mem_mb: self.p2m_mem_mb?,
        })
    }
}

const MEMORY_HINT: &str = "guest RAM in KiB as two cells, e.g. <0 131072> for 128 MiB";
const CPUS_HINT: &str = "the number of vCPUs as one cell, e.g. <2>";
const ENHANCED_VALUES: &str = "\"enabled\", \"no-xenstore\", \"disabled\", \"legacy\" or no value";

/// Properties of a `xen,domain` node that Oxen reads (or refuses) itself.
const HANDLED: &[&str] = &[
    "compatible",
    "#address-cells",
    "#size-cells",
    "memory",
    "cpus",
    "vpl011",
    "nr_spis",
    "xen,enhanced",
    "xen,static-mem",
    "direct-map",
    "max_grant_version",
    "max_grant_frames",
    "max_maptrack_frames",
    "xen,domain-p2m-mem-mb",
    "phandle",
    "linux,phandle",
    "name",
];

/// Xen's domain properties for features Oxen does not have.
const NOT_IMPLEMENTED: &[&str] = &[
    "domain-cpupool",
    "passthrough",
    "capabilities",
    "sve",
    "llc-colors",
    "trap-unmapped-accesses",
    "xen,sci_type",
    "v8r_el1_msa",
];

/// Reads every property of the domain at `node`, reporting errors and what
/// is ignored, and checks its `xen,vcpu` sub-nodes.
pub(super) fn read_properties(
    fdt: &Fdt<'_>,
    node: NodeId,
    path: &str,
    limits: &Limits,
    report: &mut Report,
) -> Properties {
    let errors = &mut report.errors;
    let memory_kib = read_memory(fdt.prop(node, "memory"), path, errors);
    let vcpus = read_cpus(fdt.prop(node, "cpus"), path, limits, errors);
    let vpl011 = read_vpl011(fdt.prop(node, "vpl011"), path, errors);
    let nr_spis = read_nr_spis(fdt.prop(node, "nr_spis"), path, limits, vpl011, errors);
    let enhanced = read_enhanced(fdt.prop(node, "xen,enhanced"), path, errors);
    let max_grant_frames = read_frames(
        fdt.prop(node, "max_grant_frames"),
        path,
        "max_grant_frames",
        1,
        MAX_GRANT_FRAMES,
        errors,
    );
    let max_maptrack_frames = read_frames(
        fdt.prop(node, "max_maptrack_frames"),
        path,
        "max_maptrack_frames",
        0,
        MAX_MAPTRACK_FRAMES,
        errors,
    );
    let p2m_mem_mb = read_p2m_mem_mb(fdt.prop(node, "xen,domain-p2m-mem-mb"), path, errors);
    read_grant_version(fdt.prop(node, "max_grant_version"), path, errors);
    refuse_static_memory(fdt, node, path, errors);
    report_ignored_properties(fdt, node, path, &mut report.ignored);
    read_sub_nodes(fdt, node, vcpus, report);
    Properties {
        memory_kib,
        vcpus,
        vpl011,
        nr_spis,
        enhanced,
        max_grant_frames,
        max_maptrack_frames,
        p2m_mem_mb,
    }
}

/// Two cells as the numbers a person would write, e.g. `<0 131072>`.
fn two_cells(v: u64) -> String {
    format!("<{} {}>", v >> 32, v & 0xffff_ffff)
}

fn read_memory(prop: Option<&Prop<'_>>, path: &str, errors: &mut Vec<DtError>) -> Option<u64> {
    let fail = |errors: &mut Vec<DtError>, m: String| {
        errors.push(DtError::prop(path, "memory", m));
        None
    };
    let Some(p) = prop else {
        return fail(errors, format!("is missing ({MEMORY_HINT})"));
    };
    let Some(kib) = p.u64() else {
        return fail(
            errors,
            format!("= {} is not two cells ({MEMORY_HINT})", p.display()),
        );
    };
    let shown = two_cells(kib);
    if kib == 0 {
        return fail(errors, format!("= {shown} is zero ({MEMORY_HINT})"));
    }
    // Guest RAM is mapped and allocated in 4 KiB pages; Xen does not check
    // and would round in ways nobody asked for.
    if !kib.is_multiple_of(4) {
        return fail(
            errors,
            format!(
                "= {shown} is not a whole number of 4 KiB pages (expected a multiple of 4 KiB)"
            ),
        );
    }
    let bank_kib: u64 = GUEST_RAM_BANKS.iter().map(|b| b.size() / KIB).sum();
    if kib > bank_kib {
        return fail(
            errors,
            format!(
                "= {shown} ({}) is more than Xen's guest RAM banks hold ({})",
                size_kib(kib),
                size_kib(bank_kib)
            ),
        );
    }
    Some(kib)
}

fn read_cpus(
    prop: Option<&Prop<'_>>,
    path: &str,
    limits: &Limits,
    errors: &mut Vec<DtError>,
) -> Option<u32> {
    let fail = |errors: &mut Vec<DtError>, m: String| {
        errors.push(DtError::prop(path, "cpus", m));
        None
    };
    let Some(p) = prop else {
        return fail(errors, format!("is missing ({CPUS_HINT})"));
    };
    let Some(n) = p.u32() else {
        return fail(
            errors,
            format!("= {} is not one cell ({CPUS_HINT})", p.display()),
        );
    };
    let max = limits.max_vcpus.min(GUEST_MAX_VCPUS);
    if n == 0 || n > max {
        return fail(errors, format!("= <{n}> is out of range (1 to {max})"));
    }
    Some(n)
}

fn read_vpl011(prop: Option<&Prop<'_>>, path: &str, errors: &mut Vec<DtError>) -> Option<bool> {
    match prop {
        None => Some(false),
        Some(p) if p.value.is_empty() => Some(true),
        // Xen enables it whatever the value; `vpl011 = <0>` reads as a
        // request to disable it, so a value is refused rather than guessed.
        Some(p) => {
            errors.push(DtError::prop(
                path,
                "vpl011",
                format!(
                    "= {} has a value, but it is a flag (write `vpl011;` for an emulated PL011, \
                     leave it out for none)",
                    p.display()
                ),
            ));
            None
        }
    }
}

fn read_nr_spis(
    prop: Option<&Prop<'_>>,
    path: &str,
    limits: &Limits,
    vpl011: Option<bool>,
    errors: &mut Vec<DtError>,
) -> Option<u32> {
    let vpl011_needs = GUEST_VPL011_SPI - 32 + 1;
    let Some(p) = prop else {
        // As in Xen, the default is raised to cover the vPL011's SPI.
        let host = limits.host_spis.min(MAX_NR_SPIS);
        return Some(if vpl011 == Some(true) {
            host.max(vpl011_needs)
        } else {
            host
        });
    };
    let message = match p.u32() {
        // Xen keeps a value given explicitly and then fails to create the
        // vPL011; saying so here is clearer.
        Some(n) if n < vpl011_needs && vpl011 == Some(true) => format!(
            "= <{n}> leaves no SPI for the vPL011 (INTID {GUEST_VPL011_SPI}); expected at \
             least <{vpl011_needs}> with vpl011"
        ),
        Some(n) if n <= MAX_NR_SPIS => return Some(n),
        Some(n) => format!(
            "= <{n}> is out of range (0 to {MAX_NR_SPIS}: virtual SPIs are INTIDs 32 to {}, \
             whole groups of 32 below the special INTIDs 1020-1023)",
            32 + MAX_NR_SPIS - 1
        ),
        None => format!(
            "= {} is not one cell (the number of virtual SPIs, 0 to {MAX_NR_SPIS})",
            p.display()
        ),
    };
    errors.push(DtError::prop(path, "nr_spis", message));
    None
}

fn read_enhanced(
    prop: Option<&Prop<'_>>,
    path: &str,
    errors: &mut Vec<DtError>,
) -> Option<Enhanced> {
    let Some(p) = prop else {
        return Some(Enhanced::Absent);
    };
    if p.value.is_empty() {
        return Some(Enhanced::Enabled);
    }
    let message = match p.str() {
        Some("enabled") => return Some(Enhanced::Enabled),
        Some("no-xenstore") => return Some(Enhanced::NoXenstore),
        Some("disabled") => return Some(Enhanced::Disabled),
        Some("legacy") => return Some(Enhanced::Legacy),
        // Xen silently turns every other string off, typos included.
        Some(other) => format!("= \"{other}\" is not a known value (expected {ENHANCED_VALUES})"),
        // Xen silently reads a value that is not a string as "enabled".
        None => format!(
            "= {} is not a string (expected {ENHANCED_VALUES})",
            p.display()
        ),
    };
    errors.push(DtError::prop(path, "xen,enhanced", message));
    None
}

/// An optional count of frames: one cell from `min` to `max`, `max` when
/// absent (Xen defaults a domain to the system-wide bound, which Oxen keeps
/// at Xen's default).
fn read_frames(
    prop: Option<&Prop<'_>>,
    path: &str,
    name: &str,
    min: u32,
    max: u32,
    errors: &mut Vec<DtError>,
) -> Option<u32> {
    let Some(p) = prop else {
        return Some(max);
    };
    match p.u32() {
        Some(n) if (min..=max).contains(&n) => Some(n),
        Some(n) => {
            errors.push(DtError::prop(
                path,
                name,
                format!("= <{n}> is out of range ({min} to {max})"),
            ));
            None
        }
        None => {
            errors.push(DtError::prop(
                path,
                name,
                format!("= {} is not one cell ({min} to {max})", p.display()),
            ));
            None
        }
    }
}

/// `xen,domain-p2m-mem-mb`: the MiB of stage-2 tables the domain may use
/// (its own RAM's and those of pages it maps from other domains).
fn read_p2m_mem_mb(
    prop: Option<&Prop<'_>>,
    path: &str,
    errors: &mut Vec<DtError>,
) -> Option<Option<u32>> {
    const HINT: &str =
        "the stage-2 table pool in MiB as one cell, e.g. <4>, or no property for Xen's default";
    let Some(p) = prop else {
        return Some(None);
    };
    let message = match p.u32() {
        Some(0) => format!("= <0> leaves no room for the domain's own RAM ({HINT})"),
        Some(n) => return Some(Some(n)),
        None => format!("= {} is not one cell ({HINT})", p.display()),
    };
    errors.push(DtError::prop(path, "xen,domain-p2m-mem-mb", message));
    None
}

fn read_grant_version(prop: Option<&Prop<'_>>, path: &str, errors: &mut Vec<DtError>) {
    let Some(p) = prop else { return };
    let message = match p.u32() {
        Some(1) => return,
        Some(n) => {
            format!("= <{n}> is not supported: Arm has only grant tables version 1 (expected <1>)")
        }
        None => format!("= {} is not one cell (expected <1>)", p.display()),
    };
    errors.push(DtError::prop(path, "max_grant_version", message));
}

fn refuse_static_memory(fdt: &Fdt<'_>, node: NodeId, path: &str, errors: &mut Vec<DtError>) {
    let static_mem = fdt.has_prop(node, "xen,static-mem");
    if static_mem {
        errors.push(DtError::prop(
            path,
            "xen,static-mem",
            "is not supported: Oxen allocates each domain's memory itself and maps it at \
             Xen's guest addresses (remove it; memory gives the size)",
        ));
    }
    if fdt.has_prop(node, "direct-map") {
        let message = if static_mem {
            "is not supported: Oxen maps guest RAM at Xen's guest addresses, never at the \
             host's (remove it)"
        } else {
            "is not valid without xen,static-mem (as in Xen), and Oxen supports neither: it \
             maps guest RAM at Xen's guest addresses (remove it)"
        };
        errors.push(DtError::prop(path, "direct-map", message));
    }
}

fn report_ignored_properties(fdt: &Fdt<'_>, node: NodeId, path: &str, ignored: &mut Vec<DtError>) {
    for p in &fdt.node(node).props {
        if HANDLED.contains(&p.name) {
            continue;
        }
        let message = if NOT_IMPLEMENTED.contains(&p.name) {
            String::from("is not implemented by Oxen and is ignored")
        } else if p.name == "status" {
            // Xen builds every xen,domain node whatever its status says.
            format!(
                "= {} is ignored: every xen,domain node is built",
                p.display()
            )
        } else {
            String::from("is not a xen,domain property Xen or Oxen knows and is ignored")
        };
        ignored.push(DtError::prop(path, p.name, message));
    }
}

/// Checks `xen,vcpu` sub-nodes and reports sub-nodes Oxen does nothing with.
/// Boot modules are read elsewhere; static event channels and PV network
/// devices (`oxen,vif`) are read by the subsystems that serve them.
fn read_sub_nodes(fdt: &Fdt<'_>, node: NodeId, vcpus: Option<u32>, report: &mut Report) {
    for child in fdt.children(node) {
        let path = fdt.path(child);
        if fdt.is_compatible(child, "multiboot,module")
            || fdt.is_compatible(child, "xen,multiboot-module")
            || fdt.is_compatible(child, "xen,evtchn-v1")
            || fdt.is_compatible(child, "oxen,vif")
        {
            continue;
        }
        if fdt.is_compatible(child, "xen,vcpu") {
            read_vcpu(fdt, child, &path, vcpus, report);
        } else if fdt.is_compatible(child, "xen,domain-shared-memory-v1") {
            report.ignored.push(DtError::node(
                path,
                "(static shared memory) is not implemented by Oxen and is ignored",
            ));
        } else {
            report.ignored.push(DtError::node(
                path,
                "is ignored: its compatible is none of \"multiboot,module\", \"xen,vcpu\", \
                 \"xen,evtchn-v1\", \"xen,domain-shared-memory-v1\", \"oxen,vif\"",
            ));
        }
    }
}

fn read_vcpu(fdt: &Fdt<'_>, node: NodeId, path: &str, vcpus: Option<u32>, report: &mut Report) {
    match (fdt.prop(node, "id"), vcpus) {
        (None, _) => report.errors.push(DtError::prop(
            path,
            "id",
            "is missing (the vCPU this node describes, from 0)",
        )),
        (Some(p), _) if p.u32().is_none() => report.errors.push(DtError::prop(
            path,
            "id",
            format!(
                "= {} is not one cell (the vCPU number, from 0)",
                p.display()
            ),
        )),
        (Some(p), Some(n)) => {
            let id = p.u32().unwrap_or(0);
            if id >= n {
                report.errors.push(DtError::prop(
                    path,
                    "id",
                    format!(
                        "= <{id}> is not a vCPU of this domain (expected 0 to {}, as cpus = <{n}>)",
                        n - 1
                    ),
                ));
            }
        }
        // Without a valid `cpus` there is nothing to compare against; that
        // error is reported already.
        (Some(_), None) => {}
    }
    if fdt.has_prop(node, "hard-affinity") {
        report.ignored.push(DtError::prop(
            path,
            "hard-affinity",
            "is not implemented by Oxen and is ignored",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::testdts::{DOMU1, Host, edit, with_child};
    use super::*;

    fn errors_with(from: &str, to: &str) -> Vec<String> {
        Host::new(&edit(DOMU1, from, to)).read().unwrap_err()
    }

    fn domain_with(from: &str, to: &str) -> super::super::DomainConfig {
        let system = Host::new(&edit(DOMU1, from, to)).read().unwrap();
        system.domains.into_iter().next().unwrap()
    }

    fn ignored_with(from: &str, to: &str) -> Vec<String> {
        let system = Host::new(&edit(DOMU1, from, to)).read().unwrap();
        system.ignored.iter().map(ToString::to_string).collect()
    }

    fn child_errors(child: &str) -> Vec<String> {
        Host::new(&with_child(DOMU1, child)).read().unwrap_err()
    }

    fn child_ignored(child: &str) -> Vec<String> {
        let system = Host::new(&with_child(DOMU1, child)).read().unwrap();
        system.ignored.iter().map(ToString::to_string).collect()
    }

    const MEMORY: &str = "memory = <0 131072>;";
    const CPUS: &str = "cpus = <2>;";
    const ENHANCED: &str = "xen,enhanced = \"no-xenstore\";";

    #[test]
    fn memory_missing_says_what_to_write() {
        assert_eq!(
            errors_with(MEMORY, ""),
            [
                "/chosen/domU1: memory is missing (guest RAM in KiB as two cells, e.g. <0 131072> \
              for 128 MiB)"
            ]
        );
    }

    #[test]
    fn memory_of_one_cell_is_refused_with_its_value() {
        assert_eq!(
            errors_with(MEMORY, "memory = <131072>;"),
            [
                "/chosen/domU1: memory = <0x20000> is not two cells (guest RAM in KiB as two \
              cells, e.g. <0 131072> for 128 MiB)"
            ]
        );
    }

    #[test]
    fn memory_of_zero_is_refused() {
        assert_eq!(
            errors_with(MEMORY, "memory = <0 0>;"),
            [
                "/chosen/domU1: memory = <0 0> is zero (guest RAM in KiB as two cells, e.g. \
              <0 131072> for 128 MiB)"
            ]
        );
    }

    #[test]
    fn memory_that_is_not_whole_pages_is_refused() {
        assert_eq!(
            errors_with(MEMORY, "memory = <0 131073>;"),
            [
                "/chosen/domU1: memory = <0 131073> is not a whole number of 4 KiB pages \
              (expected a multiple of 4 KiB)"
            ]
        );
    }

    #[test]
    fn memory_beyond_the_guest_ram_banks_is_refused() {
        let errs = errors_with(MEMORY, "memory = <0 1069547520>;");

        assert_eq!(
            errs[0],
            "/chosen/domU1: memory = <0 1069547520> (1020 GiB) is more than Xen's guest RAM banks \
             hold (1019 GiB)"
        );
    }

    #[test]
    fn memory_is_read_in_kib() {
        let d = domain_with(MEMORY, "memory = <0 0x40000>;");

        assert_eq!(d.memory_kib, 0x40000);
        assert_eq!(d.memory_bytes(), 256 << 20);
    }

    #[test]
    fn cpus_missing_says_what_to_write() {
        assert_eq!(
            errors_with(CPUS, ""),
            ["/chosen/domU1: cpus is missing (the number of vCPUs as one cell, e.g. <2>)"]
        );
    }

    #[test]
    fn cpus_of_two_cells_is_refused_with_its_value() {
        assert_eq!(
            errors_with(CPUS, "cpus = <0 2>;"),
            [
                "/chosen/domU1: cpus = <0x0 0x2> is not one cell (the number of vCPUs as one \
              cell, e.g. <2>)"
            ]
        );
    }

    #[test]
    fn cpus_zero_is_out_of_range() {
        assert_eq!(
            errors_with(CPUS, "cpus = <0>;"),
            ["/chosen/domU1: cpus = <0> is out of range (1 to 8)"]
        );
    }

    #[test]
    fn cpus_out_of_range_names_the_domain_and_the_limit() {
        assert_eq!(
            errors_with(CPUS, "cpus = <9>;"),
            ["/chosen/domU1: cpus = <9> is out of range (1 to 8)"]
        );
    }

    #[test]
    fn cpus_are_capped_by_the_guest_redistributor_region() {
        let mut host = Host::new(&edit(DOMU1, CPUS, "cpus = <129>;"));
        host.limits.max_vcpus = 256;

        assert_eq!(
            host.read().unwrap_err(),
            ["/chosen/domU1: cpus = <129> is out of range (1 to 128)"]
        );
    }

    #[test]
    fn cpus_up_to_the_limit_are_accepted() {
        assert_eq!(domain_with(CPUS, "cpus = <8>;").vcpus, 8);
    }

    #[test]
    fn vpl011_with_a_value_is_refused() {
        assert_eq!(
            errors_with("vpl011;", "vpl011 = <0>;"),
            [
                "/chosen/domU1: vpl011 = <0x0> has a value, but it is a flag (write `vpl011;` \
              for an emulated PL011, leave it out for none)"
            ]
        );
    }

    #[test]
    fn nr_spis_defaults_to_the_host_gic_spis() {
        let mut host = Host::new(&edit(DOMU1, "vpl011;", ""));
        host.limits.host_spis = 288;

        let d = &host.read().unwrap().domains[0];

        assert_eq!(d.nr_spis, 288);
    }

    #[test]
    fn nr_spis_default_is_capped_at_the_vgic_maximum() {
        let mut host = Host::new(DOMU1);
        host.limits.host_spis = 988;

        assert_eq!(host.read().unwrap().domains[0].nr_spis, 960);
    }

    #[test]
    fn nr_spis_is_read_when_given() {
        assert_eq!(
            domain_with(CPUS, "cpus = <2>; nr_spis = <100>;").nr_spis,
            100
        );
    }

    #[test]
    fn nr_spis_default_is_raised_to_cover_the_vpl011_spi() {
        let mut host = Host::new(DOMU1);
        host.limits.host_spis = 0;
        let mut without = Host::new(&edit(DOMU1, "vpl011;", ""));
        without.limits.host_spis = 0;

        assert_eq!(host.read().unwrap().domains[0].nr_spis, 1);
        assert_eq!(without.read().unwrap().domains[0].nr_spis, 0);
    }

    #[test]
    fn nr_spis_of_zero_is_accepted_without_vpl011() {
        assert_eq!(domain_with("vpl011;", "nr_spis = <0>;").nr_spis, 0);
    }

    #[test]
    fn nr_spis_given_too_small_for_the_vpl011_is_refused() {
        assert_eq!(
            errors_with(CPUS, "cpus = <2>; nr_spis = <0>;"),
            [
                "/chosen/domU1: nr_spis = <0> leaves no SPI for the vPL011 (INTID 32); expected \
              at least <1> with vpl011"
            ]
        );
    }

    #[test]
    fn nr_spis_above_960_is_refused_with_the_range() {
        assert_eq!(
            errors_with(CPUS, "cpus = <2>; nr_spis = <961>;"),
            [
                "/chosen/domU1: nr_spis = <961> is out of range (0 to 960: virtual SPIs are \
              INTIDs 32 to 991, whole groups of 32 below the special INTIDs 1020-1023)"
            ]
        );
    }

    #[test]
    fn nr_spis_of_two_cells_is_refused() {
        assert_eq!(
            errors_with(CPUS, "cpus = <2>; nr_spis = <0 64>;"),
            [
                "/chosen/domU1: nr_spis = <0x0 0x40> is not one cell (the number of virtual \
              SPIs, 0 to 960)"
            ]
        );
    }

    #[test]
    fn xen_enhanced_absent_is_absent() {
        assert_eq!(domain_with(ENHANCED, "").enhanced, Enhanced::Absent);
    }

    #[test]
    fn xen_enhanced_without_a_value_is_enabled() {
        assert_eq!(
            domain_with(ENHANCED, "xen,enhanced;").enhanced,
            Enhanced::Enabled
        );
    }

    #[test]
    fn xen_enhanced_known_strings_map_to_their_variants() {
        for (value, expected) in [
            ("enabled", Enhanced::Enabled),
            ("no-xenstore", Enhanced::NoXenstore),
            ("disabled", Enhanced::Disabled),
            ("legacy", Enhanced::Legacy),
        ] {
            let d = domain_with(ENHANCED, &format!("xen,enhanced = \"{value}\";"));

            assert_eq!(d.enhanced, expected, "{value}");
            assert_eq!(d.enhanced.name(), value);
        }
    }

    #[test]
    fn xen_enhanced_unknown_string_lists_the_accepted_values() {
        assert_eq!(
            errors_with(ENHANCED, "xen,enhanced = \"evtchn\";"),
            [
                "/chosen/domU1: xen,enhanced = \"evtchn\" is not a known value (expected \
              \"enabled\", \"no-xenstore\", \"disabled\", \"legacy\" or no value)"
            ]
        );
    }

    #[test]
    fn xen_enhanced_with_an_underscore_typo_is_refused() {
        assert_eq!(
            errors_with(ENHANCED, "xen,enhanced = \"no_xenstore\";"),
            [
                "/chosen/domU1: xen,enhanced = \"no_xenstore\" is not a known value (expected \
              \"enabled\", \"no-xenstore\", \"disabled\", \"legacy\" or no value)"
            ]
        );
    }

    #[test]
    fn xen_enhanced_that_is_not_a_string_is_refused() {
        assert_eq!(
            errors_with(ENHANCED, "xen,enhanced = <1>;"),
            [
                "/chosen/domU1: xen,enhanced = <0x1> is not a string (expected \"enabled\", \
              \"no-xenstore\", \"disabled\", \"legacy\" or no value)"
            ]
        );
    }

    #[test]
    fn static_mem_is_refused() {
        assert_eq!(
            errors_with(CPUS, "cpus = <2>; xen,static-mem = <0x60000000 0x8000000>;"),
            [
                "/chosen/domU1: xen,static-mem is not supported: Oxen allocates each domain's \
              memory itself and maps it at Xen's guest addresses (remove it; memory gives the \
              size)"
            ]
        );
    }

    #[test]
    fn direct_map_without_static_mem_is_refused_as_in_xen() {
        assert_eq!(
            errors_with(CPUS, "cpus = <2>; direct-map;"),
            [
                "/chosen/domU1: direct-map is not valid without xen,static-mem (as in Xen), and \
              Oxen supports neither: it maps guest RAM at Xen's guest addresses (remove it)"
            ]
        );
    }

    #[test]
    fn direct_map_with_static_mem_refuses_both() {
        let errs = errors_with(
            CPUS,
            "cpus = <2>; xen,static-mem = <0x60000000 0x8000000>; direct-map;",
        );

        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert!(errs[0].starts_with("/chosen/domU1: xen,static-mem is not supported"));
        assert_eq!(
            errs[1],
            "/chosen/domU1: direct-map is not supported: Oxen maps guest RAM at Xen's guest \
             addresses, never at the host's (remove it)"
        );
    }

    #[test]
    fn grant_and_maptrack_frames_are_read_when_given() {
        let d = domain_with(
            CPUS,
            "cpus = <2>; max_grant_frames = <32>; max_maptrack_frames = <0>;",
        );

        assert_eq!((d.max_grant_frames, d.max_maptrack_frames), (32, 0));
    }

    #[test]
    fn max_grant_frames_of_two_cells_is_refused() {
        assert_eq!(
            errors_with(CPUS, "cpus = <2>; max_grant_frames = <0 32>;"),
            ["/chosen/domU1: max_grant_frames = <0x0 0x20> is not one cell (1 to 64)"]
        );
    }

    #[test]
    fn max_grant_frames_above_the_system_limit_is_refused() {
        assert_eq!(
            errors_with(CPUS, "cpus = <2>; max_grant_frames = <65>;"),
            ["/chosen/domU1: max_grant_frames = <65> is out of range (1 to 64)"]
        );
    }

    #[test]
    fn max_grant_frames_of_zero_is_refused() {
        assert_eq!(
            errors_with(CPUS, "cpus = <2>; max_grant_frames = <0>;"),
            ["/chosen/domU1: max_grant_frames = <0> is out of range (1 to 64)"]
        );
    }

    #[test]
    fn max_maptrack_frames_that_is_a_string_is_refused() {
        assert_eq!(
            errors_with(CPUS, "cpus = <2>; max_maptrack_frames = \"many\";"),
            ["/chosen/domU1: max_maptrack_frames = \"many\" is not one cell (0 to 1024)"]
        );
    }

    #[test]
    fn max_maptrack_frames_above_the_system_limit_is_refused() {
        assert_eq!(
            errors_with(CPUS, "cpus = <2>; max_maptrack_frames = <1025>;"),
            ["/chosen/domU1: max_maptrack_frames = <1025> is out of range (0 to 1024)"]
        );
    }

    #[test]
    fn max_grant_version_1_is_accepted_silently() {
        let system = Host::new(&edit(DOMU1, CPUS, "cpus = <2>; max_grant_version = <1>;"))
            .read()
            .unwrap();

        assert_eq!(system.domains.len(), 1);
        assert!(system.ignored.is_empty(), "{:?}", system.ignored);
    }

    #[test]
    fn max_grant_version_2_is_refused_because_arm_has_only_version_1() {
        assert_eq!(
            errors_with(CPUS, "cpus = <2>; max_grant_version = <2>;"),
            [
                "/chosen/domU1: max_grant_version = <2> is not supported: Arm has only grant \
              tables version 1 (expected <1>)"
            ]
        );
    }

    #[test]
    fn max_grant_version_that_is_not_a_cell_is_refused() {
        assert_eq!(
            errors_with(CPUS, "cpus = <2>; max_grant_version = \"1\";"),
            ["/chosen/domU1: max_grant_version = \"1\" is not one cell (expected <1>)"]
        );
    }

    #[test]
    fn the_p2m_pool_defaults_to_xens_size_for_the_domain() {
        // DOMU1: 128 MiB, 2 vCPUs: 4 * (512 + 128 + 128) KiB = 3 MiB.
        let d = domain_with(CPUS, CPUS);
        assert_eq!(d.p2m_pages, 3 * 256);
        assert_eq!(super::super::default_p2m_pages(262_144, 1), 3 * 256);
        assert_eq!(super::super::default_p2m_pages(1 << 20, 4), 9 * 256);
    }

    #[test]
    fn the_p2m_pool_is_taken_from_xen_domain_p2m_mem_mb() {
        let d = domain_with(CPUS, "cpus = <2>; xen,domain-p2m-mem-mb = <8>;");
        assert_eq!(d.p2m_pages, 8 * 256);
    }

    #[test]
    fn a_p2m_pool_of_zero_or_two_cells_is_refused() {
        assert_eq!(
            errors_with(CPUS, "cpus = <2>; xen,domain-p2m-mem-mb = <0>;"),
            [
                "/chosen/domU1: xen,domain-p2m-mem-mb = <0> leaves no room for the domain's own \
                 RAM (the stage-2 table pool in MiB as one cell, e.g. <4>, or no property for \
                 Xen's default)"
            ]
        );
        let e = errors_with(CPUS, "cpus = <2>; xen,domain-p2m-mem-mb = <0 8>;");
        assert!(e[0].contains("is not one cell"), "{e:?}");
    }

    #[test]
    fn properties_xen_knows_but_oxen_lacks_are_ignored_and_listed() {
        let ignored = ignored_with(
            CPUS,
            "cpus = <2>; domain-cpupool = <&cpu0>; passthrough = \"enabled\"; \
             capabilities = <4>; sve = <128>; llc-colors = <0 1>; \
             trap-unmapped-accesses = <0>;",
        );

        let expected: Vec<String> = [
            "domain-cpupool",
            "passthrough",
            "capabilities",
            "sve",
            "llc-colors",
            "trap-unmapped-accesses",
        ]
        .iter()
        .map(|p| format!("/chosen/domU1: {p} is not implemented by Oxen and is ignored"))
        .collect();
        assert_eq!(ignored, expected);
    }

    #[test]
    fn unknown_properties_are_ignored_and_listed_as_possible_typos() {
        assert_eq!(
            ignored_with("vpl011;", "vpl11;"),
            [
                "/chosen/domU1: vpl11 is not a xen,domain property Xen or Oxen knows and is \
              ignored"
            ]
        );
    }

    #[test]
    fn status_is_ignored_because_every_domain_is_built() {
        assert_eq!(
            ignored_with(CPUS, "cpus = <2>; status = \"disabled\";"),
            ["/chosen/domU1: status = \"disabled\" is ignored: every xen,domain node is built"]
        );
    }

    #[test]
    fn vcpu_id_not_below_cpus_is_refused() {
        let vcpu = "vcpu@2 { compatible = \"xen,vcpu\"; id = <2>; };";

        assert_eq!(
            child_errors(vcpu),
            [
                "/chosen/domU1/vcpu@2: id = <2> is not a vCPU of this domain (expected 0 to 1, \
              as cpus = <2>)"
            ]
        );
    }

    #[test]
    fn vcpu_without_id_is_refused() {
        let vcpu = "vcpu { compatible = \"xen,vcpu\"; };";

        assert_eq!(
            child_errors(vcpu),
            ["/chosen/domU1/vcpu: id is missing (the vCPU this node describes, from 0)"]
        );
    }

    #[test]
    fn vcpu_id_that_is_not_one_cell_is_refused() {
        let vcpu = "vcpu { compatible = \"xen,vcpu\"; id = \"0\"; };";

        assert_eq!(
            child_errors(vcpu),
            ["/chosen/domU1/vcpu: id = \"0\" is not one cell (the vCPU number, from 0)"]
        );
    }

    #[test]
    fn vcpu_hard_affinity_is_ignored_and_listed() {
        let vcpu = "vcpu@1 { compatible = \"xen,vcpu\"; id = <1>; \
                    hard-affinity = \"0-1\"; };";

        assert_eq!(
            child_ignored(vcpu),
            ["/chosen/domU1/vcpu@1: hard-affinity is not implemented by Oxen and is ignored"]
        );
    }

    #[test]
    fn static_shared_memory_nodes_are_ignored_and_listed() {
        let shm = "shared-mem@50000000 { \
                   compatible = \"xen,domain-shared-memory-v1\"; xen,shm-id = \"my-shm-1\"; \
                   xen,shared-mem = <0x50000000 0x60000000 0x1000>; };";

        assert_eq!(
            child_ignored(shm),
            [
                "/chosen/domU1/shared-mem@50000000: (static shared memory) is not implemented \
              by Oxen and is ignored"
            ]
        );
    }

    #[test]
    fn sub_nodes_nobody_knows_are_ignored_and_listed() {
        let evtchn = "evtchn { compatible = \"xen,evtchn\"; xen,evtchn = <10 1>; };";

        assert_eq!(
            child_ignored(evtchn),
            [
                "/chosen/domU1/evtchn: is ignored: its compatible is none of \
              \"multiboot,module\", \"xen,vcpu\", \"xen,evtchn-v1\", \
              \"xen,domain-shared-memory-v1\", \"oxen,vif\""
            ]
        );
    }

    #[test]
    fn pv_network_device_nodes_are_left_to_their_reader() {
        let vif = "vif0 { compatible = \"oxen,vif\"; oxen,backend = <1>; };";
        assert!(child_ignored(vif).is_empty());
    }

    #[test]
    fn static_event_channel_nodes_are_left_to_their_reader() {
        let evtchn = "ec: evtchn { compatible = \"xen,evtchn-v1\"; \
                      xen,evtchn = <10 &ec>; };";

        assert!(child_ignored(evtchn).is_empty());
    }

    #[test]
    fn every_property_error_of_a_domain_is_reported() {
        let dom = edit(DOMU1, MEMORY, "memory = <0>;");
        let dom = edit(&dom, CPUS, "cpus = <0>;");
        let dom = edit(&dom, ENHANCED, "xen,enhanced = \"on\";");

        let errs = Host::new(&dom).read().unwrap_err();

        assert_eq!(errs.len(), 3, "{errs:#?}");
    }
}
