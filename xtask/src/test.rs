//! `cargo xtask test`: every check, in the order a failure is cheapest to
//! find — formatting, lints, host unit tests, every config through
//! oxen-check, then booting images in QEMU.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::boards::{self, Board, BoardFeatures};
use crate::configs;
use crate::expect::{Boot, Expect, Peer, Want};
use crate::qemu::{self, Outcome};
use crate::{BuildSpec, build, cargo, run_cmd, setup};

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

/// One clippy cell: board image `image` with `interfaces` and `drivers`.
fn clippy_cell(image: &str, interfaces: &[String], drivers: &[String]) -> Result<(), String> {
    let mut c = cargo();
    c.args(["clippy", "--quiet", "--target", "aarch64-unknown-none"])
        .args(["-p", &crate::board_package(image), "-p", "oxen-core"])
        .arg("--no-default-features");
    // A Xen interface `x` is the crate `oxen-x`; a driver is core's.
    for f in interfaces {
        c.args(["-p", &format!("oxen-{f}")]);
    }
    let features: Vec<&str> = interfaces
        .iter()
        .chain(drivers)
        .map(String::as_str)
        .collect();
    if !features.is_empty() {
        c.args(["--features", &features.join(",")]);
    }
    run_cmd(c.args(["--", "-D", "warnings"]))
}

/// What a driver variant's ELF shows: the symbols naming a driver it
/// leaves out (which must be none), and whether any names a driver it
/// links (so that the first is not true of an empty symbol table).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct VariantSymbols {
    pub foreign: Vec<(String, String)>,
    pub own: usize,
}

/// Sorts `symbols` by the drivers they name.
pub fn variant_symbols(
    symbols: &[String],
    linked: &[String],
    left_out: &[String],
) -> VariantSymbols {
    let mut v = VariantSymbols::default();
    for s in symbols {
        if let Some(d) = left_out.iter().find(|d| crate::image::names_driver(s, d)) {
            v.foreign.push((d.clone(), s.clone()));
        } else if linked.iter().any(|d| crate::image::names_driver(s, d)) {
            v.own += 1;
        }
    }
    v
}

/// The problems with a driver variant's symbols; empty when it carries no
/// code of the drivers it leaves out.
pub fn variant_problems(v: &VariantSymbols, left_out: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    if v.own == 0 {
        problems.push(
            "no symbol names any driver it links: the symbol table cannot show what it lacks"
                .into(),
        );
    }
    for d in left_out {
        let named: Vec<&str> = v
            .foreign
            .iter()
            .filter(|(f, _)| f == d)
            .map(|(_, s)| s.as_str())
            .collect();
        if !named.is_empty() {
            problems.push(format!(
                "{} symbol(s) name {d}, which it does not link: {}{}",
                named.len(),
                named[..named.len().min(5)].join(", "),
                if named.len() > 5 { ", …" } else { "" }
            ));
        }
    }
    problems
}

