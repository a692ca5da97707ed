//! The CIFAR variants and their official distributions: names, class
//! counts, normalisation, archive and folder names, batch file names, and
//! the published archive MD5s.
//!
//! Layouts (<https://www.cs.toronto.edu/~kriz/cifar.html>):
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
use std::path::Path;

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

    /// Per-channel mean and std (docs/method.md §4).
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

/// Every (variant, format), python version first.
pub(super) fn all_layouts() -> impl Iterator<Item = (Variant, Format)> {
    Variant::ALL
        .into_iter()
        .flat_map(|v| [(v, Format::Python), (v, Format::Binary)])
}
