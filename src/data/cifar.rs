//! CIFAR-10 and CIFAR-100 as users have them: the official "binary version"
//! and "python version", each as the downloaded archive, the extracted
//! folder, or a parent folder holding either.
//!
//! Layouts read (https://www.cs.toronto.edu/~kriz/cifar.html):
//! - CIFAR-10 binary, `cifar-10-batches-bin/`: `data_batch_1.bin` ..
//!   `data_batch_5.bin`, `test_batch.bin`; records of 1 label byte and 3072
//!   pixel bytes.
//! - CIFAR-10 python, `cifar-10-batches-py/`: `data_batch_1` .. `data_batch_5`,
//!   `test_batch`; pickled dicts with `data` (uint8 array N x 3072) and
//!   `labels` (list of ints).
//! - CIFAR-100 binary, `cifar-100-binary/`: `train.bin`, `test.bin`; records
//!   of a coarse label byte, a fine label byte and 3072 pixel bytes.
//! - CIFAR-100 python, `cifar-100-python/`: `train`, `test`; pickled dicts
//!   with `data`, `fine_labels` and `coarse_labels`.
//!
//! CIFAR-100 trains on the fine labels; the coarse ones are kept in
//! [`Cifar::train_coarse`] / [`Cifar::test_coarse`].
//!
//! **Archive checksums.** An archive whose file name is one of the four
//! official names (`cifar-10-python.tar.gz`, `cifar-10-binary.tar.gz`,
//! `cifar-100-python.tar.gz`, `cifar-100-binary.tar.gz`) must have the MD5
//! published for it, or it is refused before anything else is read. An
//! archive under any other name is read without that check (its MD5 is
//! still computed and shown by `data verify`); this is how the tests use
//! small generated archives.
//!
//! **Fingerprint** (the dataset hash in every record): SHA-256 over the
//! train split then the test split, each in the official order
//! (`data_batch_1`..`data_batch_5` then `test_batch` for CIFAR-10; `train`
//! then `test` for CIFAR-100), each sample as its (fine) label as a
//! little-endian u16 followed by its 3072 pixel bytes (1024 R, 1024 G,
//! 1024 B, row-major), see [`super::fingerprint::SampleHasher`]. The binary
//! and python versions of the same data have the same fingerprint.
use super::fingerprint::SampleHasher;
use super::pickle;
use super::small::{SmallImages, Split};
use super::DatasetInfo;
use crate::error::InputError;
use anyhow::Result;
use md5::{Digest, Md5};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

const PIXELS: usize = 3072;

/// Which CIFAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Cifar10,
    Cifar100,
}

/// Which official distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Binary,
    Python,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Binary => "binary version",
            Format::Python => "python version",
        }
    }
}

