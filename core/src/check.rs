//! Validating a whole host device tree for one image before anything is
//! built: the checks the boot runs, in its order, giving the very lines it
//! prints. Pure code, so the host tool `oxen-check` runs the same checks on
//! a developer's machine that the hypervisor runs at EL2.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Display;

use crate::bootargs::BootArgs;
use crate::config::{self, Limits, SystemConfig};
use crate::hostdt::early::EarlyError;
use crate::hostdt::{Fdt, Platform};
use crate::memmap::{Range, RangeSet};
use crate::subsystem::{Connection, DomainCheck, InitContext, Interface, Registry};

/// Command-line options core itself implements.
pub const CORE_OPTIONS: &[&str] = &["bootscrub", "console", "dtuart", "xsm"];

/// The closing reason of a stop for a mistake in the tree.
pub const FIX_THE_TREE: &str = "fix the device tree; nothing was started";

/// Why the boot stops: the lines it prints, then `boot stopped: REASON`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    pub lines: Vec<String>,
    pub reason: String,
}

impl Stop {
    /// `the WHAT has N error(s):`, one indented line per error.
    fn errors<E: Display>(what: &str, errors: &[E], reason: &str) -> Self {
        let mut lines = vec![format!("the {what} has {} error(s):", errors.len())];
        lines.extend(errors.iter().map(|e| format!("  {e}")));
        Self {
            lines,
            reason: reason.into(),
        }
    }

    /// A stop that prints nothing but its closing line.
    pub fn reason(reason: impl Into<String>) -> Self {
        Self {
            lines: Vec::new(),
            reason: reason.into(),
        }
    }

    /// Every line the boot prints, the closing one last.
    pub fn all_lines(&self) -> Vec<String> {
        let mut v = self.lines.clone();
        v.push(format!("boot stopped: {}", self.reason));
        v
    }

    fn after(mut self, first: Vec<String>) -> Self {
        self.lines.splice(0..0, first);
        self
    }
}

/// What the allocation-free early scan's error reads as in the boot log,
/// for a device tree at `dtb` (the boot prints it before it has a heap,
/// in the same words).
pub fn early_stop(dtb: u64, e: &EarlyError<'_>) -> Stop {
    let line = match e {
        EarlyError::Blob(_) | EarlyError::NoMemory(_) => {
            format!("the device tree at {dtb:#x} {e}")
        }
        other => format!("{other}"),
    };
    Stop {
        lines: vec![line],
        reason: FIX_THE_TREE.into(),
    }
}

/// The boot's stop when it finds no RAM for its heap and stacks
/// ([`crate::hostdt::early::work_area`]), before the heap exists.
pub fn work_area_stop(e: &crate::hostdt::early::NoWorkArea) -> Stop {
    Stop {
        lines: vec![format!("{e}")],
        reason: FIX_THE_TREE.into(),
    }
}

/// The host tree's typed facts, or every error in them.
pub fn read_platform(fdt: &Fdt<'_>) -> Result<Platform, Stop> {
    Platform::read(fdt).map_err(|e| Stop::errors("host device tree", &e, FIX_THE_TREE))
}

/// The options of `xen,xen-bootargs` that neither core nor a subsystem of
/// `registry` implements.
pub fn ignored_options<'a>(args: &BootArgs<'a>, registry: &Registry) -> Vec<&'a str> {
    args.unknown(|name| CORE_OPTIONS.contains(&name) || registry.options().any(|o| o == name))
}

/// The boot's line about [`ignored_options`], if there are any.
pub fn ignored_options_line(ignored: &[&str]) -> Option<String> {
    (!ignored.is_empty()).then(|| {
        format!(
            "xen,xen-bootargs: ignoring options Oxen does not implement: {}",
            ignored.join(" ")
        )
    })
}

/// The boot's `subsystems:` line.
pub fn subsystems_line(registry: &Registry) -> String {
    let names = registry.names();
    format!(
        "subsystems: {}",
        if names.is_empty() {
            String::from("none")
        } else {
            names.join(", ")
        }
    )
}

/// Initialises every subsystem of `registry` with the command line.
pub fn init_subsystems(registry: &Registry, args: &BootArgs<'_>) -> Result<(), Stop> {
    let failures = registry.init_all(&InitContext { bootargs: args });
    if failures.is_empty() {
        return Ok(());
    }
    Err(Stop {
        lines: failures
            .iter()
            .map(|(name, e)| format!("  subsystem {name}: {e}"))
            .collect(),
        reason: "a subsystem refused its configuration; nothing was started".into(),
    })
}

