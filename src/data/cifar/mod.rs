//! CIFAR-10 and CIFAR-100 as users have them: the official "binary version"
//! and "python version", each as the downloaded archive, the extracted
//! folder, or a parent folder holding either. This file holds the [`Cifar`]
//! dataset and [`load`], which reads one in four steps, each in its own
//! file:
//! - [`variant`]: the variants, their official layouts
//!   (<https://www.cs.toronto.edu/~kriz/cifar.html>) and archive MD5s;
//! - [`mod@locate`]: finding the archive or extracted folder at a
//!   path;
//! - [`files`]: reading the batch files out of that folder or
//!   archive, and an archive's MD5;
//! - [`records`]: decoding the batch files (binary records or
//!   pickled dicts) into samples, checking labels, and hashing them.
//!
//! The public names of those files are re-exported here, so `cifar::load`,
//! `cifar::Variant`, `cifar::md5_file` etc. are the paths callers use.
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
//! 1024 B, row-major), see [`crate::data::fingerprint::SampleHasher`]. The binary
//! and python versions of the same data have the same fingerprint.
pub mod files;
pub mod locate;
pub mod pickle;
pub mod records;
pub mod variant;

use crate::data::fingerprint::SampleHasher;
use crate::data::small::{SmallImages, Split};
use crate::data::DatasetInfo;
use crate::util::error::input_err;
use anyhow::Result;
use files::{read_archive, read_folder};
use records::read_split;
use std::path::Path;

pub use files::{md5_file, Md5Report};
pub use locate::{locate, not_found, Location};
pub use variant::{official_md5, Format, Variant, HOME, OFFICIAL_MD5};

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

/// Reads and checks CIFAR at `path` (see [`fn@locate`]). `variant` is the
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::data::cifar::records::PIXELS;

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

    pub(crate) fn write_c10_bin(dir: &Path, per_file: usize) {
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
}
