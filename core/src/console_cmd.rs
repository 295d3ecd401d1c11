//! The hypervisor's console commands: what is typed while the console input
//! is on Oxen. `q` acts at once, as Xen's debug keys do; anything else is a
//! line, run when Enter is typed. Subsystems add commands through
//! [`CONSOLE_COMMANDS`] (xenstore's `xs`, `shutdown`, `reboot`), so core
//! names none of them.

use alloc::string::String;
use alloc::vec::Vec;

/// One command word and what runs it.
pub struct ConsoleCommand {
    /// The first word of the line.
    pub name: &'static str,
    /// The arguments, for `help` (e.g. `"DOMID"`).
    pub usage: &'static str,
    /// One line saying what it does.
    pub help: &'static str,
    /// Runs with the rest of the line (trimmed); prints its own output.
    pub run: fn(args: &str),
}

/// Every console command linked into the image.
#[linkme::distributed_slice]
pub static CONSOLE_COMMANDS: [ConsoleCommand];

/// The longest line kept; further bytes are dropped until Enter.
pub const LINE_MAX: usize = 200;

/// What one typed byte does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Typed {
    /// Show this byte (it joined the line).
    Echo(u8),
    /// Rub out the last character shown.
    Erase,
    /// A whole line was entered (possibly empty).
    Line(String),
    /// An immediate key on an empty line.
    Key(u8),
    /// Nothing to do.
    Nothing,
}

/// Keys that act at once on an empty line.
pub const IMMEDIATE_KEYS: &[u8] = b"q";

/// The line being typed.
#[derive(Debug, Default, Clone)]
pub struct LineEditor {
    line: String,
}

impl LineEditor {
    /// Takes one byte typed with the input on the hypervisor.
    pub fn feed(&mut self, b: u8) -> Typed {
        match b {
            b'\r' | b'\n' => Typed::Line(core::mem::take(&mut self.line)),
            0x08 | 0x7f => {
                if self.line.pop().is_some() {
                    Typed::Erase
                } else {
                    Typed::Nothing
                }
            }
            b if self.line.is_empty() && IMMEDIATE_KEYS.contains(&b) => Typed::Key(b),
            0x20..=0x7e if self.line.len() < LINE_MAX => {
                self.line.push(b as char);
                Typed::Echo(b)
            }
            _ => Typed::Nothing,
        }
    }
}

/// The command a line names and its arguments, or `None` for a blank line.
pub fn parse<'l>(
    commands: &'static [ConsoleCommand],
    line: &'l str,
) -> Option<Result<(&'static ConsoleCommand, &'l str), &'l str>> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    Some(
        commands
            .iter()
            .find(|c| c.name == word)
            .map(|c| (c, rest.trim()))
            .ok_or(word),
    )
}

/// `help`'s lines: the immediate keys and every command.
pub fn help_lines(commands: &[ConsoleCommand]) -> Vec<String> {
    let mut v = alloc::vec![String::from("q: print every vCPU's state")];
    let mut sorted: Vec<&ConsoleCommand> = commands.iter().collect();
    crate::small_sort::sort_by_key(&mut sorted, |c| c.name);
    for c in sorted {
        let words = if c.usage.is_empty() {
            String::from(c.name)
        } else {
            alloc::format!("{} {}", c.name, c.usage)
        };
        v.push(alloc::format!("{words}: {}", c.help));
    }
    v
}

fn help(_: &str) {
    for l in help_lines(&CONSOLE_COMMANDS) {
        crate::println!("{l}");
    }
}

crate::arch::register! {
    CONSOLE_COMMANDS,
    static HELP: ConsoleCommand = ConsoleCommand {
        name: "help",
        usage: "",
        help: "list the console commands",
        run: help,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(ed: &mut LineEditor, s: &[u8]) -> Vec<Typed> {
        s.iter().map(|&b| ed.feed(b)).collect()
    }

    #[test]
    fn q_on_an_empty_line_acts_at_once() {
        let mut ed = LineEditor::default();
        assert_eq!(ed.feed(b'q'), Typed::Key(b'q'));
    }

    #[test]
    fn a_line_is_echoed_and_returned_at_enter() {
        let mut ed = LineEditor::default();
        let t = typed(&mut ed, b"xs ls\r");
        assert_eq!(t[0], Typed::Echo(b'x'));
        assert_eq!(t[5], Typed::Line(String::from("xs ls")));
        assert_eq!(ed.feed(b'\r'), Typed::Line(String::new()));
    }

    #[test]
    fn q_inside_a_line_is_just_a_letter() {
        let mut ed = LineEditor::default();
        typed(&mut ed, b"xs ");
        assert_eq!(ed.feed(b'q'), Typed::Echo(b'q'));
    }

    #[test]
    fn backspace_rubs_out_and_control_bytes_are_ignored() {
        let mut ed = LineEditor::default();
        assert_eq!(ed.feed(0x7f), Typed::Nothing);
        typed(&mut ed, b"ab");
        assert_eq!(ed.feed(0x08), Typed::Erase);
        assert_eq!(ed.feed(0x1b), Typed::Nothing);
        assert_eq!(ed.feed(b'\n'), Typed::Line(String::from("a")));
    }

    #[test]
    fn an_overlong_line_is_cut_at_the_limit() {
        let mut ed = LineEditor::default();
        for _ in 0..LINE_MAX + 50 {
            ed.feed(b'x');
        }
        match ed.feed(b'\r') {
            Typed::Line(l) => assert_eq!(l.len(), LINE_MAX),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lines_name_a_command_or_are_unknown() {
        let (c, args) = parse(&CONSOLE_COMMANDS, "  help  me ").unwrap().unwrap();
        assert_eq!((c.name, args), ("help", "me"));
        assert_eq!(
            parse(&CONSOLE_COMMANDS, "nope x").unwrap().err(),
            Some("nope")
        );
        assert!(parse(&CONSOLE_COMMANDS, "   ").is_none());
    }

    #[test]
    fn help_lists_q_and_the_commands_sorted() {
        let l = help_lines(&CONSOLE_COMMANDS);
        assert_eq!(l[0], "q: print every vCPU's state");
        assert!(l.iter().any(|x| x == "help: list the console commands"));
    }
}
