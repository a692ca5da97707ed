//! `data pack`: an ImageFolder tree converted once into one file that is
//! memory-mapped for reading, so training neither opens a million files
//! nor re-hashes them.
//!
//! Layout (all integers little-endian):
//! ```text
//! 0       8 bytes   magic "DDGSDPK1"
//! 8       u64       offset of the header (JSON)
//! 16      u64       length of the header
//! 24      ...       image blobs (the files), in manifest order (from a folder) or
//!                   in archive order (from the official tars)
//! index   16 bytes per image, in manifest order: u64 offset, u32 length, u32 label
//! paths   the relative paths, '\n'-separated, same order
//! header  JSON: see [`Header`]
//! ```
//! Each image is stored as its source file's bytes, unchanged, unless
//! `short_side` is set and the image's short side exceeds it: then it is
//! resized (antialiased bilinear) to that short side and re-encoded as a
//! JPEG of the given quality. Undecodable files are left out (and listed).
//! The pack is written to a temporary file and renamed into place.
//!
//! Its `fingerprint` is the ImageNet manifest fingerprint (see
//! [`super`]) over the stored bytes; `source_fingerprint` is the
//! folder's. They are equal when nothing was re-encoded.
use super::{self as imagenet, decode, resized_crop_view, sha256_hex, Manifest, Progress, Scan};
use crate::util::error::InputError;
use anyhow::{Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub const MAGIC: &[u8; 8] = b"DDGSDPK1";
pub(super) const INDEX_ENTRY: usize = 16;

/// The pack's JSON header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Always `ddgsd-bench imagenet pack`.
    pub format: String,
    pub version: u32,
    /// Manifest fingerprint of the stored bytes.
    pub fingerprint: String,
    /// Manifest fingerprint of the source folder.
    pub source_fingerprint: String,
    /// Class folder names; label = position.
    pub classes: Vec<String>,
    pub train: usize,
    pub val: usize,
    /// Relative paths skipped as undecodable.
    pub skipped: Vec<String>,
    /// Images with a longer short side were resized to this and re-encoded.
    pub short_side: Option<u32>,
    pub quality: u8,
    /// How many images were re-encoded.
    pub reencoded: usize,
    pub index_offset: u64,
    pub paths_offset: u64,
    pub paths_len: u64,
}

pub(super) const FORMAT: &str = "ddgsd-bench imagenet pack";

/// Whether `path` starts with the pack magic.
pub fn is_pack(path: &Path) -> bool {
    let mut m = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut m))
        .is_ok()
        && &m == MAGIC
}

/// A pack opened for reading.
pub struct Pack {
    file: PathBuf,
    map: memmap2::Mmap,
    header: Header,
    /// (offset, length, label) per image.
    index: Vec<(u64, u32, u32)>,
    paths: Vec<String>,
}

pub(super) fn bad(file: &Path, msg: impl Into<String>) -> anyhow::Error {
    InputError::new(file, None, msg).into()
}

