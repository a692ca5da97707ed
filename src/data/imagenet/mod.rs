//! ImageNet (ILSVRC-2012) as an ImageFolder tree, `train/<wnid>/*.JPEG` and
//! `val/<wnid>/*.JPEG`, or as a pack made from one by `data pack`
//! ([`pack`]). This file holds the [`Imagenet`] dataset: where its
//! bytes come from (folder or pack) and how a batch is made from them. The
//! rest lies in two files whose public names are re-exported here:
//! - [`mod@scan`]: listing the folder (classes, labels, what is
//!   an image), skipping corrupt images, and the fingerprint manifest;
//! - [`image_ops`]: the transforms (resize, crop, normalise) with
//!   their sizes in [`Transform`], over [`mod@decode`] (JPEG and PNG as
//!   Pillow decodes them) and [`pil_resize`] (Pillow's resize).
//!
//! Training views and test samples are made as [`image_ops`]
//! describes (docs/method.md §4); images are decoded, and batches built, in
//! parallel with rayon.
pub mod archives;
pub mod decode;
pub mod image_ops;
pub mod matfile;
pub mod pack;
pub mod pack_writer;
pub mod pil_resize;
pub mod scan;

use crate::data::augment::{resized_crop, Distortion};
use crate::data::pixels::PixelViews;
use crate::data::{Dataset, DatasetInfo};
use crate::util::error::input_err;
use anyhow::{anyhow, Result};
use image_ops::{mirror_into, normalisation_table, normalise_into};
use pack::Pack;
use rayon::prelude::*;
use scan::{check_folder, Checked};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::Tensor;

pub use image_ops::{
    decode, eval_view, normalised, resized_crop_view, short_side_size, Rgb, Transform, MEAN, STD,
};
pub use scan::{not_found, scan, sha256_hex, Entry, Manifest, Progress, Scan};

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
    /// The SHA-256 of each training file as the folder's check hashed it
    /// (empty for a pack, whose part fingerprints hash the stored bytes).
    train_sha: Vec<String>,
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
            train_sha,
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
            train_sha,
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
            train_sha: Vec::new(),
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

    /// One training view of sample `i`, normalised CHW, into `dst`: the u8
    /// view of [`PixelViews::pixel_view`] through the same table the device
    /// path gathers from.
    #[allow(clippy::too_many_arguments)]
    fn train_view(
        &self,
        i: usize,
        at: usize,
        seed: u64,
        epoch: u64,
        view: u8,
        distortion: Distortion,
        dst: &mut [f32],
    ) -> Result<()> {
        let s = self.transform.train_size;
        let mut hwc = vec![0u8; s * s * 3];
        self.pixel_view(i, at, seed, epoch, view, distortion, &mut hwc)?;
        normalise_into(&hwc, s, dst);
        Ok(())
    }
}

impl PixelViews for Imagenet {
    fn side(&self) -> usize {
        self.transform.train_size
    }

    fn lut(&self) -> [[f32; 256]; 3] {
        normalisation_table()
    }

    fn pixel_view(
        &self,
        i: usize,
        at: usize,
        seed: u64,
        epoch: u64,
        view: u8,
        distortion: Distortion,
        dst: &mut [u8],
    ) -> Result<()> {
        let img = self.decoded(false, i)?;
        let s = self.transform.train_size;
        let b = resized_crop(
            seed,
            epoch,
            at as u64,
            view,
            img.h as u32,
            img.w as u32,
            self.transform.scale,
            self.transform.ratio,
            distortion,
        );
        let hwc = if distortion.crops() {
            resized_crop_view(
                &img,
                (
                    b.top as usize,
                    b.left as usize,
                    b.height as usize,
                    b.width as usize,
                ),
                s,
                s,
            )
        } else {
            let resize = (s * self.transform.resize)
                .div_ceil(self.transform.crop)
                .max(s);
            eval_view(&img, resize, s)
        };
        mirror_into(&hwc, s, b.flip, dst);
        Ok(())
    }
}

impl Dataset for Imagenet {
    fn info(&self) -> &DatasetInfo {
        &self.info
    }

    fn train_eval_batch(&self, indices: &[usize]) -> Result<(Tensor, Tensor)> {
        if let Some(&i) = indices.iter().find(|&&i| i >= self.train.len()) {
            anyhow::bail!("training index {i} out of range (0..{})", self.train.len());
        }
        let c = self.transform.crop;
        let mut buf = vec![0f32; indices.len() * 3 * c * c];
        buf.par_chunks_mut(3 * c * c)
            .zip(indices.par_iter())
            .try_for_each(|(dst, &i)| -> Result<()> {
                let img = self.decoded(false, i)?;
                normalise_into(&eval_view(&img, self.transform.resize, c), c, dst);
                Ok(())
            })?;
        Ok((
            Tensor::from_slice(&buf).view([indices.len() as i64, 3, c as i64, c as i64]),
            self.train_labels(indices),
        ))
    }

    /// The manifest lines of the files `indices`: for a folder the hashes
    /// its check computed (no file read again); for a pack the stored bytes
    /// hashed, in parallel (a pass over the part).
    fn train_fingerprint(&self, indices: &[usize]) -> Result<String> {
        if let Some(&i) = indices.iter().find(|&&i| i >= self.train.len()) {
            anyhow::bail!("training index {i} out of range (0..{})", self.train.len());
        }
        let shas: Vec<String> = if self.train_sha.is_empty() {
            indices
                .par_iter()
                .map(|&i| self.with_bytes(false, i, |b| Ok(sha256_hex(b))))
                .collect::<Result<_>>()?
        } else {
            indices.iter().map(|&i| self.train_sha[i].clone()).collect()
        };
        let mut m = Manifest::default();
        for (&i, sha) in indices.iter().zip(&shas) {
            m.line(&self.train[i].path, sha);
        }
        Ok(m.finish())
    }

    fn pixel_views(&self) -> Option<&dyn PixelViews> {
        Some(self)
    }

    fn train_views(
        &self,
        images: &[usize],
        at: &[usize],
        seed: u64,
        epoch: u64,
        view: u8,
        distortion: Distortion,
    ) -> Result<Tensor> {
        let s = self.transform.train_size;
        if let Some(&i) = images.iter().find(|&&i| i >= self.train.len()) {
            anyhow::bail!("training index {i} out of range (0..{})", self.train.len());
        }
        anyhow::ensure!(
            images.len() == at.len(),
            "{} images but {} draw addresses",
            images.len(),
            at.len()
        );
        let mut buf = vec![0f32; images.len() * 3 * s * s];
        buf.par_chunks_mut(3 * s * s)
            .zip(images.par_iter().zip(at.par_iter()))
            .try_for_each(|(dst, (&i, &a))| {
                self.train_view(i, a, seed, epoch, view, distortion, dst)
            })?;
        Ok(Tensor::from_slice(&buf).view([images.len() as i64, 3, s as i64, s as i64]))
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
                normalise_into(&eval_view(&img, self.transform.resize, c), c, dst);
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
