//! Gradient averaging of a data-parallel run: after backward, every
//! trainable parameter's gradient is copied into fixed buckets (parameters
//! in name order, a new bucket when the next one would pass
//! [`BUCKET_BYTES`]), each bucket is scaled by this rank's share of the
//! global batch (B_r / B: 1/N for a full batch, so the sum is the mean, as
//! DDP divides before it sums), the buckets are all-reduced (sum) in that
//! order on the data group (launched one after the other, then waited for),
//! and copied back. Every rank then holds the same bits, and the Rust SGD
//! takes the same step on every rank.
//!
//! The buckets are fixed by the parameters alone (names and sizes), never by
//! timing, so the reduction is the same on every run. They are reduced after
//! backward, not overlapped with it: tch exposes no autograd hooks and the
//! shim registers none (DDP's overlap rests on gradient-accumulator hooks
//! and the bucket order they produce), so this synchronisation sits between
//! backward and the optimiser step, whatever loss made the gradients.
use crate::platform::dist::{Group, Op, Which};
use anyhow::Result;
use tch::{nn::VarStore, Tensor};

/// Bucket size cap, in bytes (DDP's default bucket_cap_mb = 25).
pub const BUCKET_BYTES: usize = 25 << 20;

struct Bucket {
    params: Vec<Tensor>,
}

pub struct GradSync {
    buckets: Vec<Bucket>,
}

impl GradSync {
    /// The buckets of every trainable variable of `vs`.
    pub fn new(vs: &VarStore) -> Self {
        let mut vars: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        vars.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let mut buckets: Vec<Bucket> = vec![];
        let mut bytes = 0;
        for (_, t) in vars {
            let b = t.numel() * t.kind().elt_size_in_bytes();
            if buckets.is_empty() || (bytes + b > BUCKET_BYTES && bytes > 0) {
                buckets.push(Bucket { params: vec![] });
                bytes = 0;
            }
            bytes += b;
            buckets.last_mut().expect("pushed").params.push(t);
        }
        GradSync { buckets }
    }

    /// Number of buckets (for the record and tests).
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }

    /// Replaces every gradient by the sum over the ranks of `share` times
    /// the rank's gradient.
    pub fn all_reduce(&self, group: &Group, share: f64) -> Result<()> {
        let flats: Vec<Tensor> = tch::no_grad(|| {
            self.buckets
                .iter()
                .map(|b| {
                    let parts: Vec<Tensor> = b
                        .params
                        .iter()
                        .map(|p| {
                            let g = p.grad();
                            if g.defined() {
                                g.reshape([-1])
                            } else {
                                p.zeros_like().reshape([-1])
                            }
                        })
                        .collect();
                    Tensor::cat(&parts, 0) * share
                })
                .collect()
        });
        let refs: Vec<&Tensor> = flats.iter().collect();
        group.allreduce(Which::Data, &refs, Op::Sum)?;
        tch::no_grad(|| {
            for (b, flat) in self.buckets.iter().zip(&flats) {
                let mut off = 0;
                for p in &b.params {
                    let n = p.numel() as i64;
                    let avg = flat.narrow(0, off, n).view(p.size().as_slice());
                    let mut g = p.grad();
                    // Every rank runs the same graph: a parameter without a
                    // gradient has none on any rank, and keeps none.
                    if g.defined() {
                        g.copy_(&avg);
                    }
                    off += n;
                }
            }
        });
        Ok(())
    }
}
