//! oxen-check on the repository's own configs, as a user runs it.

use std::path::{Path, PathBuf};

use oxen_check::report::{self, Outcome};
use oxen_check::{Options, run};

fn config(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs")
        .join(format!("{name}.dts"))
}

fn check(name: &str, features: Option<&[&str]>) -> report::Report {
    run(&Options {
        input: config(name),
        features: features.map(|f| f.iter().map(|s| s.to_string()).collect()),
        ..Options::default()
    })
    .unwrap()
}

#[test]
fn bad_two_errors_prints_both_as_the_boot_does_and_fails() {
    let rep = check("bad-two-errors", None);
    let Outcome::Stopped(lines) = &rep.outcome else {
        panic!("{}", report::text(&rep));
    };
    assert_eq!(
        lines,
        &[
            "the domain configuration has 2 error(s):",
            "  /chosen/domU1: xen,enhanced = \"evtchn\" is not a known value (expected \"enabled\", \"no-xenstore\", \"disabled\", \"legacy\" or no value)",
            "  /chosen/domU2: cpus is missing (the number of vCPUs as one cell, e.g. <2>)",
            "boot stopped: fix the device tree; nothing was started",
        ]
    );
    assert_eq!(rep.exit_code(), 1);
}

#[test]
fn default_builds_two_domains_joined_by_a_pv_device() {
    let rep = check("default", None);
    let Outcome::Built(s) = &rep.outcome else {
        panic!("{}", report::text(&rep));
    };
    let names: Vec<&str> = s.domains.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["domU1", "domU2"]);
    assert!(s.domains[0].interfaces.contains(&"xenstore".to_string()));
    assert_eq!(s.connections.len(), 1);
    assert_eq!(s.connections[0].kind, "PV network device");
    assert_eq!(rep.ignored_options, ["conswitch=ax"]);
    assert_eq!(rep.exit_code(), 0);
}

#[test]
fn the_image_decides_what_enabled_needs() {
    let rep = check("default", Some(&["evtchn", "gnttab"]));
    let Outcome::Stopped(lines) = &rep.outcome else {
        panic!("{}", report::text(&rep));
    };
    assert!(
        lines[1].contains("xenstore, which this image does not have"),
        "{lines:?}"
    );
    assert!(rep.log.contains(&"subsystems: gnttab, evtchn".to_string()));
}

#[test]
fn an_unknown_feature_is_refused_naming_the_known_ones() {
    let e = run(&Options {
        input: config("default"),
        features: Some(vec!["evtchn".into(), "gnttabs".into()]),
        ..Options::default()
    })
    .unwrap_err();
    assert!(
        e.starts_with("no feature \"gnttabs\" (expected some of: "),
        "{e}"
    );
}

/// A directory of this test's own under the system's temp dir.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("oxen-check-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_boot_script_that_overlaps_its_modules_is_refused() {
    let dir = TempDir::new("uboot");
    // guest-1x1: one kernel, placed at 0x50000000 (2 MiB assumed); the
    // script loads 3 MiB there and another file 2 MiB further on.
    std::fs::write(dir.0.join("kernel"), vec![0u8; 3 << 20]).unwrap();
    std::fs::write(dir.0.join("other"), vec![0u8; 4096]).unwrap();
    let script = dir.0.join("boot.cmd");
    std::fs::write(
        &script,
        "load mmc 0:1 0x50000000 kernel\nload mmc 0:1 0x50200000 other\nbooti 0x40200000 - 0x48000000\n",
    )
    .unwrap();
    let rep = run(&Options {
        input: config("guest-1x1"),
        uboot_script: Some(script),
        ..Options::default()
    })
    .unwrap();
    let text = report::text(&rep);
    assert!(
        rep.script_problems
            .iter()
            .any(|p| p.contains("kernel at 0x0050000000-0x0050300000 overlaps other")),
        "{text}"
    );
    assert!(
        rep.script_problems
            .iter()
            .any(|p| p.contains("is 3145728 bytes, but the tree's reg")),
        "{text}"
    );
    assert!(text.contains("size assumed"), "{text}");
    assert_eq!(rep.exit_code(), 1);
}
