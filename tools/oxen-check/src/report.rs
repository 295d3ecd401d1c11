//! What a check found, and its two forms: text for people, JSON for CI.

use std::fmt::Write as _;

use oxen_core::memmap::Range;
use oxen_core::subsystem::Connection;
use serde_json::{Value, json};

use crate::uboot::Load;

/// The verdict.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The boot would build this system.
    Built(System),
    /// The boot would stop: every line it prints, `boot stopped: …` last.
    Stopped(Vec<String>),
}

impl Default for Outcome {
    fn default() -> Self {
        Self::Stopped(Vec::new())
    }
}

/// A boot module given to a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub path: String,
    pub range: Range,
    pub bootargs: Option<String>,
}

/// A domain as the boot would build it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    pub domid: u16,
    pub name: String,
    pub path: String,
    pub vcpus: u32,
    pub memory_kib: u64,
    pub vpl011: bool,
    /// `xen,enhanced` as written (`"absent"` without one).
    pub enhanced: String,
    pub kernel: Module,
    pub ramdisk: Option<Module>,
    pub device_tree: Option<Module>,
    /// The interfaces it is given under this image.
    pub interfaces: Vec<String>,
    /// Those the image has that this domain's `xen,enhanced` does not ask for.
    pub not_given: Vec<String>,
}

/// One line of the host memory map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEntry {
    pub what: String,
    pub range: Range,
    pub note: String,
}

impl MapEntry {
    pub fn new(what: &str, range: Range, note: String) -> Self {
        Self {
            what: what.into(),
            range,
            note,
        }
    }
}

/// The system that passed every check.
#[derive(Debug, Clone)]
pub struct System {
    pub domains: Vec<Domain>,
    pub connections: Vec<Connection>,
    pub memory: Vec<MapEntry>,
    /// RAM left for the domains.
    pub free: Vec<Range>,
    /// The boot's `ignored:` warnings, without the prefix.
    pub ignored: Vec<String>,
    pub ipa_bits: u32,
}

/// Everything a run of oxen-check says.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub input: String,
    pub board: String,
    /// The image's features (its subsystems, in declared order).
    pub features: Vec<String>,
    /// Values not in the tree: the board's, the loader's.
    pub assumed: Vec<String>,
    /// What was not checked, or not read.
    pub notes: Vec<String>,
    /// The boot's lines before its verdict (options, subsystems).
    pub log: Vec<String>,
    /// `xen,xen-bootargs` options Oxen would ignore.
    pub ignored_options: Vec<String>,
    pub outcome: Outcome,
    pub script_loads: Vec<Load>,
    /// Mistakes in the boot script's layout.
    pub script_problems: Vec<String>,
}

impl Report {
    /// Whether the system would boot as the script lays it out.
    pub fn ok(&self) -> bool {
        matches!(self.outcome, Outcome::Built(_)) && self.script_problems.is_empty()
    }

    /// The process's exit status: 0 when it would boot, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.ok() { 0 } else { 1 }
    }
}

fn mib(bytes: u64) -> u64 {
    bytes >> 20
}

fn size(r: &Range) -> String {
    let b = r.size();
    if b >= 1 << 20 {
        format!("{} MiB", b.div_ceil(1 << 20))
    } else {
        format!("{} KiB", b.div_ceil(1024))
    }
}

fn module_line(out: &mut String, kind: &str, m: &Module) {
    let _ = write!(
        out,
        "     {kind:<11} {} {} ({})",
        m.path,
        m.range,
        size(&m.range)
    );
    if let Some(b) = &m.bootargs {
        let _ = write!(out, "\n                 bootargs \"{b}\"");
    }
    out.push('\n');
}

/// The report as text.
pub fn text(r: &Report) -> String {
    let mut out = String::new();
    let image = if r.features.is_empty() {
        "no features".to_string()
    } else {
        r.features.join(", ")
    };
    let _ = writeln!(
        out,
        "oxen-check: {} on {} (image: {image})",
        r.input, r.board
    );
    match &r.outcome {
        Outcome::Stopped(lines) => {
            let _ = writeln!(out, "\nthe boot would print:");
            for l in r.log.iter().chain(lines) {
                let _ = writeln!(out, "{l}");
            }
        }
        Outcome::Built(s) => system_text(&mut out, r, s),
    }
    if !r.script_loads.is_empty() {
        let _ = writeln!(out, "\nthe boot script loads:");
        for l in &r.script_loads {
            let at = match l.range() {
                Some(rg) => format!("{rg} ({})", size(&rg)),
                None => format!("{:#012x}-?        (size unknown)", l.addr),
            };
            let _ = writeln!(out, "  line {:<3} {at} {}", l.line, l.file);
        }
    }
    if !r.script_problems.is_empty() {
        let _ = writeln!(
            out,
            "\nthe boot script has {} problem(s):",
            r.script_problems.len()
        );
        for p in &r.script_problems {
            let _ = writeln!(out, "  {p}");
        }
    }
    if !r.assumed.is_empty() {
        let _ = writeln!(out, "\nassumed (not in the tree):");
        for a in &r.assumed {
            let _ = writeln!(out, "  {a}");
        }
    }
    if !r.notes.is_empty() {
        let _ = writeln!(out, "\nnot checked:");
        for n in &r.notes {
            let _ = writeln!(out, "  {n}");
        }
    }
    let _ = writeln!(
        out,
        "\nverdict: {}",
        if r.ok() {
            "Oxen would boot this system"
        } else {
            "Oxen would not boot this system"
        }
    );
    out
}

