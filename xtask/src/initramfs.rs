//! The guests' initramfs: a static busybox, the xenstore client `xs`
//! (`tests/guests/xs`, as `/bin/xs`) and an `/init` script
//! (`xtask/guest/init.sh`) that reports the domain reached init, runs the
//! xenstore tests its command line asks for, and then powers off, reboots
//! or starts a shell. Linux 6.12's PV driver modules (`xen-netfront`,
//! `xen-netback`, `xen-blkfront`, `xen-blkback`, decompressed) sit under
//! `/lib/modules/<release>/`, for the PV-device tests.

use std::path::{Path, PathBuf};

use crate::cpio::Archive;

/// The `/init` script.
pub const INIT: &str = include_str!("../guest/init.sh");

/// The PV driver modules put in the initramfs, as paths below the
/// kernel package's `usr/lib/modules/<release>/kernel/` (each `.ko.xz`).
pub const MODULES: &[&str] = &[
    "drivers/net/xen-netfront",
    "drivers/net/xen-netback/xen-netback",
    "drivers/block/xen-blkfront",
    "drivers/block/xen-blkback/xen-blkback",
];

/// A kernel module for the initramfs: `/lib/modules/<release>/<name>.ko`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub release: String,
    pub name: String,
    pub bytes: Vec<u8>,
}

/// The archive's bytes for given busybox and `xs` binaries and modules.
pub fn image(busybox: &[u8], xs: &[u8], modules: &[Module]) -> Vec<u8> {
    let mut a = Archive::new();
    for d in ["bin", "dev", "proc", "sys", "tmp", "lib", "lib/modules"] {
        a.dir(d);
    }
    let mut releases: Vec<&str> = modules.iter().map(|m| m.release.as_str()).collect();
    releases.dedup();
    for r in releases {
        a.dir(&format!("lib/modules/{r}"));
    }
    for m in modules {
        a.file(
            &format!("lib/modules/{}/{}.ko", m.release, m.name),
            0o644,
            &m.bytes,
        );
    }
    // The kernel opens /dev/console for init's stdin/out/err before init
    // runs (so before devtmpfs is mounted): without this node init's
    // output goes nowhere.
    a.char_device("dev/console", 0o600, 5, 1)
        .file("bin/busybox", 0o755, busybox)
        .file("bin/xs", 0o755, xs)
        .file("init", 0o755, INIT.as_bytes());
    a.finish()
}

