//! The machines Oxen boots on in QEMU, in one table ([`BOARDS`]): for
//! each, the board image it runs (`boards/<image>/`), QEMU's machine
//! options, where the host device tree comes from and the edits it needs,
//! where RAM is and what in it the boot modules must avoid, and the
//! console's path for Xen's `dtuart=`. `cargo xtask build|run|test` and
//! the Xen peer take a board from here; the configs are written once, for
//! [`HOME`], and instantiated per board. Also: a board image's features,
//! read from its `Cargo.toml` (the Xen interfaces, which the matrix
//! combines, and the drivers, which every image of the board links).

use crate::dts::{Node, Prop, Source};

/// A machine, as `--board` names it.
#[derive(Debug, PartialEq, Eq)]
pub struct Board {
    /// The name on the command line and in the matrix.
    pub name: &'static str,
    /// The image it boots: `boards/<image>/` (several machines may boot one).
    pub image: &'static str,
    /// QEMU's `-M`.
    pub machine: &'static str,
    /// `-cpu`, where the machine lets one choose.
    pub cpu: Option<&'static str>,
    pub cpus: Cpus,
    /// `-m` for a boot with no domains.
    pub memory: &'static str,
    /// The most RAM a config may give the machine, in MiB (QEMU maps any
    /// more somewhere the host tree does not say).
    pub max_memory_mib: Option<u64>,
    /// More QEMU options the machine needs.
    pub extra: &'static [&'static str],
    /// Where the host device tree comes from.
    pub tree: Tree,
    /// What the tree needs before a hypervisor boots from it.
    pub edits: &'static [Edit],
    /// Where RAM starts: QEMU puts the hypervisor at its `text_offset`
    /// past it ([`qemu_kernel_at`]) and its copy of the DTB 128 MiB past
    /// it; the boot modules go from [`Board::module_base`].
    pub ram_base: u64,
    /// RAM the boot modules must not use, (start, size): the host tree's
    /// `/reserved-memory` (checked against the tree at every boot).
    pub reserved: &'static [(u64, u64)],
    /// The console's node, for `dtuart=` in `xen,xen-bootargs`.
    pub console: &'static str,
    /// The host's interrupt controller (configs name boards by it).
    pub gic: Gic,
    /// Debian's U-Boot for QEMU boots it (`--uboot`, `boot: uboot`).
    pub uboot: bool,
}

/// How many CPUs QEMU gets and how many the hypervisor runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cpus {
    /// `-smp N` as asked (2 unless asked), every one usable.
    Any,
    /// `-smp` must be `qemu`, of which `usable` are the application
    /// processors in the host tree (the rest are real-time cores).
    Fixed { qemu: u32, usable: u32 },
}

/// Where a host device tree comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tree {
    /// QEMU's own for the machine options (`-M …,dumpdtb=`).
    Qemu,
    /// A DTB Debian's kernel package ships (the `dtbs` role,
    /// `debian::board_dtbs`), by its path below `usr/lib/linux-image-*/`.
    Debian(&'static str),
}

/// The host GIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gic {
    V2,
    V3,
}

impl Gic {
    /// Its name in a `.expect`'s `boards:` (the driver feature's).
    pub fn name(self) -> &'static str {
        match self {
            Gic::V2 => "gicv2",
            Gic::V3 => "gicv3",
        }
    }
}

/// One edit of a host tree. Values are DTS source text, as dtc reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    /// Sets a property of a node that must exist.
    Set {
        node: &'static str,
        prop: &'static str,
        value: &'static str,
    },
    /// Removes a property (if there).
    Remove {
        node: &'static str,
        prop: &'static str,
    },
    /// Sets properties of a node, creating it under its parent if missing.
    Node {
        node: &'static str,
        props: &'static [(&'static str, &'static str)],
    },
    /// Sets a property on every `/cpus/cpu@…` node.
    EachCpu {
        prop: &'static str,
        value: &'static str,
    },
}

/// QEMU's own PSCI: 1.1 through SMC, which it answers itself when no
/// firmware is loaded (as QEMU writes the node on `virt`).
const PSCI_NODE: Edit = Edit::Node {
    node: "/psci",
    props: &[
        (
            "compatible",
            "\"arm,psci-1.0\", \"arm,psci-0.2\", \"arm,psci\"",
        ),
        ("method", "\"smc\""),
    ],
};

