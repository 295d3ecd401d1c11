//! `cargo xtask bench`: Oxen against Xen 4.20 and against no hypervisor at
//! all, on the same QEMU machine and the same host device tree. Never part
//! of `cargo xtask test`. What each row measures and why it costs what it
//! does: docs/performance.md.
//!
//! Every measurement (a *cell*: one row, one column) runs `--reps` times
//! (3 unless told), the columns of a row one after the other within each
//! repetition, so a slow moment of the host falls on every column alike.
//! The table shows medians; it is printed and written, with every sample,
//! to `target/bench/bench.json` (and the text to `target/bench/bench.txt`).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::chart::{self, ChartRow};
use crate::configs;
use crate::expect::Peer;
use crate::qemu::Machine;
use crate::{BuildSpec, debian, guests_build, initramfs, root, setup};

/// Repetitions per cell unless `--reps` says otherwise.
const DEFAULT_REPS: usize = 3;
/// QEMU's option for the deterministic clock: one instruction per
/// nanosecond of virtual time, and an idle machine jumps to its next timer
/// instead of waiting in real time, so nothing depends on the host.
const ICOUNT: [&str; 2] = ["-icount", "shift=0,sleep=off"];
/// The longest any one run may take.
const LIMIT: Duration = Duration::from_secs(300);

/// A column of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Oxen,
    Xen,
    Native,
}

impl Column {
    fn name(self) -> &'static str {
        match self {
            Column::Oxen => "oxen",
            Column::Xen => "xen",
            Column::Native => "native",
        }
    }
}

/// Where a row's figure comes from.
#[derive(Debug, Clone)]
enum Probe {
    /// Wall-clock seconds from QEMU's start until every one of these
    /// lines appeared (the last of them counts).
    Lines(Vec<String>),
    /// Nanoseconds per operation from the guest's `BENCH <name>` line.
    Bench(String),
    /// Wall-clock seconds from QEMU's start until this line appeared this
    /// many times (several domains printing the same line: the last one
    /// counts).
    Nth(String, usize),
    /// The largest figure of the first this many `BENCH <name>` lines, in
    /// millions of nanoseconds per operation (several domains each
    /// reporting once: the last of them counts).
    LastBench(String, usize),
    /// The timestamp Linux's printk put on this line (`[   4.304126]
    /// Run /init as init process`), in milliseconds of its clock: under
    /// `-icount shift=0`, millions of instructions.
    Printk(String),
}

/// One row: a config booted on the hypervisors, and how the native
/// machine (if any) runs the same work.
#[derive(Debug, Clone)]
struct Row {
    key: String,
    label: String,
    config: &'static str,
    probe: Probe,
    icount: bool,
    /// Host CPUs, when not the config's own.
    smp: Option<u32>,
    /// Whether Xen can run it (see [`rows`]).
    on_xen: bool,
    native: Option<Native>,
}

/// What runs with no hypervisor.
#[derive(Debug, Clone)]
enum Native {
    /// Debian's kernel with the initramfs, `oxen.name=native`.
    Linux,
    /// The bench guest as the kernel; it says hello.
    Hello,
}

