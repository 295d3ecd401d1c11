//! The bare-metal test guests under `tests/guests/`: each directory is a
//! cargo workspace of its own holding one `no_std` binary,
//! `oxen-guest-<name>`, with its own linker script, except `common`, the
//! library the guests share, which is checked with them but never booted,
//! and the Linux user programs of [`PROGRAMS`] (`xs`, the xenstore client
//! of the Linux guests' initramfs), built for the same target but linked
//! as static Linux ELFs, checked with the guests and never booted as
//! domains. A config names a guest as
//! `xtask,file = "guest:<name>"`; the xtask builds it for
//! `aarch64-unknown-none` and turns the ELF into an arm64 Image, which both
//! Oxen and Xen load as a domU kernel.

use std::path::{Path, PathBuf};

use crate::{cargo, root, run_cmd};

/// How a boot module's `xtask,file` names a test guest.
pub const PREFIX: &str = "guest:";

/// The directory holding the test guests.
pub fn dir() -> PathBuf {
    root().join("tests").join("guests")
}

/// The guest a `xtask,file` value names (`"guest:abi"` → `"abi"`), if it
/// names one.
pub fn guest_name(file: &str) -> Option<&str> {
    file.strip_prefix(PREFIX)
}

/// The package and binary of guest `name`.
pub fn package(name: &str) -> String {
    format!("oxen-guest-{name}")
}

/// The directories of `tests/guests/` that hold Linux user programs, not
/// guests: static aarch64 Linux ELFs for the initramfs (see
/// [`build_program`]), whose pure logic is also tested on the host.
pub const PROGRAMS: &[&str] = &["xs"];

/// Every guest, by name: the directories of `tests/guests/` with a
/// `Cargo.toml` and a `src/main.rs` (a binary to boot) that are not
/// [`PROGRAMS`], sorted.
pub fn names() -> Vec<String> {
    let mut v = dirs_holding(&["Cargo.toml", "src/main.rs"]);
    v.retain(|n| !PROGRAMS.contains(&n.as_str()));
    v
}

/// Every crate to check: the directories of `tests/guests/` with a
/// `Cargo.toml`, the guests and the library they share, sorted.
fn crates() -> Vec<String> {
    dirs_holding(&["Cargo.toml"])
}

