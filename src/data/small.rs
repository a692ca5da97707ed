//! Small images held fully in memory as u8 (CIFAR-10/100, synthetic):
//! N x 3 x H x W planar, the layout of the CIFAR files. A training view is
//! zero-pad, crop and flip (docs/method.md §4), then per-channel normalisation,
//! written straight into the batch buffer (no per-sample copies).
use super::device_batch::DeviceImages;
use super::fingerprint::SampleHasher;
use super::{Dataset, DatasetInfo};
use crate::data::augment::{pad_crop, Distortion};
use anyhow::{ensure, Result};
use tch::Tensor;

/// One split: `labels.len()` images of `3 * side * side` bytes each.
#[derive(Clone)]
pub struct Split {
    pub pixels: Vec<u8>,
    pub labels: Vec<u16>,
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

pub struct SmallImages {
    info: DatasetInfo,
    side: usize,
    pad: u32,
    train: Split,
    test: Split,
    /// `lut[c][v]` = (v / 255 - mean[c]) / std[c].
    lut: [[f32; 256]; 3],
}

impl SmallImages {
    pub fn new(
        info: DatasetInfo,
        side: usize,
        train: Split,
        test: Split,
        mean: [f32; 3],
        std: [f32; 3],
    ) -> Self {
        let mut lut = [[0f32; 256]; 3];
        for (c, row) in lut.iter_mut().enumerate() {
            for (v, x) in row.iter_mut().enumerate() {
                *x = (v as f32 / 255.0 - mean[c]) / std[c];
            }
        }
        SmallImages {
            info,
            side,
            pad: 4,
            train,
            test,
            lut,
        }
    }

    pub fn train_split(&self) -> &Split {
        &self.train
    }

    pub fn test_split(&self) -> &Split {
        &self.test
    }

    fn image<'a>(&self, split: &'a Split, i: usize) -> &'a [u8] {
        let n = 3 * self.side * self.side;
        &split.pixels[i * n..(i + 1) * n]
    }

    /// Samples `ids` of `split`, normalised only (the evaluation
    /// transform), and their labels.
    fn eval_batch(&self, split: &Split, ids: impl Iterator<Item = usize>) -> (Tensor, Tensor) {
        let s = self.side;
        let mut buf = Vec::new();
        let mut labels = Vec::new();
        for i in ids {
            let img = self.image(split, i);
            for c in 0..3 {
                buf.extend(
                    img[c * s * s..(c + 1) * s * s]
                        .iter()
                        .map(|&v| self.lut[c][v as usize]),
                );
            }
            labels.push(i64::from(split.labels[i]));
        }
        (
            self.to_tensor(buf, labels.len()),
            Tensor::from_slice(&labels),
        )
    }

    fn to_tensor(&self, buf: Vec<f32>, n: usize) -> Tensor {
        let s = self.side as i64;
        Tensor::from_slice(&buf).view([n as i64, 3, s, s])
    }
}

impl Dataset for SmallImages {
    fn info(&self) -> &DatasetInfo {
        &self.info
    }

    fn train_views(
        &self,
        images: &[usize],
        at: &[usize],
        seed: u64,
        epoch: u64,
        view: u8,
        distortion: Distortion,
    ) -> Result<Tensor> {
        ensure!(
            images.len() == at.len(),
            "{} images but {} draw addresses",
            images.len(),
            at.len()
        );
        let s = self.side;
        let pad = self.pad as i64;
        let mut buf = vec![0f32; images.len() * 3 * s * s];
        for (b, (&i, &a)) in images.iter().zip(at).enumerate() {
            ensure!(i < self.train.len(), "training index {i} out of range");
            let p = pad_crop(seed, epoch, a as u64, view, self.pad, distortion);
            let img = self.image(&self.train, i);
            for c in 0..3 {
                let lut = &self.lut[c];
                let zero = lut[0];
                let src = &img[c * s * s..(c + 1) * s * s];
                let dst = &mut buf[(b * 3 + c) * s * s..(b * 3 + c + 1) * s * s];
                for y in 0..s {
                    let sy = y as i64 + i64::from(p.dy) - pad;
                    let row = &mut dst[y * s..(y + 1) * s];
                    if sy < 0 || sy >= s as i64 {
                        row.fill(zero);
                        continue;
                    }
                    let src_row = &src[sy as usize * s..(sy as usize + 1) * s];
                    for (x, out) in row.iter_mut().enumerate() {
                        // Crop first, then mirror the crop (torchvision order).
                        let cx = if p.flip { s - 1 - x } else { x } as i64;
                        let sx = cx + i64::from(p.dx) - pad;
                        *out = if sx < 0 || sx >= s as i64 {
                            zero
                        } else {
                            lut[src_row[sx as usize] as usize]
                        };
                    }
                }
            }
        }
        Ok(self.to_tensor(buf, images.len()))
    }

