//! `cargo xtask test`: every check, in the order a failure is cheapest to
//! find — formatting, lints, host unit tests, every config through
//! oxen-check, then booting images in QEMU.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::configs;
use crate::expect::{Boot, Expect, Peer, Want};
use crate::qemu::{self, Machine, Outcome};
use crate::{BuildSpec, build, cargo, root, run_cmd, setup};

/// Features of a board and which are on by default, read from its
/// `Cargo.toml`. By convention a feature `x` links crate `oxen-x`, which
/// registers the subsystem named `x`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardFeatures {
    pub all: Vec<String>,
    pub default: Vec<String>,
}

/// Reads the `[features]` table of a board manifest (the simple
/// `name = ["a", "b"]` form cargo itself writes).
pub fn parse_features(manifest: &str) -> BoardFeatures {
    let mut in_features = false;
    let mut all = Vec::new();
    let mut default = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_features = line == "[features]";
            continue;
        }
        if !in_features || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim().to_string();
        if name == "default" {
            default = value
                .trim()
                .trim_matches(['[', ']'])
                .split(',')
                .map(|s| s.trim().trim_matches('"').to_string())
                .filter(|s| !s.is_empty())
                .collect();
        } else {
            all.push(name);
        }
    }
    all.sort();
    BoardFeatures { all, default }
}

/// Every subset of `features`, smallest first.
pub fn powerset(features: &[String]) -> Vec<Vec<String>> {
    let mut sets: Vec<Vec<String>> = (0..1u32 << features.len())
        .map(|mask| {
            features
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, f)| f.clone())
                .collect()
        })
        .collect();
    sets.sort_by_key(Vec::len);
    sets
}

/// What a boot of an image with no domains must show.
#[derive(Debug, Clone)]
pub struct BootExpectation {
    pub cpus: u32,
    pub subsystems: BTreeSet<String>,
}

/// The problems with a captured boot, empty when it is as expected.
pub fn check_boot(out: &Outcome, want: &BootExpectation) -> Vec<String> {
    let mut problems = Vec::new();
    if out.timed_out {
        problems.push(format!("hung: no power-off within {:?}", out.elapsed));
    }
    if out.faulted || out.log.contains("*** FAULT") {
        problems.push("the hypervisor reported a fault".into());
    }
    if out.log.contains("*** PANIC") {
        problems.push("the hypervisor panicked".into());
    }
    if !out.timed_out && !out.faulted && out.status != Some(0) {
        problems.push(format!("QEMU exited with status {:?}", out.status));
    }
    let online = format!("{0} of {0} CPUs online", want.cpus);
    if !out.log.contains(&online) {
        problems.push(format!("missing \"{online}\""));
    }
    match out
        .log
        .lines()
        .find_map(|l| l.split_once("(oxen) subsystems: ").map(|(_, s)| s.trim()))
    {
        None => problems.push("no \"subsystems:\" line".into()),
        Some(list) => {
            let got: BTreeSet<String> = if list == "none" {
                BTreeSet::new()
            } else {
                list.split(", ").map(String::from).collect()
            };
            if got != want.subsystems {
                problems.push(format!(
                    "registered subsystems {got:?} differ from the features built {:?}",
                    want.subsystems
                ));
            }
        }
    }
    if !out.log.contains("(oxen) powering off") {
        problems.push("did not reach \"powering off\"".into());
    }
    problems
}

fn step(name: &str, f: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    eprintln!("\n==> {name}");
    f().map_err(|e| format!("{name}: {e}"))
}

fn boards() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root().join("boards"))
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

fn board_features(board: &str) -> Result<BoardFeatures, String> {
    let path = root().join("boards").join(board).join("Cargo.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(parse_features(&text))
}

/// What `cargo xtask test` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Boot images in QEMU (`--no-qemu` turns it off).
    pub qemu: bool,
    /// The hypervisor the configs boot on (`--peer xen`: the differential
    /// run, every config on Xen 4.20 instead of the Oxen matrix).
    pub peer: Peer,
}