/// The board the configs are written for: every config boots on it.
pub const HOME: &Board = &BOARDS[0];

/// Every machine. `boards/<image>/` must exist for each (and every
/// directory there is some board's image: a host test checks both).
pub const BOARDS: [Board; 4] = [
    Board {
        name: "qemu-virt",
        image: "qemu-virt",
        machine: "virt,virtualization=on,gic-version=3",
        cpu: Some("cortex-a57"),
        cpus: Cpus::Any,
        memory: "1G",
        max_memory_mib: None,
        extra: &[],
        tree: Tree::Qemu,
        edits: &[],
        ram_base: 0x4000_0000,
        reserved: &[],
        console: "/pl011@9000000",
        gic: Gic::V3,
        uboot: true,
    },
    // The same image on virt's GICv2 (GIC-400 with virtualization
    // extensions): the board Xen's own CI boots by default.
    Board {
        name: "qemu-virt-gicv2",
        image: "qemu-virt",
        machine: "virt,virtualization=on,gic-version=2",
        cpu: Some("cortex-a57"),
        cpus: Cpus::Any,
        memory: "1G",
        max_memory_mib: None,
        extra: &[],
        tree: Tree::Qemu,
        edits: &[],
        ram_base: 0x4000_0000,
        reserved: &[],
        console: "/pl011@9000000",
        gic: Gic::V2,
        uboot: false,
    },
    // Two Cortex-A72s (QEMU wants -smp 4: the other two are the R5Fs), a
    // GICv3, PL011s, RAM from 0. QEMU's tree has no /psci and no
    // enable-method on the CPUs, so Xen would run on one of them.
    Board {
        name: "xlnx-versal-virt",
        image: "xlnx-versal-virt",
        machine: "xlnx-versal-virt",
        cpu: None,
        cpus: Cpus::Fixed { qemu: 4, usable: 2 },
        memory: "2G",
        max_memory_mib: Some(2048),
        extra: &[],
        tree: Tree::Qemu,
        edits: &[
            PSCI_NODE,
            Edit::EachCpu {
                prop: "enable-method",
                value: "\"psci\"",
            },
        ],
        ram_base: 0,
        reserved: &[],
        console: "/uart@ff000000",
        gic: Gic::V3,
        uboot: false,
    },
    // Four Cortex-A53s, a GIC-400, Cadence UARTs, RAM from 0; the vendor
    // tree from Debian's kernel. Its edits: no EL3/PMU firmware under
    // QEMU (QEMU disables the node itself too); the GIC's CPU interface
    // and virtual CPU interface as the 8 KiB windows at +0xf000 of their
    // 64 KiB-aliased regions (QEMU's GIC reads GICC_IIDR 0x0002043b, so
    // Xen does not detect the aliasing and hangs with the vendor reg);
    // only the low 2 GiB of DDR (QEMU's -m 2G); the console by path.
    Board {
        name: "xlnx-zcu102",
        image: "xlnx-zcu102",
        machine: "xlnx-zcu102,virtualization=on",
        cpu: None,
        cpus: Cpus::Fixed { qemu: 4, usable: 4 },
        memory: "2G",
        max_memory_mib: Some(2048),
        extra: &["-audiodev", "none,id=snd0"],
        tree: Tree::Debian("xilinx/zynqmp-zcu102-rev1.0.dtb"),
        edits: &[
            Edit::Set {
                node: "/firmware/zynqmp-firmware",
                prop: "status",
                value: "\"disabled\"",
            },
            Edit::Set {
                node: "/axi/interrupt-controller@f9010000",
                prop: "reg",
                value: "<0 0xf9010000 0 0x10000 0 0xf902f000 0 0x2000 \
                        0 0xf9040000 0 0x20000 0 0xf906f000 0 0x2000>",
            },
            Edit::Set {
                node: "/memory@0",
                prop: "reg",
                value: "<0 0 0 0x80000000>",
            },
            Edit::Set {
                node: "/chosen",
                prop: "stdout-path",
                value: "\"/axi/serial@ff000000\"",
            },
            Edit::Remove {
                node: "/chosen",
                prop: "bootargs",
            },
        ],
        ram_base: 0,
        reserved: &[(0x3ed0_0000, 0x4_0000), (0x3ef0_0000, 0x4_0000)],
        console: "/axi/serial@ff000000",
        gic: Gic::V2,
        uboot: false,
    },
];

