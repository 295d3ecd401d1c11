//! Building a domain from its configuration — RAM at Xen's guest
//! addresses, stage-2 tables, kernel, ramdisk and generated device tree
//! loaded as the arm64 boot protocol and Xen place them — and tearing it
//! down (to free it, or to build it again on reboot).

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::domain::{Domain, DomainMem, HeapTables, Shutdown, Vcpu, VcpuState};
use super::{VcpuRef, hv, sched};
use crate::arch::guest::reg;
use crate::arch::{cpu, mem};
use crate::config::DomainConfig;
use crate::frames::Chunk;
use crate::guest_dt::{self, GuestDtSpec};
use crate::guest_layout::{GUEST_RAM_BANKS, ram_split};
use crate::inject::PSTATE_EL1H_MASKED;
use crate::loader::{self, ImageHeader};
use crate::memmap::Range;
use crate::println;
use crate::stage2::{Budgeted, S2Attrs, S2Mem, Stage2};
use crate::subsystem::DomainSetup;
use crate::vgic::Vgic;
use crate::vpsci;

/// SCTLR_EL1 a vCPU starts with: MMU and caches off, RES1 bits set.
pub const SCTLR_EL1_RESET: u64 = 0x00c5_0078;

const MIB: u64 = 1 << 20;

/// The guest-physical RAM banks of a domain with `bytes` of memory.
pub fn guest_banks(bytes: u64) -> Vec<Range> {
    GUEST_RAM_BANKS
        .iter()
        .zip(ram_split(bytes))
        .filter(|(_, n)| *n > 0)
        .map(|(b, n)| Range {
            start: b.start,
            end: b.start + n,
        })
        .collect()
}

