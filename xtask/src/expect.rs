//! What booting a config must show: `configs/<name>.expect`, read, and a
//! captured run checked against it. The format is in docs/configs.md.

use std::time::Duration;

use crate::qemu::Outcome;

/// The hypervisor a config boots on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Peer {
    Oxen,
    /// Xen 4.20 from Debian, booted from the same DTB as Oxen.
    Xen,
}

impl Peer {
    /// Every peer.
    pub const ALL: [Peer; 2] = [Peer::Oxen, Peer::Xen];

    /// The name on the command line and in `.expect` files.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Oxen => "oxen",
            Peer::Xen => "xen",
        }
    }

    /// The peer named `s`.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|p| p.name() == s).ok_or(format!(
            "unknown peer \"{s}\" (expected \"oxen\" or \"xen\")"
        ))
    }
}

/// How a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The machine powers itself off (QEMU exits with status 0) after
    /// every expected line appeared.
    PowerOff,
    /// The machine keeps running; the run is stopped once every expected
    /// line appeared.
    Running,
}

/// A line of console output a domain must print (or, for `not:`, text
/// that must appear nowhere), optionally only on one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The domain's node name under `/chosen`; `None` for `not:`.
    pub domain: Option<String>,
    pub peer: Option<Peer>,
    pub text: String,
}

/// `cases: DOMAIN all[, at least N]`: the domain runs a test guest whose
/// every `TEST` line must say PASS, at least `at_least` of them, and which
/// must print its closing `N passed, 0 failed` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasesRule {
    pub domain: String,
    pub peer: Option<Peer>,
    pub at_least: usize,
}

/// A parsed `.expect` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub end: End,
    pub limit: Duration,
    /// Oxen cargo features an image needs for this config to apply
    /// (`requires: evtchn gnttab`); an image without them skips it.
    pub requires: Vec<String>,
    /// Oxen cargo features an image must *lack* for this config to apply
    /// (`without: evtchn`): the config states what such an image does.
    /// Xen has every interface, so it skips these configs.
    pub without: Vec<String>,
    /// The peers the config runs on (`peer: oxen`); empty for every peer.
    pub peers: Vec<Peer>,
    /// Text the hypervisor must panic with (`panic on xen: …`): the run
    /// passes only if it panics, after printing every expected line.
    pub panics: Vec<Rule>,
    pub lines: Vec<Rule>,
    pub absent: Vec<Rule>,
    pub cases: Vec<CasesRule>,
    /// Console input to type (`send: AFTER => TEXT`), in order.
    pub sends: Vec<SendRule>,
    /// How the matrix boots it (`boot: direct uboot`): QEMU loading every
    /// file (`direct`, the default, on every image) and/or U-Boot with a
    /// boot script (`uboot`, on the default image and on Xen).
    pub boots: Vec<Boot>,
    /// The boards it is booted on besides the home board, which boots
    /// every config (`boards: all`, `boards: gicv3 xlnx-zcu102`: board
    /// names, `gicv2`/`gicv3` for the boards with that GIC, `all`).
    pub boards: Vec<String>,
}

/// How the hypervisor and its modules reach RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boot {
    /// QEMU loads them (`-kernel`, `-dtb`, `-device loader`).
    Direct,
    /// Debian's U-Boot loads them from a disk with a boot script and
    /// starts the hypervisor with `booti` (see `uboot.rs`).
    UBoot,
}

/// `send[ on PEER]: AFTER => TEXT`: once `AFTER` has appeared on the
/// console (after the previous send's), type `TEXT` (with `\r`, `\n`,
/// `\xHH` escapes) on the physical console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRule {
    pub peer: Option<Peer>,
    pub after: String,
    pub bytes: Vec<u8>,
}

/// The bytes a `send:` text stands for.
fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut it = text.bytes();
    while let Some(b) = it.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match it.next() {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex: Vec<u8> = it.by_ref().take(2).collect();
                let v = std::str::from_utf8(&hex)
                    .ok()
                    .filter(|h| h.len() == 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("`\\x` in \"{text}\" needs two hex digits"))?;
                out.push(v);
            }
            _ => {
                return Err(format!(
                    "unknown escape in \"{text}\" (expected \\r, \\n, \\\\ or \\xHH)"
                ));
            }
        }
    }
    Ok(out)
}

/// The default wall-clock limit: QEMU's TCG is slow and a Linux domain
/// takes tens of seconds to reach init under it.
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(300);

