//! Installs what the commands need, so they work on a fresh machine: the
//! pinned toolchain with its target and components (`rustup toolchain
//! install` reads `rust-toolchain.toml`; plain cargo does not add a pinned
//! target to an installed toolchain), QEMU and dtc from Debian.

use std::process::Command;

use crate::{root, run_cmd};

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.current_dir(root()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Makes sure the pinned toolchain has `aarch64-unknown-none`, rustfmt and
/// clippy.
pub fn ensure_toolchain() -> Result<(), String> {
    let targets = output(Command::new("rustup").args(["target", "list", "--installed"]));
    let components = output(Command::new("rustup").args(["component", "list", "--installed"]));
    let ok = matches!((&targets, &components), (Some(t), Some(c))
        if t.lines().any(|l| l.trim() == "aarch64-unknown-none")
            && c.lines().any(|l| l.starts_with("rustfmt"))
            && c.lines().any(|l| l.starts_with("clippy")));
    if ok {
        return Ok(());
    }
    if targets.is_none() {
        return Err("rustup is needed to install the pinned toolchain (https://rustup.rs)".into());
    }
    eprintln!("xtask: installing the toolchain pinned in rust-toolchain.toml");
    run_cmd(
        Command::new("rustup")
            .args(["toolchain", "install"])
            .current_dir(root()),
    )
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Whether the xtask runs as root (it may then install with apt-get).
pub fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_some_and(|s| s.trim() == "0")
}

/// Debian packages and the program each provides.
const HOST_TOOLS: &[(&str, &str)] = &[
    ("qemu-system-aarch64", "qemu-system-arm"),
    ("dtc", "device-tree-compiler"),
];

/// Makes sure QEMU and dtc are installed, installing them with apt-get when
/// running as root.
pub fn ensure_host_tools() -> Result<(), String> {
    let missing: Vec<&str> = HOST_TOOLS
        .iter()
        .filter(|(prog, _)| !have(prog))
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let install = format!(
        "apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    );
    if !is_root() {
        return Err(format!(
            "missing {}; install with: sudo apt-get update && sudo {install}",
            missing.join(", ")
        ));
    }
    eprintln!("xtask: installing {}", missing.join(", "));
    run_cmd(Command::new("apt-get").args(["update", "-qq"]))?;
    run_cmd(
        Command::new("sh")
            .args(["-c", &install])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}
