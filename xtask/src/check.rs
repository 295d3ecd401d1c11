//! `cargo xtask check FILE …` and the tests' verdict step: every config put
//! through `oxen-check` (the hypervisor's own validation, built for the
//! host), whose verdict must agree with what booting the config does.

use std::path::PathBuf;
use std::process::Command;

use crate::configs;
use crate::expect::{Expect, Peer};
use crate::{cargo, root, run_cmd};

/// Builds `oxen-check` for the host; its path.
pub fn binary() -> Result<PathBuf, String> {
    run_cmd(cargo().args(["build", "--quiet", "-p", "oxen-check"]))?;
    Ok(root().join("target").join("debug").join("oxen-check"))
}

/// `cargo xtask check FILE [--features a,b | --no-default-features]
/// [--json] …`: oxen-check's own options, its output and exit status.
/// `cargo xtask check --configs`: the tests' step alone.
pub fn command(args: &[String]) -> Result<(), String> {
    if args == ["--configs"] {
        return configs_step();
    }
    let bin = binary()?;
    let status = Command::new(&bin)
        .args(args)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => std::process::exit(code),
        None => Err(format!("{} was killed ({status})", bin.display())),
    }
}

/// The lines an Oxen boot of the config must print when it stops, or
/// `None` when the boot builds its domains.
pub fn expected_stop(expect: &Expect, domains: &[String]) -> Option<Vec<String>> {
    let want = expect.for_peer(Peer::Oxen, domains);
    let lines: Vec<String> = want
        .lines
        .iter()
        .map(|(_, t)| t.strip_prefix("(oxen) ").unwrap_or(t).to_string())
        .collect();
    lines
        .iter()
        .any(|l| l.contains("boot stopped:"))
        .then_some(lines)
}

/// What disagrees between oxen-check's verdict (`status`, `output`) and
/// the boot the `.expect` describes; empty when they agree.
pub fn disagreements(stop: Option<&[String]>, status: Option<i32>, output: &str) -> Vec<String> {
    let mut problems = Vec::new();
    match stop {
        None => {
            if status != Some(0) {
                problems.push(format!(
                    "the boot builds its domains, but oxen-check exits with {status:?}"
                ));
            }
        }
        Some(lines) => {
            if status != Some(1) {
                problems.push(format!(
                    "the boot stops, but oxen-check exits with {status:?}"
                ));
            }
            for l in lines {
                if !output.contains(l.as_str()) {
                    problems.push(format!("the boot prints \"{l}\", oxen-check does not"));
                }
            }
        }
    }
    problems
}

/// The step of `cargo xtask test`: every config, every representative
/// image of the board the configs are written for.
pub fn configs_step() -> Result<(), String> {
    let feats = crate::boards::manifest(crate::boards::HOME.image)?;
    let sets = crate::test::representative_sets(&feats.interfaces);
    let c = all_configs(&sets)?;
    println!(
        "oxen-check: {} cells (configs x images) agree with the boot, {} did not apply",
        c.agreed, c.skipped
    );
    Ok(())
}

/// How many cells agreed and how many did not apply.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub agreed: usize,
    pub skipped: usize,
}

/// Every config through oxen-check for each image in `sets` it applies to.
pub fn all_configs(sets: &[Vec<String>]) -> Result<Counts, String> {
    let bin = binary()?;
    let out_dir = crate::debian::cache_dir().join("check");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let mut counts = Counts::default();
    let mut failed = Vec::new();
    for name in configs::names()? {
        let expect = configs::read_expect(&name)?;
        let fragment = out_dir.join(format!("{name}.dts"));
        std::fs::write(&fragment, configs::placed_fragment(&name)?)
            .map_err(|e| format!("{}: {e}", fragment.display()))?;
        for set in sets {
            let label = crate::test::set_label(set);
            if expect.skip_reason(Peer::Oxen, set).is_some() {
                counts.skipped += 1;
                continue;
            }
            let mut c = Command::new(&bin);
            c.arg(&fragment);
            if set.is_empty() {
                c.arg("--no-default-features");
            } else {
                c.args(["--features", &set.join(",")]);
            }
            let out = c
                .output()
                .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
            let text = String::from_utf8_lossy(&out.stdout);
            // Rules are matched by their text: the domain tags are the
            // console's, which oxen-check has not.
            let stop = expected_stop(&expect, &[]);
            let problems = disagreements(stop.as_deref(), out.status.code(), &text);
            if problems.is_empty() {
                counts.agreed += 1;
                continue;
            }
            println!("config {name} [{label}]: oxen-check disagrees with the boot");
            for p in &problems {
                println!("    {p}");
            }
            println!(
                "---- oxen-check ----\n{text}{}---- end ----",
                String::from_utf8_lossy(&out.stderr)
            );
            failed.push(format!("{name} [{label}]"));
        }
    }
    if failed.is_empty() {
        Ok(counts)
    } else {
        Err(format!(
            "oxen-check's verdict differs from the boot's for {}",
            failed.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expect;

    fn lines(expect_text: &str) -> Option<Vec<String>> {
        let e = expect::parse(expect_text, "x.expect").unwrap();
        expected_stop(&e, &[])
    }

    const BAD: &str = "end: power-off\n\
        domU1 on oxen: /chosen/domU1: cpus is missing\n\
        domU1 on oxen: (oxen) boot stopped: fix the device tree\n\
        domU1 on xen: something Xen says\n";

    #[test]
    fn a_config_that_stops_expects_its_lines_without_the_prefix() {
        assert_eq!(
            lines(BAD).unwrap(),
            [
                "/chosen/domU1: cpus is missing",
                "boot stopped: fix the device tree"
            ]
        );
        assert_eq!(lines("end: power-off\ndomU1: reached init\n"), None);
    }

    #[test]
    fn oxen_check_must_print_every_line_and_exit_1() {
        let want = lines(BAD).unwrap();
        let good = "the domain configuration has 1 error(s):\n  /chosen/domU1: cpus is missing\n\
                    boot stopped: fix the device tree; nothing was started\n";
        assert!(disagreements(Some(&want), Some(1), good).is_empty());
        let p = disagreements(Some(&want), Some(0), "boot stopped: fix the device tree");
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[1].contains("cpus is missing"));
    }

    #[test]
    fn a_config_that_boots_must_pass() {
        assert!(disagreements(None, Some(0), "").is_empty());
        assert_eq!(disagreements(None, Some(1), "").len(), 1);
    }
}
