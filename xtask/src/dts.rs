//! Device-tree source in the canonical form `dtc -O dts` writes (one
//! property per line, one node header per line): read into a tree, edited,
//! written back for dtc to compile.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// A node: its name (`/` for the root), any labels, its properties in
/// order and its children in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Node {
    pub name: String,
    pub labels: Vec<String>,
    pub props: Vec<Prop>,
    pub children: Vec<Node>,
}

/// A property; `value` is the source text between `=` and `;`, untouched,
/// and `None` for an empty property such as `vpl011;`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prop {
    pub name: String,
    pub value: Option<String>,
}

/// A whole source: the directives before the root (`/dts-v1/;`,
/// `/memreserve/ …;`) and the root node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub header: Vec<String>,
    pub root: Node,
}

impl Node {
    /// The property called `name`.
    pub fn prop(&self, name: &str) -> Option<&Prop> {
        self.props.iter().find(|p| p.name == name)
    }

    /// Sets a property, keeping its place if it exists, else appending it.
    pub fn set(&mut self, name: &str, value: Option<String>) {
        match self.props.iter_mut().find(|p| p.name == name) {
            Some(p) => p.value = value,
            None => self.props.push(Prop {
                name: name.into(),
                value,
            }),
        }
    }

    /// The child called `name` (with its unit address, if any).
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The name without its unit address (`module@50000000` → `module`).
    pub fn base_name(&self) -> &str {
        self.name.split('@').next().unwrap_or(&self.name)
    }

    /// A property holding one cell list, e.g. `#address-cells = <0x02>;`.
    pub fn u32_prop(&self, name: &str) -> Option<Result<u32, String>> {
        self.prop(name).map(|p| match p.cells().as_deref() {
            Some([v]) => Ok(*v),
            _ => Err(format!(
                "{name} = {} is not a single cell",
                p.value.as_deref().unwrap_or("(empty)")
            )),
        })
    }

    /// The strings of a property holding strings, e.g. `compatible`.
    pub fn strings(&self, name: &str) -> Vec<String> {
        self.prop(name).and_then(Prop::strings).unwrap_or_default()
    }

    /// Whether `compatible` lists this string.
    pub fn is_compatible(&self, compatible: &str) -> bool {
        self.strings("compatible").iter().any(|c| c == compatible)
    }

    fn write(&self, out: &mut String, depth: usize) {
        let indent = "\t".repeat(depth);
        let _ = write!(out, "{indent}");
        for l in &self.labels {
            let _ = write!(out, "{l}: ");
        }
        let _ = writeln!(out, "{} {{", self.name);
        for p in &self.props {
            match &p.value {
                Some(v) => {
                    let _ = writeln!(out, "{indent}\t{} = {v};", p.name);
                }
                None => {
                    let _ = writeln!(out, "{indent}\t{};", p.name);
                }
            }
        }
        for (i, c) in self.children.iter().enumerate() {
            if i > 0 || !self.props.is_empty() {
                out.push('\n');
            }
            c.write(out, depth + 1);
        }
        let _ = writeln!(out, "{indent}}};");
    }
}

impl Prop {
    /// The cells of a value written as one `<…>` list of numbers.
    pub fn cells(&self) -> Option<Vec<u32>> {
        let v = self.value.as_deref()?.trim();
        let inner = v.strip_prefix('<')?.strip_suffix('>')?;
        inner.split_whitespace().map(parse_u32).collect()
    }

    /// The strings of a value written as quoted strings (dtc writes a list
    /// as one string joined with `\0`; a hand-written one uses commas).
    pub fn strings(&self) -> Option<Vec<String>> {
        let mut s = self.value.as_deref()?.trim();
        let mut out = Vec::new();
        loop {
            let rest = s.strip_prefix('"')?;
            let mut text = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '"' => break i,
                    '\\' => match chars.next()?.1 {
                        '0' => {
                            out.push(std::mem::take(&mut text));
                        }
                        'n' => text.push('\n'),
                        't' => text.push('\t'),
                        other => text.push(other),
                    },
                    c => text.push(c),
                }
            };
            out.push(text);
            s = rest[end + 1..].trim_start();
            if s.is_empty() {
                return Some(out);
            }
            s = s.strip_prefix(',')?.trim_start();
        }
    }
}

