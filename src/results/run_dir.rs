//! A run directory against the config about to run: refused, naming the
//! first differing field, when it was made with another one.
use crate::suite::RunConfig;
use crate::train::CONFIG_FILE;
use crate::util::atomic;
use crate::util::error::InputError;
use anyhow::{bail, Result};
use serde_json::Value;
use std::path::Path;

/// The first JSON path where two values differ (`train.schedule.lr`).
pub fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => first_difference(u, v, &p),
                    _ => Some(p),
                }
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (u, v))| first_difference(u, v, &format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(path.to_string()),
    }
}

/// Records the config of a run about to start (after [`check_run_dir`]).
pub fn claim_run_dir(dir: &Path, cfg: &RunConfig) -> Result<()> {
    if dir.join(CONFIG_FILE).exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| InputError::new(dir, None, format!("cannot create: {e}")))?;
    atomic::write_json(&dir.join(CONFIG_FILE), cfg)
}

/// Removes the temporary files a killed holder of the run left in its
/// directory and its `checkpoint/` (the caller holds the run's lease, and
/// only the holder writes there); returns their names.
pub fn remove_leftovers(dir: &Path) -> Vec<String> {
    let mut gone = atomic::remove_leftovers(dir, true);
    let ck = crate::train::CHECKPOINT_DIR;
    gone.extend(
        atomic::remove_leftovers(&dir.join(ck), true)
            .into_iter()
            .map(|n| format!("{ck}/{n}")),
    );
    gone
}

/// Read-only: compares a run directory's stored config (if any) with the
/// one about to run and names the first differing field.
pub fn check_run_dir(dir: &Path, cfg: &RunConfig) -> Result<()> {
    let path = dir.join(CONFIG_FILE);
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| InputError::new(&path, None, format!("cannot read: {e}")))?;
        let old: Value = serde_json::from_str(&text)
            .map_err(|e| InputError::new(&path, None, format!("corrupt config: {e}")))?;
        let mut old = crate::suite::config::without_location(old);
        let new = cfg.comparable();
        // Before its teacher is bound (the suite as read), a student is
        // compared as planned; once bound, its teacher's hash too.
        if new.pointer("/teacher/checkpoint_sha256").is_none() {
            old = crate::suite::config::as_planned(old);
        }
        if let Some(e) = drift(&path, None, &old, &new) {
            bail!(e);
        }
    }
    Ok(())
}

/// The value at a field path, for messages.
pub fn value_at(v: &Value, field: &str) -> String {
    v.pointer(&pointer(field))
        .map(|v| v.to_string())
        .unwrap_or_else(|| "(absent)".into())
}

/// The refusal of a config that drifted from the one a run was made with
/// (`old`: stored, `new`: what this command would run), or `None` when they
/// agree. It names the field, and the flag when a flag sets it; it never
/// advises removing a run (a finished one is a result).
pub fn drift(path: &Path, run: Option<&str>, old: &Value, new: &Value) -> Option<InputError> {
    let field = first_difference(old, new, "")?;
    let (was, now) = (value_at(old, &field), value_at(new, &field));
    let flag = |v: &Value| v.pointer("/runtime/threads_overridden") == Some(&Value::Bool(true));
    let threads = |v: &Value| value_at(v, "runtime.threads");
    let how = match field.as_str() {
        "runtime.threads" | "runtime.threads_overridden" => {
            let made = if flag(old) {
                format!("--threads {}", threads(old))
            } else {
                format!("runtime.threads = {} of the suite, without --threads", threads(old))
            };
            let resume = if flag(old) {
                format!("give --threads {}", threads(old))
            } else {
                "leave --threads out".into()
            };
            format!("it was made with {made}: {resume} to continue it")
        }
        "runtime.device" => format!(
            "it was made with runtime.device = {was} (the suite's field or --device): give --device {} to continue it",
            was.trim_matches('"')
        ),
        "teacher.checkpoint_sha256" => "its teacher's checkpoint changed since the run began (the teacher run was trained again, or another one copied in)".into(),
        _ => "the suite file changed since".into(),
    };
    let whose = run.map(|r| format!("run `{r}` ")).unwrap_or_default();
    let field_name = match run {
        Some(r) => format!("plan.{r}.{field}"),
        None => field.clone(),
    };
    Some(InputError::new(
        path,
        Some(&field_name),
        format!(
            "{whose}was made with {was}, this command would run {now} ({how}); to run it with {now}, use another --out (what is there is kept)"
        ),
    ))
}

fn pointer(field: &str) -> String {
    let mut p = String::new();
    for part in field.split('.') {
        if let Some((name, rest)) = part.split_once('[') {
            p.push('/');
            p.push_str(name);
            for idx in rest.split('[') {
                p.push('/');
                p.push_str(idx.trim_end_matches(']'));
            }
        } else {
            p.push('/');
            p.push_str(part);
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_the_first_differing_field() {
        let a = json!({"train": {"lr": 0.1, "milestones": [1, 2]}, "seed": 0});
        let b = json!({"train": {"lr": 0.2, "milestones": [1, 2]}, "seed": 0});
        assert_eq!(first_difference(&a, &b, "").as_deref(), Some("train.lr"));
        let c = json!({"train": {"lr": 0.1, "milestones": [1, 3]}, "seed": 0});
        assert_eq!(
            first_difference(&a, &c, "").as_deref(),
            Some("train.milestones[1]")
        );
        assert_eq!(first_difference(&a, &a, ""), None);
        assert_eq!(pointer("train.milestones[1]"), "/train/milestones/1");
    }
}
