//! Every reference to the method document names a section that exists:
//! `docs/method.md §N` needs a heading `## N. ...`, and a link
//! `docs/method.md#anchor` needs a heading whose GitHub anchor is `anchor`.
//! A bare `method.md` (the pre-repository name, not in the tree) is refused.
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

const SKIP_DIRS: [&str; 6] = [
    "target",
    ".venv",
    ".git",
    "results",
    "node_modules",
    ".libtorch",
];
const TEXT_EXT: [&str; 9] = ["rs", "toml", "md", "sh", "py", "yml", "yaml", "cpp", "txt"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let ty = entry.file_type().unwrap();
        if ty.is_dir() {
            if !SKIP_DIRS.contains(&name.as_str()) {
                text_files(&path, out);
            }
        } else if ty.is_file()
            && path
                .extension()
                .is_some_and(|e| TEXT_EXT.contains(&e.to_string_lossy().as_ref()))
        {
            out.push(path);
        }
    }
}

/// GitHub's anchor of a heading: lower case, spaces to '-', everything but
/// letters, digits, '-' and '_' dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

struct Sections {
    numbers: BTreeSet<u32>,
    anchors: BTreeSet<String>,
}

fn sections(doc: &str) -> Sections {
    let mut numbers = BTreeSet::new();
    let mut anchors = BTreeSet::new();
    for line in doc.lines() {
        let Some(level) = line.strip_prefix('#') else {
            continue;
        };
        let heading = level.trim_start_matches('#').trim();
        anchors.insert(anchor(heading));
        if line.starts_with("## ") {
            if let Some((n, _)) = heading.split_once(". ") {
                if let Ok(n) = n.parse() {
                    numbers.insert(n);
                }
            }
        }
    }
    Sections { numbers, anchors }
}

/// (line number, problem) for every bad reference in `text`.
fn bad_refs(text: &str, s: &Sections) -> Vec<(usize, String)> {
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(pos) = rest.find("method.md") {
            let before = &rest[..pos];
            let after = &rest[pos + "method.md".len()..];
            if !before.ends_with("docs/") {
                bad.push((
                    i + 1,
                    "a bare `method.md`: write `docs/method.md §N`".into(),
                ));
            } else if let Some(num) = after.strip_prefix(" §") {
                let digits: String = num.chars().take_while(char::is_ascii_digit).collect();
                match digits.parse::<u32>() {
                    Ok(n) if s.numbers.contains(&n) => {}
                    _ => bad.push((
                        i + 1,
                        format!("`docs/method.md §{digits}`: no such section"),
                    )),
                }
            } else if let Some(a) = after.strip_prefix('#') {
                let a: String = a
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '-' || *c == '_')
                    .collect();
                if !s.anchors.contains(&a) {
                    bad.push((i + 1, format!("`docs/method.md#{a}`: no such anchor")));
                }
            }
            rest = after;
        }
    }
    bad
}

#[test]
fn every_method_reference_names_an_existing_section() {
    let doc = fs::read_to_string(root().join("docs/method.md")).expect("docs/method.md");
    let s = sections(&doc);
    assert!(s.numbers.len() >= 7, "sections found: {:?}", s.numbers);
    let mut files = Vec::new();
    text_files(&root(), &mut files);
    let mut problems = Vec::new();
    let mut refs = 0;
    for f in &files {
        let Ok(text) = fs::read_to_string(f) else {
            continue;
        };
        refs += text.matches("docs/method.md").count();
        // This file's own strings describe the rule, not references.
        if f.ends_with("tests/method_refs.rs") {
            continue;
        }
        for (line, p) in bad_refs(&text, &s) {
            problems.push(format!(
                "{}:{line}: {p}",
                f.strip_prefix(root()).unwrap().display()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The tree does cite the document (a scan that found nothing proves nothing).
    assert!(refs >= 20, "only {refs} references found");
}

#[test]
fn the_checker_catches_bad_references() {
    let s = sections("# T\n## 1. One\n## 2. Two words\n### Presets\n");
    assert!(bad_refs("see docs/method.md §2 and docs/method.md §1.", &s).is_empty());
    assert!(bad_refs(
        "[x](docs/method.md#2-two-words) [y](docs/method.md#presets)",
        &s
    )
    .is_empty());
    assert_eq!(bad_refs("docs/method.md §3", &s).len(), 1);
    assert_eq!(bad_refs("docs/method.md §", &s).len(), 1);
    assert_eq!(bad_refs("see method.md §1", &s).len(), 1);
    assert_eq!(bad_refs("docs/method.md#three", &s).len(), 1);
}
