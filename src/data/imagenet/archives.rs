//! ILSVRC-2012 as downloaded, packed in one streaming pass (nothing is
//! extracted): a folder holding
//! - `ILSVRC2012_img_train.tar`: a tar of one `<wnid>.tar` per class, each
//!   a tar of that class's JPEGs;
//! - `ILSVRC2012_img_val.tar`: the 50,000 val JPEGs in one flat folder;
//! - `ILSVRC2012_devkit_t12.tar.gz`: `data/meta.mat` (the synsets: each
//!   leaf's `ILSVRC2012_ID` and `WNID`) and
//!   `data/ILSVRC2012_validation_ground_truth.txt` (one ILSVRC2012 id per
//!   val image, in the order of the sorted val file names),
//!
//! read as `torchvision.datasets.ImageNet` reads them. The pack is the one
//! `data pack` makes from the same images in an ImageFolder tree
//! (`train/<wnid>/<file>`, `val/<wnid>/<file>`): same classes (sorted
//! wnids), labels, manifest and fingerprint. An archive under its official
//! name and of its official size must have its published MD5 (computed
//! while streaming; on a mismatch nothing is written); other sizes (test
//! miniatures) are read as they are. Progress with an ETA goes to stderr
//! every 10 s; the pack is written to a temporary file and renamed, so an
//! interrupted run leaves nothing half-written and is simply restarted.
use super::matfile::{self, Value};
use super::pack::{Header, PackOptions};
use super::pack_writer::PackWriter;
use crate::util::error::InputError;
use anyhow::Result;
use md5::{Digest, Md5};
use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::Path;
use std::time::Instant;

pub const TRAIN_TAR: &str = "ILSVRC2012_img_train.tar";
pub const VAL_TAR: &str = "ILSVRC2012_img_val.tar";
pub const DEVKIT: &str = "ILSVRC2012_devkit_t12.tar.gz";

/// (name, size in bytes, MD5) of the published archives.
pub const OFFICIAL: [(&str, u64, &str); 3] = [
    (
        TRAIN_TAR,
        147_897_477_120,
        "1d675b47d978889d74fa0da5fadfb00e",
    ),
    (VAL_TAR, 6_744_924_160, "29b22e2961454d5413ddabcf34fc5622"),
    (DEVKIT, 2_568_145, "fa75699e90414af021442c21a62c3abf"),
];

/// The official counts: train images, val images, classes.
pub const OFFICIAL_COUNTS: (usize, usize, usize) = (1_281_167, 50_000, 1000);

fn err(file: &Path, msg: impl Into<String>) -> anyhow::Error {
    InputError::new(file, None, msg).into()
}

/// Whether `dir` holds the official archives (the train tar at least).
pub fn is_archive_dir(dir: &Path) -> bool {
    dir.is_dir() && dir.join(TRAIN_TAR).is_file()
}

/// The published MD5 an archive must have: only for an official name at
/// the official size.
fn expected_md5(path: &Path) -> Option<&'static str> {
    let name = path.file_name()?.to_str()?;
    let size = std::fs::metadata(path).ok()?.len();
    OFFICIAL
        .iter()
        .find(|(n, s, _)| *n == name && *s == size)
        .map(|(_, _, m)| *m)
}

