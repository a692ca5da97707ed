//! An ImageNet ImageFolder tree, listed and checked: which files are
//! images, their classes and labels, which are skipped, and the
//! fingerprint.
//!
//! Classes are the folder names under `train/`, sorted bytewise; the label
//! of a class is its position in that list. Any number of classes works
//! (the real dataset has 1000). Every non-hidden file in a class folder is
//! an image (symbolic links are followed).
//!
//! **Corrupt images.** A file that does not decode is skipped: its path is
//! printed on stderr, it is left out of the dataset and of the fingerprint,
//! and [`DatasetInfo::skipped`](super::DatasetInfo::skipped) (hence every
//! record) carries the count. Opening a folder decodes every image once for
//! this check (`check_folder`, in parallel with rayon), so folder and pack
//! always skip the same files. An empty class folder, a missing `train/` or
//! `val/`, or a `val/` that holds loose images instead of class folders is
//! an [`InputError`](crate::util::error::InputError).
//!
//! **Fingerprint.** SHA-256 (hex) of a manifest of one line per image,
//! `<relative path>\t<SHA-256 hex of the file's bytes>\n`, where the
//! relative path is from the dataset root with `/` separators (e.g.
//! `train/n01440764/n01440764_10026.JPEG`); the lines of `train/` sorted
//! bytewise by path, then those of `val/` sorted the same way. Skipped
//! (undecodable) files are not in the manifest. Sample indices follow the
//! manifest order. A pack's fingerprint is the same manifest over the bytes
//! it stores, so a pack that stores the files unchanged has the folder's
//! fingerprint; one that re-encoded images has its own and records its
//! source's.
use super::image_ops::decode;
use crate::util::error::input_err;
use anyhow::Result;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// One image of the dataset.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Relative path (`train/<wnid>/<file>`), as in the manifest.
    pub path: String,
    pub label: u32,
}

/// An ImageFolder tree as listed, before any file is read.
#[derive(Debug, Clone)]
pub struct Scan {
    pub root: PathBuf,
    pub classes: Vec<String>,
    pub train: Vec<Entry>,
    pub val: Vec<Entry>,
}

fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

/// Sorted names of the (non-hidden) sub-folders and files of `dir`.
fn list(dir: &Path) -> Result<(Vec<String>, Vec<String>)> {
    let rd = std::fs::read_dir(dir).map_err(|e| input_err(dir, format!("cannot list: {e}")))?;
    let (mut dirs, mut files) = (Vec::new(), Vec::new());
    for e in rd {
        let e = e.map_err(|e| input_err(dir, format!("cannot list: {e}")))?;
        let name = e
            .file_name()
            .into_string()
            .map_err(|n| input_err(&dir.join(n), "file name is not UTF-8"))?;
        if is_hidden(&name) {
            continue;
        }
        // Follows symbolic links (datasets are often linked into place).
        let md = std::fs::metadata(e.path())
            .map_err(|err| input_err(&e.path(), format!("cannot read: {err}")))?;
        if md.is_dir() {
            dirs.push(name);
        } else if md.is_file() {
            files.push(name);
        }
    }
    dirs.sort();
    files.sort();
    Ok((dirs, files))
}

/// The error for a root that does not exist.
pub fn not_found(root: &Path) -> anyhow::Error {
    input_err(
        root,
        "not found; ImageNet cannot be downloaded automatically: get ILSVRC-2012 from https://image-net.org/, \
         then `ddgsd-bench data pack DIR --to FILE` with the three official archives in DIR (or an ImageFolder tree \
         train/<wnid>/*.JPEG, val/<wnid>/*.JPEG) and train from FILE",
    )
}

