//! `cargo xtask fuzz [--seconds N] [TARGET]`: Oxen's host fuzz targets
//! (`fuzz/`, its own workspace), built with libFuzzer on stable Rust, run
//! one after the other; and the short fixed-iteration pass of every
//! target over the checked-in corpus that `cargo xtask test` runs.
//!
//! Coverage comes from LLVM's SanitizerCoverage, switched on with stable
//! codegen flags (`-C passes=sancov-module` and `-C llvm-args`), which is
//! what cargo-fuzz does apart from its `-Z sanitizer` (nightly only). The
//! targets' code has no `unsafe`, so AddressSanitizer would find little;
//! panics, overflows (checks are on) and hangs are what is looked for.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{configs, dts, root, run_cmd, setup};

/// Every target, in the order they run. `config` and `hostdt` share the
/// device-tree seeds; `config` edits them as trees, `hostdt` as bytes.
pub const TARGETS: &[&str] = &["hostdt", "config", "evtchn", "gnttab", "xenstore"];

/// Executions of each target in the fixed-iteration pass.
pub const SMOKE_RUNS: u64 = 20_000;

/// SanitizerCoverage as libFuzzer wants it: inline 8-bit counters, the PC
/// table, and comparisons traced so libFuzzer learns magic values.
const COVERAGE_FLAGS: &[&str] = &[
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "--cfg",
    "fuzzing",
];

/// Longest input per target: trees up to 64 KiB, call sequences 4 KiB.
fn max_len(target: &str) -> usize {
    match target {
        "hostdt" | "config" => 65536,
        _ => 4096,
    }
}

fn fuzz_dir() -> PathBuf {
    root().join("fuzz")
}

fn work_dir() -> PathBuf {
    root().join("target").join("fuzz")
}

/// The checked-in corpus of a target.
pub fn corpus(target: &str) -> PathBuf {
    fuzz_dir().join("corpus").join(target)
}

fn host_triple() -> Result<String, String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .current_dir(root())
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .ok_or_else(|| "rustc -vV printed no host line".into())
}

/// Builds every target; returns the directory holding the binaries.
pub fn build() -> Result<PathBuf, String> {
    // libfuzzer-sys compiles libFuzzer's C++ with the host's compiler.
    setup::ensure_programs(&[("c++", "g++")])?;
    let triple = host_triple()?;
    let target_dir = work_dir();
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(fuzz_dir())
        .args(["build", "--quiet", "--release", "--locked", "--bins"])
        .args(["--target", &triple])
        .arg("--target-dir")
        .arg(&target_dir)
        // `--target` keeps the flags off build scripts and proc macros.
        .env("RUSTFLAGS", COVERAGE_FLAGS.join(" "))
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    run_cmd(&mut c)?;
    Ok(target_dir.join(triple).join("release"))
}

/// What one run of a target reported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub execs: u64,
    pub execs_per_sec: u64,
    pub new_units: u64,
    pub peak_rss_mb: u64,
}

/// Reads libFuzzer's `-print_final_stats=1` lines.
pub fn parse_stats(log: &str) -> Stats {
    let mut s = Stats::default();
    for line in log.lines() {
        let Some((key, value)) = line.strip_prefix("stat::").and_then(|l| l.split_once(':')) else {
            continue;
        };
        let v = value.trim().parse().unwrap_or(0);
        match key {
            "number_of_executed_units" => s.execs = v,
            "average_exec_per_sec" => s.execs_per_sec = v,
            "new_units_added" => s.new_units = v,
            "peak_rss_mb" => s.peak_rss_mb = v,
            _ => {}
        }
    }
    s
}

/// Files and bytes in a corpus directory.
pub fn corpus_size(dir: &Path) -> (usize, u64) {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .fold((0, 0), |(n, b), m| (n + 1, b + m.len()))
        })
        .unwrap_or((0, 0))
}