impl Pack {
    pub fn open(file: &Path) -> Result<Pack> {
        let f = std::fs::File::open(file).map_err(|e| bad(file, format!("cannot read: {e}")))?;
        // SAFETY: the map is read-only; a pack is never modified in place
        // (writes go to a temporary file renamed over it).
        let map =
            unsafe { memmap2::Mmap::map(&f) }.map_err(|e| bad(file, format!("cannot map: {e}")))?;
        if map.len() < 24 || &map[..8] != MAGIC {
            return Err(bad(
                file,
                "not a ddgsd-bench pack, nor an ImageFolder directory (no DDGSDPK1 magic)",
            ));
        }
        let word = |at: usize| u64::from_le_bytes(map[at..at + 8].try_into().unwrap());
        let (ho, hl) = (word(8), word(16));
        let len = map.len() as u64;
        if ho < 24 || ho.checked_add(hl).is_none_or(|end| end > len) {
            return Err(bad(
                file,
                format!("truncated pack: header at {ho}+{hl}, file has {len} bytes"),
            ));
        }
        let header: Header = serde_json::from_slice(&map[ho as usize..(ho + hl) as usize])
            .map_err(|e| bad(file, format!("corrupt pack header: {e}")))?;
        if header.format != FORMAT || header.version != 1 {
            return Err(bad(
                file,
                format!(
                    "unsupported pack format `{}` version {}",
                    header.format, header.version
                ),
            ));
        }
        let n = header.train + header.val;
        let idx_end = header.index_offset.checked_add((n * INDEX_ENTRY) as u64);
        let paths_end = header.paths_offset.checked_add(header.paths_len);
        if idx_end.is_none_or(|e| e > ho) || paths_end.is_none_or(|e| e > ho) {
            return Err(bad(file, "corrupt pack: index or paths beyond the header"));
        }
        let io = header.index_offset as usize;
        let mut index = Vec::with_capacity(n);
        for k in 0..n {
            let e = &map[io + k * INDEX_ENTRY..io + (k + 1) * INDEX_ENTRY];
            let off = u64::from_le_bytes(e[..8].try_into().unwrap());
            let l = u32::from_le_bytes(e[8..12].try_into().unwrap());
            let label = u32::from_le_bytes(e[12..16].try_into().unwrap());
            if off < 24
                || off + u64::from(l) > header.index_offset
                || label as usize >= header.classes.len()
            {
                return Err(bad(
                    file,
                    format!("corrupt pack: index entry {k} out of range"),
                ));
            }
            index.push((off, l, label));
        }
        let p =
            &map[header.paths_offset as usize..(header.paths_offset + header.paths_len) as usize];
        let paths: Vec<String> = std::str::from_utf8(p)
            .map_err(|_| bad(file, "corrupt pack: paths are not UTF-8"))?
            .split('\n')
            .map(str::to_string)
            .collect();
        if paths.len() != n {
            return Err(bad(
                file,
                format!("corrupt pack: {} paths for {n} images", paths.len()),
            ));
        }
        let train_labels = index[..header.train].iter().map(|e| e.2);
        if let Some(w) = super::scan::class_without_training_image(&header.classes, train_labels) {
            return Err(bad(
                file,
                format!("class {w} has no training image (packed before empty classes were refused): pack the data again"),
            ));
        }
        Ok(Pack {
            file: file.to_path_buf(),
            map,
            header,
            index,
            paths,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Stored bytes of image `k` (train images first, then val).
    pub fn bytes_of(&self, k: usize) -> &[u8] {
        let (off, len, _) = self.index[k];
        &self.map[off as usize..off as usize + len as usize]
    }

    pub fn label_of(&self, k: usize) -> u32 {
        self.index[k].2
    }

    pub fn path_of(&self, k: usize) -> &str {
        &self.paths[k]
    }

    pub fn describe_resize(&self) -> String {
        match self.header.short_side {
            Some(s) => format!(
                ", short side <= {s}, {} re-encoded at quality {}",
                self.header.reencoded, self.header.quality
            ),
            None => ", files stored unchanged".into(),
        }
    }

    /// Re-hashes every stored image; the manifest fingerprint must equal
    /// the header's.
    pub fn verify(&self) -> Result<String> {
        let shas: Vec<String> = (0..self.len())
            .into_par_iter()
            .map(|k| sha256_hex(self.bytes_of(k)))
            .collect();
        let mut m = Manifest::default();
        for (k, sha) in shas.iter().enumerate() {
            m.line(&self.paths[k], sha);
        }
        let fp = m.finish();
        if fp != self.header.fingerprint {
            return Err(bad(
                &self.file,
                format!(
                    "stored images hash to {fp}, the header says {}: the pack is corrupt",
                    self.header.fingerprint
                ),
            ));
        }
        Ok(fp)
    }
}

/// Options of [`fn@write`].
#[derive(Debug, Clone, Copy)]
pub struct PackOptions {
    /// Re-encode images whose short side is longer than this (None: store
    /// every file unchanged).
    pub short_side: Option<u32>,
    /// JPEG quality of re-encoded images.
    pub quality: u8,
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            short_side: None,
            quality: 90,
        }
    }
}

/// Encodes RGB as a JPEG.
pub fn encode_jpeg(px: &[u8], w: usize, h: usize, quality: u8) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode(px, w as u32, h as u32, image::ExtendedColorType::Rgb8)
        .context("JPEG encoding failed")?;
    Ok(out)
}

/// What one source image became.
pub(super) struct Packed {
    pub(super) source_sha: String,
    pub(super) stored: Vec<u8>,
    pub(super) reencoded: bool,
}

fn pack_one(scan: &Scan, path: &str, opts: &PackOptions) -> Result<Option<Packed>> {
    let p = scan.root.join(path);
    let bytes = std::fs::read(&p).map_err(|e| bad(&p, format!("cannot read: {e}")))?;
    pack_bytes(bytes, &p.display().to_string(), opts)
}

