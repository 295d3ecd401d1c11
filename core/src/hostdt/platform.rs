//! Typed facts about the machine, read from the host device tree: memory,
//! CPUs, GIC, timer, console UART, PSCI, reserved memory and boot modules.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::fdt::{DtError, Fdt, NodeId};
use crate::bootargs::BootArgs;
use crate::memmap::Range;

/// A CPU from `/cpus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpu {
    pub path: String,
    /// MPIDR affinity bits (the node's `reg`).
    pub mpidr: u64,
    /// `compatible`, copied into guest device trees.
    pub compatible: Option<String>,
}

/// The interrupt controller that the root's `interrupt-parent` names: what
/// its node says, for the driver that binds it by `compatible` (each
/// driver reads its own binding's regions from `regs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gic {
    pub path: String,
    pub node: NodeId,
    /// Every string of `compatible`, most specific first.
    pub compatible: Vec<String>,
    /// `reg`, in order.
    pub regs: Vec<Range>,
    /// `#redistributor-regions`, if present.
    pub redistributor_regions: Option<u32>,
    /// INTID of the virtual-interface maintenance interrupt, if described.
    pub maintenance_intid: Option<u32>,
}

impl Gic {
    /// `compatible`, as the boot log and errors show it.
    pub fn compatible_list(&self) -> String {
        let quoted: Vec<String> = self.compatible.iter().map(|c| format!("\"{c}\"")).collect();
        quoted.join(", ")
    }
}

/// The architected timer's interrupts, as INTIDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    pub path: String,
    pub secure_phys: u32,
    pub nonsecure_phys: u32,
    pub virt: u32,
    pub hyp_phys: u32,
    pub clock_frequency: Option<u32>,
}

/// The console UART (bound by `compatible` to one of the linked UART
/// drivers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uart {
    pub path: String,
    /// Every string of `compatible`, most specific first.
    pub compatible: Vec<String>,
    pub base: u64,
    pub size: u64,
    pub intid: Option<u32>,
}

/// How PSCI firmware is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conduit {
    Smc,
    Hvc,
}

/// The PSCI node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Psci {
    pub path: String,
    pub conduit: Conduit,
}

/// What a boot module holds, from its `compatible`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleKind {
    Kernel,
    Ramdisk,
    DeviceTree,
    XsmPolicy,
    /// Only `"multiboot,module"` and not guessable.
    Unknown,
}

impl ModuleKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Kernel => "kernel",
            Self::Ramdisk => "ramdisk",
            Self::DeviceTree => "device-tree",
            Self::XsmPolicy => "xsm-policy",
            Self::Unknown => "module",
        }
    }
}

/// A boot module under `/chosen` (Xen's multiboot binding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootModule {
    pub node: NodeId,
    pub path: String,
    pub kind: ModuleKind,
    pub range: Range,
    pub bootargs: Option<String>,
    /// The `xen,domain` node this module belongs to, if any.
    pub domain: Option<NodeId>,
}

/// Everything Oxen needs to know about the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub memory: Vec<Range>,
    /// `/memreserve/` entries and `/reserved-memory` regions.
    pub reserved: Vec<Range>,
    pub cpus: Vec<Cpu>,
    pub gic: Gic,
    pub timer: Timer,
    pub console: Option<Uart>,
    pub psci: Psci,
    pub modules: Vec<BootModule>,
    /// `/chosen/xen,xen-bootargs`, or empty.
    pub bootargs: String,
}

/// Decodes a 3-cell GIC interrupt specifier into an INTID.
fn gic_intid(kind: u32, num: u32) -> Option<u32> {
    match kind {
        0 => num.checked_add(32).filter(|&n| n < 1020),
        1 => (num < 16).then(|| num + 16),
        _ => None,
    }
}

/// Reads `/chosen/xen,xen-bootargs` (empty if absent).
pub fn read_bootargs<'dt>(fdt: &Fdt<'dt>) -> Result<&'dt str, DtError> {
    let Some(chosen) = fdt.find("/chosen") else {
        return Ok("");
    };
    match fdt.prop(chosen, "xen,xen-bootargs") {
        None => Ok(""),
        Some(p) => p.str().ok_or_else(|| {
            DtError::prop(
                "/chosen",
                "xen,xen-bootargs",
                format!("= {} is not a string", p.display()),
            )
        }),
    }
}