fn rows() -> Vec<Row> {
    let mut v = vec![
        Row {
            key: "boot.linux1".into(),
            label: "Linux boot to init, 1 domU (s)".into(),
            config: "bench-linux-1",
            probe: Probe::Lines(vec!["oxen-init: domU1 reached init".into()]),
            icount: false,
            smp: None,
            on_xen: true,
            native: Some(Native::Linux),
        },
        Row {
            key: "boot.linux2".into(),
            label: "Linux boot to init, 2 domUs, last (s)".into(),
            config: "bench-linux-2",
            probe: Probe::Lines(vec![
                "oxen-init: domU1 reached init".into(),
                "oxen-init: domU2 reached init".into(),
            ]),
            icount: false,
            smp: None,
            on_xen: true,
            native: None,
        },
        Row {
            key: "boot.first_line".into(),
            label: "first guest line (s)".into(),
            config: "bench-hello",
            probe: Probe::Lines(vec!["bench: first line".into()]),
            icount: false,
            smp: None,
            on_xen: true,
            native: Some(Native::Hello),
        },
    ];
    for icount in [false, true] {
        let unit = if icount { "insns" } else { "us" };
        let clock = if icount { ", icount" } else { "" };
        for op in [
            "hypercall.xen_version",
            "hypercall.gnttab_query_size",
            "hypercall.evtchn_status",
        ] {
            v.push(Row {
                key: format!("{op}{}", if icount { ".icount" } else { "" }),
                label: format!("{op} ({unit}{clock})"),
                config: "bench-hypercalls",
                probe: Probe::Bench(op.into()),
                icount,
                // One domain needs one pCPU, and Xen 4.20 boots under
                // -icount only with one.
                smp: icount.then_some(1),
                on_xen: true,
                native: None,
            });
        }
        for (abi, config) in [("2l", "bench-evtchn-2l"), ("fifo", "bench-evtchn-fifo")] {
            v.push(Row {
                key: format!("evtchn.{abi}{}", if icount { ".icount" } else { "" }),
                label: format!("evtchn round trip, {abi} ({unit}{clock})"),
                config,
                probe: Probe::Bench(format!("evtchn.{abi}")),
                icount,
                smp: None,
                // Under -icount with two CPUs Xen 4.20 stops booting
                // after its P2M setup (seen with QEMU 7.2): no Xen figure.
                on_xen: !icount,
                native: None,
            });
        }
        for op in ["xenstore.read", "xenstore.write"] {
            v.push(Row {
                key: format!("{op}{}", if icount { ".icount" } else { "" }),
                label: format!("{op} round trip ({unit}{clock})"),
                config: "bench-xenstore",
                probe: Probe::Bench(op.into()),
                icount,
                smp: icount.then_some(1),
                // Xen 4.20 panics on "enabled" without dom0.
                on_xen: false,
                native: None,
            });
        }
    }
    for (op, label) in [
        (
            "pvnet.ping",
            "PV network ping round trip, domU to domU (us)",
        ),
        (
            "pvnet.bulk",
            "PV network bulk transfer, per MiB (us; 16 MiB over HTTP)",
        ),
    ] {
        v.push(Row {
            key: op.into(),
            label: label.into(),
            config: "bench-pvnet",
            probe: Probe::Bench(op.into()),
            icount: false,
            smp: None,
            // Xen 4.20 has neither xenstore without dom0 nor this binding.
            on_xen: false,
            native: None,
        });
    }
    v.insert(
        1,
        Row {
            key: "boot.linux1.xenstore".into(),
            label: "Linux boot to init, 1 domU, \"enabled\" (s)".into(),
            config: "bench-linux-1-xenstore",
            probe: Probe::Lines(vec!["oxen-init: domU1 reached init".into()]),
            icount: false,
            smp: None,
            // Xen 4.20 panics on "enabled" without dom0.
            on_xen: false,
            native: None,
        },
    );
    // Interrupt latency: the bench guest's timer (one vCPU) and SGI
    // (two vCPUs, on two pCPUs) rows.
    for icount in [false, true] {
        let unit = if icount { "insns" } else { "us" };
        let clock = if icount { ", icount" } else { "" };
        let suffix = if icount { ".icount" } else { "" };
        for (op, what) in [
            ("irq.timer", "vtimer IRQ latency, spin"),
            ("irq.timer_wfi", "vtimer IRQ latency, WFI"),
        ] {
            v.push(Row {
                key: format!("{op}{suffix}"),
                label: format!("{what} ({unit}{clock})"),
                config: "bench-irq",
                probe: Probe::Bench(op.into()),
                icount,
                smp: icount.then_some(1),
                on_xen: true,
                native: None,
            });
        }
        for (op, what) in [
            ("irq.sgi", "SGI vCPU0 to 1 latency, spin"),
            ("irq.sgi_wfi", "SGI vCPU0 to 1 latency, WFI"),
        ] {
            v.push(Row {
                key: format!("{op}{suffix}"),
                label: format!("{what} ({unit}{clock})"),
                config: "bench-sgi",
                probe: Probe::Bench(op.into()),
                icount,
                smp: Some(2),
                // Two pCPUs: Xen 4.20 does not boot under -icount so.
                on_xen: !icount,
                native: None,
            });
        }
    }
    // Linux's boot as an exact count: one pCPU under -icount, on which
    // Xen 4.20 boots too.
    v.push(Row {
        key: "boot.icount.linux1".into(),
        label: "Linux boot to /init, printk (M insns, icount)".into(),
        config: "bench-linux-1",
        probe: Probe::Printk("Run /init as init process".into()),
        icount: true,
        smp: Some(1),
        on_xen: true,
        native: Some(Native::Linux),
    });
    // How the cost of starting domains grows: N bench guests saying hello,
    // exactly on one pCPU under -icount (the machine's counter when each
    // says it), and in wall time on 2 and 4 pCPUs.
    for n in SCALE_GUESTS {
        v.push(Row {
            key: format!("scale.icount.smp1.n{n}"),
            label: format!("last of {n} first lines, 1 pCPU (M insns, icount)"),
            config: scale_config(n),
            probe: Probe::LastBench("hello.at".into(), n),
            icount: true,
            smp: Some(1),
            on_xen: true,
            native: None,
        });
    }
    for smp in [2, 4] {
        for n in SCALE_GUESTS {
            v.push(Row {
                key: format!("scale.smp{smp}.n{n}"),
                label: format!("last of {n} first lines, {smp} pCPUs (s)"),
                config: scale_config(n),
                probe: Probe::Nth("bench: first line".into(), n),
                icount: false,
                smp: Some(smp),
                on_xen: true,
                native: None,
            });
        }
    }
    v
}

/// The domain counts of the `scale.*` rows.
const SCALE_GUESTS: [usize; 4] = [1, 2, 4, 8];