/// Reads an `.expect` file. `file` names it in errors; every error is
/// reported, each with its line number.
pub fn parse(text: &str, file: &str) -> Result<Expect, Vec<String>> {
    let mut errors = Vec::new();
    let mut end = None;
    // Set by a bad `end:` too, so it is not also reported as missing.
    let mut end_given = false;
    let mut limit = None;
    let mut requires = Vec::new();
    let mut without = Vec::new();
    let mut peers: Vec<Peer> = Vec::new();
    let mut panics = Vec::new();
    let mut lines = Vec::new();
    let mut absent = Vec::new();
    let mut cases = Vec::new();
    let mut sends = Vec::new();
    let mut boots = Vec::new();
    let mut boards = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut err = |msg: String| errors.push(format!("{file}:{}: {msg}", n + 1));
        let Some((key, value)) = line.split_once(':') else {
            err(format!("`{line}` is not `KEY: VALUE` (KEY is {KEYS})"));
            continue;
        };
        let value = value.trim().to_string();
        let (key, peer) = match key.trim().split_once(" on ") {
            Some((k, p)) => match Peer::parse(p.trim()) {
                Ok(p) => (k.trim(), Some(p)),
                Err(e) => {
                    err(format!("`{}`: {e}", key.trim()));
                    continue;
                }
            },
            None => (key.trim(), None),
        };
        if key.is_empty() || key.contains(char::is_whitespace) {
            err(format!("`{key}` is not a key (expected {KEYS})"));
            continue;
        }
        match key {
            "requires" | "without" if peer.is_none() && value.is_empty() => {
                err(format!("`{key}:` names no feature (e.g. `{key}: evtchn`)"))
            }
            "requires" if peer.is_none() => {
                requires.extend(value.split_whitespace().map(String::from));
            }
            "without" if peer.is_none() => {
                without.extend(value.split_whitespace().map(String::from));
            }
            "peer" if peer.is_none() => {
                if value.is_empty() {
                    err("`peer:` names no peer (e.g. `peer: oxen`)".into());
                }
                for name in value.split_whitespace() {
                    match Peer::parse(name) {
                        Ok(p) if !peers.contains(&p) => peers.push(p),
                        Ok(_) => {}
                        Err(e) => err(format!("peer: {e}")),
                    }
                }
            }
            "boot" if peer.is_none() => {
                for way in value.split_whitespace() {
                    let b = match way {
                        "direct" => Boot::Direct,
                        "uboot" => Boot::UBoot,
                        other => {
                            err(format!(
                                "boot: \"{other}\" is not a way to boot (expected \"direct\" or \"uboot\")"
                            ));
                            continue;
                        }
                    };
                    if !boots.contains(&b) {
                        boots.push(b);
                    }
                }
                if value.is_empty() {
                    err("`boot:` names no way to boot (e.g. `boot: direct uboot`)".into());
                }
            }
            "boards" if peer.is_none() => {
                if value.is_empty() {
                    err("`boards:` names no board (e.g. `boards: all`)".into());
                }
                for word in value.split_whitespace() {
                    if crate::boards::is_board_word(word) {
                        boards.push(word.to_string());
                    } else {
                        err(format!(
                            "boards: \"{word}\" is not a board (expected \"all\", \"gicv2\", \"gicv3\" or one of {})",
                            crate::boards::BOARDS
                                .iter()
                                .map(|b| b.name)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                }
            }
            "end" | "limit" | "requires" | "without" | "peer" | "boot" | "boards"
                if peer.is_some() =>
            {
                err(format!("`{key}` applies to every peer; drop the `on`"))
            }
            "end" => {
                end_given = true;
                let v = match value.as_str() {
                    "power-off" => End::PowerOff,
                    "running" => End::Running,
                    other => {
                        err(format!(
                            "end: \"{other}\" is not a known ending (expected \"power-off\" or \"running\")"
                        ));
                        continue;
                    }
                };
                if end.replace(v).is_some() {
                    err("a second `end:`".into());
                }
            }
            "limit" => match value.strip_suffix('s').unwrap_or(&value).parse::<u64>() {
                Ok(s) if s > 0 => {
                    if limit.replace(Duration::from_secs(s)).is_some() {
                        err("a second `limit:`".into());
                    }
                }
                _ => err(format!(
                    "limit: \"{value}\" is not a number of seconds (e.g. `limit: 240`)"
                )),
            },
            "cases" => match parse_cases(&value) {
                Ok((domain, at_least)) => cases.push(CasesRule {
                    domain,
                    peer,
                    at_least,
                }),
                Err(e) => err(e),
            },
            _ if value.is_empty() => err(format!("`{key}:` has no text to look for")),
            "send" => match value
                .split_once(" => ")
                .map(|(a, t)| (a.trim(), unescape(t.trim())))
            {
                Some((after, Ok(bytes))) if !after.is_empty() && !bytes.is_empty() => {
                    sends.push(SendRule {
                        peer,
                        after: after.into(),
                        bytes,
                    })
                }
                Some((_, Err(e))) => err(format!("send: {e}")),
                _ => err(format!(
                    "send: \"{value}\" is not `AFTER => TEXT` (e.g. `send: reached init => shutdown 1\\r`)"
                )),
            },
            "panic" => panics.push(Rule {
                domain: None,
                peer,
                text: value,
            }),
            "not" => absent.push(Rule {
                domain: None,
                peer,
                text: value,
            }),
            domain => lines.push(Rule {
                domain: Some(domain.into()),
                peer,
                text: value,
            }),
        }
    }
    if !end_given {
        errors.push(format!(
            "{file}: no `end:` line (`end: power-off` or `end: running`)"
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Expect {
        end: end.unwrap_or(End::PowerOff),
        limit: limit.unwrap_or(DEFAULT_LIMIT),
        requires,
        without,
        peers,
        panics,
        lines,
        absent,
        cases,
        sends,
        boots: if boots.is_empty() {
            vec![Boot::Direct]
        } else {
            boots
        },
        boards,
    })
}

/// The keys an `.expect` line may start with, for error messages.
const KEYS: &str =
    "end, limit, requires, without, peer, boot, boards, cases, panic, not, send or a domain name";

/// The value of a `cases:` rule: `DOMAIN all` or `DOMAIN all, at least N`.
fn parse_cases(value: &str) -> Result<(String, usize), String> {
    let bad = || {
        format!("cases: \"{value}\" is not `DOMAIN all` or `DOMAIN all, at least N` (N at least 1)")
    };
    let (domain, rest) = value.split_once(char::is_whitespace).ok_or_else(bad)?;
    let rest = rest.trim();
    let at_least = match rest.strip_prefix("all").map(str::trim) {
        Some("") => 1,
        Some(more) => more
            .strip_prefix(',')
            .and_then(|m| m.trim().strip_prefix("at least"))
            .and_then(|n| n.trim().parse::<usize>().ok())
            .filter(|&n| n > 0)
            .ok_or_else(bad)?,
        None => return Err(bad()),
    };
    Ok((domain.to_string(), at_least))
}

impl Expect {
    /// Whether the config is booted on `board`: every one is on the home
    /// board, others only where `boards:` names the board.
    pub fn on_board(&self, board: &crate::boards::Board) -> bool {
        board == crate::boards::HOME || self.boards.iter().any(|w| board.is(w))
    }

    /// The domain names the rules use that are not in `domains`.
    pub fn unknown_domains<'a>(&'a self, domains: &[String]) -> Vec<&'a str> {
        let mut v: Vec<&str> = self
            .lines
            .iter()
            .filter_map(|r| r.domain.as_deref())
            .chain(self.cases.iter().map(|c| c.domain.as_str()))
            .filter(|d| !domains.iter().any(|n| n == d))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Why this config does not run on `peer` with an image built with
    /// `features`, or `None` when it does. Xen has every interface, so
    /// `requires:` always holds there and a `without:` config never
    /// applies.
    pub fn skip_reason(&self, peer: Peer, features: &[String]) -> Option<String> {
        if !self.peers.is_empty() && !self.peers.contains(&peer) {
            let only: Vec<&str> = self.peers.iter().map(|p| p.name()).collect();
            return Some(format!("runs only on {} (`peer:`)", only.join(", ")));
        }
        if peer == Peer::Xen {
            return (!self.without.is_empty()).then(|| {
                format!(
                    "states what an image without {} does; Xen has every interface",
                    self.without.join(", ")
                )
            });
        }
        let missing: Vec<&str> = self
            .requires
            .iter()
            .filter(|f| !features.contains(f))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Some(format!(
                "needs features this image lacks: {}",
                missing.join(", ")
            ));
        }
        let present: Vec<&str> = self
            .without
            .iter()
            .filter(|f| features.contains(f))
            .map(String::as_str)
            .collect();
        (!present.is_empty())
            .then(|| format!("applies only to images without {}", present.join(", ")))
    }

    /// What a run on `peer` must show. Under Xen a domain's power-off
    /// leaves Xen idling rather than ending QEMU, so a power-off ending
    /// becomes "stop once every line appeared"; so does any run that must
    /// end in a panic (Xen reboots a few seconds after one).
    pub fn for_peer(&self, peer: Peer, domains: &[String]) -> Want {
        let applies = |r: &&Rule| r.peer.is_none_or(|p| p == peer);
        let panic: Vec<String> = self
            .panics
            .iter()
            .filter(applies)
            .map(|r| r.text.clone())
            .collect();
        Want {
            peer,
            end: match (self.end, peer) {
                _ if !panic.is_empty() => End::Running,
                (End::PowerOff, Peer::Xen) => End::Running,
                (e, _) => e,
            },
            panic,
            limit: self.limit,
            domains: domains.to_vec(),
            lines: self
                .lines
                .iter()
                .filter(applies)
                .map(|r| (r.domain.clone().unwrap_or_default(), r.text.clone()))
                .collect(),
            absent: self
                .absent
                .iter()
                .filter(applies)
                .map(|r| r.text.clone())
                .collect(),
            cases: self
                .cases
                .iter()
                .filter(|c| c.peer.is_none_or(|p| p == peer))
                .map(|c| (c.domain.clone(), c.at_least))
                .collect(),
            sends: self
                .sends
                .iter()
                .filter(|r| r.peer.is_none_or(|p| p == peer))
                .map(|r| (r.after.clone(), r.bytes.clone()))
                .collect(),
        }
    }
}

/// The expectations of one config on one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    pub peer: Peer,
    pub end: End,
    pub limit: Duration,
    /// The domains in creation order: the first has domain ID 1.
    pub domains: Vec<String>,
    /// (domain, text) pairs.
    pub lines: Vec<(String, String)>,
    pub absent: Vec<String>,
    /// Domains running a test guest, each with the fewest cases it must
    /// pass.
    pub cases: Vec<(String, usize)>,
    /// Text the hypervisor's panic message must contain; empty when the
    /// run must not panic.
    pub panic: Vec<String>,
    /// (after, bytes): console input typed once `after` appeared.
    pub sends: Vec<(String, Vec<u8>)>,
}

/// Text that always fails a run, wherever it appears.
const FATAL: &[(&str, &str)] = &[
    ("*** FAULT", "Oxen reported a fault"),
    ("*** PANIC", "Oxen panicked"),
    ("Panic on CPU", "Xen panicked"),
    ("Kernel panic", "a guest kernel panicked"),
];

/// How each hypervisor starts its panic report; the message follows.
const HYPERVISOR_PANIC: &[&str] = &["*** PANIC", "Panic on CPU"];

impl Want {
    /// The console from the hypervisor's panic report on, if it panicked.
    fn panic_report<'a>(&self, log: &'a str) -> Option<&'a str> {
        HYPERVISOR_PANIC
            .iter()
            .filter_map(|marker| log.find(marker))
            .min()
            .map(|at| &log[at..])
    }

    /// The expected panic text not (yet) in the hypervisor's panic report;
    /// all of it when there was no panic.
    fn missing_panic(&self, log: &str) -> Vec<&str> {
        let report = self.panic_report(log).unwrap_or("");
        self.panic
            .iter()
            .filter(|t| report.is_empty() || !report.contains(t.as_str()))
            .map(String::as_str)
            .collect()
    }
}

