//! The hypervisor command line, read from `/chosen/xen,xen-bootargs` so that
//! a device tree written for Xen works unchanged.
//!
//! Syntax follows Xen: whitespace-separated `name`, `name=value` or
//! `no-name` (a boolean set to false). Options nobody implements are listed
//! once at boot as ignored; they are never fatal.

use alloc::vec::Vec;
use core::fmt;

/// One option as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootArg<'a> {
    /// Name without any `no-` prefix.
    pub name: &'a str,
    /// Text after `=`, if any.
    pub value: Option<&'a str>,
    /// Written as `no-name`.
    pub negated: bool,
    /// The option exactly as it appeared on the command line.
    pub raw: &'a str,
}

/// A parsed command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootArgs<'a> {
    args: Vec<BootArg<'a>>,
}

/// A recognised option with a value Oxen cannot accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadOption {
    /// The option as written, e.g. `ext_regions=maybe`.
    pub raw: alloc::string::String,
    /// What would be accepted.
    pub expected: &'static str,
}

impl fmt::Display for BadOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "/chosen: xen,xen-bootargs option \"{}\" is not valid (expected {})",
            self.raw, self.expected
        )
    }
}

impl<'a> BootArgs<'a> {
    /// Splits a command line into options.
    pub fn parse(cmdline: &'a str) -> Self {
        let args = cmdline
            .split_ascii_whitespace()
            .map(|raw| {
                let (name, value) = match raw.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (raw, None),
                };
                match (name.strip_prefix("no-"), value) {
                    (Some(stripped), None) => BootArg {
                        name: stripped,
                        value: None,
                        negated: true,
                        raw,
                    },
                    _ => BootArg {
                        name,
                        value,
                        negated: false,
                        raw,
                    },
                }
            })
            .collect();
        Self { args }
    }

    /// All options in command-line order.
    pub fn iter(&self) -> impl Iterator<Item = &BootArg<'a>> {
        self.args.iter()
    }

    /// The last occurrence of `name` (later options override earlier ones,
    /// as in Xen).
    pub fn get(&self, name: &str) -> Option<&BootArg<'a>> {
        self.args.iter().rev().find(|a| a.name == name)
    }

    /// A boolean option: `name`, `no-name`, or `name=` one of Xen's boolean
    /// spellings. `None` when absent.
    pub fn boolean(&self, name: &str) -> Option<Result<bool, BadOption>> {
        let arg = self.get(name)?;
        if arg.negated {
            return Some(Ok(false));
        }
        Some(match arg.value {
            None => Ok(true),
            Some("1" | "yes" | "on" | "true" | "enable") => Ok(true),
            Some("0" | "no" | "off" | "false" | "disable") => Ok(false),
            Some(_) => Err(BadOption {
                raw: arg.raw.into(),
                expected: "a boolean: yes/no, on/off, true/false, enable/disable or 1/0",
            }),
        })
    }

    /// Options whose name is not in `known`, each reported once.
    pub fn unknown<'k>(&self, known: impl Fn(&str) -> bool + 'k) -> Vec<&'a str> {
        let mut out: Vec<&'a str> = Vec::new();
        for a in &self.args {
            if !known(a.name) && !out.contains(&a.raw) {
                out.push(a.raw);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const XEN_QEMU: &str = "console=dtuart dtuart=/pl011@9000000 bootscrub=0";

    #[test]
    fn name_value_pairs_are_split_at_the_first_equals() {
        let a = BootArgs::parse("dtuart=serial0:115200n8 x=a=b");
        assert_eq!(a.get("dtuart").unwrap().value, Some("serial0:115200n8"));
        assert_eq!(a.get("x").unwrap().value, Some("a=b"));
    }

    #[test]
    fn later_option_overrides_earlier() {
        let a = BootArgs::parse("ext_regions=yes ext_regions=no");
        assert_eq!(a.boolean("ext_regions"), Some(Ok(false)));
    }

    #[test]
    fn booleans_accept_xen_spellings_and_no_prefix() {
        for (line, want) in [
            ("ext_regions", true),
            ("no-ext_regions", false),
            ("ext_regions=on", true),
            ("ext_regions=0", false),
            ("ext_regions=false", false),
        ] {
            assert_eq!(
                BootArgs::parse(line).boolean("ext_regions"),
                Some(Ok(want)),
                "{line}"
            );
        }
        assert_eq!(BootArgs::parse("").boolean("ext_regions"), None);
    }

    #[test]
    fn bad_boolean_names_the_option_and_what_is_accepted() {
        let err = BootArgs::parse("ext_regions=maybe")
            .boolean("ext_regions")
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("\"ext_regions=maybe\""));
        assert!(err.to_string().contains("yes/no"));
    }

    #[test]
    fn unknown_options_are_listed_once_in_order() {
        let a = BootArgs::parse("bootscrub=0 console=dtuart bootscrub=0 sched=credit2");
        let unknown = a.unknown(|n| n == "console");
        assert_eq!(unknown, ["bootscrub=0", "sched=credit2"]);
    }

    #[test]
    fn xen_qemu_command_line_parses() {
        let a = BootArgs::parse(XEN_QEMU);
        assert_eq!(a.iter().count(), 3);
        assert_eq!(a.get("console").unwrap().value, Some("dtuart"));
    }
}
