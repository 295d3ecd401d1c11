//! `cargo xtask`: build, run and test Oxen.
//!
//! - `cargo xtask build [--board B] [--features F | --no-default-features]
//!   [--drivers D] [--release]` builds board B's bootable Image (B one of
//!   `boards::BOARDS`; `qemu-virt` unless named) and prints its path as
//!   the last line.
//! - `cargo xtask run [build options] [--config NAME] [--peer oxen|xen]
//!   [--smp N] [--check]` boots a config from `configs/` (`default` unless
//!   named; `none` boots the hypervisor alone on QEMU's own tree) on Oxen
//!   or on Xen 4.20, on board B's machine, with the console attached, or with `--check` captured
//!   and checked against the config's expectations. `--image FILE` boots
//!   that arm64 Image instead of building Oxen or fetching Xen. `--uboot`
//!   boots through Debian's U-Boot with a boot script that loads every
//!   file from a disk, as on a real board. `--guest-args "KEY=VALUE …"`
//!   sets those words in the test guests' bootargs (e.g. the hostile
//!   guest's `hostile.seed` and `hostile.count`).
//! - `cargo xtask guests [--refresh]` fetches (or, with `--refresh`,
//!   updates) the guests' Debian packages and prints what it has.
//! - `cargo xtask test` runs every check: rustfmt, clippy (host and
//!   aarch64), host unit tests, every config through `oxen-check`, a short
//!   fixed-iteration pass of every fuzz target, then the QEMU tests.
//! - `cargo xtask check FILE [options]` runs `oxen-check` (tools/oxen-check)
//!   on a host device tree or a config.
//! - `cargo xtask fuzz [--seconds N] [TARGET...]` runs the host fuzz
//!   targets (`fuzz/`) one after the other.
//!
//! Each command first installs what it is missing (the pinned toolchain and
//! target, `qemu-system-arm`, `device-tree-compiler`).

mod bench;
mod boards;
mod chart;
mod check;
mod configs;
mod cpio;
mod debian;
mod dts;
mod expect;
mod fuzz;
mod guests_build;
mod image;
mod initramfs;
mod qemu;
mod setup;
mod test;
mod uboot;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// What to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    /// The board image: a directory under `boards/`.
    pub board: String,
    /// The Xen interfaces; `None`: the board's default ones.
    pub features: Option<Vec<String>>,
    /// The drivers; `None`: the board's (`[package.metadata.oxen]`), as
    /// every image but a driver variant has.
    pub drivers: Option<Vec<String>>,
    pub release: bool,
}

impl Default for BuildSpec {
    fn default() -> Self {
        Self {
            board: boards::HOME.image.into(),
            features: None,
            drivers: None,
            release: true,
        }
    }
}

