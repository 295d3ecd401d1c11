//! The boot sequence: from the first Rust instruction on the boot CPU to a
//! running system, and the entry of each secondary CPU.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::{cpu, entry, exception, heap, mem, mmu, psci};
use crate::bootargs::BootArgs;
use crate::check;
use crate::config;
use crate::console;
use crate::console_mux::ConsoleMux;
use crate::drivers::{self, chip};
use crate::frames::FrameAllocator;
use crate::hostdt::{Fdt, Platform, early};
use crate::hv;
use crate::memmap::{Range, RangeSet};
use crate::println;
use crate::subsystem::Registry;

/// What a board port tells core.
pub struct Board {
    /// Shown in the banner.
    pub name: &'static str,
    /// A UART usable before the device tree is read, for messages about a
    /// missing or broken device tree. `None` keeps those silent.
    pub early_uart: Option<EarlyUart>,
}

/// The board's early UART: the kind (a `compatible` one of the linked UART
/// drivers accepts, such as `"arm,pl011"` or `"cdns,uart-r1p12"`) and the
/// address of its registers.
pub struct EarlyUart {
    pub compatible: &'static str,
    pub base: usize,
}

/// Bit `i` set once CPU `i` (its index in `/cpus`) is up.
static ONLINE: AtomicU64 = AtomicU64::new(0);

/// Stops before the heap exists: the reason, then the usual closing line.
fn early_stop(reason: core::fmt::Arguments<'_>) -> ! {
    println!("{reason}");
    stop("fix the device tree; nothing was started")
}

fn stop(reason: &str) -> ! {
    println!("boot stopped: {reason}");
    psci::system_off()
}

/// Prints what a failed check says, then stops.
fn stop_with(s: &check::Stop) -> ! {
    for line in &s.lines {
        println!("{line}");
    }
    stop(&s.reason)
}

/// The boot CPU's path, called from the entry code with the MMU off.
pub fn primary_main(dtb: usize, board: &Board) -> ! {
    let early_uart = board
        .early_uart
        .as_ref()
        .and_then(|e| drivers::start_early(e.compatible, e.base));
    println!(
        "Oxen {} on {} — a dom0less hypervisor speaking Xen {}.{}",
        crate::OXEN_VERSION,
        board.name,
        crate::XEN_VERSION.0,
        crate::XEN_VERSION.1
    );

    // A tree Oxen cannot read is named in one line and the machine powers
    // off, as for any other device-tree error: a halted CPU would look like
    // a hang.
    let blob = match mem::boot_dtb(dtb) {
        Ok(b) => b,
        Err(e) => early_stop(format_args!("the device tree at x0 = {dtb:#x} {e}")),
    };
    let banks = match early::memory_banks(blob) {
        Ok(b) => b,
        Err(e @ (early::EarlyError::Blob(_) | early::EarlyError::NoMemory(_))) => {
            early_stop(format_args!("the device tree at {dtb:#x} {e}"))
        }
        // The others start with the node they name.
        Err(e) => early_stop(format_args!("{e}")),
    };
    let dtb_range = Range::with_size(dtb as u64, blob.len() as u64).unwrap_or_default();
    let work = match heap::place(blob, &banks.ranges[..banks.len], dtb_range) {
        Ok(Some(w)) => w,
        Ok(None) => early_stop(format_args!("the work area was placed twice")),
        Err(e) => early_stop(format_args!("{e}")),
    };
    let tables = match mmu::enable_boot(&banks.ranges[..banks.len], dtb_range) {
        Ok(t) => t,
        Err(e) => early_stop(format_args!(
            "cannot build the hypervisor's page tables: {e}"
        )),
    };
    console::enable_locking();
    if !heap::init() {
        stop("the hypervisor heap could not be set up");
    }
    let ram: Vec<Range> = banks.iter().copied().collect();
    println!(
        "MMU on: {} page-table pages, {} MiB heap and CPU stacks at {work}",
        tables,
        heap::HEAP_SIZE >> 20
    );

    let fdt = match Fdt::parse(blob) {
        Ok(f) => f,
        Err(e) => stop(&alloc::format!("{e}")),
    };
    let platform = match check::read_platform(&fdt) {
        Ok(p) => p,
        Err(s) => stop_with(&s),
    };
    // What physical memory is, for the checks of every later access to it.
    let modules: Vec<Range> = platform.modules.iter().map(|m| m.range).collect();
    mem::register(&ram, &[mmu::image_range(), work, dtb_range], &modules);
    let console_uart = match &platform.console {
        Some(node) => match drivers::bind_console(node) {
            Ok(uart) => {
                if early_uart.map(|e| e.base()) != Some(uart.base()) {
                    if let Some(early) = early_uart {
                        early.flush();
                    }
                    console::set_sink(uart);
                }
                Some(uart)
            }
            Err(e) => stop(&e),
        },
        None => None,
    };
    CONSOLE_UART.call_once(|| console_uart.or(early_uart));

    let args = BootArgs::parse(&platform.bootargs);
    let registry = match Registry::linked() {
        Ok(r) => r,
        Err(e) => stop(&alloc::format!("{e}")),
    };
    report_platform(&platform, &ram, dtb_range);

    let boot_mpidr = cpu::mpidr();
    let Some(boot_idx) = platform.cpus.iter().position(|c| c.mpidr == boot_mpidr) else {
        stop(&alloc::format!(
            "the boot CPU (MPIDR {boot_mpidr:#x}) is not in /cpus"
        ));
    };
    cpu::set_index(boot_idx);

    if let Some(line) = check::ignored_options_line(&check::ignored_options(&args, &registry)) {
        println!("{line}");
    }
    println!("{}", check::subsystems_line(&registry));
    if let Err(s) = check::init_subsystems(&registry, &args) {
        stop_with(&s);
    }

    let mpidrs: Vec<u64> = platform.cpus.iter().map(|c| c.mpidr).collect();
    match drivers::bind_irqchip(&platform.gic, &mpidrs, boot_idx) {
        Ok(_) => {}
        Err(e) => stop(&e),
    }
    GIC_SPIS.store(chip().spis(), Ordering::Relaxed);
    println!("{}", chip().describe());
    println!(
        "drivers: {} for {}, {} for {} (linked: {})",
        chip().name(),
        platform.gic.path,
        console_uart.map_or("none", |u| u.name()),
        platform
            .console
            .as_ref()
            .map_or("no console", |c| c.path.as_str()),
        drivers::linked_names()
    );
    ONLINE.fetch_or(1 << boot_idx, Ordering::AcqRel);
    start_secondaries(&platform, boot_idx);
    let online = ONLINE.load(Ordering::Acquire).count_ones();
    println!("{online} of {} CPUs online", platform.cpus.len());

    let silo = check::xsm_silo(&args).unwrap_or_else(|s| stop_with(&s));
    let scrub = check::boot_scrub(&args).unwrap_or_else(|s| stop_with(&s));
    run_domains(&fdt, platform, &ram, dtb_range, boot_idx, silo, scrub)
}

