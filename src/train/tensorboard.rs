//! TensorBoard event files of a run, in its own directory, so that
//! `tensorboard --logdir results/<suite>` shows every run of the suite side
//! by side (a run per folder, named by its run id). `[runtime] tensorboard`
//! (default on) switches them; they are not part of the config hash nor of
//! the checkpoint.
//!
//! Scalars: per epoch (step = the epoch, 1-based) every number of the
//! history's entry but `epoch` and `seconds`, tagged by its prefix
//! (`test_top1` → `test/top1`, `val_nll` → `val/nll`, `train_top1` →
//! `train/top1`, anything else → `train/<name>`: `train/lr`, `train/loss`,
//! each loss term; a nested map of terms → `train/<map>/<term>`), and
//! `train/images_per_second`; per read-back (step = the global step) the
//! running mean loss of the epoch so far, `step/loss`.
//!
//! One clean series across resumes: when a run starts or resumes, the event
//! files already in its directory are read (up to any torn tail), the
//! events its checkpoint covers are kept (epochs done, steps done; one per
//! tag and step), the epochs of the checkpoint's history they lack are
//! written again from it, and the result replaces them as one new file
//! (written whole, then renamed; the old files are removed after). Its
//! first event after the file version is a `SessionLog` START at step 0, so
//! a TensorBoard that was watching drops what it held and reads the new file.
use crate::train::record::EpochLog;
use crate::train::run_state::TrainState;
use crate::util::atomic;
use crate::util::tfevents::{self, Event, SessionLog, What, FILE_VERSION, SESSION_START};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// TensorBoard reads files whose name contains `tfevents`.
pub const EVENTS_MARK: &str = "tfevents";
/// The tag of the running loss at each read-back.
pub const STEP_LOSS: &str = "step/loss";
pub const IMAGES_PER_SECOND: &str = "train/images_per_second";

/// The open event file of a run.
pub struct Curves {
    file: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
}

fn tag_of(key: &str) -> String {
    for p in ["test", "val", "train"] {
        if let Some(rest) = key.strip_prefix(p).and_then(|r| r.strip_prefix('_')) {
            return format!("{p}/{rest}");
        }
    }
    format!("train/{key}")
}

/// The per-epoch scalars of a history entry, (tag, value), tag-sorted.
pub fn epoch_scalars(log: &EpochLog) -> Vec<(String, f64)> {
    let v = serde_json::to_value(log).expect("an epoch log serialises");
    let mut out = Vec::new();
    for (k, x) in v.as_object().into_iter().flatten() {
        if k == "epoch" || k == "seconds" {
            continue;
        }
        if let Some(f) = x.as_f64() {
            out.push((tag_of(k), f));
        } else if let Some(a) = x.as_array() {
            // One curve per auxiliary head: `heads_test_top1` gives
            // `test/head1_top1` (the shallowest), `test/head2_top1`, ...
            let (scope, what) = match k.strip_prefix("heads_").and_then(|r| r.split_once('_')) {
                Some((scope, what)) => (scope.to_string(), what.to_string()),
                None => ("train".into(), k.clone()),
            };
            for (i, x2) in a.iter().enumerate() {
                if let Some(f) = x2.as_f64() {
                    out.push((format!("{scope}/head{}_{what}", i + 1), f));
                }
            }
        } else if let Some(m) = x.as_object() {
            for (k2, x2) in m {
                if let Some(f) = x2.as_f64() {
                    out.push((format!("{}/{k2}", tag_of(k)), f));
                }
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The event files of `dir`, in name order.
pub fn event_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.contains(EVENTS_MARK) && !n.starts_with('.'))
        })
        .collect();
    v.sort();
    v
}

