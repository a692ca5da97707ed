//! ImageNet (ILSVRC-2012) as an ImageFolder tree, `train/<wnid>/*.JPEG` and
//! `val/<wnid>/*.JPEG`, or as a pack made from one by `data pack`
//! ([`super::pack`]).
//!
//! Classes are the folder names under `train/`, sorted bytewise; the label
//! of a class is its position in that list. Any number of classes works
//! (the real dataset has 1000). Every non-hidden file in a class folder is
//! an image. JPEGs are decoded with zune-jpeg (lenient mode), in parallel
//! with rayon.
//!
//! **Corrupt images.** A file that does not decode is skipped: its path is
//! printed on stderr, it is left out of the dataset and of the fingerprint,
//! and [`DatasetInfo::skipped`] (hence every record) carries the count.
//! Opening a folder decodes every image once for this check, so folder and
//! pack always skip the same files. An empty class folder, a missing
//! `train/` or `val/`, or a `val/` that holds loose images instead of class
//! folders is an [`InputError`].
//!
//! **Transforms** (method.md §4). Training view: a random-resized-crop box
//! from [`crate::augment::resized_crop`] (scale 0.08-1, ratio 3/4-4/3, a
//! pure function of seed, epoch, sample index and view) resized to 224 x 224,
//! flipped when drawn. Views without a crop (`flip_only`, `none`) use the
//! evaluation geometry at the training size instead. Evaluation: resize the
//! short side to 256 (the long side to `floor(256 * long / short)`), centre
//! crop 224 (offset `round((side - 224) / 2)`, half to even, as
//! torchvision). Resizing is bilinear, antialiased when shrinking (PIL's
//! triangle filter with support scaled by the shrink factor), in f32 with no
//! intermediate rounding. Then `(v / 255 - mean) / std` with mean (0.485,
//! 0.456, 0.406) and std (0.229, 0.224, 0.225).
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
use super::pack::Pack;
use super::{Dataset, DatasetInfo};
use crate::augment::{resized_crop, Distortion};
use crate::error::InputError;
use anyhow::{anyhow, Result};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tch::Tensor;

pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Sizes and ranges of the transforms. Fields, so tests can use tiny images.
#[derive(Debug, Clone, PartialEq)]
pub struct Transform {
    /// Side of a training view (224).
    pub train_size: usize,
    /// Evaluation: the short side is resized to this (256) ...
    pub resize: usize,
    /// ... then a centre crop of this side is taken (224).
    pub crop: usize,
    /// Random-resized-crop area range, as fractions of the image.
    pub scale: (f64, f64),
    /// Random-resized-crop aspect-ratio range (width / height).
    pub ratio: (f64, f64),
}

impl Default for Transform {
    fn default() -> Self {
        Transform {
            train_size: 224,
            resize: 256,
            crop: 224,
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
        }
    }
}

impl Transform {
    fn check(&self) -> Result<()> {
        anyhow::ensure!(
            self.train_size > 0 && self.crop > 0 && self.resize >= self.crop,
            "bad ImageNet transform sizes {self:?}: need train_size > 0 and resize >= crop > 0"
        );
        Ok(())
    }
}

/// A decoded image: `h` rows of `w` RGB pixels, interleaved.
pub struct Rgb {
    pub w: usize,
    pub h: usize,
    pub px: Vec<u8>,
}

/// Decodes a JPEG to RGB (grey and CMYK images are converted).
pub fn decode(bytes: &[u8]) -> Result<Rgb, String> {
    use zune_jpeg::zune_core::{
        bytestream::ZCursor, colorspace::ColorSpace, options::DecoderOptions,
    };
    let run = || -> Result<Rgb, String> {
        let opts = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
        let mut d = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), opts);
        let px = d.decode().map_err(|e| e.to_string())?;
        let (w, h) = d.dimensions().ok_or("no image dimensions")?;
        if w == 0 || h == 0 || px.len() != w * h * 3 {
            return Err(format!("decoded {} bytes for {w}x{h} RGB", px.len()));
        }
        Ok(Rgb { w, h, px })
    };
    // The decoder is fuzzed, but a panic on hostile input must not end a run.
    std::panic::catch_unwind(run).unwrap_or_else(|_| Err("the decoder panicked".into()))
}