impl Options {
    /// Reads `cargo xtask test`'s options: `--no-qemu`, `--peer oxen|xen`.
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut opts = Options {
            qemu: true,
            peer: Peer::Oxen,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--no-qemu" => opts.qemu = false,
                "--peer" => {
                    opts.peer = Peer::parse(it.next().ok_or("--peer needs a name (oxen or xen)")?)?
                }
                other => {
                    return Err(format!(
                        "unknown option {other} (expected --no-qemu or --peer oxen|xen)"
                    ));
                }
            }
        }
        if !opts.qemu && opts.peer == Peer::Xen {
            return Err("--peer xen boots configs in QEMU, so it cannot go with --no-qemu".into());
        }
        Ok(opts)
    }
}

/// Runs `cargo xtask test`: on Oxen every check and the QEMU matrix; with
/// `--peer xen` every config on Xen 4.20 (the lints and unit tests are
/// Oxen's, so that run skips them).
pub fn run(opts: &Options) -> Result<(), String> {
    step("toolchain", setup::ensure_toolchain)?;
    if opts.peer == Peer::Xen {
        step("QEMU tools", setup::ensure_host_tools)?;
        let mut tally = Tally::default();
        xen_configs(&mut tally)?;
        return tally.finish();
    }
    step("rustfmt", || {
        run_cmd(cargo().args(["fmt", "--all", "--", "--check"]))
    })?;
    let boards = boards();
    step("clippy (host)", || {
        let mut c = cargo();
        c.args(["clippy", "--quiet", "--workspace", "--all-targets"]);
        for b in &boards {
            c.args(["--exclude", &crate::board_package(b)]);
        }
        run_cmd(c.args(["--", "-D", "warnings"]))
    })?;
    let mut tally = Tally::default();
    for b in &boards {
        let feats = board_features(b)?;
        for set in powerset(&feats.all) {
            step(
                &format!("clippy (aarch64, {b}, features [{}])", set.join(",")),
                || {
                    let mut c = cargo();
                    c.args(["clippy", "--quiet", "--target", "aarch64-unknown-none"])
                        .args(["-p", &crate::board_package(b), "-p", "oxen-core"])
                        .arg("--no-default-features");
                    for f in &set {
                        c.args(["-p", &format!("oxen-{f}")]);
                    }
                    if !set.is_empty() {
                        c.args(["--features", &set.join(",")]);
                    }
                    run_cmd(c.args(["--", "-D", "warnings"]))
                },
            )?;
            tally.built += 1;
        }
    }
    if opts.qemu {
        // Host tests compile device trees with dtc.
        step("QEMU tools", setup::ensure_host_tools)?;
    }
    step(
        "test guests (rustfmt, clippy)",
        crate::guests_build::check_all,
    )?;
    step("host tests", || {
        let mut c = cargo();
        c.args(["test", "--workspace"]);
        for b in &boards {
            c.args(["--exclude", &crate::board_package(b)]);
        }
        run_cmd(&mut c)
    })?;
    step("configs through oxen-check", crate::check::configs_step)?;
    step("fuzz targets (fixed-iteration pass)", crate::fuzz::smoke)?;
    if !opts.qemu {
        println!(
            "matrix: {} cells built (feature sets x boards)",
            tally.built
        );
        return Ok(());
    }
    eprintln!("\n==> QEMU matrix");
    for b in &boards {
        matrix(b, &mut tally)?;
    }
    tally.finish()
}

/// The feature sets whose images are booted: none, all, and all but each
/// one (so every feature is seen missing from an otherwise full image).
/// Each set is sorted; smallest first, no set twice.
pub fn representative_sets(features: &[String]) -> Vec<Vec<String>> {
    let mut all = features.to_vec();
    all.sort();
    let mut sets = vec![Vec::new(), all.clone()];
    for f in &all {
        sets.push(all.iter().filter(|g| *g != f).cloned().collect());
    }
    sets.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    sets.dedup();
    sets
}

/// How to build the image of a feature set: the board's defaults when the
/// set is exactly them, so that image is shared with `cargo xtask run`.
pub fn build_spec(board: &str, set: &[String], feats: &BoardFeatures) -> BuildSpec {
    let mut default = feats.default.clone();
    default.sort();
    BuildSpec {
        board: board.into(),
        features: (set != default.as_slice()).then(|| set.to_vec()),
        release: true,
    }
}

/// A feature set as people read it: `none` or `evtchn+gnttab`.
pub fn set_label(set: &[String]) -> String {
    if set.is_empty() {
        "none".into()
    } else {
        set.join("+")
    }
}

