//! What oxen-check assumes of the board where the device tree cannot say:
//! the facts only the hardware (or the boot loader) knows.

/// A board's defaults.
#[derive(Debug, Clone)]
pub struct Board {
    pub name: &'static str,
    /// Where RAM starts.
    pub ram_base: u64,
    /// Where the boot loader puts the hypervisor, and the `image_size` of
    /// its Image header, for when no Image or boot script is given.
    pub image_addr: u64,
    pub image_size: u64,
    /// Where the boot loader puts the device tree.
    pub dtb_addr: u64,
    /// SPIs of the host GIC (`GICD_TYPER`).
    pub gic_spis: u32,
    /// The CPU's physical-address size (`ID_AA64MMFR0_EL1.PARange`).
    pub pa_bits: u32,
    /// CPUs the image supports (`oxen_core::budget::MAX_CPUS`).
    pub max_cpus: u32,
    /// The CPU the boot starts on (its MPIDR).
    pub boot_mpidr: u64,
    /// Where [`Board::tree`] comes from, for people.
    pub tree_origin: &'static str,
    tree: &'static str,
}

/// QEMU's `virt` machine as the project's QEMU runs use it, with the
/// values its boot log shows (QEMU 7.2, `-cpu cortex-a57`).
pub const QEMU_VIRT: Board = Board {
    name: "qemu-virt",
    ram_base: 0x4000_0000,
    image_addr: 0x4020_0000,
    image_size: 0x10_0000,
    dtb_addr: 0x4800_0000,
    gic_spis: 224,
    pa_bits: 44,
    max_cpus: oxen_core::budget::MAX_CPUS as u32,
    boot_mpidr: 0,
    tree_origin: "QEMU 7.2's tree for -M virt,virtualization=on,gic-version=3 -cpu cortex-a57",
    tree: include_str!("boards/qemu-virt.dts"),
};

impl Board {
    /// The board's own tree (a root block, no `/dts-v1/`) for `cpus` CPUs
    /// and `ram` bytes of RAM.
    pub fn tree(&self, cpus: u32, ram: u64) -> String {
        let base = self.tree.replacen("/dts-v1/;", "", 1);
        let mut out = base;
        out.push_str(&format!(
            "\n/ {{\n\tmemory@{:x} {{\n\t\treg = <{:#x} {:#x} {:#x} {:#x}>;\n\t}};\n",
            self.ram_base,
            self.ram_base >> 32,
            self.ram_base & 0xffff_ffff,
            ram >> 32,
            ram & 0xffff_ffff
        ));
        if cpus > 2 {
            out.push_str("\tcpus {\n");
            for i in 2..cpus {
                out.push_str(&format!(
                    "\t\tcpu@{i:x} {{\n\t\t\treg = <{i:#x}>;\n\t\t\tenable-method = \"psci\";\n\t\t\t\
                     compatible = \"arm,cortex-a57\";\n\t\t\tdevice_type = \"cpu\";\n\t\t}};\n"
                ));
            }
            out.push_str("\t};\n");
        }
        out.push_str("};\n");
        out
    }

    /// The board's default image: the `default` features of its manifest.
    pub fn default_features(&self) -> Vec<String> {
        default_features(include_str!("../../../boards/qemu-virt/Cargo.toml"))
    }
}

/// The `default = [...]` line of a `[features]` table.
pub fn default_features(manifest: &str) -> Vec<String> {
    let mut in_features = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_features = line == "[features]";
            continue;
        }
        if let (true, Some(("default", value))) = (
            in_features,
            line.split_once('=').map(|(k, v)| (k.trim(), v)),
        ) {
            return value
                .trim()
                .trim_matches(['[', ']'])
                .split(',')
                .map(|s| s.trim().trim_matches('"').to_string())
                .filter(|s| !s.is_empty())
                .collect();
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_image_is_the_board_manifests_default_features() {
        let m = "[package]\nname = \"x\"\n\n[features]\ndefault = [\"evtchn\", \"gnttab\"]\nevtchn = []\n";
        assert_eq!(default_features(m), ["evtchn", "gnttab"]);
        assert!(!QEMU_VIRT.default_features().is_empty());
    }

    #[test]
    fn the_board_tree_gets_the_memory_and_cpus_asked_for() {
        let t = QEMU_VIRT.tree(4, 3 << 30);
        assert!(t.contains("reg = <0x0 0x40000000 0x0 0xc0000000>;"), "{t}");
        assert!(t.contains("cpu@3 {"));
        assert!(!t.contains("/dts-v1/"));
    }
}
