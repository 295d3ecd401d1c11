//! Test-only host device trees written as DTS text and compiled with `dtc`.
//!
//! The base is a QEMU `virt` machine; tests put Xen's dom0less bindings
//! under `/chosen` and read the result with [`read_system`].

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::{Limits, SystemConfig, read_system};
use crate::hostdt::testdt::Blob;
use crate::hostdt::{Fdt, Platform};
use crate::memmap::{Range, RangeSet};

pub use crate::test_dtc::{dtb, dtb_with};

/// The host: `qemu-system-aarch64 -M virt,virtualization=on,gic-version=3
/// -smp 2 -m 1G`, with `@CHOSEN@` standing for the dom0less nodes.
pub const BASE: &str = r#"/dts-v1/;

/ {
    #address-cells = <2>;
    #size-cells = <2>;
    compatible = "linux,dummy-virt";
    interrupt-parent = <&gic>;

    aliases {
        serial0 = "/pl011@9000000";
    };

    memory@40000000 {
        device_type = "memory";
        reg = <0x0 0x40000000 0x0 0x40000000>;
    };
@RESERVED@
    cpus {
        #address-cells = <1>;
        #size-cells = <0>;

        cpu0: cpu@0 {
            device_type = "cpu";
            compatible = "arm,cortex-a57";
            reg = <0>;
            enable-method = "psci";
        };

        cpu1: cpu@1 {
            device_type = "cpu";
            compatible = "arm,cortex-a57";
            reg = <1>;
            enable-method = "psci";
        };
    };

    psci {
        compatible = "arm,psci-1.0", "arm,psci-0.2", "arm,psci";
        method = "smc";
    };

    gic: intc@8000000 {
        compatible = "arm,gic-v3";
        #interrupt-cells = <3>;
        interrupt-controller;
        #redistributor-regions = <1>;
        reg = <0x0 0x08000000 0x0 0x10000>, <0x0 0x080a0000 0x0 0xf60000>;
        interrupts = <1 9 4>;
    };

    timer {
        compatible = "arm,armv8-timer", "arm,armv7-timer";
        interrupts = <1 13 4>, <1 14 4>, <1 11 4>, <1 10 4>;
        always-on;
    };

    pl011@9000000 {
        compatible = "arm,pl011", "arm,primecell";
        reg = <0x0 0x09000000 0x0 0x1000>;
        interrupts = <0 1 4>;
    };

    chosen {
        #address-cells = <1>;
        #size-cells = <1>;
        stdout-path = "serial0:115200n8";
        xen,xen-bootargs = "console=dtuart dtuart=serial0";
@CHOSEN@
    };
};
"#;

/// A domain as Xen's `booting.txt` writes one: 128 MiB, two vCPUs, a vPL011,
/// a kernel and a ramdisk.
pub const DOMU1: &str = r#"
        domU1 {
            compatible = "xen,domain";
            #address-cells = <1>;
            #size-cells = <1>;
            memory = <0 131072>;
            cpus = <2>;
            vpl011;
            xen,enhanced = "no-xenstore";

            module@48000000 {
                compatible = "multiboot,kernel", "multiboot,module";
                reg = <0x48000000 0x1000000>;
                bootargs = "console=ttyAMA0 earlycon=xenboot";
            };

            module@4a000000 {
                compatible = "multiboot,ramdisk", "multiboot,module";
                reg = <0x4a000000 0x800000>;
            };
        };
"#;

/// A second domain: 256 MiB, one vCPU, a kernel only.
pub const DOMU2: &str = r#"
        domU2 {
            compatible = "xen,domain";
            #address-cells = <1>;
            #size-cells = <1>;
            memory = <0 262144>;
            cpus = <1>;

            module@4c000000 {
                compatible = "multiboot,kernel", "multiboot,module";
                reg = <0x4c000000 0x1000000>;
            };
        };
"#;

/// `base` with the first `from` replaced by `to`; `from` must be there, so
/// a test cannot silently leave the tree unchanged.
pub fn edit(base: &str, from: &str, to: &str) -> String {
    assert!(base.contains(from), "{from:?} is not in\n{base}");
    base.replacen(from, to, 1)
}

