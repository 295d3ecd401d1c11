//! Test-only builder for host device trees shaped like QEMU's `virt`
//! machine, so each test states just what it changes.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use vm_fdt::{FdtReserveEntry, FdtWriter};

pub use crate::test_dtc::Blob;

/// A boot module node: (name, compatible list, reg, bootargs).
pub type Module = (String, Vec<String>, (u64, u64), Option<String>);

/// Knobs for the generated tree; the defaults look like
/// `qemu-system-aarch64 -M virt,virtualization=on,gic-version=3 -smp 2 -m 1G`.
#[derive(Clone)]
pub struct Virt {
    pub cpus: u32,
    pub memory: Vec<(u64, u64)>,
    pub stdout_path: Option<String>,
    pub psci_method: Option<String>,
    pub gic_compatible: String,
    pub xen_bootargs: Option<String>,
    pub mem_reserve: Vec<(u64, u64)>,
    pub reserved_memory: Vec<(u64, u64)>,
    /// Extra nodes under `/chosen`.
    pub modules: Vec<Module>,
    pub uart_compatible: String,
}

impl Default for Virt {
    fn default() -> Self {
        Self {
            cpus: 2,
            memory: alloc::vec![(0x4000_0000, 0x4000_0000)],
            stdout_path: Some("/pl011@9000000".into()),
            psci_method: Some("smc".into()),
            gic_compatible: "arm,gic-v3".into(),
            xen_bootargs: None,
            mem_reserve: Vec::new(),
            reserved_memory: Vec::new(),
            modules: Vec::new(),
            uart_compatible: "arm,pl011".into(),
        }
    }
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

impl Virt {
    pub fn build(&self) -> Blob {
        let resv: Vec<FdtReserveEntry> = self
            .mem_reserve
            .iter()
            .map(|&(a, s)| FdtReserveEntry::new(a, s).unwrap())
            .collect();
        let mut w = FdtWriter::new_with_mem_reserv(&resv).unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        w.property_u32("interrupt-parent", 0x8002).unwrap();
        w.property_string("compatible", "linux,dummy-virt").unwrap();

        let aliases = w.begin_node("aliases").unwrap();
        w.property_string("serial0", "/pl011@9000000").unwrap();
        w.end_node(aliases).unwrap();

        let chosen = w.begin_node("chosen").unwrap();
        if let Some(p) = &self.stdout_path {
            w.property_string("stdout-path", p).unwrap();
        }
        if let Some(b) = &self.xen_bootargs {
            w.property_string("xen,xen-bootargs", b).unwrap();
        }
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        for (name, compat, (a, s), args) in &self.modules {
            let m = w.begin_node(name).unwrap();
            w.property_string_list("compatible", compat.clone())
                .unwrap();
            w.property_array_u64("reg", &[*a, *s]).unwrap();
            if let Some(args) = args {
                w.property_string("bootargs", args).unwrap();
            }
            w.end_node(m).unwrap();
        }
        w.end_node(chosen).unwrap();

        for &(base, size) in &self.memory {
            let m = w.begin_node(&alloc::format!("memory@{base:x}")).unwrap();
            w.property_string("device_type", "memory").unwrap();
            w.property_array_u64("reg", &[base, size]).unwrap();
            w.end_node(m).unwrap();
        }

        if !self.reserved_memory.is_empty() {
            let rm = w.begin_node("reserved-memory").unwrap();
            w.property_u32("#address-cells", 2).unwrap();
            w.property_u32("#size-cells", 2).unwrap();
            w.property_null("ranges").unwrap();
            for &(a, s) in &self.reserved_memory {
                let n = w.begin_node(&alloc::format!("region@{a:x}")).unwrap();
                w.property_array_u64("reg", &[a, s]).unwrap();
                w.property_null("no-map").unwrap();
                w.end_node(n).unwrap();
            }
            w.end_node(rm).unwrap();
        }

        let uart = w.begin_node("pl011@9000000").unwrap();
        w.property_string_list(
            "compatible",
            alloc::vec![self.uart_compatible.clone(), "arm,primecell".into()],
        )
        .unwrap();
        w.property_array_u64("reg", &[0x0900_0000, 0x1000]).unwrap();
        w.property_array_u32("interrupts", &[0, 1, 4]).unwrap();
        w.end_node(uart).unwrap();

        if let Some(method) = &self.psci_method {
            let psci = w.begin_node("psci").unwrap();
            w.property_string_list(
                "compatible",
                strs(&["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]),
            )
            .unwrap();
            w.property_string("method", method).unwrap();
            w.end_node(psci).unwrap();
        }

        let gic = w.begin_node("intc@8000000").unwrap();
        w.property_u32("phandle", 0x8002).unwrap();
        w.property_string("compatible", &self.gic_compatible)
            .unwrap();
        w.property_u32("#interrupt-cells", 3).unwrap();
        w.property_null("interrupt-controller").unwrap();
        w.property_u32("#redistributor-regions", 1).unwrap();
        w.property_array_u64("reg", &[0x0800_0000, 0x1_0000, 0x080a_0000, 0xf6_0000])
            .unwrap();
        w.property_array_u32("interrupts", &[1, 9, 4]).unwrap();
        w.end_node(gic).unwrap();

        let timer = w.begin_node("timer").unwrap();
        w.property_string_list("compatible", strs(&["arm,armv8-timer", "arm,armv7-timer"]))
            .unwrap();
        w.property_array_u32("interrupts", &[1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4])
            .unwrap();
        w.property_null("always-on").unwrap();
        w.end_node(timer).unwrap();

        let cpus = w.begin_node("cpus").unwrap();
        w.property_u32("#address-cells", 1).unwrap();
        w.property_u32("#size-cells", 0).unwrap();
        for i in 0..self.cpus {
            let c = w.begin_node(&alloc::format!("cpu@{i}")).unwrap();
            w.property_string("device_type", "cpu").unwrap();
            w.property_string("compatible", "arm,cortex-a57").unwrap();
            w.property_u32("reg", i).unwrap();
            if self.cpus > 1 {
                w.property_string("enable-method", "psci").unwrap();
            }
            w.end_node(c).unwrap();
        }
        w.end_node(cpus).unwrap();

        w.end_node(root).unwrap();
        Blob::new(&w.finish().unwrap())
    }
}
