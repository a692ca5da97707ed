//! A reader for the part of MATLAB's level-5 MAT-file format that the
//! ILSVRC-2012 devkit's `data/meta.mat` uses: a struct array (`synsets`)
//! whose fields are numbers and strings, little-endian, compressed
//! (`miCOMPRESSED`, as MATLAB writes it) or not (as `scipy.io.savemat`
//! writes it). Cell arrays, sparse and complex data are refused.
use anyhow::{anyhow, bail, Result};
use std::collections::HashMap;
use std::io::Read;

/// A value of a struct field.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Num(Vec<f64>),
    Str(String),
    /// A nested struct array (one map per element).
    Struct(Vec<HashMap<String, Value>>),
}

impl Value {
    /// The single number of a 1x1 numeric value.
    pub fn num(&self) -> Option<f64> {
        match self {
            Value::Num(v) if v.len() == 1 => Some(v[0]),
            _ => None,
        }
    }
    pub fn str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
const MI_UTF8: u32 = 16;
const MI_UTF16: u32 = 17;

/// Reads the top-level variables of a MAT-file.
pub fn read(bytes: &[u8]) -> Result<HashMap<String, Value>> {
    if bytes.len() < 128 || !bytes[..116].starts_with(b"MATLAB 5.0 MAT-file") {
        bail!("not a MATLAB 5 MAT-file");
    }
    if &bytes[126..128] != b"IM" {
        bail!("big-endian MAT-files are not supported");
    }
    let mut vars = HashMap::new();
    let mut at = 128;
    while at + 8 <= bytes.len() {
        let (ty, data, next) = element(bytes, at)?;
        at = next;
        let owned;
        let (ty, data) = if ty == MI_COMPRESSED {
            let mut out = Vec::new();
            flate2::read::ZlibDecoder::new(data)
                .read_to_end(&mut out)
                .map_err(|e| anyhow!("corrupt compressed variable: {e}"))?;
            owned = out;
            let (t, d, _) = element(&owned, 0)?;
            (t, d)
        } else {
            (ty, data)
        };
        if ty == MI_MATRIX {
            let (name, v) = matrix(data)?;
            vars.insert(name, v);
        }
    }
    Ok(vars)
}

fn u32_at(b: &[u8], at: usize) -> Result<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes(s.try_into().unwrap()))
        .ok_or_else(|| anyhow!("truncated MAT-file"))
}

/// One data element at `at`: (type, data, offset of the next element).
fn element(b: &[u8], at: usize) -> Result<(u32, &[u8], usize)> {
    let first = u32_at(b, at)?;
    if first >> 16 != 0 {
        // Small element: type and size in one word, data in the next four bytes.
        let (ty, n) = (first & 0xffff, (first >> 16) as usize);
        let data = b
            .get(at + 4..at + 4 + n)
            .ok_or_else(|| anyhow!("truncated MAT-file"))?;
        return Ok((ty, data, at + 8));
    }
    let n = u32_at(b, at + 4)? as usize;
    let data = b
        .get(at + 8..at + 8 + n)
        .ok_or_else(|| anyhow!("truncated MAT-file"))?;
    let pad = if first == MI_COMPRESSED {
        0
    } else {
        (8 - n % 8) % 8
    };
    Ok((first, data, at + 8 + n + pad))
}