/// The config with `n` bench guests saying hello.
fn scale_config(n: usize) -> &'static str {
    match n {
        1 => "bench-scale-1",
        2 => "bench-scale-2",
        4 => "bench-scale-4",
        _ => "bench-scale-8",
    }
}

/// A console line and when it arrived, from QEMU's start.
#[derive(Debug, Clone)]
struct Line {
    at: Duration,
    text: String,
}

/// Boots `qemu-system-aarch64 args` headless until every line in `until`
/// appeared (then QEMU is stopped), QEMU exits, or [`LIMIT`] passes; every
/// console line with its arrival time.
fn run_timed(args: &[String], until: &[&str]) -> Result<Vec<Line>, String> {
    run_until(args, &format!("{until:?}"), |lines| {
        until
            .iter()
            .all(|u| lines.iter().any(|l| l.text.contains(u)))
    })
}

/// As [`run_timed`], until `done` says the lines so far are enough
/// (`awaiting` names what it waits for, for the error).
fn run_until(
    args: &[String],
    awaiting: &str,
    done: impl Fn(&[Line]) -> bool,
) -> Result<Vec<Line>, String> {
    let mut cmd = Command::new("qemu-system-aarch64");
    cmd.args(args)
        .args(["-display", "none", "-monitor", "none", "-serial", "stdio"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start qemu-system-aarch64: {e}"))?;
    let out = child.stdout.take().ok_or("QEMU has no stdout")?;
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(out);
        let mut buf = Vec::new();
        while r.read_until(b'\n', &mut buf).unwrap_or(0) > 0 {
            let text = String::from_utf8_lossy(&buf).replace(['\r', '\n'], "");
            if tx
                .send(Line {
                    at: start.elapsed(),
                    text,
                })
                .is_err()
            {
                break;
            }
            buf.clear();
        }
    });
    let mut lines: Vec<Line> = Vec::new();
    let result = loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => {
                lines.push(line);
                if done(&lines) {
                    break Ok(());
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break Err("QEMU ended before printing every line awaited".to_string());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if start.elapsed() > LIMIT {
            break Err(format!("no result within {} s", LIMIT.as_secs()));
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    match result {
        Ok(()) => Ok(lines),
        Err(e) => {
            let tail: Vec<&str> = lines
                .iter()
                .rev()
                .take(15)
                .map(|l| l.text.as_str())
                .collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            Err(format!(
                "{e} (awaiting {awaiting}); the console ended:\n{}",
                tail.join("\n")
            ))
        }
    }
}

/// A guest's `BENCH <name> n=<n> ticks=<t> hz=<f>` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchLine {
    pub n: u64,
    pub ticks: u64,
    pub hz: u64,
}

impl BenchLine {
    /// Nanoseconds per operation; under `-icount shift=0`, instructions.
    pub fn ns_per_op(&self) -> f64 {
        self.ticks as f64 * 1e9 / self.hz as f64 / self.n as f64
    }
}

/// Finds the `BENCH name …` line in a console line (whatever the
/// hypervisor's prefix).
pub fn parse_bench(line: &str, name: &str) -> Option<BenchLine> {
    let rest = line.split("BENCH ").nth(1)?;
    let mut words = rest.split_ascii_whitespace();
    if words.next()? != name {
        return None;
    }
    let mut field = |key: &str| {
        words
            .next()?
            .strip_prefix(key)?
            .strip_prefix('=')?
            .parse::<u64>()
            .ok()
    };
    let b = BenchLine {
        n: field("n")?,
        ticks: field("ticks")?,
        hz: field("hz")?,
    };
    (b.n > 0 && b.hz > 0).then_some(b)
}

/// Linux's printk timestamp (`[    4.304126] …`, whatever comes before
/// it) in microseconds.
pub fn printk_micros(line: &str) -> Option<u64> {
    let rest = &line[line.find('[')? + 1..];
    let stamp = rest[..rest.find(']')?].trim();
    let (secs, frac) = stamp.split_once('.')?;
    if frac.len() != 6 {
        return None;
    }
    Some(secs.parse::<u64>().ok()? * 1_000_000 + frac.parse::<u64>().ok()?)
}

/// One measurement: the figure, and for a guest's line its raw ticks, so
/// that repeated icount runs can be compared exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    value: f64,
    ticks: Option<u64>,
}

/// The median of some samples (the mean of the middle two for an even
/// count); `None` for none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

/// The files every run needs.
struct Inputs {
    oxen: PathBuf,
    xen: PathBuf,
    linux: PathBuf,
    initramfs: PathBuf,
    bench_guest: PathBuf,
}

/// A config's QEMU arguments on a hypervisor, prepared once.
fn hypervisor_args(
    config: &str,
    peer: Peer,
    image: &Path,
    smp: Option<u32>,
) -> Result<Vec<String>, String> {
    Ok(configs::prepare(config, peer, image, smp)?.machine.args())
}

/// The machine with no hypervisor: what a domU of the configs gets, 1 CPU
/// and 256 MiB, on the same `virt` machine with EL2 (so the kernel is
/// entered at EL2, as the hypervisors are).
fn native_args(n: &Native, inputs: &Inputs) -> Vec<String> {
    match n {
        Native::Linux => {
            let mut m = Machine::new(&inputs.linux, 1);
            m.memory = "256M".into();
            let mut a = m.args();
            a.extend([
                "-initrd".into(),
                inputs.initramfs.display().to_string(),
                "-append".into(),
                "console=ttyAMA0 oxen.name=domU1".into(),
            ]);
            a
        }
        Native::Hello => {
            let mut m = Machine::new(&inputs.bench_guest, 1);
            m.memory = "256M".into();
            m.args()
        }
    }
}

/// What the table holds: per row and column, the samples.
struct Results {
    rows: Vec<Row>,
    samples: Vec<Vec<(Column, Vec<Sample>)>>,
}

fn measure(row: &Row, args: &[String]) -> Result<Sample, String> {
    let mut args = args.to_vec();
    if row.icount {
        args.extend(ICOUNT.iter().map(|s| s.to_string()));
        // The tree QEMU makes itself (the native column's) carries random
        // `kaslr-seed` and `rng-seed`; a fixed seed keeps them, and so the
        // count, the same every run.
        args.extend(["-seed".to_string(), "1".to_string()]);
    }
    match &row.probe {
        Probe::Lines(wanted) => {
            let until: Vec<&str> = wanted.iter().map(String::as_str).collect();
            let lines = run_timed(&args, &until)?;
            let last = wanted
                .iter()
                .filter_map(|w| lines.iter().find(|l| l.text.contains(w.as_str())))
                .map(|l| l.at)
                .max()
                .unwrap_or_default();
            Ok(Sample {
                value: last.as_secs_f64(),
                ticks: None,
            })
        }
        Probe::Nth(wanted, n) => {
            let count = |lines: &[Line]| {
                lines
                    .iter()
                    .filter(|l| l.text.contains(wanted.as_str()))
                    .count()
            };
            let lines = run_until(&args, &format!("{n} x {wanted:?}"), |l| count(l) >= *n)?;
            let at = lines
                .iter()
                .filter(|l| l.text.contains(wanted.as_str()))
                .nth(n - 1)
                .map(|l| l.at)
                .unwrap_or_default();
            Ok(Sample {
                value: at.as_secs_f64(),
                ticks: None,
            })
        }
        Probe::LastBench(name, n) => {
            let found = |lines: &[Line]| {
                lines
                    .iter()
                    .filter_map(|l| parse_bench(&l.text, name))
                    .take(*n)
                    .collect::<Vec<_>>()
            };
            let lines = run_until(&args, &format!("{n} x BENCH {name}"), |l| {
                found(l).len() >= *n
            })?;
            let last = found(&lines)
                .into_iter()
                .max_by_key(|b| b.ticks)
                .ok_or_else(|| format!("no well-formed `BENCH {name}` line"))?;
            Ok(Sample {
                value: last.ns_per_op() / 1e6,
                ticks: Some(last.ticks),
            })
        }
        Probe::Printk(wanted) => {
            let lines = run_timed(&args, &[wanted.as_str()])?;
            let us = lines
                .iter()
                .filter(|l| l.text.contains(wanted.as_str()))
                .find_map(|l| printk_micros(&l.text))
                .ok_or_else(|| format!("no printk timestamp on the {wanted:?} line"))?;
            Ok(Sample {
                value: us as f64 / 1000.0,
                ticks: Some(us),
            })
        }
        Probe::Bench(name) => {
            let needle = format!("BENCH {name} ");
            let lines = run_timed(&args, &[needle.as_str()])?;
            let b = lines
                .iter()
                .find_map(|l| parse_bench(&l.text, name))
                .ok_or_else(|| format!("no well-formed `BENCH {name}` line"))?;
            Ok(Sample {
                value: b.ns_per_op() / if row.icount { 1.0 } else { 1000.0 },
                ticks: Some(b.ticks),
            })
        }
    }
}

fn collect(inputs: &Inputs, reps: usize, only: Option<&str>) -> Result<Results, String> {
    let rows: Vec<Row> = rows()
        .into_iter()
        .filter(|r| only.is_none_or(|o| r.key.starts_with(o)))
        .collect();
    // Each config's machine, once per hypervisor.
    let mut args: Vec<Vec<(Column, Vec<String>)>> = Vec::new();
    for row in &rows {
        let mut cols = vec![(
            Column::Oxen,
            hypervisor_args(row.config, Peer::Oxen, &inputs.oxen, row.smp)?,
        )];
        if row.on_xen {
            cols.push((
                Column::Xen,
                hypervisor_args(row.config, Peer::Xen, &inputs.xen, row.smp)?,
            ));
        }
        if let Some(n) = &row.native {
            cols.push((Column::Native, native_args(n, inputs)));
        }
        args.push(cols);
    }
    let mut samples: Vec<Vec<(Column, Vec<Sample>)>> = args
        .iter()
        .map(|cols| cols.iter().map(|(c, _)| (*c, Vec::new())).collect())
        .collect();
    for rep in 0..reps {
        for (i, row) in rows.iter().enumerate() {
            for (j, (col, a)) in args[i].iter().enumerate() {
                let s =
                    measure(row, a).map_err(|e| format!("{} on {}: {e}", row.key, col.name()))?;
                eprintln!(
                    "bench: [{}/{reps}] {} on {}: {:.3}",
                    rep + 1,
                    row.key,
                    col.name(),
                    s.value
                );
                samples[i][j].1.push(s);
            }
        }
    }
    Ok(Results { rows, samples })
}

/// Image sizes: every feature combination of the board, and Xen's.
struct Sizes {
    /// Feature set (sorted, `+`-joined; `(none)` for none) and bytes.
    sets: Vec<(String, u64)>,
    /// Per feature: the all-features image minus the one without it.
    per_feature: Vec<(String, i64)>,
    xen: u64,
}

fn sizes(xen: &Path) -> Result<Sizes, String> {
    // The Xen interfaces' combinations, each with the board's drivers.
    let features = crate::boards::manifest(crate::boards::HOME.image)?.interfaces;
    let mut sets = Vec::new();
    for set in crate::test::powerset(&features) {
        let img = crate::build(&BuildSpec {
            features: Some(set.clone()),
            ..BuildSpec::default()
        })?;
        let bytes = file_size(&img)?;
        let name = if set.is_empty() {
            "(none)".to_string()
        } else {
            set.join("+")
        };
        sets.push((name, bytes));
    }
    let size_of = |set: &[String]| -> Option<u64> {
        let name = if set.is_empty() {
            "(none)".to_string()
        } else {
            set.join("+")
        };
        sets.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
    };
    let all = size_of(&features).unwrap_or(0);
    let per_feature = features
        .iter()
        .map(|f| {
            let without: Vec<String> = features.iter().filter(|g| *g != f).cloned().collect();
            (
                f.clone(),
                all as i64 - size_of(&without).unwrap_or(all) as i64,
            )
        })
        .collect();
    Ok(Sizes {
        sets,
        per_feature,
        xen: file_size(xen)?,
    })
}

fn file_size(p: &Path) -> Result<u64, String> {
    Ok(std::fs::metadata(p)
        .map_err(|e| format!("{}: {e}", p.display()))?
        .len())
}

/// Whether every sample's raw ticks are equal (icount rows).
fn exact(samples: &[Sample]) -> Option<bool> {
    let ticks: Vec<u64> = samples.iter().filter_map(|s| s.ticks).collect();
    (ticks.len() >= 2).then(|| ticks.iter().all(|t| *t == ticks[0]))
}

fn fmt_value(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if x >= 100.0 => format!("{x:.0}"),
        Some(x) if x >= 10.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.3}"),
    }
}