/// Builds the image of `spec` (a driver variant: `spec.drivers` some of
/// the board's) and the board's image with every driver, prints both sizes
/// and whether the variant's ELF has a symbol naming a driver it leaves
/// out; `Err` when it has (or cannot be read). `cargo xtask build
/// --drivers D` and the tests' variant step.
pub fn check_variant(spec: &BuildSpec) -> Result<(), String> {
    let feats = boards::manifest(&spec.board)?;
    let variant = spec.drivers.clone().unwrap_or(feats.drivers.clone());
    let size = |spec: &BuildSpec| -> Result<(u64, std::path::PathBuf), String> {
        let img = build(spec)?;
        let bytes = std::fs::metadata(&img)
            .map_err(|e| format!("{}: {e}", img.display()))?
            .len();
        Ok((bytes, img.with_extension("")))
    };
    let all = BuildSpec {
        drivers: None,
        ..spec.clone()
    };
    let (all_bytes, _) = size(&all)?;
    let (bytes, elf) = size(spec)?;
    let left_out: Vec<String> = feats
        .drivers
        .iter()
        .filter(|d| !variant.contains(d))
        .cloned()
        .collect();
    let elf_bytes = std::fs::read(&elf).map_err(|e| format!("{}: {e}", elf.display()))?;
    let symbols =
        crate::image::symbol_names(&elf_bytes).map_err(|e| format!("{}: {e}", elf.display()))?;
    let v = variant_symbols(&symbols, &variant, &left_out);
    let problems = variant_problems(&v, &left_out);
    println!(
        "{} drivers {}: Image {all_bytes} bytes ({} KiB)",
        spec.board,
        feats.drivers.join("+"),
        all_bytes / 1024
    );
    let label = format!("{} drivers {}", spec.board, variant.join("+"));
    println!(
        "{label}: Image {bytes} bytes ({} KiB, {:+} bytes); {}",
        bytes / 1024,
        bytes as i64 - all_bytes as i64,
        if problems.is_empty() {
            format!(
                "no symbol names {} ({} symbols, {} naming its own drivers)",
                if left_out.is_empty() {
                    "a driver it leaves out".to_string()
                } else {
                    left_out.join(" or ")
                },
                symbols.len(),
                v.own
            )
        } else {
            "FAILED".into()
        }
    );
    for p in &problems {
        println!("    {p}");
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{label} carries code of a driver it leaves out ({})",
            elf.display()
        ))
    }
}

/// Every driver variant of every board image, through [`check_variant`];
/// all of them are built whatever failed before.
fn driver_variants(images: &[String]) -> Result<(), String> {
    let mut failed = Vec::new();
    for image in images {
        for variant in boards::manifest(image)?.variants {
            let spec = BuildSpec {
                board: image.clone(),
                drivers: Some(variant),
                ..BuildSpec::default()
            };
            if let Err(e) = check_variant(&spec) {
                println!("{e}");
                failed.push(format!(
                    "{image} [{}]",
                    spec.drivers.unwrap_or_default().join("+")
                ));
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("driver variants failed: {}", failed.join(", ")))
    }
}

/// What `cargo xtask test` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Boot images in QEMU (`--no-qemu` turns it off).
    pub qemu: bool,
    /// The hypervisor the configs boot on (`--peer xen`: the differential
    /// run, every config on Xen 4.20 instead of the Oxen matrix).
    pub peer: Peer,
    /// `--board B`: only that board's QEMU cells (no lints, unit tests,
    /// oxen-check or fuzz pass); `None`: every board.
    pub board: Option<&'static Board>,
}

impl Options {
    /// Reads `cargo xtask test`'s options: `--no-qemu`, `--peer oxen|xen`,
    /// `--board B`.
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut opts = Options {
            qemu: true,
            peer: Peer::Oxen,
            board: None,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--no-qemu" => opts.qemu = false,
                "--peer" => {
                    opts.peer = Peer::parse(it.next().ok_or("--peer needs a name (oxen or xen)")?)?
                }
                "--board" => {
                    opts.board = Some(boards::find(it.next().ok_or("--board needs a name")?)?)
                }
                other => {
                    return Err(format!(
                        "unknown option {other} (expected --no-qemu, --peer oxen|xen or --board B)"
                    ));
                }
            }
        }
        if !opts.qemu && opts.peer == Peer::Xen {
            return Err("--peer xen boots configs in QEMU, so it cannot go with --no-qemu".into());
        }
        if !opts.qemu && opts.board.is_some() {
            return Err("--board runs a board's QEMU cells, so it cannot go with --no-qemu".into());
        }
        Ok(opts)
    }

    /// The boards whose QEMU cells run.
    fn boards(&self) -> Vec<&'static Board> {
        match self.board {
            Some(b) => vec![b],
            None => boards::BOARDS.iter().collect(),
        }
    }
}