/// The counts a run reports at the end, and what failed.
#[derive(Debug, Default)]
pub struct Tally {
    /// Feature sets x boards built (clippy-clean for the target).
    pub built: usize,
    /// QEMU runs: images booted with no domains, and image x config runs.
    pub booted: usize,
    /// `TEST … PASS` lines of test guests, summed over every run.
    pub cases: usize,
    pub passed: usize,
    pub failed: Vec<String>,
    pub skipped: usize,
}

impl Tally {
    /// Counts one QEMU run, named `name`, with the problems found in it
    /// (none when it passed), printing its verdict and, when it failed,
    /// the problems and the console log.
    pub fn record(&mut self, name: &str, out: &Outcome, problems: &[String], cases: usize) {
        self.booted += 1;
        self.cases += cases;
        if problems.is_empty() {
            println!("{name}: ok ({:.1} s)", out.elapsed.as_secs_f64());
            self.passed += 1;
        } else {
            println!("{name}: FAILED");
            for p in problems {
                println!("    {p}");
            }
            println!("---- console log ----\n{}---- end ----", out.log);
            self.failed.push(name.to_string());
        }
    }

    /// The closing lines — the counts, then `qemu: N passed, M failed`,
    /// last because CI reads it — and `Err` when any run failed.
    pub fn finish(&self) -> Result<(), String> {
        println!("{}", self.summary());
        println!("qemu: {} passed, {} failed", self.passed, self.failed.len());
        if self.failed.is_empty() {
            Ok(())
        } else {
            Err(format!("QEMU tests failed: {}", self.failed.join(", ")))
        }
    }

    /// `matrix: …`: cells built, cells booted, cases passed.
    pub fn summary(&self) -> String {
        format!(
            "matrix: {} cells built (feature sets x boards), {} cells booted (images x configs; {} did not apply), {} cases passed",
            self.built, self.booted, self.skipped, self.cases
        )
    }
}

/// The `TEST … PASS` lines the test guests of a run printed.
fn cases_passed(want: &Want, out: &Outcome) -> usize {
    want.cases
        .iter()
        .map(|(d, _)| want.guest_run(&out.log, d).passed.len())
        .sum()
}

/// Which cell of how many is running, on stderr when it is a terminal.
pub struct Progress {
    total: usize,
    done: usize,
    start: Instant,
    on: bool,
}

impl Progress {
    pub fn new(total: usize) -> Self {
        Self {
            total,
            done: 0,
            start: Instant::now(),
            on: std::io::stderr().is_terminal(),
        }
    }

    /// A cell starts: `[37/186 12m03s] qemu-virt all: guest-xenstore`.
    pub fn cell(&mut self, what: &str) {
        self.done += 1;
        if self.on {
            eprintln!(
                "{}",
                progress_line(self.done, self.total, self.start.elapsed(), what)
            );
        }
    }
}

/// One progress line.
pub fn progress_line(n: usize, total: usize, elapsed: Duration, what: &str) -> String {
    let s = elapsed.as_secs();
    format!("[{n}/{total} {}m{:02}s] {what}", s / 60, s % 60)
}

/// The cells a board's matrix boots: 2 bare boots per image, then each
/// config that applies to it, once per way it boots.
fn matrix_cells(sets: &[Vec<String>], expects: &[(String, Expect)], default: &[String]) -> usize {
    let mut n = 0;
    for set in sets {
        n += 2;
        for (_, e) in expects {
            if e.skip_reason(Peer::Oxen, set).is_some() {
                continue;
            }
            n += e
                .boots
                .iter()
                .filter(|&&b| b == Boot::Direct || set == default)
                .count();
        }
    }
    n
}