/// The table, as text.
fn table(r: &Results, sizes: Option<&Sizes>, reps: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "medians of {reps} run(s); icount rows: instructions (QEMU -icount shift=0); \
         `=` after an icount figure: every run gave exactly the same count"
    );
    let _ = writeln!(
        out,
        "{:<44} {:>10} {:>10} {:>10} {:>9} {:>12} {:>12}",
        "measure", "oxen", "xen-4.20", "native", "oxen/xen", "oxen-native", "xen-native"
    );
    for (row, cols) in r.rows.iter().zip(&r.samples) {
        let med = |c: Column| {
            cols.iter()
                .find(|(k, _)| *k == c)
                .and_then(|(_, s)| median(&s.iter().map(|s| s.value).collect::<Vec<_>>()))
        };
        let mark = |c: Column| {
            cols.iter()
                .find(|(k, _)| *k == c)
                .and_then(|(_, s)| exact(s))
                .map(|e| if e { "=" } else { "~" })
                .unwrap_or("")
        };
        let (o, x, n) = (med(Column::Oxen), med(Column::Xen), med(Column::Native));
        let ratio = match (o, x) {
            (Some(o), Some(x)) if x > 0.0 => format!("{:.2}", o / x),
            _ => "-".into(),
        };
        let over = |h: Option<f64>| match (h, n) {
            (Some(h), Some(n)) => format!("{:+.3}", h - n),
            _ => "-".into(),
        };
        let icount = row.icount;
        let _ = writeln!(
            out,
            "{:<44} {:>10} {:>10} {:>10} {:>9} {:>12} {:>12}",
            row.label,
            format!(
                "{}{}",
                fmt_value(o),
                if icount { mark(Column::Oxen) } else { "" }
            ),
            format!(
                "{}{}",
                fmt_value(x),
                if icount { mark(Column::Xen) } else { "" }
            ),
            format!(
                "{}{}",
                fmt_value(n),
                if icount { mark(Column::Native) } else { "" }
            ),
            ratio,
            over(o),
            over(x),
        );
    }
    for line in slopes(r) {
        let _ = writeln!(out, "{line}");
    }
    if let Some(s) = sizes {
        let all = s.sets.last().map(|(_, b)| *b).unwrap_or(0);
        let _ = writeln!(out, "\nimage size (bytes of the arm64 Image)");
        for (set, bytes) in &s.sets {
            let _ = writeln!(
                out,
                "  oxen {:<36} {:>10}   oxen/xen {:.2}",
                set,
                bytes,
                *bytes as f64 / s.xen as f64
            );
        }
        let _ = writeln!(out, "  xen-4.20-arm64 {:<26} {:>10}", "", s.xen);
        for (f, d) in &s.per_feature {
            let _ = writeln!(
                out,
                "  subsystem {f:<31} {d:>+10}   ({:.1} % of all features)",
                *d as f64 * 100.0 / all.max(1) as f64
            );
        }
    }
    out
}