fn fresh_dir(dir: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

/// Runs one target binary; the log goes to the terminal and is returned.
fn run_target(
    bin_dir: &Path,
    target: &str,
    args: &[String],
    dirs: &[PathBuf],
) -> Result<Stats, String> {
    let artifacts = work_dir().join("artifacts").join(target);
    std::fs::create_dir_all(&artifacts).map_err(|e| format!("{}: {e}", artifacts.display()))?;
    let mut c = Command::new(bin_dir.join(target));
    c.current_dir(root())
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(format!("-max_len={}", max_len(target)))
        .arg("-print_final_stats=1")
        .args(args)
        .args(dirs);
    eprintln!("+ {}", crate::show(&c));
    let out = c
        .output()
        .map_err(|e| format!("cannot run {target}: {e}"))?;
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "fuzz target {target} failed ({}); the input that did it is in {} \
             (replay: {} <file>); make it a unit test in the crate it hit.\n{}",
            out.status,
            artifacts.display(),
            bin_dir.join(target).display(),
            tail.join("\n")
        ));
    }
    Ok(parse_stats(&log))
}

/// The fixed-iteration pass `cargo xtask test` runs: every target, seed 1,
/// [`SMOKE_RUNS`] executions, over the checked-in corpus (new inputs go to
/// a scratch directory, never into the repository).
pub fn smoke() -> Result<(), String> {
    let bins = build()?;
    for t in TARGETS {
        let scratch = work_dir().join("smoke").join(t);
        fresh_dir(&scratch)?;
        let stats = run_target(
            &bins,
            t,
            &[format!("-runs={SMOKE_RUNS}"), "-seed=1".into()],
            &[scratch, corpus(t)],
        )?;
        println!("fuzz {t}: {} executions, no crash", stats.execs);
    }
    Ok(())
}

/// `cargo xtask fuzz`'s options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub seconds: u64,
    pub targets: Vec<String>,
    /// `--smoke`: the fixed-iteration pass of `cargo xtask test` instead.
    pub smoke: bool,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut opts = Options {
            seconds: 60,
            targets: Vec::new(),
            smoke: false,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--seconds" => {
                    let v = it.next().ok_or("--seconds needs a number")?;
                    opts.seconds = v
                        .parse()
                        .ok()
                        .filter(|&s| s > 0)
                        .ok_or(format!("--seconds {v}: expected a whole number above 0"))?;
                }
                "--smoke" => opts.smoke = true,
                t if TARGETS.contains(&t) => opts.targets.push(t.into()),
                other => {
                    return Err(format!(
                        "unknown fuzz option or target {other} (expected --seconds N, --smoke or one of {})",
                        TARGETS.join(", ")
                    ));
                }
            }
        }
        if opts.targets.is_empty() {
            opts.targets = TARGETS.iter().map(|t| t.to_string()).collect();
        }
        Ok(opts)
    }
}