/// A reader that counts bytes and hashes them when asked to.
struct Tracked<R> {
    inner: R,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
    md5: Option<Md5>,
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = &mut self.md5 {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

impl<R: Read> Tracked<R> {
    /// Reads to the end and checks the MD5 (if one was expected).
    fn finish(mut self, path: &Path, expected: Option<&str>) -> Result<()> {
        std::io::copy(&mut self, &mut std::io::sink())
            .map_err(|e| err(path, format!("read failed: {e}")))?;
        if let (Some(h), Some(m)) = (self.md5, expected) {
            let got = hex::encode(h.finalize());
            if got != m {
                return Err(err(
                    path,
                    format!("has the official name and size but MD5 {got}, expected {m}: a corrupt download; nothing was written"),
                ));
            }
        }
        Ok(())
    }
}

fn open_tracked(
    path: &Path,
) -> Result<(
    Tracked<std::io::BufReader<std::fs::File>>,
    Option<&'static str>,
)> {
    let f = std::fs::File::open(path).map_err(|e| err(path, format!("cannot read: {e}")))?;
    let md5 = expected_md5(path);
    Ok((
        Tracked {
            inner: std::io::BufReader::with_capacity(1 << 20, f),
            read: Default::default(),
            md5: md5.map(|_| Md5::new()),
        },
        md5,
    ))
}

/// The devkit's val ground truth: the wnid of each val image, in the order
/// of the sorted val file names.
pub fn val_wnids(devkit: &Path) -> Result<Vec<String>> {
    let (mut r, md5) = open_tracked(devkit)?;
    let mut gz = Vec::new();
    r.read_to_end(&mut gz)
        .map_err(|e| err(devkit, format!("cannot read: {e}")))?;
    r.finish(devkit, md5)?;
    let mut meta = None;
    let mut truth = None;
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&gz[..]));
    let entries = ar
        .entries()
        .map_err(|e| err(devkit, format!("not a tar.gz: {e}")))?;
    for e in entries {
        let mut e = e.map_err(|e| err(devkit, format!("corrupt tar.gz: {e}")))?;
        let p = e
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let slot = if p.ends_with("data/meta.mat") {
            &mut meta
        } else if p.ends_with("data/ILSVRC2012_validation_ground_truth.txt") {
            &mut truth
        } else {
            continue;
        };
        let mut b = Vec::new();
        e.read_to_end(&mut b)
            .map_err(|e| err(devkit, format!("corrupt tar.gz: {e}")))?;
        *slot = Some(b);
    }
    let meta_name = devkit.join("data/meta.mat");
    let meta = meta.ok_or_else(|| err(devkit, "no data/meta.mat inside"))?;
    let truth = truth.ok_or_else(|| {
        err(
            devkit,
            "no data/ILSVRC2012_validation_ground_truth.txt inside",
        )
    })?;
    let vars = matfile::read(&meta).map_err(|e| err(&meta_name, e.to_string()))?;
    let Some(Value::Struct(synsets)) = vars.get("synsets") else {
        return Err(err(&meta_name, "no struct array `synsets`"));
    };
    let mut id_to_wnid = HashMap::new();
    for (k, s) in synsets.iter().enumerate() {
        let field = |f: &str| {
            s.get(f)
                .ok_or_else(|| err(&meta_name, format!("synsets({}) has no field `{f}`", k + 1)))
        };
        let children = field("num_children")?.num();
        let id = field("ILSVRC2012_ID")?.num();
        let wnid = field("WNID")?.str().map(str::to_string);
        match (children, id, wnid) {
            (Some(c), Some(id), Some(w)) => {
                if c == 0.0 {
                    id_to_wnid.insert(id as i64, w);
                }
            }
            _ => return Err(err(&meta_name, format!("synsets({}): expected numeric ILSVRC2012_ID and num_children and a WNID string", k + 1))),
        }
    }
    let truth_name = devkit.join("data/ILSVRC2012_validation_ground_truth.txt");
    let text = String::from_utf8(truth).map_err(|_| err(&truth_name, "not text"))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(k, l)| {
            let id: i64 = l.trim().parse().map_err(|_| {
                err(
                    &truth_name,
                    format!("line {}: expected an ILSVRC2012 id, got `{l}`", k + 1),
                )
            })?;
            id_to_wnid.get(&id).cloned().ok_or_else(|| {
                err(
                    &truth_name,
                    format!("line {}: id {id} is not a leaf synset of meta.mat", k + 1),
                )
            })
        })
        .collect()
}

/// Progress of the whole pass, on stderr every 10 s.
struct Progress {
    total: u64,
    done_before: u64,
    start: Instant,
    last: Instant,
}

impl Progress {
    fn tick(&mut self, read: u64, images: usize) {
        if self.last.elapsed().as_secs() < 10 {
            return;
        }
        self.last = Instant::now();
        let done = self.done_before + read;
        let s = self.start.elapsed().as_secs_f64();
        let eta = if done > 0 {
            s * (self.total as f64 / done as f64 - 1.0)
        } else {
            0.0
        };
        eprintln!(
            "ddgsd-bench: packing archives: {:.1} / {:.1} GiB ({:.1}%), {images} images, {:.0} MiB/s, ETA {}m{:02}s",
            done as f64 / 1073741824.0,
            self.total as f64 / 1073741824.0,
            100.0 * done as f64 / self.total.max(1) as f64,
            done as f64 / 1048576.0 / s.max(1e-3),
            (eta / 60.0) as u64,
            (eta % 60.0) as u64
        );
    }
}

const BATCH: usize = 256;

