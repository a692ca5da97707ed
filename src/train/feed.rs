//! What the training loop consumes each step, built ahead on a producer
//! thread (with the run's loader threads) along one of three paths
//! ([`Path`]):
//! - `Host`: finished f32 views made on the host (`[runtime] data = "host"`,
//!   or a dataset with no device path);
//! - `Device`: only the sample indices and each view's (dx, dy, flip)
//!   parameters, from which the views are made on the training device out of
//!   the split uploaded once ([`crate::data::device_batch`]; CIFAR,
//!   synthetic);
//! - `Pixels`: the views decoded, cropped and resized on the host as u8
//!   (page-locked on a GPU) and normalised on the device
//!   ([`crate::data::pixels`]; ImageNet).
//!
//! All are pure functions of (seed, epoch, indices, view) and give the same
//! bits. Which views a step has, and whether a view shows the samples or
//! their same-class partners, is the method's plan ([`Feed`]).
use crate::data::device_batch::{view_params, DeviceImages};
use crate::data::partner::ClassIndex;
use crate::data::pixels::{views_batch, PixelNorm};
use crate::data::{Dataset, ViewReq};
use crate::method::{
    self,
    plan::{Images, ViewSpec},
};
use crate::suite::RunConfig;
use anyhow::{bail, Result};
use tch::{Device, Tensor};

/// How a run's batches are made (chosen once per run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Host,
    /// The split is on the device; its zero padding.
    Device {
        pad: u32,
    },
    /// u8 views normalised on the device; `pin`: the GPU whose page-locked
    /// host buffers they are written into (`None` on the CPU).
    Pixels {
        pin: Option<Device>,
    },
}

/// One step's inputs on the CPU: a tensor per view, and the labels.
pub struct Batch {
    pub views: Vec<Tensor>,
    pub labels: Tensor,
    pub len: usize,
}

/// A step's inputs as the producer thread hands them over, every view of a
/// sample in one tensor (view 0's B rows, then view 1's), so a step makes
/// one upload and a joint forward needs no concatenation.
pub enum Prepared {
    /// `x`: `[V * B, 3, S, S]` f32, normalised.
    Host {
        x: Tensor,
        labels: Tensor,
        samples: Tensor,
        len: usize,
    },
    /// `idx`: `[V * B]` i64 (the images of each view: the samples, or their
    /// partners); `params`: `[V * B, 3]` i64, each view's (dx, dy, flip).
    Device {
        idx: Tensor,
        params: Tensor,
        len: usize,
    },
    /// `x`: `[V * B, S, S, 3]` u8.
    Pixels {
        x: Tensor,
        labels: Tensor,
        samples: Tensor,
        len: usize,
    },
}

/// A step's inputs on the training device.
pub struct Inputs {
    /// `[V * B, 3, S, S]` f32: every view, view after view.
    pub x: Tensor,
    /// `[B]` i64.
    pub labels: Tensor,
    /// `[B]` i64: the samples' indices in the training split.
    pub samples: Tensor,
    /// B.
    pub len: usize,
}

impl Inputs {
    /// View `v` of every sample (`[B, 3, S, S]`, a slice of `x`).
    pub fn view(&self, v: usize) -> Tensor {
        self.views(v, 1)
    }

    /// Views `first .. first + count`, one after the other (a slice of `x`).
    pub fn views(&self, first: usize, count: usize) -> Tensor {
        let n = self.len as i64;
        self.x.narrow(0, first as i64 * n, count as i64 * n)
    }
}

/// Rank `rank`'s share of a global batch of `len` samples among `world`
/// ranks: the positions `[rank * len / world, (rank + 1) * len / world)` of
/// the batch (consecutive slices in rank order; equal when `world` divides
/// `len`, which the suite guarantees for every full batch). The batch itself
/// is the same for every world size: the samples and every distortion are
/// drawn by sample index from the same streams, so the concatenation of the
/// ranks' shares, in rank order, is the world-1 batch.
pub fn share(len: usize, rank: usize, world: usize) -> std::ops::Range<usize> {
    (rank * len / world)..((rank + 1) * len / world)
}

/// What the producer thread makes for every step of a run: the views of
/// the method's plan, with the partner index when a view needs one. Built
/// once per run; a pure function of (config, dataset).
pub struct Feed {
    seed: u64,
    views: Vec<ViewSpec>,
    partners: Option<ClassIndex>,
}