fn system_text(out: &mut String, r: &Report, s: &System) {
    let _ = writeln!(
        out,
        "\n{} domain(s); guest IPA {} bits",
        s.domains.len(),
        s.ipa_bits
    );
    for d in &s.domains {
        let _ = writeln!(
            out,
            "  d{} ({}): {} vCPU(s), {} MiB{}; xen,enhanced {}",
            d.domid,
            d.name,
            d.vcpus,
            d.memory_kib / 1024,
            if d.vpl011 { ", vpl011" } else { "" },
            d.enhanced
        );
        module_line(out, "kernel", &d.kernel);
        if let Some(m) = &d.ramdisk {
            module_line(out, "ramdisk", m);
        }
        if let Some(m) = &d.device_tree {
            module_line(out, "device-tree", m);
        }
        let _ = writeln!(
            out,
            "     interfaces  {}",
            if d.interfaces.is_empty() {
                "none (no /hypervisor node)".to_string()
            } else {
                d.interfaces.join(", ")
            }
        );
        if !d.not_given.is_empty() {
            let _ = writeln!(
                out,
                "     not given   {} (this xen,enhanced does not ask for them)",
                d.not_given.join(", ")
            );
        }
    }
    if s.domains.iter().any(|d| !d.interfaces.is_empty()) {
        let _ = writeln!(
            out,
            "  a mistyped xen,enhanced, or one this image cannot serve, stops Oxen's boot; \
             Xen 4.20 boots such a domain without /hypervisor, losing every interface above"
        );
    }
    let _ = writeln!(out, "\nconnections between domains:");
    if s.connections.is_empty() {
        let _ = writeln!(out, "  none (no static event channels, no PV devices)");
    }
    for c in &s.connections {
        let _ = writeln!(out, "  {}: {} {}", c.kind, c.path, c.detail);
    }
    let _ = writeln!(out, "\nmemory map:");
    for e in &s.memory {
        let note = if e.note.is_empty() {
            String::new()
        } else if e.what == "RAM" || e.what.starts_with("Oxen") || e.what == "device tree" {
            format!(" ({})", e.note)
        } else {
            format!(" {}", e.note)
        };
        let _ = writeln!(out, "  {:<11} {}{note}", e.what, e.range);
    }
    let _ = writeln!(
        out,
        "  free        {} MiB in {} range(s)",
        mib(s.free.iter().map(|r| r.size()).sum()),
        s.free.len()
    );
    let _ = writeln!(out, "\nXen options Oxen would ignore:");
    if r.ignored_options.is_empty() {
        let _ = writeln!(out, "  none");
    } else {
        let _ = writeln!(out, "  {}", r.ignored_options.join(" "));
    }
    if !s.ignored.is_empty() {
        let _ = writeln!(out, "\nignored properties and nodes:");
        for w in &s.ignored {
            let _ = writeln!(out, "  {w}");
        }
    }
}

fn range(r: &Range) -> Value {
    json!({ "start": r.start, "end": r.end })
}

fn module_json(m: &Module) -> Value {
    json!({ "path": m.path, "range": range(&m.range), "bootargs": m.bootargs })
}

