//! One cell as text, shared by markdown and LaTeX through a [`Syntax`]:
//! `published → mean ± sd (n) [measured - published]¹ Δ +d [lo, hi] p x`,
//! the mean part bold for the best arm, ✗ where a band failed.
use super::{BandMark, Cell};
use crate::gate::paired::fmt_p;

pub struct Syntax {
    pub pm: &'static str,
    pub arrow: &'static str,
    pub delta: &'static str,
    pub fail: &'static str,
    pub lt: &'static str,
    pub bold: fn(&str) -> String,
    pub sup: fn(usize) -> String,
}

pub fn text(c: &Cell, s: &Syntax) -> String {
    let mut main = format!("{:.2} {} {:.2} ({})", c.mean, s.pm, c.sd, c.n);
    if c.best {
        main = (s.bold)(&main);
    }
    let mut out = String::new();
    if let Some(p) = &c.published {
        out.push_str(&format!("{:.2} {} ", p.value, s.arrow));
    }
    out.push_str(&main);
    if let Some(p) = &c.published {
        out.push_str(&format!(" [{:+.2}]{}", p.diff, (s.sup)(p.source)));
    }
    if let Some(d) = &c.vs_baseline {
        out.push_str(&format!(" {} {:+.2}", s.delta, d.mean));
        if let (Some((lo, hi)), Some(p)) = (d.ci95, d.p_one_sided) {
            let p = fmt_p(p).replace('<', s.lt);
            out.push_str(&format!(" [{lo:+.2}, {hi:+.2}] p {p}"));
        }
    }
    match c.band {
        BandMark::Fail => out.push_str(&format!(" {}", s.fail)),
        BandMark::NoBand => out.push_str(" (no band)"),
        BandMark::Pass | BandMark::Unchecked => {}
    }
    out
}