/// Where QEMU puts its copy of the DTB, past RAM base (for a hypervisor
/// image smaller than that).
pub const DTB_OFFSET: u64 = 128 << 20;
/// Where the boot modules start, past RAM base: clear of the hypervisor
/// and of QEMU's DTB.
pub const MODULE_OFFSET: u64 = 256 << 20;

/// The board called `name`.
pub fn find(name: &str) -> Result<&'static Board, String> {
    BOARDS.iter().find(|b| b.name == name).ok_or_else(|| {
        format!(
            "no board \"{name}\" (boards: {})",
            BOARDS.iter().map(|b| b.name).collect::<Vec<_>>().join(", ")
        )
    })
}

/// Where QEMU's `-kernel` puts an arm64 Image with this header, in RAM
/// from `ram_base` (hw/arm/boot.c, `load_aarch64_image`): at its
/// `text_offset`, except that an offset inside QEMU's 4 KiB boot stub at
/// the start of RAM gets 2 MiB added; an `image_size` of 0 means the old
/// fixed offset 0x80000.
pub fn qemu_kernel_at(ram_base: u64, text_offset: u64, image_size: u64) -> u64 {
    const BOOTLOADER_MAX_SIZE: u64 = 4 << 10;
    let offset = match (image_size, text_offset) {
        (0, _) => 0x8_0000,
        (_, o) if o < BOOTLOADER_MAX_SIZE => o + (2 << 20),
        (_, o) => o,
    };
    ram_base + offset
}

impl Board {
    /// Where QEMU puts its copy of the DTB.
    pub fn dtb_at(&self) -> u64 {
        self.ram_base + DTB_OFFSET
    }

    /// Where the boot modules start.
    pub fn module_base(&self) -> u64 {
        self.ram_base + MODULE_OFFSET
    }

    /// QEMU's `-smp`: as asked on a machine that takes any, else the one
    /// it must be.
    pub fn smp(&self, asked: Option<u32>) -> Result<u32, String> {
        match (self.cpus, asked) {
            (Cpus::Any, n) => Ok(n.unwrap_or(crate::configs::DEFAULT_CPUS)),
            (Cpus::Fixed { qemu, .. }, None) => Ok(qemu),
            (Cpus::Fixed { qemu, .. }, Some(n)) if n == qemu => Ok(qemu),
            (Cpus::Fixed { qemu, .. }, Some(n)) => Err(format!(
                "{} runs with -smp {qemu} only (asked for {n})",
                self.name
            )),
        }
    }

    /// The CPUs the hypervisor brings online with `-smp smp`.
    pub fn online(&self, smp: u32) -> u32 {
        match self.cpus {
            Cpus::Any => smp,
            Cpus::Fixed { usable, .. } => usable,
        }
    }

    /// The `-smp` values a boot with no domains is tried with.
    pub fn bare_smps(&self) -> Vec<u32> {
        match self.cpus {
            Cpus::Any => vec![2, 4],
            Cpus::Fixed { qemu, .. } => vec![qemu],
        }
    }

    /// QEMU's machine options, with `suffix` appended to `-M`'s value
    /// (`,dumpdtb=FILE`).
    pub fn qemu_args(&self, suffix: &str, smp: u32, memory: &str) -> Vec<String> {
        let mut a: Vec<String> = vec!["-M".into(), format!("{}{suffix}", self.machine)];
        a.extend(crate::qemu::NO_DEFAULT_DEVICES.map(String::from));
        if let Some(cpu) = self.cpu {
            a.extend(["-cpu".into(), cpu.into()]);
        }
        a.extend(["-smp".into(), smp.to_string(), "-m".into(), memory.into()]);
        a.extend(self.extra.iter().map(|s| s.to_string()));
        a
    }

