//! `oxen-check`: checks an Oxen system on the host before it is booted.
//!
//! The host device tree goes through the hypervisor's own validation —
//! `oxen_core::hostdt` (the early memory scan, `Fdt`, `Platform`) and
//! `oxen_core::check` (options, subsystems, domains, `xen,enhanced`, every
//! registered subsystem's checks of static event channels and PV devices)
//! — compiled for the host. The verdict is either every error exactly as
//! the boot prints it, or the system as Oxen would build it.

pub mod board;
pub mod report;
pub mod source;
pub mod uboot;

// Linked so that they register their subsystems; which of them count as
// the image is chosen per run.
use oxen_evtchn as _;
use oxen_extended_regions as _;
use oxen_gnttab as _;
use oxen_xenstore as _;

use std::path::{Path, PathBuf};

use oxen_core::bootargs::BootArgs;
use oxen_core::check::{self, Stop};
use oxen_core::config::Limits;
use oxen_core::hostdt::{Fdt, early};
use oxen_core::memmap::Range;
use oxen_core::subsystem::{Interface, Registry};

use report::{Domain, MapEntry, Module, Outcome, Report, System};

/// What to check.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A `.dtb`, a `.dts`, or a config fragment (`configs/*.dts`).
    pub input: PathBuf,
    /// The image's features; `None`: the board's default image.
    pub features: Option<Vec<String>>,
    /// Module contents: the file loaded at each address.
    pub modules: Vec<(u64, PathBuf)>,
    /// A U-Boot boot script that loads the modules and edits the tree.
    pub uboot_script: Option<PathBuf>,
    /// The hypervisor Image, for its header.
    pub image: Option<PathBuf>,
}

/// Bytes of a module the boot reads to check its kind.
const MODULE_HEAD: usize = 4096;

