//! The per-step values a run logs (loss terms, correct count), accumulated
//! on the training device so that a step never waits for the device: they
//! are read back every few steps (progress) and before anything is written.
//!
//! The sums are f64 and start from the host's running totals, so the same
//! f64 additions happen in the same order as when each step was read back:
//! the logged values do not change. The first step whose loss was not finite
//! is kept on the device with its terms, so a read-back can name it.
use crate::method::loss::LossParts;
use crate::train::run_state::Accum;
use tch::{Device, Kind, Tensor};

pub struct DeviceAccum {
    /// `[loss, ce, kl, mmd, correct]` f64.
    sums: Tensor,
    /// The global step of the first non-finite loss, -1 while there is none.
    bad: Tensor,
    /// `[total, ce, kl, mmd]` at that step.
    bad_vals: Tensor,
}

/// A read-back.
#[derive(Debug, Clone, PartialEq)]
pub struct Readout {
    pub loss: f64,
    pub ce: f64,
    pub kl: f64,
    pub mmd: f64,
    pub correct: u64,
    /// (global step, [total, ce, kl, mmd]) of the first non-finite loss.
    pub non_finite: Option<(u64, [f64; 4])>,
}

impl DeviceAccum {
    /// Starts from the host totals `acc`.
    pub fn new(acc: &Accum, device: Device) -> Self {
        let sums = Tensor::from_slice(&[acc.loss, acc.ce, acc.kl, acc.mmd, acc.correct as f64]);
        DeviceAccum {
            sums: sums.to_device(device),
            bad: Tensor::from_slice(&[-1i64]).to_device(device),
            bad_vals: Tensor::zeros([4], (Kind::Float, device)),
        }
    }

    /// Adds one step's terms and its correct count (`hits`, an integer
    /// scalar); no host synchronisation.
    pub fn add(&mut self, parts: &LossParts, hits: &Tensor, global_step: u64) {
        self.add_weighted(parts, hits, global_step, 1.0);
    }

    /// [`DeviceAccum::add`] with the loss terms times `w` (a rank's share of
    /// a data-parallel batch; 1 adds them as they are).
    pub fn add_weighted(&mut self, parts: &LossParts, hits: &Tensor, global_step: u64, w: f64) {
        tch::no_grad(|| {
            let v = parts.stacked(&[hits]);
            if w == 1.0 {
                self.sums += v.to_kind(Kind::Double);
            } else {
                let scale = Tensor::from_slice(&[w, w, w, w, 1.0]).to_device(self.sums.device());
                self.sums += v.to_kind(Kind::Double) * scale;
            }
            let first = parts
                .total
                .detach()
                .isfinite()
                .logical_not()
                .logical_and(&self.bad.lt(0));
            let _ = self.bad.masked_fill_(&first, global_step as i64);
            self.bad_vals = v.narrow(0, 0, 4).where_self(&first, &self.bad_vals);
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
        Readout {
            loss: v[0],
            ce: v[1],
            kl: v[2],
            mmd: v[3],
            correct: v[4] as u64,
            non_finite: (v[5] >= 0.0).then(|| (v[5] as u64, [v[6], v[7], v[8], v[9]])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(total: f32, ce: f32) -> LossParts {
        LossParts {
            total: Tensor::from(total),
            ce: Tensor::from(ce),
            kl: None,
            mmd: Some(Tensor::from(0.5f32)),
        }
    }

    #[test]
    fn sums_continue_the_host_totals_in_f64_and_keep_the_first_bad_step() {
        let acc = Accum {
            loss: 1.0,
            correct: 3,
            ..Accum::default()
        };
        let mut d = DeviceAccum::new(&acc, Device::Cpu);
        d.add(&parts(0.1, 0.2), &Tensor::from(4i64), 7);
        let r = d.read();
        assert_eq!(r.loss, 1.0 + f64::from(0.1f32));
        assert_eq!(
            (r.ce, r.kl, r.mmd, r.correct),
            (f64::from(0.2f32), 0.0, 0.5, 7)
        );
        assert_eq!(r.non_finite, None);
        d.add(&parts(f32::INFINITY, 0.3), &Tensor::from(0i64), 8);
        d.add(&parts(f32::NAN, 0.4), &Tensor::from(0i64), 9);
        let r = d.read();
        let (step, v) = r.non_finite.unwrap();
        assert_eq!(step, 8);
        assert_eq!(v[0], f64::INFINITY);
        assert_eq!(v[1], f64::from(0.3f32));
    }
}