/// Lists an ImageFolder tree and checks its shape.
pub fn scan(root: &Path) -> Result<Scan> {
    if !root.exists() {
        return Err(not_found(root));
    }
    let layout = "ImageNet is read as train/<wnid>/*.JPEG and val/<wnid>/*.JPEG";
    let split = |name: &str, classes: Option<&[String]>| -> Result<(Vec<String>, Vec<Entry>)> {
        let dir = root.join(name);
        if !dir.is_dir() {
            return Err(input_err(&dir, format!("missing folder ({layout})")));
        }
        let (dirs, loose) = list(&dir)?;
        if dirs.is_empty() {
            let why = if loose.is_empty() {
                "no class folders".to_string()
            } else {
                format!("holds {} loose files but no class folders; sort them into {name}/<wnid>/ ({layout})", loose.len())
            };
            return Err(input_err(&dir, why));
        }
        let mut entries = Vec::new();
        for d in &dirs {
            let label = match classes {
                None => dirs.iter().position(|x| x == d).unwrap(),
                Some(cs) => cs
                    .iter()
                    .position(|x| x == d)
                    .ok_or_else(|| input_err(&dir.join(d), "class folder not in train/"))?,
            };
            let (_, files) = list(&dir.join(d))?;
            if files.is_empty() {
                return Err(input_err(&dir.join(d), "empty class folder"));
            }
            entries.extend(files.into_iter().map(|f| Entry {
                path: format!("{name}/{d}/{f}"),
                label: label as u32,
            }));
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((dirs, entries))
    };
    let (classes, train) = split("train", None)?;
    let (_, val) = split("val", Some(&classes))?;
    Ok(Scan {
        root: root.to_path_buf(),
        classes,
        train,
        val,
    })
}

/// SHA-256 (hex) of bytes.
pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// The fingerprint manifest, incrementally: add lines in order.
#[derive(Default)]
pub struct Manifest {
    h: Sha256,
}

impl Manifest {
    pub fn line(&mut self, path: &str, sha: &str) {
        self.h.update(path.as_bytes());
        self.h.update(b"\t");
        self.h.update(sha.as_bytes());
        self.h.update(b"\n");
    }
    pub fn finish(self) -> String {
        hex::encode(self.h.finalize())
    }
}

/// Progress on stderr for long scans (every 10 s, and only past 10000 items).
pub struct Progress {
    what: String,
    total: usize,
    done: AtomicUsize,
    start: std::time::Instant,
    last: std::sync::Mutex<std::time::Instant>,
}

impl Progress {
    pub fn new(what: &str, total: usize) -> Self {
        let now = std::time::Instant::now();
        Progress {
            what: what.into(),
            total,
            done: AtomicUsize::new(0),
            start: now,
            last: std::sync::Mutex::new(now),
        }
    }
    pub fn tick(&self) {
        let n = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if self.total < 10_000 || n % 1000 != 0 {
            return;
        }
        if let Ok(mut last) = self.last.try_lock() {
            if last.elapsed().as_secs() >= 10 {
                *last = std::time::Instant::now();
                let rate = n as f64 / self.start.elapsed().as_secs_f64();
                eprintln!(
                    "ddgsd-bench: {}: {n}/{} images ({rate:.0}/s)",
                    self.what, self.total
                );
            }
        }
    }
}

/// The first class without a training image among the images kept
/// (`train_labels`): a class whose every file was skipped as undecodable is
/// as empty as an empty folder, which is an error.
pub(super) fn class_without_training_image(
    classes: &[String],
    train_labels: impl IntoIterator<Item = u32>,
) -> Option<&str> {
    let mut n = vec![0usize; classes.len()];
    for l in train_labels {
        if let Some(c) = n.get_mut(l as usize) {
            *c += 1;
        }
    }
    n.iter().position(|&c| c == 0).map(|k| classes[k].as_str())
}

/// The error of [`class_without_training_image`] for a folder or archive at `root`.
pub(super) fn empty_class_error(root: &Path, wnid: &str) -> anyhow::Error {
    input_err(
        &root.join("train").join(wnid),
        "no decodable training image (every file of the class was skipped): an empty class",
    )
}

/// What [`check_folder`] found.
pub(super) struct Checked {
    pub(super) fingerprint: String,
    pub(super) train: Vec<Entry>,
    /// The SHA-256 of each training file, in `train`'s order (the lines
    /// of the manifest, kept for the fingerprint of a part of the split).
    pub(super) train_sha: Vec<String>,
    pub(super) val: Vec<Entry>,
    /// Paths skipped as undecodable (each reported on stderr).
    pub(super) skipped: Vec<String>,
}

/// Reads, hashes and test-decodes every image of a scan (in parallel).
pub(super) fn check_folder(scan: &Scan) -> Result<Checked> {
    let all: Vec<&Entry> = scan.train.iter().chain(&scan.val).collect();
    let progress = Progress::new(&format!("checking {}", scan.root.display()), all.len());
    let results: Vec<Result<Option<String>>> = all
        .par_iter()
        .map(|e| {
            let p = scan.root.join(&e.path);
            let bytes =
                std::fs::read(&p).map_err(|err| input_err(&p, format!("cannot read: {err}")))?;
            progress.tick();
            match decode(&bytes) {
                Ok(_) => Ok(Some(sha256_hex(&bytes))),
                Err(why) => {
                    eprintln!(
                        "ddgsd-bench: skipping {}: not a decodable image ({why})",
                        p.display()
                    );
                    Ok(None)
                }
            }
        })
        .collect();
    let mut m = Manifest::default();
    let (mut train, mut val, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    let mut train_sha = Vec::new();
    for (k, (e, r)) in all.iter().zip(results).enumerate() {
        match r? {
            Some(sha) => {
                m.line(&e.path, &sha);
                if k < scan.train.len() {
                    train.push((*e).clone());
                    train_sha.push(sha);
                } else {
                    val.push((*e).clone());
                }
            }
            None => skipped.push(e.path.clone()),
        }
    }
    if skipped.len() == all.len() {
        return Err(input_err(&scan.root, "no image could be decoded"));
    }
    if let Some(w) = class_without_training_image(&scan.classes, train.iter().map(|e| e.label)) {
        return Err(empty_class_error(&scan.root, w));
    }
    Ok(Checked {
        fingerprint: m.finish(),
        train,
        train_sha,
        val,
        skipped,
    })
}
