//! Installs what the commands need, so they work on a fresh machine: the
//! pinned toolchain with its target and components (plain cargo does not
//! add a pinned target to an installed toolchain), QEMU and dtc from
//! Debian, and a check that QEMU starts the project's machine.

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
    eprintln!("xtask: adding aarch64-unknown-none, rustfmt and clippy to the pinned toolchain");
    // Under `cargo xtask` the rustup proxy has set RUSTUP_TOOLCHAIN to the
    // pinned toolchain, and `rustup toolchain install` then takes the
    // toolchain from that variable and ignores the file's `targets` and
    // `components`: add them by name to the active (pinned) toolchain.
    run_cmd(
        Command::new("rustup")
            .args(["target", "add", "aarch64-unknown-none"])
            .current_dir(root()),
    )?;
    run_cmd(
        Command::new("rustup")
            .args(["component", "add", "rustfmt", "clippy"])
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

/// Debian packages and the program each provides. They are installed
/// without recommends: nothing the project starts needs a recommended
/// package (QEMU's runs add no default NIC, so `ipxe-qemu`'s option ROMs
/// are not needed; `-kernel` needs no firmware, so no `qemu-efi-*`).
pub const HOST_TOOLS: &[(&str, &str)] = &[
    ("qemu-system-aarch64", "qemu-system-arm"),
    ("dtc", "device-tree-compiler"),
    // The guests' PV driver modules come xz-compressed (in Debian's base
    // system, but checked like the others).
    ("xz", "xz-utils"),
];

/// Makes sure QEMU and dtc are installed, installing them with apt-get when
/// running as root, then proves QEMU starts the project's machine.
pub fn ensure_host_tools() -> Result<(), String> {
    let missing: Vec<&str> = HOST_TOOLS
        .iter()
        .filter(|(prog, _)| !have(prog))
        .map(|(_, pkg)| *pkg)
        .collect();
    if !missing.is_empty() {
        install(&missing)?;
    }
    check_qemu()
}

/// Makes sure each `(program, Debian package)` is there, installing the
/// missing packages with apt-get when running as root.
pub fn ensure_programs(tools: &[(&str, &str)]) -> Result<(), String> {
    let missing: Vec<&str> = tools
        .iter()
        .filter(|(prog, _)| !have(prog))
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        install(&missing)
    }
}

fn install(packages: &[&str]) -> Result<(), String> {
    let install = format!(
        "apt-get install -y --no-install-recommends {}",
        packages.join(" ")
    );
    if !is_root() {
        return Err(format!(
            "missing {}; install with: sudo apt-get update && sudo {install}",
            packages.join(", ")
        ));
    }
    eprintln!("xtask: installing {} ({install})", packages.join(", "));
    run_cmd(Command::new("apt-get").args(["update", "-qq"]))?;
    run_cmd(
        Command::new("sh")
            .args(["-c", &install])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    eprintln!("xtask: installed {}", packages.join(", "));
    Ok(())
}

/// Starts `qemu-system-aarch64` once with the project's machine arguments
/// (dumping its device tree, so it exits at once): a QEMU that cannot start
/// the machine fails here with its own message and the package that
/// provides what it lacks, instead of in every cell of the matrix.
pub fn check_qemu() -> Result<(), String> {
    let dir = root().join("target");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dtb = dir.join("qemu-probe.dtb");
    let _ = std::fs::remove_file(&dtb);
    let mut cmd = Command::new("qemu-system-aarch64");
    cmd.args(crate::boards::HOME.qemu_args(&format!(",dumpdtb={}", dtb.display()), 1, "1G"))
        .args(["-display", "none"]);
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start qemu-system-aarch64: {e}"))?;
    if dtb.is_file() {
        let _ = std::fs::remove_file(&dtb);
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Err(format!(
        "QEMU cannot start the project's machine:\n  + {}\n  {said}\n{}",
        crate::show(&cmd),
        qemu_hint(&said)
    ))
}

/// What to install for a QEMU start-up failure, from QEMU's own message.
fn qemu_hint(said: &str) -> String {
    let pkg = if said.contains("romfile") {
        // Only a device the project does not add asks for an option ROM.
        "ipxe-qemu (a device that needs an option ROM was added)"
    } else if said.contains("firmware") || said.contains("bios") {
        "qemu-efi-aarch64"
    } else {
        "qemu-system-arm and qemu-system-data (apt-get install --reinstall)"
    };
    format!("install: {pkg}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_option_rom_names_ipxe_qemu() {
        let h = qemu_hint(r#"qemu-system-aarch64: failed to find romfile "efi-virtio.rom""#);
        assert!(h.contains("ipxe-qemu"), "{h}");
    }

    #[test]
    fn an_unknown_failure_names_qemus_own_packages() {
        assert!(qemu_hint("Segmentation fault").contains("qemu-system-arm"));
    }
}
