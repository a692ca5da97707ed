//! Every report format's exact output on the fixed records of
//! tests/fixtures/report (both layouts, the error metric, published numbers),
//! compared with tests/golden/. `UPDATE_GOLDEN=1` rewrites the golden files;
//! otherwise any difference fails. The LaTeX is compiled with the real
//! pdflatex + booktabs where installed (SKIP with the reason otherwise).
mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const C100: &str = "tests/fixtures/report/cifar100";
const IMNET: &str = "tests/fixtures/report/imagenet";

fn report(args: &[&str]) -> String {
    let o = Command::new(bin())
        .current_dir(root())
        .arg("report")
        .args(args)
        .output()
        .unwrap();
    // The fixtures fail a band of their expected files: report exits as
    // check does (1), and says so in its verdict.
    assert_eq!(code(&o), 1, "{args:?}: {}", stderr(&o));
    stdout(&o)
}

/// (golden file, report arguments)
fn cases() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        ("ablation.md", vec![C100]),
        // Records written before NLL and ECE were logged: no value, a note.
        ("ablation_nll_old_records.md", vec![C100, "--metric", "nll"]),
        ("ablation.csv", vec![C100, "--format", "csv"]),
        ("ablation.json", vec![C100, "--format", "json"]),
        (
            "ablation.tex",
            vec![
                C100,
                "--format",
                "latex",
                "--caption",
                "Ablation on CIFAR-100 (R&D_1)",
                "--label",
                "tab:ablation",
            ],
        ),
        (
            "ablation_top5_best.md",
            vec![C100, "--metric", "top5", "--which", "best"],
        ),
        (
            "paper_error.md",
            vec!["--layout", "paper", "--metric", "error", C100, IMNET],
        ),
        (
            "paper_error.tex",
            vec![
                "--layout", "paper", "--metric", "error", "--format", "latex", C100, IMNET,
            ],
        ),
        (
            "paper_error.csv",
            vec![
                "--layout", "paper", "--metric", "error", "--format", "csv", C100, IMNET,
            ],
        ),
        (
            "paper_error.json",
            vec![
                "--layout", "paper", "--metric", "error", "--format", "json", C100, IMNET,
            ],
        ),
        (
            "paper_top1_best.md",
            vec!["--layout", "paper", "--which", "best", C100, IMNET],
        ),
        // Metrics as columns (the PS-KD README's shape), each column's best
        // by its own direction.
        (
            "paper_metrics.md",
            vec!["--layout", "paper", "--metric", "error,top5,top1", C100],
        ),
        (
            "paper_metrics.csv",
            vec![
                "--layout",
                "paper",
                "--metric",
                "error,top5",
                "--format",
                "csv",
                C100,
                IMNET,
            ],
        ),
    ]
}

#[test]
fn every_format_matches_its_golden_file() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let dir = root().join("tests/golden");
    std::fs::create_dir_all(&dir).unwrap();
    let mut diffs = Vec::new();
    for (name, args) in cases() {
        let got = report(&args);
        let path = dir.join(name);
        if update {
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
        if got != want {
            let line = got
                .lines()
                .zip(want.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(got.lines().count().min(want.lines().count()));
            diffs.push(format!(
                "{name}: first difference at line {}:\n  got:  {}\n  want: {}",
                line + 1,
                got.lines().nth(line).unwrap_or("<end>"),
                want.lines().nth(line).unwrap_or("<end>")
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "output changed (UPDATE_GOLDEN=1 to accept):\n{}",
        diffs.join("\n")
    );
}

/// Every cell's mean and per-seed values, in table order (None: empty cell).
fn cells(json: &str) -> Vec<Option<Vec<f64>>> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let mut out = Vec::new();
    for row in v["report"]["rows"].as_array().unwrap() {
        for c in row["cells"].as_array().unwrap() {
            out.push(c.get("values").and_then(|vs| vs.as_array()).map(|vs| {
                let mut xs = vec![c["mean"].as_f64().unwrap()];
                xs.extend(vs.iter().map(|x| x[1].as_f64().unwrap()));
                xs
            }));
        }
    }
    out
}

#[test]
fn error_is_100_minus_top1_in_every_cell() {
    for layout in [vec![C100], vec!["--layout", "paper", C100, IMNET]] {
        let json = |m: &str| report(&[&layout[..], &["--format", "json", "--metric", m]].concat());
        let (top1, err) = (cells(&json("top1")), cells(&json("error")));
        assert_eq!(top1.len(), err.len());
        let mut checked = 0;
        for (a, e) in top1.iter().zip(&err) {
            assert_eq!(a.is_some(), e.is_some());
            for (x, y) in a.iter().flatten().zip(e.iter().flatten()) {
                // (ImageNet's top-5 column: top-5 accuracy and 100 - top-5.)
                assert!((x + y - 100.0).abs() < 1e-9, "{x} + {y}");
                checked += 1;
            }
        }
        assert!(checked > 20);
    }
    let md = report(&["--metric", "error", C100]);
    // Published numbers turn into errors too: 76.55 → 23.45.
    assert!(md.contains("23.45 → "), "{md}");
    assert!(md.contains("top-1 error (%), final epoch"), "{md}");
}

#[test]
fn latex_compiles_with_pdflatex_and_booktabs() {
    let have = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if !have("pdflatex") {
        println!("SKIP: pdflatex not installed (ci/test.sh installs texlive-latex-base and texlive-latex-recommended)");
        return;
    }
    let booktabs = Command::new("kpsewhich").arg("booktabs.sty").output();
    if !booktabs.map(|o| o.status.success()).unwrap_or(false) {
        println!("SKIP: booktabs.sty not found by kpsewhich (texlive-latex-recommended)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut body = String::new();
    for (i, args) in [
        vec![
            C100,
            "--format",
            "latex",
            "--caption",
            "A & B: 5% of R_1 {x} ~ ^ \\ #$",
            "--label",
            "t:a",
        ],
        vec![C100, "--format", "latex"],
        vec![
            "--layout", "paper", "--metric", "error", "--format", "latex", "--float", C100, IMNET,
        ],
    ]
    .iter()
    .enumerate()
    {
        let f = format!("t{i}.tex");
        std::fs::write(tmp.path().join(&f), report(args)).unwrap();
        body.push_str(&format!("\\input{{{f}}}\n\\clearpage\n"));
    }
    let doc = format!(
        "\\documentclass{{article}}\n\\usepackage{{booktabs}}\n\\usepackage[margin=1cm,landscape]{{geometry}}\n\\begin{{document}}\n{body}\\end{{document}}\n"
    );
    std::fs::write(tmp.path().join("doc.tex"), doc).unwrap();
    let o = Command::new("pdflatex")
        .current_dir(tmp.path())
        .args(["-interaction=nonstopmode", "-halt-on-error", "doc.tex"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "pdflatex failed:\n{log}");
    assert!(Path::new(&tmp.path().join("doc.pdf")).exists());
    assert!(!log.contains("Missing character"), "{log}");
}