/// Set once every domain is built; secondary CPUs then start scheduling.
static RUN: AtomicBool = AtomicBool::new(false);

/// Reads the domains from `/chosen`, builds them and runs them: on this CPU
/// and, once released, on every secondary.
fn run_domains(
    fdt: &Fdt<'_>,
    platform: Platform,
    ram: &[Range],
    dtb: Range,
    boot_idx: usize,
    silo: bool,
    scrub_fresh: bool,
) -> ! {
    let image = mmu::image_range();
    let work = heap::work_area();
    let module_head = |r: Range| -> Option<&[u8]> {
        mem::module_bytes(Range {
            start: r.start,
            end: r.end.min(r.start.saturating_add(4096)),
        })
    };
    let machine = check::Machine {
        ram,
        oxen: &[image, work],
        dtb,
        limits: config::Limits {
            max_vcpus: (entry::MAX_CPUS as u32).min(chip().max_guest_vcpus()),
            host_spis: gic_spis(),
        },
    };
    let registry = match Registry::linked() {
        Ok(r) => r,
        Err(e) => stop(&alloc::format!("{e}")),
    };
    // Every domain, what its xen,enhanced asks of this image and the
    // connections between domains, all checked before anything is built.
    let check::Plan {
        system,
        free,
        heap_reserve,
        ..
    } = match check::domains(fdt, &platform, &machine, &module_head, &registry) {
        Ok(p) => {
            for line in p.ignored_lines() {
                println!("{line}");
            }
            p
        }
        Err(s) => stop_with(&s),
    };
    let dups = crate::hypercall::duplicates(&crate::hypercall::HYPERCALLS);
    if let Some((nr, a, b)) = dups.first() {
        stop(&alloc::format!(
            "hypercall {nr} is claimed by both {a} and {b}"
        ));
    }
    if system.domains.is_empty() {
        println!("no xen,domain nodes under /chosen: nothing to run");
        println!("powering off");
        psci::system_off()
    }
    if !heap::add_domain_reserve(heap_reserve) {
        stop(&alloc::format!(
            "the heap's reserve for the domains at {heap_reserve} is not free RAM"
        ));
    }
    println!(
        "heap: {} MiB, and {} MiB at {heap_reserve} for what the {} domain(s) can make Oxen hold at \
         their bounds",
        heap::HEAP_SIZE >> 20,
        heap_reserve.size() >> 20,
        system.domains.len()
    );
    let pa_bits = cpu::pa_bits();
    let ipa_bits = pa_bits.min(40);
    // The early UART stays the console when it is the one the tree names.
    let console = CONSOLE_UART.get().copied().flatten();
    let domids: Vec<u16> = system.domains.iter().map(|d| d.domid).collect();
    let mut mux = ConsoleMux::new(&domids);
    mux.switch();
    let hv = hv::install(hv::Hv {
        nr_pcpus: platform.cpus.len().min(heap::stack_count()),
        pcpu_mpidr: platform.cpus.iter().map(|c| c.mpidr).collect(),
        ipa_bits,
        pa_bits,
        vtcr: crate::stage2::vtcr(ipa_bits, pa_bits),
        midr: crate::arch::guest::reg::midr(),
        platform,
        frames: spin::Mutex::new(FrameAllocator::new(free)),
        domains: spin::Mutex::new(Vec::new()),
        console,
        mux: spin::Mutex::new(mux),
        line: spin::Mutex::new(crate::console_cmd::LineEditor::default()),
        placement: spin::Mutex::new(Vec::new()),
        registry,
        silo,
        scrub_fresh,
        connections: spin::Mutex::new(Vec::new()),
    });
    crate::services::install(&hv::services::SERVICES);
    println!(
        "Xen dom0less mode: {} domain(s); guest IPA {ipa_bits} bits",
        system.domains.len()
    );
    let mut built = Vec::new();
    for cfg in &system.domains {
        match hv::build::build(cfg) {
            Ok(d) => built.push(d),
            Err(e) => {
                println!("{}: cannot build the domain: {e}", cfg.path);
                stop("a domain could not be built; nothing was started")
            }
        }
    }
    let nodes: Vec<_> = system.domains.iter().map(|d| (d.node, d.domid)).collect();
    let mut errors = Vec::new();
    for s in hv.registry.iter() {
        if let Err(e) = s.domains_built(fdt, &nodes) {
            errors.extend(e);
        }
    }
    if !errors.is_empty() {
        println!("the domain configuration has {} error(s):", errors.len());
        for e in &errors {
            println!("  {e}");
        }
        stop("fix the device tree; nothing was started")
    }
    if let (Some(uart), Some(intid)) = (
        hv.console,
        hv.platform.console.as_ref().and_then(|c| c.intid),
    ) {
        uart.enable_rx_interrupt();
        chip().enable_spi(intid, boot_idx, hv.pcpu_mpidr[boot_idx]);
    }
    if let crate::console_mux::Target::Domain(id) = hv.mux.lock().focus() {
        println!("*** Serial input to DOM{id} (type 'CTRL-a' three times to switch input)");
    }
    for d in &built {
        hv::build::start(d);
    }
    RUN.store(true, Ordering::Release);
    cpu::sev();
    for (i, &mpidr) in hv.pcpu_mpidr.iter().enumerate() {
        if i != boot_idx && ONLINE.load(Ordering::Acquire) & (1 << i) != 0 {
            chip().send_sgi(hv::sched::KICK_SGI, i, mpidr);
        }
    }
    enter_scheduler(boot_idx, entry::boot_stack_top())
}