/// Filter taps of one axis: for each output sample of `from..from+count`
/// of an axis of `out_n` samples covering input `off..off+in_n`, the first
/// input index and the weights.
fn axis_taps(
    off: usize,
    in_n: usize,
    out_n: usize,
    from: usize,
    count: usize,
) -> Vec<(usize, Vec<f32>)> {
    let scale = in_n as f64 / out_n as f64;
    let support = scale.max(1.0);
    (from..from + count)
        .map(|i| {
            let centre = (i as f64 + 0.5) * scale;
            let lo = (centre - support + 0.5).floor().max(0.0) as usize;
            let hi = ((centre + support + 0.5).floor().max(0.0) as usize).min(in_n);
            let mut w: Vec<f64> = (lo..hi)
                .map(|j| (1.0 - ((j as f64 + 0.5 - centre) / support).abs()).max(0.0))
                .collect();
            let sum: f64 = w.iter().sum();
            if sum <= 0.0 {
                let j = (centre.floor() as usize).min(in_n - 1);
                return (off + j, vec![1.0]);
            }
            w.iter_mut().for_each(|x| *x /= sum);
            (off + lo, w.into_iter().map(|x| x as f32).collect())
        })
        .collect()
}

/// Crop `(top, left, h, w)` of `img`, resized to a virtual `out_h x out_w`
/// image of which the window `(y0, x0, ny, nx)` is returned, HWC f32 in
/// 0..255.
#[allow(clippy::too_many_arguments)]
pub fn resample(
    img: &Rgb,
    crop: (usize, usize, usize, usize),
    out_h: usize,
    out_w: usize,
    win: (usize, usize, usize, usize),
) -> Vec<f32> {
    let (top, left, ch, cw) = crop;
    let (y0, x0, ny, nx) = win;
    let xt = axis_taps(left, cw, out_w, x0, nx);
    let yt = axis_taps(top, ch, out_h, y0, ny);
    let rmin = yt.iter().map(|t| t.0).min().unwrap_or(0);
    let rmax = yt.iter().map(|t| t.0 + t.1.len()).max().unwrap_or(0);
    let mut tmp = vec![0f32; (rmax - rmin) * nx * 3];
    for r in rmin..rmax {
        let src = &img.px[r * img.w * 3..(r + 1) * img.w * 3];
        let dst = &mut tmp[(r - rmin) * nx * 3..(r - rmin + 1) * nx * 3];
        for (x, (start, w)) in xt.iter().enumerate() {
            let mut acc = [0f32; 3];
            for (k, &wk) in w.iter().enumerate() {
                let p = &src[(start + k) * 3..(start + k) * 3 + 3];
                acc[0] += wk * f32::from(p[0]);
                acc[1] += wk * f32::from(p[1]);
                acc[2] += wk * f32::from(p[2]);
            }
            dst[x * 3..x * 3 + 3].copy_from_slice(&acc);
        }
    }
    let mut out = vec![0f32; ny * nx * 3];
    for (y, (start, w)) in yt.iter().enumerate() {
        let row = &mut out[y * nx * 3..(y + 1) * nx * 3];
        for (k, &wk) in w.iter().enumerate() {
            let src = &tmp[(start + k - rmin) * nx * 3..(start + k - rmin + 1) * nx * 3];
            for (o, &s) in row.iter_mut().zip(src) {
                *o += wk * s;
            }
        }
    }
    out
}

/// torchvision's `Resize(short)` output size for an `h x w` image.
pub fn short_side_size(h: usize, w: usize, short: usize) -> (usize, usize) {
    if w <= h {
        (short * h / w, short)
    } else {
        (short, short * w / h)
    }
}

/// `round((n - crop) / 2)` with Python's half-to-even rounding.
fn centre_offset(n: usize, crop: usize) -> usize {
    let d = n.saturating_sub(crop);
    let k = d / 2;
    if d % 2 == 1 && k % 2 == 1 {
        k + 1
    } else {
        k
    }
}