/// Checks that `bytes` (the file shown as `shown`) decode, and re-encodes
/// them when `opts` asks; `None` (reported on stderr) when they do not
/// decode.
pub(super) fn pack_bytes(
    bytes: Vec<u8>,
    shown: &str,
    opts: &PackOptions,
) -> Result<Option<Packed>> {
    let img = match decode(&bytes) {
        Ok(img) => img,
        Err(why) => {
            eprintln!("ddgsd-bench: skipping {shown}: not a decodable image ({why})");
            return Ok(None);
        }
    };
    let source_sha = sha256_hex(&bytes);
    match opts.short_side {
        Some(s) if img.w.min(img.h) > s as usize => {
            let (oh, ow) = imagenet::short_side_size(img.h, img.w, s as usize);
            let px = resized_crop_view(&img, (0, 0, img.h, img.w), oh, ow);
            let stored = encode_jpeg(&px, ow, oh, opts.quality)
                .with_context(|| format!("{shown}: re-encoding"))?;
            Ok(Some(Packed {
                source_sha,
                stored,
                reencoded: true,
            }))
        }
        _ => Ok(Some(Packed {
            source_sha,
            stored: bytes,
            reencoded: false,
        })),
    }
}

/// Packs the ImageFolder tree `src` into `dst` (atomically).
pub fn write(src: &Path, dst: &Path, opts: PackOptions) -> Result<Header> {
    if let Some(s) = opts.short_side {
        anyhow::ensure!(s > 0, "--short-side must be positive");
    }
    anyhow::ensure!(
        (1..=100).contains(&opts.quality),
        "--quality must be in 1..=100"
    );
    let scan = imagenet::scan(src)?;
    let all: Vec<&imagenet::Entry> = scan.train.iter().chain(&scan.val).collect();
    let progress = Progress::new(&format!("packing {}", src.display()), all.len());
    let mut header = None;
    crate::util::atomic::write_with(dst, |tmp| {
        let f = std::fs::File::create(tmp)
            .with_context(|| format!("{}: cannot create", tmp.display()))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 22, f);
        w.write_all(MAGIC)?;
        w.write_all(&[0u8; 16])?;
        let mut pos = 24u64;
        let (mut src_m, mut pack_m) = (Manifest::default(), Manifest::default());
        let mut index: Vec<u8> = Vec::new();
        let mut paths: Vec<&str> = Vec::new();
        let (mut skipped, mut reencoded, mut kept) = (Vec::new(), 0usize, [0usize; 2]);
        let mut train_labels = Vec::new();
        for chunk in all.chunks(512) {
            let done: Vec<Result<Option<Packed>>> = chunk
                .par_iter()
                .map(|e| {
                    let r = pack_one(&scan, &e.path, &opts);
                    progress.tick();
                    r
                })
                .collect();
            for (e, r) in chunk.iter().zip(done) {
                let Some(p) = r? else {
                    skipped.push(e.path.clone());
                    continue;
                };
                w.write_all(&p.stored)?;
                src_m.line(&e.path, &p.source_sha);
                pack_m.line(&e.path, &sha256_hex(&p.stored));
                index.extend(pos.to_le_bytes());
                let len = u32::try_from(p.stored.len())
                    .map_err(|_| bad(&scan.root.join(&e.path), "image larger than 4 GiB"))?;
                index.extend(len.to_le_bytes());
                index.extend(e.label.to_le_bytes());
                pos += u64::from(len);
                paths.push(&e.path);
                if !e.path.starts_with("val/") {
                    train_labels.push(e.label);
                }
                reencoded += usize::from(p.reencoded);
                kept[usize::from(e.path.starts_with("val/"))] += 1;
            }
        }
        if kept[0] == 0 || kept[1] == 0 {
            return Err(bad(src, "no decodable image in train/ or in val/"));
        }
        if let Some(w) = super::scan::class_without_training_image(&scan.classes, train_labels) {
            return Err(super::scan::empty_class_error(src, w));
        }
        let index_offset = pos;
        w.write_all(&index)?;
        let paths_blob = paths.join("\n");
        let paths_offset = index_offset + index.len() as u64;
        w.write_all(paths_blob.as_bytes())?;
        let h = Header {
            format: FORMAT.into(),
            version: 1,
            fingerprint: pack_m.finish(),
            source_fingerprint: src_m.finish(),
            classes: scan.classes.clone(),
            train: kept[0],
            val: kept[1],
            skipped,
            short_side: opts.short_side,
            quality: opts.quality,
            reencoded,
            index_offset,
            paths_offset,
            paths_len: paths_blob.len() as u64,
        };
        let json = serde_json::to_vec(&h)?;
        let header_offset = paths_offset + paths_blob.len() as u64;
        w.write_all(&json)?;
        let mut f = w
            .into_inner()
            .map_err(|e| anyhow::anyhow!("{}: write failed: {}", tmp.display(), e.error()))?;
        f.seek(SeekFrom::Start(8))?;
        f.write_all(&header_offset.to_le_bytes())?;
        f.write_all(&(json.len() as u64).to_le_bytes())?;
        f.sync_all()?;
        header = Some(h);
        Ok(())
    })?;
    Ok(header.expect("set by the writer"))
}