/// One board's part of the matrix: each representative image booted with
/// no domains on 2 and 4 CPUs (the subsystems registered must be exactly
/// its features), then — for the board the configs are written for —
/// every config that applies to the image, checked against its `.expect`.
fn matrix(board: &str, tally: &mut Tally) -> Result<(), String> {
    let feats = board_features(board)?;
    let configs_board = BuildSpec::default().board;
    let names = if board == configs_board {
        configs::names()?
    } else {
        Vec::new()
    };
    let mut expects = Vec::new();
    for name in &names {
        expects.push((name.clone(), configs::read_expect(name)?));
    }
    let sets = representative_sets(&feats.all);
    let mut default = feats.default.clone();
    default.sort();
    let mut progress = Progress::new(matrix_cells(&sets, &expects, &default));
    for set in sets {
        let label = set_label(&set);
        let spec = build_spec(board, &set, &feats);
        let img = build(&spec)?;
        for smp in [2, 4] {
            let name = format!("QEMU {board}/{label}/smp{smp}");
            progress.cell(&format!("{board} {label}: no domains, {smp} CPUs"));
            let out = qemu::run_captured(&Machine::new(&img, smp), Duration::from_secs(60))?;
            let problems = check_boot(
                &out,
                &BootExpectation {
                    cpus: smp,
                    subsystems: set.iter().cloned().collect(),
                },
            );
            tally.record(&name, &out, &problems, 0);
        }
        // U-Boot boots the configs that ask for it on the board's default
        // image (the one `cargo xtask run --uboot` boots).
        let is_default = spec.features.is_none();
        for (name, expect) in &expects {
            for &boot in &expect.boots {
                if boot == Boot::UBoot && !is_default {
                    continue;
                }
                if expect.skip_reason(Peer::Oxen, &set).is_none() {
                    progress.cell(&format!("{board} {label}: {name}"));
                }
                boot_config(name, expect, Peer::Oxen, &set, &img, &label, boot, tally)?;
            }
        }
    }
    Ok(())
}

/// One cell: config `name` on `peer` with `image` (built with `features`),
/// booted the `boot` way, or a skip when its `.expect` says it does not
/// apply there.
#[allow(clippy::too_many_arguments)]
fn boot_config(
    name: &str,
    expect: &Expect,
    peer: Peer,
    features: &[String],
    image: &Path,
    label: &str,
    boot: Boot,
    tally: &mut Tally,
) -> Result<(), String> {
    let label = match boot {
        Boot::Direct => label.to_string(),
        Boot::UBoot => format!("{label}, U-Boot"),
    };
    if let Some(why) = expect.skip_reason(peer, features) {
        println!("config {name} [{label}]: skipped ({why})");
        tally.skipped += 1;
        return Ok(());
    }
    let prepared = configs::prepare_with(name, peer, image, None, boot, &[])?;
    let out = configs::run(&prepared)?;
    let problems = configs::check(&prepared, &out);
    let cases = cases_passed(&prepared.want, &out);
    tally.record(&format!("config {name} [{label}]"), &out, &problems, cases);
    Ok(())
}