impl Platform {
    /// Reads the platform, collecting every error.
    pub fn read(fdt: &Fdt<'_>) -> Result<Self, Vec<DtError>> {
        let mut errors = Vec::new();
        let bootargs = read_bootargs(fdt).unwrap_or_else(|e| {
            errors.push(e);
            ""
        });
        let args = BootArgs::parse(bootargs);

        let memory = read_memory(fdt, &mut errors);
        let reserved = read_reserved(fdt, &mut errors);
        let cpus = read_cpus(fdt, &mut errors);
        let gic = read_gic(fdt, &mut errors);
        let timer = read_timer(fdt, &mut errors);
        let console = read_console(fdt, &args, &mut errors);
        let psci = read_psci(fdt, &mut errors);
        let modules = read_modules(fdt, &mut errors);

        match (gic, timer, psci) {
            (Some(gic), Some(timer), Some(psci)) if errors.is_empty() => Ok(Self {
                memory,
                reserved,
                cpus,
                gic,
                timer,
                console,
                psci,
                modules,
                bootargs: bootargs.to_string(),
            }),
            _ => Err(errors),
        }
    }
}

fn read_memory(fdt: &Fdt<'_>, errors: &mut Vec<DtError>) -> Vec<Range> {
    let mut banks = Vec::new();
    for id in fdt.children(fdt.root()) {
        if fdt.prop_str(id, "device_type") != Some("memory") || !fdt.is_enabled(id) {
            continue;
        }
        match fdt.reg(id) {
            Ok(r) => banks.extend(r.into_iter().filter(|r| !r.is_empty())),
            Err(e) => errors.push(e),
        }
    }
    crate::small_sort::sort(&mut banks);
    for pair in banks.windows(2) {
        if pair[0].overlaps(&pair[1]) {
            errors.push(DtError::node(
                "/",
                format!(
                    "memory banks {} and {} overlap (each byte of RAM is described once)",
                    pair[0], pair[1]
                ),
            ));
        }
    }
    if banks.is_empty() && errors.is_empty() {
        errors.push(DtError::node(
            "/",
            "has no memory node (device_type = \"memory\" with a reg)",
        ));
    }
    banks
}

fn read_reserved(fdt: &Fdt<'_>, errors: &mut Vec<DtError>) -> Vec<Range> {
    let mut out: Vec<Range> = fdt.mem_reserve().to_vec();
    if let Some(rm) = fdt.find("/reserved-memory") {
        for child in fdt.children(rm) {
            if !fdt.is_enabled(child) || !fdt.has_prop(child, "reg") {
                // Dynamically placed regions (size/alloc-ranges) are for the OS
                // that owns the tree, not for Oxen.
                continue;
            }
            match fdt.reg(child) {
                Ok(r) => out.extend(r),
                Err(e) => errors.push(e),
            }
        }
    }
    crate::small_sort::sort(&mut out);
    out
}

fn read_cpus(fdt: &Fdt<'_>, errors: &mut Vec<DtError>) -> Vec<Cpu> {
    let Some(cpus) = fdt.find("/cpus") else {
        errors.push(DtError::node("/cpus", "is missing"));
        return Vec::new();
    };
    let ac = fdt.address_cells(cpus);
    let mut out = Vec::new();
    for id in fdt.children(cpus) {
        if fdt.prop_str(id, "device_type") != Some("cpu") || !fdt.is_enabled(id) {
            continue;
        }
        let path = fdt.path(id);
        let mpidr = match (fdt.prop(id, "reg"), ac) {
            (Some(p), 1) if p.cells() == 1 => p.cell(0).map(u64::from),
            (Some(p), 2) if p.cells() == 2 => p.u64(),
            (Some(p), _) => {
                errors.push(DtError::prop(
                    &path,
                    "reg",
                    format!("= {} is not one MPIDR of {ac} cell(s)", p.display()),
                ));
                None
            }
            (None, _) => {
                errors.push(DtError::prop(&path, "reg", "is missing (the CPU's MPIDR)"));
                None
            }
        };
        if let Some(first) = mpidr.and_then(|m| out.iter().find(|c: &&Cpu| c.mpidr == m)) {
            errors.push(DtError::prop(
                &path,
                "reg",
                format!(
                    "= {:#x} is the MPIDR of {} too (each CPU's reg is its own MPIDR)",
                    first.mpidr, first.path
                ),
            ));
        } else if let Some(mpidr) = mpidr {
            out.push(Cpu {
                path,
                mpidr,
                compatible: fdt.prop_str(id, "compatible").map(ToString::to_string),
            });
        }
    }
    if out.is_empty() && fdt.find("/cpus").is_some() {
        errors.push(DtError::node("/cpus", "has no cpu node"));
    }
    out
}

