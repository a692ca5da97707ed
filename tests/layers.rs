//! The layer order of `src/` (`ddgsd_bench::LAYERS`, declared in lib.rs):
//! - every top-level module is a folder `src/<name>/mod.rs`, named once in
//!   `LAYERS`;
//! - every `crate::...` path (and every `super::` path that leaves its
//!   folder) of a file under `src/<name>/` names `<name>` itself or a folder
//!   of a lower tier; folders of one tier do not use each other;
//! - each folder's `mod.rs` says which folders it uses in a `//! Uses:` line,
//!   and that line is exactly what its files use;
//! - `main.rs` uses only the top layer (`cli`).
//!
//! A failure names the file, the line and the path. The analysis runs on the
//! source text, so the unit tests at the bottom feed it made-up trees to show
//! it catches an upward import, a peer import, a stale `Uses:` line and a
//! `super::` path that climbs out of its folder.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Source text with comments, string literals and char literals blanked
/// out (newlines kept, so line numbers stay right).
fn strip(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
                out.push(' ');
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && (i == 0 || !is_ident(b[i - 1]))
        {
            // Raw string r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (1..=hashes).all(|k| b.get(j + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            for &ch in &b[i..j.min(b.len())] {
                blank(&mut out, ch);
            }
            i = j;
        } else if c == '"' {
            blank(&mut out, c);
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    blank(&mut out, b[i]);
                    i += 1;
                }
                if i < b.len() {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
            if i < b.len() {
                out.push(' ');
                i += 1;
            }
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if next == Some('\\') {
                let mut j = i + 2;
                while j < b.len() && b[j] != '\'' {
                    j += 1;
                }
                for &ch in &b[i..=j.min(b.len() - 1)] {
                    blank(&mut out, ch);
                }
                i = j + 1;
            } else if b.get(i + 2) == Some(&'\'') {
                out.push_str("   ");
                i += 3;
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// One path that reaches a top-level module: its line, the module it names
/// and the path as written (shortened).
#[derive(Debug, Clone, PartialEq)]
struct Use {
    line: usize,
    top: String,
    text: String,
}

/// The first identifier at `s[i..]` after spaces.
fn ident_at(s: &[char], mut i: usize) -> (String, usize) {
    while i < s.len() && s[i].is_whitespace() {
        i += 1;
    }
    let start = i;
    while i < s.len() && is_ident(s[i]) {
        i += 1;
    }
    (s[start..i].iter().collect(), i)
}

/// The first identifier of every item of the brace group that starts at
/// `s[i] == '{'` (nested groups inside items are skipped).
fn group_heads(s: &[char], i: usize) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut expect_head = true;
    let mut j = i;
    while j < s.len() {
        match s[j] {
            '{' => {
                depth += 1;
                if depth == 1 {
                    expect_head = true;
                }
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => expect_head = true,
            c if depth == 1 && expect_head && is_ident(c) => {
                let (id, end) = ident_at(s, j);
                heads.push(id);
                expect_head = false;
                j = end;
                continue;
            }
            _ => {}
        }
        j += 1;
    }
    heads
}

fn line_of(s: &[char], i: usize) -> usize {
    s[..i].iter().filter(|&&c| c == '\n').count() + 1
}

fn snippet(s: &[char], i: usize) -> String {
    s[i..]
        .iter()
        .take_while(|&&c| c != ';' && c != '\n' && c != '(' && c != ' ')
        .take(60)
        .collect()
}

/// Every path of `src` (the text of a file whose module path is
/// `module`, e.g. `["data", "cifar", "records"]`) that names a top-level
/// module: `crate::x`, `crate::{x, y}`, and `super::` chains that climb to
/// the crate root. `root` is `crate` for the library, `ddgsd_bench` for
/// main.rs.
fn uses(src: &str, module: &[String], root: &str) -> Vec<Use> {
    let text = strip(src);
    let s: Vec<char> = text.chars().collect();
    let mut found = Vec::new();
    let root_chars: Vec<char> = root.chars().collect();
    let mut i = 0;
    while i < s.len() {
        let starts_word = i == 0 || !is_ident(s[i - 1]) && s[i - 1] != ':';
        if starts_word && s[i..].starts_with(&root_chars) {
            let mut j = i + root_chars.len();
            if s[j..].starts_with(&[':', ':']) {
                j += 2;
                while j < s.len() && s[j].is_whitespace() {
                    j += 1;
                }
                let heads = if s.get(j) == Some(&'{') {
                    group_heads(&s, j)
                } else {
                    vec![ident_at(&s, j).0]
                };
                push(&mut found, &s, i, heads);
                i = j;
                continue;
            }
        }
        if starts_word && s[i..].starts_with(&['s', 'u', 'p', 'e', 'r', ':', ':']) {
            let mut j = i;
            let mut ups = 0;
            while s[j..].starts_with(&['s', 'u', 'p', 'e', 'r', ':', ':']) {
                ups += 1;
                j += 7;
            }
            if ups >= module.len() {
                push(&mut found, &s, i, vec![ident_at(&s, j).0]);
            }
            i = j;
            continue;
        }
        i += 1;
    }
    found
}

/// Records the path starting at `s[i]` once per top-level module it names.
fn push(found: &mut Vec<Use>, s: &[char], i: usize, tops: Vec<String>) {
    for top in tops.into_iter().filter(|t| !t.is_empty()) {
        found.push(Use {
            line: line_of(s, i),
            top,
            text: snippet(s, i),
        });
    }
}

/// The module path of a file below src/ (`data/cifar/mod.rs` -> data, cifar).
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    if last != "mod.rs" && last != "lib.rs" {
        parts.push(last.trim_end_matches(".rs").to_string());
    }
    parts
}

/// The `//! Uses:` line of a mod.rs: the folders it says it uses (`nothing
/// of the crate` is the empty set), or None without such a line.
fn declared_uses(src: &str) -> Option<BTreeSet<String>> {
    let line = src
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .find_map(|l| l.trim_start_matches("//!").trim().strip_prefix("Uses:"))?;
    let line = line.trim().trim_end_matches('.');
    if line == "nothing of the crate" {
        return Some(BTreeSet::new());
    }
    Some(line.split(',').map(|x| x.trim().to_string()).collect())
}

/// Checks a tree given as (path below src/, text) pairs against `layers`;
/// returns one message per violation.
fn check_tree(files: &BTreeMap<PathBuf, String>, layers: &[&[&str]]) -> Vec<String> {
    let mut errors = Vec::new();
    let mut tier = BTreeMap::new();
    for (t, names) in layers.iter().enumerate() {
        for n in names.iter() {
            if tier.insert(n.to_string(), t).is_some() {
                errors.push(format!("LAYERS names `{n}` twice"));
            }
        }
    }
    let lib = files.get(Path::new("lib.rs")).cloned().unwrap_or_default();
    let declared: BTreeSet<String> = strip(&lib)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';').trim().to_string())
        .collect();
    for m in &declared {
        if !tier.contains_key(m) {
            errors.push(format!(
                "src/lib.rs: module `{m}` is not in LAYERS (give it a tier)"
            ));
        }
        if !files.contains_key(&Path::new(m).join("mod.rs")) {
            errors.push(format!(
                "src/lib.rs: module `{m}` is not a folder (src/{m}/mod.rs): one folder per subsystem"
            ));
        }
    }
    for m in tier.keys() {
        if !declared.contains(m) {
            errors.push(format!("LAYERS names `{m}`, which lib.rs does not declare"));
        }
    }
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, src) in files {
        let shown = Path::new("src").join(rel).display().to_string();
        if rel == Path::new("lib.rs") {
            continue;
        }
        if rel == Path::new("main.rs") {
            for u in uses(src, &[], "ddgsd_bench") {
                if tier.get(&u.top) != Some(&0) {
                    errors.push(format!(
                        "{shown}:{}: `{}`: main.rs calls only the top layer ({}); the command line lives there",
                        u.line,
                        u.text,
                        layers.first().map(|l| l.join(", ")).unwrap_or_default()
                    ));
                }
            }
            continue;
        }
        let module = module_path(rel);
        let Some(own) = module.first().cloned() else {
            continue;
        };
        if rel.components().count() == 1 {
            errors.push(format!(
                "{shown}: a file at the top of src/ (put it in the folder of its subsystem)"
            ));
            continue;
        }
        let Some(&own_tier) = tier.get(&own) else {
            continue;
        };
        for u in uses(src, &module, "crate") {
            if u.top == own || u.top == "self" || u.top == "super" {
                continue;
            }
            match tier.get(&u.top) {
                None => errors.push(format!(
                    "{shown}:{}: `{}`: no top-level module `{}`",
                    u.line, u.text, u.top
                )),
                Some(&t) if t < own_tier => errors.push(format!(
                    "{shown}:{}: `{}`: `{own}` may not use `{}`, a layer above it (lib.rs LAYERS: a folder uses only folders below it)",
                    u.line, u.text, u.top
                )),
                Some(&t) if t == own_tier => errors.push(format!(
                    "{shown}:{}: `{}`: `{own}` and `{}` are one tier (lib.rs LAYERS): peers do not use each other",
                    u.line, u.text, u.top
                )),
                Some(_) => {
                    used.entry(own.clone()).or_default().insert(u.top.clone());
                }
            }
        }
    }
    for m in &declared {
        let Some(src) = files.get(&Path::new(m).join("mod.rs")) else {
            continue;
        };
        let actual = used.get(m).cloned().unwrap_or_default();
        match declared_uses(src) {
            None => errors.push(format!(
                "src/{m}/mod.rs: no `//! Uses: a, b, c.` line in its doc comment (it uses: {})",
                list(&actual)
            )),
            Some(said) if said != actual => errors.push(format!(
                "src/{m}/mod.rs: its `Uses:` line says {}, its files use {}",
                list(&said),
                list(&actual)
            )),
            Some(_) => {}
        }
    }
    errors
}