/// The published MD5 of each official archive.
pub const OFFICIAL_MD5: [(&str, &str); 4] = [
    ("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),
    ("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530"),
    (
        "cifar-100-python.tar.gz",
        "eb9058c3a382ffc7106e4002c42a8d85",
    ),
    (
        "cifar-100-binary.tar.gz",
        "03b5dce01913d631647c71ecec9e9cb8",
    ),
];

/// The page that documents both datasets.
pub const HOME: &str = "https://www.cs.toronto.edu/~kriz/cifar.html";

impl Variant {
    pub const ALL: [Variant; 2] = [Variant::Cifar10, Variant::Cifar100];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Cifar10 => "cifar10",
            Variant::Cifar100 => "cifar100",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Variant::Cifar10 => "CIFAR-10",
            Variant::Cifar100 => "CIFAR-100",
        }
    }

    pub fn parse(s: &str) -> Option<Variant> {
        match s {
            "cifar10" | "cifar-10" => Some(Variant::Cifar10),
            "cifar100" | "cifar-100" => Some(Variant::Cifar100),
            _ => None,
        }
    }

    pub fn classes(self) -> usize {
        match self {
            Variant::Cifar10 => 10,
            Variant::Cifar100 => 100,
        }
    }

    /// Per-channel mean and std (method.md §4).
    pub fn normalisation(self) -> ([f32; 3], [f32; 3]) {
        match self {
            Variant::Cifar10 => ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]),
            Variant::Cifar100 => ([0.5071, 0.4867, 0.4408], [0.2675, 0.2565, 0.2761]),
        }
    }

    /// Official split sizes.
    pub fn official_counts(self) -> (usize, usize) {
        (50_000, 10_000)
    }

    pub fn archive_name(self, f: Format) -> &'static str {
        match (self, f) {
            (Variant::Cifar10, Format::Python) => "cifar-10-python.tar.gz",
            (Variant::Cifar10, Format::Binary) => "cifar-10-binary.tar.gz",
            (Variant::Cifar100, Format::Python) => "cifar-100-python.tar.gz",
            (Variant::Cifar100, Format::Binary) => "cifar-100-binary.tar.gz",
        }
    }

    /// The folder the archive extracts to.
    pub fn folder_name(self, f: Format) -> &'static str {
        match (self, f) {
            (Variant::Cifar10, Format::Python) => "cifar-10-batches-py",
            (Variant::Cifar10, Format::Binary) => "cifar-10-batches-bin",
            (Variant::Cifar100, Format::Python) => "cifar-100-python",
            (Variant::Cifar100, Format::Binary) => "cifar-100-binary",
        }
    }

    /// Where `data fetch` downloads the python version from.
    pub fn url(self) -> String {
        format!(
            "https://www.cs.toronto.edu/~kriz/{}",
            self.archive_name(Format::Python)
        )
    }

    /// Train files then test files, in the official (fingerprint) order.
    pub fn files(self, f: Format) -> (Vec<String>, Vec<String>) {
        let ext = if f == Format::Binary { ".bin" } else { "" };
        match self {
            Variant::Cifar10 => (
                (1..=5).map(|i| format!("data_batch_{i}{ext}")).collect(),
                vec![format!("test_batch{ext}")],
            ),
            Variant::Cifar100 => (vec![format!("train{ext}")], vec![format!("test{ext}")]),
        }
    }

    /// The shell command that downloads this dataset into `dir`.
    pub fn fetch_hint(self, dir: &Path) -> String {
        let d = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        format!(
            "ddgsd-bench data fetch {} --to {}",
            self.name(),
            d.display()
        )
    }
}

/// The published MD5 of an official archive name.
pub fn official_md5(file_name: &str) -> Option<&'static str> {
    OFFICIAL_MD5
        .iter()
        .find(|(n, _)| *n == file_name)
        .map(|(_, m)| *m)
}

fn all_layouts() -> impl Iterator<Item = (Variant, Format)> {
    Variant::ALL
        .into_iter()
        .flat_map(|v| [(v, Format::Python), (v, Format::Binary)])
}

fn input_err(file: &Path, msg: impl Into<String>) -> anyhow::Error {
    InputError::new(file, None, msg).into()
}

/// The error for a path that does not exist, with how to get the data.
pub fn not_found(path: &Path, variant: Variant) -> anyhow::Error {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let official =
        all_layouts().any(|(v, f)| v.archive_name(f) == name || v.folder_name(f) == name);
    let dir = if official {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    } else {
        path.to_path_buf()
    };
    input_err(
        path,
        format!(
            "not found; download it with `{}` (or from {HOME})",
            variant.fetch_hint(&dir)
        ),
    )
}

/// Where the data lies, once found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A `.tar.gz` archive (variant and format known from its contents).
    Archive(PathBuf),
    /// An extracted folder of the given layout.
    Folder(PathBuf, Variant, Format),
}