/// The scale rows' slopes: per group (one pCPU count, one clock), what
/// the last first line costs per guest added from the fewest to the most
/// guests measured, as table lines.
fn slopes(r: &Results) -> Vec<String> {
    let med = |key: &str, c: Column| {
        let i = r.rows.iter().position(|row| row.key == key)?;
        let (_, s) = r.samples[i].iter().find(|(k, _)| *k == c)?;
        median(&s.iter().map(|s| s.value).collect::<Vec<_>>())
    };
    let mut out = Vec::new();
    // Key prefix, what it is, and the factor from the rows' unit.
    for (group, what, factor) in [
        ("scale.icount.smp1", "1 pCPU (M insns, icount)", 1.0),
        ("scale.smp2", "2 pCPUs (ms)", 1000.0),
        ("scale.smp4", "4 pCPUs (ms)", 1000.0),
    ] {
        let have: Vec<usize> = SCALE_GUESTS
            .iter()
            .copied()
            .filter(|n| med(&format!("{group}.n{n}"), Column::Oxen).is_some())
            .collect();
        let (Some(&lo), Some(&hi)) = (have.first(), have.last()) else {
            continue;
        };
        if lo == hi {
            continue;
        }
        let slope = |c: Column| {
            let a = med(&format!("{group}.n{lo}"), c)?;
            let b = med(&format!("{group}.n{hi}"), c)?;
            Some((b - a) * factor / (hi - lo) as f64)
        };
        let (o, x) = (slope(Column::Oxen), slope(Column::Xen));
        let ratio = match (o, x) {
            (Some(o), Some(x)) if x > 0.0 => format!("{:.2}", o / x),
            _ => "-".into(),
        };
        out.push(format!(
            "{:<44} {:>10} {:>10} {:>10} {:>9}",
            format!("per added guest, {lo} to {hi}, {what}"),
            fmt_value(o),
            fmt_value(x),
            "-",
            ratio
        ));
    }
    out
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_num(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x}"),
        _ => "null".into(),
    }
}

