//! The batch files of one CIFAR layout, read into memory from an extracted
//! folder or, in one pass, from a `.tar.gz` archive (truncated and corrupt
//! archives are refused); and an archive's MD5 against the published one.
use super::variant::{all_layouts, Format, Variant};
use crate::util::error::input_err;
use anyhow::Result;
use md5::{Digest, Md5};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// What an archive's MD5 check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Md5Report {
    pub actual: String,
    /// The published MD5 when the file has an official name.
    pub expected: Option<&'static str>,
}

impl Md5Report {
    pub fn describe(&self) -> String {
        match self.expected {
            Some(e) if e == self.actual => format!("{} (matches the published MD5)", self.actual),
            Some(e) => format!("{} (DIFFERS from the published {e})", self.actual),
            None => format!(
                "{} (not an official archive name: not checked)",
                self.actual
            ),
        }
    }
}

/// MD5 of a file, as lowercase hex.
pub fn md5_file(path: &Path) -> Result<String> {
    let mut f =
        std::fs::File::open(path).map_err(|e| input_err(path, format!("cannot read: {e}")))?;
    let mut h = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| input_err(path, format!("cannot read: {e}")))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// The files of one layout, by name, and how to name them in errors.
pub(super) struct Files {
    pub(super) variant: Variant,
    pub(super) format: Format,
    /// `archive.tar.gz:folder/` or `folder/`: prefixed to file names.
    pub(super) origin: PathBuf,
    pub(super) bytes: BTreeMap<String, Vec<u8>>,
}

impl Files {
    pub(super) fn path(&self, name: &str) -> PathBuf {
        self.origin.join(name)
    }
}

/// Reads the batch files of layout (`v`, `f`) from the extracted folder `dir`.
pub(super) fn read_folder(dir: &Path, v: Variant, f: Format) -> Result<Files> {
    let (a, b) = v.files(f);
    let mut bytes = BTreeMap::new();
    for name in a.iter().chain(&b) {
        let p = dir.join(name);
        if !p.is_file() {
            return Err(input_err(
                &p,
                format!("missing batch file of the {} {}", v.title(), f.name()),
            ));
        }
        let data = std::fs::read(&p).map_err(|e| input_err(&p, format!("cannot read: {e}")))?;
        bytes.insert(name.clone(), data);
    }
    Ok(Files {
        variant: v,
        format: f,
        origin: dir.to_path_buf(),
        bytes,
    })
}

/// Reads the batch files out of a `.tar.gz` in one pass. The layout is
/// known from the folder the files lie in.
pub(super) fn read_archive(archive: &Path, variant: Option<Variant>) -> Result<Files> {
    let file = std::fs::File::open(archive)
        .map_err(|e| input_err(archive, format!("cannot read: {e}")))?;
    let corrupt =
        |e: std::io::Error| input_err(archive, format!("truncated or corrupt archive: {e}"));
    let gz = flate2::read::GzDecoder::new(std::io::BufReader::with_capacity(1 << 20, file));
    let mut tar = tar::Archive::new(gz);
    // (variant, format) -> file name -> bytes
    let mut found: BTreeMap<(usize, usize), BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    let layouts: Vec<(Variant, Format)> = all_layouts().collect();
    let mut folder_of: BTreeMap<(usize, usize), String> = BTreeMap::new();
    for entry in tar.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let p = entry.path().map_err(corrupt)?.into_owned();
        let (Some(name), Some(parent)) = (
            p.file_name().and_then(|n| n.to_str()).map(str::to_string),
            p.parent()
                .and_then(|d| d.file_name())
                .and_then(|n| n.to_str())
                .map(str::to_string),
        ) else {
            continue;
        };
        let Some(li) = layouts.iter().position(|&(v, f)| {
            v.folder_name(f) == parent && {
                let (a, b) = v.files(f);
                a.contains(&name) || b.contains(&name)
            }
        }) else {
            continue;
        };
        let li = (li / 2, li % 2);
        let size = entry.header().size().map_err(corrupt)?;
        let mut data = Vec::with_capacity(size.min(1 << 28) as usize);
        entry.read_to_end(&mut data).map_err(corrupt)?;
        if data.len() as u64 != size {
            return Err(input_err(
                archive,
                format!(
                    "truncated archive: {} ends after {} of its {size} bytes",
                    p.display(),
                    data.len()
                ),
            ));
        }
        folder_of.insert(li, p.parent().unwrap().to_string_lossy().into_owned());
        found.entry(li).or_default().insert(name, data);
    }
    // Reading to the end checks the gzip trailer (CRC and length).
    std::io::copy(&mut tar.into_inner(), &mut std::io::sink()).map_err(corrupt)?;
    let pick = found
        .iter()
        .filter(|(&(vi, _), _)| variant.is_none_or(|v| Variant::ALL[vi] == v))
        .max_by_key(|(_, files)| files.len())
        .map(|(&k, _)| k)
        .or_else(|| found.keys().next().copied());
    let Some(key) = pick else {
        return Err(input_err(
            archive,
            "no CIFAR batch files in this archive (expected cifar-10-batches-py/, cifar-10-batches-bin/, cifar-100-python/ or cifar-100-binary/)",
        ));
    };
    let (v, f) = layouts[key.0 * 2 + key.1];
    let bytes = found.remove(&key).unwrap();
    let origin = PathBuf::from(format!("{}:{}", archive.display(), folder_of[&key]));
    let files = Files {
        variant: v,
        format: f,
        origin,
        bytes,
    };
    let (a, b) = v.files(f);
    for name in a.iter().chain(&b) {
        if !files.bytes.contains_key(name) {
            return Err(input_err(
                &files.path(name),
                format!(
                    "missing batch file of the {} {} (truncated or incomplete archive?)",
                    v.title(),
                    f.name()
                ),
            ));
        }
    }
    Ok(files)
}