    /// `xen,xen-bootargs` with the home board's console in `dtuart=` (as
    /// every config names it) replaced by this board's.
    pub fn bootargs(&self, bootargs: &str) -> String {
        let home = format!("dtuart={}", HOME.console);
        bootargs
            .split(' ')
            .map(|w| {
                if w == home {
                    format!("dtuart={}", self.console)
                } else {
                    w.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Whether this board is `word` of a `.expect`'s `boards:`: its name,
    /// its GIC's, or `all`.
    pub fn is(&self, word: &str) -> bool {
        word == "all" || word == self.name || word == self.gic.name()
    }

    /// Makes the host tree what a hypervisor boots from.
    pub fn edit(&self, tree: &mut Source) -> Result<(), String> {
        for e in self.edits {
            apply(&mut tree.root, e).map_err(|err| format!("{}'s host tree: {err}", self.name))?;
        }
        Ok(())
    }
}

/// The words a `.expect`'s `boards:` may hold.
pub fn is_board_word(word: &str) -> bool {
    word == "all" || BOARDS.iter().any(|b| b.is(word))
}

fn node_mut<'a>(root: &'a mut Node, path: &str) -> Option<&'a mut Node> {
    let mut node = root;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        node = node.children.iter_mut().find(|c| c.name == part)?;
    }
    Some(node)
}

fn apply(root: &mut Node, edit: &Edit) -> Result<(), String> {
    let missing = |path: &str| format!("no node {path}");
    match *edit {
        Edit::Set { node, prop, value } => {
            node_mut(root, node)
                .ok_or_else(|| missing(node))?
                .set(prop, Some(value.into()));
        }
        Edit::Remove { node, prop } => {
            node_mut(root, node)
                .ok_or_else(|| missing(node))?
                .props
                .retain(|p| p.name != prop);
        }
        Edit::Node { node, props } => {
            let (parent, name) = node.rsplit_once('/').unwrap_or(("", node));
            let parent = node_mut(root, parent).ok_or_else(|| missing(parent))?;
            let at = match parent.children.iter().position(|c| c.name == name) {
                Some(i) => i,
                None => {
                    parent.children.push(Node {
                        name: name.into(),
                        ..Node::default()
                    });
                    parent.children.len() - 1
                }
            };
            for (p, v) in props {
                parent.children[at].set(p, Some(v.to_string()));
            }
        }
        Edit::EachCpu { prop, value } => {
            let cpus = node_mut(root, "/cpus").ok_or_else(|| missing("/cpus"))?;
            let mut n = 0;
            for c in cpus.children.iter_mut().filter(|c| c.base_name() == "cpu") {
                c.set(prop, Some(value.into()));
                n += 1;
            }
            if n == 0 {
                return Err("no /cpus/cpu@… node".into());
            }
        }
    }
    Ok(())
}

/// The `reg` ranges of a tree's `/reserved-memory` children (two cells of
/// address and two of size, as every board here has).
pub fn reserved_memory(tree: &Source) -> Vec<(String, u64, u64)> {
    let Some(rm) = tree.root.child("reserved-memory") else {
        return Vec::new();
    };
    rm.children
        .iter()
        .filter_map(|c| {
            let cells = c.prop("reg").and_then(Prop::cells)?;
            let pairs: Vec<u64> = cells
                .chunks_exact(2)
                .map(|p| u64::from(p[0]) << 32 | u64::from(p[1]))
                .collect();
            match pairs[..] {
                [start, size, ..] => Some((format!("/reserved-memory/{}", c.name), start, size)),
                _ => None,
            }
        })
        .collect()
}

/// A board image's features, from its `Cargo.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardFeatures {
    /// The features that are not drivers: the Xen interfaces, each linking
    /// crate `oxen-x`, which registers the subsystem `x`. Sorted.
    pub interfaces: Vec<String>,
    /// `[package.metadata.oxen] drivers`: on in every image of the board.
    pub drivers: Vec<String>,
    /// The interfaces on by default (the drivers always are).
    pub default: Vec<String>,
    /// `[package.metadata.oxen] driver-variants`: driver sets built besides
    /// the board's own, each checked to carry no code of the drivers it
    /// leaves out.
    pub variants: Vec<Vec<String>>,
}

/// The strings of a one-line TOML array of strings, or of arrays of them.
fn toml_lists(value: &str) -> Vec<Vec<String>> {
    let v = value.trim();
    let words = |s: &str| -> Vec<String> {
        s.split(',')
            .map(|w| w.trim().trim_matches('"').to_string())
            .filter(|w| !w.is_empty())
            .collect()
    };
    let Some(inner) = v.strip_prefix('[').and_then(|v| v.strip_suffix(']')) else {
        return Vec::new();
    };
    if inner.trim_start().starts_with('[') {
        inner
            .split(']')
            .map(|s| s.trim_start_matches([',', ' ', '[']))
            .filter(|s| !s.trim().is_empty())
            .map(words)
            .collect()
    } else {
        vec![words(inner)]
    }
}