impl Want {
    /// The expected lines not yet in `log`. A line listed k times must
    /// appear at least k times (e.g. a marker printed on each boot of a
    /// domain that reboots).
    pub fn missing<'a>(&'a self, log: &str) -> Vec<&'a (String, String)> {
        self.lines
            .iter()
            .enumerate()
            .filter(|(i, (d, text))| {
                let needed = 1 + self.lines[..*i]
                    .iter()
                    .filter(|(d2, t2)| d2 == d && t2 == text)
                    .count();
                log.lines()
                    .filter(|l| l.contains(text.as_str()) && self.from(d, l))
                    .count()
                    < needed
            })
            .map(|(_, line)| line)
            .collect()
    }

    /// Whether a console line may come from `domain`: it carries that
    /// domain's tag, or none (a hypervisor prints the domain that has the
    /// console input focus untagged). A line tagged with another domain
    /// never counts, so a marker every domain prints is checked per domain.
    fn from(&self, domain: &str, line: &str) -> bool {
        match tag(line) {
            Some(id) => id
                .checked_sub(1)
                .and_then(|i| self.domains.get(i))
                .is_some_and(|d| d == domain),
            None => true,
        }
    }
}

/// The domain ID a console line is tagged with: Xen (and Oxen, which
/// follows it) writes a line of domain N's emulated UART as `DOMN: …` and
/// a `CONSOLEIO_write` line as `(dN) …`, after the hypervisor's own
/// `(XEN) ` prefix.
fn tag(line: &str) -> Option<usize> {
    split_tag(line).0
}

/// A console line split into its domain tag (if any) and what the domain
/// printed.
fn split_tag(line: &str) -> (Option<usize>, &str) {
    let mut l = line.trim_start();
    for own in ["(XEN) ", "(oxen) "] {
        if let Some(rest) = l.strip_prefix(own) {
            l = rest;
            break;
        }
    }
    let tagged = if let Some(rest) = l.strip_prefix("DOM") {
        rest.split_once(':')
    } else {
        l.strip_prefix("(d").and_then(|r| r.split_once(')'))
    };
    match tagged.and_then(|(digits, rest)| Some((digits.parse().ok()?, rest))) {
        Some((id, rest)) => (Some(id), rest.strip_prefix(' ').unwrap_or(rest)),
        None => (None, l),
    }
}