/// Every sample and median, as JSON.
fn json(r: &Results, sizes: Option<&Sizes>, reps: usize) -> String {
    let mut rows = Vec::new();
    for (row, cols) in r.rows.iter().zip(&r.samples) {
        let mut cs = Vec::new();
        for (c, s) in cols {
            let values: Vec<f64> = s.iter().map(|s| s.value).collect();
            let ticks: Vec<String> = s
                .iter()
                .filter_map(|s| s.ticks)
                .map(|t| t.to_string())
                .collect();
            cs.push(format!(
                "{}: {{\"median\": {}, \"samples\": [{}], \"ticks\": [{}], \"exact\": {}}}",
                json_str(c.name()),
                json_num(median(&values)),
                values
                    .iter()
                    .map(|v| json_num(Some(*v)))
                    .collect::<Vec<_>>()
                    .join(", "),
                ticks.join(", "),
                match exact(s) {
                    Some(e) => e.to_string(),
                    None => "null".into(),
                }
            ));
        }
        let unit = match (&row.probe, row.icount) {
            (Probe::Lines(_) | Probe::Nth(..), _) => "s",
            (Probe::Printk(_) | Probe::LastBench(..), true) => "million instructions",
            (Probe::LastBench(..), false) => "ms",
            (Probe::Printk(_), false) => "ms",
            (Probe::Bench(_), false) => "us",
            (Probe::Bench(_), true) => "instructions",
        };
        rows.push(format!(
            "    {}: {{\"label\": {}, \"config\": {}, \"unit\": {}, \"icount\": {}, \"columns\": {{{}}}}}",
            json_str(&row.key),
            json_str(&row.label),
            json_str(row.config),
            json_str(unit),
            row.icount,
            cs.join(", ")
        ));
    }
    let sizes = match sizes {
        None => "null".to_string(),
        Some(s) => format!(
            "{{\"oxen\": {{{}}}, \"per_feature\": {{{}}}, \"xen\": {}}}",
            s.sets
                .iter()
                .map(|(n, b)| format!("{}: {b}", json_str(n)))
                .collect::<Vec<_>>()
                .join(", "),
            s.per_feature
                .iter()
                .map(|(n, b)| format!("{}: {b}", json_str(n)))
                .collect::<Vec<_>>()
                .join(", "),
            s.xen
        ),
    };
    format!(
        "{{\n  \"reps\": {reps},\n  \"rows\": {{\n{}\n  }},\n  \"image_sizes\": {sizes}\n}}\n",
        rows.join(",\n")
    )
}