/// Builds (or rebuilds) a domain and makes its boot vCPU runnable.
pub fn build(cfg: &DomainConfig) -> Result<Arc<Domain>, String> {
    let hv = hv();
    let bytes = cfg.memory_kib * 1024;
    let banks = guest_banks(bytes);
    let chunks = hv
        .frames
        .lock()
        .alloc_memory_marked(bytes)
        .ok_or_else(|| format!("not enough free memory for {} MiB", bytes / MIB))?;

    // Map the chunks, in order, over the guest banks.
    // Stage-2 tables within the domain's P2M budget, so that foreign
    // mappings at scattered addresses cannot take the whole heap.
    let mut tables = Budgeted::new(
        HeapTables::default(),
        usize::try_from(cfg.p2m_pages).unwrap_or(usize::MAX),
    );
    let mut s2 = Stage2::new(&mut tables, hv.ipa_bits).map_err(|e| format!("stage-2: {e:?}"))?;
    let mut ram: Vec<(Range, u64)> = Vec::new();
    let mut pieces = chunks.iter().copied();
    let mut cur = pieces.next();
    for bank in &banks {
        let mut ipa = bank.start;
        while ipa < bank.end {
            let Some(Chunk { range: c, fresh }) = cur else {
                return Err(String::from("internal: memory chunks ran out"));
            };
            let n = c.size().min(bank.end - ipa);
            let g = Range {
                start: ipa,
                end: ipa + n,
            };
            s2.map(
                &mut tables,
                g,
                c.start,
                S2Attrs {
                    mem: S2Mem::Normal,
                    write: true,
                    exec: true,
                },
            )
            .map_err(|e| format!("stage-2 map {g}: {e:?}"))?;
            ram.push((g, c.start));
            let chunk = Range {
                start: c.start,
                end: c.start + n,
            };
            // Fresh RAM holds only what was there before Oxen started:
            // zeroed unless `bootscrub=0` says not to, as on Xen. RAM that
            // held a domain's or Oxen's data is always zeroed.
            let usable = if hv.scrub_fresh || !fresh {
                mem::zero_ram(chunk)
            } else {
                mem::is_guest_ram(chunk)
            };
            if !usable {
                return Err(format!("RAM {chunk} is not free RAM"));
            }
            ipa += n;
            cur = if n == c.size() {
                pieces.next()
            } else {
                Some(Chunk {
                    range: Range {
                        start: c.start + n,
                        end: c.end,
                    },
                    fresh,
                })
            };
        }
    }
    // A GICv2 guest's CPU interface is the hardware's virtual one (GICV),
    // mapped where the guest's tree puts its GICC.
    if let Some((gicv, size)) = crate::drivers::chip().guest_cpu_window() {
        let g = Range::with_size(crate::guest_layout::GUEST_GICV2_GICC.start, size)
            .ok_or_else(|| String::from("internal: GICC window"))?;
        s2.map(&mut tables, g, gicv, S2Attrs::MMIO)
            .map_err(|e| format!("stage-2 map of the GIC's virtual CPU interface {g}: {e:?}"))?;
    }
    let vttbr = s2.vttbr(cfg.domid);
    let memory = DomainMem {
        stage2: Some(s2),
        tables,
        ram,
    };

    // What the subsystems make of the domain's xen,enhanced value.
    let granted = crate::enhanced::grant(&cfg.path, cfg.enhanced, &hv.registry)
        .map_err(|e| format!("{e}"))?;
    let setup = DomainSetup {
        domid: cfg.domid,
        path: &cfg.path,
        enhanced: cfg.enhanced,
        vcpus: cfg.vcpus,
        ram: &banks,
        ram_split: ram_split(bytes),
        ipa_bits: hv.ipa_bits,
        granted: &granted,
        max_grant_frames: cfg.max_grant_frames,
        max_maptrack_frames: cfg.max_maptrack_frames,
        max_evtchn_port: cfg.max_evtchn_port,
    };
    for s in hv.registry.iter() {
        s.domain_created(&setup)
            .map_err(|e| format!("subsystem {}: {e}", s.name()))?;
    }
    let hypervisor = crate::enhanced::hypervisor_node(&hv.registry, &setup);

    // The kernel, ramdisk and device tree.
    let kernel = mem::module_bytes(cfg.kernel.range)
        .ok_or_else(|| format!("{}: not a boot module in RAM", cfg.kernel.path))?;
    let header = ImageHeader::parse(kernel).map_err(|e| format!("{}: {e}", cfg.kernel.path))?;
    let initrd_len = cfg.ramdisk.as_ref().map(|r| r.range.size());
    let host_cpu = hv.platform.cpus.first();
    // The host's GIC version, as on Xen.
    let gic = crate::drivers::chip().guest_version();
    let spec = |initrd: Option<Range>| GuestDtSpec {
        vcpus: cfg.vcpus,
        gic,
        cpu_compatible: host_cpu.and_then(|c| c.compatible.as_deref()),
        cpu_clock_frequency: None,
        memory: &banks,
        bootargs: cfg.kernel.bootargs.as_deref(),
        initrd,
        vpl011: cfg.vpl011,
        timer_clock_frequency: hv.platform.timer.clock_frequency,
    };
    // The DT's size does not depend on where the initrd lands.
    let probe = guest_dt::build(
        &spec(initrd_len.map(|n| Range { start: 0, end: n })),
        hypervisor.as_ref(),
    )
    .map_err(|e| format!("guest device tree: {e}"))?;
    let plan = loader::plan(
        &banks,
        &header,
        kernel.len() as u64,
        probe.len() as u64,
        initrd_len,
    )
    .map_err(|e| format!("{e}"))?;
    let dtb = guest_dt::build(&spec(plan.initrd), hypervisor.as_ref())
        .map_err(|e| format!("guest device tree: {e}"))?;
    {
        let m = &memory;
        m.write(plan.kernel.start, kernel)
            .map_err(|a| format!("kernel does not fit at {a:#x}"))?;
        m.write(plan.dtb, &dtb)
            .map_err(|a| format!("device tree does not fit at {a:#x}"))?;
        if let (Some(rd), Some(r)) = (&cfg.ramdisk, plan.initrd) {
            let bytes = mem::module_bytes(rd.range)
                .ok_or_else(|| format!("{}: not a boot module in RAM", rd.path))?;
            m.write(r.start, bytes)
                .map_err(|a| format!("ramdisk does not fit at {a:#x}"))?;
        }
    }

    let vcpus: Vec<Vcpu> = (0..cfg.vcpus as usize)
        .map(|i| {
            Vcpu::new(
                i,
                hv.place(cfg.domid, i),
                vpsci::mpidr_of_vcpu(i),
                if i == 0 {
                    VcpuState::Runnable
                } else {
                    VcpuState::Offline
                },
            )
        })
        .collect();
    {
        let mut ctx = vcpus[0].ctx.lock();
        ctx.frame.pc = plan.entry;
        ctx.frame.x[0] = plan.dtb;
        ctx.frame.pstate = PSTATE_EL1H_MASKED;
        ctx.el1.sctlr = SCTLR_EL1_RESET;
    }
    let mpidrs: Vec<u64> = vcpus.iter().map(|v| v.mpidr).collect();
    let vgic = Vgic::with_version(gic, cfg.vcpus as usize, cfg.nr_spis, &mpidrs);
    let dom = Arc::new(Domain::new(
        cfg.clone(),
        vcpus,
        memory,
        vgic,
        vttbr,
        cpu::counter(),
        granted.clone(),
    ));

    println!(
        "d{} ({}): {} vCPU(s), {} MiB at {}, kernel {} entry {:#x}, device tree at {:#x}{}{}; xen,enhanced {}: {}",
        dom.id,
        dom.name,
        cfg.vcpus,
        bytes / MIB,
        banks
            .iter()
            .map(|b| format!("{:#x}-{:#x}", b.start, b.end))
            .collect::<Vec<_>>()
            .join(" "),
        cfg.kernel.path,
        plan.entry,
        plan.dtb,
        plan.initrd
            .map(|r| format!(", ramdisk at {:#x}", r.start))
            .unwrap_or_default(),
        if cfg.vpl011 { ", vpl011" } else { "" },
        cfg.enhanced,
        if granted.is_empty() {
            String::from("no Xen interfaces")
        } else {
            granted
                .iter()
                .map(|i| i.describe())
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    hv.domains.lock().push(dom.clone());
    for s in hv.registry.iter() {
        if let Err(e) = s.domain_ready(&setup) {
            hv.domains.lock().retain(|d| !Arc::ptr_eq(d, &dom));
            for s in hv.registry.iter() {
                s.domain_destroyed(dom.id);
            }
            return Err(format!("subsystem {}: {e}", s.name()));
        }
    }
    Ok(dom)
}

/// Queues a freshly built domain's boot vCPU.
pub fn start(dom: &Arc<Domain>) {
    dom.vcpus[0].set_state(VcpuState::Offline);
    sched::make_runnable(
        &VcpuRef {
            dom: dom.clone(),
            idx: 0,
        },
        VcpuState::Offline,
    );
}

/// Frees a stopped domain (no vCPU of it is loaded anywhere), then builds
/// it again if it asked to reboot.
pub fn teardown(dom: &Arc<Domain>) {
    let hv = hv();
    let why = dom.dying().unwrap_or(Shutdown::Poweroff);
    hv.domains.lock().retain(|d| !Arc::ptr_eq(d, dom));
    for s in hv.registry.iter() {
        s.domain_destroyed(dom.id);
    }
    {
        // Drop every TLB entry of its VMID before its memory is reused.
        let saved = reg::vttbr();
        reg::set_vttbr(dom.vttbr);
        crate::arch::guest::flush_guest_tlb();
        reg::set_vttbr(saved);
        let mut m = dom.mem.lock();
        let DomainMem {
            stage2,
            tables,
            ram,
        } = &mut *m;
        if let Some(s2) = stage2.take() {
            s2.destroy(tables);
        }
        let mut frames = hv.frames.lock();
        for (g, h) in ram.drain(..) {
            frames.free(Range {
                start: h,
                end: h + g.size(),
            });
        }
    }
    // Flush what the guest left unterminated on its consoles.
    let id = dom.id;
    for out in [&dom.uart_out, &dom.hvc_out] {
        out.lock().flush(&mut |line| {
            crate::console::print_fmt(format_args!(
                "(d{id}) {}\n",
                core::str::from_utf8(line).unwrap_or("")
            ))
        });
    }
    match why {
        Shutdown::Reboot => {
            println!("d{} ({}): rebooting", dom.id, dom.name);
            match build(&dom.config) {
                Ok(new) => start(&new),
                Err(e) => println!("d{} ({}): cannot rebuild: {e}", dom.id, dom.name),
            }
        }
        Shutdown::Poweroff => println!("d{} ({}): powered off", dom.id, dom.name),
        Shutdown::Crash => println!("d{} ({}): crashed", dom.id, dom.name),
    }
    if hv.domains.lock().is_empty() {
        sched::all_domains_gone();
    }
}