/// Runs `cargo xtask test`: on Oxen every check and the QEMU matrix; with
/// `--peer xen` every config on Xen 4.20 (the lints and unit tests are
/// Oxen's, so that run skips them); with `--board B` only that board's
/// QEMU cells, on the peer.
pub fn run(opts: &Options) -> Result<(), String> {
    step("toolchain", setup::ensure_toolchain)?;
    if opts.peer == Peer::Xen || opts.board.is_some() {
        step("QEMU tools", setup::ensure_host_tools)?;
        let mut tally = Tally::default();
        match opts.peer {
            Peer::Xen => xen_configs(&opts.boards(), &mut tally)?,
            Peer::Oxen => {
                let expects = all_expects()?;
                for b in opts.boards() {
                    matrix(b, &expects, &mut tally)?;
                }
            }
        }
        return tally.finish();
    }
    step("rustfmt", || {
        run_cmd(cargo().args(["fmt", "--all", "--", "--check"]))
    })?;
    let images = boards::images();
    step("clippy (host)", || {
        let mut c = cargo();
        c.args(["clippy", "--quiet", "--workspace", "--all-targets"]);
        for b in &images {
            c.args(["--exclude", &crate::board_package(b)]);
        }
        run_cmd(c.args(["--", "-D", "warnings"]))
    })?;
    let mut tally = Tally::default();
    // Every combination of a board's Xen interfaces, each with the board's
    // drivers; then each driver variant with the default interfaces.
    for b in &images {
        let feats = boards::manifest(b)?;
        for set in powerset(&feats.interfaces) {
            step(
                &format!(
                    "clippy (aarch64, {b}, features [{}], drivers [{}])",
                    set.join(","),
                    feats.drivers.join(",")
                ),
                || clippy_cell(b, &set, &feats.drivers),
            )?;
            tally.built += 1;
        }
        for variant in &feats.variants {
            step(
                &format!(
                    "clippy (aarch64, {b}, default features, drivers [{}])",
                    variant.join(",")
                ),
                || clippy_cell(b, &feats.default, variant),
            )?;
            tally.built += 1;
            tally.variants += 1;
        }
        tally.images += 1;
    }
    step("driver variants (images, sizes, symbols)", || {
        driver_variants(&images)
    })?;
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
        for b in &images {
            c.args(["--exclude", &crate::board_package(b)]);
        }
        run_cmd(&mut c)
    })?;
    step("configs through oxen-check", crate::check::configs_step)?;
    step("fuzz targets (fixed-iteration pass)", crate::fuzz::smoke)?;
    if !opts.qemu {
        println!("{}", tally.built_summary());
        return Ok(());
    }
    eprintln!("\n==> QEMU matrix");
    let expects = all_expects()?;
    for b in &boards::BOARDS {
        matrix(b, &expects, &mut tally)?;
    }
    tally.finish()
}