fn list(s: &BTreeSet<String>) -> String {
    if s.is_empty() {
        "nothing of the crate".into()
    } else {
        s.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

fn read_tree(dir: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn every_folder_uses_only_the_folders_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = read_tree(&src);
    assert!(
        files.len() > 50,
        "read {} files from {}",
        files.len(),
        src.display()
    );
    let errors = check_tree(&files, ddgsd_bench::LAYERS);
    assert!(
        errors.is_empty(),
        "{} layer violations:\n{}",
        errors.len(),
        errors.join("\n")
    );
    // The analysis saw the real dependencies (not a parser that finds nothing).
    let edges: usize = files
        .iter()
        .filter(|(rel, _)| rel.components().count() > 1)
        .map(|(rel, s)| uses(s, &module_path(rel), "crate").len())
        .sum();
    assert!(edges > 200, "only {edges} crate paths found");
}

#[cfg(test)]
mod analysis {
    use super::*;

    const LAYERS: &[&[&str]] = &[&["top"], &["mid", "peer"], &["low"]];

    fn tree(extra: &[(&str, &str)]) -> BTreeMap<PathBuf, String> {
        let mut t: BTreeMap<PathBuf, String> = [
            (
                "lib.rs",
                "pub mod top;\npub mod mid;\npub mod peer;\npub mod low;\n",
            ),
            ("main.rs", "fn main() { ddgsd_bench::top::main() }"),
            (
                "top/mod.rs",
                "//! Top.\n//!\n//! Uses: mid.\nuse crate::mid::x;\n",
            ),
            ("mid/mod.rs", "//! Mid.\n//!\n//! Uses: low.\npub mod a;\n"),
            ("mid/a.rs", "use crate::{low::y, mid::z};\nuse super::b;\n"),
            (
                "peer/mod.rs",
                "//! Peer.\n//!\n//! Uses: nothing of the crate.\n",
            ),
            (
                "low/mod.rs",
                "//! Low.\n//!\n//! Uses: nothing of the crate.\n",
            ),
        ]
        .into_iter()
        .map(|(p, s)| (PathBuf::from(p), s.to_string()))
        .collect();
        for (p, s) in extra {
            t.insert(PathBuf::from(p), s.to_string());
        }
        t
    }

    #[test]
    fn a_clean_tree_passes() {
        assert_eq!(check_tree(&tree(&[]), LAYERS), Vec::<String>::new());
    }

    #[test]
    fn an_upward_import_fails_naming_file_line_and_path() {
        let t = tree(&[("low/b.rs", "//! x\n\nuse crate::top::thing;\n")]);
        let e = check_tree(&t, LAYERS);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("src/low/b.rs:3: `crate::top::thing`: `low` may not use `top`"),
            "{}",
            e[0]
        );
    }

    #[test]
    fn grouped_and_inline_paths_count() {
        let t = tree(&[(
            "low/c.rs",
            "use crate::{util, mid::q};\nfn f() { crate::top::g(); }\n",
        )]);
        let e = check_tree(&t, LAYERS);
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].contains("no top-level module `util`"), "{}", e[0]);
        assert!(e[1].contains("may not use `mid`"), "{}", e[1]);
        assert!(e[2].starts_with("src/low/c.rs:2:"), "{}", e[2]);
    }

    #[test]
    fn peers_of_one_tier_do_not_use_each_other() {
        let t = tree(&[("peer/d.rs", "use crate::mid::a;\n")]);
        let e = check_tree(&t, LAYERS);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("are one tier"), "{}", e[0]);
    }

    #[test]
    fn super_paths_that_leave_the_folder_count() {
        // low/x/y.rs is low::x::y: super::super::super is the crate root.
        let t = tree(&[(
            "low/x/y.rs",
            "use super::super::super::top::z;\nuse super::super::w;\n",
        )]);
        let e = check_tree(&t, LAYERS);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("`low` may not use `top`"), "{}", e[0]);
    }

    #[test]
    fn comments_and_strings_are_not_imports() {
        let t = tree(&[(
            "low/e.rs",
            "//! see [`crate::top`]\n// crate::top::x\nconst S: &str = \"crate::top\";\nconst R: &str = r#\"crate::top\"#;\nconst C: char = '\"';\nfn f<'a>(x: &'a str) {}\n/* crate::top */\n",
        )]);
        assert_eq!(check_tree(&t, LAYERS), Vec::<String>::new());
    }

    #[test]
    fn a_stale_uses_line_fails() {
        let mut t = tree(&[]);
        t.insert(
            "mid/mod.rs".into(),
            "//! Mid.\n//!\n//! Uses: low, peer.\npub mod a;\n".into(),
        );
        let e = check_tree(&t, LAYERS);
        assert_eq!(
            e,
            vec!["src/mid/mod.rs: its `Uses:` line says low, peer, its files use low".to_string()]
        );
        let mut t = tree(&[]);
        t.insert("top/mod.rs".into(), "//! Top.\nuse crate::mid::x;\n".into());
        let e = check_tree(&t, LAYERS);
        assert_eq!(
            e,
            vec![
                "src/top/mod.rs: no `//! Uses: a, b, c.` line in its doc comment (it uses: mid)"
                    .to_string()
            ]
        );
    }

    #[test]
    fn modules_are_folders_named_in_layers() {
        let mut t = tree(&[("stray.rs", "")]);
        t.insert(
            "lib.rs".into(),
            "pub mod top;\npub mod mid;\npub mod peer;\npub mod low;\npub mod stray;\n".into(),
        );
        let e = check_tree(&t, LAYERS);
        assert!(
            e.iter().any(|m| m.contains("`stray` is not in LAYERS")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|m| m.contains("`stray` is not a folder")),
            "{e:?}"
        );
        let t = tree(&[("main.rs", "fn main() { ddgsd_bench::mid::run() }")]);
        let e = check_tree(&t, LAYERS);
        assert!(
            e[0].contains("main.rs calls only the top layer (top)"),
            "{e:?}"
        );
    }
}

