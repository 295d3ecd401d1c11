//! The bench's picture: Oxen, Xen and native side by side, one group of
//! bars per measure (each scaled to its own largest figure, since the
//! measures have different units), written as a small SVG by hand.

use std::fmt::Write as _;

/// The columns, in the order drawn, with their colours.
pub const COLUMNS: [(&str, &str); 3] = [
    ("Oxen", "#d9822b"),
    ("Xen 4.20", "#3b6ea5"),
    ("native", "#5f9e4f"),
];

/// One measure: its label and the figure of each column, if measured.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartRow {
    pub label: String,
    pub values: [Option<f64>; 3],
}

const WIDTH: u32 = 760;
const LEFT: u32 = 20;
/// The longest bar, in pixels.
const BAR_MAX: f64 = 480.0;
const BAR_H: u32 = 14;
const BAR_GAP: u32 = 4;
const LABEL_H: u32 = 18;
const GROUP_GAP: u32 = 14;
const TOP: u32 = 64;

fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            c => o.push(c),
        }
    }
    o
}

/// A figure as the table prints it.
fn figure(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// The chart: `title` and a `note` line at the top, then each row.
pub fn svg(title: &str, note: &str, rows: &[ChartRow]) -> String {
    let group = LABEL_H + 3 * (BAR_H + BAR_GAP) + GROUP_GAP;
    let height = TOP + group * rows.len() as u32 + 10;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(
        o,
        "<rect width=\"{WIDTH}\" height=\"{height}\" fill=\"#ffffff\"/>"
    );
    let _ = writeln!(
        o,
        "<text x=\"{LEFT}\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{}</text>",
        escape(title)
    );
    let _ = writeln!(
        o,
        "<text x=\"{LEFT}\" y=\"40\" fill=\"#555555\">{}</text>",
        escape(note)
    );
    for (i, (name, colour)) in COLUMNS.iter().enumerate() {
        let x = LEFT + 110 * i as u32;
        let _ = writeln!(
            o,
            "<rect x=\"{x}\" y=\"48\" width=\"10\" height=\"10\" fill=\"{colour}\"/>\
             <text x=\"{}\" y=\"57\">{name}</text>",
            x + 14
        );
    }
    for (r, row) in rows.iter().enumerate() {
        let y0 = TOP + group * r as u32;
        let _ = writeln!(
            o,
            "<text x=\"{LEFT}\" y=\"{}\" font-weight=\"bold\">{}</text>",
            y0 + 13,
            escape(&row.label)
        );
        let max = row
            .values
            .iter()
            .flatten()
            .copied()
            .filter(|v| v.is_finite() && *v > 0.0)
            .fold(0.0_f64, f64::max);
        for (c, v) in row.values.iter().enumerate() {
            let y = y0 + LABEL_H + c as u32 * (BAR_H + BAR_GAP);
            let (name, colour) = COLUMNS[c];
            match v {
                Some(v) if v.is_finite() && *v >= 0.0 && max > 0.0 => {
                    let w = (v / max * BAR_MAX).max(1.0);
                    let _ = writeln!(
                        o,
                        "<rect x=\"{LEFT}\" y=\"{y}\" width=\"{w:.1}\" height=\"{BAR_H}\" \
                         fill=\"{colour}\"><title>{name}: {}</title></rect>\
                         <text x=\"{:.1}\" y=\"{}\">{}</text>",
                        figure(*v),
                        f64::from(LEFT) + w + 6.0,
                        y + BAR_H - 3,
                        figure(*v)
                    );
                }
                _ => {
                    let _ = writeln!(
                        o,
                        "<text x=\"{LEFT}\" y=\"{}\" fill=\"#999999\">{name}: not measured</text>",
                        y + BAR_H - 3
                    );
                }
            }
        }
    }
    o.push_str("</svg>\n");
    o
}

/// A row of the bench's text table (`target/bench/bench.txt`): its label
/// and the Oxen, Xen and native figures. The label is everything before
/// the last seven columns.
pub fn parse_table_row(line: &str) -> Option<ChartRow> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 7 {
        return None;
    }
    let (label, cols) = fields.split_at(fields.len() - 6);
    let value = |s: &str| -> Option<Option<f64>> {
        let t = s.trim_end_matches(['=', '~']);
        if t == "-" {
            Some(None)
        } else {
            t.parse::<f64>().ok().map(Some)
        }
    };
    let values = [value(cols[0])?, value(cols[1])?, value(cols[2])?];
    Some(ChartRow {
        label: label.join(" "),
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<ChartRow> {
        vec![
            ChartRow {
                label: "Linux boot to init, 1 domU (s)".into(),
                values: [Some(4.69), Some(3.15), Some(2.01)],
            },
            ChartRow {
                label: "xen_version <icount> & more".into(),
                values: [Some(416.0), Some(432.0), None],
            },
        ]
    }

    #[test]
    fn each_rows_largest_figure_gets_the_longest_bar() {
        let s = svg("t", "n", &rows());
        // Oxen's 4.69 s is the largest of the first row, Xen's 432 of the second.
        assert!(s.contains("width=\"480.0\" height=\"14\" fill=\"#d9822b\"><title>Oxen: 4.690"));
        assert!(s.contains("width=\"480.0\" height=\"14\" fill=\"#3b6ea5\"><title>Xen 4.20: 432"));
        let xen_first = 3.15 / 4.69 * 480.0;
        assert!(s.contains(&format!("width=\"{xen_first:.1}\"")));
    }

    #[test]
    fn a_column_without_a_figure_says_so_and_text_is_escaped() {
        let s = svg("Oxen & Xen", "medians", &rows());
        assert!(s.contains("native: not measured"));
        assert!(s.contains("xen_version &lt;icount&gt; &amp; more"));
        assert!(s.contains(">Oxen &amp; Xen</text>"));
        assert!(s.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(s.ends_with("</svg>\n"));
        // Five bars, three legend swatches and the background.
        assert_eq!(s.matches("<rect").count(), 5 + 3 + 1);
    }

    #[test]
    fn table_rows_read_back_with_their_figures() {
        let line = format!(
            "{:<44} {:>10} {:>10} {:>10} {:>9} {:>12} {:>12}",
            "hypercall.xen_version (insns, icount)", "416=", "432=", "-", "0.96", "-", "-"
        );
        assert_eq!(
            parse_table_row(&line),
            Some(ChartRow {
                label: "hypercall.xen_version (insns, icount)".into(),
                values: [Some(416.0), Some(432.0), None],
            })
        );
        assert_eq!(parse_table_row("measure oxen xen-4.20 native"), None);
    }
}