/// Xen's XSM choice doubles as the connection policy: SILO (the default,
/// `true`) or dummy (any domain may connect to any other).
pub fn xsm_silo(args: &BootArgs<'_>) -> Result<bool, Stop> {
    match args.get("xsm").and_then(|a| a.value) {
        None | Some("silo") => Ok(true),
        Some("dummy") => Ok(false),
        Some(other) => Err(Stop::reason(format!(
            "/chosen: xen,xen-bootargs option \"xsm={other}\" is not supported (expected \"silo\" or \"dummy\")"
        ))),
    }
}

/// Xen's `bootscrub`: whether RAM no one has used since power-on is zeroed
/// before a domain gets it (`true`, the default, also for Xen's `idle`:
/// Oxen has no idle-time scrubbing, so it scrubs as it builds). RAM that
/// held a domain's or the hypervisor's data is zeroed whatever this says.
pub fn boot_scrub(args: &BootArgs<'_>) -> Result<bool, Stop> {
    match args.boolean("bootscrub") {
        None => Ok(true),
        Some(Ok(b)) => Ok(b),
        Some(Err(e)) if e.raw == "bootscrub=idle" => Ok(true),
        Some(Err(e)) => Err(Stop::reason(format!(
            "/chosen: xen,xen-bootargs option \"{}\" is not valid (expected a boolean or \"idle\")",
            e.raw
        ))),
    }
}

/// What the boot knows of the machine that the host tree does not say.
#[derive(Debug, Clone, Copy)]
pub struct Machine<'a> {
    /// Host RAM, as the early scan found it.
    pub ram: &'a [Range],
    /// What the hypervisor occupies itself (its image, and wherever its
    /// heap and stacks live outside it).
    pub oxen: &'a [Range],
    /// Where the host device tree lies.
    pub dtb: Range,
    pub limits: Limits,
}

/// A system that passed every check: what the boot goes on to build.
#[derive(Debug, Clone)]
pub struct Plan {
    pub system: SystemConfig,
    /// For each domain of `system`, in order, the interfaces it is given.
    pub granted: Vec<Vec<Interface>>,
    /// What the subsystems found the tree connects.
    pub connections: Vec<Connection>,
    /// RAM left for the domains: host RAM less the hypervisor, its device
    /// tree, reserved memory, the boot modules and `heap_reserve`.
    pub free: RangeSet,
    /// Where the hypervisor heap's reserve for the domains goes: RAM for
    /// everything the domains can make Oxen hold at their bounds
    /// (`crate::budget`); empty with no domains.
    pub heap_reserve: Range,
}

impl Plan {
    /// The boot's `ignored:` lines.
    pub fn ignored_lines(&self) -> Vec<String> {
        ignored_lines(&self.system)
    }
}

fn ignored_lines(system: &SystemConfig) -> Vec<String> {
    system
        .ignored
        .iter()
        .map(|w| format!("ignored: {w}"))
        .collect()
}