/// The layout of an extracted folder, by its batch files.
fn folder_layout(dir: &Path) -> Option<(Variant, Format)> {
    let has = |f: &str| dir.join(f).is_file();
    if has("data_batch_1.bin") || has("test_batch.bin") {
        Some((Variant::Cifar10, Format::Binary))
    } else if has("data_batch_1") || has("test_batch") {
        Some((Variant::Cifar10, Format::Python))
    } else if has("train.bin") || has("test.bin") {
        Some((Variant::Cifar100, Format::Binary))
    } else if has("train") || has("test") {
        Some((Variant::Cifar100, Format::Python))
    } else {
        None
    }
}

/// Finds the data at `path`: an archive, an extracted folder, or a folder
/// holding either (extracted folders first, python version first). When
/// `path` does not exist but names an official archive whose extracted
/// folder lies beside it, that folder is used.
pub fn locate(path: &Path, variant: Option<Variant>) -> Result<Location> {
    let want = |v: Variant| variant.is_none_or(|w| w == v);
    if !path.exists() {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some((v, f)) = all_layouts().find(|&(v, f)| want(v) && v.archive_name(f) == name) {
            let beside = path
                .parent()
                .unwrap_or(Path::new("."))
                .join(v.folder_name(f));
            if folder_layout(&beside) == Some((v, f)) {
                return Ok(Location::Folder(beside, v, f));
            }
        }
        return Err(not_found(path, variant.unwrap_or(Variant::Cifar10)));
    }
    if path.is_file() {
        return Ok(Location::Archive(path.to_path_buf()));
    }
    if let Some((v, f)) = folder_layout(path) {
        if !want(v) {
            return Err(input_err(
                path,
                format!(
                    "holds {} ({}), not {}",
                    v.title(),
                    f.name(),
                    variant.unwrap().title()
                ),
            ));
        }
        return Ok(Location::Folder(path.to_path_buf(), v, f));
    }
    for (v, f) in all_layouts().filter(|&(v, _)| want(v)) {
        let d = path.join(v.folder_name(f));
        if folder_layout(&d) == Some((v, f)) {
            return Ok(Location::Folder(d, v, f));
        }
    }
    for (v, f) in all_layouts().filter(|&(v, _)| want(v)) {
        let a = path.join(v.archive_name(f));
        if a.is_file() {
            return Ok(Location::Archive(a));
        }
    }
    let names: Vec<String> = all_layouts()
        .filter(|&(v, _)| want(v))
        .flat_map(|(v, f)| {
            [
                v.archive_name(f).to_string(),
                format!("{}/", v.folder_name(f)),
            ]
        })
        .collect();
    let v = variant.unwrap_or(Variant::Cifar10);
    Err(input_err(
        path,
        format!(
            "no CIFAR data here: expected the batch files or one of {}; download with `{}`",
            names.join(", "),
            v.fetch_hint(path)
        ),
    ))
}

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

/// Options of [`load`].
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Compute an archive's MD5 even when its name is not official.
    pub always_md5: bool,
}

/// A CIFAR dataset read and checked.
pub struct Cifar {
    pub variant: Variant,
    pub format: Format,
    pub location: Location,
    pub md5: Option<Md5Report>,
    pub train: Split,
    pub test: Split,
    /// CIFAR-100 only: the coarse (superclass) labels.
    pub train_coarse: Option<Vec<u16>>,
    pub test_coarse: Option<Vec<u16>>,
    pub fingerprint: String,
}

impl std::fmt::Debug for Cifar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Cifar({}, {}, {} train / {} test, {})",
            self.variant.name(),
            self.format.name(),
            self.train.len(),
            self.test.len(),
            self.fingerprint
        )
    }
}

impl Cifar {
    pub fn source(&self) -> String {
        match &self.location {
            Location::Archive(p) => format!("{} ({}, archive)", p.display(), self.format.name()),
            Location::Folder(p, _, _) => {
                format!("{} ({}, extracted)", p.display(), self.format.name())
            }
        }
    }

    pub fn info(&self) -> DatasetInfo {
        DatasetInfo {
            name: self.variant.name().into(),
            fingerprint: self.fingerprint.clone(),
            classes: self.variant.classes(),
            train_len: self.train.len(),
            test_len: self.test.len(),
            input_size: 32,
            source: self.source(),
            skipped: 0,
        }
    }

