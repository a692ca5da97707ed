//! Evaluating a network on a split (the test split, or a held-out
//! validation split): top-1 and top-5 accuracy, the negative log-likelihood
//! and the expected calibration error, the numbers CS-KD and PS-KD report
//! beside accuracy. Used by the training loop after every epoch and by the
//! `eval` command, so both give the same numbers for the same weights.
//!
//! - top-1 / top-5 (%): the label among the `topk` of the logits (k = 5, or
//!   the class count when smaller).
//! - NLL (nats): the mean over samples of −log softmax(z)_y, the test-set
//!   cross-entropy PS-KD logs as `val_loss`.
//! - ECE (%): samples binned by confidence (the largest softmax
//!   probability) into `bins` equal-width bins (i/B, (i+1)/B]; ECE = 100 ×
//!   Σ_b |correct_b − confidence_b| / n, with correct_b the bin's top-1 hits
//!   and confidence_b the sum of its confidences (Guo et al. 2017; PS-KD's
//!   utils/metric.py computes the same sum with bins of width `bin_size`;
//!   docs/method.md §14).
//!
//! Everything accumulates on the device (f64 sums; the bin masks are
//! one-hot products, no atomic scatter, so CUDA sums are deterministic)
//! and is read back once per split.
use crate::model::heads::Heads;
use crate::model::Network;
use crate::platform::dist::{Group, Op};
use crate::train::exec::Exec;
use crate::train::feed::share;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// The metrics of one split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    pub top1: f64,
    pub top5: f64,
    pub nll: f64,
    pub ece: f64,
    pub n: usize,
}

/// One confidence bin (a reliability-diagram point).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    pub lower: f64,
    pub upper: f64,
    pub count: u64,
    /// Top-1 accuracy (%) of the bin's samples (0 for an empty bin).
    pub accuracy: f64,
    /// Mean confidence (%) of the bin's samples (0 for an empty bin).
    pub confidence: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub metrics: EvalMetrics,
    pub bins: Vec<Bin>,
    /// Top-1 (%) of every auxiliary head, shallow first (empty without
    /// heads); the metrics above are the network's own (deepest) head's.
    pub heads_top1: Vec<f64>,
}

/// How a network is evaluated: on which device, in which precision and
/// memory format, in batches of how many samples, with how many ECE bins.
pub struct Evaluator<'a> {
    pub net: &'a dyn Network,
    pub exec: &'a Exec,
    pub batch: usize,
    pub bins: usize,
    /// The ranks of a data-parallel run: each evaluates its share
    /// ([`share`]) and the sums are all-reduced, so every rank gets the
    /// whole split's metrics.
    pub group: Option<&'a Group>,
    /// The network's auxiliary heads, evaluated beside it.
    pub heads: Option<&'a Heads>,
}