impl Feed {
    pub fn new(cfg: &RunConfig, data: &dyn Dataset) -> Result<Feed> {
        let plan = method::plan(&cfg.arm);
        let partners = if plan.needs_partners() {
            let n = data.info().train_len;
            let all: Vec<usize> = (0..n).collect();
            let labels: Vec<i64> = Vec::try_from(data.train_labels(&all))?;
            Some(ClassIndex::new(&labels)?)
        } else {
            None
        };
        Ok(Feed {
            seed: cfg.seed,
            views: plan.views,
            partners,
        })
    }

    /// The images of every view of the samples `idx` in `epoch`.
    fn images(&self, idx: &[usize], epoch: u64) -> Vec<Vec<usize>> {
        self.views
            .iter()
            .map(|v| match v.images {
                Images::Samples => idx.to_vec(),
                Images::SameClass => self
                    .partners
                    .as_ref()
                    .expect("a plan with partners has a class index")
                    .partners(self.seed, epoch, idx),
            })
            .collect()
    }

    fn requests<'a>(&self, images: &'a [Vec<usize>], idx: &'a [usize]) -> Vec<ViewReq<'a>> {
        self.views
            .iter()
            .zip(images)
            .enumerate()
            .map(|(v, (spec, im))| ViewReq {
                images: im,
                at: idx,
                view: v as u8,
                distortion: spec.distortion,
            })
            .collect()
    }

    /// The views and labels of the training samples `idx` in `epoch`, built
    /// on the host.
    pub fn make_batch(&self, data: &dyn Dataset, idx: &[usize], epoch: u32) -> Result<Batch> {
        let epoch = u64::from(epoch);
        let images = self.images(idx, epoch);
        let views = self
            .requests(&images, idx)
            .iter()
            .map(|r| data.train_views(r.images, r.at, self.seed, epoch, r.view, r.distortion))
            .collect::<Result<_>>()?;
        Ok(Batch {
            views,
            labels: data.train_labels(idx),
            len: idx.len(),
        })
    }

    /// What the producer thread makes for the samples `idx` along `path`.
    pub fn prepare(
        &self,
        data: &dyn Dataset,
        idx: &[usize],
        epoch: u32,
        path: Path,
    ) -> Result<Prepared> {
        let n = data.info().train_len;
        if let Some(&i) = idx.iter().find(|&&i| i >= n) {
            bail!("training index {i} out of range (the split has {n} samples)");
        }
        let len = idx.len();
        let samples = || Tensor::from_slice(&idx.iter().map(|&i| i as i64).collect::<Vec<_>>());
        match path {
            Path::Host => {
                let b = self.make_batch(data, idx, epoch)?;
                let x = match b.views.len() {
                    1 => b.views[0].shallow_clone(),
                    _ => Tensor::cat(&b.views, 0),
                };
                Ok(Prepared::Host {
                    x,
                    labels: b.labels,
                    samples: samples(),
                    len,
                })
            }
            Path::Device { pad } => {
                let epoch = u64::from(epoch);
                let images = self.images(idx, epoch);
                let params: Vec<Tensor> = self
                    .requests(&images, idx)
                    .iter()
                    .map(|r| view_params(r.at, self.seed, epoch, r.view, pad, r.distortion))
                    .collect();
                let ids: Vec<i64> = images.iter().flatten().map(|&i| i as i64).collect();
                Ok(Prepared::Device {
                    idx: Tensor::from_slice(&ids),
                    params: Tensor::cat(&params, 0),
                    len,
                })
            }
            Path::Pixels { pin } => {
                let Some(src) = data.pixel_views() else {
                    bail!("the dataset has no u8 pixel path");
                };
                let epoch = u64::from(epoch);
                let images = self.images(idx, epoch);
                let req = self.requests(&images, idx);
                Ok(Prepared::Pixels {
                    x: views_batch(src, &req, self.seed, epoch, pin)?,
                    labels: data.train_labels(idx),
                    samples: samples(),
                    len,
                })
            }
        }
    }
}

/// Where a run's device-side inputs come from: the split on the device, or
/// the normalisation table for u8 views (or neither: host batches).
pub enum DeviceSide {
    None,
    Images(DeviceImages),
    Pixels(PixelNorm),
}

