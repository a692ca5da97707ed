//! Runs that depend on runs: the teacher of an arm whose method distils
//! from a trained network (TF-KD-self), resolved per run, the order in
//! which a suite's runs train (every run after the runs it needs), and the
//! share key that keeps a student in its teacher's `--partition` share.
//!
//! A teacher is either a run of the same suite (by default the `baseline`
//! run of the student's architecture and seed; `teacher = "ARM"` names
//! another arm), or a model from outside the suite: a finished run
//! directory (`teacher = { dir = "..." }`) or a model file
//! (`teacher = { model = "..." }`). Its checkpoint hash is part of the
//! student's config: known when the suite is read for an outside teacher,
//! bound when the student starts for a run of the suite.
use super::config::run_id;
use super::raw::{RawArm, RawTeacher};
use crate::method::arms::ArmConfig;
use crate::model::{checkpoint, ArchSpec};
use crate::util::error::field_err;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The teacher of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Teacher {
    /// The teacher's run id, when it is a run of this suite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// The teacher's model file, when it comes from outside the suite (not
    /// compared between runs: the hash says what the teacher is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// SHA-256 of the teacher's tensors (`model::checkpoint::tensors_sha256`,
    /// the `checkpoint_sha256` of its record); for a run of the suite,
    /// bound when the student starts, after the teacher finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_sha256: Option<String>,
}

/// An arm's teacher as resolved from its `[arm.NAME] teacher` field.
#[derive(Debug, Clone, PartialEq)]
pub enum TeacherOf {
    /// The run of this arm with the student's architecture and seed.
    Arm(String),
    /// A model file and its hash.
    File { file: PathBuf, sha256: String },
}

impl TeacherOf {
    /// The teacher of the student's run on `arch` with `seed`.
    pub fn of_run(&self, arch: &ArchSpec, seed: u64) -> Teacher {
        match self {
            TeacherOf::Arm(a) => Teacher {
                run: Some(run_id(arch, a, seed)),
                file: None,
                checkpoint_sha256: None,
            },
            TeacherOf::File { file, sha256 } => Teacher {
                run: None,
                file: Some(file.clone()),
                checkpoint_sha256: Some(sha256.clone()),
            },
        }
    }
}

/// The teacher of every arm whose method distils from a trained network
/// (`[arm.NAME] teacher` as written in `defs`), by arm, and the arms in
/// training order (see [`order`]).
pub fn of_arms(
    file: &Path,
    defs: &BTreeMap<String, RawArm>,
    arms: &[ArmConfig],
    archs: &[ArchSpec],
) -> Result<(BTreeMap<String, TeacherOf>, Vec<String>)> {
    let names: Vec<String> = arms.iter().map(|a| a.name.clone()).collect();
    let mut of = BTreeMap::new();
    for arm in arms.iter().filter(|a| crate::method::plan(a).teacher) {
        let written = defs
            .get(&arm.name)
            .and_then(|d| d.teacher.as_ref())
            .map(RawTeacher::parse)
            .transpose()
            .or_else(|e| field_err(file, &format!("arm.{}.teacher", arm.name), e))?;
        let t = resolve(file, &arm.name, written.as_ref(), &names, archs)?;
        of.insert(arm.name.clone(), t);
    }
    let ordered = order(file, &names, &of)?;
    Ok((of, ordered))
}

impl crate::suite::ResolvedSuite {
    /// Whether some run waits for another run of the suite (its teacher).
    pub fn has_dependencies(&self) -> bool {
        self.runs.iter().any(|r| r.teacher_run().is_some())
    }
}

/// The arm that teaches by default.
pub const DEFAULT_TEACHER_ARM: &str = "baseline";

/// Resolves `[arm.ARM] teacher` (`raw`: as written; `None`: the default)
/// against the suite's arms. `archs`: the suite's architectures (a teacher
/// from outside the suite must be a network of each of them).
pub fn resolve(
    file: &Path,
    arm: &str,
    raw: Option<&RawTeacher>,
    arms: &[String],
    archs: &[ArchSpec],
) -> Result<TeacherOf> {
    let arch_ids: Vec<String> = archs.iter().map(|a| a.id()).collect();
    let field = format!("arm.{arm}.teacher");
    let base = file.parent().unwrap_or(Path::new(""));
    match raw {
        None | Some(RawTeacher::Arm(_)) => {
            let name = match raw {
                Some(RawTeacher::Arm(n)) => n.as_str(),
                _ => DEFAULT_TEACHER_ARM,
            };
            if !arms.iter().any(|a| a == name) {
                let how = if raw.is_none() {
                    format!("the default teacher is the `{DEFAULT_TEACHER_ARM}` run of the same architecture and seed, and `{DEFAULT_TEACHER_ARM}` is not among the suite's arms: list it in `arms`, or set {field} to another arm, {{ dir = \"<finished run directory>\" }} or {{ model = \"<model.safetensors>\" }}")
                } else {
                    format!(
                        "`{name}` is not among the suite's arms ({}): list it in `arms`",
                        arms.join(", ")
                    )
                };
                return field_err(file, &field, how);
            }
            Ok(TeacherOf::Arm(name.to_string()))
        }
        Some(RawTeacher::Dir { dir }) => {
            let d = base.join(dir);
            let rec = d.join("record.json");
            let text = std::fs::read_to_string(&rec).or_else(|e| {
                field_err(
                    file,
                    &format!("{field}.dir"),
                    format!(
                        "{}: {e}: expected a finished run directory (with record.json and model.safetensors)",
                        rec.display()
                    ),
                )
            })?;
            let v: serde_json::Value = serde_json::from_str(&text).or_else(|e| {
                field_err(
                    file,
                    &format!("{field}.dir"),
                    format!("{}: not a record: {e}", rec.display()),
                )
            })?;
            let (Some(sha), Some(arch)) = (v["checkpoint_sha256"].as_str(), v["arch"].as_str())
            else {
                return field_err(
                    file,
                    &format!("{field}.dir"),
                    format!(
                        "{}: not a record (no checkpoint_sha256 or arch)",
                        rec.display()
                    ),
                );
            };
            if !arch_ids.iter().all(|a| a == arch) {
                return field_err(
                    file,
                    &format!("{field}.dir"),
                    format!(
                        "the run in {} trained {arch}; a teacher of this suite's {} must be of the student's architecture",
                        d.display(),
                        arch_ids.join(", ")
                    ),
                );
            }
            let model = d.join(checkpoint::MODEL_FILE_NAME);
            let tensors = checkpoint::read_model(&model)?;
            fits(file, &format!("{field}.dir"), &model, &tensors, archs)?;
            let got = checkpoint::tensors_sha256(&tensors);
            if got != sha {
                return field_err(
                    file,
                    &format!("{field}.dir"),
                    format!(
                        "{} hashes to {got}, its record says {sha}: the model file changed after the run",
                        model.display()
                    ),
                );
            }
            Ok(TeacherOf::File {
                file: std::path::absolute(&model).unwrap_or(model),
                sha256: got,
            })
        }
        Some(RawTeacher::Model { model }) => {
            let m = base.join(model);
            let tensors = checkpoint::read_model(&m)?;
            fits(file, &format!("{field}.model"), &m, &tensors, archs)?;
            let got = checkpoint::tensors_sha256(&tensors);
            Ok(TeacherOf::File {
                file: std::path::absolute(&m).unwrap_or(m),
                sha256: got,
            })
        }
    }
}