impl Evaluator<'_> {
    /// Evaluates `n` samples; `batch(start, len)` gives samples
    /// `start..start+len` (CPU tensors, evaluation transform) and labels.
    pub fn run(
        &self,
        n: usize,
        batch: &dyn Fn(usize, usize) -> Result<(Tensor, Tensor)>,
    ) -> Result<Evaluation> {
        let dev = self.exec.device;
        let b = self.bins as i64;
        let hits = Tensor::zeros([2], (Kind::Int64, dev));
        let nll = Tensor::zeros([1], (Kind::Double, dev));
        // Per bin: count, sum of confidences, top-1 hits.
        let per_bin = Tensor::zeros([3, b], (Kind::Double, dev));
        let bin_ids = Tensor::arange(b, (Kind::Int64, dev));
        let n_heads = self.heads.map_or(0, |h| h.len());
        let head_hits = Tensor::zeros([n_heads as i64], (Kind::Int64, dev));
        let mine = match self.group {
            Some(g) => share(n, g.rank(), g.world()),
            None => 0..n,
        };
        tch::no_grad(|| -> Result<()> {
            let mut start = mine.start;
            while start < mine.end {
                let len = self.batch.min(mine.end - start);
                let (x, y) = batch(start, len)?;
                let (x, y) = (x.to_device(dev), y.to_device(dev));
                let x = self.exec.input(x)?;
                let out = crate::train::step::forward(self.net, self.heads, self.exec, &x, false)?;
                let logits = out.logits;
                if n_heads > 0 {
                    let per: Vec<Tensor> = out
                        .heads
                        .iter()
                        .map(|(z, _)| z.argmax(-1, false).eq_tensor(&y).sum(Kind::Int64))
                        .collect();
                    let _ = head_hits.shallow_clone().g_add_(&Tensor::stack(&per, 0));
                }
                let k = 5.min(logits.size()[1]);
                let top = logits.topk(k, -1, true, true).1;
                let h = top.eq_tensor(&y.unsqueeze(1));
                let top1 = h.narrow(1, 0, 1).squeeze_dim(1);
                let both = Tensor::stack(&[top1.sum(Kind::Int64), h.sum(Kind::Int64)], 0);
                let _ = hits.shallow_clone().g_add_(&both);
                let z = logits.to_kind(Kind::Float);
                let logp = z.log_softmax(-1, Kind::Float);
                let picked = logp.gather(1, &y.unsqueeze(1), false).to_kind(Kind::Double);
                let _ = nll
                    .shallow_clone()
                    .g_sub_(&picked.sum(Kind::Double).reshape([1]));
                let conf = z.softmax(-1, Kind::Float).amax([-1].as_slice(), false);
                let conf = conf.to_kind(Kind::Double);
                let idx = (&conf * self.bins as f64).ceil() - 1.0;
                let idx = idx.clamp(0.0, (b - 1) as f64).to_kind(Kind::Int64);
                let onehot = idx.unsqueeze(1).eq_tensor(&bin_ids.unsqueeze(0));
                let onehot = onehot.to_kind(Kind::Double);
                let cols = Tensor::stack(
                    &[
                        Tensor::ones_like(&conf),
                        conf.shallow_clone(),
                        top1.to_kind(Kind::Double),
                    ],
                    0,
                );
                let _ = per_bin.shallow_clone().g_add_(&cols.matmul(&onehot));
                start += len;
            }
            Ok(())
        })?;
        let mut v: Vec<i64> = Vec::try_from(hits.to_device(Device::Cpu))?;
        let mut hh: Vec<i64> = Vec::try_from(head_hits.to_device(Device::Cpu))?;
        let mut nll_sum = f64::try_from(nll.to_device(Device::Cpu).get(0))?;
        let mut pb: Vec<f64> = Vec::try_from(per_bin.to_device(Device::Cpu).flatten(0, -1))?;
        if let Some(g) = self.group {
            v = g.reduce_i64(&v, Op::Sum)?;
            if !hh.is_empty() {
                hh = g.reduce_i64(&hh, Op::Sum)?;
            }
            let mut sums = g.sum_f64(&[&[nll_sum][..], &pb[..]].concat())?;
            nll_sum = sums.remove(0);
            pb = sums;
        }
        let (counts, confs, corrects) = (
            &pb[..b as usize],
            &pb[b as usize..2 * b as usize],
            &pb[2 * b as usize..],
        );
        let nf = n.max(1) as f64;
        let mut ece = 0.0;
        let mut bins = Vec::with_capacity(self.bins);
        for i in 0..self.bins {
            ece += (corrects[i] - confs[i]).abs();
            let c = counts[i];
            bins.push(Bin {
                lower: i as f64 / self.bins as f64,
                upper: (i + 1) as f64 / self.bins as f64,
                count: c as u64,
                accuracy: if c > 0.0 {
                    100.0 * corrects[i] / c
                } else {
                    0.0
                },
                confidence: if c > 0.0 { 100.0 * confs[i] / c } else { 0.0 },
            });
        }
        Ok(Evaluation {
            metrics: EvalMetrics {
                top1: 100.0 * v[0] as f64 / nf,
                top5: 100.0 * v[1] as f64 / nf,
                nll: nll_sum / nf,
                ece: 100.0 * ece / nf,
                n,
            },
            bins,
            heads_top1: hh.iter().map(|&h| 100.0 * h as f64 / nf).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::runtime::{MemoryFormat, Precision};

    /// A "network" that returns its input as the logits.
    struct Identity;
    impl Network for Identity {
        fn forward(&self, xs: &Tensor, _train: bool) -> (Tensor, Tensor) {
            (xs.shallow_clone(), xs.shallow_clone())
        }
    }

    fn eval_logits(z: &[[f32; 3]], y: &[i64], bins: usize, batch: usize) -> Evaluation {
        let flat: Vec<f32> = z.iter().flatten().copied().collect();
        let zt = Tensor::from_slice(&flat).view([z.len() as i64, 3]);
        let yt = Tensor::from_slice(y);
        let exec = Exec::new(Device::Cpu, Precision::Fp32, MemoryFormat::Contiguous);
        let e = Evaluator {
            net: &Identity,
            exec: &exec,
            batch,
            bins,
            group: None,
            heads: None,
        };
        e.run(z.len(), &|s, l| {
            Ok((
                zt.narrow(0, s as i64, l as i64),
                yt.narrow(0, s as i64, l as i64),
            ))
        })
        .unwrap()
    }

    #[test]
    fn metrics_by_hand() {
        // Softmax of [ln 4, 0, 0] = [2/3, 1/6, 1/6]; of [0, 0, 0] = 1/3 each
        // (confidences away from the bin edges: f32 rounding cannot move them).
        let l4 = 4f32.ln();
        let z = [
            [l4, 0.0, 0.0],
            [l4, 0.0, 0.0],
            [0.0, 0.0, 0.0],
            [0.0, l4, 0.0],
        ];
        let y = [0, 1, 2, 1];
        let e = eval_logits(&z, &y, 10, 3);
        let m = e.metrics;
        // Top-1 hits: samples 0 and 3.
        assert_eq!(m.top1, 50.0);
        assert_eq!(m.top5, 100.0, "k = 3 classes: every label is in the top 3");
        let third = 1.0f64 / 3.0;
        let want_nll = -((2.0 * third).ln() * 2.0 + (1.0f64 / 6.0).ln() + third.ln()) / 4.0;
        assert!((m.nll - want_nll).abs() < 1e-6, "{} vs {want_nll}", m.nll);
        // Bins of width 0.1: bin (0.6, 0.7] holds 3 samples, 2 hits,
        // confidence 2; bin (0.3, 0.4] holds 1 sample, no hit, confidence 1/3.
        let want_ece = 100.0 * third / 4.0;
        assert!((m.ece - want_ece).abs() < 1e-4, "{} vs {want_ece}", m.ece);
        assert_eq!(e.bins[6].count, 3);
        assert_eq!(e.bins[3].count, 1);
        assert_eq!(e.bins.iter().map(|b| b.count).sum::<u64>(), 4);
        assert!((e.bins[6].accuracy - 200.0 / 3.0).abs() < 1e-9);
        // The batch size changes nothing.
        assert_eq!(eval_logits(&z, &y, 10, 1), e);
    }

    #[test]
    fn a_confidence_of_one_falls_in_the_last_bin() {
        let z = [[100.0f32, 0.0, 0.0]];
        let e = eval_logits(&z, &[0], 15, 8);
        assert_eq!(e.bins[14].count, 1);
        assert!(e.metrics.ece.abs() < 1e-9);
    }
}
