//! Markdown: a heading naming metric and epoch, the table (best arm bold),
//! the sources of published numbers as footnotes, then (one suite) the
//! bands, claims and pins that did not simply pass, and the verdict.
use super::{cell, footer, Exporter, Judged, Layout, Report};
use anyhow::Result;
use tabled::{builder::Builder, settings::Style};

pub struct Markdown;

pub const SYNTAX: cell::Syntax = cell::Syntax {
    pm: "±",
    arrow: "→",
    delta: "Δ",
    fail: "✗",
    lt: "<",
    bold: |s| format!("**{s}**"),
    sup,
};

/// Unicode superscript digits for footnote marks.
fn sup(n: usize) -> String {
    const D: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    n.to_string()
        .bytes()
        .map(|b| D[(b - b'0') as usize])
        .collect()
}

fn esc(s: &str) -> String {
    s.replace('|', "\\|")
}

impl Exporter for Markdown {
    fn render(&self, r: &Report, suites: &[Judged]) -> Result<String> {
        let mut b = Builder::default();
        let mut head: Vec<String> = r.row_heads.clone();
        head.extend(r.columns.iter().map(|c| esc(c)));
        b.push_record(head);
        for row in &r.rows {
            let mut rec: Vec<String> = row.labels.iter().map(|l| esc(l)).collect();
            for c in &row.cells {
                rec.push(match c {
                    Some(c) => cell::text(c, &SYNTAX),
                    None => "–".into(),
                });
            }
            b.push_record(rec);
        }
        let mut table = b.build();
        table.with(Style::markdown());
        let mut out = format!("### {}\n\n{table}\n", r.title);
        if !r.sources.is_empty() {
            out.push('\n');
            for (i, s) in r.sources.iter().enumerate() {
                out.push_str(&format!(
                    "{} published number (published → measured [measured - published]): {}\n",
                    sup(i + 1),
                    s
                ));
            }
        }
        if !r.notes.is_empty() {
            out.push('\n');
            for n in &r.notes {
                out.push_str(&format!("Note: {n}\n"));
            }
        }
        out.push('\n');
        if r.layout == Layout::Ablation {
            out.push_str(&footer(suites[0].verdict));
        } else {
            for j in suites {
                out.push_str(&verdict_line(j));
            }
        }
        Ok(out)
    }
}

fn verdict_line(j: &Judged) -> String {
    let v = j.verdict;
    if !v.checked {
        return format!("- {}: no expected file, nothing checked\n", v.suite);
    }
    let failed = v.bands.iter().filter(|b| !b.pass).count();
    format!(
        "- {} ({}): {} bands, {} failed; {} groups without a band; verdict {}\n",
        v.suite,
        v.expected_file,
        v.bands.len(),
        failed,
        v.unbanded.len(),
        if v.passed() { "PASS" } else { "FAIL" }
    )
}