/// Every config's expectations, by name.
fn all_expects() -> Result<Vec<(String, Expect)>, String> {
    configs::names()?
        .into_iter()
        .map(|n| configs::read_expect(&n).map(|e| (n, e)))
        .collect()
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

/// How to build the image of a feature set (of Xen interfaces, with the
/// board's drivers): the board's defaults when the set is exactly them, so
/// that image is shared with `cargo xtask run`.
pub fn build_spec(board: &str, set: &[String], feats: &BoardFeatures) -> BuildSpec {
    BuildSpec {
        board: board.into(),
        features: (set != sorted(&feats.default).as_slice()).then(|| set.to_vec()),
        drivers: None,
        release: true,
    }
}

fn sorted(set: &[String]) -> Vec<String> {
    let mut s = set.to_vec();
    s.sort();
    s
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
    /// Feature sets x board images built (clippy-clean for the target),
    /// driver variants included.
    pub built: usize,
    /// Board images (directories under `boards/`).
    pub images: usize,
    /// Driver variants among the cells built.
    pub variants: usize,
    /// Boards (machines) booted.
    pub boards: usize,
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

    /// `matrix: N cells built (…)`, the start of the summary.
    pub fn built_summary(&self) -> String {
        format!(
            "matrix: {} cells built (feature sets x boards: {} board images, {} driver variants)",
            self.built, self.images, self.variants
        )
    }

    /// `matrix: …`: cells built, cells booted, cases passed.
    pub fn summary(&self) -> String {
        format!(
            "{}, {} cells booted (images x configs on {} board{}; {} did not apply), {} cases passed",
            self.built_summary(),
            self.booted,
            self.boards,
            if self.boards == 1 { "" } else { "s" },
            self.skipped,
            self.cases
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

/// The cells a board's matrix boots: its bare boots per image, then each
/// config that applies to it, once per way it boots.
fn matrix_cells(
    board: &Board,
    sets: &[Vec<String>],
    expects: &[(String, Expect)],
    default: &[String],
) -> usize {
    let mut n = 0;
    for set in sets {
        n += board.bare_smps().len();
        for (_, e) in expects {
            if !e.on_board(board) || e.skip_reason(Peer::Oxen, set).is_some() {
                continue;
            }
            n += e
                .boots
                .iter()
                .filter(|&&b| b == Boot::Direct || (board.uboot && set == default))
                .count();
        }
    }
    n
}

/// The images a board's matrix boots: on the home board the
/// representative sets; on every other the default image, whose drivers
/// and memory map are what the board adds.
pub fn board_sets(board: &Board, feats: &BoardFeatures) -> Vec<Vec<String>> {
    if board == boards::HOME {
        representative_sets(&feats.interfaces)
    } else {
        vec![sorted(&feats.default)]
    }
}

/// A cell's image as people read it: the feature set on the home board,
/// the board's name on another (which boots its default image only).
fn cell_label(board: &Board, set_label: &str) -> String {
    if board == boards::HOME {
        set_label.to_string()
    } else {
        board.name.to_string()
    }
}

/// One board's part of the matrix: each of its images booted with no
/// domains (the subsystems registered must be exactly its features, every
/// usable CPU must come online), then every config that applies to the
/// board and the image, checked against its `.expect`.
fn matrix(
    board: &'static Board,
    expects: &[(String, Expect)],
    tally: &mut Tally,
) -> Result<(), String> {
    let feats = boards::manifest(board.image)?;
    let expects: Vec<(String, Expect)> = expects
        .iter()
        .filter(|(_, e)| e.on_board(board))
        .cloned()
        .collect();
    let sets = board_sets(board, &feats);
    let default = sorted(&feats.default);
    let mut progress = Progress::new(matrix_cells(board, &sets, &expects, &default));
    tally.boards += 1;
    for set in sets {
        let label = cell_label(board, &set_label(&set));
        let spec = build_spec(board.image, &set, &feats);
        let img = build(&spec)?;
        for smp in board.bare_smps() {
            let set_name = match spec.features {
                None if board != boards::HOME => "default".to_string(),
                _ => set_label(&set),
            };
            let name = format!("QEMU {}/{set_name}/smp{smp}", board.name);
            progress.cell(&format!("{label}: no domains, {smp} CPUs"));
            let out =
                qemu::run_captured(&configs::bare(board, &img, smp)?, Duration::from_secs(60))?;
            let problems = check_boot(
                &out,
                &BootExpectation {
                    cpus: board.online(smp),
                    subsystems: set.iter().cloned().collect(),
                },
            );
            tally.record(&name, &out, &problems, 0);
        }
        // U-Boot boots the configs that ask for it on the board's default
        // image (the one `cargo xtask run --uboot` boots), where the board
        // has U-Boot.
        let is_default = spec.features.is_none();
        for (name, expect) in &expects {
            for &boot in &expect.boots {
                if boot == Boot::UBoot && !(is_default && board.uboot) {
                    continue;
                }
                if expect.skip_reason(Peer::Oxen, &set).is_none() {
                    progress.cell(&format!("{label}: {name}"));
                }
                let cell = Cell {
                    board,
                    peer: Peer::Oxen,
                    features: &set,
                    image: &img,
                    label: &label,
                    boot,
                };
                boot_config(name, expect, &cell, tally)?;
            }
        }
    }
    Ok(())
}

/// Where and how a config is booted.
struct Cell<'a> {
    board: &'static Board,
    peer: Peer,
    /// The image's features (the Xen interfaces).
    features: &'a [String],
    image: &'a Path,
    label: &'a str,
    boot: Boot,
}

/// One cell: config `name` booted as `cell` says, or a skip when its
/// `.expect` says it does not apply there.
fn boot_config(name: &str, expect: &Expect, cell: &Cell, tally: &mut Tally) -> Result<(), String> {
    let label = match cell.boot {
        Boot::Direct => cell.label.to_string(),
        Boot::UBoot => format!("{}, U-Boot", cell.label),
    };
    if let Some(why) = expect.skip_reason(cell.peer, cell.features) {
        println!("config {name} [{label}]: skipped ({why})");
        tally.skipped += 1;
        return Ok(());
    }
    let prepared = configs::prepare_on(
        cell.board,
        name,
        cell.peer,
        cell.image,
        None,
        cell.boot,
        &[],
    )?;
    let out = configs::run(&prepared)?;
    let problems = configs::check(&prepared, &out);
    let cases = cases_passed(&prepared.want, &out);
    tally.record(&format!("config {name} [{label}]"), &out, &problems, cases);
    Ok(())
}

/// The differential run: every config that applies to Xen, booted on Xen
/// 4.20 from the same DTB and modules, checked against its expectations
/// for Xen; on the home board every config, on each other board those
/// its `boards:` names.
fn xen_configs(boards: &[&'static Board], tally: &mut Tally) -> Result<(), String> {
    eprintln!("\n==> configs on Xen 4.20");
    let image = configs::image_for(Peer::Xen, &BuildSpec::default())?;
    let expects = all_expects()?;
    let total = boards
        .iter()
        .flat_map(|b| expects.iter().filter(move |(_, e)| e.on_board(b)))
        .filter(|(_, e)| e.skip_reason(Peer::Xen, &[]).is_none())
        .map(|(_, e)| e.boots.len())
        .sum();
    let mut progress = Progress::new(total);
    for &board in boards {
        tally.boards += 1;
        let label = if board == boards::HOME {
            "xen".to_string()
        } else {
            format!("xen, {}", board.name)
        };
        for (name, expect) in expects.iter().filter(|(_, e)| e.on_board(board)) {
            for &boot in &expect.boots {
                if boot == Boot::UBoot && !board.uboot {
                    continue;
                }
                if expect.skip_reason(Peer::Xen, &[]).is_none() {
                    progress.cell(&format!("{label}: {name}"));
                }
                let cell = Cell {
                    board,
                    peer: Peer::Xen,
                    features: &[],
                    image: &image,
                    label: &label,
                    boot,
                };
                boot_config(name, expect, &cell, tally)?;
            }
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

[package.metadata.oxen]
drivers = ["gicv2", "gicv3"]

[features]
default = ["evtchn", "gnttab", "gicv2", "gicv3"]
gicv2 = ["oxen-core/gicv2"]
gicv3 = ["oxen-core/gicv3"]
evtchn = ["dep:oxen-evtchn"]
gnttab = ["dep:oxen-gnttab"]
xenstore = ["dep:oxen-xenstore"]

[dependencies]
oxen-core.workspace = true
"#;

    fn parse_features(manifest: &str) -> BoardFeatures {
        boards::parse_manifest(manifest).unwrap()
    }

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
        let home = boards::HOME;
        assert_eq!(
            matrix_cells(home, &sets, &expects, &strings(&["evtchn"])),
            4 + 6
        );
        // Another board: one bare boot, no U-Boot, only configs for it.
        let versal = boards::find("xlnx-versal-virt").unwrap();
        let mut expects = expects;
        expects.push((
            "d".to_string(),
            e("end: power-off
boards: gicv3
"),
        ));
        let default = strings(&["evtchn"]);
        assert_eq!(
            matrix_cells(versal, std::slice::from_ref(&default), &expects, &default),
            1 + 1
        );
    }

    #[test]
    fn the_matrix_combines_only_interfaces_and_other_boards_boot_the_default_image() {
        let f = parse_features(MANIFEST);
        assert_eq!(f.interfaces, ["evtchn", "gnttab", "xenstore"]);
        assert_eq!(f.default, ["evtchn", "gnttab"]);
        assert_eq!(powerset(&f.interfaces).len(), 8);
        assert_eq!(board_sets(boards::HOME, &f).len(), 5);
        let zcu102 = boards::find("xlnx-zcu102").unwrap();
        assert_eq!(board_sets(zcu102, &f), [strings(&["evtchn", "gnttab"])]);
        assert_eq!(cell_label(zcu102, "all"), "xlnx-zcu102");
        assert_eq!(cell_label(boards::HOME, "all"), "all");
    }

    #[test]
    fn a_variant_with_a_symbol_of_a_driver_it_leaves_out_fails() {
        let symbols = strings(&[
            "_ZN9oxen_core7drivers5gicv34init17h0123456789abcdefE",
            "_ZN9oxen_core4boot5start17h0123456789abcdefE",
        ]);
        let (linked, out) = (strings(&["gicv3"]), strings(&["gicv2"]));
        let v = variant_symbols(&symbols, &linked, &out);
        assert_eq!(
            v,
            VariantSymbols {
                foreign: vec![],
                own: 1
            }
        );
        assert!(variant_problems(&v, &out).is_empty());
        let mut with_v2 = symbols.clone();
        with_v2.push("_ZN9oxen_core7drivers5gicv24init17h0123456789abcdefE".into());
        let v = variant_symbols(&with_v2, &linked, &out);
        let p = variant_problems(&v, &out);
        assert_eq!(p.len(), 1);
        assert!(
            p[0].starts_with("1 symbol(s) name gicv2, which it does not link"),
            "{p:?}"
        );
        // A table without the drivers' own symbols cannot show anything.
        let v = variant_symbols(&symbols[1..], &linked, &out);
        assert!(variant_problems(&v, &out)[0].contains("no symbol names any driver"));
    }

    #[test]
    fn powerset_has_every_combination() {
        let f = parse_features(MANIFEST);
        let sets = powerset(&f.interfaces);
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
        let sets = representative_sets(&f.interfaces);
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
                peer: Peer::Xen,
                board: None,
            }
        );
        let o = Options::parse(&strings(&["--no-qemu"])).unwrap();
        assert_eq!(
            o,
            Options {
                qemu: false,
                peer: Peer::Oxen,
                board: None,
            }
        );
        let o = Options::parse(&strings(&["--board", "xlnx-zcu102", "--peer", "xen"])).unwrap();
        assert_eq!(o.board.map(|b| b.name), Some("xlnx-zcu102"));
        assert_eq!(o.boards().len(), 1);
        assert_eq!(
            Options::parse(&[]).unwrap().boards().len(),
            boards::BOARDS.len()
        );
        assert!(Options::parse(&strings(&["--board", "sbsa-ref"])).is_err());
        assert!(Options::parse(&strings(&["--board", "xlnx-zcu102", "--no-qemu"])).is_err());
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
            built: 50,
            images: 3,
            variants: 2,
            boards: 4,
            booted: 90,
            cases: 1234,
            passed: 90,
            failed: vec![],
            skipped: 25,
        };
        assert_eq!(
            t.summary(),
            "matrix: 50 cells built (feature sets x boards: 3 board images, 2 driver variants), 90 cells booted (images x configs on 4 boards; 25 did not apply), 1234 cases passed"
        );
    }
}
