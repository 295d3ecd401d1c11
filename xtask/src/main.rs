//! `cargo xtask`: build, run and test Oxen.
//!
//! - `cargo xtask build [--board B] [--features F | --no-default-features] [--release]`
//!   builds the bootable Image and prints its path as the last line.
//! - `cargo xtask run [--board B] [--features F | --no-default-features] [--smp N]`
//!   builds and boots it in QEMU with the console attached.
//! - `cargo xtask test` runs every check: rustfmt, clippy (host and
//!   aarch64), host unit tests, then the QEMU tests.
//!
//! Each command first installs what it is missing (the pinned toolchain and
//! target, `qemu-system-arm`, `device-tree-compiler`).

mod image;
mod qemu;
mod setup;
mod test;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// What to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    pub board: String,
    /// `None`: the board's default features.
    pub features: Option<Vec<String>>,
    pub release: bool,
}

impl Default for BuildSpec {
    fn default() -> Self {
        Self {
            board: "qemu-virt".into(),
            features: None,
            release: true,
        }
    }
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Runs a command, echoing it; `Err` with a message when it fails.
pub fn run_cmd(cmd: &mut Command) -> Result<(), String> {
    eprintln!("+ {}", show(cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {}: {e}", show(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", show(cmd)))
    }
}

pub fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// The board package and binary name for a board directory.
pub fn board_package(board: &str) -> String {
    format!("oxen-{board}")
}

/// Builds the board's ELF and its Image; returns the Image's path.
pub fn build(spec: &BuildSpec) -> Result<PathBuf, String> {
    let pkg = board_package(&spec.board);
    if !root().join("boards").join(&spec.board).is_dir() {
        return Err(format!("no board \"{}\" under boards/", spec.board));
    }
    // Each feature set gets its own target directory so that switching sets
    // never rebuilds (and images of different sets can coexist).
    let set = feature_set_name(spec);
    let target_dir = root().join("target").join("images").join(&set);
    let mut cmd = cargo();
    cmd.args([
        "build",
        "--quiet",
        "-p",
        &pkg,
        "--target",
        "aarch64-unknown-none",
    ])
    .arg("--target-dir")
    .arg(&target_dir);
    if spec.release {
        cmd.arg("--release");
    }
    if let Some(f) = &spec.features {
        cmd.arg("--no-default-features");
        if !f.is_empty() {
            cmd.args(["--features", &f.join(",")]);
        }
    }
    run_cmd(&mut cmd)?;
    let profile = if spec.release { "release" } else { "debug" };
    let elf = target_dir
        .join("aarch64-unknown-none")
        .join(profile)
        .join(&pkg);
    let img = elf.with_file_name(format!("{pkg}.Image"));
    image::elf_to_image(&elf, &img)?;
    Ok(img)
}

/// A stable directory name for a feature set.
pub fn feature_set_name(spec: &BuildSpec) -> String {
    let mut s = spec.board.clone();
    match &spec.features {
        None => s.push_str("-default"),
        Some(f) if f.is_empty() => s.push_str("-none"),
        Some(f) => {
            let mut f = f.clone();
            f.sort();
            s.push('-');
            s.push_str(&f.join("+"));
        }
    }
    s
}

fn parse_build_args(args: &mut Vec<String>) -> Result<BuildSpec, String> {
    let mut spec = BuildSpec::default();
    let mut rest = Vec::new();
    let mut it = args.drain(..);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--board" => spec.board = it.next().ok_or("--board needs a value")?,
            "--features" => {
                let f = it.next().ok_or("--features needs a value")?;
                let list: Vec<String> = f
                    .split([',', ' '])
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                let mut cur = spec.features.take().unwrap_or_default();
                cur.extend(list);
                spec.features = Some(cur);
            }
            "--no-default-features" => {
                spec.features.get_or_insert_with(Vec::new);
            }
            "--release" => spec.release = true,
            "--debug" => spec.release = false,
            _ => rest.push(a),
        }
    }
    drop(it);
    *args = rest;
    Ok(spec)
}

const USAGE: &str = "usage: cargo xtask <build|run|test> [options]
  build [--board B] [--features F | --no-default-features] [--release|--debug]
  run   [build options] [--smp N] [--config NAME]
  test  [--no-qemu]";

fn real_main() -> Result<(), String> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        return Err(USAGE.into());
    }
    let cmd = args.remove(0);
    match cmd.as_str() {
        "build" => {
            setup::ensure_toolchain()?;
            let spec = parse_build_args(&mut args)?;
            if let Some(a) = args.first() {
                return Err(format!("unknown option {a}\n{USAGE}"));
            }
            let img = build(&spec)?;
            println!("{}", img.display());
            Ok(())
        }
        "run" => {
            setup::ensure_toolchain()?;
            setup::ensure_host_tools()?;
            let spec = parse_build_args(&mut args)?;
            let mut smp = 2;
            let mut config = None;
            let mut it = args.drain(..);
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--smp" => {
                        smp = it
                            .next()
                            .and_then(|v| v.parse().ok())
                            .ok_or("--smp needs a number")?
                    }
                    "--config" => config = Some(it.next().ok_or("--config needs a name")?),
                    other => return Err(format!("unknown option {other}\n{USAGE}")),
                }
            }
            if let Some(c) = config {
                return Err(format!(
                    "--config {c}: no configs exist yet; domains arrive with the dom0less work"
                ));
            }
            let img = build(&spec)?;
            qemu::run_interactive(&qemu::Machine::new(&img, smp))
        }
        "test" => {
            let qemu = !args.iter().any(|a| a == "--no-qemu");
            if let Some(a) = args.iter().find(|a| *a != "--no-qemu") {
                return Err(format!("unknown option {a}\n{USAGE}"));
            }
            test::run_all(qemu)
        }
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {other}\n{USAGE}")),
    }
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(args: &[&str]) -> (BuildSpec, Vec<String>) {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let s = parse_build_args(&mut v).unwrap();
        (s, v)
    }

    #[test]
    fn no_default_features_means_an_empty_set() {
        let (s, rest) = spec(&["--no-default-features", "--smp", "4"]);
        assert_eq!(s.features, Some(vec![]));
        assert_eq!(rest, ["--smp", "4"]);
        assert_eq!(feature_set_name(&s), "qemu-virt-none");
    }

    #[test]
    fn feature_lists_accumulate_and_name_sorted() {
        let (s, _) = spec(&["--features", "gnttab,evtchn", "--features", "xenstore"]);
        assert_eq!(feature_set_name(&s), "qemu-virt-evtchn+gnttab+xenstore");
    }
}