const USAGE: &str = "usage: cargo xtask bench [--reps N] [--only PREFIX] [--no-sizes]
       cargo xtask bench --chart [TABLE...]   (docs/bench.svg again from saved tables;
                                               default target/bench/bench.txt)";

/// Whether a row goes into the chart: the boots and the hypercalls.
fn charted(key: &str) -> bool {
    key.starts_with("boot.") || key.starts_with("hypercall.")
}

/// Where the chart goes, linked from docs/performance.md.
fn chart_path() -> PathBuf {
    root().join("docs").join("bench.svg")
}

const CHART_TITLE: &str = "Oxen, Xen 4.20 and native Linux: boots and hypercalls";
/// The chart's second line: how the figures were made.
fn chart_note(medians_of: &str) -> String {
    format!(
        "cargo xtask bench, {medians_of}; each measure scaled to its own largest figure; \
         shorter is faster"
    )
}

/// The chart's rows from a run's medians.
fn chart_rows(r: &Results) -> Vec<ChartRow> {
    r.rows
        .iter()
        .zip(&r.samples)
        .filter(|(row, _)| charted(&row.key))
        .map(|(row, cols)| {
            let med = |c: Column| {
                cols.iter()
                    .find(|(k, _)| *k == c)
                    .and_then(|(_, s)| median(&s.iter().map(|s| s.value).collect::<Vec<_>>()))
            };
            ChartRow {
                label: row.label.clone(),
                values: [med(Column::Oxen), med(Column::Xen), med(Column::Native)],
            }
        })
        .collect()
}

/// The chart's rows from saved text tables, in the bench's row order; a
/// later table's row replaces an earlier one's.
fn chart_rows_from_tables(tables: &[String]) -> Vec<ChartRow> {
    let mut found: Vec<ChartRow> = Vec::new();
    for t in tables {
        for row in t.lines().filter_map(chart::parse_table_row) {
            found.retain(|f| f.label != row.label);
            found.push(row);
        }
    }
    rows()
        .iter()
        .filter(|r| charted(&r.key))
        .filter_map(|r| found.iter().find(|f| f.label == r.label).cloned())
        .collect()
}

/// `cargo xtask bench --chart [TABLE...]`.
fn chart_again(files: &[String]) -> Result<(), String> {
    let files: Vec<PathBuf> = if files.is_empty() {
        vec![root().join("target").join("bench").join("bench.txt")]
    } else {
        files.iter().map(PathBuf::from).collect()
    };
    let mut tables = Vec::new();
    for f in &files {
        tables.push(std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?);
    }
    let rows = chart_rows_from_tables(&tables);
    if rows.is_empty() {
        return Err("no boot or hypercall rows in the tables".into());
    }
    // Each table starts "medians of N run(s); …".
    let mut runs: Vec<&str> = tables
        .iter()
        .filter_map(|t| t.lines().next()?.split(';').next())
        .filter(|l| l.starts_with("medians of "))
        .collect();
    runs.dedup();
    let note = chart_note(&runs.join(", "));
    let path = chart_path();
    std::fs::write(&path, chart::svg(CHART_TITLE, &note, &rows))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    println!("xtask: {} rows charted in {}", rows.len(), path.display());
    Ok(())
}