/// The directories of `tests/guests/` holding every one of `files`, sorted.
fn dirs_holding(files: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir())
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| files.iter().all(|f| e.path().join(f).is_file()))
                .filter_map(|e| e.file_name().to_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The manifest of guest `name`, which must be one of [`names`].
fn manifest(name: &str) -> Result<PathBuf, String> {
    let guests = names();
    if guests.iter().any(|g| g == name) {
        Ok(dir().join(name).join("Cargo.toml"))
    } else {
        Err(format!(
            "no test guest \"{name}\" (a guest is a directory of {} with a \
             Cargo.toml and a src/main.rs; guests: {})",
            dir().display(),
            guests.join(", ")
        ))
    }
}

/// Where guests are built: apart from the hypervisor's images, shared by
/// every guest (they are separate workspaces with the same dependencies).
fn target_dir() -> PathBuf {
    root().join("target").join("guests").join("build")
}

/// Builds guest `name` (release) and returns the path of its Image.
pub fn build(name: &str) -> Result<PathBuf, String> {
    let elf = build_elf(&manifest(name)?, name)?;
    let img = image_path(&elf);
    crate::image::elf_to_image(&elf, &img)?;
    Ok(img)
}

/// Builds the Linux user program `name`, one of [`PROGRAMS`] (release,
/// for `aarch64-unknown-none`, linked by its own script as a static
/// Linux ELF) and returns the ELF's path.
pub fn build_program(name: &str) -> Result<PathBuf, String> {
    if !PROGRAMS.contains(&name) {
        return Err(format!(
            "no Linux program \"{name}\" under {} (programs: {})",
            dir().display(),
            PROGRAMS.join(", ")
        ));
    }
    build_elf(&dir().join(name).join("Cargo.toml"), name)
}

/// Builds the crate of `manifest` (release, aarch64) and returns the path
/// of its binary `oxen-guest-<name>`.
fn build_elf(manifest: &Path, name: &str) -> Result<PathBuf, String> {
    let target = target_dir();
    let pkg = package(name);
    run_cmd(
        cargo()
            .args([
                "build",
                "--quiet",
                "--release",
                "--target",
                "aarch64-unknown-none",
            ])
            .arg("--manifest-path")
            .arg(manifest)
            .arg("--target-dir")
            .arg(&target),
    )?;
    Ok(target
        .join("aarch64-unknown-none")
        .join("release")
        .join(&pkg))
}

/// The Image next to an ELF: `<elf>.Image`.
fn image_path(elf: &Path) -> PathBuf {
    let mut name = elf.file_name().unwrap_or_default().to_os_string();
    name.push(".Image");
    elf.with_file_name(name)
}

/// Checks the formatting and lints of every guest, of the library they
/// share and of the [`PROGRAMS`] (`cargo fmt --check`, clippy with
/// `-D warnings` for aarch64), as `cargo xtask test` does for the
/// workspace: they are outside it. A program's library (its pure logic)
/// is also tested on the host (`cargo test --lib`).
pub fn check_all() -> Result<(), String> {
    for name in crates() {
        let manifest = dir().join(&name).join("Cargo.toml");
        run_cmd(
            cargo()
                .args(["fmt", "--manifest-path"])
                .arg(&manifest)
                .args(["--", "--check"]),
        )?;
        run_cmd(
            cargo()
                .args([
                    "clippy",
                    "--quiet",
                    "--release",
                    "--target",
                    "aarch64-unknown-none",
                ])
                .arg("--manifest-path")
                .arg(&manifest)
                .arg("--target-dir")
                .arg(target_dir())
                .args(["--", "-D", "warnings"]),
        )?;
        if PROGRAMS.contains(&name.as_str()) {
            run_cmd(
                cargo()
                    .args(["test", "--quiet", "--lib", "--manifest-path"])
                    .arg(&manifest)
                    .arg("--target-dir")
                    .arg(target_dir()),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_file_name_names_the_guest_and_nothing_else_does() {
        assert_eq!(guest_name("guest:abi"), Some("abi"));
        assert_eq!(guest_name("linux"), None);
        assert_eq!(guest_name("tests/guests/abi"), None);
    }

    #[test]
    fn a_guest_builds_as_its_own_package_into_an_image_beside_the_elf() {
        assert_eq!(package("abi"), "oxen-guest-abi");
        assert_eq!(
            image_path(Path::new("/t/release/oxen-guest-abi")),
            Path::new("/t/release/oxen-guest-abi.Image")
        );
    }

    #[test]
    fn an_unknown_or_odd_guest_name_is_refused_with_the_guests_there_are() {
        let err = manifest("no-such-guest").unwrap_err();
        assert!(err.starts_with("no test guest \"no-such-guest\""), "{err}");
        assert!(err.contains("guests: "), "{err}");
        assert!(manifest("../abi").is_err());
        assert!(manifest("").is_err());
    }

    #[test]
    fn the_abi_guest_is_found() {
        assert!(names().contains(&"abi".to_string()));
        assert!(manifest("abi").is_ok());
    }

    #[test]
    fn the_shared_library_is_checked_but_is_not_a_guest() {
        assert!(crates().contains(&"common".to_string()));
        assert!(!names().contains(&"common".to_string()));
        let err = manifest("common").unwrap_err();
        assert!(err.contains("src/main.rs"), "{err}");
    }

    #[test]
    fn the_xenstore_client_is_a_checked_linux_program_not_a_guest() {
        assert!(crates().contains(&"xs".to_string()));
        assert!(!names().contains(&"xs".to_string()));
        assert!(manifest("xs").is_err());
        let err = build_program("abi").unwrap_err();
        assert!(err.starts_with("no Linux program \"abi\""), "{err}");
    }

    #[test]
    fn every_guest_is_checked() {
        let crates = crates();
        assert!(names().iter().all(|g| crates.contains(g)));
    }
}
