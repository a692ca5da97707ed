//! Writing a pack ([`super::pack`]) from images that arrive in any order
//! (the members of a tar as they stream by): blobs are appended as they
//! come, each checked and optionally re-encoded in parallel batches; the
//! index, the paths and the fingerprints are put in manifest order (train
//! then val, each sorted bytewise by path) at the end. Val images may be
//! added under their file name alone and given their class folder at the
//! end ([`PackWriter::finish`]), once every val file name is known.
use super::pack::{bad, pack_bytes, Header, PackOptions, FORMAT, MAGIC};
use super::{sha256_hex, Manifest};
use anyhow::{Context, Result};
use rayon::prelude::*;
use std::collections::HashMap;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// One stored image.
struct Item {
    /// `train/<wnid>/<file>`, or `val/<file>` until [`PackWriter::finish`].
    path: String,
    offset: u64,
    len: u32,
    source_sha: String,
    sha: String,
}

/// A pack being written to a temporary file.
pub struct PackWriter {
    file: PathBuf,
    w: std::io::BufWriter<std::fs::File>,
    pos: u64,
    opts: PackOptions,
    items: Vec<Item>,
    skipped: Vec<String>,
    reencoded: usize,
}

impl PackWriter {
    pub fn create(tmp: &Path, opts: PackOptions) -> Result<PackWriter> {
        let f = std::fs::File::create(tmp)
            .with_context(|| format!("{}: cannot create", tmp.display()))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 22, f);
        w.write_all(MAGIC)?;
        w.write_all(&[0u8; 16])?;
        Ok(PackWriter {
            file: tmp.to_path_buf(),
            w,
            pos: 24,
            opts,
            items: Vec::new(),
            skipped: Vec::new(),
            reencoded: 0,
        })
    }

    /// Images stored so far.
    pub fn stored(&self) -> usize {
        self.items.len()
    }

    /// Checks (and re-encodes when asked) a batch of `(path, bytes, shown)`
    /// in parallel and appends the decodable ones; the others are listed as
    /// skipped. `shown` names the file in messages.
    pub fn add(&mut self, batch: Vec<(String, Vec<u8>, String)>) -> Result<()> {
        let opts = self.opts;
        let done: Vec<(String, Result<Option<super::pack::Packed>>)> = batch
            .into_par_iter()
            .map(|(path, bytes, shown)| (path, pack_bytes(bytes, &shown, &opts)))
            .collect();
        for (path, r) in done {
            let Some(p) = r? else {
                self.skipped.push(path);
                continue;
            };
            let len = u32::try_from(p.stored.len())
                .map_err(|_| bad(Path::new(&path), "image larger than 4 GiB"))?;
            self.w.write_all(&p.stored)?;
            self.items.push(Item {
                sha: sha256_hex(&p.stored),
                path,
                offset: self.pos,
                len,
                source_sha: p.source_sha,
            });
            self.pos += u64::from(len);
            self.reencoded += usize::from(p.reencoded);
        }
        Ok(())
    }

    /// File names of the val images added under `val/<file>` (skipped ones
    /// included).
    pub fn val_names(&self) -> Vec<String> {
        self.items
            .iter()
            .map(|i| i.path.as_str())
            .chain(self.skipped.iter().map(String::as_str))
            .filter_map(|p| p.strip_prefix("val/"))
            .filter(|n| !n.contains('/'))
            .map(str::to_string)
            .collect()
    }

    /// Writes the index, paths and header. `classes` are the sorted wnids;
    /// `val_wnid` gives the class of each `val/<file>`. Every path must be
    /// `train/<wnid>/<file>` or `val/<wnid>/<file>` with a known wnid.
    pub fn finish(
        mut self,
        classes: Vec<String>,
        val_wnid: &HashMap<String, String>,
    ) -> Result<Header> {
        let label: HashMap<&str, u32> = classes
            .iter()
            .enumerate()
            .map(|(k, c)| (c.as_str(), k as u32))
            .collect();
        let place = |p: &mut String| {
            if let Some(name) = p.strip_prefix("val/").filter(|n| !n.contains('/')) {
                if let Some(w) = val_wnid.get(name) {
                    *p = format!("val/{w}/{name}");
                }
            }
        };
        self.items.iter_mut().for_each(|i| place(&mut i.path));
        self.skipped.iter_mut().for_each(place);
        self.items.sort_by(|a, b| {
            let va = a.path.starts_with("val/");
            (va, &a.path).cmp(&(b.path.starts_with("val/"), &b.path))
        });
        self.skipped.sort();
        let (mut src_m, mut pack_m) = (Manifest::default(), Manifest::default());
        let mut index = Vec::with_capacity(self.items.len() * 16);
        let mut kept = [0usize; 2];
        for i in &self.items {
            let wnid = i.path.split('/').nth(1).unwrap_or("");
            let l = *label
                .get(wnid)
                .ok_or_else(|| bad(Path::new(&i.path), "no class for this image"))?;
            src_m.line(&i.path, &i.source_sha);
            pack_m.line(&i.path, &i.sha);
            index.extend(i.offset.to_le_bytes());
            index.extend(i.len.to_le_bytes());
            index.extend(l.to_le_bytes());
            kept[usize::from(i.path.starts_with("val/"))] += 1;
        }
        if kept[0] == 0 || kept[1] == 0 {
            return Err(bad(&self.file, "no decodable image in train or in val"));
        }
        let train_labels = self
            .items
            .iter()
            .filter(|i| !i.path.starts_with("val/"))
            .filter_map(|i| label.get(i.path.split('/').nth(1).unwrap_or("")).copied());
        if let Some(w) = super::scan::class_without_training_image(&classes, train_labels) {
            return Err(bad(
                &self.file,
                format!("train/{w}: no decodable training image (every file of the class was skipped): an empty class"),
            ));
        }
        let index_offset = self.pos;
        self.w.write_all(&index)?;
        let paths: Vec<&str> = self.items.iter().map(|i| i.path.as_str()).collect();
        let blob = paths.join("\n");
        let paths_offset = index_offset + index.len() as u64;
        self.w.write_all(blob.as_bytes())?;
        let h = Header {
            format: FORMAT.into(),
            version: 1,
            fingerprint: pack_m.finish(),
            source_fingerprint: src_m.finish(),
            classes,
            train: kept[0],
            val: kept[1],
            skipped: self.skipped,
            short_side: self.opts.short_side,
            quality: self.opts.quality,
            reencoded: self.reencoded,
            index_offset,
            paths_offset,
            paths_len: blob.len() as u64,
        };
        let json = serde_json::to_vec(&h)?;
        let header_offset = paths_offset + blob.len() as u64;
        self.w.write_all(&json)?;
        let mut f = self
            .w
            .into_inner()
            .map_err(|e| anyhow::anyhow!("{}: write failed: {}", self.file.display(), e.error()))?;
        f.seek(SeekFrom::Start(8))?;
        f.write_all(&header_offset.to_le_bytes())?;
        f.write_all(&(json.len() as u64).to_le_bytes())?;
        f.sync_all()?;
        Ok(h)
    }
}