fn find_compatible(fdt: &Fdt<'_>, compat: &[&str]) -> Option<NodeId> {
    fdt.ids()
        .find(|&id| fdt.is_enabled(id) && compat.iter().any(|c| fdt.is_compatible(id, c)))
}

/// The interrupt controller: the node the root's `interrupt-parent` names
/// (every interrupt in the tree is routed through it), or, in a tree
/// without one, the first enabled interrupt controller with three-cell
/// specifiers that has no parent of its own.
fn read_gic(fdt: &Fdt<'_>, errors: &mut Vec<DtError>) -> Option<Gic> {
    let root = fdt.root();
    let parent = fdt.prop_u32(root, "interrupt-parent");
    let named = parent.and_then(|ph| fdt.by_phandle(ph));
    // Without a usable interrupt-parent at the root: the first enabled
    // three-cell interrupt controller that has no parent but itself.
    let found = named.or_else(|| {
        fdt.ids().find(|&id| {
            fdt.is_enabled(id)
                && fdt.prop(id, "interrupt-controller").is_some()
                && fdt.prop_u32(id, "#interrupt-cells") == Some(3)
                && fdt.prop_u32(id, "interrupt-parent").is_none_or(|ph| {
                    // Its own parent (ZynqMP's tree writes that).
                    fdt.by_phandle(ph) == Some(id)
                })
        })
    });
    let Some(id) = found else {
        errors.push(match parent {
            Some(ph) => DtError::prop(
                "/",
                "interrupt-parent",
                format!("= <{ph:#x}> names no node (expected the interrupt controller's phandle)"),
            ),
            None => DtError::node(
                "/",
                "has no interrupt controller (no interrupt-parent, and no node with \
                 interrupt-controller and #interrupt-cells = <3>)",
            ),
        });
        return None;
    };
    let path = fdt.path(id);
    if fdt.prop_u32(id, "#interrupt-cells") != Some(3) {
        errors.push(DtError::prop(
            &path,
            "#interrupt-cells",
            "is not <3>: Oxen reads GIC interrupt specifiers (type, number, flags)",
        ));
        return None;
    }
    let compatible: Vec<String> = fdt
        .prop(id, "compatible")
        .map(|p| p.strings().map(ToString::to_string).collect())
        .unwrap_or_default();
    if compatible.is_empty() {
        errors.push(DtError::prop(&path, "compatible", "is missing"));
        return None;
    }
    let regs = match fdt.reg(id) {
        Ok(r) if !r.is_empty() => r,
        Ok(_) => {
            errors.push(DtError::prop(
                &path,
                "reg",
                "is empty (the GIC's registers are needed)",
            ));
            return None;
        }
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    let maintenance_intid = fdt.prop(id, "interrupts").and_then(|p| {
        (p.cells() == 3)
            .then(|| gic_intid(p.cell(0)?, p.cell(1)?))
            .flatten()
    });
    Some(Gic {
        path,
        node: id,
        compatible,
        regs,
        redistributor_regions: fdt.prop_u32(id, "#redistributor-regions"),
        maintenance_intid,
    })
}

fn read_timer(fdt: &Fdt<'_>, errors: &mut Vec<DtError>) -> Option<Timer> {
    let Some(id) = find_compatible(fdt, &["arm,armv8-timer", "arm,armv7-timer"]) else {
        errors.push(DtError::node(
            "/",
            "has no timer compatible with \"arm,armv8-timer\"",
        ));
        return None;
    };
    let path = fdt.path(id);
    let ppis: Option<Vec<u32>> = fdt.prop(id, "interrupts").and_then(|p| {
        (p.cells() >= 12)
            .then(|| {
                (0..4)
                    .map(|i| gic_intid(p.cell(i * 3)?, p.cell(i * 3 + 1)?))
                    .collect()
            })
            .flatten()
    });
    match ppis {
        Some(v) => Some(Timer {
            path,
            secure_phys: v[0],
            nonsecure_phys: v[1],
            virt: v[2],
            hyp_phys: v[3],
            clock_frequency: fdt.prop_u32(id, "clock-frequency"),
        }),
        None => {
            let shown = fdt.prop(id, "interrupts").map_or_else(
                || "is missing".to_string(),
                |p| format!("= {}", p.display()),
            );
            errors.push(DtError::prop(
                path,
                "interrupts",
                format!("{shown}; expected four 3-cell PPI specifiers (secure, non-secure, virtual, hypervisor)"),
            ));
            None
        }
    }
}

fn read_console(fdt: &Fdt<'_>, args: &BootArgs<'_>, errors: &mut Vec<DtError>) -> Option<Uart> {
    // Xen's `dtuart=` overrides `/chosen/stdout-path`; both may carry
    // `:options` after the path or alias.
    let (source, spec) = match args.get("dtuart").and_then(|a| a.value) {
        Some(v) => ("xen,xen-bootargs dtuart=", Some(v)),
        None => (
            "stdout-path",
            fdt.find("/chosen")
                .and_then(|c| fdt.prop_str(c, "stdout-path")),
        ),
    };
    let spec = spec?;
    let target = spec.split(':').next().unwrap_or(spec);
    let Some(id) = fdt.resolve(target) else {
        errors.push(DtError::prop(
            "/chosen",
            source,
            format!("= \"{spec}\" names no node (expected a path or an alias)"),
        ));
        return None;
    };
    let path = fdt.path(id);
    let compatible: Vec<String> = fdt
        .prop(id, "compatible")
        .map(|p| p.strings().map(ToString::to_string).collect())
        .unwrap_or_default();
    if compatible.is_empty() {
        errors.push(DtError::prop(
            &path,
            "compatible",
            "is missing (the console's driver is chosen by it)",
        ));
        return None;
    }
    let reg = match fdt.reg(id) {
        Ok(r) => r[0],
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    let intid = fdt.prop(id, "interrupts").and_then(|p| {
        (p.cells() == 3)
            .then(|| gic_intid(p.cell(0)?, p.cell(1)?))
            .flatten()
    });
    Some(Uart {
        path,
        compatible,
        base: reg.start,
        size: reg.size(),
        intid,
    })
}

fn read_psci(fdt: &Fdt<'_>, errors: &mut Vec<DtError>) -> Option<Psci> {
    let Some(id) = find_compatible(fdt, &["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]) else {
        errors.push(DtError::node(
            "/",
            "has no psci node (compatible \"arm,psci-0.2\" or later); Oxen uses PSCI to start CPUs and power off",
        ));
        return None;
    };
    let path = fdt.path(id);
    match fdt.prop_str(id, "method") {
        Some("smc") => Some(Psci {
            path,
            conduit: Conduit::Smc,
        }),
        Some("hvc") => {
            errors.push(DtError::prop(
                path,
                "method",
                "= \"hvc\" cannot reach firmware from EL2, where Oxen runs (expected \"smc\")",
            ));
            None
        }
        other => {
            errors.push(DtError::prop(
                path,
                "method",
                format!("= {other:?} is not a PSCI conduit (expected \"smc\")"),
            ));
            None
        }
    }
}

fn module_kind(fdt: &Fdt<'_>, id: NodeId) -> ModuleKind {
    for (compat, kind) in [
        ("multiboot,kernel", ModuleKind::Kernel),
        ("xen,linux-zimage", ModuleKind::Kernel),
        ("multiboot,ramdisk", ModuleKind::Ramdisk),
        ("xen,linux-initrd", ModuleKind::Ramdisk),
        ("multiboot,device-tree", ModuleKind::DeviceTree),
        ("xen,xsm-policy", ModuleKind::XsmPolicy),
    ] {
        if fdt.is_compatible(id, compat) {
            return kind;
        }
    }
    ModuleKind::Unknown
}

/// The `compatible` strings that say what a boot module holds.
const MODULE_KINDS: &[&str] = &[
    "multiboot,kernel",
    "xen,linux-zimage",
    "multiboot,ramdisk",
    "xen,linux-initrd",
    "multiboot,device-tree",
    "xen,xsm-policy",
];

/// A boot module's `compatible` that names a kind nobody knows (a typo
/// would otherwise make Xen's bare-module guess), or that names a kind but
/// lacks `"multiboot,module"` (so the module would be silently skipped).
fn module_compatible_problem(
    fdt: &Fdt<'_>,
    id: NodeId,
    path: &str,
    is_module: bool,
) -> Option<DtError> {
    let p = fdt.prop(id, "compatible")?;
    let mistyped = p.strings().find(|s| {
        let multiboot = s.starts_with("multiboot,") && *s != "multiboot,module";
        let xen = s.starts_with("xen,linux-") || s.starts_with("xen,xsm");
        (multiboot || xen) && !MODULE_KINDS.contains(s)
    });
    let accepted = "\"multiboot,kernel\", \"multiboot,ramdisk\" or \"multiboot,device-tree\" \
                    (or Xen's older \"xen,linux-zimage\", \"xen,linux-initrd\", \
                    \"xen,xsm-policy\")";
    if let Some(bad) = mistyped {
        return Some(DtError::prop(
            path,
            "compatible",
            format!(
                "= {} has \"{bad}\", which is no boot-module kind (expected {accepted}, then \
                 \"multiboot,module\")",
                p.display()
            ),
        ));
    }
    let kind = p.strings().find(|s| MODULE_KINDS.contains(s))?;
    (!is_module).then(|| {
        DtError::prop(
            path,
            "compatible",
            format!(
                "= {} lacks \"multiboot,module\", so it is no boot module (write compatible = \
                 \"{kind}\", \"multiboot,module\")",
                p.display()
            ),
        )
    })
}

fn read_modules(fdt: &Fdt<'_>, errors: &mut Vec<DtError>) -> Vec<BootModule> {
    let Some(chosen) = fdt.find("/chosen") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    // Xen guesses the kind of a bare "multiboot,module" with one counter for
    // the whole tree: the first is a kernel, the second a ramdisk.
    let mut unknown_seen = 0;
    for id in fdt.ids() {
        let in_chosen = {
            let mut cur = Some(id);
            let mut found = false;
            while let Some(c) = cur {
                if c == chosen {
                    found = true;
                    break;
                }
                cur = fdt.node(c).parent;
            }
            found && id != chosen
        };
        if !in_chosen || fdt.depth(id) > 3 {
            continue;
        }
        let is_module = fdt.is_compatible(id, "multiboot,module")
            || fdt.is_compatible(id, "xen,multiboot-module");
        let path = fdt.path(id);
        if let Some(e) = module_compatible_problem(fdt, id, &path, is_module) {
            errors.push(e);
            continue;
        }
        if !is_module {
            continue;
        }
        let mut kind = module_kind(fdt, id);
        if kind == ModuleKind::Unknown {
            kind = match unknown_seen {
                0 => ModuleKind::Kernel,
                1 => ModuleKind::Ramdisk,
                _ => ModuleKind::Unknown,
            };
            unknown_seen += 1;
        }
        let parent = fdt.node(id).parent;
        let range = match fdt.reg(id) {
            Ok(r) if r.len() == 1 && !r[0].is_empty() => r[0],
            Ok(r) => {
                errors.push(DtError::prop(
                    &path,
                    "reg",
                    format!(
                        "has {} non-empty range(s); a boot module needs exactly one{}",
                        r.iter().filter(|r| !r.is_empty()).count(),
                        parent
                            .filter(|&p| fdt.size_cells(p) == 0)
                            .map(|p| format!(
                                " ({} has #size-cells = <0>, so no size can be written; \
                                 expected <1> or <2>)",
                                fdt.path(p)
                            ))
                            .unwrap_or_default()
                    ),
                ));
                continue;
            }
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let domain = parent.filter(|&p| fdt.is_compatible(p, "xen,domain"));
        let bootargs = match fdt.prop(id, "bootargs") {
            None => None,
            Some(p) => match p.str() {
                Some(s) => Some(s.to_string()),
                None => {
                    errors.push(DtError::prop(
                        &path,
                        "bootargs",
                        format!("= {} is not a string", p.display()),
                    ));
                    None
                }
            },
        };
        out.push(BootModule {
            node: id,
            path,
            kind,
            range,
            bootargs,
            domain,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hostdt::testdt::Virt;

    fn read(v: &Virt) -> Result<Platform, Vec<String>> {
        let blob = v.build();
        let fdt = Fdt::parse(blob.bytes()).unwrap();
        Platform::read(&fdt).map_err(|e| e.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn qemu_virt_platform_is_read_completely() {
        let p = read(&Virt::default()).unwrap();
        assert_eq!(
            p.memory,
            [Range {
                start: 0x4000_0000,
                end: 0x8000_0000
            }]
        );
        assert_eq!(p.cpus.len(), 2);
        assert_eq!(p.cpus[1].mpidr, 1);
        assert_eq!(p.cpus[0].compatible.as_deref(), Some("arm,cortex-a57"));
        assert_eq!(p.gic.path, "/intc@8000000");
        assert_eq!(p.gic.compatible, ["arm,gic-v3"]);
        assert_eq!(
            p.gic.regs,
            [
                Range {
                    start: 0x0800_0000,
                    end: 0x0801_0000
                },
                Range {
                    start: 0x080a_0000,
                    end: 0x0900_0000
                }
            ]
        );
        assert_eq!(p.gic.redistributor_regions, Some(1));
        assert_eq!(p.gic.maintenance_intid, Some(25));
        assert_eq!(
            (
                p.timer.secure_phys,
                p.timer.nonsecure_phys,
                p.timer.virt,
                p.timer.hyp_phys
            ),
            (29, 30, 27, 26)
        );
        let uart = p.console.unwrap();
        assert_eq!(
            (uart.base, uart.size, uart.intid),
            (0x0900_0000, 0x1000, Some(33))
        );
        assert_eq!(p.psci.conduit, Conduit::Smc);
        assert!(p.modules.is_empty());
    }

    #[test]
    fn stdout_path_may_be_an_alias_with_options() {
        let v = Virt {
            stdout_path: Some("serial0:115200n8".into()),
            ..Virt::default()
        };
        assert_eq!(read(&v).unwrap().console.unwrap().path, "/pl011@9000000");
    }

    #[test]
    fn dtuart_option_overrides_stdout_path() {
        let v = Virt {
            stdout_path: Some("/nonexistent".into()),
            xen_bootargs: Some("console=dtuart dtuart=/pl011@9000000 bootscrub=0".into()),
            ..Virt::default()
        };
        let p = read(&v).unwrap();
        assert_eq!(p.console.unwrap().base, 0x0900_0000);
        assert_eq!(
            p.bootargs,
            "console=dtuart dtuart=/pl011@9000000 bootscrub=0"
        );
    }

    #[test]
    fn console_naming_nothing_is_an_error_with_the_value() {
        let v = Virt {
            stdout_path: Some("/serial@1234".into()),
            ..Virt::default()
        };
        let errs = read(&v).unwrap_err();
        assert_eq!(
            errs,
            ["/chosen: stdout-path = \"/serial@1234\" names no node (expected a path or an alias)"]
        );
    }

    #[test]
    fn any_console_compatible_is_read_for_the_drivers_to_bind() {
        let v = Virt {
            uart_compatible: "cdns,uart-r1p12".into(),
            ..Virt::default()
        };
        assert_eq!(
            read(&v).unwrap().console.unwrap().compatible,
            ["cdns,uart-r1p12", "arm,primecell"]
        );
    }

    #[test]
    fn gic_is_found_through_the_root_interrupt_parent_whatever_its_version() {
        let v = Virt {
            gic_compatible: "arm,cortex-a15-gic".into(),
            ..Virt::default()
        };
        let p = read(&v).unwrap();
        assert_eq!(p.gic.compatible, ["arm,cortex-a15-gic"]);
        assert_eq!(p.gic.maintenance_intid, Some(25));
    }

    #[test]
    fn hvc_psci_conduit_is_refused_at_el2() {
        let v = Virt {
            psci_method: Some("hvc".into()),
            ..Virt::default()
        };
        let errs = read(&v).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("/psci: method = \"hvc\" cannot reach firmware from EL2"));
    }

    #[test]
    fn every_error_is_reported_not_just_the_first() {
        let v = Virt {
            psci_method: None,
            stdout_path: Some("/nowhere".into()),
            memory: Vec::new(),
            ..Virt::default()
        };
        let errs = read(&v).unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:#?}");
        assert!(errs.iter().any(|e| e.contains("no memory node")));
        assert!(errs.iter().any(|e| e.contains("names no node")));
        assert!(errs.iter().any(|e| e.contains("no psci node")));
    }

    #[test]
    fn reserved_memory_and_memreserve_are_both_collected() {
        let v = Virt {
            mem_reserve: vec![(0x7000_0000, 0x1000)],
            reserved_memory: vec![(0x7e00_0000, 0x20_0000)],
            ..Virt::default()
        };
        assert_eq!(
            read(&v).unwrap().reserved,
            [
                Range {
                    start: 0x7000_0000,
                    end: 0x7000_1000
                },
                Range {
                    start: 0x7e00_0000,
                    end: 0x7e20_0000
                }
            ]
        );
    }

    #[test]
    fn boot_modules_get_kind_range_bootargs_and_no_domain_at_chosen_level() {
        let v = Virt {
            modules: vec![
                (
                    "module@50000000".into(),
                    vec!["multiboot,kernel".into(), "multiboot,module".into()],
                    (0x5000_0000, 0x10_0000),
                    Some("console=ttyAMA0".into()),
                ),
                (
                    "module@52000000".into(),
                    vec!["multiboot,module".into()],
                    (0x5200_0000, 0x1000),
                    None,
                ),
                (
                    "module@53000000".into(),
                    vec!["multiboot,module".into()],
                    (0x5300_0000, 0x1000),
                    None,
                ),
            ],
            ..Virt::default()
        };
        let p = read(&v).unwrap();
        let kinds: Vec<_> = p.modules.iter().map(|m| m.kind).collect();
        // An explicit kind does not advance Xen's guessing counter.
        assert_eq!(
            kinds,
            [ModuleKind::Kernel, ModuleKind::Kernel, ModuleKind::Ramdisk]
        );
        assert_eq!(
            p.modules[0].range,
            Range {
                start: 0x5000_0000,
                end: 0x5010_0000
            }
        );
        assert_eq!(p.modules[0].bootargs.as_deref(), Some("console=ttyAMA0"));
        assert_eq!(p.modules[0].domain, None);
    }

    #[test]
    fn parse_rejects_misaligned_and_truncated_blobs() {
        let blob = Virt::default().build();
        let bytes = blob.bytes();
        let mut shifted = vec![0u8; bytes.len() + 4];
        let off = (4 - shifted.as_ptr() as usize % 4) % 4 + 1;
        shifted[off..off + bytes.len() - 4].copy_from_slice(&bytes[..bytes.len() - 4]);
        assert!(matches!(
            Fdt::parse(&shifted[off..]),
            Err(crate::hostdt::FdtError::Misaligned(_))
        ));
        assert!(Fdt::parse(&bytes[..bytes.len() - 8]).is_err());
        assert!(Fdt::parse(&bytes[..16]).is_err());
    }

    #[test]
    fn a_ppi_number_near_u32_max_is_refused_not_overflowed() {
        assert_eq!(gic_intid(1, u32::MAX), None);
        assert_eq!(gic_intid(0, u32::MAX), None);
        assert_eq!(gic_intid(1, 15), Some(31));
    }

    #[test]
    fn overlapping_memory_banks_are_refused() {
        let v = Virt {
            memory: vec![(0x4000_0000, 0x4000_0000), (0x6000_0000, 0x4000_0000)],
            ..Virt::default()
        };

        let errors = read(&v).unwrap_err();

        assert_eq!(
            errors,
            [
                "/: memory banks 0x0040000000-0x0080000000 and 0x0060000000-0x00a0000000 overlap \
                 (each byte of RAM is described once)"
            ]
        );
    }

    #[test]
    fn two_cpus_with_one_mpidr_are_refused() {
        use crate::config::testdts::{BASE, dtb, edit};
        let dts = BASE.replace("@RESERVED@", "").replace("@CHOSEN@", "");
        let dts = edit(&dts, "reg = <1>;", "reg = <0>;");
        let blob = dtb(&dts);
        let fdt = Fdt::parse(blob.bytes()).unwrap();

        let errors: Vec<String> = Platform::read(&fdt)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();

        assert_eq!(
            errors,
            [
                "/cpus/cpu@1: reg = 0x0 is the MPIDR of /cpus/cpu@0 too (each CPU's reg is its own MPIDR)"
            ]
        );
    }

    #[test]
    fn paths_and_lookup_by_base_name() {
        let blob = Virt::default().build();
        let fdt = Fdt::parse(blob.bytes()).unwrap();
        let uart = fdt.find("/pl011").unwrap();
        assert_eq!(fdt.path(uart), "/pl011@9000000");
        assert_eq!(
            fdt.find("/cpus/cpu@1").map(|id| fdt.path(id)).as_deref(),
            Some("/cpus/cpu@1")
        );
        assert_eq!(fdt.find("/cpus/cpu"), None, "ambiguous base name");
    }
}