impl DeviceSide {
    /// The device side of `path` for `data` on `device`.
    pub fn new(data: &dyn Dataset, place_on_device: bool, device: Device) -> Result<Self> {
        if !place_on_device {
            return Ok(DeviceSide::None);
        }
        if let Some(im) = data.device_images(device)? {
            return Ok(DeviceSide::Images(im));
        }
        Ok(match data.pixel_views() {
            Some(src) => DeviceSide::Pixels(PixelNorm::new(&src.lut(), device)),
            None => DeviceSide::None,
        })
    }

    /// The batch path this side serves.
    pub fn path(&self, device: Device) -> Path {
        match self {
            DeviceSide::None => Path::Host,
            DeviceSide::Images(im) => Path::Device { pad: im.pad() },
            DeviceSide::Pixels(_) => Path::Pixels {
                pin: device.is_cuda().then_some(device),
            },
        }
    }
}

/// `t` on `dev` without waiting for the device: a blocking copy (tch's
/// `to_device`) synchronises the stream after every upload, which would
/// stall the host behind the previous step's kernels on a GPU. From pageable
/// memory CUDA copies the bytes to a staging buffer before the call returns,
/// so `t` may be dropped at once.
fn upload(t: &Tensor, dev: Device) -> Tensor {
    t.to_device_(dev, t.kind(), true, false)
}

impl Prepared {
    /// The inputs on `dev` (made there for the device paths).
    pub fn into_inputs(self, dev: Device, side: &DeviceSide) -> Inputs {
        match (self, side) {
            (Prepared::Device { idx, params, len }, DeviceSide::Images(im)) => {
                let idx = upload(&idx, im.device());
                // View 0 shows the step's own samples.
                let samples = idx.narrow(0, 0, len as i64);
                Inputs {
                    x: im.view(&idx, &upload(&params, im.device())),
                    labels: im.labels(&samples),
                    samples,
                    len,
                }
            }
            (
                Prepared::Pixels {
                    x,
                    labels,
                    samples,
                    len,
                },
                DeviceSide::Pixels(norm),
            ) => Inputs {
                x: norm.normalise(&x),
                labels: upload(&labels, dev),
                samples: upload(&samples, dev),
                len,
            },
            (
                Prepared::Host {
                    x,
                    labels,
                    samples,
                    len,
                },
                _,
            ) => Inputs {
                x: upload(&x, dev),
                labels: upload(&labels, dev),
                samples: upload(&samples, dev),
                len,
            },
            (Prepared::Device { .. } | Prepared::Pixels { .. }, _) => {
                unreachable!("device batches are only prepared for a run with their device side")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::{generate, SyntheticSpec};

    #[test]
    fn shares_cover_a_batch_in_order() {
        for (len, world) in [(128, 2), (128, 4), (80, 3), (7, 7), (5, 1)] {
            let mut next = 0;
            for r in 0..world {
                let s = share(len, r, world);
                assert_eq!(s.start, next, "{len}/{world}");
                assert!(s.len() >= len / world && s.len() <= len.div_ceil(world));
                next = s.end;
            }
            assert_eq!(next, len);
        }
        assert_eq!(share(128, 1, 2), 64..128);
    }

    /// The ranks' shares, built by each rank alone, concatenate to the world-1
    /// batch, byte for byte, for every view (same samples, same distortions).
    #[test]
    fn the_ranks_views_are_the_world_1_views() {
        let cfg = crate::suite::load(
            std::path::Path::new("suites/smoke.toml"),
            &Default::default(),
        )
        .unwrap()
        .runs
        .into_iter()
        .find(|c| c.arm.views == 2)
        .unwrap();
        let data = generate(&SyntheticSpec {
            classes: 10,
            train: 64,
            test: 8,
            seed: 3,
            noise: 0.25,
        });
        let idx: Vec<usize> = (0..24).map(|i| (i * 7) % 64).collect();
        let feed = Feed::new(&cfg, &data).unwrap();
        let whole = feed.make_batch(&data, &idx, 3).unwrap();
        for world in [2, 3, 4] {
            let parts: Vec<Batch> = (0..world)
                .map(|r| {
                    feed.make_batch(&data, &idx[share(idx.len(), r, world)], 3)
                        .unwrap()
                })
                .collect();
            for v in 0..2 {
                let cat = Tensor::cat(&parts.iter().map(|b| &b.views[v]).collect::<Vec<_>>(), 0);
                assert!(cat.equal(&whole.views[v]), "view {v}, world {world}");
            }
            let labels = Tensor::cat(&parts.iter().map(|b| &b.labels).collect::<Vec<_>>(), 0);
            assert!(labels.equal(&whole.labels));
        }
    }
}