/// What a test guest prints, one line at a time (tests/guests/, format in
/// docs/testing.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestLine<'a> {
    /// `TEST <name> PASS [<note>]`.
    Pass { name: &'a str, note: &'a str },
    /// `TEST <name> FAIL <why>`.
    Fail { name: &'a str, why: &'a str },
    /// A line starting `TEST ` that is neither.
    Malformed(&'a str),
    /// The closing `N passed, M failed`.
    Summary { passed: usize, failed: usize },
}

impl<'a> GuestLine<'a> {
    /// Reads a line a domain printed (its tag already removed); `None` for
    /// anything that is not a test guest's line.
    pub fn parse(text: &'a str) -> Option<Self> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("TEST ") {
            let mut words = rest.splitn(3, ' ');
            let (name, verdict) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            let detail = words.next().unwrap_or("").trim();
            return Some(match verdict {
                _ if name.is_empty() => Self::Malformed(text),
                "PASS" => Self::Pass { name, note: detail },
                "FAIL" => Self::Fail { name, why: detail },
                _ => Self::Malformed(text),
            });
        }
        let (p, f) = text.split_once(" passed, ")?;
        let f = f.strip_suffix(" failed")?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(p) || !digits(f) {
            return None;
        }
        Some(Self::Summary {
            passed: p.parse().ok()?,
            failed: f.parse().ok()?,
        })
    }
}

/// What one domain's test guest printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestRun<'a> {
    pub passed: Vec<(&'a str, &'a str)>,
    pub failed: Vec<(&'a str, &'a str)>,
    pub malformed: Vec<&'a str>,
    /// The closing line's counts, if it came.
    pub summary: Option<(usize, usize)>,
    /// The last case reported, for saying where a guest stopped.
    pub last: Option<&'a str>,
}

impl Want {
    /// Whether every expected line appeared and every test guest printed
    /// its closing line: when a run that keeps going can be stopped.
    pub fn complete(&self, log: &str) -> bool {
        self.missing(log).is_empty()
            && self.missing_panic(log).is_empty()
            && self
                .cases
                .iter()
                .all(|(d, _)| self.guest_run(log, d).summary.is_some())
    }

    /// The test-guest lines of `domain`: tagged with its ID, or untagged
    /// when it is the only domain (a hypervisor prints the domain with the
    /// console focus untagged, and with several that is ambiguous).
    pub fn guest_run<'a>(&self, log: &'a str, domain: &str) -> GuestRun<'a> {
        let id = self.domains.iter().position(|d| d == domain).map(|i| i + 1);
        let mut run = GuestRun::default();
        for line in log.lines() {
            let (tag, text) = split_tag(line);
            let mine = match tag {
                Some(t) => Some(t) == id,
                None => self.domains.len() == 1,
            };
            if !mine {
                continue;
            }
            match GuestLine::parse(text) {
                Some(GuestLine::Pass { name, note }) => {
                    run.passed.push((name, note));
                    run.last = Some(name);
                }
                Some(GuestLine::Fail { name, why }) => {
                    run.failed.push((name, why));
                    run.last = Some(name);
                }
                Some(GuestLine::Malformed(l)) => run.malformed.push(l),
                Some(GuestLine::Summary { passed, failed }) => run.summary = Some((passed, failed)),
                None => {}
            }
        }
        run
    }

    /// The problems with the test guest `domain` ran: failed or malformed
    /// cases, too few cases, a closing line that disagrees with the cases
    /// or never came (the guest hung, or crashed and was stopped).
    pub fn case_problems(&self, out: &Outcome, domain: &str, at_least: usize) -> Vec<String> {
        let run = self.guest_run(&out.log, domain);
        let mut problems = Vec::new();
        for (name, why) in &run.failed {
            problems.push(format!("{domain}: TEST {name} FAIL {why}"));
        }
        for l in &run.malformed {
            problems.push(format!(
                "{domain}: \"{l}\" is not a test line (expected `TEST <name> PASS [note]` or `TEST <name> FAIL <why>`)"
            ));
        }
        let (p, f) = (run.passed.len(), run.failed.len());
        let after = match run.last {
            Some(last) => format!("after {} case(s), the last {last}", p + f),
            None => "before its first case".to_string(),
        };
        match run.summary {
            None if out.timed_out => problems.push(format!(
                "{domain} hung {after}: no closing \"N passed, M failed\" line within {:.0} s",
                out.elapsed.as_secs_f64()
            )),
            None => problems.push(format!(
                "{domain} stopped {after} without its closing \"N passed, M failed\" line (crashed or cut short)"
            )),
            Some((sp, sf)) if (sp, sf) != (p, f) => problems.push(format!(
                "{domain} closed with \"{sp} passed, {sf} failed\" but printed {p} PASS and {f} FAIL line(s)"
            )),
            Some(_) => {}
        }
        if p < at_least {
            problems.push(format!(
                "{domain} passed {p} case(s), at least {at_least} expected"
            ));
        }
        problems
    }
}

