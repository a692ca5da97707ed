//! Model files that PyTorch loads with `load_state_dict(strict=True)`.
//!
//! A PyTorch `BatchNorm2d` state dict holds `weight`, `bias`, `running_mean`,
//! `running_var` and `num_batches_tracked` (an int64 scalar, shape `[]`,
//! counting the training-mode forward passes). tch's BatchNorm has no
//! `num_batches_tracked`, so [`state_dict`] adds one per BN, with the number
//! of BN updates the training made. Variable names already follow the
//! reference modules (see `model`), so nothing is renamed.
use crate::model::checkpoint;
use tch::{nn::VarStore, Tensor};

/// The suffix PyTorch gives the BN update counter.
pub const NUM_BATCHES_TRACKED: &str = ".num_batches_tracked";

/// `checkpoint::model_tensors(vs)` plus `<prefix>.num_batches_tracked` =
/// `bn_updates` (int64, shape `[]`) for every `<prefix>.running_mean`;
/// name-sorted, on the CPU.
pub fn state_dict(vs: &VarStore, bn_updates: i64) -> Vec<(String, Tensor)> {
    let mut v = checkpoint::model_tensors(vs);
    let extra: Vec<(String, Tensor)> = v
        .iter()
        .filter_map(|(n, _)| n.strip_suffix(".running_mean"))
        .map(|p| {
            (
                format!("{p}{NUM_BATCHES_TRACKED}"),
                Tensor::from_slice(&[bn_updates]).reshape([0i64; 0]),
            )
        })
        .collect();
    v.extend(extra);
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Whether `name` is a tensor that [`state_dict`] adds and a var store does
/// not hold (loading skips it).
pub fn is_bn_counter(name: &str) -> bool {
    name.ends_with(NUM_BATCHES_TRACKED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{build, ArchSpec};
    use tch::{nn, Device, Kind};

    #[test]
    fn every_bn_gets_a_scalar_counter() {
        let vs = nn::VarStore::new(Device::Cpu);
        build(
            &ArchSpec {
                name: "resnet8".into(),
                width: None,
            },
            &vs.root(),
            10,
        )
        .unwrap();
        let plain = checkpoint::model_tensors(&vs);
        let sd = state_dict(&vs, 391);
        let bns = plain
            .iter()
            .filter(|(n, _)| n.ends_with(".running_mean"))
            .count();
        assert_eq!(bns, 7, "stem + 3 blocks x 2");
        assert_eq!(sd.len(), plain.len() + bns);
        let (_, t) = sd
            .iter()
            .find(|(n, _)| n == "layer2.0.bn1.num_batches_tracked")
            .unwrap();
        assert_eq!(
            (t.kind(), t.size(), i64::try_from(t).unwrap()),
            (Kind::Int64, vec![], 391)
        );
        assert!(sd.windows(2).all(|w| w[0].0 < w[1].0), "name-sorted");
    }

    #[test]
    fn a_written_state_dict_loads_back_and_keeps_its_hash() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("model.safetensors");
        let vs = nn::VarStore::new(Device::Cpu);
        build(
            &ArchSpec {
                name: "resnet8".into(),
                width: None,
            },
            &vs.root(),
            10,
        )
        .unwrap();
        let sd = state_dict(&vs, 5);
        checkpoint::write_safetensors(&p, &sd).unwrap();
        assert_eq!(
            checkpoint::hash_file(&p).unwrap(),
            checkpoint::tensors_sha256(&sd)
        );
        let read = checkpoint::read_safetensors(&p).unwrap();
        let (_, t) = read
            .iter()
            .find(|(n, _)| n == "bn1.num_batches_tracked")
            .unwrap();
        assert_eq!((t.size(), i64::try_from(t).unwrap()), (vec![], 5));
        let mut vs2 = nn::VarStore::new(Device::Cpu);
        build(
            &ArchSpec {
                name: "resnet8".into(),
                width: None,
            },
            &vs2.root(),
            10,
        )
        .unwrap();
        checkpoint::load_into(&mut vs2, &read, &p).unwrap();
        assert_eq!(
            checkpoint::tensors_sha256(&checkpoint::model_tensors(&vs2)),
            checkpoint::tensors_sha256(&checkpoint::model_tensors(&vs))
        );
    }
}