/// Enables this CPU's interrupts for guests and starts scheduling.
fn enter_scheduler(idx: usize, stack_top: usize) -> ! {
    let timer = &hv::hv().platform.timer;
    let gic = chip();
    gic.enable_private(idx, hv::sched::KICK_SGI);
    gic.enable_private(idx, timer.hyp_phys);
    gic.enable_private(idx, timer.virt);
    if let Some(m) = hv::hv().platform.gic.maintenance_intid {
        gic.enable_private(idx, m);
    }
    gic.unmask_priorities();
    hv::sched::init_cpu(stack_top);
    hv::sched::run()
}

fn gic_spis() -> u32 {
    GIC_SPIS.load(Ordering::Relaxed)
}

static GIC_SPIS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// The console UART (the tree's, else the board's early one), once bound.
static CONSOLE_UART: spin::Once<Option<&'static dyn drivers::Uart>> = spin::Once::new();

/// What [`drivers::chip`] does if asked before an interrupt controller is
/// bound: a bug in the boot order, stated, then the machine powers off.
pub fn unbound_irqchip() -> ! {
    stop("the interrupt controller was used before its driver was bound")
}

fn mib(bytes: u64) -> u64 {
    bytes >> 20
}

fn report_platform(p: &Platform, ram: &[Range], dtb: Range) {
    let mut cpus = String::new();
    for (i, c) in p.cpus.iter().enumerate() {
        let _ = write!(
            cpus,
            "{}{} (MPIDR {:#x}, {})",
            if i == 0 { "" } else { ", " },
            c.path,
            c.mpidr,
            c.compatible.as_deref().unwrap_or("?")
        );
    }
    println!("CPUs: {}: {cpus}", p.cpus.len());

    let image = mmu::image_range();
    let work = heap::work_area();
    println!("memory map:");
    for r in ram {
        println!("  RAM        {r} ({} MiB)", mib(r.size()));
    }
    println!("  Oxen       {image} ({} KiB)", image.size() >> 10);
    println!(
        "  Oxen heap  {work} ({} MiB, with the CPU stacks)",
        mib(work.size())
    );
    println!("  device tree {dtb} ({} KiB)", dtb.size().div_ceil(1024));
    for r in &p.reserved {
        println!("  reserved   {r}");
    }
    for m in &p.modules {
        println!("  {:<10} {} {}", m.kind.name(), m.range, m.path);
    }
    let mut free: RangeSet = ram.iter().copied().collect();
    free.remove(image);
    free.remove(work);
    free.remove(dtb);
    for r in &p.reserved {
        free.remove(*r);
    }
    for m in &p.modules {
        free.remove(m.range);
    }
    println!(
        "  free       {} MiB in {} range(s)",
        mib(free.total()),
        free.iter().count()
    );

    println!(
        "timer: hypervisor PPI {}, virtual PPI {}, {} Hz{}",
        p.timer.hyp_phys,
        p.timer.virt,
        cpu::counter_frequency(),
        p.timer
            .clock_frequency
            .map(|f| alloc::format!(" (DT says {f} Hz)"))
            .unwrap_or_default()
    );
    match &p.console {
        Some(u) => println!(
            "console: {} {} at {:#x}{}",
            u.compatible.first().map_or("?", |c| c.as_str()),
            u.path,
            u.base,
            u.intid
                .map(|i| alloc::format!(", interrupt {i}"))
                .unwrap_or_default()
        ),
        None => println!("console: none named by /chosen/stdout-path"),
    }
    let (maj, min) = psci::version();
    println!("PSCI {maj}.{min} through smc ({})", p.psci.path);
}