/// Checks the system `opts` names. `Err` only when it cannot be checked at
/// all (a file that cannot be read, dtc missing); a system with errors is
/// an `Ok` report whose outcome says why the boot would stop.
pub fn run(opts: &Options) -> Result<Report, String> {
    let board = board::QEMU_VIRT;
    let linked = Registry::linked().map_err(|e| e.to_string())?.names();
    let features = match &opts.features {
        Some(f) => f.clone(),
        // The board's default Xen interfaces (its drivers are features too).
        None => board
            .default_features()
            .into_iter()
            .filter(|f| linked.contains(&f.as_str()))
            .collect(),
    };
    if let Some(unknown) = features.iter().find(|f| !linked.contains(&f.as_str())) {
        return Err(format!(
            "no feature \"{unknown}\" (expected some of: {})",
            linked.join(", ")
        ));
    }
    let registry = Registry::linked_filtered(|n| features.iter().any(|f| f == n))
        .map_err(|e| e.to_string())?;
    let mut rep = Report {
        input: opts.input.display().to_string(),
        board: board.name.into(),
        features: registry.names().iter().map(|s| s.to_string()).collect(),
        ..Report::default()
    };

    let loaded = source::load(&opts.input, &board)?;
    rep.assumed.extend(loaded.assumed);
    let mut blob = loaded.blob;

    // The boot script: its edits to the tree, and where it puts things.
    let script = match &opts.uboot_script {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let s = uboot::parse(&text, p.parent().unwrap_or(Path::new(".")));
            if !s.overlay.is_empty() {
                let mut dts = source::decompile(&blob)?;
                dts.push_str("\n/* ---- the boot script's fdt commands ---- */\n");
                dts.push_str(&s.overlay);
                blob = source::compile(&dts, Path::new("."))
                    .map_err(|e| format!("{}: applying its fdt commands: {e}", p.display()))?;
            }
            rep.notes
                .extend(s.unread.iter().map(|u| format!("boot script {u}")));
            Some(s)
        }
        None => None,
    };
    let aligned = source::Blob::new(&blob);
    let blob = aligned.bytes();

    // Where the hypervisor and the tree lie.
    let image_bytes = match &opts.image {
        Some(p) => Some(std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?),
        None => script.as_ref().and_then(|s| {
            let (k, _) = s.booti?;
            let l = s.loads.iter().find(|l| l.addr == k)?;
            let dir = opts.uboot_script.as_ref()?.parent()?;
            std::fs::read(dir.join(&l.file)).ok()
        }),
    };
    let header = image_bytes.as_deref().and_then(uboot::image_header);
    let ram_base = early::memory_banks(blob)
        .ok()
        .and_then(|b| b.iter().next().map(|r| r.start))
        .unwrap_or(board.ram_base);
    let (image, image_note) = match (script.as_ref().and_then(|s| s.booti), header) {
        (Some((k, _)), Some((off, size, anywhere))) => {
            let at = uboot::booti_destination(k, ram_base, off, anywhere);
            if at != k {
                rep.script_problems.push(format!(
                    "booti {k:#x}: U-Boot moves the hypervisor to {at:#x} (its header's text_offset \
                     is {off:#x} and it does not declare that it may run anywhere)"
                ));
            }
            (
                Range::with_size(at, size),
                "from the boot script and the Image's header",
            )
        }
        (Some((k, _)), None) => (
            Range::with_size(k, board.image_size),
            "at the boot script's booti address; size assumed",
        ),
        (None, Some((_, size, _))) => (
            Range::with_size(board.image_addr, size),
            "size from the Image's header; address assumed",
        ),
        (None, None) => (
            Range::with_size(board.image_addr, board.image_size),
            "assumed",
        ),
    };
    let image = image.unwrap_or_default();
    if image_note != "from the boot script and the Image's header" {
        rep.assumed.push(format!(
            "Oxen's image at {image} ({image_note}: {}'s loader, {} KiB)",
            board.name,
            image.size() >> 10
        ));
    }
    let dtb_addr = match script.as_ref().and_then(|s| s.booti).and_then(|(_, f)| f) {
        Some(f) => f,
        None => {
            rep.assumed.push(format!(
                "the device tree at {:#x}, where {}'s loader puts it",
                board.dtb_addr, board.name
            ));
            board.dtb_addr
        }
    };
    let dtb = Range::with_size(dtb_addr, blob.len() as u64).unwrap_or_default();
    rep.assumed.push(format!(
        "{} SPIs in the host GIC, {} physical-address bits, boot CPU MPIDR {:#x}, at most {} CPUs \
         (the {} board's hardware)",
        board.gic_spis, board.pa_bits, board.boot_mpidr, board.max_cpus, board.name
    ));

    let mut layout = Layout {
        script: script.as_ref(),
        modules: Vec::new(),
        image: header.map(|_| image),
    };

    // The checks, in the boot's order.
    let banks = match early::memory_banks(blob) {
        Ok(b) => b,
        Err(e) => {
            rep.outcome = Outcome::Stopped(check::early_stop(dtb_addr, &e).all_lines());
            return Ok(finish(rep, &layout));
        }
    };
    let ram: Vec<Range> = banks.iter().copied().collect();
    let fdt = match Fdt::parse(blob) {
        Ok(f) => f,
        Err(e) => return Ok(stopped(rep, Stop::reason(e.to_string()), &layout)),
    };
    let platform = match check::read_platform(&fdt) {
        Ok(p) => p,
        Err(s) => return Ok(stopped(rep, s, &layout)),
    };
    layout.modules = platform.modules.iter().map(|m| m.range).collect();
    // The heap and the stacks: the highest fit in RAM clear of the image,
    // the tree and whatever the tree says is occupied.
    // The heap and a stack per CPU of the tree, as the boot sizes them.
    let cpus = early::cpu_count(blob)
        .unwrap_or(1)
        .min(oxen_core::budget::MAX_CPUS);
    let work_size = oxen_core::budget::work_area_size(cpus);
    let work = match early::work_area(blob, &ram, image, dtb, work_size) {
        Ok(w) => w,
        Err(e) => return Ok(stopped(rep, check::work_area_stop(&e), &layout)),
    };
    rep.assumed.push(format!(
        "the heap and CPU stacks at {work} ({} KiB, placed as the boot places them)",
        work.size() >> 10
    ));
    if !platform.cpus.iter().any(|c| c.mpidr == board.boot_mpidr) {
        return Ok(stopped(
            rep,
            Stop::reason(format!(
                "the boot CPU (MPIDR {:#x}) is not in /cpus",
                board.boot_mpidr
            )),
            &layout,
        ));
    }
    let args = BootArgs::parse(&platform.bootargs);
    let ignored = check::ignored_options(&args, &registry);
    rep.ignored_options = ignored.iter().map(|s| s.to_string()).collect();
    rep.log.extend(check::ignored_options_line(&ignored));
    rep.log.push(check::subsystems_line(&registry));
    if let Err(s) = check::init_subsystems(&registry, &args) {
        return Ok(stopped(rep, s, &layout));
    }
    if let Err(s) = check::xsm_silo(&args) {
        return Ok(stopped(rep, s, &layout));
    }

    let mut heads: Vec<(u64, Vec<u8>)> = opts
        .modules
        .iter()
        .map(|(a, p)| {
            let mut b = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
            b.truncate(MODULE_HEAD);
            Ok((*a, b))
        })
        .collect::<Result<_, String>>()?;
    // What the boot script loads at a module's address is its contents.
    if let (Some(s), Some(dir)) = (&script, opts.uboot_script.as_ref().and_then(|p| p.parent())) {
        for m in &platform.modules {
            if heads.iter().any(|(a, _)| *a == m.range.start) {
                continue;
            }
            if let Some(l) = s.loads.iter().find(|l| l.addr == m.range.start)
                && let Ok(mut b) = std::fs::read(dir.join(&l.file))
            {
                b.truncate(MODULE_HEAD);
                heads.push((m.range.start, b));
            }
        }
    }
    let module_head = |r: Range| -> Option<&[u8]> {
        heads
            .iter()
            .find(|(a, _)| *a == r.start)
            .map(|(_, b)| &b[..b.len().min(r.size() as usize)])
    };
    let unchecked: Vec<String> = platform
        .modules
        .iter()
        .filter(|m| !heads.iter().any(|(a, _)| *a == m.range.start))
        .map(|m| m.path.clone())
        .collect();
    if !unchecked.is_empty() {
        rep.notes.push(format!(
            "module contents were not checked (give --module ADDR=FILE): {}",
            unchecked.join(", ")
        ));
    }
    let oxen = [image, work];
    let machine = check::Machine {
        ram: &ram,
        oxen: &oxen,
        dtb,
        limits: Limits {
            max_vcpus: board.max_cpus,
            host_spis: board.gic_spis,
        },
    };
    let plan = match check::domains(&fdt, &platform, &machine, &module_head, &registry) {
        Ok(p) => p,
        Err(s) => return Ok(stopped(rep, s, &layout)),
    };
    let dups = oxen_core::hypercall::duplicates(&oxen_core::hypercall::HYPERCALLS);
    if let Some((nr, a, b)) = dups.first() {
        let s = Stop::reason(format!("hypercall {nr} is claimed by both {a} and {b}"));
        return Ok(stopped(rep, s, &layout));
    }
    rep.log.extend(plan.ignored_lines());
    if plan.system.domains.is_empty() {
        rep.log
            .push("no xen,domain nodes under /chosen: nothing to run".into());
    }

    // The system as the boot would build it.
    let provided: Vec<Interface> = registry.iter().filter_map(|s| s.provides()).collect();
    let module = |m: &oxen_core::config::ModuleRef| Module {
        path: m.path.clone(),
        range: m.range,
        bootargs: m.bootargs.clone(),
    };
    let domains = plan
        .system
        .domains
        .iter()
        .zip(&plan.granted)
        .map(|(d, g)| Domain {
            domid: d.domid,
            name: d.name.clone(),
            path: d.path.clone(),
            vcpus: d.vcpus,
            memory_kib: d.memory_kib,
            vpl011: d.vpl011,
            enhanced: d.enhanced.name().into(),
            kernel: module(&d.kernel),
            ramdisk: d.ramdisk.as_ref().map(module),
            device_tree: d.device_tree.as_ref().map(module),
            interfaces: g.iter().map(|i| i.describe().to_string()).collect(),
            not_given: provided
                .iter()
                .filter(|i| !g.contains(i))
                .map(|i| i.describe().to_string())
                .collect(),
        })
        .collect();
    let mut memory = Vec::new();
    for r in &ram {
        memory.push(MapEntry::new("RAM", *r, format!("{} MiB", r.size() >> 20)));
    }
    memory.push(MapEntry::new(
        "Oxen",
        image,
        format!("{} KiB", image.size() >> 10),
    ));
    memory.push(MapEntry::new(
        "Oxen heap",
        work,
        format!("{} MiB, with the CPU stacks", work.size() >> 20),
    ));
    if !plan.heap_reserve.is_empty() {
        memory.push(MapEntry::new(
            "heap reserve",
            plan.heap_reserve,
            format!(
                "{} MiB: what the domains can make Oxen hold at their bounds",
                plan.heap_reserve.size() >> 20
            ),
        ));
    }
    memory.push(MapEntry::new(
        "device tree",
        dtb,
        format!("{} KiB", dtb.size().div_ceil(1024)),
    ));
    for r in &platform.reserved {
        memory.push(MapEntry::new("reserved", *r, String::new()));
    }
    for m in &platform.modules {
        memory.push(MapEntry::new(m.kind.name(), m.range, m.path.clone()));
    }
    memory.sort_by_key(|e| (e.range.start, e.what != "RAM"));
    rep.outcome = Outcome::Built(System {
        domains,
        connections: plan.connections.clone(),
        memory,
        free: plan.free.iter().copied().collect(),
        ignored: plan.system.ignored.iter().map(|w| w.to_string()).collect(),
        ipa_bits: board.pa_bits.min(40),
    });
    Ok(finish(rep, &layout))
}

