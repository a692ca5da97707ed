//! The command lines this tool prints (to resume a run, to reach a verdict)
//! and passes to its own workers: every flag that matters for the results
//! (the suite's overrides, the expected file, the share, checking) and for
//! how the workers behave (`--wait`, `--lease-timeout`), shell-quoted.
use crate::results::Loaded;
use crate::schedule::runner::RunOptions;
use crate::util::exit::NoVerdict;
use std::path::Path;

/// Quotes a word for bash.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:=,@+".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// The arguments of `run` (after the program name) that repeat this one.
pub fn run_args(suite_file: &Path, o: &RunOptions) -> Vec<String> {
    let mut a = vec![
        "run".to_string(),
        path(suite_file),
        "--out".into(),
        path(&o.out),
    ];
    if let Some(e) = &o.expected {
        a.extend(["--expected".into(), path(e)]);
    }
    if let Some(t) = o.overrides.threads {
        a.extend(["--threads".into(), t.to_string()]);
    }
    if let Some(d) = &o.overrides.device {
        a.extend(["--device".into(), d.clone()]);
    }
    if let Some(n) = o.overrides.world_size {
        a.extend(["--ranks".into(), n.to_string()]);
    }
    if !o.check {
        a.push("--no-check".into());
    }
    if let Some(p) = o.partition {
        a.extend(["--partition".into(), format!("hash:{}/{}", p.m, p.n)]);
    }
    if let Some(w) = &o.workers {
        a.extend(["--workers".into(), w.clone()]);
    }
    if o.wait {
        a.push("--wait".into());
    }
    if o.lease_timeout != crate::schedule::lease::DEFAULT_TIMEOUT {
        a.extend([
            "--lease-timeout".into(),
            o.lease_timeout.as_secs_f64().to_string(),
        ]);
    }
    a
}

/// `ddgsd-bench ARGS...`, quoted for a shell.
pub fn line(args: &[String]) -> String {
    let words: Vec<String> = args.iter().map(|a| sh_quote(a)).collect();
    format!("ddgsd-bench {}", words.join(" "))
}

/// The command that repeats (resumes) this `run`.
pub fn run_command(suite_file: &Path, o: &RunOptions) -> String {
    line(&run_args(suite_file, o))
}

/// `ddgsd-bench check DIR [--expected FILE]`.
pub fn check_command(dir: &Path, expected: Option<&Path>) -> String {
    let mut a = vec!["check".to_string(), path(dir)];
    if let Some(e) = expected {
        a.extend(["--expected".into(), path(e)]);
    }
    line(&a)
}

/// Why a results directory has no verdict yet (planned runs without a
/// record), with the command that finishes them and the one that judges
/// it then.
pub fn unfinished(loaded: &Loaded, expected: Option<&Path>) -> NoVerdict {
    let mut parts = Vec::new();
    if !loaded.incomplete.is_empty() {
        parts.push(format!("unfinished: {}", loaded.incomplete.join(", ")));
    }
    if !loaded.never_begun.is_empty() {
        parts.push(format!("never begun: {}", loaded.never_begun.join(", ")));
    }
    let out = loaded
        .dir
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| ".".into());
    let mut run = vec![
        "run".to_string(),
        loaded.meta.suite_file.clone(),
        "--out".into(),
        out,
    ];
    run.extend(loaded.meta.flags());
    NoVerdict::new(
        format!(
            "{} of the {} planned runs of {} have no record ({})",
            loaded.unfinished().len(),
            loaded.planned(),
            loaded.dir.display(),
            parts.join("; ")
        ),
        format!(
            "`{}` finishes them, then `{}`",
            line(&run),
            check_command(&loaded.dir, expected)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::runner::RunOptions;
    use crate::suite::partition::Partition;
    use std::time::Duration;

    #[test]
    fn every_flag_that_matters_is_repeated() {
        let mut o = RunOptions::new("res dir".into());
        assert_eq!(
            run_command(Path::new("suites/s.toml"), &o),
            "ddgsd-bench run suites/s.toml --out 'res dir'"
        );
        o.expected = Some("e/x.toml".into());
        o.overrides.threads = Some(4);
        o.overrides.device = Some("cpu".into());
        o.check = false;
        o.partition = Some(Partition { m: 2, n: 3 });
        o.workers = Some("cpu,cuda:1".into());
        o.wait = true;
        o.lease_timeout = Duration::from_secs(30);
        assert_eq!(
            run_command(Path::new("s.toml"), &o),
            "ddgsd-bench run s.toml --out 'res dir' --expected e/x.toml --threads 4 --device cpu --no-check --partition hash:2/3 --workers cpu,cuda:1 --wait --lease-timeout 30"
        );
        assert_eq!(
            check_command(Path::new("r/s"), Some(Path::new("it's.toml"))),
            r"ddgsd-bench check r/s --expected 'it'\''s.toml'"
        );
    }
}