/// Reads a board manifest's `[features]` (the simple `name = ["a", "b"]`
/// form cargo itself writes) and `[package.metadata.oxen]`. Every driver
/// must be a feature on by default, and every variant made of drivers.
pub fn parse_manifest(manifest: &str) -> Result<BoardFeatures, String> {
    let mut section = String::new();
    let mut features = Vec::new();
    let mut default = Vec::new();
    let mut drivers = Vec::new();
    let mut variants = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line.to_string();
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim();
        match (section.as_str(), name) {
            ("[features]", "default") => default = toml_lists(value).concat(),
            ("[features]", _) => features.push(name.to_string()),
            ("[package.metadata.oxen]", "drivers") => drivers = toml_lists(value).concat(),
            ("[package.metadata.oxen]", "driver-variants") => variants = toml_lists(value),
            ("[package.metadata.oxen]", other) => {
                return Err(format!(
                    "[package.metadata.oxen] {other} is not known (expected drivers or driver-variants)"
                ));
            }
            _ => {}
        }
    }
    for d in &drivers {
        if !features.contains(d) {
            return Err(format!(
                "driver \"{d}\" of [package.metadata.oxen] is not a feature"
            ));
        }
        if !default.contains(d) {
            return Err(format!(
                "driver \"{d}\" is not in the default features (every image links the board's drivers)"
            ));
        }
    }
    for v in &variants {
        if let Some(bad) = v.iter().find(|d| !drivers.contains(d)) {
            return Err(format!(
                "driver-variants: \"{bad}\" is not one of the drivers ({})",
                drivers.join(", ")
            ));
        }
    }
    let mut interfaces: Vec<String> = features
        .into_iter()
        .filter(|f| !drivers.contains(f))
        .collect();
    interfaces.sort();
    default.retain(|f| !drivers.contains(f));
    Ok(BoardFeatures {
        interfaces,
        drivers,
        default,
        variants,
    })
}

