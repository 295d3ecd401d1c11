//! `cargo xtask test`: every check, in the order a failure is cheapest to
//! find — formatting, lints, host unit tests, then booting images in QEMU.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::configs;
use crate::expect::Peer;
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

pub fn run_all(with_qemu: bool) -> Result<(), String> {
    step("toolchain", setup::ensure_toolchain)?;
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
        }
    }
    if with_qemu {
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
    if with_qemu {
        let (passed, failed) = qemu_tests(&boards)?;
        let (cpassed, cfailed) = config_tests()?;
        let failed: Vec<String> = failed.into_iter().chain(cfailed).collect();
        println!("qemu: {} passed, {} failed", passed + cpassed, failed.len());
        if !failed.is_empty() {
            return Err(format!("QEMU tests failed: {}", failed.join(", ")));
        }
    }
    Ok(())
}

/// Boots each board with no features, its defaults and all features, on 2
/// and 4 CPUs, and checks the boot log. Returns (passed, failed names).
fn qemu_tests(boards: &[String]) -> Result<(usize, Vec<String>), String> {
    let mut passed = 0;
    let mut failed = Vec::new();
    for b in boards {
        let feats = board_features(b)?;
        let mut sets: Vec<(String, Option<Vec<String>>, BTreeSet<String>)> = vec![
            ("none".into(), Some(vec![]), BTreeSet::new()),
            (
                "default".into(),
                None,
                feats.default.iter().cloned().collect(),
            ),
            (
                "all".into(),
                Some(feats.all.clone()),
                feats.all.iter().cloned().collect(),
            ),
        ];
        sets.dedup_by(|a, b| a.2 == b.2 && a.1.is_some() && b.1.is_some());
        for (label, features, subsystems) in sets {
            let spec = BuildSpec {
                board: b.clone(),
                features,
                release: true,
            };
            let img = build(&spec)?;
            for smp in [2, 4] {
                let name = format!("{b}/{label}/smp{smp}");
                let out = qemu::run_captured(&Machine::new(&img, smp), Duration::from_secs(60))?;
                let problems = check_boot(
                    &out,
                    &BootExpectation {
                        cpus: smp,
                        subsystems: subsystems.clone(),
                    },
                );
                if problems.is_empty() {
                    println!("QEMU {name}: ok ({:.1} s)", out.elapsed.as_secs_f64());
                    passed += 1;
                } else {
                    println!("QEMU {name}: FAILED");
                    for p in &problems {
                        println!("    {p}");
                    }
                    println!("---- console log ----\n{}---- end ----", out.log);
                    failed.push(name);
                }
            }
        }
    }
    Ok((passed, failed))
}

/// Boots every config under `configs/` on Oxen (default features) and
/// checks it against its `.expect`. A config whose `requires:` names a
/// feature the image lacks is skipped and says so.
fn config_tests() -> Result<(usize, Vec<String>), String> {
    let spec = BuildSpec::default();
    let feats = board_features(&spec.board)?;
    let image = configs::image_for(Peer::Oxen, &spec)?;
    let mut passed = 0;
    let mut failed = Vec::new();
    for name in configs::names()? {
        let prepared = configs::prepare(&name, Peer::Oxen, &image, None)?;
        let missing: Vec<&String> = prepared
            .requires
            .iter()
            .filter(|f| !feats.default.contains(f))
            .collect();
        if !missing.is_empty() {
            println!(
                "config {name}: skipped (needs features not in the default image: {})",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            continue;
        }
        let out = configs::run(&prepared)?;
        let problems = configs::check(&prepared, &out);
        if problems.is_empty() {
            println!("config {name}: ok ({:.1} s)", out.elapsed.as_secs_f64());
            passed += 1;
        } else {
            println!("config {name}: FAILED");
            for p in &problems {
                println!("    {p}");
            }
            println!("---- console log ----\n{}---- end ----", out.log);
            failed.push(format!("config {name}"));
        }
    }
    Ok((passed, failed))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
