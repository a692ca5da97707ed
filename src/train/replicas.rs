//! The ranks of a data-parallel run hold one model: rank 0's copy is the
//! run's (it alone reads and writes checkpoints), the others are replicas
//! kept bit-identical to it.
//! - At the start (fresh or resumed) rank 0's position, weights, BN
//!   buffers and momentum buffers are broadcast, so every rank resumes from
//!   the same checkpoint without reading the run directory.
//! - Batch norm is per rank: each rank normalises its share with its own
//!   statistics, and the running statistics that evaluation and the
//!   checkpoint use are rank 0's, broadcast before every evaluation (DDP's
//!   `broadcast_buffers`: its buffers are rank 0's before each forward).
//! - After every epoch each rank hashes its weights and buffers (the
//!   checkpoint hash); the run stops, naming the ranks, if any differs
//!   from rank 0's.
use crate::model::checkpoint::{model_tensors, tensors_sha256};
use crate::optim::sgd::Sgd;
use crate::platform::dist::{Group, Op, Which};
use crate::train::run_state::TrainState;
use anyhow::{bail, Result};
use tch::{nn::VarStore, Tensor};

fn sorted_vars(vs: &VarStore, trainable: Option<bool>) -> Vec<Tensor> {
    let mut v: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| trainable.is_none_or(|tr| t.requires_grad() == tr))
        .collect();
    v.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    v.into_iter().map(|(_, t)| t).collect()
}

fn broadcast_all(group: &Group, ts: &[Tensor]) -> Result<()> {
    tch::no_grad(|| {
        ts.iter()
            .try_for_each(|t| group.broadcast(Which::Data, t, 0))
    })
}

/// Rank 0's position and tensors on every rank. Ranks > 0 keep only the
/// position (epoch, step, global step, resumed) of rank 0's state: the
/// history and the record are rank 0's.
pub fn start_from_rank0(
    group: &Group,
    vs: &VarStore,
    opt: &Sgd,
    st: &mut TrainState,
) -> Result<()> {
    let pos = group.broadcast_i64(
        &[
            i64::from(st.epoch),
            st.step_in_epoch as i64,
            st.global_step as i64,
            i64::from(st.resumed),
        ],
        0,
    )?;
    if group.rank() != 0 {
        st.epoch = pos[0] as u32;
        st.step_in_epoch = pos[1] as usize;
        st.global_step = pos[2] as u64;
        st.resumed = pos[3] != 0;
    }
    broadcast_all(group, &sorted_vars(vs, None))?;
    let momentum: Vec<Tensor> = opt.state().into_iter().map(|(_, t)| t).collect();
    broadcast_all(group, &momentum)
}

/// Rank 0's BN running statistics (every non-trainable variable) on every rank.
pub fn broadcast_buffers(group: &Group, vs: &VarStore) -> Result<()> {
    broadcast_all(group, &sorted_vars(vs, Some(false)))
}

/// The ranks whose digest differs from rank 0's, given every rank's
/// "differs" flag in rank order.
pub fn differing(flags: &[i64]) -> Vec<usize> {
    flags
        .iter()
        .enumerate()
        .filter(|(_, &f)| f != 0)
        .map(|(r, _)| r)
        .collect()
}

/// The checkpoint hash of this rank's model after `epoch` (1-based), which
/// every rank has been checked to share.
pub fn check_identical(group: &Group, vs: &VarStore, epoch: u32) -> Result<String> {
    let digest = tensors_sha256(&model_tensors(vs));
    let words: Vec<i64> = hex::decode(&digest)?
        .chunks(8)
        .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    let root = group.broadcast_i64(&words, 0)?;
    let mut flags = vec![0i64; group.world()];
    flags[group.rank()] = i64::from(root != words);
    let flags = group.reduce_i64(&flags, Op::Max)?;
    let bad = differing(&flags);
    if !bad.is_empty() {
        bail!(
            "after epoch {epoch} the weights of rank(s) {bad:?} differ from rank 0's (this rank: {}): the data-parallel update is not bit-identical on every rank",
            &digest[..16]
        );
    }
    Ok(digest)
}

#[cfg(test)]
mod tests {
    #[test]
    fn differing_ranks_are_named() {
        assert_eq!(super::differing(&[0, 0, 1, 0, 1]), vec![2, 4]);
        assert!(super::differing(&[0, 0]).is_empty());
    }
}