    /// Whether the split sizes are the official 50000 / 10000.
    pub fn has_official_counts(&self) -> bool {
        (self.train.len(), self.test.len()) == self.variant.official_counts()
    }

    /// The in-memory dataset the trainer uses.
    pub fn into_dataset(self) -> SmallImages {
        let info = self.info();
        let (mean, std) = self.variant.normalisation();
        SmallImages::new(info, 32, self.train, self.test, mean, std)
    }
}

/// The files of one layout, by name, and how to name them in errors.
struct Files {
    variant: Variant,
    format: Format,
    /// `archive.tar.gz:folder/` or `folder/`: prefixed to file names.
    origin: PathBuf,
    bytes: BTreeMap<String, Vec<u8>>,
}

impl Files {
    fn path(&self, name: &str) -> PathBuf {
        self.origin.join(name)
    }
}

/// Reads and checks CIFAR at `path` (see [`locate`]). `variant` is the
/// dataset the caller expects (`None`: whichever is there).
pub fn load(path: &Path, variant: Option<Variant>, opts: LoadOptions) -> Result<Cifar> {
    let location = locate(path, variant)?;
    let (files, md5) = match &location {
        Location::Folder(dir, v, f) => (read_folder(dir, *v, *f)?, None),
        Location::Archive(a) => {
            let name = a.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let expected = official_md5(name);
            let md5 = if expected.is_some() || opts.always_md5 {
                let actual = md5_file(a)?;
                if let Some(e) = expected {
                    if actual != e {
                        let v = Variant::ALL
                            .into_iter()
                            .find(|v| name.starts_with(&format!("{}-", v.title().to_lowercase())))
                            .unwrap_or(Variant::Cifar10);
                        return Err(input_err(
                            a,
                            format!(
                                "MD5 {actual} differs from the published {e} for {name}: the file is corrupt or incomplete; delete it and download again with `{}`",
                                v.fetch_hint(a.parent().unwrap_or(Path::new(".")))
                            ),
                        ));
                    }
                }
                Some(Md5Report { actual, expected })
            } else {
                None
            };
            (read_archive(a, variant)?, md5)
        }
    };
    if let Some(v) = variant {
        if v != files.variant {
            return Err(input_err(
                path,
                format!("holds {}, not {}", files.variant.title(), v.title()),
            ));
        }
    }
    let (train_files, test_files) = files.variant.files(files.format);
    let mut h = SampleHasher::new();
    let (train, train_coarse) = read_split(&files, &train_files, &mut h)?;
    let (test, test_coarse) = read_split(&files, &test_files, &mut h)?;
    Ok(Cifar {
        variant: files.variant,
        format: files.format,
        location,
        md5,
        train,
        test,
        train_coarse,
        test_coarse,
        fingerprint: h.finish(),
    })
}

