//! Model files, the checkpoint hash, and the resumable training state.
//!
//! `checkpoint_sha256` (README "Checkpoint hash"): SHA-256 over the model's
//! tensors in byte-wise name order; for each tensor: the name's UTF-8 bytes
//! and a 0 byte, the safetensors dtype name (`F32`, `I64`, ...) and a 0 byte,
//! the number of dimensions and each dimension as u64 little-endian, then the
//! raw little-endian element bytes in row-major order.
use crate::util::atomic;
use crate::util::error::InputError;
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::path::Path;
use tch::{nn::VarStore, Device, Kind, Tensor};

fn dtype_name(k: Kind) -> &'static str {
    match k {
        Kind::Float => "F32",
        Kind::Double => "F64",
        Kind::Half => "F16",
        Kind::BFloat16 => "BF16",
        Kind::Int64 => "I64",
        Kind::Int => "I32",
        Kind::Int16 => "I16",
        Kind::Int8 => "I8",
        Kind::Uint8 => "U8",
        Kind::Bool => "BOOL",
        _ => "OTHER",
    }
}

/// Raw little-endian bytes of a tensor (moved to the CPU, made contiguous).
pub fn tensor_bytes(t: &Tensor) -> Vec<u8> {
    let t = t.to_device(Device::Cpu).contiguous();
    let n = t.numel() * t.kind().elt_size_in_bytes();
    let mut buf = vec![0u8; n];
    t.copy_data_u8(&mut buf, t.numel());
    buf
}

/// The checkpoint hash of a set of named tensors (any order given).
pub fn tensors_sha256(tensors: &[(String, Tensor)]) -> String {
    let mut sorted: Vec<&(String, Tensor)> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut h = Sha256::new();
    for (name, t) in sorted {
        h.update(name.as_bytes());
        h.update([0u8]);
        h.update(dtype_name(t.kind()).as_bytes());
        h.update([0u8]);
        let size = t.size();
        h.update((size.len() as u64).to_le_bytes());
        for d in size {
            h.update((d as u64).to_le_bytes());
        }
        h.update(tensor_bytes(t));
    }
    hex::encode(h.finalize())
}

/// The model's variables (parameters and BN buffers), name-sorted, on the CPU.
pub fn model_tensors(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(n, t)| (n, t.detach().to_device(Device::Cpu)))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// SHA-256 of a file's bytes (hex).
pub fn file_sha256(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)
        .map_err(|e| InputError::new(path, None, format!("cannot open: {e}")))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("{}: read failed", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Writes named tensors as .safetensors, atomically.
pub fn write_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    atomic::write_with(path, |tmp| {
        // Row-major bytes whatever the layout in memory (channels_last).
        let owned: Vec<(&str, Tensor)> = tensors
            .iter()
            .map(|(n, t)| (n.as_str(), t.contiguous()))
            .collect();
        let refs: Vec<(&str, &Tensor)> = owned.iter().map(|(n, t)| (*n, t)).collect();
        Tensor::write_safetensors(&refs, tmp)
            .with_context(|| format!("{}: cannot write safetensors", path.display()))
    })
}

/// Reads a .safetensors file; a truncated or foreign file is an input error.
pub fn read_safetensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    if !path.exists() {
        bail!(InputError::new(path, None, "file does not exist"));
    }
    Tensor::read_safetensors(path).map_err(|e| {
        InputError::new(path, None, format!("not a readable safetensors file: {e}")).into()
    })
}

/// The tensors of a model file, with those of the auxiliary heads beside
/// it when there are any (`heads.safetensors` next to a `model.safetensors`,
/// under their `heads.` prefix): what a run's checkpoint hash covers.
pub fn read_model(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let mut t = read_safetensors(path)?;
    if path.file_name().is_some_and(|n| n == MODEL_FILE_NAME) {
        let h = path.with_file_name(crate::model::heads::HEADS_FILE);
        if h.exists() {
            t.extend(crate::model::heads::prefixed(read_safetensors(&h)?));
        }
    }
    Ok(t)
}

/// The name of a run's exported network.
pub const MODEL_FILE_NAME: &str = "model.safetensors";

/// The checkpoint hash of a model file (the `hash` command), its heads'
/// file included (see [`read_model`]).
pub fn hash_file(path: &Path) -> Result<String> {
    Ok(tensors_sha256(&read_model(path)?))
}

/// Copies tensors into a var store by name: every variable must be present
/// with its shape, and no extra tensor may be left over (BN counters
/// `*.num_batches_tracked` of a PyTorch-style model file are skipped).
pub fn load_into(vs: &mut VarStore, tensors: &[(String, Tensor)], file: &Path) -> Result<()> {
    let vars = vs.variables();
    // In name order, missing tensors first, so the message does not depend
    // on the order of a hash map.
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    let missing: Vec<&&String> = names
        .iter()
        .filter(|n| !tensors.iter().any(|(t, _)| t == **n))
        .collect();
    if let Some(first) = missing.first() {
        bail!(InputError::new(
            file,
            None,
            format!(
                "tensor `{first}` is missing ({} of the network's {} are)",
                missing.len(),
                names.len()
            )
        ));
    }
    for name in names {
        let var = &vars[name];
        let (_, t) = tensors
            .iter()
            .find(|(n, _)| n == name)
            .expect("checked above");
        if t.size() != var.size() {
            bail!(InputError::new(
                file,
                None,
                format!(
                    "tensor `{name}` has shape {:?}, expected {:?}",
                    t.size(),
                    var.size()
                )
            ));
        }
        let mut v = var.shallow_clone();
        tch::no_grad(|| v.copy_(t));
    }
    if let Some((extra, _)) = tensors
        .iter()
        .find(|(n, _)| !vars.contains_key(n) && !crate::model::export::is_bn_counter(n))
    {
        bail!(InputError::new(
            file,
            None,
            format!("unexpected tensor `{extra}` (another architecture?)")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_follows_the_definition() {
        let t = Tensor::from_slice(&[1.0f32, 2.0]).view([1, 2]);
        let u = Tensor::from_slice(&[7i64]);
        let got = tensors_sha256(&[
            ("b".into(), u.shallow_clone()),
            ("a".into(), t.shallow_clone()),
        ]);
        let mut h = Sha256::new();
        h.update(b"a\0F32\0");
        h.update(2u64.to_le_bytes());
        h.update(1u64.to_le_bytes());
        h.update(2u64.to_le_bytes());
        h.update(1.0f32.to_le_bytes());
        h.update(2.0f32.to_le_bytes());
        h.update(b"b\0I64\0");
        h.update(1u64.to_le_bytes());
        h.update(1u64.to_le_bytes());
        h.update(7i64.to_le_bytes());
        assert_eq!(got, hex::encode(h.finalize()));
    }

    #[test]
    fn safetensors_round_trip_keeps_the_hash() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.safetensors");
        let ts = vec![(
            "w".to_string(),
            Tensor::randn([3, 4], (Kind::Float, Device::Cpu)),
        )];
        write_safetensors(&p, &ts).unwrap();
        assert_eq!(hash_file(&p).unwrap(), tensors_sha256(&ts));
        std::fs::write(&p, b"garbage").unwrap();
        let e = hash_file(&p).unwrap_err().to_string();
        assert!(e.contains("m.safetensors"), "{e}");
    }
}