/// The report as JSON: the same facts, for CI pipelines.
pub fn json(r: &Report) -> Value {
    let mut v = json!({
        "input": r.input,
        "board": r.board,
        "features": r.features,
        "ok": r.ok(),
        "assumed": r.assumed,
        "not_checked": r.notes,
        "log": r.log,
        "ignored_options": r.ignored_options,
        "script": {
            "loads": r.script_loads.iter().map(|l| json!({
                "line": l.line, "address": l.addr, "file": l.file, "size": l.size,
            })).collect::<Vec<_>>(),
            "problems": r.script_problems,
        },
    });
    match &r.outcome {
        Outcome::Stopped(lines) => {
            v["errors"] = json!(lines);
        }
        Outcome::Built(s) => {
            v["system"] = json!({
                "ipa_bits": s.ipa_bits,
                "domains": s.domains.iter().map(|d| json!({
                    "domid": d.domid,
                    "name": d.name,
                    "path": d.path,
                    "vcpus": d.vcpus,
                    "memory_kib": d.memory_kib,
                    "vpl011": d.vpl011,
                    "xen_enhanced": d.enhanced,
                    "kernel": module_json(&d.kernel),
                    "ramdisk": d.ramdisk.as_ref().map(module_json),
                    "device_tree": d.device_tree.as_ref().map(module_json),
                    "interfaces": d.interfaces,
                    "not_given": d.not_given,
                })).collect::<Vec<_>>(),
                "connections": s.connections.iter().map(|c| json!({
                    "kind": c.kind, "path": c.path, "detail": c.detail,
                })).collect::<Vec<_>>(),
                "memory_map": s.memory.iter().map(|e| json!({
                    "what": e.what, "range": range(&e.range), "note": e.note,
                })).collect::<Vec<_>>(),
                "free": s.free.iter().map(range).collect::<Vec<_>>(),
                "ignored": s.ignored,
            });
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, len: u64) -> Range {
        Range::with_size(start, len).unwrap()
    }

    fn built() -> Report {
        Report {
            input: "configs/x.dts".into(),
            board: "qemu-virt".into(),
            features: vec!["evtchn".into(), "xenstore".into()],
            assumed: vec!["the device tree at 0x48000000".into()],
            ignored_options: vec!["bootscrub=0".into()],
            outcome: Outcome::Built(System {
                domains: vec![Domain {
                    domid: 1,
                    name: "domU1".into(),
                    path: "/chosen/domU1".into(),
                    vcpus: 2,
                    memory_kib: 262144,
                    vpl011: true,
                    enhanced: "no-xenstore".into(),
                    kernel: Module {
                        path: "/chosen/domU1/kernel@50000000".into(),
                        range: r(0x5000_0000, 0x1000),
                        bootargs: Some("console=ttyAMA0".into()),
                    },
                    ramdisk: None,
                    device_tree: None,
                    interfaces: vec!["event channels".into()],
                    not_given: vec!["xenstore".into()],
                }],
                connections: vec![Connection {
                    kind: "static event channel",
                    path: "/chosen/domU1/ec".into(),
                    detail: "d1 port 10 <-> d2 port 12 (/chosen/domU2/ec)".into(),
                }],
                memory: vec![MapEntry::new(
                    "RAM",
                    r(0x4000_0000, 1 << 30),
                    "1024 MiB".into(),
                )],
                free: vec![r(0x4000_0000, 64 << 20), r(0x6000_0000, 64 << 20)],
                ignored: vec![],
                ipa_bits: 40,
            }),
            ..Report::default()
        }
    }

    #[test]
    fn a_built_system_lists_domains_modules_interfaces_and_memory() {
        let t = text(&built());
        assert!(
            t.starts_with("oxen-check: configs/x.dts on qemu-virt (image: evtchn, xenstore)\n")
        );
        assert!(t.contains("  d1 (domU1): 2 vCPU(s), 256 MiB, vpl011; xen,enhanced no-xenstore\n"));
        assert!(t.contains(
            "     kernel      /chosen/domU1/kernel@50000000 0x0050000000-0x0050001000 (4 KiB)\n                 bootargs \"console=ttyAMA0\"\n"
        ));
        assert!(t.contains("     interfaces  event channels\n"));
        assert!(t.contains("     not given   xenstore ("));
        assert!(t.contains("  static event channel: /chosen/domU1/ec d1 port 10 <-> d2 port 12"));
        assert!(t.contains("  RAM         0x0040000000-0x0080000000 (1024 MiB)\n"));
        assert!(t.contains("  free        128 MiB in 2 range(s)\n"));
        assert!(t.contains("Xen options Oxen would ignore:\n  bootscrub=0\n"));
        assert!(t.ends_with("verdict: Oxen would boot this system\n"));
        assert_eq!(built().exit_code(), 0);
    }

    #[test]
    fn a_stopped_boot_prints_the_boots_lines_and_exits_1() {
        let mut rep = built();
        rep.log = vec!["subsystems: evtchn".into()];
        rep.outcome = Outcome::Stopped(vec![
            "the domain configuration has 1 error(s):".into(),
            "  /chosen/domU2: cpus is missing".into(),
            "boot stopped: fix the device tree; nothing was started".into(),
        ]);
        let t = text(&rep);
        assert!(t.contains(
            "the boot would print:\nsubsystems: evtchn\nthe domain configuration has 1 error(s):\n  /chosen/domU2: cpus is missing\nboot stopped: fix"
        ));
        assert!(t.ends_with("verdict: Oxen would not boot this system\n"));
        assert_eq!(rep.exit_code(), 1);
        let j = json(&rep);
        assert_eq!(j["ok"], false);
        assert_eq!(j["errors"][1], "  /chosen/domU2: cpus is missing");
    }

    #[test]
    fn json_carries_the_same_facts() {
        let j = json(&built());
        assert_eq!(j["ok"], true);
        let d = &j["system"]["domains"][0];
        assert_eq!(d["name"], "domU1");
        assert_eq!(d["kernel"]["range"]["start"], 0x5000_0000u64);
        assert_eq!(d["interfaces"][0], "event channels");
        assert_eq!(
            j["system"]["connections"][0]["kind"],
            "static event channel"
        );
        assert_eq!(j["ignored_options"][0], "bootscrub=0");
    }

    #[test]
    fn script_problems_turn_a_good_system_red() {
        let mut rep = built();
        rep.script_problems = vec!["line 3: Image at … overlaps …".into()];
        assert_eq!(rep.exit_code(), 1);
        assert!(text(&rep).contains("the boot script has 1 problem(s):\n  line 3:"));
    }
}
