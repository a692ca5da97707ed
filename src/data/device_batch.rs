//! Training batches built on the training device (`[runtime] data =
//! "device"`): a split of small images is uploaded once as u8, and a step
//! sends up only the sample indices and the (dx, dy, flip) parameters drawn
//! from the ChaCha streams. Pad-crop, flip and normalisation are a handful of
//! batched tensor ops (index_select, gather, take), with no per-sample loop
//! and no host round trip.
//!
//! The result is bit-identical to the host path ([`super::small`]): the same
//! source pixel is chosen for every output pixel, out-of-image pixels read
//! the value 0, and the value goes through the same per-channel 256-entry
//! lookup table (computed once on the host, copied to the device).
use super::pixels::PixelNorm;
use crate::data::augment::{pad_crop, Distortion};
use anyhow::{ensure, Result};
use tch::{Device, Kind, Tensor};

/// One view's parameters for a batch, on the CPU: `[B, 3]` i64 rows of
/// `(dx, dy, flip)`.
pub fn view_params(
    indices: &[usize],
    seed: u64,
    epoch: u64,
    view: u8,
    pad: u32,
    d: Distortion,
) -> Tensor {
    let mut v = Vec::with_capacity(indices.len() * 3);
    for &i in indices {
        let p = pad_crop(seed, epoch, i as u64, view, pad, d);
        v.extend([i64::from(p.dx), i64::from(p.dy), i64::from(p.flip)]);
    }
    Tensor::from_slice(&v).view([indices.len() as i64, 3])
}

/// A training split resident on the device.
pub struct DeviceImages {
    /// `[N, 3, side * side]` u8.
    pixels: Tensor,
    /// `[N]` i64.
    labels: Tensor,
    /// The normalisation table on the device.
    norm: PixelNorm,
    side: i64,
    pad: i64,
    device: Device,
}

impl DeviceImages {
    /// Uploads `pixels` (`n` planar `3 x side x side` images), their labels
    /// and the lookup table to `device`.
    pub fn upload(
        pixels: &[u8],
        labels: &[u16],
        lut: &[[f32; 256]; 3],
        side: usize,
        pad: u32,
        device: Device,
    ) -> Result<Self> {
        let n = labels.len() as i64;
        let s = side as i64;
        ensure!(
            pixels.len() == labels.len() * 3 * side * side,
            "{} pixel bytes for {} images of 3x{side}x{side}",
            pixels.len(),
            labels.len()
        );
        let l: Vec<i64> = labels.iter().map(|&l| i64::from(l)).collect();
        Ok(DeviceImages {
            pixels: Tensor::from_slice(pixels)
                .view([n, 3, s * s])
                .to_device(device),
            labels: Tensor::from_slice(&l).to_device(device),
            norm: PixelNorm::new(lut, device),
            side: s,
            pad: i64::from(pad),
            device,
        })
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// Zero padding on each side before the crop.
    pub fn pad(&self) -> u32 {
        self.pad as u32
    }

    /// Labels of the samples `idx` (`[B]` i64 on the device).
    pub fn labels(&self, idx: &Tensor) -> Tensor {
        self.labels.index_select(0, idx)
    }

    /// One view of the samples `idx` (`[B]` i64 on the device) with the
    /// parameters `params` (`[B, 3]` i64 on the device, see [`view_params`]):
    /// `[B, 3, side, side]` f32, normalised.
    pub fn view(&self, idx: &Tensor, params: &Tensor) -> Tensor {
        let (s, pad, dev) = (self.side, self.pad, self.device);
        let b = idx.size()[0];
        let col = |k: i64| params.select(1, k).view([b, 1, 1]);
        let (dx, dy, flip) = (col(0), col(1), col(2));
        let ar = Tensor::arange(s, (Kind::Int64, dev));
        // Output row y reads source row y + dy - pad; output column x reads
        // the crop's column (s - 1 - x when flipped), i.e. source column
        // cx + dx - pad: crop first, then mirror the crop (torchvision order).
        let sy = ar.view([1, s, 1]) + dy - pad;
        let x = ar.view([1, 1, s]);
        let cx = &flip * (-2 * &x + (s - 1)) + &x;
        let sx = cx + dx - pad;
        let inside = |t: &Tensor| t.ge(0).logical_and(&t.lt(s));
        let valid = inside(&sy).logical_and(&inside(&sx)); // [B, s, s]
        let pos = sy.clamp(0, s - 1) * s + sx.clamp(0, s - 1);
        let pos = pos.view([b, 1, s * s]).expand([b, 3, s * s], false);
        let v = self
            .pixels
            .index_select(0, idx)
            .gather(2, &pos, false)
            .to_kind(Kind::Int64)
            * valid.view([b, 1, s * s]);
        self.norm.lookup(&v).view([b, 3, s, s])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::small::{SmallImages, Split};
    use crate::data::{Dataset, DatasetInfo};

    fn random_images(n: usize) -> SmallImages {
        // A fixed LCG: every byte value occurs, including 0 and 255.
        let mut x = 12345u32;
        let pixels = (0..n * 3 * 1024)
            .map(|_| {
                x = x.wrapping_mul(1664525).wrapping_add(1013904223);
                (x >> 24) as u8
            })
            .collect();
        let labels = (0..n).map(|i| (i % 7) as u16).collect();
        let split = Split { pixels, labels };
        let info = DatasetInfo {
            name: "t".into(),
            fingerprint: String::new(),
            classes: 7,
            train_len: n,
            test_len: n,
            input_size: 32,
            source: "test".into(),
            skipped: 0,
        };
        SmallImages::new(
            info,
            32,
            split.clone(),
            split,
            [0.507, 0.4865, 0.441],
            [0.267, 0.256, 0.276],
        )
    }

    #[test]
    fn device_views_equal_the_host_views_byte_for_byte() {
        let d = random_images(40);
        let dev = d.device_images(Device::Cpu).unwrap().unwrap();
        let idx: Vec<usize> = (0..40).rev().chain([3, 3, 17]).collect();
        let idx_t = Tensor::from_slice(&idx.iter().map(|&i| i as i64).collect::<Vec<_>>());
        for dist in [
            Distortion::CropFlip,
            Distortion::FlipOnly,
            Distortion::CropOnly,
            Distortion::None,
        ] {
            for (epoch, view) in [(0u64, 0u8), (0, 1), (5, 0), (11, 1)] {
                let host = d.train_batch(&idx, 9, epoch, view, dist).unwrap();
                let p = view_params(&idx, 9, epoch, view, dev.pad(), dist);
                let got = dev.view(&idx_t, &p);
                assert_eq!(got.size(), host.size());
                assert_eq!(got.kind(), Kind::Float);
                let a: Vec<f32> = Vec::try_from(host.flatten(0, -1)).unwrap();
                let b: Vec<f32> = Vec::try_from(got.flatten(0, -1)).unwrap();
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert!(
                    bits(&a) == bits(&b),
                    "{dist:?} epoch {epoch} view {view}: first difference at {:?}",
                    a.iter()
                        .zip(&b)
                        .position(|(x, y)| x.to_bits() != y.to_bits())
                );
            }
        }
        let labels = dev.labels(&idx_t);
        assert!(labels.equal(&d.train_labels(&idx)));
    }

    #[test]
    fn upload_checks_the_byte_count() {
        let lut = [[0f32; 256]; 3];
        assert!(DeviceImages::upload(&[0u8; 100], &[1], &lut, 32, 4, Device::Cpu).is_err());
    }
}
