//! The per-step values a run logs (loss terms, correct count), accumulated
//! on the training device so that a step never waits for the device: they
//! are read back every few steps (progress) and before anything is written.
//!
//! The sums are f64 and start from the host's running totals, so the same
//! f64 additions happen in the same order as when each step was read back:
//! the logged values do not change. The first step whose loss was not finite
//! is kept on the device with its terms, so a read-back can name it.
use crate::method::Loss;
use crate::train::run_state::Accum;
use tch::{Device, Kind, Tensor};

pub struct DeviceAccum {
    /// `[loss, terms..., correct]` f64.
    sums: Tensor,
    /// The global step of the first non-finite loss, -1 while there is none.
    bad: Tensor,
    /// `[total, terms...]` at that step.
    bad_vals: Tensor,
    /// The method's term names, in the order of its [`Loss::terms`].
    names: Vec<&'static str>,
}

/// A read-back.
#[derive(Debug, Clone, PartialEq)]
pub struct Readout {
    pub loss: f64,
    /// One per term, in the method's order.
    pub terms: Vec<f64>,
    pub correct: u64,
    /// (global step, [total, terms...]) of the first non-finite loss.
    pub non_finite: Option<(u64, Vec<f64>)>,
}

impl DeviceAccum {
    /// Starts from the host totals `acc` of the terms `names`.
    pub fn new(acc: &Accum, names: &[&'static str], device: Device) -> Self {
        let mut v = vec![acc.loss];
        v.extend(
            names
                .iter()
                .map(|n| acc.terms.get(*n).copied().unwrap_or(0.0)),
        );
        v.push(acc.correct as f64);
        DeviceAccum {
            sums: Tensor::from_slice(&v).to_device(device),
            bad: Tensor::from_slice(&[-1i64]).to_device(device),
            bad_vals: Tensor::zeros([names.len() as i64 + 1], (Kind::Float, device)),
            names: names.to_vec(),
        }
    }

    /// Adds one step's terms and its correct count (`hits`, an integer
    /// scalar); no host synchronisation.
    pub fn add(&mut self, loss: &Loss, hits: &Tensor, global_step: u64) {
        self.add_weighted(loss, hits, global_step, 1.0);
    }

    /// [`DeviceAccum::add`] with the loss and its terms times `w` (a rank's
    /// share of a data-parallel batch; 1 adds them as they are).
    pub fn add_weighted(&mut self, loss: &Loss, hits: &Tensor, global_step: u64, w: f64) {
        tch::no_grad(|| {
            let v = loss.stacked(&[hits]);
            if w == 1.0 {
                self.sums += v.to_kind(Kind::Double);
            } else {
                let mut s = vec![w; self.names.len() + 1];
                s.push(1.0);
                let scale = Tensor::from_slice(&s).to_device(self.sums.device());
                self.sums += v.to_kind(Kind::Double) * scale;
            }
            let first = loss
                .total
                .detach()
                .isfinite()
                .logical_not()
                .logical_and(&self.bad.lt(0));
            let _ = self.bad.masked_fill_(&first, global_step as i64);
            let k = self.names.len() as i64 + 1;
            self.bad_vals = v.narrow(0, 0, k).where_self(&first, &self.bad_vals);
        });
    }

    /// Everything, in one device-to-host copy.
    pub fn read(&self) -> Readout {
        let all = Tensor::cat(
            &[
                self.sums.shallow_clone(),
                self.bad.to_kind(Kind::Double),
                self.bad_vals.to_kind(Kind::Double),
            ],
            0,
        );
        let v: Vec<f64> = Vec::try_from(all.to_device(Device::Cpu)).expect("accumulators");
        let k = self.names.len();
        Readout {
            loss: v[0],
            terms: v[1..=k].to_vec(),
            correct: v[k + 1] as u64,
            non_finite: (v[k + 2] >= 0.0).then(|| (v[k + 2] as u64, v[k + 3..].to_vec())),
        }
    }

    /// The term names, in order.
    pub fn names(&self) -> &[&'static str] {
        &self.names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loss(total: f32, ce: f32) -> Loss {
        Loss {
            total: Tensor::from(total),
            terms: vec![Tensor::from(ce), Tensor::from(0.0f32), Tensor::from(0.5f32)],
            logits: Tensor::from(0.0f32),
        }
    }

    #[test]
    fn sums_continue_the_host_totals_in_f64_and_keep_the_first_bad_step() {
        let mut acc = Accum {
            loss: 1.0,
            correct: 3,
            ..Accum::default()
        };
        acc.terms.insert("mmd".into(), 0.25);
        let mut d = DeviceAccum::new(&acc, &["ce", "kl", "mmd"], Device::Cpu);
        d.add(&loss(0.1, 0.2), &Tensor::from(4i64), 7);
        let r = d.read();
        assert_eq!(r.loss, 1.0 + f64::from(0.1f32));
        assert_eq!(r.terms, vec![f64::from(0.2f32), 0.0, 0.75]);
        assert_eq!(r.correct, 7);
        assert_eq!(r.non_finite, None);
        d.add(&loss(f32::INFINITY, 0.3), &Tensor::from(0i64), 8);
        d.add(&loss(f32::NAN, 0.4), &Tensor::from(0i64), 9);
        let r = d.read();
        let (step, v) = r.non_finite.unwrap();
        assert_eq!(step, 8);
        assert_eq!(v[0], f64::INFINITY);
        assert_eq!(v[1], f64::from(0.3f32));
        assert_eq!(v.len(), 4);
    }
}