/// Compiles every config into a host tree (a QEMU-like machine with the
/// config's `/chosen` merged in and its modules given addresses), the
/// seeds of the device-tree targets. Returns the directory.
pub fn config_seeds() -> Result<PathBuf, String> {
    setup::ensure_programs(&[("dtc", "device-tree-compiler")])?;
    let out = work_dir().join("seeds").join("dtb");
    let scratch = work_dir().join("seeds").join("scratch");
    fresh_dir(&out)?;
    fresh_dir(&scratch)?;
    for name in configs::names()? {
        match seed_for(&name, &scratch) {
            Ok(dts_text) => {
                let src = scratch.join(format!("{name}.dts"));
                std::fs::write(&src, dts_text).map_err(|e| e.to_string())?;
                if let Err(e) = dts::dtc(
                    &["-I", "dts", "-O", "dtb"],
                    &src,
                    &out.join(format!("{name}.dtb")),
                ) {
                    eprintln!("fuzz seeds: {name}: {e}");
                }
            }
            Err(e) => eprintln!("fuzz seeds: skipping {name}: {e}"),
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(out)
}

/// Modules get this size each when seeding (their files are not fetched).
const SEED_MODULE_SIZE: u64 = 4 << 20;

fn seed_for(name: &str, scratch: &Path) -> Result<String, String> {
    let path = configs::dir().join(format!("{name}.dts"));
    let mut config = dts::canonical(&path, &scratch.join(format!("{name}.config.dts")))?;
    let plan = configs::plan(&config).map_err(|e| e.join("; "))?;
    let copy = configs::copies(&plan.modules);
    let loaded: Vec<usize> = (0..plan.modules.len()).filter(|&i| copy[i] == i).collect();
    let sizes = vec![SEED_MODULE_SIZE; loaded.len()];
    let home = crate::boards::HOME;
    let at = configs::place(
        &sizes,
        home.module_base(),
        configs::MODULE_ALIGN,
        u64::MAX,
        home.reserved,
    )?;
    let end = at
        .last()
        .map_or(home.module_base(), |a| a + SEED_MODULE_SIZE);
    let memory_mib = configs::memory_mib(&plan, end, home.ram_base);
    let placed: Vec<_> = plan
        .modules
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let slot = loaded.iter().position(|&l| l == copy[i]).unwrap_or(0);
            (m.clone(), at[slot], SEED_MODULE_SIZE)
        })
        .collect();
    configs::apply(&mut config, &placed)?;
    let host_text = host_dts(plan.cpus.unwrap_or(configs::DEFAULT_CPUS), memory_mib);
    let host_path = scratch.join(format!("{name}.host.dts"));
    std::fs::write(&host_path, host_text).map_err(|e| e.to_string())?;
    let host = dts::canonical(&host_path, &scratch.join(format!("{name}.host.canon.dts")))?;
    Ok(configs::merge(&host, &config))
}

/// A host tree shaped like QEMU's `virt` (GICv3, PL011, PSCI over SMC).
fn host_dts(cpus: u32, memory_mib: u64) -> String {
    let mem = memory_mib << 20;
    let cpu_nodes: String = (0..cpus)
        .map(|i| {
            format!(
                "\t\tcpu@{i} {{\n\t\t\tdevice_type = \"cpu\";\n\t\t\tcompatible = \"arm,cortex-a57\";\n\
                 \t\t\treg = <{i}>;\n\t\t\tenable-method = \"psci\";\n\t\t}};\n"
            )
        })
        .collect();
    format!(
        "/dts-v1/;\n\n/ {{\n\t#address-cells = <2>;\n\t#size-cells = <2>;\n\
         \tinterrupt-parent = <0x8002>;\n\tcompatible = \"linux,dummy-virt\";\n\
         \taliases {{\n\t\tserial0 = \"/pl011@9000000\";\n\t}};\n\
         \tchosen {{\n\t\tstdout-path = \"/pl011@9000000\";\n\t\t#address-cells = <2>;\n\t\t#size-cells = <2>;\n\t}};\n\
         \tmemory@40000000 {{\n\t\tdevice_type = \"memory\";\n\t\treg = <0 0x40000000 {:#x} {:#x}>;\n\t}};\n\
         \tpl011@9000000 {{\n\t\tcompatible = \"arm,pl011\", \"arm,primecell\";\n\t\treg = <0 0x9000000 0 0x1000>;\n\
         \t\tinterrupts = <0 1 4>;\n\t}};\n\
         \tpsci {{\n\t\tcompatible = \"arm,psci-1.0\", \"arm,psci-0.2\", \"arm,psci\";\n\t\tmethod = \"smc\";\n\t}};\n\
         \tintc@8000000 {{\n\t\tphandle = <0x8002>;\n\t\tcompatible = \"arm,gic-v3\";\n\t\t#interrupt-cells = <3>;\n\
         \t\tinterrupt-controller;\n\t\t#redistributor-regions = <1>;\n\
         \t\treg = <0 0x8000000 0 0x10000 0 0x80a0000 0 0xf60000>;\n\t\tinterrupts = <1 9 4>;\n\t}};\n\
         \ttimer {{\n\t\tcompatible = \"arm,armv8-timer\", \"arm,armv7-timer\";\n\
         \t\tinterrupts = <1 13 4 1 14 4 1 11 4 1 10 4>;\n\t\talways-on;\n\t}};\n\
         \tcpus {{\n\t\t#address-cells = <1>;\n\t\t#size-cells = <0>;\n{cpu_nodes}\t}};\n}};\n",
        mem >> 32,
        mem & 0xffff_ffff,
    )
}

