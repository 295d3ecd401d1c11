//! The host device tree, as boot reads it: the blob's header, the early
//! memory scan, the owned tree, the platform facts, the domain
//! configuration and what the subsystems read from the tree (static event
//! channels, PV network devices). Every step must answer with a value or
//! a named error, whatever the bytes.

use oxen_core::config::{self, Limits};
use oxen_core::hostdt::{self, Fdt, Platform, early};
use oxen_core::memmap::{Range, RangeSet};

/// Where the fake hypervisor image and the blob sit in host RAM; modules
/// may not overlap them.
const IMAGE: Range = Range {
    start: 0x4000_0000,
    end: 0x4040_0000,
};
const DTB: Range = Range {
    start: 0x4400_0000,
    end: 0x4401_0000,
};

/// The first bytes of a boot module: an arm64 Image header for most, so
/// that the kernel check passes and validation goes on past it; a device
/// tree's magic at one address, nothing readable at another.
fn module_head(r: Range) -> Option<&'static [u8]> {
    static IMAGE_HEAD: [u8; 64] = {
        let mut h = [0u8; 64];
        h[0x38] = b'A';
        h[0x39] = b'R';
        h[0x3a] = b'M';
        h[0x3b] = 0x64;
        h
    };
    static DT_HEAD: [u8; 64] = {
        let mut h = [0u8; 64];
        h[0] = 0xd0;
        h[1] = 0x0d;
        h[2] = 0xfe;
        h[3] = 0xed;
        h
    };
    match r.start & 0xf_ffff {
        0x1_0000 => None,
        0x2_0000 => Some(&DT_HEAD),
        _ => Some(&IMAGE_HEAD),
    }
}

/// Runs every reader of the host tree on `data`.
pub fn run(data: &[u8]) {
    let _ = hostdt::dtb_total_size(data);
    let banks = early::memory_banks(data);
    // The early scan and the full reader must agree on what a blob is.
    let fdt = match Fdt::parse(data) {
        Ok(f) => f,
        Err(_) => return,
    };
    let _ = fdt.total_size();
    let _ = fdt.boot_cpuid();
    for id in fdt.ids() {
        let _ = fdt.path(id);
        let _ = fdt.reg(id);
        let _ = fdt.depth(id);
        for p in &fdt.node(id).props {
            let _ = p.display();
            let _ = p.strings().count();
        }
    }
    let _ = fdt.resolve("serial0");
    let _ = hostdt::read_bootargs(&fdt);
    let Ok(platform) = Platform::read(&fdt) else {
        return;
    };
    let mut free: RangeSet = match &banks {
        Ok(b) => b.iter().copied().collect(),
        Err(_) => platform.memory.iter().copied().collect(),
    };
    free.remove(IMAGE);
    free.remove(DTB);
    for r in &platform.reserved {
        free.remove(*r);
    }
    let limits = Limits {
        max_vcpus: 8,
        host_spis: 288,
    };
    let Ok(system) =
        config::read_system(&fdt, &platform, &free, &[IMAGE, DTB], &module_head, &limits)
    else {
        return;
    };
    let domains: Vec<_> = system.domains.iter().map(|d| (d.node, d.domid)).collect();
    let _ = oxen_evtchn::read_static_channels(&fdt, &domains);
    let enhanced = |d: u16| {
        system
            .domains
            .iter()
            .any(|c| c.domid == d && c.enhanced == config::Enhanced::Enabled)
    };
    if let Ok(vifs) = oxen_xenstore::pvnet::read_vifs(&fdt, &domains, &enhanced) {
        for v in &vifs {
            let _ = oxen_xenstore::pvnet::device_nodes(v);
        }
    }
}