/// The cargo features of a build: `None` for the board's defaults, else the
/// interfaces and drivers asked for (defaults for what is not), each checked
/// against the board's manifest.
pub fn cargo_features(
    spec: &BuildSpec,
    feats: &boards::BoardFeatures,
) -> Result<Option<Vec<String>>, String> {
    if spec.features.is_none() && spec.drivers.is_none() {
        return Ok(None);
    }
    let interfaces = spec.features.as_ref().unwrap_or(&feats.default);
    let drivers = spec.drivers.as_ref().unwrap_or(&feats.drivers);
    if let Some(bad) = interfaces.iter().find(|f| !feats.interfaces.contains(f)) {
        let hint = if feats.drivers.contains(bad) {
            " (a driver: every image has the board's; --drivers picks others)"
        } else {
            ""
        };
        return Err(format!(
            "board {} has no Xen interface feature \"{bad}\"{hint} (expected some of: {})",
            spec.board,
            feats.interfaces.join(", ")
        ));
    }
    if let Some(bad) = drivers.iter().find(|d| !feats.drivers.contains(d)) {
        return Err(format!(
            "board {} has no driver \"{bad}\" (expected some of: {})",
            spec.board,
            feats.drivers.join(", ")
        ));
    }
    Ok(Some(interfaces.iter().chain(drivers).cloned().collect()))
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
    let features = cargo_features(spec, &boards::manifest(&spec.board)?)?;
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
    if let Some(f) = &features {
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

/// A stable directory name for a feature set: the board, its interfaces
/// (`default`, `none` or `a+b`) and, for a driver variant, its drivers.
pub fn feature_set_name(spec: &BuildSpec) -> String {
    let sorted = |f: &[String]| {
        let mut f = f.to_vec();
        f.sort();
        f.join("+")
    };
    let mut s = spec.board.clone();
    match &spec.features {
        None => s.push_str("-default"),
        Some(f) if f.is_empty() => s.push_str("-none"),
        Some(f) => {
            s.push('-');
            s.push_str(&sorted(f));
        }
    }
    if let Some(d) = &spec.drivers {
        s.push_str("-drivers-");
        s.push_str(if d.is_empty() { "none" } else { "" });
        s.push_str(&sorted(d));
    }
    s
}

fn list(value: &str) -> Vec<String> {
    value
        .split([',', ' '])
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Reads the build options, leaving the others in `args`: the image to
/// build and the board (machine) it is for.
fn parse_build_args(args: &mut Vec<String>) -> Result<(BuildSpec, &'static boards::Board), String> {
    let mut spec = BuildSpec::default();
    let mut board = boards::HOME;
    let mut rest = Vec::new();
    let mut it = args.drain(..);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--board" => {
                board = boards::find(&it.next().ok_or("--board needs a value")?)?;
                spec.board = board.image.into();
            }
            "--features" => {
                let f = it.next().ok_or("--features needs a value")?;
                let mut cur = spec.features.take().unwrap_or_default();
                cur.extend(list(&f));
                spec.features = Some(cur);
            }
            "--drivers" => {
                let d = it.next().ok_or("--drivers needs a value")?;
                let mut cur = spec.drivers.take().unwrap_or_default();
                cur.extend(list(&d));
                spec.drivers = Some(cur);
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
    Ok((spec, board))
}

const USAGE: &str = "usage: cargo xtask <build|run|guests|test|bench|check> [options]
  build  [--board B] [--features F | --no-default-features] [--drivers D] [--release|--debug]
         boards B: qemu-virt (default), qemu-virt-gicv2, xlnx-versal-virt, xlnx-zcu102
  run    [build options] [--config NAME|none] [--peer oxen|xen] [--smp N] [--check] [--uboot]
         [--image FILE] [--guest-args \"KEY=VALUE ...\"]
  guests [--refresh]
  test   [--no-qemu] [--peer oxen|xen] [--board B]
  fuzz   [--seconds N] [--smoke] [TARGET...]   (hostdt, config, evtchn, gnttab, xenstore; docs/testing.md)
  bench  [--reps N] [--only PREFIX] [--no-sizes] | --chart [TABLE...]   (docs/performance.md)
  check  FILE [--features a,b | --no-default-features] [--json] [--module ADDR=FILE]
         [--uboot-script FILE] [--image FILE]   (oxen-check, docs/configs.md)
  check  --configs   (every config through oxen-check, as in `test`)";

/// `cargo xtask run` after the build options, on `board`'s machine.
fn run(spec: &BuildSpec, board: &'static boards::Board, args: Vec<String>) -> Result<(), String> {
    let mut smp = None;
    let mut config = "default".to_string();
    let mut peer = expect::Peer::Oxen;
    let mut check = false;
    let mut image = None;
    let mut boot = configs::Boot::Direct;
    let mut guest_args = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--smp" => {
                smp = Some(
                    it.next()
                        .and_then(|v| v.parse().ok())
                        .filter(|&n| n > 0)
                        .ok_or("--smp needs a number")?,
                )
            }
            "--config" => config = it.next().ok_or("--config needs a name")?,
            "--peer" => peer = expect::Peer::parse(&it.next().ok_or("--peer needs a name")?)?,
            "--check" => check = true,
            "--uboot" => boot = configs::Boot::UBoot,
            "--guest-args" => {
                guest_args.push(it.next().ok_or("--guest-args needs key=value words")?)
            }
            "--image" => image = Some(PathBuf::from(it.next().ok_or("--image needs a file")?)),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    let img = match image {
        Some(i) => i,
        None => configs::image_for(peer, spec)?,
    };
    if config == "none" {
        if check {
            return Err("--check needs a config: `none` has no expectations".into());
        }
        return qemu::run_interactive(&configs::bare(board, &img, board.smp(smp)?)?);
    }
    let p = configs::prepare_on(board, &config, peer, &img, smp, boot, &guest_args)?;
    eprintln!(
        "xtask: {} on {} ({}): {}",
        p.name,
        p.peer.name(),
        board.name,
        p.dts.display()
    );
    if !check {
        return qemu::run_interactive(&p.machine);
    }
    eprintln!(
        "+ qemu-system-aarch64 {} (captured, at most {} s)",
        p.machine.args().join(" "),
        p.want.limit.as_secs()
    );
    let out = configs::run(&p)?;
    print!("{}", out.log);
    let problems = configs::check(&p, &out);
    let secs = out.elapsed.as_secs_f64();
    if problems.is_empty() {
        println!("xtask: {config} on {}: ok ({secs:.1} s)", peer.name());
        Ok(())
    } else {
        for pr in &problems {
            println!("    {pr}");
        }
        Err(format!(
            "{config} on {}: {} problem(s) after {secs:.1} s",
            peer.name(),
            problems.len()
        ))
    }
}

fn real_main() -> Result<(), String> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        return Err(USAGE.into());
    }
    let cmd = args.remove(0);
    match cmd.as_str() {
        "build" => {
            setup::ensure_toolchain()?;
            let (spec, _) = parse_build_args(&mut args)?;
            if let Some(a) = args.first() {
                return Err(format!("unknown option {a}\n{USAGE}"));
            }
            let img = build(&spec)?;
            if spec.drivers.is_some() {
                // A driver variant: its size, and no code of the others.
                test::check_variant(&spec)?;
            }
            println!("{}", img.display());
            Ok(())
        }
        "run" => {
            setup::ensure_toolchain()?;
            setup::ensure_host_tools()?;
            let (spec, board) = parse_build_args(&mut args)?;
            run(&spec, board, args)
        }
        "guests" => {
            let refresh = match args.as_slice() {
                [] => false,
                [r] if r == "--refresh" => true,
                _ => return Err(format!("unknown option {}\n{USAGE}", args.join(" "))),
            };
            let g = debian::fetch(refresh)?;
            for p in &g.packages {
                println!("{} {}", p.name, p.version);
            }
            println!("linux   {}", g.linux.display());
            println!("linux61 {}", g.linux61.display());
            println!("busybox {}", g.busybox.display());
            println!("xen     {}", g.xen.display());
            println!("initramfs {}", initramfs::build(&g)?.display());
            Ok(())
        }
        "test" => {
            let opts = test::Options::parse(&args).map_err(|e| format!("{e}\n{USAGE}"))?;
            test::run(&opts)
        }
        "bench" => bench::run(args),
        "check" => {
            setup::ensure_toolchain()?;
            check::command(&args)
        }
        "fuzz" => {
            let opts = fuzz::Options::parse(&args).map_err(|e| format!("{e}\n{USAGE}"))?;
            fuzz::run(&opts)
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
        let (s, _) = parse_build_args(&mut v).unwrap();
        (s, v)
    }

    #[test]
    fn a_board_names_the_image_it_boots() {
        let mut v = vec!["--board".to_string(), "qemu-virt-gicv2".into()];
        let (s, b) = parse_build_args(&mut v).unwrap();
        assert_eq!((s.board.as_str(), b.name), ("qemu-virt", "qemu-virt-gicv2"));
        let mut v = vec!["--board".to_string(), "xlnx-zcu102".into()];
        let (s, _) = parse_build_args(&mut v).unwrap();
        assert_eq!(feature_set_name(&s), "xlnx-zcu102-default");
        let mut v = vec!["--board".to_string(), "zcu102".into()];
        assert!(
            parse_build_args(&mut v)
                .unwrap_err()
                .contains("no board \"zcu102\"")
        );
    }

    #[test]
    fn drivers_are_added_to_every_feature_set_unless_asked_for() {
        let feats = boards::parse_manifest(
            "[package.metadata.oxen]\ndrivers = [\"gicv3\", \"pl011\"]\n[features]\n\
             default = [\"evtchn\", \"gicv3\", \"pl011\"]\nevtchn = []\ngnttab = []\ngicv3 = []\npl011 = []\n",
        )
        .unwrap();
        let (s, _) = spec(&[]);
        assert_eq!(cargo_features(&s, &feats), Ok(None));
        let (s, _) = spec(&["--features", "gnttab"]);
        assert_eq!(
            cargo_features(&s, &feats).unwrap().unwrap(),
            ["gnttab", "gicv3", "pl011"]
        );
        let (s, _) = spec(&["--no-default-features"]);
        assert_eq!(
            cargo_features(&s, &feats).unwrap().unwrap(),
            ["gicv3", "pl011"]
        );
        let (s, _) = spec(&["--drivers", "pl011"]);
        assert_eq!(
            cargo_features(&s, &feats).unwrap().unwrap(),
            ["evtchn", "pl011"]
        );
        assert_eq!(feature_set_name(&s), "qemu-virt-default-drivers-pl011");
        let (s, _) = spec(&["--features", "gicv3"]);
        let e = cargo_features(&s, &feats).unwrap_err();
        assert!(e.contains("a driver"), "{e}");
        let (s, _) = spec(&["--drivers", "gicv2"]);
        assert!(
            cargo_features(&s, &feats)
                .unwrap_err()
                .contains("no driver \"gicv2\"")
        );
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