/// `cargo xtask bench [--reps N] [--only PREFIX] [--no-sizes]`.
pub fn run(args: Vec<String>) -> Result<(), String> {
    let mut reps = DEFAULT_REPS;
    let mut only = None;
    let mut with_sizes = true;
    if args.first().map(String::as_str) == Some("--chart") {
        return chart_again(&args[1..]);
    }
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--reps" => {
                reps = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or(format!("--reps needs a number above 0\n{USAGE}"))?
            }
            "--only" => {
                only = Some(
                    it.next()
                        .ok_or(format!("--only needs a row prefix\n{USAGE}"))?,
                )
            }
            "--no-sizes" => with_sizes = false,
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    setup::ensure_toolchain()?;
    setup::ensure_host_tools()?;
    let guests = debian::fetch(false)?;
    let inputs = Inputs {
        oxen: crate::build(&BuildSpec::default())?,
        xen: guests.xen.clone(),
        linux: guests.linux.clone(),
        initramfs: initramfs::build(&guests)?,
        bench_guest: guests_build::build("bench")?,
    };
    let results = collect(&inputs, reps, only.as_deref())?;
    let sizes = if with_sizes {
        Some(sizes(&inputs.xen)?)
    } else {
        None
    };
    let text = table(&results, sizes.as_ref(), reps);
    let dir = root().join("target").join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let json_path = dir.join("bench.json");
    std::fs::write(&json_path, json(&results, sizes.as_ref(), reps))
        .map_err(|e| format!("{}: {e}", json_path.display()))?;
    std::fs::write(dir.join("bench.txt"), &text).map_err(|e| format!("{}: {e}", dir.display()))?;
    println!("{text}");
    println!("xtask: written to {}", json_path.display());
    let rows = chart_rows(&results);
    if !rows.is_empty() {
        let path = chart_path();
        let note = chart_note(&format!("medians of {reps} run(s)"));
        std::fs::write(&path, chart::svg(CHART_TITLE, &note, &rows))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        println!("xtask: chart of {} rows in {}", rows.len(), path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bench_line_reads_behind_either_hypervisors_prefix() {
        let want = BenchLine {
            n: 200,
            ticks: 626448,
            hz: 62_500_000,
        };
        assert_eq!(
            parse_bench(
                "(XEN) DOM1: BENCH evtchn.2l n=200 ticks=626448 hz=62500000",
                "evtchn.2l"
            ),
            Some(want)
        );
        assert_eq!(
            parse_bench(
                "(d1) BENCH evtchn.2l n=200 ticks=626448 hz=62500000",
                "evtchn.2l"
            ),
            Some(want)
        );
    }

    #[test]
    fn a_bench_line_for_another_measure_or_malformed_is_not_read() {
        let line = "(d1) BENCH evtchn.fifo n=200 ticks=5 hz=62500000";
        assert_eq!(parse_bench(line, "evtchn.2l"), None);
        assert_eq!(parse_bench("(d1) BENCH x n=0 ticks=5 hz=1", "x"), None);
        assert_eq!(parse_bench("(d1) BENCH x n=2 ticks=five hz=1", "x"), None);
        assert_eq!(parse_bench("(d1) BENCH x ticks=5 n=2 hz=1", "x"), None);
    }

    #[test]
    fn nanoseconds_per_operation_follow_the_counter_frequency() {
        let b = BenchLine {
            n: 1000,
            ticks: 62_500,
            hz: 62_500_000,
        };
        assert_eq!(b.ns_per_op(), 1000.0);
    }

    #[test]
    fn the_median_takes_the_middle_or_the_mean_of_the_middle_two() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn icount_samples_are_exact_only_when_every_count_agrees() {
        let s = |t| Sample {
            value: 0.0,
            ticks: Some(t),
        };
        assert_eq!(exact(&[s(5), s(5), s(5)]), Some(true));
        assert_eq!(exact(&[s(5), s(6), s(5)]), Some(false));
        assert_eq!(exact(&[s(5)]), None);
    }

    #[test]
    fn every_row_names_a_config_that_exists() {
        let names = configs::names().unwrap();
        for r in rows() {
            assert!(names.contains(&r.config.to_string()), "{}", r.config);
        }
    }

    #[test]
    fn the_chart_takes_the_boot_and_hypercall_rows_of_saved_tables() {
        let line = |label: &str, o: &str, x: &str, n: &str| {
            format!(
                "{label:<44} {o:>10} {x:>10} {n:>10} {:>9} {:>12} {:>12}",
                "-", "-", "-"
            )
        };
        let first = [
            line("first guest line (s)", "0.172", "0.291", "0.043"),
            line("evtchn round trip, fifo (us)", "61", "905", "-"),
            line("hypercall.xen_version (us)", "33.7", "1.59", "-"),
        ]
        .join("\n");
        let second = line("hypercall.xen_version (us)", "20.0", "1.60", "-");
        let rows = chart_rows_from_tables(&[first, second]);
        assert_eq!(
            rows,
            [
                ChartRow {
                    label: "first guest line (s)".into(),
                    values: [Some(0.172), Some(0.291), Some(0.043)],
                },
                ChartRow {
                    label: "hypercall.xen_version (us)".into(),
                    values: [Some(20.0), Some(1.6), None],
                },
            ]
        );
    }

    #[test]
    fn a_printk_timestamp_reads_behind_either_hypervisors_prefix() {
        assert_eq!(
            printk_micros("(d1) [    4.304126] Run /init as init process"),
            Some(4_304_126)
        );
        assert_eq!(
            printk_micros("(XEN) DOM1: [   12.000001] Run /init as init process"),
            Some(12_000_001)
        );
        assert_eq!(printk_micros("Run /init as init process"), None);
        assert_eq!(printk_micros("[ 4.3] Run /init"), None);
    }

    #[test]
    fn every_scale_row_has_a_config_with_that_many_domains() {
        for n in SCALE_GUESTS {
            let text = std::fs::read_to_string(
                root()
                    .join("configs")
                    .join(format!("{}.dts", scale_config(n))),
            )
            .unwrap();
            assert_eq!(text.matches("\"xen,domain\"").count(), n, "{n}");
        }
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