impl Curves {
    /// Opens the event file of the run in `dir` at the position of `st`
    /// (see the module comment).
    pub fn open(dir: &Path, st: &TrainState) -> Result<Curves> {
        let old = event_files(dir);
        let epochs_done = st.history.len() as i64;
        let steps_done = st.global_step as i64;
        // (tag, step) -> (wall time, value), first occurrence kept.
        let mut points: BTreeMap<(String, i64), (f64, f32)> = BTreeMap::new();
        for f in &old {
            for e in tfevents::read_file(f)? {
                for (tag, v) in e.scalars() {
                    let covered = if tag == STEP_LOSS {
                        e.step <= steps_done
                    } else {
                        e.step <= epochs_done
                    };
                    if covered && e.step >= 0 {
                        points
                            .entry((tag.to_string(), e.step))
                            .or_insert((e.wall_time, v));
                    }
                }
            }
        }
        let t = now();
        for log in &st.history {
            for (tag, v) in epoch_scalars(log) {
                points
                    .entry((tag, i64::from(log.epoch)))
                    .or_insert((t, v as f32));
            }
        }
        let mut buf = Vec::new();
        let head = [
            Event {
                wall_time: t,
                step: 0,
                what: Some(What::FileVersion(FILE_VERSION.into())),
            },
            Event {
                wall_time: t,
                step: 0,
                what: Some(What::SessionLog(SessionLog {
                    status: SESSION_START,
                })),
            },
        ];
        for e in &head {
            tfevents::write_record(&mut buf, e)?;
        }
        let mut order: Vec<_> = points.into_iter().collect();
        order.sort_by(|a, b| (a.0 .1, &a.0 .0).cmp(&(b.0 .1, &b.0 .0)));
        for ((tag, step), (wall, v)) in order {
            tfevents::write_record(&mut buf, &Event::scalar(wall, step, &tag, f64::from(v)))?;
        }
        let path = fresh_name(dir, t);
        atomic::write(&path, &buf)?;
        for f in old {
            if f != path {
                std::fs::remove_file(&f)
                    .with_context(|| format!("{}: cannot remove", f.display()))?;
            }
        }
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("{}: cannot open", path.display()))?;
        Ok(Curves {
            file: std::io::BufWriter::new(file),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, events: &[Event]) -> Result<()> {
        for e in events {
            tfevents::write_record(&mut self.file, e)?;
        }
        self.file
            .flush()
            .with_context(|| format!("{}: cannot write", self.path.display()))
    }

    /// The running mean loss after `global_step` steps.
    pub fn read_back(&mut self, global_step: u64, loss: f64) -> Result<()> {
        self.write(&[Event::scalar(now(), global_step as i64, STEP_LOSS, loss)])
    }

    /// The scalars of a finished epoch.
    pub fn epoch(&mut self, log: &EpochLog, images_per_second: f64) -> Result<()> {
        let t = now();
        let step = i64::from(log.epoch);
        let mut evs: Vec<Event> = epoch_scalars(log)
            .into_iter()
            .map(|(tag, v)| Event::scalar(t, step, &tag, v))
            .collect();
        evs.push(Event::scalar(t, step, IMAGES_PER_SECOND, images_per_second));
        self.write(&evs)
    }
}

/// `events.out.tfevents.<unix seconds>.<pid>.ddgsd-bench`, not yet taken.
fn fresh_name(dir: &Path, t: f64) -> PathBuf {
    let pid = std::process::id();
    let mut k = 0;
    loop {
        let tail = if k == 0 {
            String::new()
        } else {
            format!(".{k}")
        };
        let p = dir.join(format!(
            "events.out.tfevents.{:010}.{pid}.ddgsd-bench{tail}",
            t as u64
        ));
        if !p.exists() {
            return p;
        }
        k += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(epoch: u32) -> EpochLog {
        EpochLog {
            epoch,
            lr: 0.1,
            loss: 2.0 / f64::from(epoch),
            terms: [("ce", 1.5), ("kl", 0.0), ("mmd", 0.25)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            train_top1: 40.0,
            test_top1: 30.0 + f64::from(epoch),
            test_top5: 80.0,
            seconds: 9.0,
            weights_sha256: None,
            test_nll: Some(1.25),
            test_ece: Some(3.5),
            val_top1: None,
            val_top5: None,
            val_nll: None,
            val_ece: None,
            heads_test_top1: None,
        }
    }

    #[test]
    fn tags_follow_the_history_fields() {
        let tags: Vec<String> = epoch_scalars(&log(1)).into_iter().map(|t| t.0).collect();
        assert_eq!(
            tags,
            [
                "test/ece",
                "test/nll",
                "test/top1",
                "test/top5",
                "train/ce",
                "train/kl",
                "train/loss",
                "train/lr",
                "train/mmd",
                "train/top1"
            ]
        );
    }

    fn state(epochs: u32, steps: u64) -> TrainState {
        let mut st = TrainState::fresh("r", "c", "f");
        st.history = (1..=epochs).map(log).collect();
        st.global_step = steps;
        st
    }

    fn series(dir: &Path) -> BTreeMap<String, Vec<i64>> {
        let mut m: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for f in event_files(dir) {
            for e in tfevents::read_file(&f).unwrap() {
                for (tag, _) in e.scalars() {
                    m.entry(tag.to_string()).or_default().push(e.step);
                }
            }
        }
        m
    }

    #[test]
    fn a_resume_keeps_what_the_checkpoint_covers_and_nothing_twice() {
        let d = tempfile::tempdir().unwrap();
        // First segment: 3 epochs of 4 steps, read back every 2 steps.
        let mut c = Curves::open(d.path(), &state(0, 0)).unwrap();
        for e in 1..=3u32 {
            for s in [2u64, 4] {
                c.read_back(u64::from(e - 1) * 4 + s, 1.0).unwrap();
            }
            c.epoch(&log(e), 100.0).unwrap();
        }
        drop(c);
        // Killed; the checkpoint is of epoch 2 (8 steps).
        let c = Curves::open(d.path(), &state(2, 8)).unwrap();
        assert_eq!(event_files(d.path()), vec![c.path().to_path_buf()]);
        let s = series(d.path());
        assert_eq!(s[STEP_LOSS], [2, 4, 6, 8]);
        assert_eq!(s["test/top1"], [1, 2]);
        assert_eq!(s[IMAGES_PER_SECOND], [1, 2], "kept from the old file");
        // A history epoch the old files lack is written again from the state.
        drop(c);
        for f in event_files(d.path()) {
            std::fs::remove_file(f).unwrap();
        }
        Curves::open(d.path(), &state(2, 8)).unwrap();
        let s = series(d.path());
        assert_eq!(s["test/top1"], [1, 2]);
        assert!(!s.contains_key(STEP_LOSS));
        // A torn tail is dropped, the rest kept; the epoch it held is
        // written again from the state.
        let mut c = Curves::open(d.path(), &state(2, 8)).unwrap();
        c.epoch(&log(3), 1.0).unwrap();
        drop(c);
        let g = event_files(d.path()).remove(0);
        let whole = std::fs::read(&g).unwrap();
        std::fs::write(&g, &whole[..whole.len() - 3]).unwrap();
        Curves::open(d.path(), &state(3, 12)).unwrap();
        let s = series(d.path());
        assert_eq!(s["test/top1"], [1, 2, 3]);
        // images/s is a timing the history does not keep: the one event
        // the torn tail held is gone (the earlier ones went with the files
        // removed above).
        assert!(!s.contains_key(IMAGES_PER_SECOND));
    }
}