/// The features of `boards/<image>/Cargo.toml`.
pub fn manifest(image: &str) -> Result<BoardFeatures, String> {
    let path = crate::root().join("boards").join(image).join("Cargo.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_manifest(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Every board image (a directory under `boards/` with a `Cargo.toml`),
/// sorted.
pub fn images() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(crate::root().join("boards"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().join("Cargo.toml").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
[package]
name = "oxen-qemu-virt"

[package.metadata.oxen]
drivers = ["gicv3", "pl011"]
driver-variants = [["gicv3"], ["pl011"]]

[features]
default = ["evtchn", "gnttab", "gicv3", "pl011"]
gicv3 = ["oxen-core/gicv3"]
pl011 = ["oxen-core/pl011"]
evtchn = ["dep:oxen-evtchn"]
gnttab = ["dep:oxen-gnttab"]
xenstore = ["dep:oxen-xenstore"]

[dependencies]
oxen-core.workspace = true
"#;

    #[test]
    fn a_manifest_splits_drivers_from_interfaces() {
        let f = parse_manifest(MANIFEST).unwrap();
        assert_eq!(f.interfaces, ["evtchn", "gnttab", "xenstore"]);
        assert_eq!(f.drivers, ["gicv3", "pl011"]);
        assert_eq!(f.default, ["evtchn", "gnttab"]);
        assert_eq!(f.variants, [vec!["gicv3"], vec!["pl011"]]);
    }

    #[test]
    fn a_manifest_without_metadata_has_only_interfaces() {
        let m = MANIFEST.replace("[package.metadata.oxen]\n", "[x]\n");
        let f = parse_manifest(&m).unwrap();
        assert!(f.drivers.is_empty());
        assert_eq!(f.interfaces.len(), 5);
    }

    #[test]
    fn drivers_must_be_default_features_and_variants_drivers() {
        let m = MANIFEST.replace("\"gnttab\", \"gicv3\"", "\"gnttab\"");
        let e = parse_manifest(&m).unwrap_err();
        assert!(e.contains("\"gicv3\" is not in the default"), "{e}");
        let m = MANIFEST.replace("[\"pl011\"]]", "[\"cadence-uart\"]]");
        let e = parse_manifest(&m).unwrap_err();
        assert!(
            e.contains("\"cadence-uart\" is not one of the drivers"),
            "{e}"
        );
        let m = MANIFEST.replace("drivers = [\"gicv3\"", "drivers = [\"gicv9\"");
        let e = parse_manifest(&m).unwrap_err();
        assert!(
            e.contains("\"gicv9\" of [package.metadata.oxen] is not a feature"),
            "{e}"
        );
        let m = MANIFEST.replace("driver-variants", "variants");
        assert!(
            parse_manifest(&m)
                .unwrap_err()
                .contains("variants is not known")
        );
    }

    #[test]
    fn every_board_image_is_a_directory_and_every_directory_a_board_image() {
        let images = images();
        for b in &BOARDS {
            assert!(images.iter().any(|i| i == b.image), "{}", b.image);
            manifest(b.image).unwrap();
        }
        for i in &images {
            assert!(
                BOARDS.iter().any(|b| b.image == *i),
                "boards/{i} has no machine"
            );
        }
        assert_eq!(find("qemu-virt").unwrap(), HOME);
        assert!(find("raspi3b").unwrap_err().contains("xlnx-zcu102"));
    }

    #[test]
    fn the_boards_manifests_name_their_drivers() {
        let f = manifest("qemu-virt").unwrap();
        assert_eq!(f.drivers, ["gicv2", "gicv3", "pl011"]);
        assert_eq!(f.variants, [vec!["gicv3", "pl011"], vec!["gicv2", "pl011"]]);
        assert_eq!(
            manifest("xlnx-versal-virt").unwrap().drivers,
            ["gicv3", "pl011"]
        );
        let z = manifest("xlnx-zcu102").unwrap();
        assert_eq!(z.drivers, ["gicv2", "cadence-uart"]);
        assert_eq!(z.interfaces, f.interfaces);
    }

    #[test]
    fn qemu_loads_an_image_with_text_offset_0_two_mib_into_ram() {
        assert_eq!(qemu_kernel_at(0x4000_0000, 0, 0x10_0000), 0x4020_0000);
        assert_eq!(qemu_kernel_at(0, 0, 0x10_0000), 0x20_0000);
        assert_eq!(qemu_kernel_at(0, 0x8_0000, 0x10_0000), 0x8_0000);
        assert_eq!(qemu_kernel_at(0, 0x20_0000, 0), 0x8_0000);
    }

    #[test]
    fn machines_with_fixed_cpus_refuse_another_smp() {
        let versal = find("xlnx-versal-virt").unwrap();
        assert_eq!(versal.smp(None), Ok(4));
        assert_eq!(versal.online(4), 2);
        assert!(versal.smp(Some(2)).unwrap_err().contains("-smp 4 only"));
        assert_eq!(HOME.smp(Some(3)), Ok(3));
        assert_eq!(HOME.smp(None), Ok(2));
        assert_eq!(HOME.bare_smps(), [2, 4]);
        assert_eq!(versal.bare_smps(), [4]);
    }

    #[test]
    fn qemu_args_give_the_machine_cpu_and_extras() {
        let z = find("xlnx-zcu102").unwrap();
        assert_eq!(
            z.qemu_args(",dumpdtb=x", 4, "2G").join(" "),
            "-M xlnx-zcu102,virtualization=on,dumpdtb=x -nic none -smp 4 -m 2G -audiodev none,id=snd0"
        );
        assert_eq!(
            HOME.qemu_args("", 2, "1G").join(" "),
            "-M virt,virtualization=on,gic-version=3 -nic none -cpu cortex-a57 -smp 2 -m 1G"
        );
    }

    #[test]
    fn the_console_in_xen_bootargs_becomes_the_boards() {
        let args = "console=dtuart dtuart=/pl011@9000000 bootscrub=0";
        let z = find("xlnx-zcu102").unwrap();
        assert_eq!(
            z.bootargs(args),
            "console=dtuart dtuart=/axi/serial@ff000000 bootscrub=0"
        );
        assert_eq!(HOME.bootargs(args), args);
        // Another console is the config's own choice.
        assert_eq!(z.bootargs("dtuart=serial0"), "dtuart=serial0");
    }

    #[test]
    fn boards_are_named_by_name_gic_or_all() {
        let v2 = find("qemu-virt-gicv2").unwrap();
        assert!(v2.is("gicv2") && v2.is("all") && v2.is("qemu-virt-gicv2"));
        assert!(!v2.is("gicv3") && !v2.is("qemu-virt"));
        assert!(is_board_word("gicv3") && is_board_word("xlnx-zcu102"));
        assert!(!is_board_word("gicv4"));
    }

    fn tree(text: &str) -> Source {
        Source::parse(text).unwrap()
    }

    const VERSAL: &str = "/dts-v1/;\n\n/ {\n\tcpus {\n\t\tcpu@0 {\n\t\t\treg = <0x00>;\n\t\t};\n\n\t\tcpu@1 {\n\t\t\treg = <0x01>;\n\t\t};\n\t};\n\n\tchosen {\n\t\tstdout-path = \"/uart@ff000000\";\n\t};\n};\n";

    #[test]
    fn versal_gets_psci_and_an_enable_method_on_each_cpu() {
        let mut t = tree(VERSAL);
        find("xlnx-versal-virt").unwrap().edit(&mut t).unwrap();
        let psci = t.root.child("psci").unwrap();
        assert_eq!(
            psci.strings("compatible"),
            ["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]
        );
        assert_eq!(psci.strings("method"), ["smc"]);
        for c in &t.root.child("cpus").unwrap().children {
            assert_eq!(c.strings("enable-method"), ["psci"], "{}", c.name);
        }
    }

    const ZCU102: &str = "/dts-v1/;\n\n/ {\n\treserved-memory {\n\t\tmemory@3ed00000 {\n\t\t\tno-map;\n\t\t\treg = <0x00 0x3ed00000 0x00 0x40000>;\n\t\t};\n\n\t\tmemory@3ef00000 {\n\t\t\tno-map;\n\t\t\treg = <0x00 0x3ef00000 0x00 0x40000>;\n\t\t};\n\t};\n\n\tfirmware {\n\n\t\tzynqmp-firmware {\n\t\t\tmethod = \"smc\";\n\t\t};\n\t};\n\n\taxi {\n\t\tinterrupt-controller@f9010000 {\n\t\t\treg = <0x00 0xf9010000 0x00 0x10000 0x00 0xf9020000 0x00 0x20000 0x00 0xf9040000 0x00 0x20000 0x00 0xf9060000 0x00 0x20000>;\n\t\t};\n\t};\n\n\tchosen {\n\t\tbootargs = \"earlycon\";\n\t\tstdout-path = \"serial0:115200n8\";\n\t};\n\n\tmemory@0 {\n\t\treg = <0x00 0x00 0x00 0x80000000 0x08 0x00 0x00 0x80000000>;\n\t};\n};\n";

    #[test]
    fn zcu102_gets_the_gic_windows_one_memory_bank_and_no_firmware() {
        let mut t = tree(ZCU102);
        let z = find("xlnx-zcu102").unwrap();
        z.edit(&mut t).unwrap();
        let fw = t.root.child("firmware").unwrap().child("zynqmp-firmware");
        assert_eq!(fw.unwrap().strings("status"), ["disabled"]);
        let gic = t.root.child("axi").unwrap().children[0]
            .prop("reg")
            .unwrap();
        assert_eq!(
            gic.cells().unwrap(),
            [
                0,
                0xf901_0000,
                0,
                0x1_0000,
                0,
                0xf902_f000,
                0,
                0x2000,
                0,
                0xf904_0000,
                0,
                0x2_0000,
                0,
                0xf906_f000,
                0,
                0x2000
            ]
        );
        let mem = t.root.child("memory@0").unwrap().prop("reg").unwrap();
        assert_eq!(mem.cells().unwrap(), [0, 0, 0, 0x8000_0000]);
        let chosen = t.root.child("chosen").unwrap();
        assert_eq!(chosen.strings("stdout-path"), [z.console]);
        assert!(chosen.prop("bootargs").is_none());
        // The table's reserved ranges are the tree's.
        let rm: Vec<(u64, u64)> = reserved_memory(&t).iter().map(|r| (r.1, r.2)).collect();
        assert_eq!(rm, z.reserved);
    }

    #[test]
    fn an_edit_of_a_node_that_is_not_there_is_refused_with_the_board() {
        let mut t = tree(VERSAL);
        let e = find("xlnx-zcu102").unwrap().edit(&mut t).unwrap_err();
        assert_eq!(
            e,
            "xlnx-zcu102's host tree: no node /firmware/zynqmp-firmware"
        );
    }
}