fn parse_u32(s: &str) -> Option<u32> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// A value of `cells` 32-bit cells holding `v`, most significant first;
/// `None` if `v` does not fit.
pub fn split_cells(v: u64, cells: u32) -> Option<Vec<u32>> {
    match cells {
        1 => u32::try_from(v).ok().map(|c| vec![c]),
        2 => Some(vec![(v >> 32) as u32, v as u32]),
        _ => None,
    }
}

/// Formats cells the way dtc does: `<0x00 0x50000000>`.
pub fn cells_value(cells: &[u32]) -> String {
    let items: Vec<String> = cells
        .iter()
        .map(|c| {
            if *c < 0x10 {
                format!("{c:#04x}")
            } else {
                format!("{c:#x}")
            }
        })
        .collect();
    format!("<{}>", items.join(" "))
}

impl Source {
    /// Reads dtc's canonical output. Errors name the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut header = Vec::new();
        // The chain of open nodes, the root first.
        let mut open: Vec<Node> = Vec::new();
        let mut root = None;
        for (n, raw) in text.lines().enumerate() {
            let at = |msg: &str| format!("line {}: {msg}: {}", n + 1, raw.trim());
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            if root.is_some() {
                return Err(at("text after the root node"));
            }
            if let Some(head) = line.strip_suffix('{') {
                let mut words: Vec<&str> = head.split_whitespace().collect();
                let name = words.pop().ok_or_else(|| at("a node with no name"))?;
                let labels = words
                    .iter()
                    .map(|w| {
                        w.strip_suffix(':')
                            .map(String::from)
                            .ok_or_else(|| at("cannot read the node header"))
                    })
                    .collect::<Result<_, _>>()?;
                if open.is_empty() && name != "/" {
                    return Err(at("expected the root node `/ {`"));
                }
                open.push(Node {
                    name: name.into(),
                    labels,
                    ..Node::default()
                });
            } else if line == "};" {
                let node = open.pop().ok_or_else(|| at("`};` closes nothing"))?;
                match open.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            } else if let Some(body) = line.strip_suffix(';') {
                let Some(node) = open.last_mut() else {
                    header.push(line.to_string());
                    continue;
                };
                let prop = match body.split_once(" = ") {
                    Some((name, value)) => Prop {
                        name: name.trim().into(),
                        value: Some(value.trim().into()),
                    },
                    None => Prop {
                        name: body.trim().into(),
                        value: None,
                    },
                };
                node.props.push(prop);
            } else {
                return Err(at("not a node, property or directive"));
            }
        }
        match root {
            Some(root) => Ok(Self { header, root }),
            None if open.is_empty() => Err("no root node".into()),
            None => Err(format!("node {} is not closed", open[open.len() - 1].name)),
        }
    }

    /// Writes the source back, header first.
    pub fn write(&self) -> String {
        let mut out = String::new();
        for h in &self.header {
            let _ = writeln!(out, "{h}");
        }
        out.push('\n');
        self.root.write(&mut out, 0);
        out
    }

    /// Only the root node, for appending to another source: dtc merges a
    /// later `/ { … };` into the tree defined before it.
    pub fn write_root(&self) -> String {
        let mut out = String::new();
        self.root.write(&mut out, 0);
        out
    }
}