fn read_folder(dir: &Path, v: Variant, f: Format) -> Result<Files> {
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
fn read_archive(archive: &Path, variant: Option<Variant>) -> Result<Files> {
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

/// One split, in file order: pixels, fine labels, coarse labels.
fn read_split(
    files: &Files,
    names: &[String],
    h: &mut SampleHasher,
) -> Result<(Split, Option<Vec<u16>>)> {
    let mut pixels = Vec::new();
    let mut labels: Vec<u16> = Vec::new();
    let mut coarse: Vec<u16> = Vec::new();
    let classes = files.variant.classes();
    for name in names {
        let path = files.path(name);
        let data = &files.bytes[name];
        let first = labels.len();
        match files.format {
            Format::Binary => read_binary(
                files.variant,
                &path,
                data,
                &mut pixels,
                &mut labels,
                &mut coarse,
            )?,
            Format::Python => read_python(
                files.variant,
                &path,
                data,
                &mut pixels,
                &mut labels,
                &mut coarse,
            )?,
        }
        for (i, &l) in labels[first..].iter().enumerate() {
            if usize::from(l) >= classes {
                return Err(input_err(
                    &path,
                    format!(
                        "sample {i}: label {l} out of range (expected 0..{})",
                        classes - 1
                    ),
                ));
            }
        }
        if files.variant == Variant::Cifar100 {
            for (i, &l) in coarse[first..].iter().enumerate() {
                if l >= 20 {
                    return Err(input_err(
                        &path,
                        format!("sample {i}: coarse label {l} out of range (expected 0..19)"),
                    ));
                }
            }
        }
    }
    for (i, &l) in labels.iter().enumerate() {
        h.sample(l, &pixels[i * PIXELS..(i + 1) * PIXELS]);
    }
    let coarse = (files.variant == Variant::Cifar100).then_some(coarse);
    Ok((Split { pixels, labels }, coarse))
}

fn read_binary(
    v: Variant,
    path: &Path,
    data: &[u8],
    pixels: &mut Vec<u8>,
    labels: &mut Vec<u16>,
    coarse: &mut Vec<u16>,
) -> Result<()> {
    let head = if v == Variant::Cifar10 { 1 } else { 2 };
    let rec = head + PIXELS;
    if data.is_empty() {
        return Err(input_err(path, "empty batch file"));
    }
    if data.len() % rec != 0 {
        return Err(input_err(
            path,
            format!(
                "wrong record size: {} bytes is not a whole number of {rec}-byte records ({head} label byte{} + {PIXELS} pixels); sample {} is incomplete",
                data.len(),
                if head == 1 { "" } else { "s" },
                data.len() / rec
            ),
        ));
    }
    pixels.reserve(data.len() / rec * PIXELS);
    for r in data.chunks_exact(rec) {
        if v == Variant::Cifar100 {
            coarse.push(u16::from(r[0]));
        }
        labels.push(u16::from(r[head - 1]));
        pixels.extend_from_slice(&r[head..]);
    }
    Ok(())
}

fn read_python(
    v: Variant,
    path: &Path,
    data: &[u8],
    pixels: &mut Vec<u8>,
    labels: &mut Vec<u16>,
    coarse: &mut Vec<u16>,
) -> Result<()> {
    let d =
        pickle::load(data).map_err(|e| input_err(path, format!("not a readable pickle: {e}")))?;
    if !matches!(d, pickle::Value::Dict(_)) {
        return Err(input_err(
            path,
            format!("expected a pickled dict, got a {}", d.kind()),
        ));
    }
    let field = |k: &str| {
        d.get(k).ok_or_else(|| {
            InputError::new(
                path,
                Some(k),
                format!("missing (keys present: {})", d.keys().join(", ")),
            )
        })
    };
    let pickle::Value::Array(arr) = field("data")? else {
        return Err(InputError::new(
            path,
            Some("data"),
            format!("expected a numpy array, got a {}", field("data")?.kind()),
        )
        .into());
    };
    let arr = arr.borrow();
    if !matches!(arr.dtype.as_str(), "u1" | "|u1" | "<u1" | ">u1" | "=u1") {
        return Err(InputError::new(
            path,
            Some("data"),
            format!("expected dtype uint8, got `{}`", arr.dtype),
        )
        .into());
    }
    if arr.shape.len() != 2 || arr.shape[1] != PIXELS || arr.fortran {
        return Err(InputError::new(
            path,
            Some("data"),
            format!(
                "expected a C-ordered N x {PIXELS} array, got shape {:?}{}",
                arr.shape,
                if arr.fortran { " (Fortran order)" } else { "" }
            ),
        )
        .into());
    }
    let n = arr.shape[0];
    if arr.data.len() != n * PIXELS {
        return Err(InputError::new(
            path,
            Some("data"),
            format!(
                "shape {:?} needs {} bytes, the array holds {}",
                arr.shape,
                n * PIXELS,
                arr.data.len()
            ),
        )
        .into());
    }
    if n == 0 {
        return Err(InputError::new(path, Some("data"), "no samples").into());
    }
    let ints = |k: &str| -> Result<Vec<u16>> {
        let xs = field(k)?
            .to_ints()
            .map_err(|e| InputError::new(path, Some(k), e))?;
        if xs.len() != n {
            return Err(InputError::new(
                path,
                Some(k),
                format!("{} labels for {n} images", xs.len()),
            )
            .into());
        }
        xs.iter()
            .enumerate()
            .map(|(i, &x)| {
                u16::try_from(x).map_err(|_| {
                    InputError::new(path, Some(k), format!("sample {i}: label {x} out of range"))
                        .into()
                })
            })
            .collect()
    };
    match v {
        Variant::Cifar10 => labels.extend(ints("labels")?),
        Variant::Cifar100 => {
            labels.extend(ints("fine_labels")?);
            coarse.extend(ints("coarse_labels")?);
        }
    }
    pixels.extend_from_slice(&arr.data);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(i: usize, salt: u8) -> Vec<u8> {
        (0..PIXELS)
            .map(|p| {
                (p as u8)
                    .wrapping_mul(7)
                    .wrapping_add(i as u8)
                    .wrapping_add(salt)
            })
            .collect()
    }

    fn write_c10_bin(dir: &Path, per_file: usize) {
        std::fs::create_dir_all(dir).unwrap();
        let (train, test) = Variant::Cifar10.files(Format::Binary);
        for (k, name) in train.iter().chain(&test).enumerate() {
            let mut out = Vec::new();
            for i in 0..per_file {
                out.push(((i + k) % 10) as u8);
                out.extend(sample(i, k as u8));
            }
            std::fs::write(dir.join(name), out).unwrap();
        }
    }

    #[test]
    fn binary_folder_and_its_fingerprint() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("cifar-10-batches-bin");
        write_c10_bin(&dir, 3);
        // The folder itself, its parent, and a missing archive name beside it.
        for p in [
            dir.clone(),
            t.path().to_path_buf(),
            t.path().join("cifar-10-binary.tar.gz"),
        ] {
            let c = load(&p, Some(Variant::Cifar10), LoadOptions::default()).unwrap();
            assert_eq!((c.train.len(), c.test.len()), (15, 3));
            assert!(!c.has_official_counts());
            let mut h = sha2::Sha256::new();
            use sha2::Digest as _;
            for k in 0..6usize {
                for i in 0..3usize {
                    h.update([((i + k) % 10) as u8, 0]);
                    h.update(sample(i, k as u8));
                }
            }
            assert_eq!(c.fingerprint, hex::encode(h.finalize()));
        }
        let e = load(t.path(), Some(Variant::Cifar100), LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no CIFAR data here"), "{e}");
    }

    #[test]
    fn bad_binary_files() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("cifar-10-batches-bin");
        write_c10_bin(&dir, 2);
        let f = dir.join("data_batch_3.bin");
        let mut b = std::fs::read(&f).unwrap();
        b[3073] = 10;
        std::fs::write(&f, &b).unwrap();
        let e = load(&dir, None, LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("data_batch_3.bin: sample 1: label 10 out of range"),
            "{e}"
        );
        b[3073] = 1;
        b.pop();
        std::fs::write(&f, &b).unwrap();
        let e = load(&dir, None, LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("data_batch_3.bin: wrong record size"), "{e}");
        std::fs::remove_file(&f).unwrap();
        let e = load(&dir, None, LoadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("data_batch_3.bin: missing batch file"), "{e}");
    }

    #[test]
    fn not_found_says_how_to_fetch() {
        let e = load(
            Path::new("data/cifar-100-python.tar.gz"),
            Some(Variant::Cifar100),
            LoadOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "data/cifar-100-python.tar.gz: not found; download it with `ddgsd-bench data fetch cifar100 --to data` (or from https://www.cs.toronto.edu/~kriz/cifar.html)"
        );
    }
}