/// The evaluation transform: resize the short side to `resize`, centre
/// crop `crop` (HWC f32).
pub fn eval_view(img: &Rgb, resize: usize, crop: usize) -> Vec<f32> {
    let (oh, ow) = short_side_size(img.h, img.w, resize);
    let win = (centre_offset(oh, crop), centre_offset(ow, crop), crop, crop);
    resample(img, (0, 0, img.h, img.w), oh, ow, win)
}

/// Writes an HWC f32 view of side `s` into `dst` (CHW), normalised and
/// optionally mirrored.
fn normalise_into(view: &[f32], s: usize, flip: bool, dst: &mut [f32]) {
    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * STD[c]));
    let shift: [f32; 3] = std::array::from_fn(|c| MEAN[c] / STD[c]);
    for y in 0..s {
        for x in 0..s {
            let sx = if flip { s - 1 - x } else { x };
            let p = &view[(y * s + sx) * 3..(y * s + sx) * 3 + 3];
            for c in 0..3 {
                dst[c * s * s + y * s + x] = p[c] * scale[c] - shift[c];
            }
        }
    }
}

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

fn input_err(file: &Path, msg: impl Into<String>) -> anyhow::Error {
    InputError::new(file, None, msg).into()
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
         arrange it as train/<wnid>/*.JPEG and val/<wnid>/*.JPEG, and optionally `ddgsd-bench data pack` it",
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

/// What [`check_folder`] found.
struct Checked {
    fingerprint: String,
    train: Vec<Entry>,
    val: Vec<Entry>,
    /// Paths skipped as undecodable (each reported on stderr).
    skipped: Vec<String>,
}

/// Reads, hashes and test-decodes every image of a scan (in parallel).
fn check_folder(scan: &Scan) -> Result<Checked> {
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
                        "ddgsd-bench: skipping {}: not a decodable JPEG ({why})",
                        p.display()
                    );
                    Ok(None)
                }
            }
        })
        .collect();
    let mut m = Manifest::default();
    let (mut train, mut val, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    for (k, (e, r)) in all.iter().zip(results).enumerate() {
        match r? {
            Some(sha) => {
                m.line(&e.path, &sha);
                if k < scan.train.len() {
                    &mut train
                } else {
                    &mut val
                }
                .push((*e).clone());
            }
            None => skipped.push(e.path.clone()),
        }
    }
    if skipped.len() == all.len() {
        return Err(input_err(&scan.root, "no image could be decoded"));
    }
    Ok(Checked {
        fingerprint: m.finish(),
        train,
        val,
        skipped,
    })
}

enum Store {
    Folder(PathBuf),
    /// The pack, and the index of each train / val sample in it.
    Pack(Arc<Pack>),
}

/// ImageNet read from a folder or a pack.
pub struct Imagenet {
    info: DatasetInfo,
    pub classes: Vec<String>,
    pub transform: Transform,
    train: Vec<Entry>,
    val: Vec<Entry>,
    store: Store,
    /// Paths skipped as undecodable.
    pub skipped: Vec<String>,
    /// For a pack: the fingerprint of the folder it was made from.
    pub source_fingerprint: Option<String>,
}

impl Imagenet {
    /// Opens an ImageFolder tree or a pack (detected).
    pub fn open(path: &Path, transform: Transform) -> Result<Imagenet> {
        transform.check()?;
        if !path.exists() {
            return Err(not_found(path));
        }
        if path.is_file() {
            return Self::from_pack(Arc::new(Pack::open(path)?), transform);
        }
        let scan = scan(path)?;
        let Checked {
            fingerprint,
            train,
            val,
            skipped,
        } = check_folder(&scan)?;
        let info = DatasetInfo {
            name: "imagenet".into(),
            fingerprint,
            classes: scan.classes.len(),
            train_len: train.len(),
            test_len: val.len(),
            input_size: transform.train_size,
            source: format!("{} (ImageFolder)", path.display()),
            skipped: skipped.len(),
        };
        Ok(Imagenet {
            info,
            classes: scan.classes,
            transform,
            train,
            val,
            store: Store::Folder(path.to_path_buf()),
            skipped,
            source_fingerprint: None,
        })
    }

    pub fn from_pack(pack: Arc<Pack>, transform: Transform) -> Result<Imagenet> {
        transform.check()?;
        let h = pack.header();
        let entries = |range: std::ops::Range<usize>| -> Vec<Entry> {
            range
                .map(|i| Entry {
                    path: pack.path_of(i).to_string(),
                    label: pack.label_of(i),
                })
                .collect()
        };
        let train = entries(0..h.train);
        let val = entries(h.train..h.train + h.val);
        let info = DatasetInfo {
            name: "imagenet".into(),
            fingerprint: h.fingerprint.clone(),
            classes: h.classes.len(),
            train_len: h.train,
            test_len: h.val,
            input_size: transform.train_size,
            source: format!("{} (pack{})", pack.file().display(), pack.describe_resize()),
            skipped: h.skipped.len(),
        };
        Ok(Imagenet {
            info,
            classes: h.classes.clone(),
            transform,
            train,
            val,
            skipped: h.skipped.clone(),
            source_fingerprint: Some(h.source_fingerprint.clone()),
            store: Store::Pack(pack),
        })
    }

    pub fn train_entries(&self) -> &[Entry] {
        &self.train
    }

    pub fn val_entries(&self) -> &[Entry] {
        &self.val
    }

    /// The bytes of sample `i` of the train (`val = false`) or val split.
    fn with_bytes<T>(&self, val: bool, i: usize, f: impl FnOnce(&[u8]) -> Result<T>) -> Result<T> {
        match &self.store {
            Store::Folder(root) => {
                let e = if val { &self.val[i] } else { &self.train[i] };
                let p = root.join(&e.path);
                let b = std::fs::read(&p)
                    .map_err(|err| input_err(&p, format!("cannot read: {err}")))?;
                f(&b)
            }
            Store::Pack(p) => f(p.bytes_of(if val { self.train.len() + i } else { i })),
        }
    }

    fn decoded(&self, val: bool, i: usize) -> Result<Rgb> {
        self.with_bytes(val, i, |b| {
            decode(b).map_err(|why| {
                let e = if val { &self.val[i] } else { &self.train[i] };
                anyhow!(
                    "{}: cannot decode {} any more ({why}); was the data changed while in use?",
                    self.info.source,
                    e.path
                )
            })
        })
    }

    /// One training view of sample `i`, normalised CHW, into `dst`.
    fn train_view(
        &self,
        i: usize,
        seed: u64,
        epoch: u64,
        view: u8,
        distortion: Distortion,
        dst: &mut [f32],
    ) -> Result<()> {
        let img = self.decoded(false, i)?;
        let s = self.transform.train_size;
        let b = resized_crop(
            seed,
            epoch,
            i as u64,
            view,
            img.h as u32,
            img.w as u32,
            self.transform.scale,
            self.transform.ratio,
            distortion,
        );
        let hwc = if distortion.crops() {
            resample(
                &img,
                (
                    b.top as usize,
                    b.left as usize,
                    b.height as usize,
                    b.width as usize,
                ),
                s,
                s,
                (0, 0, s, s),
            )
        } else {
            let resize = (s * self.transform.resize)
                .div_ceil(self.transform.crop)
                .max(s);
            eval_view(&img, resize, s)
        };
        normalise_into(&hwc, s, b.flip, dst);
        Ok(())
    }
}

impl Dataset for Imagenet {
    fn info(&self) -> &DatasetInfo {
        &self.info
    }

    fn train_batch(
        &self,
        indices: &[usize],
        seed: u64,
        epoch: u64,
        view: u8,
        distortion: Distortion,
    ) -> Result<Tensor> {
        let s = self.transform.train_size;
        if let Some(&i) = indices.iter().find(|&&i| i >= self.train.len()) {
            anyhow::bail!("training index {i} out of range (0..{})", self.train.len());
        }
        let mut buf = vec![0f32; indices.len() * 3 * s * s];
        buf.par_chunks_mut(3 * s * s)
            .zip(indices.par_iter())
            .try_for_each(|(dst, &i)| self.train_view(i, seed, epoch, view, distortion, dst))?;
        Ok(Tensor::from_slice(&buf).view([indices.len() as i64, 3, s as i64, s as i64]))
    }

    fn train_labels(&self, indices: &[usize]) -> Tensor {
        let l: Vec<i64> = indices
            .iter()
            .map(|&i| i64::from(self.train[i].label))
            .collect();
        Tensor::from_slice(&l)
    }

    fn test_batch(&self, start: usize, len: usize) -> Result<(Tensor, Tensor)> {
        let end = (start + len).min(self.val.len());
        let n = end.saturating_sub(start);
        let c = self.transform.crop;
        let mut buf = vec![0f32; n * 3 * c * c];
        buf.par_chunks_mut(3 * c * c)
            .enumerate()
            .try_for_each(|(k, dst)| -> Result<()> {
                let img = self.decoded(true, start + k)?;
                normalise_into(&eval_view(&img, self.transform.resize, c), c, false, dst);
                Ok(())
            })?;
        let labels: Vec<i64> = self.val[start..end]
            .iter()
            .map(|e| i64::from(e.label))
            .collect();
        Ok((
            Tensor::from_slice(&buf).view([n as i64, 3, c as i64, c as i64]),
            Tensor::from_slice(&labels),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: usize, h: usize) -> Rgb {
        let mut px = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                px.extend([
                    (x * 255 / (w - 1).max(1)) as u8,
                    (y * 255 / (h - 1).max(1)) as u8,
                    77,
                ]);
            }
        }
        Rgb { w, h, px }
    }

    #[test]
    fn identity_resize_is_exact_and_taps_sum_to_one() {
        let img = gradient(9, 7);
        let out = resample(&img, (0, 0, 7, 9), 7, 9, (0, 0, 7, 9));
        for (o, &p) in out.iter().zip(&img.px) {
            assert!((o - f32::from(p)).abs() < 1e-3);
        }
        for (n_in, n_out) in [(500, 224), (37, 224), (224, 224), (3, 1)] {
            for (_, w) in axis_taps(0, n_in, n_out, 0, n_out) {
                assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            }
        }
        // A constant image stays constant at any scale (antialiased or not).
        let flat = Rgb {
            w: 50,
            h: 30,
            px: vec![200; 50 * 30 * 3],
        };
        for v in resample(&flat, (3, 5, 20, 40), 13, 11, (0, 0, 13, 11)) {
            assert!((v - 200.0).abs() < 1e-3);
        }
    }

    #[test]
    fn eval_geometry_follows_torchvision() {
        assert_eq!(short_side_size(375, 500, 256), (256, 341));
        assert_eq!(short_side_size(500, 333, 256), (384, 256));
        assert_eq!(centre_offset(341, 224), 58); // round(58.5) = 58
        assert_eq!(centre_offset(343, 224), 60); // round(59.5) = 60
        assert_eq!(centre_offset(256, 224), 16);
        // Downscaling a horizontal gradient keeps it monotone and in range.
        let img = gradient(64, 48);
        let v = eval_view(&img, 32, 28);
        assert_eq!(v.len(), 28 * 28 * 3);
        for x in 1..28 {
            assert!(v[x * 3] >= v[(x - 1) * 3]);
        }
        assert!(v.iter().all(|&p| (0.0..=255.0).contains(&p)));
    }

    #[test]
    fn grey_jpegs_decode_to_rgb() {
        let grey: Vec<u8> = (0..12 * 9).map(|i| (i * 2) as u8).collect();
        let mut jpg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpg, 95)
            .encode(&grey, 12, 9, image::ExtendedColorType::L8)
            .unwrap();
        let img = decode(&jpg).unwrap();
        assert_eq!((img.w, img.h, img.px.len()), (12, 9, 12 * 9 * 3));
        assert!(img.px.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
    }

    #[test]
    fn garbage_is_not_a_jpeg() {
        assert!(decode(b"definitely not a jpeg").is_err());
        assert!(decode(&[0xff, 0xd8, 0xff]).is_err());
    }
}