/// A teacher's tensors must load into each of the suite's architectures
/// (the student's): checked when the suite is read, not after hours of
/// other runs. The classes are those of the teacher's final layer (`fc`;
/// AlexNet's `classifier.6`).
fn fits(
    file: &Path,
    field: &str,
    model: &Path,
    tensors: &[(String, tch::Tensor)],
    archs: &[ArchSpec],
) -> Result<()> {
    let classes = tensors
        .iter()
        .find(|(n, _)| n == "fc.weight" || n == "classifier.6.weight")
        .map(|(_, t)| t.size()[0]);
    for a in archs {
        let ok = classes.is_some_and(|c| crate::model::build_loaded(a, c, tensors, model).is_ok());
        if !ok {
            return field_err(
                file,
                field,
                format!(
                    "{} is not a {} (its tensors do not load into the student's architecture)",
                    model.display(),
                    a.id()
                ),
            );
        }
    }
    Ok(())
}

/// The arms in training order: every arm after the arm that teaches it, in
/// the listed order otherwise; a cycle (`a` taught by `b` taught by `a`)
/// is an error naming it.
pub fn order(
    file: &Path,
    listed: &[String],
    teachers: &BTreeMap<String, TeacherOf>,
) -> Result<Vec<String>> {
    // The arm of the suite that teaches `a`, if any.
    let teacher = |a: &str| match teachers.get(a) {
        Some(TeacherOf::Arm(t)) => Some(t),
        _ => None,
    };
    for a in listed {
        let mut chain = vec![a.clone()];
        let mut cur = a;
        while let Some(t) = teacher(cur) {
            if chain.contains(t) {
                chain.push(t.clone());
                return field_err(
                    file,
                    &format!("arm.{a}.teacher"),
                    format!(
                        "the teachers form a cycle ({}): no arm of it could ever start",
                        chain.join(" <- ")
                    ),
                );
            }
            chain.push(t.clone());
            cur = t;
        }
    }
    let mut out: Vec<String> = Vec::new();
    while out.len() < listed.len() {
        let next = listed
            .iter()
            .find(|a| !out.contains(a) && teacher(a).is_none_or(|t| out.contains(t)))
            .expect("no cycle, so some arm is ready");
        out.push(next.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn students_come_after_their_teachers_and_cycles_are_refused() {
        let f = Path::new("s.toml");
        let t: BTreeMap<String, TeacherOf> = [("self", "baseline"), ("self2", "self")]
            .iter()
            .map(|(a, b)| (a.to_string(), TeacherOf::Arm(b.to_string())))
            .collect();
        let o = order(f, &names(&["self2", "self", "ddgsd", "baseline"]), &t).unwrap();
        assert_eq!(o, names(&["ddgsd", "baseline", "self", "self2"]));
        let mut c = t.clone();
        c.insert("baseline".into(), TeacherOf::Arm("self2".into()));
        let e = order(f, &names(&["baseline", "self", "self2"]), &c)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cycle (baseline <- self2 <- self <- baseline)"),
            "{e}"
        );
        let own: BTreeMap<String, TeacherOf> =
            [("a".to_string(), TeacherOf::Arm("a".into()))].into();
        assert!(order(f, &names(&["a"]), &own).is_err());
    }

    #[test]
    fn a_missing_teacher_arm_is_named() {
        let f = Path::new("s.toml");
        let e = resolve(f, "tf", None, &names(&["tf", "ddgsd"]), &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("arm.tf.teacher") && e.contains("`baseline` is not among"),
            "{e}"
        );
        let e = resolve(
            f,
            "tf",
            Some(&RawTeacher::Arm("nope".into())),
            &names(&["tf"]),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`nope` is not among the suite's arms (tf)"),
            "{e}"
        );
        let e = resolve(
            f,
            "tf",
            Some(&RawTeacher::Dir {
                dir: "/nonexistent".into(),
            }),
            &names(&["tf"]),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("arm.tf.teacher.dir") && e.contains("finished run directory"),
            "{e}"
        );
    }
}
