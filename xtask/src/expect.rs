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

/// A parsed `.expect` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub end: End,
    pub limit: Duration,
    /// Oxen cargo features an image needs for this config to apply
    /// (`requires: evtchn gnttab`); an image without them skips it.
    pub requires: Vec<String>,
    pub lines: Vec<Rule>,
    pub absent: Vec<Rule>,
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
    let mut lines = Vec::new();
    let mut absent = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut err = |msg: String| errors.push(format!("{file}:{}: {msg}", n + 1));
        let Some((key, value)) = line.split_once(':') else {
            err(format!(
                "`{line}` is not `KEY: VALUE` (KEY is end, limit, not or a domain name)"
            ));
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
            err(format!(
                "`{key}` is not a key (expected end, limit, not or a domain name)"
            ));
            continue;
        }
        match key {
            "requires" if peer.is_none() => {
                requires.extend(value.split_whitespace().map(String::from));
            }
            "end" | "limit" | "requires" if peer.is_some() => {
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
            _ if value.is_empty() => err(format!("`{key}:` has no text to look for")),
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
        lines,
        absent,
    })
}

impl Expect {
    /// The domain names the rules use that are not in `domains`.
    pub fn unknown_domains<'a>(&'a self, domains: &[String]) -> Vec<&'a str> {
        let mut v: Vec<&str> = self
            .lines
            .iter()
            .filter_map(|r| r.domain.as_deref())
            .filter(|d| !domains.iter().any(|n| n == d))
            .collect();
        v.dedup();
        v
    }

    /// What a run on `peer` must show. Under Xen a domain's power-off
    /// leaves Xen idling rather than ending QEMU, so a power-off ending
    /// becomes "stop once every line appeared".
    pub fn for_peer(&self, peer: Peer, domains: &[String]) -> Want {
        let applies = |r: &&Rule| r.peer.is_none_or(|p| p == peer);
        Want {
            peer,
            end: match (self.end, peer) {
                (End::PowerOff, Peer::Xen) => End::Running,
                (e, _) => e,
            },
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
}

/// Text that always fails a run, wherever it appears.
const FATAL: &[(&str, &str)] = &[
    ("*** FAULT", "Oxen reported a fault"),
    ("*** PANIC", "Oxen panicked"),
    ("Panic on CPU", "Xen panicked"),
    ("Kernel panic", "a guest kernel panicked"),
];

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
    let mut l = line.trim_start();
    for own in ["(XEN) ", "(oxen) "] {
        if let Some(rest) = l.strip_prefix(own) {
            l = rest;
            break;
        }
    }
    let (digits, _) = if let Some(rest) = l.strip_prefix("DOM") {
        rest.split_once(':')?
    } else {
        l.strip_prefix("(d")?.split_once(')')?
    };
    digits.parse().ok()
}

/// The problems with a captured run, empty when it went as expected.
pub fn check(out: &Outcome, want: &Want) -> Vec<String> {
    let mut problems = Vec::new();
    if out.faulted {
        problems.push("stopped early: the hypervisor reported a fault".into());
    }
    for (text, what) in FATAL {
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
    let secs = out.elapsed.as_secs_f64();
    match want.end {
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
}