/// Runs dtc, turning its failure (with its messages) into an error.
pub fn dtc(args: &[&str], input: &Path, output: &Path) -> Result<(), String> {
    let mut cmd = Command::new("dtc");
    cmd.args(["-q"]).args(args).arg("-o").arg(output).arg(input);
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run dtc (apt-get install device-tree-compiler): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{}` failed:\n{}",
            crate::show(&cmd),
            String::from_utf8_lossy(&out.stderr).trim_end()
        ))
    }
}

/// Compiles a source file into dtc's canonical source form and reads it.
pub fn canonical(input: &Path, scratch: &Path) -> Result<Source, String> {
    dtc(&["-I", "dts", "-O", "dts"], input, scratch)?;
    let text =
        std::fs::read_to_string(scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    Source::parse(&text).map_err(|e| format!("{} (dtc output): {e}", input.display()))
}

/// The node [`canonical_avoiding`] adds to hold the phandles it keeps
/// dtc from giving out, removed again from what it returns.
pub const RESERVED_NODE: &str = "xtask-reserved-phandles";

/// [`canonical`], with dtc giving the source's labelled nodes phandles
/// other than `taken` (the tree the source will be merged into holds
/// those): dtc numbers a reference's node with the lowest phandle no
/// node holds, so a node holding each of `taken` is added for the
/// compilation and dropped from the result.
pub fn canonical_avoiding(input: &Path, scratch: &Path, taken: &[u32]) -> Result<Source, String> {
    if taken.is_empty() {
        return canonical(input, scratch);
    }
    let abs = std::fs::canonicalize(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let mut wrapper = format!(
        "/include/ \"{}\"\n\n/ {{\n\t{RESERVED_NODE} {{\n",
        abs.display()
    );
    for p in taken {
        let _ = writeln!(wrapper, "\t\tp{p:x} {{\n\t\t\tphandle = <{p:#x}>;\n\t\t}};");
    }
    wrapper.push_str("\t};\n};\n");
    let wrapped = scratch.with_extension("wrapper.dts");
    std::fs::write(&wrapped, wrapper).map_err(|e| format!("{}: {e}", wrapped.display()))?;
    let mut src = canonical(&wrapped, scratch)?;
    src.root.children.retain(|c| c.name != RESERVED_NODE);
    Ok(src)
}

/// Every phandle the tree's nodes hold (`phandle`, `linux,phandle`).
pub fn phandles(node: &Node) -> Vec<u32> {
    let mut out = Vec::new();
    collect_phandles(node, &mut out);
    out.sort_unstable();
    out.dedup();
    out
}

fn collect_phandles(node: &Node, out: &mut Vec<u32>) {
    for name in ["phandle", "linux,phandle"] {
        if let Some(Ok(p)) = node.u32_prop(name) {
            out.push(p);
        }
    }
    for c in &node.children {
        collect_phandles(c, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANONICAL: &str = "/dts-v1/;\n/memreserve/\t0x0000000048000000 0x0000000000001000;\n\n/ {\n\t#address-cells = <0x02>;\n\tmodel = \"linux,dummy-virt\";\n\n\tchosen {\n\t\tstdout-path = \"/pl011@9000000\";\n\n\t\tdom: domU1 {\n\t\t\tcompatible = \"xen,domain\";\n\t\t\tvpl011;\n\t\t};\n\t};\n};\n";

    #[test]
    fn canonical_source_reads_into_a_tree_and_writes_back_unchanged() {
        let src = Source::parse(CANONICAL).unwrap();
        assert_eq!(src.header.len(), 2);
        let dom = &src.root.child("chosen").unwrap().children[0];
        assert_eq!(dom.name, "domU1");
        assert_eq!(dom.labels, ["dom"]);
        assert!(dom.is_compatible("xen,domain"));
        assert_eq!(dom.prop("vpl011").unwrap().value, None);
        assert_eq!(src.write(), CANONICAL);
    }

    #[test]
    fn unbalanced_braces_are_reported() {
        let err = Source::parse("/dts-v1/;\n/ {\n\tchosen {\n\t};\n").unwrap_err();
        assert!(err.contains("not closed"), "{err}");
        let err = Source::parse("/ {\n};\n};\n").unwrap_err();
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn cells_and_strings_read_dtc_and_hand_written_forms() {
        let p = |v: &str| Prop {
            name: "p".into(),
            value: Some(v.into()),
        };
        assert_eq!(p("<0x02 16>").cells(), Some(vec![2, 16]));
        assert_eq!(p("\"a\"").cells(), None);
        assert_eq!(
            p("\"multiboot,kernel\\0multiboot,module\"").strings(),
            Some(vec!["multiboot,kernel".into(), "multiboot,module".into()])
        );
        assert_eq!(
            p("\"a\", \"b \\\"c\\\"\"").strings(),
            Some(vec!["a".into(), "b \"c\"".into()])
        );
        assert_eq!(p("<1>").strings(), None);
    }

    #[test]
    fn values_split_into_cells_only_when_they_fit() {
        assert_eq!(split_cells(0x1_5000_0000, 2), Some(vec![1, 0x5000_0000]));
        assert_eq!(split_cells(0x1_0000_0000, 1), None);
        assert_eq!(split_cells(7, 3), None);
        assert_eq!(cells_value(&[0, 0x5000_0000]), "<0x00 0x50000000>");
    }

    #[test]
    fn setting_a_property_keeps_its_place_or_appends_it() {
        let mut n = Node {
            name: "module".into(),
            ..Node::default()
        };
        n.set("compatible", Some("\"multiboot,kernel\"".into()));
        n.set("reg", Some("<0x00>".into()));
        n.set("compatible", Some("\"x\"".into()));
        let names: Vec<&str> = n.props.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["compatible", "reg"]);
        assert_eq!(n.strings("compatible"), ["x"]);
    }
}
