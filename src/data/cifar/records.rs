//! Decoding CIFAR batch files into samples: fixed-size records of the
//! binary version, pickled dicts of the python version (with [`super::pickle`]).
//! Labels are range-checked and every sample goes into the fingerprint
//! (defined in [`super`]) in file order.
use super::files::Files;
use super::pickle;
use super::variant::{Format, Variant};
use crate::data::fingerprint::SampleHasher;
use crate::data::small::Split;
use crate::util::error::input_err;
use crate::util::error::InputError;
use anyhow::Result;
use std::path::Path;

/// Pixel bytes of one sample (3 x 32 x 32).
pub(super) const PIXELS: usize = 3072;

/// One split, in file order: pixels, fine labels, coarse labels.
pub(super) fn read_split(
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
    use crate::data::cifar::tests::write_c10_bin;
    use crate::data::cifar::{load, LoadOptions};

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
}