    fn train_labels(&self, indices: &[usize]) -> Tensor {
        let l: Vec<i64> = indices
            .iter()
            .map(|&i| i64::from(self.train.labels[i]))
            .collect();
        Tensor::from_slice(&l)
    }

    fn device_images(&self, device: tch::Device) -> Result<Option<DeviceImages>> {
        let t = &self.train;
        DeviceImages::upload(&t.pixels, &t.labels, &self.lut, self.side, self.pad, device).map(Some)
    }

    fn test_batch(&self, start: usize, len: usize) -> Result<(Tensor, Tensor)> {
        let end = (start + len).min(self.test.len());
        Ok(self.eval_batch(&self.test, start..end))
    }

    fn train_eval_batch(&self, indices: &[usize]) -> Result<(Tensor, Tensor)> {
        if let Some(&i) = indices.iter().find(|&&i| i >= self.train.len()) {
            anyhow::bail!("training index {i} out of range (0..{})", self.train.len());
        }
        Ok(self.eval_batch(&self.train, indices.iter().copied()))
    }

    fn train_fingerprint(&self, indices: &[usize]) -> Result<String> {
        let mut h = SampleHasher::new();
        for &i in indices {
            ensure!(i < self.train.len(), "training index {i} out of range");
            h.sample(self.train.labels[i], self.image(&self.train, i));
        }
        Ok(h.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_image() -> SmallImages {
        // pixel value = x + 32 * (y % 4) per channel, distinct across a row.
        let mut px = vec![0u8; 3 * 32 * 32];
        for c in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    px[c * 1024 + y * 32 + x] = (x + 32 * (y % 4) + c) as u8;
                }
            }
        }
        let split = Split {
            pixels: px,
            labels: vec![3],
        };
        let info = DatasetInfo {
            name: "t".into(),
            fingerprint: String::new(),
            classes: 10,
            train_len: 1,
            test_len: 1,
            input_size: 32,
            source: "test".into(),
            skipped: 0,
        };
        SmallImages::new(info, 32, split.clone(), split, [0.0; 3], [1.0; 3])
    }

    #[test]
    fn crop_and_flip_follow_the_parameters() {
        let d = one_image();
        for epoch in 0..20 {
            let p = pad_crop(9, epoch, 0, 0, 4, Distortion::CropFlip);
            let t = d
                .train_batch(&[0], 9, epoch, 0, Distortion::CropFlip)
                .unwrap();
            let v: Vec<f32> = Vec::try_from(t.flatten(0, -1)).unwrap();
            for c in 0..3usize {
                for y in 0..32i64 {
                    for x in 0..32i64 {
                        let cx = if p.flip { 31 - x } else { x };
                        let (sx, sy) = (cx + p.dx as i64 - 4, y + p.dy as i64 - 4);
                        let want = if (0..32).contains(&sx) && (0..32).contains(&sy) {
                            (sx + 32 * (sy % 4) + c as i64) as f32 / 255.0
                        } else {
                            0.0
                        };
                        let got = v[c * 1024 + (y * 32 + x) as usize];
                        assert_eq!(got, want, "epoch {epoch} c{c} y{y} x{x} {p:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn test_batch_is_normalised_only() {
        let d = one_image();
        let (x, y) = d.test_batch(0, 10).unwrap();
        assert_eq!(x.size(), vec![1, 3, 32, 32]);
        assert_eq!(i64::try_from(y.get(0)).unwrap(), 3);
        assert_eq!(
            f32::try_from(x.get(0).get(0).get(1).get(5)).unwrap(),
            (5.0 + 32.0) / 255.0
        );
    }
}