/// `base` (one domain node) with `child` added as its last sub-node, where
/// dtc accepts it: after every property.
pub fn with_child(base: &str, child: &str) -> String {
    let end = base
        .rfind("\n        };")
        .expect("a domain node's closing brace");
    alloc::format!("{}\n            {child}{}", &base[..end], &base[end..])
}

/// The first 64 bytes of an arm64 Image: only the magic matters here.
const ARM64_HEAD: [u8; 64] = {
    let mut h = [0u8; 64];
    h[0x38] = b'A';
    h[0x39] = b'R';
    h[0x3a] = b'M';
    h[0x3b] = 0x64;
    h
};

/// One test's host and inputs to [`read_system`].
pub struct Host {
    /// The nodes under `/chosen`.
    pub chosen: String,
    /// A `/reserved-memory` region (address, size).
    pub reserved: Option<(u64, u64)>,
    pub limits: Limits,
    /// Oxen's own ranges: its device tree and its image.
    pub hypervisor: Vec<Range>,
    /// Module contents by start address; other modules read as arm64 Images.
    pub heads: Vec<(u64, Vec<u8>)>,
    /// Start addresses of modules whose bytes cannot be read.
    pub unreadable: Vec<u64>,
}

impl Host {
    pub fn new(chosen: &str) -> Self {
        Self {
            chosen: chosen.to_string(),
            reserved: None,
            limits: Limits {
                max_vcpus: 8,
                host_spis: 256,
            },
            hypervisor: alloc::vec![
                Range::with_size(0x4000_0000, 0x10_0000).unwrap(),
                Range::with_size(0x4020_0000, 0x20_0000).unwrap(),
            ],
            heads: Vec::new(),
            unreadable: Vec::new(),
        }
    }

    pub fn dts(&self) -> String {
        let reserved = match self.reserved {
            None => String::new(),
            Some((a, s)) => alloc::format!(
                "    reserved-memory {{\n        #address-cells = <2>;\n        \
                 #size-cells = <2>;\n        ranges;\n        region@{a:x} {{\n            \
                 reg = <0x0 {a:#x} 0x0 {s:#x}>;\n            no-map;\n        }};\n    }};\n"
            ),
        };
        BASE.replace("@RESERVED@", &reserved)
            .replace("@CHOSEN@", &self.chosen)
    }

    /// Compiles the tree and reads it, with free RAM computed as Oxen's
    /// boot does; errors come back as their messages.
    pub fn read(&self) -> Result<SystemConfig, Vec<String>> {
        self.read_blob(&dtb(&self.dts()))
    }

    /// The errors reading the platform (boot modules included) gives.
    pub fn platform_errors(&self) -> Vec<String> {
        let blob = dtb(&self.dts());
        let fdt = Fdt::parse(blob.bytes()).expect("dtc output parses");
        match Platform::read(&fdt) {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }

    /// As [`Host::read`], for a blob compiled some other way.
    pub fn read_blob(&self, blob: &Blob) -> Result<SystemConfig, Vec<String>> {
        let fdt = Fdt::parse(blob.bytes()).expect("dtc output parses");
        let platform = Platform::read(&fdt).unwrap_or_else(|e| panic!("platform: {e:#?}"));
        let mut free: RangeSet = platform.memory.iter().copied().collect();
        for r in platform.reserved.iter().chain(&self.hypervisor) {
            free.remove(*r);
        }
        let head = |r: Range| -> Option<&[u8]> {
            if self.unreadable.contains(&r.start) {
                return None;
            }
            let given = self.heads.iter().find(|(at, _)| *at == r.start);
            Some(given.map_or(&ARM64_HEAD[..], |(_, h)| h.as_slice()))
        };
        read_system(
            &fdt,
            &platform,
            &free,
            &self.hypervisor,
            &head,
            &self.limits,
        )
        .map_err(|errs| errs.iter().map(ToString::to_string).collect())
    }
}