/// Packs the official archives in `dir` into `dst` (atomically).
pub fn pack(dir: &Path, dst: &Path, opts: PackOptions) -> Result<Header> {
    let paths: Vec<_> = [TRAIN_TAR, VAL_TAR, DEVKIT]
        .iter()
        .map(|n| dir.join(n))
        .collect();
    for p in &paths {
        if !p.is_file() {
            return Err(err(p, format!("missing; the official ImageNet archives are {TRAIN_TAR}, {VAL_TAR} and {DEVKIT}")));
        }
    }
    let (train_tar, val_tar, devkit) = (&paths[0], &paths[1], &paths[2]);
    let truth = val_wnids(devkit)?;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut progress = Progress {
        total: size(train_tar) + size(val_tar),
        done_before: 0,
        start: Instant::now(),
        last: Instant::now(),
    };
    let mut header = None;
    crate::util::atomic::write_with(dst, |tmp| {
        let mut w = PackWriter::create(tmp, opts)?;
        let mut classes = BTreeSet::new();
        // Train: a tar of per-class tars.
        let (r, md5) = open_tracked(train_tar)?;
        let read = r.read.clone();
        let mut outer = tar::Archive::new(r);
        let bad_tar = |e: std::io::Error| err(train_tar, format!("corrupt tar: {e}"));
        let mut batch = Vec::new();
        for e in outer.entries().map_err(bad_tar)? {
            let e = e.map_err(bad_tar)?;
            if !e.header().entry_type().is_file() {
                continue;
            }
            let name = e.path().map_err(bad_tar)?.to_string_lossy().into_owned();
            let Some(wnid) = name
                .rsplit('/')
                .next()
                .and_then(|n| n.strip_suffix(".tar"))
                .map(str::to_string)
            else {
                return Err(err(
                    train_tar,
                    format!("member `{name}` is not a <wnid>.tar"),
                ));
            };
            if !classes.insert(wnid.clone()) {
                return Err(err(train_tar, format!("class {wnid} appears twice")));
            }
            let mut n = 0;
            let mut inner = tar::Archive::new(e);
            let bad_inner = |e: std::io::Error| err(train_tar, format!("{name}: corrupt tar: {e}"));
            for f in inner.entries().map_err(bad_inner)? {
                let mut f = f.map_err(bad_inner)?;
                if !f.header().entry_type().is_file() {
                    continue;
                }
                let p = f.path().map_err(bad_inner)?.to_string_lossy().into_owned();
                let file = p.rsplit('/').next().unwrap_or("").to_string();
                if file.is_empty() || file.starts_with('.') {
                    continue;
                }
                let mut b = Vec::with_capacity(f.size() as usize);
                f.read_to_end(&mut b).map_err(bad_inner)?;
                let shown = format!("{}:{name}/{file}", train_tar.display());
                batch.push((format!("train/{wnid}/{file}"), b, shown));
                n += 1;
                if batch.len() >= BATCH {
                    w.add(std::mem::take(&mut batch))?;
                }
            }
            if n == 0 {
                return Err(err(train_tar, format!("{name}: empty class")));
            }
            w.add(std::mem::take(&mut batch))?;
            progress.tick(read.load(std::sync::atomic::Ordering::Relaxed), w.stored());
        }
        let r = outer.into_inner();
        progress.done_before = read.load(std::sync::atomic::Ordering::Relaxed);
        r.finish(train_tar, md5)?;
        // Val: one flat tar; classes come from the devkit.
        let (r, md5) = open_tracked(val_tar)?;
        let read = r.read.clone();
        let mut ar = tar::Archive::new(r);
        let bad_val = |e: std::io::Error| err(val_tar, format!("corrupt tar: {e}"));
        for e in ar.entries().map_err(bad_val)? {
            let mut e = e.map_err(bad_val)?;
            if !e.header().entry_type().is_file() {
                continue;
            }
            let p = e.path().map_err(bad_val)?.to_string_lossy().into_owned();
            let file = p.rsplit('/').next().unwrap_or("").to_string();
            if file.is_empty() || file.starts_with('.') {
                continue;
            }
            let mut b = Vec::with_capacity(e.size() as usize);
            e.read_to_end(&mut b).map_err(bad_val)?;
            batch.push((
                format!("val/{file}"),
                b,
                format!("{}:{file}", val_tar.display()),
            ));
            if batch.len() >= BATCH {
                w.add(std::mem::take(&mut batch))?;
                progress.tick(read.load(std::sync::atomic::Ordering::Relaxed), w.stored());
            }
        }
        w.add(batch)?;
        ar.into_inner().finish(val_tar, md5)?;
        let mut names = w.val_names();
        names.sort();
        if names.len() != truth.len() {
            return Err(err(
                val_tar,
                format!(
                    "holds {} images, the devkit's ground truth has {} lines",
                    names.len(),
                    truth.len()
                ),
            ));
        }
        let map: HashMap<String, String> = names.into_iter().zip(truth.iter().cloned()).collect();
        if let Some(w) = truth.iter().find(|w| !classes.contains(*w)) {
            return Err(err(
                devkit,
                format!("val class {w} is not a class of {TRAIN_TAR}"),
            ));
        }
        header = Some(w.finish(classes.into_iter().collect(), &map)?);
        Ok(())
    })?;
    Ok(header.expect("set by the writer"))
}