fn start_secondaries(p: &Platform, boot_idx: usize) {
    let entry_pa = entry::secondary_entry_pa();
    for (i, c) in p.cpus.iter().enumerate() {
        if i == boot_idx {
            continue;
        }
        if i >= heap::stack_count() {
            println!(
                "{} not started: Oxen brings up at most {} CPUs",
                c.path,
                heap::stack_count()
            );
            continue;
        }
        if let Err(e) = psci::cpu_on(c.mpidr, entry_pa, i as u64) {
            println!(
                "{} (MPIDR {:#x}) failed to start: PSCI {}",
                c.path,
                c.mpidr,
                e.describe()
            );
            continue;
        }
        let deadline = cpu::counter() + cpu::counter_frequency();
        while ONLINE.load(Ordering::Acquire) & (1 << i) == 0 && cpu::counter() < deadline {
            core::hint::spin_loop();
        }
        if ONLINE.load(Ordering::Acquire) & (1 << i) == 0 {
            println!(
                "{} (MPIDR {:#x}) did not come online within 1 s",
                c.path, c.mpidr
            );
        }
    }
}

/// A secondary CPU's first Rust code, MMU already on.
pub fn secondary_main(idx: usize) -> ! {
    cpu::set_index(idx);
    chip().init_cpu(idx);
    println!("CPU{idx} online (MPIDR {:#x})", cpu::mpidr());
    ONLINE.fetch_or(1 << idx, Ordering::AcqRel);
    // Wait in WFI for the boot CPU's kick once the domains are built (IRQs
    // stay masked: the kick only wakes this CPU, and is taken as a
    // harmless kick once the scheduler unmasks them). Not WFE: QEMU's
    // multi-threaded TCG treats WFE as a no-op, so a WFE loop spins a host
    // thread flat out against the boot CPU building the domains.
    chip().enable_private(idx, hv::sched::KICK_SGI);
    chip().unmask_priorities();
    while !RUN.load(Ordering::Acquire) {
        cpu::wfi();
    }
    // SAFETY: only the address of this CPU's stack is taken.
    enter_scheduler(idx, entry::stack_top(idx))
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    console::print_fmt_unlocked(format_args!(
        "(oxen) *** PANIC on CPU{}: {}\n",
        cpu::index(),
        info
    ));
    exception::backtrace(0, exception::frame_pointer());
    console::print_fmt_unlocked(format_args!("(oxen) resetting the machine\n"));
    psci::system_reset()
}