/// The PV driver modules of the kernel at `linux` (`…/boot/vmlinuz-R` in
/// its unpacked package), decompressed with `xz` (in every Debian base
/// system).
pub fn modules(linux: &Path) -> Result<Vec<Module>, String> {
    let release = linux
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .ok_or_else(|| format!("{}: not a vmlinuz-RELEASE file", linux.display()))?;
    let tree = linux
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("{}: not inside an unpacked package", linux.display()))?
        .join("usr/lib/modules")
        .join(release)
        .join("kernel");
    MODULES
        .iter()
        .map(|m| {
            let file = tree.join(format!("{m}.ko.xz"));
            let out = std::process::Command::new("xz")
                .arg("-dc")
                .arg(&file)
                .output()
                .map_err(|e| format!("cannot run xz (apt-get install xz-utils): {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "xz -dc {}: {}",
                    file.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            Ok(Module {
                release: release.to_string(),
                name: m.rsplit('/').next().unwrap_or(m).to_string(),
                bytes: out.stdout,
            })
        })
        .collect()
}

/// Builds `xs`, writes the initramfs (for the guests' software in `g`)
/// under `target/guests/` (only when its bytes change) and returns its
/// path.
pub fn build(g: &crate::debian::Guests) -> Result<PathBuf, String> {
    let busybox = &g.busybox;
    let bb = std::fs::read(busybox).map_err(|e| format!("{}: {e}", busybox.display()))?;
    let xs_elf = crate::guests_build::build_program("xs")?;
    let xs = std::fs::read(&xs_elf).map_err(|e| format!("{}: {e}", xs_elf.display()))?;
    let bytes = image(&bb, &xs, &modules(&g.linux)?);
    let path = crate::debian::cache_dir().join("initramfs.cpio");
    if std::fs::read(&path).ok().as_deref() == Some(&bytes[..]) {
        return Ok(path);
    }
    // Write and rename, so a QEMU reading the previous file never sees a
    // half-written one.
    let tmp = path.with_extension(format!("cpio.{}", std::process::id()));
    std::fs::write(&tmp, &bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpio::read::entries;

    #[test]
    fn the_initramfs_holds_busybox_an_executable_init_and_a_console() {
        let e = entries(&image(b"\x7fELF busybox", b"\x7fELF xs", &[])).unwrap();
        let get = |n: &str| {
            e.iter()
                .find(|e| e.name == n)
                .unwrap_or_else(|| panic!("{n}"))
        };
        assert_eq!(get("bin/busybox").data, b"\x7fELF busybox");
        assert_eq!(get("bin/busybox").mode, 0o100_755);
        assert_eq!(get("init").mode, 0o100_755);
        assert_eq!(get("init").data, INIT.as_bytes());
        assert_eq!(get("dev/console").rdev, (5, 1));
        for d in ["proc", "sys", "dev", "bin"] {
            assert_eq!(get(d).mode & 0o170_000, 0o040_000, "{d}");
        }
    }

    #[test]
    fn the_xenstore_client_is_bin_xs_an_executable_beside_busybox() {
        let e = entries(&image(b"\x7fELF busybox", b"\x7fELF xs", &[])).unwrap();
        let xs = e.iter().find(|e| e.name == "bin/xs").expect("bin/xs");
        assert_eq!(xs.data, b"\x7fELF xs");
        assert_eq!(xs.mode, 0o100_755);
    }

    #[test]
    fn init_runs_busybox_directly_since_bin_sh_does_not_exist_yet() {
        assert!(INIT.starts_with("#!/bin/busybox sh\n"));
    }

    #[test]
    fn init_is_valid_posix_shell() {
        // `sh -n` parses without running; Debian's sh is dash, which
        // accepts POSIX sh and little else, as busybox's ash will.
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", INIT])
            .output()
            .expect("a host sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn init_reads_name_and_action_from_the_kernel_command_line() {
        // Run only the argument loop of the script on a made-up command
        // line: the part a typo would break silently.
        let start = INIT.find("name=unnamed").unwrap();
        let end = INIT.find("echo \"oxen-init: $name reached init\"").unwrap();
        let script = INIT[start..end].replace(
            "$(cat /proc/cmdline)",
            "console=ttyAMA0 oxen.name=domU7 oxen.action=reboot quiet",
        ) + "echo \"$name $action\"";
        // This part runs on the host: it must not write files there.
        assert!(!script.contains("> /"), "{script}");
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .expect("a host sh");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "domU7 reboot\n");
    }

    #[test]
    fn init_reads_the_xenstore_test_options_from_the_kernel_command_line() {
        let start = INIT.find("name=unnamed").unwrap();
        let end = INIT.find("echo \"oxen-init: $name reached init\"").unwrap();
        let script = INIT[start..end].replace(
            "$(cat /proc/cmdline)",
            "oxen.test=xenstore oxen.rendezvous=listen oxen.peer=2",
        ) + "echo \"$oxen_test $rendezvous $peer\"";
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .expect("a host sh");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "xenstore listen 2\n");
    }

    /// A stand-in for `/bin/xs` in sh, over files in `dir`: one file per
    /// key, and an event log each write appends its path to, which `watch`
    /// counts (so no write is missed however quickly two come).
    fn fake_xs(dir: &Path) -> String {
        let d = dir.display();
        format!(
            r#"
key() {{ printf '%s/k%s' "{d}" "$(printf '%s' "$1" | tr / _)"; }}
xs() {{
    case "$1" in
        domid) echo "$domid" ;;
        read)
            case "$2" in
                name) echo "$name" ;;
                *) [ -f "$(key "$2")" ] && cat "$(key "$2")" ||
                       {{ echo "xs: read $2: ENOENT" >&2; return 1; }} ;;
            esac ;;
        write) printf '%s\n' "$3" >"$(key "$2")"; echo "$2" >>"{d}/events" ;;
        setperms) [ -f "$(key "$2")" ] ;;
        dir) echo data; echo domid ;;
        watch)
            echo "$2"
            seen=$(grep -cx "$2" "{d}/events")
            until [ "$(grep -cx "$2" "{d}/events")" -ge $((seen + $3)) ]; do sleep 0.05; done
            grep -x "$2" "{d}/events" | tail -n "$3" ;;
    esac
}}
touch "{d}/events"
"#
        )
    }

    /// The script's functions (from `say` to the final action) with `xs`
    /// faked over `dir` and the paths it polls moved there.
    fn init_functions(dir: &Path) -> String {
        let start = INIT.find("say() {").unwrap();
        let end = INIT.find("case \"$action\" in").unwrap();
        let d = dir.display().to_string();
        fake_xs(dir)
            + &INIT[start..end]
                .replace("/proc/interrupts", &format!("{d}/interrupts"))
                .replace("/tmp/rendezvous", &format!("{d}/rendezvous"))
    }

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("oxen-init-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn sh(script: &str) -> String {
        let out = std::process::Command::new("sh")
            .args(["-c", script])
            .output()
            .expect("a host sh");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }

    #[test]
    fn init_s_xenstore_test_waits_for_xenbus_and_checks_its_own_key() {
        let d = temp("xenstore");
        std::fs::write(d.join("interrupts"), " 12:   9  xen-dyn  -event  xenbus\n").unwrap();
        let script = "name=domU1; domid=1; oxen_test=xenstore; rendezvous=\n".to_string()
            + &init_functions(&d);
        let out = sh(&script);
        std::fs::remove_dir_all(&d).unwrap();
        assert_eq!(
            out,
            "oxen-init: domU1 xenstore connected: 12: 9 xen-dyn -event xenbus\n\
             oxen-init: domU1 xenstore name=domU1 domid=1\n\
             oxen-init: domU1 xenstore write/read ok\n\
             oxen-init: domU1 xenstore dir /local/domain/1: data domid\n"
        );
    }

    #[test]
    fn init_s_rendezvous_signaller_writes_only_once_the_listener_watches() {
        let d = temp("rendezvous");
        std::fs::write(d.join("interrupts"), " 12:   9  xen-dyn  -event  xenbus\n").unwrap();
        let f = init_functions(&d).replace(
            "if [ \"$oxen_test\" = xenstore ] || [ -n \"$rendezvous\" ]; then",
            "if false; then",
        );
        let script = format!(
            "{f}\n(name=domU1; domid=1; peer=2; rendezvous_listen) &\n\
             (name=domU2; domid=2; peer=1; rendezvous_signal)\nwait\n"
        );
        let out = sh(&script);
        let events = std::fs::read_to_string(d.join("events")).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
        for line in [
            "oxen-init: domU1 rendezvous ready\n",
            "oxen-init: domU2 rendezvous signalled\n",
            "oxen-init: domU1 rendezvous fired value=from-domU2\n",
        ] {
            assert!(out.contains(line), "{line} in:\n{out}");
        }
        assert!(!out.contains("FAILED"), "{out}");
        // The listener's two writes, then the signaller's.
        assert_eq!(events.lines().count(), 3, "{events}");
    }

    #[test]
    fn modules_sit_under_lib_modules_of_their_release() {
        let m = Module {
            release: "6.12.1-cloud-arm64".into(),
            name: "xen-netback".into(),
            bytes: b"\x7fELF ko".to_vec(),
        };
        let e = entries(&image(b"bb", b"xs", &[m])).unwrap();
        let ko = e
            .iter()
            .find(|e| e.name == "lib/modules/6.12.1-cloud-arm64/xen-netback.ko")
            .expect("the module");
        assert_eq!(ko.data, b"\x7fELF ko");
        assert!(e.iter().any(|e| e.name == "lib/modules/6.12.1-cloud-arm64"));
    }
}
