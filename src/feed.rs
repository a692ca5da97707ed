//! What the training loop consumes each step, built ahead on a producer
//! thread: either finished f32 views made on the host (`[runtime] data =
//! "host"`, or a dataset without a device path), or, with `data = "device"`,
//! only the sample indices and each view's (dx, dy, flip) parameters, from
//! which the views are made on the training device
//! ([`crate::data::device_batch`]). Both are pure functions of (seed, epoch,
//! indices, view) and give the same bits.
use crate::augment::Distortion;
use crate::data::device_batch::{view_params, DeviceImages};
use crate::data::Dataset;
use crate::suite::RunConfig;
use anyhow::Result;
use tch::{Device, Tensor};

/// One step's inputs on the CPU: a tensor per view, and the labels.
pub struct Batch {
    pub views: Vec<Tensor>,
    pub labels: Tensor,
    pub len: usize,
}

/// A step's inputs as the producer thread hands them over.
pub enum Prepared {
    Host(Batch),
    /// `idx`: `[B]` i64; `params`: one `[B, 3]` i64 tensor per view.
    Device {
        idx: Tensor,
        params: Vec<Tensor>,
        len: usize,
    },
}

fn distortion(cfg: &RunConfig, view: u8) -> Distortion {
    cfg.arm
        .distortions
        .get(view as usize)
        .copied()
        .unwrap_or(Distortion::CropFlip)
}

/// The views and labels of the training samples `idx` in `epoch`, built on
/// the host.
pub fn make_batch(cfg: &RunConfig, data: &dyn Dataset, idx: &[usize], epoch: u32) -> Result<Batch> {
    let views = (0..cfg.arm.views)
        .map(|v| data.train_batch(idx, cfg.seed, u64::from(epoch), v, distortion(cfg, v)))
        .collect::<Result<_>>()?;
    Ok(Batch {
        views,
        labels: data.train_labels(idx),
        len: idx.len(),
    })
}

/// What the producer thread makes for the samples `idx`: the host batch, or
/// with `device_pad` (the padding of the device-resident split) only the
/// indices and the parameters.
pub fn prepare(
    cfg: &RunConfig,
    data: &dyn Dataset,
    idx: &[usize],
    epoch: u32,
    device_pad: Option<u32>,
) -> Result<Prepared> {
    let Some(pad) = device_pad else {
        return make_batch(cfg, data, idx, epoch).map(Prepared::Host);
    };
    let n = data.info().train_len;
    if let Some(&i) = idx.iter().find(|&&i| i >= n) {
        anyhow::bail!("training index {i} out of range (the split has {n} samples)");
    }
    let params = (0..cfg.arm.views)
        .map(|v| view_params(idx, cfg.seed, u64::from(epoch), v, pad, distortion(cfg, v)))
        .collect();
    let ids: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
    Ok(Prepared::Device {
        idx: Tensor::from_slice(&ids),
        params,
        len: idx.len(),
    })
}

impl Prepared {
    /// The views and labels on `dev` (made there for the device path).
    pub fn into_inputs(
        self,
        dev: Device,
        images: Option<&DeviceImages>,
    ) -> (Vec<Tensor>, Tensor, usize) {
        match (self, images) {
            (Prepared::Device { idx, params, len }, Some(im)) => {
                let idx = idx.to_device(im.device());
                let views = params
                    .iter()
                    .map(|p| im.view(&idx, &p.to_device(im.device())))
                    .collect();
                (views, im.labels(&idx), len)
            }
            (Prepared::Host(b), _) => (
                b.views.iter().map(|t| t.to_device(dev)).collect(),
                b.labels.to_device(dev),
                b.len,
            ),
            (Prepared::Device { .. }, None) => {
                unreachable!("device batches are only prepared when the split is on the device")
            }
        }
    }
}