/// `cargo xtask fuzz`: each target for `seconds`, one after the other,
/// then a table of executions per second and corpus sizes.
pub fn run(opts: &Options) -> Result<(), String> {
    setup::ensure_toolchain()?;
    if opts.smoke {
        return smoke();
    }
    let bins = build()?;
    let needs_seeds = opts.targets.iter().any(|t| t == "hostdt" || t == "config");
    let seeds = if needs_seeds {
        Some(config_seeds()?)
    } else {
        None
    };
    let mut rows = Vec::new();
    for t in &opts.targets {
        let corpus_dir = work_dir().join("corpus").join(t);
        std::fs::create_dir_all(&corpus_dir)
            .map_err(|e| format!("{}: {e}", corpus_dir.display()))?;
        let mut dirs = vec![corpus_dir.clone(), corpus(t)];
        if let (Some(s), "hostdt" | "config") = (&seeds, t.as_str()) {
            dirs.push(s.clone());
        }
        let stats = run_target(
            &bins,
            t,
            &[format!("-max_total_time={}", opts.seconds)],
            &dirs,
        )?;
        let (files, bytes) = corpus_size(&corpus_dir);
        println!(
            "fuzz {t}: {} executions in {} s, {} exec/s, {} new inputs, corpus {files} files ({} KiB), peak RSS {} MiB",
            stats.execs,
            opts.seconds,
            stats.execs_per_sec,
            stats.new_units,
            bytes.div_ceil(1024),
            stats.peak_rss_mb
        );
        rows.push((t.clone(), stats, files, bytes));
    }
    println!("\n| target | exec/s | executions | corpus files | corpus KiB |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (t, s, files, bytes) in &rows {
        println!(
            "| {t} | {} | {} | {files} | {} |",
            s.execs_per_sec,
            s.execs,
            bytes.div_ceil(1024)
        );
    }
    println!(
        "(the grown corpora are in {}; `-merge=1` them into fuzz/corpus/ to keep what is new)",
        work_dir().join("corpus").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_stats_are_read() {
        let log = "INFO: x\nstat::number_of_executed_units: 1234\nstat::average_exec_per_sec:     617\n\
                   stat::new_units_added:          5\nstat::peak_rss_mb:              30\n";
        assert_eq!(
            parse_stats(log),
            Stats {
                execs: 1234,
                execs_per_sec: 617,
                new_units: 5,
                peak_rss_mb: 30
            }
        );
    }

    #[test]
    fn options_take_seconds_and_targets() {
        let o = Options::parse(&["--seconds".into(), "5".into(), "gnttab".into()]).unwrap();
        assert_eq!(o.seconds, 5);
        assert_eq!(o.targets, ["gnttab"]);
        assert_eq!(Options::parse(&[]).unwrap().targets.len(), TARGETS.len());
        assert!(Options::parse(&["--seconds".into(), "0".into()]).is_err());
        assert!(Options::parse(&["nope".into()]).is_err());
    }

    #[test]
    fn every_target_has_a_binary_and_a_corpus() {
        let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
        for t in TARGETS {
            assert!(
                manifest.contains(&format!("name = \"{t}\"")),
                "{t} in fuzz/Cargo.toml"
            );
            assert!(corpus(t).is_dir(), "fuzz/corpus/{t} exists");
        }
    }

    #[test]
    fn the_seed_host_tree_has_the_asked_memory_and_cpus() {
        let t = host_dts(3, 3072);
        assert!(t.contains("reg = <0 0x40000000 0x0 0xc0000000>"), "{t}");
        assert!(t.contains("cpu@2 {"));
        assert!(!t.contains("cpu@3 {"));
    }
}