/// The differential run: every config that applies to Xen, booted on Xen
/// 4.20 from the same DTB and modules, checked against its expectations
/// for Xen.
fn xen_configs(tally: &mut Tally) -> Result<(), String> {
    eprintln!("\n==> configs on Xen 4.20");
    let image = configs::image_for(Peer::Xen, &BuildSpec::default())?;
    let mut expects = Vec::new();
    for name in configs::names()? {
        let expect = configs::read_expect(&name)?;
        expects.push((name, expect));
    }
    let total = expects
        .iter()
        .filter(|(_, e)| e.skip_reason(Peer::Xen, &[]).is_none())
        .map(|(_, e)| e.boots.len())
        .sum();
    let mut progress = Progress::new(total);
    for (name, expect) in &expects {
        for &boot in &expect.boots {
            if expect.skip_reason(Peer::Xen, &[]).is_none() {
                progress.cell(&format!("xen: {name}"));
            }
            boot_config(name, expect, Peer::Xen, &[], &image, "xen", boot, tally)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expect;

    const MANIFEST: &str = r#"
[package]
name = "oxen-qemu-virt"

[features]
default = ["evtchn", "gnttab"]
evtchn = ["dep:oxen-evtchn"]
gnttab = ["dep:oxen-gnttab"]
xenstore = ["dep:oxen-xenstore"]

[dependencies]
oxen-core.workspace = true
"#;

    #[test]
    fn a_progress_line_names_the_cell_of_how_many_and_the_time() {
        assert_eq!(
            progress_line(
                37,
                186,
                Duration::from_secs(723),
                "qemu-virt all: guest-xenstore"
            ),
            "[37/186 12m03s] qemu-virt all: guest-xenstore"
        );
    }

    #[test]
    fn matrix_cells_count_the_bare_boots_and_the_configs_that_apply() {
        let e = |t: &str| expect::parse(t, "x").unwrap();
        let expects = vec![
            ("a".to_string(), e("end: power-off\n")),
            ("b".to_string(), e("end: power-off\nrequires: evtchn\n")),
            ("c".to_string(), e("end: power-off\nboot: direct uboot\n")),
        ];
        let sets = vec![strings(&[]), strings(&["evtchn"])];
        // none: 2 + a + c; evtchn (the default): 2 + a + b + c twice.
        assert_eq!(matrix_cells(&sets, &expects, &strings(&["evtchn"])), 4 + 6);
    }

    #[test]
    fn features_come_from_the_board_manifest() {
        let f = parse_features(MANIFEST);
        assert_eq!(f.all, ["evtchn", "gnttab", "xenstore"]);
        assert_eq!(f.default, ["evtchn", "gnttab"]);
    }

    #[test]
    fn powerset_has_every_combination() {
        let f = parse_features(MANIFEST);
        let sets = powerset(&f.all);
        assert_eq!(sets.len(), 8);
        assert!(sets[0].is_empty());
        assert_eq!(sets[7].len(), 3);
    }

    fn outcome(log: &str) -> Outcome {
        Outcome {
            log: log.into(),
            status: Some(0),
            timed_out: false,
            faulted: false,
            elapsed: Duration::from_secs(1),
        }
    }

    const GOOD: &str =
        "(oxen) subsystems: evtchn, gnttab\n(oxen) 2 of 2 CPUs online\n(oxen) powering off\n";

    fn want() -> BootExpectation {
        BootExpectation {
            cpus: 2,
            subsystems: ["evtchn".to_string(), "gnttab".to_string()].into(),
        }
    }

    #[test]
    fn a_good_boot_passes() {
        assert!(check_boot(&outcome(GOOD), &want()).is_empty());
    }

    #[test]
    fn a_missing_subsystem_turns_the_run_red() {
        let log = GOOD.replace("evtchn, gnttab", "gnttab");
        let p = check_boot(&outcome(&log), &want());
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("differ from the features built"));
    }

    #[test]
    fn a_hung_boot_turns_the_run_red() {
        let mut o = outcome("(oxen) subsystems: evtchn, gnttab\n");
        o.timed_out = true;
        o.status = None;
        let p = check_boot(&o, &want());
        assert!(p.iter().any(|p| p.starts_with("hung")));
        assert!(p.iter().any(|p| p.contains("CPUs online")));
    }

    #[test]
    fn a_fault_or_a_missing_cpu_turns_the_run_red() {
        let log = GOOD.replace("2 of 2", "1 of 2")
            + "(oxen) *** FAULT on CPU1: synchronous exception from EL2\n";
        let p = check_boot(&outcome(&log), &want());
        assert_eq!(p.len(), 2, "{p:?}");
    }
    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn representative_images_are_none_all_and_all_but_each_feature() {
        let f = parse_features(MANIFEST);
        let sets = representative_sets(&f.all);
        assert_eq!(
            sets,
            [
                strings(&[]),
                strings(&["evtchn", "gnttab"]),
                strings(&["evtchn", "xenstore"]),
                strings(&["gnttab", "xenstore"]),
                strings(&["evtchn", "gnttab", "xenstore"]),
            ]
        );
    }

    #[test]
    fn representative_images_never_repeat_a_set() {
        assert_eq!(
            representative_sets(&strings(&["evtchn"])),
            [strings(&[]), strings(&["evtchn"])]
        );
        assert_eq!(representative_sets(&[]), [strings(&[])]);
    }

    #[test]
    fn the_default_set_is_built_as_the_default_image() {
        let f = parse_features(MANIFEST);
        let spec = build_spec("qemu-virt", &strings(&["evtchn", "gnttab"]), &f);
        assert_eq!(spec.features, None);
        let spec = build_spec("qemu-virt", &strings(&["gnttab"]), &f);
        assert_eq!(spec.features, Some(strings(&["gnttab"])));
        assert_eq!(set_label(&[]), "none");
        assert_eq!(set_label(&strings(&["evtchn", "gnttab"])), "evtchn+gnttab");
    }

    #[test]
    fn test_options_read_no_qemu_and_the_peer() {
        let o = Options::parse(&strings(&["--peer", "xen"])).unwrap();
        assert_eq!(
            o,
            Options {
                qemu: true,
                peer: Peer::Xen
            }
        );
        let o = Options::parse(&strings(&["--no-qemu"])).unwrap();
        assert_eq!(
            o,
            Options {
                qemu: false,
                peer: Peer::Oxen
            }
        );
        assert!(Options::parse(&strings(&["--peer"])).is_err());
        assert!(
            Options::parse(&strings(&["--peer", "kvm"]))
                .unwrap_err()
                .contains("kvm")
        );
        assert!(Options::parse(&strings(&["--no-qemu", "--peer", "xen"])).is_err());
        assert!(
            Options::parse(&strings(&["--fast"]))
                .unwrap_err()
                .contains("--fast")
        );
    }

    /// A run of the ABI guest in one domain, checked as the matrix does.
    fn guest_run(log: &str, status: Option<i32>, timed_out: bool) -> (Outcome, Want, Vec<String>) {
        let want = expect::parse("end: power-off\ncases: domU1 all, at least 2\n", "g")
            .unwrap()
            .for_peer(Peer::Oxen, &strings(&["domU1"]));
        let mut out = outcome(log);
        out.status = status;
        out.timed_out = timed_out;
        let problems = expect::check(&out, &want);
        (out, want, problems)
    }

    const GUEST_OK: &str =
        "(d1) TEST dt.cpus PASS\n(d1) TEST psci.version PASS\n(d1) 2 passed, 0 failed\n";

    #[test]
    fn a_passing_guest_counts_its_cases_and_the_run_is_green() {
        let (out, want, problems) = guest_run(GUEST_OK, Some(0), false);
        let mut t = Tally::default();
        t.record(
            "config guest [all]",
            &out,
            &problems,
            cases_passed(&want, &out),
        );
        assert_eq!((t.booted, t.passed, t.cases), (1, 1, 2));
        assert!(t.finish().is_ok());
    }

    #[test]
    fn a_failing_guest_case_turns_the_whole_run_red() {
        let log = GUEST_OK
            .replace("psci.version PASS", "psci.version FAIL PSCI_VERSION is 0x2")
            .replace("2 passed, 0 failed", "1 passed, 1 failed");
        let (out, want, problems) = guest_run(&log, Some(0), false);
        let mut t = Tally::default();
        t.record(
            "config guest [none]",
            &out,
            &problems,
            cases_passed(&want, &out),
        );
        assert_eq!(t.cases, 1);
        let err = t.finish().unwrap_err();
        assert_eq!(err, "QEMU tests failed: config guest [none]");
    }

    #[test]
    fn a_hung_guest_turns_the_whole_run_red() {
        let (out, _, problems) = guest_run("(d1) TEST dt.cpus PASS\n", None, true);
        let mut t = Tally::default();
        t.record("config guest [none]", &out, &problems, 1);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("domU1 hung after 1 case(s)"))
        );
        assert!(t.finish().is_err());
    }

    #[test]
    fn a_missing_subsystem_turns_the_whole_run_red() {
        let log = GOOD.replace("evtchn, gnttab", "gnttab");
        let out = outcome(&log);
        let mut t = Tally::default();
        t.record(
            "QEMU qemu-virt/all/smp2",
            &out,
            &check_boot(&out, &want()),
            0,
        );
        t.record(
            "QEMU qemu-virt/all/smp4",
            &outcome(GOOD),
            &check_boot(&outcome(GOOD), &want()),
            0,
        );
        assert_eq!((t.booted, t.passed), (2, 1));
        assert_eq!(
            t.finish().unwrap_err(),
            "QEMU tests failed: QEMU qemu-virt/all/smp2"
        );
    }

    #[test]
    fn the_summary_names_cells_built_booted_and_cases_passed() {
        let t = Tally {
            built: 8,
            booted: 90,
            cases: 1234,
            passed: 90,
            failed: vec![],
            skipped: 25,
        };
        assert_eq!(
            t.summary(),
            "matrix: 8 cells built (feature sets x boards), 90 cells booted (images x configs; 25 did not apply), 1234 cases passed"
        );
    }
}
