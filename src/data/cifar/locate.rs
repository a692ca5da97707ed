//! Finding CIFAR at a path: an archive, an extracted folder, a parent
//! folder holding either, or a missing official archive name whose
//! extracted folder lies beside it; and the errors that say how to get the
//! data when nothing is there.
use super::variant::{all_layouts, Format, Variant, HOME};
use crate::util::error::input_err;
use anyhow::Result;
use std::path::{Path, PathBuf};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::cifar::{load, LoadOptions};

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
