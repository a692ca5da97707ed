//! LaTeX: a booktabs `tabular` ready to `\input` (needs
//! `\usepackage{booktabs}`), optionally inside a `table` float with caption
//! and label; every string escaped; the same content as the markdown.
use super::{cell, Exporter, Judged, Report};
use anyhow::Result;

#[derive(Debug, Clone, Default)]
pub struct Latex {
    /// Wrap the tabular in a `table` float.
    pub float: bool,
    /// Caption of the float (default: the report's title).
    pub caption: Option<String>,
    /// `\label` of the float.
    pub label: Option<String>,
}

const SYNTAX: cell::Syntax = cell::Syntax {
    pm: "$\\pm$",
    arrow: "$\\rightarrow$",
    delta: "$\\Delta$",
    fail: "$\\times$",
    lt: "$<$",
    bold: |s| format!("\\textbf{{{s}}}"),
    sup: |n| format!("\\textsuperscript{{{n}}}"),
};

/// Escapes text for LaTeX (the ten special characters, and the non-ASCII
/// symbols this tool prints, which pdflatex's default input cannot set).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(ch);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            '<' => out.push_str("\\textless{}"),
            '>' => out.push_str("\\textgreater{}"),
            '|' => out.push_str("\\textbar{}"),
            '±' => out.push_str("$\\pm$"),
            '→' => out.push_str("$\\rightarrow$"),
            'Δ' => out.push_str("$\\Delta$"),
            '≥' => out.push_str("$\\geq$"),
            '≤' => out.push_str("$\\leq$"),
            '×' | '✗' => out.push_str("$\\times$"),
            'μ' | 'µ' => out.push_str("$\\mu$"),
            'λ' => out.push_str("$\\lambda$"),
            '§' => out.push_str("\\S{}"),
            '–' => out.push_str("--"),
            '—' => out.push_str("---"),
            '−' => out.push('-'),
            '‖' => out.push_str("$\\|$"),
            c if c.is_ascii() || (c.is_alphabetic() && (c as u32) < 0x180) => out.push(c),
            // Anything else: its code point, visible rather than fatal.
            c => out.push_str(&format!("[U+{:04X}]", c as u32)),
        }
    }
    out
}

/// Checks a `\label` key: it is written as it is (escaping it like text
/// would make `\ref{tab:a_b}` miss `\label{tab:a\_b}`), so it may hold only
/// characters that need no escaping in a key.
pub fn check_label(l: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || ":_-./+=,;!?@*'()".contains(c);
    match l.chars().find(|&c| !ok(c)) {
        _ if l.is_empty() => Err("--label ``: expected a key such as tab:ablation".into()),
        Some(c) => Err(format!(
            "--label `{l}`: `{c}` cannot be written in a \\label key (letters, digits and : _ - . / + = , ; ! ? @ * ' ( ) are)"
        )),
        None => Ok(()),
    }
}

impl Exporter for Latex {
    fn render(&self, r: &Report, _: &[Judged]) -> Result<String> {
        let ncols = r.row_heads.len() + r.columns.len();
        let mut out = format!(
            "% ddgsd-bench report: {}\n% needs \\usepackage{{booktabs}}\n",
            r.title.replace('\n', " ")
        );
        if self.float {
            out.push_str("\\begin{table}[htbp]\n\\centering\n");
            let caption = self.caption.clone().unwrap_or_else(|| r.title.clone());
            out.push_str(&format!("\\caption{{{}}}\n", escape(&caption)));
            if let Some(l) = &self.label {
                check_label(l).map_err(anyhow::Error::msg)?;
                out.push_str(&format!("\\label{{{l}}}\n"));
            }
        }
        out.push_str(&format!(
            "\\begin{{tabular}}{{{}}}\n\\toprule\n",
            "l".repeat(ncols)
        ));
        let head: Vec<String> = r
            .row_heads
            .iter()
            .chain(&r.columns)
            .map(|h| escape(h))
            .collect();
        out.push_str(&format!("{} \\\\\n\\midrule\n", head.join(" & ")));
        for row in &r.rows {
            let mut f: Vec<String> = row.labels.iter().map(|l| escape(l)).collect();
            for c in &row.cells {
                f.push(match c {
                    Some(c) => cell::text(c, &SYNTAX),
                    None => "--".into(),
                });
            }
            out.push_str(&format!("{} \\\\\n", f.join(" & ")));
        }
        out.push_str("\\bottomrule\n\\end{tabular}\n");
        if !r.sources.is_empty() {
            out.push_str("\\par\\smallskip\n{\\footnotesize\n");
            for (i, s) in r.sources.iter().enumerate() {
                out.push_str(&format!(
                    "\\textsuperscript{{{}}}published number (published $\\rightarrow$ measured [measured - published]): {}\\par\n",
                    i + 1,
                    escape(s)
                ));
            }
            out.push_str("}\n");
        }
        if !r.notes.is_empty() {
            out.push_str("\\par\\smallskip\n{\\footnotesize\n");
            for n in &r.notes {
                out.push_str(&format!("{}\\par\n", escape(n)));
            }
            out.push_str("}\n");
        }
        if self.float {
            out.push_str("\\end{table}\n");
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_every_special_character() {
        assert_eq!(
            super::escape(r"a_b & 5% $x# {y} ~^\"),
            r"a\_b \& 5\% \$x\# \{y\} \textasciitilde{}\textasciicircum{}\textbackslash{}"
        );
        assert_eq!(
            super::escape("76.55 → 78.53 ± 1"),
            r"76.55 $\rightarrow$ 78.53 $\pm$ 1"
        );
        assert_eq!(super::escape("ü✓"), "ü[U+2713]");
    }

    #[test]
    fn labels_are_written_as_keys() {
        assert!(super::check_label("tab:abl_cifar-100").is_ok());
        for bad in [
            "", "a b", "a%b", "a#b", "a\\b", "a{b}", "a~b", "a$b", "a&b", "a^b",
        ] {
            assert!(super::check_label(bad).is_err(), "{bad}");
        }
    }
}