/// What the boot script's layout is checked against.
#[derive(Default)]
struct Layout<'a> {
    script: Option<&'a uboot::Script>,
    /// The tree's boot modules, once the tree is read.
    modules: Vec<Range>,
    /// The hypervisor's range, when its header is known.
    image: Option<Range>,
}

fn stopped(mut rep: Report, s: Stop, layout: &Layout<'_>) -> Report {
    rep.outcome = Outcome::Stopped(s.all_lines());
    finish(rep, layout)
}

/// Adds what the boot script's layout says: files that overlap each other
/// or the hypervisor, and modules of the tree that nothing loads or that
/// are loaded with another size.
fn finish(mut rep: Report, layout: &Layout<'_>) -> Report {
    let Some(s) = layout.script else {
        return rep;
    };
    let modules = &layout.modules;
    rep.script_loads = s.loads.clone();
    for (i, a) in s.loads.iter().enumerate() {
        let Some(ra) = a.range() else {
            rep.notes.push(format!(
                "boot script line {}: {} is not next to the script, so its size (and any overlap \
                 with it) is unknown",
                a.line, a.file
            ));
            continue;
        };
        for b in &s.loads[i + 1..] {
            if let Some(rb) = b.range()
                && ra.overlaps(&rb)
            {
                rep.script_problems.push(format!(
                    "line {}: {} at {ra} overlaps {} at {rb} (line {})",
                    a.line, a.file, b.file, b.line
                ));
            }
        }
    }
    // The hypervisor takes its whole image_size (its BSS too), which may
    // reach past the file the script loads.
    if let Some(image) = layout.image {
        for l in &s.loads {
            if let Some(r) = l.range()
                && r.start != image.start
                && r.overlaps(&image)
            {
                rep.script_problems.push(format!(
                    "line {}: {} at {r} overlaps the hypervisor, which runs at {image} (its \
                     header's image_size covers its BSS too)",
                    l.line, l.file
                ));
            }
        }
    }
    for m in modules {
        match s.loads.iter().find(|l| l.addr == m.start) {
            None => rep.script_problems.push(format!(
                "the module at {m} is not loaded by the script (no load to {:#x})",
                m.start
            )),
            Some(l) => {
                if let Some(size) = l.size.filter(|&z| z != m.size()) {
                    rep.script_problems.push(format!(
                        "line {}: {} is {size} bytes, but the tree's reg for the module at {:#x} \
                         says {} (Xen needs the exact size)",
                        l.line,
                        l.file,
                        m.start,
                        m.size()
                    ));
                }
            }
        }
    }
    rep
}