fn numbers(ty: u32, d: &[u8]) -> Result<Vec<f64>> {
    let take = |k: usize| d.chunks_exact(k);
    Ok(match ty {
        MI_INT8 => d.iter().map(|&v| f64::from(v as i8)).collect(),
        MI_UINT8 | MI_UTF8 => d.iter().map(|&v| f64::from(v)).collect(),
        MI_INT16 => take(2)
            .map(|c| f64::from(i16::from_le_bytes([c[0], c[1]])))
            .collect(),
        MI_UINT16 | MI_UTF16 => take(2)
            .map(|c| f64::from(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        MI_INT32 => take(4)
            .map(|c| f64::from(i32::from_le_bytes(c.try_into().unwrap())))
            .collect(),
        MI_UINT32 => take(4)
            .map(|c| f64::from(u32::from_le_bytes(c.try_into().unwrap())))
            .collect(),
        MI_SINGLE => take(4)
            .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
            .collect(),
        MI_DOUBLE => take(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        MI_INT64 => take(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        MI_UINT64 => take(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        other => bail!("unsupported MAT data type {other}"),
    })
}

/// A miMATRIX element's contents: (name, value).
fn matrix(d: &[u8]) -> Result<(String, Value)> {
    if d.is_empty() {
        // An empty matrix ([] in MATLAB) has no sub-elements.
        return Ok((String::new(), Value::Num(Vec::new())));
    }
    let (_, flags, at) = element(d, 0)?;
    let class = flags.first().copied().unwrap_or(0);
    let complex = flags.get(1).is_some_and(|f| f & 0x08 != 0);
    let (_, dims, at) = element(d, at)?;
    let count: usize = dims
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()).max(0) as usize)
        .product();
    let (_, name, at) = element(d, at)?;
    let name = String::from_utf8_lossy(name).into_owned();
    if complex {
        bail!("variable `{name}`: complex data is not supported");
    }
    let value = match class {
        2 => {
            // mxSTRUCT_CLASS: field name length, names, then elements.
            let (_, fl, at) = element(d, at)?;
            let len = u32_at(fl, 0)? as usize;
            let (_, names, mut at) = element(d, at)?;
            let fields: Vec<String> = names
                .chunks(len.max(1))
                .map(|c| {
                    String::from_utf8_lossy(c)
                        .trim_end_matches('\0')
                        .to_string()
                })
                .collect();
            let mut elems = Vec::with_capacity(count);
            for _ in 0..count {
                let mut m = HashMap::new();
                for f in &fields {
                    let (ty, sub, next) = element(d, at)?;
                    at = next;
                    if ty != MI_MATRIX {
                        bail!("field `{f}` of `{name}` is not a matrix");
                    }
                    m.insert(f.clone(), matrix(sub)?.1);
                }
                elems.push(m);
            }
            Value::Struct(elems)
        }
        4 => {
            // mxCHAR_CLASS
            let (ty, data, _) = element(d, at)?;
            let s = match ty {
                MI_UTF8 | MI_INT8 | MI_UINT8 => String::from_utf8_lossy(data).into_owned(),
                _ => numbers(ty, data)?
                    .into_iter()
                    .map(|c| char::from_u32(c as u32).unwrap_or('\u{fffd}'))
                    .collect(),
            };
            Value::Str(s)
        }
        6..=15 => {
            let (ty, data, _) = element(d, at)?;
            Value::Num(numbers(ty, data)?)
        }
        other => bail!("variable `{name}`: MATLAB class {other} is not supported"),
    };
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A MAT-file holding `x = 7` (1x1 double) written by hand, small
    /// elements included, then damaged in ways that must be errors.
    #[test]
    fn reads_a_double_and_refuses_damage() {
        let mut f = b"MATLAB 5.0 MAT-file, hand-made".to_vec();
        f.resize(116, b' ');
        f.extend([0u8; 8]);
        f.extend([0x00, 0x01, b'I', b'M']);
        let mut m = Vec::new();
        m.extend(6u32.to_le_bytes()); // miUINT32 array flags
        m.extend(8u32.to_le_bytes());
        m.extend([6u8, 0, 0, 0, 0, 0, 0, 0]); // mxDOUBLE_CLASS
        m.extend(5u32.to_le_bytes()); // miINT32 dims 1x1
        m.extend(8u32.to_le_bytes());
        m.extend(1i32.to_le_bytes());
        m.extend(1i32.to_le_bytes());
        m.extend((1u32 << 16 | 1).to_le_bytes()); // small miINT8 name "x"
        m.extend([b'x', 0, 0, 0]);
        m.extend(9u32.to_le_bytes()); // miDOUBLE
        m.extend(8u32.to_le_bytes());
        m.extend(7.0f64.to_le_bytes());
        f.extend(14u32.to_le_bytes());
        f.extend((m.len() as u32).to_le_bytes());
        f.extend(&m);
        let vars = read(&f).unwrap();
        assert_eq!(vars["x"].num(), Some(7.0));
        assert!(read(&f[..f.len() - 4]).is_err(), "truncated");
        assert!(read(b"not a mat file").is_err());
        let mut be = f.clone();
        be[126..128].copy_from_slice(b"MI");
        assert!(read(&be).is_err(), "big-endian");
    }
}