/// The files outside `method/` (but for its unit tests) that may name a
/// particular method: none. The trainer, the benchmark, the scheduler and
/// the reports reach every method through `method::build` / `method::plan`
/// and the trait, so a new method is a file in `method/` and a line of its
/// `config.rs`.
#[test]
fn no_code_outside_method_names_a_method() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = read_tree(&src);
    let methods = [
        "cs_kd",
        "ps_kd",
        "tf_kd_reg",
        "label_smoothing",
        "ddgsd",
        "CsKd",
        "PsKd",
        "TfKdReg",
        "LabelSmoothing",
        "Ddgsd",
    ];
    let mut found = Vec::new();
    let mut scanned = 0;
    for (rel, text) in &files {
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        // method/ itself, and the suite layer, which maps [arm.NAME] fields
        // onto the DDGSD family's `[loss]` semantics (MethodConfig::Ddgsd).
        if top == "method" || top == "suite" {
            continue;
        }
        scanned += 1;
        // Code only (comments and strings blanked), before any unit tests.
        let code = strip(text);
        let code = code.split("#[cfg(test)]").next().unwrap();
        for (i, line) in code.lines().enumerate() {
            let words: Vec<&str> = line
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .collect();
            if let Some(m) = methods.iter().find(|m| words.contains(m)) {
                found.push(format!("src/{}:{}: names `{m}`", rel.display(), i + 1));
            }
        }
    }
    assert!(scanned > 40, "scanned {scanned} files");
    assert!(found.is_empty(), "{}", found.join("\n"));
}