/// Reads and validates every domain of the tree for the image whose
/// subsystems are `registry`: the `xen,domain` nodes and their modules
/// (`module_head` gives a module's first bytes, or `None` to skip checking
/// its kind), what each `xen,enhanced` asks of the image, and each
/// subsystem's own checks of the connections between domains.
pub fn domains<'m>(
    fdt: &Fdt<'_>,
    platform: &Platform,
    machine: &Machine<'_>,
    module_head: &dyn Fn(Range) -> Option<&'m [u8]>,
    registry: &Registry,
) -> Result<Plan, Stop> {
    let mut free: RangeSet = machine.ram.iter().copied().collect();
    for r in machine.oxen {
        free.remove(*r);
    }
    free.remove(machine.dtb);
    for r in &platform.reserved {
        free.remove(*r);
    }
    let mut hypervisor = machine.oxen.to_vec();
    hypervisor.push(machine.dtb);
    let system = config::read_system(
        fdt,
        platform,
        &free,
        &hypervisor,
        module_head,
        &machine.limits,
    )
    .map_err(|e| Stop::errors("domain configuration", &e, FIX_THE_TREE))?;
    let ignored = ignored_lines(&system);

    // What each domain's xen,enhanced asks of this image.
    let mut granted = Vec::new();
    let mut errors = Vec::new();
    for d in &system.domains {
        match crate::enhanced::grant(&d.path, d.enhanced, registry) {
            Ok(g) => granted.push(g),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(Stop::errors(
            "domain configuration",
            &errors,
            "fix the device tree or build Oxen with the features it needs; nothing was started",
        )
        .after(ignored));
    }

    // Connections between domains, as each subsystem reads them.
    let mut connections = Vec::new();
    if !system.domains.is_empty() {
        let ports: Vec<Vec<u32>> = granted
            .iter()
            .map(|g| {
                registry
                    .iter()
                    .flat_map(|s| s.hypervisor_ports(g).iter().copied())
                    .collect()
            })
            .collect();
        let checks: Vec<DomainCheck<'_>> = system
            .domains
            .iter()
            .zip(&granted)
            .zip(&ports)
            .map(|((d, g), p)| DomainCheck {
                node: d.node,
                domid: d.domid,
                path: &d.path,
                vcpus: d.vcpus,
                granted: g,
                max_evtchn_port: d.max_evtchn_port,
                hypervisor_ports: p,
            })
            .collect();
        let mut errors = Vec::new();
        for s in registry.iter() {
            match s.check_domains(fdt, &checks) {
                Ok(c) => connections.extend(c),
                Err(e) => errors.extend(e),
            }
        }
        if !errors.is_empty() {
            return Err(Stop::errors("domain configuration", &errors, FIX_THE_TREE).after(ignored));
        }
    }

    for m in &platform.modules {
        free.remove(m.range);
    }
    let need: u64 = system
        .domains
        .iter()
        .zip(&granted)
        .map(|(d, g)| crate::budget::domain_budget(d, g, registry))
        .fold(0, u64::saturating_add)
        .next_multiple_of(HEAP_RESERVE_ALIGN);
    let guests: u64 = system.domains.iter().map(|d| d.memory_kib << 10).sum();
    let pieces: Vec<Range> = free.iter().copied().collect();
    let fit = crate::memmap::highest_fit(&pieces, &[], need, HEAP_RESERVE_ALIGN)
        .filter(|_| free.total().saturating_sub(need) >= guests);
    let heap_reserve = match fit {
        _ if need == 0 => Range::default(),
        Some(r) => {
            free.remove(r);
            r
        }
        None => {
            return Err(Stop::reason(alloc::format!(
                "the domains' memory ({} MiB) and what they can make Oxen hold at their bounds \
                 ({} MiB of hypervisor heap, docs/bounds.md) do not fit in the {} MiB of free \
                 RAM; give the host more RAM, or the domains less memory or lower \
                 max_maptrack_frames or max_grant_frames",
                guests >> 20,
                need >> 20,
                free.total() >> 20
            ))
            .after(ignored));
        }
    };
    Ok(Plan {
        system,
        granted,
        connections,
        free,
        heap_reserve,
    })
}

/// The heap reserve's size and alignment step.
pub const HEAP_RESERVE_ALIGN: u64 = 2 << 20;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dtc;

    const TREE: &str = r#"
/dts-v1/;
/ {
    #address-cells = <2>;
    #size-cells = <2>;
    memory@40000000 { device_type = "memory"; reg = <0 0x40000000 0 0x40000000>; };
    cpus {
        #address-cells = <1>; #size-cells = <0>;
        cpu@0 { device_type = "cpu"; compatible = "arm,cortex-a57"; reg = <0>; enable-method = "psci"; };
    };
    psci { compatible = "arm,psci-1.0", "arm,psci-0.2", "arm,psci"; method = "smc"; };
    intc@8000000 {
        compatible = "arm,gic-v3"; interrupt-controller; #interrupt-cells = <3>;
        reg = <0 0x8000000 0 0x10000>, <0 0x80a0000 0 0xf60000>;
        interrupts = <1 9 4>;
    };
    timer { compatible = "arm,armv8-timer"; interrupts = <1 13 4>, <1 14 4>, <1 11 4>, <1 10 4>; };
    chosen {
        xen,xen-bootargs = "console=dtuart sync_console";
        domU1 {
            compatible = "xen,domain";
            #address-cells = <2>; #size-cells = <2>;
            memory = <0 131072>;
            cpus = <1>;
            xen,enhanced = "%ENHANCED%";
            kernel@50000000 {
                compatible = "multiboot,kernel", "multiboot,module";
                reg = <0 0x50000000 0 0x100000>;
            };
        };
    };
};
"#;

    fn check(enhanced: &str, registry: &Registry) -> Result<Plan, Stop> {
        check_with_ram(
            enhanced,
            registry,
            Range::with_size(0x4000_0000, 0x4000_0000).unwrap(),
        )
    }

    /// As [`check`], with the free RAM Oxen finds being `ram` only.
    fn check_with_ram(enhanced: &str, registry: &Registry, ram: Range) -> Result<Plan, Stop> {
        let blob = test_dtc::dtb(&TREE.replace("%ENHANCED%", enhanced));
        let fdt = Fdt::parse(blob.bytes()).unwrap();
        let platform = read_platform(&fdt).unwrap();
        let ram = [ram];
        let machine = Machine {
            ram: &ram,
            oxen: &[Range::with_size(0x4020_0000, 0x80_0000).unwrap()],
            dtb: Range::with_size(0x4800_0000, 0x1000).unwrap(),
            limits: Limits {
                max_vcpus: 8,
                host_spis: 256,
            },
        };
        domains(&fdt, &platform, &machine, &|_| None, registry)
    }

    #[test]
    fn a_valid_system_plans_its_domains_and_leaves_the_modules_out_of_free_ram() {
        let plan = check("disabled", &Registry::linked().unwrap()).unwrap();
        assert_eq!(plan.system.domains.len(), 1);
        assert_eq!(plan.granted, [Vec::<Interface>::new()]);
        let kernel = Range::with_size(0x5000_0000, 0x10_0000).unwrap();
        assert!(!plan.free.iter().any(|r| r.overlaps(&kernel)));
        // 1 GiB less the image (8 MiB), the device tree page, the kernel
        // and the heap reserve, which is the domain's budget rounded up.
        let d = &plan.system.domains[0];
        let budget = crate::budget::domain_budget(d, &[], &Registry::linked().unwrap());
        assert_eq!(
            plan.heap_reserve.size(),
            budget.next_multiple_of(HEAP_RESERVE_ALIGN)
        );
        assert!(!plan.free.iter().any(|r| r.overlaps(&plan.heap_reserve)));
        assert_eq!(
            plan.free.total(),
            (1 << 30) - (8 << 20) - 0x1000 - 0x10_0000 - plan.heap_reserve.size()
        );
    }

    #[test]
    fn domains_whose_bounds_do_not_fit_in_free_ram_stop_the_boot() {
        // RAM that holds the kernel and the domain's 128 MiB with 1 MiB to
        // spare: less than the domain's heap budget (at least 2 MiB).
        let registry = Registry::linked().unwrap();
        let ram = Range::with_size(0x4ff0_0000, 130 << 20).unwrap();
        let e = check_with_ram("disabled", &registry, ram).unwrap_err();
        assert!(
            e.reason.contains("can make Oxen hold"),
            "{}",
            e.all_lines().join("\n")
        );
    }

    #[test]
    fn an_interface_the_image_lacks_stops_with_the_boot_lines() {
        let stop = check("no-xenstore", &Registry::linked().unwrap()).unwrap_err();
        let lines = stop.all_lines();
        assert_eq!(lines[0], "the domain configuration has 1 error(s):");
        assert!(lines[1].starts_with("  /chosen/domU1: xen,enhanced = \"no-xenstore\" needs"));
        assert_eq!(
            lines.last().unwrap(),
            "boot stopped: fix the device tree or build Oxen with the features it needs; nothing was started"
        );
    }

    #[test]
    fn options_nobody_implements_are_named_once() {
        let args = BootArgs::parse("console=dtuart sync_console xsm=dummy");
        let ignored = ignored_options(&args, &Registry::linked().unwrap());
        assert_eq!(ignored, ["sync_console"]);
        assert_eq!(
            ignored_options_line(&ignored).unwrap(),
            "xen,xen-bootargs: ignoring options Oxen does not implement: sync_console"
        );
        assert_eq!(xsm_silo(&args), Ok(false));
        let bad = BootArgs::parse("xsm=flask");
        assert_eq!(
            xsm_silo(&bad).unwrap_err().all_lines(),
            [
                "boot stopped: /chosen: xen,xen-bootargs option \"xsm=flask\" is not supported (expected \"silo\" or \"dummy\")"
            ]
        );
    }

    #[test]
    fn bootscrub_reads_xens_spellings_and_names_a_bad_value() {
        for (line, want) in [
            ("", true),
            ("bootscrub", true),
            ("bootscrub=1", true),
            ("bootscrub=idle", true),
            ("bootscrub=0", false),
            ("bootscrub=off", false),
            ("no-bootscrub", false),
            ("bootscrub=0 bootscrub=idle", true),
        ] {
            assert_eq!(boot_scrub(&BootArgs::parse(line)), Ok(want), "{line}");
        }
        let bad = BootArgs::parse("bootscrub=later");
        assert_eq!(
            boot_scrub(&bad).unwrap_err().all_lines(),
            [
                "boot stopped: /chosen: xen,xen-bootargs option \"bootscrub=later\" is not valid (expected a boolean or \"idle\")"
            ]
        );
        let args = BootArgs::parse("bootscrub=0 conswitch=ax");
        assert_eq!(
            ignored_options(&args, &Registry::linked().unwrap()),
            ["conswitch=ax"]
        );
    }
}