/// The problems with a captured run, empty when it went as expected.
pub fn check(out: &Outcome, want: &Want) -> Vec<String> {
    let mut problems = Vec::new();
    if out.faulted {
        problems.push("stopped early: the hypervisor reported a fault".into());
    }
    let panic_expected = !want.panic.is_empty();
    for (text, what) in FATAL {
        if panic_expected && HYPERVISOR_PANIC.contains(text) {
            continue;
        }
        if let Some(l) = out.log.lines().find(|l| l.contains(text)) {
            problems.push(format!("{what}: {}", l.trim()));
        }
    }
    for text in &want.absent {
        if let Some(l) = out.log.lines().find(|l| l.contains(text.as_str())) {
            problems.push(format!("\"{text}\" must not appear, but did: {}", l.trim()));
        }
    }
    let missing = want.missing(&out.log);
    for (d, text) in &missing {
        problems.push(format!("{d} never printed \"{text}\""));
    }
    for (d, at_least) in &want.cases {
        problems.extend(want.case_problems(out, d, *at_least));
    }
    let panicked = want.panic_report(&out.log).is_some();
    if panic_expected {
        let missing = want.missing_panic(&out.log);
        if !panicked {
            problems.push(format!(
                "the hypervisor did not panic (expected a panic with \"{}\")",
                want.panic.join("\", \"")
            ));
        } else {
            for text in missing {
                problems.push(format!(
                    "the hypervisor panicked, but its report lacks \"{text}\""
                ));
            }
        }
    }
    let secs = out.elapsed.as_secs_f64();
    match want.end {
        // Once it has panicked the hypervisor may reset the machine.
        End::Running if panic_expected && panicked && !out.timed_out => {}
        End::PowerOff if out.timed_out => {
            problems.push(format!("hung: no power-off within {secs:.0} s"))
        }
        End::PowerOff if !out.faulted && out.status != Some(0) => {
            problems.push(format!("QEMU exited with status {:?}", out.status))
        }
        End::Running if out.timed_out => problems.push(format!(
            "timed out after {secs:.0} s with {} expected line(s) missing",
            missing.len()
        )),
        End::Running if out.status.is_some() => problems.push(format!(
            "the machine stopped by itself (QEMU status {:?}) instead of running on",
            out.status
        )),
        _ => {}
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = "\
# Two domains.
end: power-off
limit: 240
domU1: oxen-init: domU1 reached init
domU2: oxen-init: domU2 reached init
domU1 on xen: Xen 4.20 support found
not: Unable to handle kernel
not on oxen: unhandled
";

    fn parsed() -> Expect {
        parse(DEFAULT, "default.expect").unwrap()
    }

    fn domains() -> Vec<String> {
        vec!["domU1".into(), "domU2".into()]
    }

    #[test]
    fn an_expect_file_reads_into_ending_limit_lines_and_forbidden_text() {
        let e = parsed();
        assert_eq!(e.end, End::PowerOff);
        assert_eq!(e.limit, Duration::from_secs(240));
        assert_eq!(e.lines.len(), 3);
        assert_eq!(e.lines[2].domain.as_deref(), Some("domU1"));
        assert_eq!(e.lines[2].peer, Some(Peer::Xen));
        assert_eq!(e.lines[0].text, "oxen-init: domU1 reached init");
        assert_eq!(e.absent.len(), 2);
        assert_eq!(e.absent[1].peer, Some(Peer::Oxen));
    }

    #[test]
    fn text_keeps_colons_and_the_limit_defaults() {
        let e = parse("end: running\nd: a: b :c\n", "x").unwrap();
        assert_eq!(e.lines[0].text, "a: b :c");
        assert_eq!(e.limit, DEFAULT_LIMIT);
        assert_eq!(e.end, End::Running);
    }

    #[test]
    fn boot_lists_the_ways_to_boot_and_defaults_to_direct() {
        let e = parse("end: running\n", "x").unwrap();
        assert_eq!(e.boots, [Boot::Direct]);
        let e = parse("end: running\nboot: direct uboot\n", "x").unwrap();
        assert_eq!(e.boots, [Boot::Direct, Boot::UBoot]);
        let errs = parse("end: running\nboot: pxe\nboot on xen: uboot\n", "x").unwrap_err();
        assert!(errs[0].contains("\"pxe\" is not a way to boot"), "{errs:?}");
        assert!(errs[1].contains("applies to every peer"), "{errs:?}");
    }

    #[test]
    fn boards_name_where_a_config_boots_besides_the_home_board() {
        use crate::boards::{HOME, find};
        let e = parse("end: running\n", "x").unwrap();
        assert!(e.on_board(HOME));
        assert!(!e.on_board(find("xlnx-versal-virt").unwrap()));
        let e = parse("end: running\nboards: gicv3\n", "x").unwrap();
        assert!(e.on_board(find("xlnx-versal-virt").unwrap()));
        assert!(!e.on_board(find("qemu-virt-gicv2").unwrap()));
        let e = parse("end: running\nboards: all\n", "x").unwrap();
        assert!(e.on_board(find("xlnx-zcu102").unwrap()));
        let errs = parse("end: running\nboards: rpi4\nboards on xen: all\n", "x").unwrap_err();
        assert!(errs[0].contains("\"rpi4\" is not a board"), "{errs:?}");
        assert!(errs[1].contains("applies to every peer"), "{errs:?}");
    }

    #[test]
    fn every_error_is_reported_with_its_line() {
        let errs = parse(
            "end: off\nlimit: soon\ndomU1 on kvm: x\nno colon here\ndomU1:\nlimit on xen: 3\n",
            "bad.expect",
        )
        .unwrap_err();
        assert_eq!(errs.len(), 6, "{errs:#?}");
        assert!(errs[0].starts_with("bad.expect:1: end: \"off\""));
        assert!(errs[0].contains("expected \"power-off\" or \"running\""));
        assert!(errs[1].starts_with("bad.expect:2: limit"));
        assert!(errs[2].contains("unknown peer \"kvm\""));
        assert!(errs[3].starts_with("bad.expect:4:"));
        assert!(errs[4].contains("has no text"));
        assert!(errs[5].contains("applies to every peer"));
    }

    #[test]
    fn an_expect_file_must_say_how_the_run_ends() {
        let errs = parse("domU1: x\n", "e").unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].contains("no `end:`"));
    }

    #[test]
    fn rules_for_one_peer_are_dropped_on_the_other() {
        let e = parsed();
        let oxen = e.for_peer(Peer::Oxen, &domains());
        let xen = e.for_peer(Peer::Xen, &domains());
        assert_eq!(oxen.lines.len(), 2);
        assert_eq!(xen.lines.len(), 3);
        assert_eq!(oxen.absent, ["Unable to handle kernel", "unhandled"]);
        assert_eq!(xen.absent, ["Unable to handle kernel"]);
    }

    #[test]
    fn a_power_off_ending_becomes_running_on_xen() {
        let e = parsed();
        assert_eq!(e.for_peer(Peer::Oxen, &domains()).end, End::PowerOff);
        assert_eq!(e.for_peer(Peer::Xen, &domains()).end, End::Running);
    }

    #[test]
    fn unknown_domains_are_found() {
        let e = parse("end: running\ndomU1: a\ndomU3: b\n", "e").unwrap();
        assert_eq!(e.unknown_domains(&domains()), ["domU3"]);
    }

    fn outcome(log: &str, status: Option<i32>) -> Outcome {
        Outcome {
            log: log.into(),
            status,
            timed_out: false,
            faulted: false,
            elapsed: Duration::from_secs(30),
        }
    }

    const GOOD_LOG: &str = "(oxen) booting\n(oxen) DOM1: oxen-init: domU1 reached init\n(oxen) DOM2: oxen-init: domU2 reached init\n";

    #[test]
    fn a_run_showing_every_line_and_powering_off_passes() {
        let want = parsed().for_peer(Peer::Oxen, &domains());
        assert_eq!(
            check(&outcome(GOOD_LOG, Some(0)), &want),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_missing_line_names_the_domain_and_the_text() {
        let want = parsed().for_peer(Peer::Oxen, &domains());
        let log = GOOD_LOG.replace("domU2 reached", "domU2 stuck");
        let p = check(&outcome(&log, Some(0)), &want);
        assert_eq!(p, ["domU2 never printed \"oxen-init: domU2 reached init\""]);
    }

    #[test]
    fn a_marker_tagged_with_another_domain_does_not_count() {
        let want = parse("end: running\ndomU2: ready\n", "e")
            .unwrap()
            .for_peer(Peer::Xen, &domains());
        assert_eq!(want.missing("(XEN) DOM1: ready\n").len(), 1);
        assert_eq!(want.missing("(XEN) DOM2: ready\n").len(), 0);
        assert_eq!(want.missing("(d1) ready\n").len(), 1);
        assert_eq!(want.missing("(d2) ready\n").len(), 0);
        // A domain ID no domain has counts for none.
        assert_eq!(want.missing("DOM3: ready\n").len(), 1);
        // Untagged: the domain with the input focus, whichever it is.
        assert_eq!(want.missing("(XEN) ready\n").len(), 0);
    }

    #[test]
    fn a_hang_a_bad_status_and_a_guest_panic_each_fail() {
        let want = parsed().for_peer(Peer::Oxen, &domains());
        let mut hung = outcome(GOOD_LOG, None);
        hung.timed_out = true;
        assert!(check(&hung, &want)[0].starts_with("hung"));
        let p = check(&outcome(GOOD_LOG, Some(1)), &want);
        assert_eq!(p, ["QEMU exited with status Some(1)"]);
        let log = format!("{GOOD_LOG}DOM1: Kernel panic - not syncing: x\n");
        let p = check(&outcome(&log, Some(0)), &want);
        assert_eq!(
            p,
            ["a guest kernel panicked: DOM1: Kernel panic - not syncing: x"]
        );
    }

    #[test]
    fn forbidden_text_fails_the_run() {
        let want = parsed().for_peer(Peer::Oxen, &domains());
        let log = format!("{GOOD_LOG}(oxen) unhandled trap\n");
        let p = check(&outcome(&log, Some(0)), &want);
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("\"unhandled\" must not appear"));
    }

    #[test]
    fn on_xen_the_run_passes_when_stopped_after_every_line_and_fails_if_qemu_exits() {
        let want = parsed().for_peer(Peer::Xen, &domains());
        let log = "(XEN) Xen 4.20\n(XEN) DOM1: Xen 4.20 support found\n(XEN) DOM1: oxen-init: domU1 reached init\n(XEN) DOM2: oxen-init: domU2 reached init\n";
        assert!(check(&outcome(log, None), &want).is_empty());
        let p = check(&outcome(log, Some(0)), &want);
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("stopped by itself"));
    }

    #[test]
    fn a_line_listed_twice_must_appear_twice() {
        let want = Want {
            lines: vec![
                ("domU1".into(), "reached init".into()),
                ("domU1".into(), "reached init".into()),
            ],
            domains: vec!["domU1".into()],
            peer: Peer::Oxen,
            end: End::Running,
            limit: Duration::from_secs(1),
            absent: vec![],
            cases: vec![],
            panic: vec![],
            sends: vec![],
        };
        assert_eq!(
            want.missing("(d1) oxen-init: domU1 reached init\n").len(),
            1
        );
        assert!(
            want.missing("(d1) x reached init\n(d1) x reached init\n")
                .is_empty()
        );
    }

    const GUEST_EXPECT: &str = "\
end: power-off
cases: domU1 all, at least 3
cases on xen: domU2 all
";

    fn guest_want(peer: Peer) -> Want {
        parse(GUEST_EXPECT, "guest.expect")
            .unwrap()
            .for_peer(peer, &domains())
    }

    const GUEST_OK: &str = "\
(oxen) d1 (domU1): 1 vCPU(s)
(d1) abi guest: device tree at 0x47e00000
(d1) TEST dt.cpus PASS
(d1) TEST psci.version PASS
(d1) TEST xen.hvc_bad_immediate_undefined PASS elr=at
(d1) 3 passed, 0 failed
";

    #[test]
    fn a_cases_rule_names_the_domain_and_the_fewest_cases() {
        let e = parse(GUEST_EXPECT, "g").unwrap();
        assert_eq!(
            e.cases,
            [
                CasesRule {
                    domain: "domU1".into(),
                    peer: None,
                    at_least: 3
                },
                CasesRule {
                    domain: "domU2".into(),
                    peer: Some(Peer::Xen),
                    at_least: 1
                },
            ]
        );
        assert_eq!(guest_want(Peer::Oxen).cases, [("domU1".to_string(), 3)]);
        assert_eq!(guest_want(Peer::Xen).cases.len(), 2);
    }

    #[test]
    fn a_malformed_cases_rule_is_reported_with_what_is_accepted() {
        let errs = parse(
            "end: running\ncases: domU1\ncases: domU1 some\ncases: domU1 all, at least 0\ncases: domU1 all, at most 3\n",
            "g.expect",
        )
        .unwrap_err();
        assert_eq!(errs.len(), 4, "{errs:#?}");
        assert!(errs[0].starts_with("g.expect:2: cases: \"domU1\" is not `DOMAIN all`"));
        assert!(errs.iter().all(|e| e.contains("`DOMAIN all, at least N`")));
    }

    #[test]
    fn a_cases_rule_for_a_domain_the_config_lacks_is_found() {
        let e = parse("end: running\ncases: domU7 all\n", "g").unwrap();
        assert_eq!(e.unknown_domains(&domains()), ["domU7"]);
    }

    #[test]
    fn guest_lines_read_as_pass_fail_summary_or_nothing() {
        assert_eq!(
            GuestLine::parse("TEST psci.version PASS"),
            Some(GuestLine::Pass {
                name: "psci.version",
                note: ""
            })
        );
        assert_eq!(
            GuestLine::parse("TEST x.y PASS elr=after"),
            Some(GuestLine::Pass {
                name: "x.y",
                note: "elr=after"
            })
        );
        assert_eq!(
            GuestLine::parse("TEST dt.cpus FAIL /cpus lists 1 cpu node(s)"),
            Some(GuestLine::Fail {
                name: "dt.cpus",
                why: "/cpus lists 1 cpu node(s)"
            })
        );
        assert_eq!(
            GuestLine::parse("TEST dt.cpus SKIP"),
            Some(GuestLine::Malformed("TEST dt.cpus SKIP"))
        );
        assert_eq!(
            GuestLine::parse("12 passed, 3 failed"),
            Some(GuestLine::Summary {
                passed: 12,
                failed: 3
            })
        );
        assert_eq!(GuestLine::parse("qemu: 12 passed, 3 failed"), None);
        assert_eq!(GuestLine::parse("abi guest: starting"), None);
    }

    #[test]
    fn the_domain_tag_is_split_off_both_hypervisors_lines() {
        assert_eq!(
            split_tag("(XEN) DOM2: TEST a PASS"),
            (Some(2), "TEST a PASS")
        );
        assert_eq!(
            split_tag("(d1) 3 passed, 0 failed"),
            (Some(1), "3 passed, 0 failed")
        );
        assert_eq!(split_tag("(XEN) Freed 368kB"), (None, "Freed 368kB"));
    }

    #[test]
    fn a_guest_whose_every_case_passed_and_that_closed_passes() {
        let want = guest_want(Peer::Oxen);
        assert_eq!(
            check(&outcome(GUEST_OK, Some(0)), &want),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_failing_guest_case_turns_the_run_red() {
        let want = guest_want(Peer::Oxen);
        let log = GUEST_OK
            .replace(
                "TEST psci.version PASS",
                "TEST psci.version FAIL PSCI_VERSION is 0x2, expected 0x10001 (1.1)",
            )
            .replace("3 passed, 0 failed", "2 passed, 1 failed");
        let p = check(&outcome(&log, Some(0)), &want);
        assert_eq!(
            p,
            [
                "domU1: TEST psci.version FAIL PSCI_VERSION is 0x2, expected 0x10001 (1.1)",
                "domU1 passed 2 case(s), at least 3 expected",
            ]
        );
    }

    #[test]
    fn a_hung_guest_turns_the_run_red_and_says_where_it_stopped() {
        let want = guest_want(Peer::Oxen);
        let log = GUEST_OK.replace("(d1) 3 passed, 0 failed\n", "");
        let mut out = outcome(&log, None);
        out.timed_out = true;
        let p = check(&out, &want);
        assert!(
            p.contains(
                &"domU1 hung after 3 case(s), the last xen.hvc_bad_immediate_undefined: no closing \"N passed, M failed\" line within 30 s"
                    .to_string()
            ),
            "{p:#?}"
        );
        assert!(p.iter().any(|p| p.starts_with("hung: no power-off")));
    }

    #[test]
    fn a_crashed_guest_with_partial_output_turns_the_run_red() {
        let want = guest_want(Peer::Oxen);
        // The domain died after two cases; the machine still powered off.
        let log =
            "(d1) TEST dt.cpus PASS\n(d1) TEST psci.version PASS\n(oxen) d1 (domU1): crashed\n";
        let p = check(&outcome(log, Some(0)), &want);
        assert_eq!(
            p,
            [
                "domU1 stopped after 2 case(s), the last psci.version without its closing \"N passed, M failed\" line (crashed or cut short)",
                "domU1 passed 2 case(s), at least 3 expected",
            ]
        );
    }

    #[test]
    fn a_guest_that_prints_nothing_turns_the_run_red() {
        let want = guest_want(Peer::Oxen);
        let p = check(
            &outcome("(oxen) all domains have stopped\n", Some(0)),
            &want,
        );
        assert_eq!(p.len(), 2, "{p:#?}");
        assert!(p[0].contains("before its first case"));
    }

    #[test]
    fn a_closing_line_that_disagrees_with_the_cases_turns_the_run_red() {
        let want = guest_want(Peer::Oxen);
        let log = GUEST_OK.replace("3 passed", "4 passed");
        let p = check(&outcome(&log, Some(0)), &want);
        assert_eq!(
            p,
            ["domU1 closed with \"4 passed, 0 failed\" but printed 3 PASS and 0 FAIL line(s)"]
        );
    }

    #[test]
    fn a_malformed_test_line_turns_the_run_red() {
        let want = guest_want(Peer::Oxen);
        let log = GUEST_OK.replace("TEST dt.cpus PASS", "TEST dt.cpus OK");
        let p = check(&outcome(&log, Some(0)), &want);
        assert!(
            p[0].starts_with("domU1: \"TEST dt.cpus OK\" is not a test line"),
            "{p:#?}"
        );
    }

    #[test]
    fn another_domains_test_lines_never_count() {
        // With two domains, domU2's lines (and untagged ones) are not domU1's.
        let want = guest_want(Peer::Oxen);
        let log = GUEST_OK.replace("(d1) ", "(XEN) DOM2: ");
        let run = want.guest_run(&log, "domU1");
        assert_eq!(run, GuestRun::default());
        let untagged = GUEST_OK.replace("(d1) ", "");
        assert_eq!(want.guest_run(&untagged, "domU1"), GuestRun::default());
        // With one domain an untagged line is that domain's.
        let mut single = want.clone();
        single.domains.truncate(1);
        assert_eq!(single.guest_run(&untagged, "domU1").passed.len(), 3);
    }

    #[test]
    fn a_running_system_is_complete_only_once_every_guest_closed() {
        let want = guest_want(Peer::Xen);
        let d1 = GUEST_OK.replace("(d1) ", "(XEN) DOM1: ");
        assert!(!want.complete(&d1), "domU2 has not closed yet");
        let both = format!("{d1}(XEN) DOM2: TEST a PASS\n(XEN) DOM2: 1 passed, 0 failed\n");
        assert!(want.complete(&both));
        assert!(check(&outcome(&both, None), &want).is_empty());
    }
    const MATRIX: &str = "\
end: power-off
without: evtchn
requires: gnttab
peer: oxen
domU1 on oxen: (oxen) boot stopped
panic on xen: requires dom0
";

    fn features(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn without_requires_and_peer_read_into_the_expectation() {
        let e = parse(MATRIX, "m").unwrap();
        assert_eq!(e.without, ["evtchn"]);
        assert_eq!(e.requires, ["gnttab"]);
        assert_eq!(e.peers, [Peer::Oxen]);
        assert_eq!(e.panics[0].peer, Some(Peer::Xen));
        assert_eq!(e.panics[0].text, "requires dom0");
    }

    #[test]
    fn a_without_config_applies_only_to_images_lacking_every_feature_named() {
        let e = parse("end: power-off\nwithout: evtchn gnttab\n", "m").unwrap();
        assert_eq!(
            e.skip_reason(Peer::Oxen, &features(&["extended-regions"])),
            None
        );
        assert_eq!(e.skip_reason(Peer::Oxen, &[]), None);
        let why = e
            .skip_reason(Peer::Oxen, &features(&["gnttab", "extended-regions"]))
            .unwrap();
        assert_eq!(why, "applies only to images without gnttab");
    }

    #[test]
    fn requires_and_without_together_pick_the_images_between() {
        let e = parse(MATRIX, "m").unwrap();
        assert_eq!(e.skip_reason(Peer::Oxen, &features(&["gnttab"])), None);
        assert_eq!(
            e.skip_reason(Peer::Oxen, &[]).unwrap(),
            "needs features this image lacks: gnttab"
        );
        assert!(
            e.skip_reason(Peer::Oxen, &features(&["evtchn", "gnttab"]))
                .is_some()
        );
    }

    #[test]
    fn xen_skips_without_configs_and_configs_for_other_peers_only() {
        let without = parse("end: power-off\nwithout: evtchn\n", "m").unwrap();
        assert!(
            without
                .skip_reason(Peer::Xen, &[])
                .unwrap()
                .contains("Xen has every interface")
        );
        let oxen_only = parse("end: power-off\npeer: oxen\n", "m").unwrap();
        assert_eq!(
            oxen_only.skip_reason(Peer::Xen, &[]).unwrap(),
            "runs only on oxen (`peer:`)"
        );
        let needs = parse("end: power-off\nrequires: evtchn gnttab\n", "m").unwrap();
        assert_eq!(needs.skip_reason(Peer::Xen, &[]), None);
    }

    #[test]
    fn matrix_keys_refuse_a_peer_an_unknown_peer_and_an_empty_value() {
        let errs = parse(
            "end: power-off\nwithout on xen: evtchn\npeer: kvm\nwithout:\npeer:\n",
            "m.expect",
        )
        .unwrap_err();
        assert_eq!(errs.len(), 4, "{errs:#?}");
        assert!(errs[0].contains("`without` applies to every peer"));
        assert!(errs[1].contains("unknown peer \"kvm\""));
        assert!(errs[2].contains("`without:` names no feature"));
        assert!(errs[3].contains("`peer:` names no peer"));
    }

    const XEN_PANIC: &str = "\
(XEN) Xen dom0less mode detected
(XEN) ****************************************
(XEN) Panic on CPU 0:
(XEN) At the moment, Xenstore support requires dom0 to be present
(XEN) ****************************************
";

    fn panic_want() -> Want {
        parse(MATRIX, "m")
            .unwrap()
            .for_peer(Peer::Xen, &["domU1".to_string()])
    }

    #[test]
    fn an_expected_panic_passes_and_stops_the_run_once_seen() {
        let want = panic_want();
        assert_eq!(want.end, End::Running);
        assert!(!want.complete("(XEN) Xen dom0less mode detected\n"));
        assert!(want.complete(XEN_PANIC));
        assert_eq!(
            check(&outcome(XEN_PANIC, None), &want),
            Vec::<String>::new()
        );
        // Xen resets the machine a few seconds after its panic.
        assert_eq!(
            check(&outcome(XEN_PANIC, Some(0)), &want),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_missing_or_different_panic_turns_the_run_red() {
        let want = panic_want();
        let mut calm = outcome("(XEN) Xen dom0less mode detected\n", None);
        calm.timed_out = true;
        let p = check(&calm, &want);
        assert!(
            p[0].starts_with(
                "the hypervisor did not panic (expected a panic with \"requires dom0\")"
            ),
            "{p:#?}"
        );
        let other = XEN_PANIC.replace("requires dom0", "is unwell");
        let p = check(&outcome(&other, None), &want);
        assert_eq!(
            p,
            ["the hypervisor panicked, but its report lacks \"requires dom0\""]
        );
    }

    #[test]
    fn a_panic_stays_fatal_where_none_is_expected() {
        let want = parse(MATRIX, "m")
            .unwrap()
            .for_peer(Peer::Oxen, &["domU1".to_string()]);
        assert!(want.panic.is_empty());
        let log = "(oxen) boot stopped\n(oxen) *** PANIC on CPU0: x\n";
        let p = check(&outcome(log, Some(0)), &want);
        assert_eq!(p, ["Oxen panicked: (oxen) *** PANIC on CPU0: x"]);
    }

    #[test]
    fn send_lines_parse_with_escapes_in_order() {
        let e = parse(
            "end: power-off\nsend: reached init => shutdown 1\\r\nsend on oxen: x => \\x01\\x01\\x01\n",
            "t",
        )
        .unwrap();
        assert_eq!(e.sends.len(), 2);
        assert_eq!(e.sends[0].after, "reached init");
        assert_eq!(e.sends[0].bytes, b"shutdown 1\r");
        assert_eq!(e.sends[1].bytes, [1, 1, 1]);
        assert_eq!(e.for_peer(Peer::Xen, &[]).sends.len(), 1);
    }

    #[test]
    fn a_send_without_arrow_or_with_a_bad_escape_is_an_error() {
        let e = parse("end: power-off\nsend: no arrow\nsend: a => \\q\n", "t").unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].contains("AFTER => TEXT"), "{}", e[0]);
        assert!(e[1].contains("unknown escape"), "{}", e[1]);
    }
}
