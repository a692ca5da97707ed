//! Training views decoded on the host and normalised on the training device
//! (`[runtime] data = "device"` for datasets too large to keep on the device,
//! ImageNet): the loader threads write each view as 8-bit HWC pixels (the
//! crop resized and, when drawn, mirrored) straight into one u8 batch tensor
//! (page-locked when the device is a GPU, so the upload is an asynchronous
//! DMA), a quarter of the bytes of f32; the device turns them into the
//! normalised NCHW f32 batch with one gather from the same per-channel
//! 256-entry table the host path uses, so both paths give the same bits.
use anyhow::{ensure, Result};
use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use crate::data::augment::Distortion;
use crate::data::ViewReq;

/// A dataset whose training views can be written as u8 pixels.
pub trait PixelViews: Sync {
    /// Side of the square view.
    fn side(&self) -> usize;

    /// `lut[c][v]`: the normalised value of channel `c` at level `v`, as the
    /// host path computes it.
    fn lut(&self) -> [[f32; 256]; 3];

    /// Training image `i`'s view for (seed, epoch, view), its distortion
    /// drawn at the address of sample `at` (`i` itself unless the view shows
    /// another image than its sample, see [`crate::data::Dataset::train_views`]),
    /// as `side x side x 3` u8 HWC, mirrored when the draw says so, into `dst`.
    #[allow(clippy::too_many_arguments)]
    fn pixel_view(
        &self,
        i: usize,
        at: usize,
        seed: u64,
        epoch: u64,
        view: u8,
        distortion: Distortion,
        dst: &mut [u8],
    ) -> Result<()>;
}

/// One view of the samples `indices` as a `[B, side, side, 3]` u8 tensor on
/// the CPU, page-locked for the GPU `pin` when given (see [`views_batch`]).
pub fn pixel_batch(
    src: &dyn PixelViews,
    indices: &[usize],
    seed: u64,
    epoch: u64,
    view: u8,
    distortion: Distortion,
    pin: Option<Device>,
) -> Result<Tensor> {
    let req = ViewReq {
        images: indices,
        at: indices,
        view,
        distortion,
    };
    views_batch(src, &[req], seed, epoch, pin)
}

/// Several views of one step's samples, one after the other in one
/// `[V * B, side, side, 3]` u8 tensor on the CPU (one upload per step),
/// page-locked for the GPU `pin` when given; the views are written in
/// parallel on the current rayon pool (the run's loader threads).
pub fn views_batch(
    src: &dyn PixelViews,
    views: &[ViewReq],
    seed: u64,
    epoch: u64,
    pin: Option<Device>,
) -> Result<Tensor> {
    let s = src.side();
    let per = s * s * 3;
    let b = views.first().map_or(0, |v| v.images.len());
    for v in views {
        ensure!(
            v.images.len() == b && v.at.len() == b,
            "every view of a step has the step's {b} samples"
        );
    }
    let rows = views.len() * b;
    let t = Tensor::empty(
        [rows as i64, s as i64, s as i64, 3],
        (Kind::Uint8, Device::Cpu),
    );
    // Page-locked memory comes from libtorch's caching host allocator, so
    // after the first batches no new allocation is made.
    let t = match pin {
        Some(d) => t.pin_memory(d),
        None => t,
    };
    ensure!(t.is_contiguous(), "a fresh u8 batch is contiguous");
    // SAFETY: `t` is a fresh contiguous u8 tensor of exactly `rows * per`
    // bytes that nothing else references until it is returned; the slice
    // does not outlive this function.
    let buf = unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut u8, rows * per) };
    let b = b.max(1);
    buf.par_chunks_mut(per)
        .enumerate()
        .try_for_each(|(row, dst)| {
            let v = &views[row / b];
            let k = row % b;
            src.pixel_view(v.images[k], v.at[k], seed, epoch, v.view, v.distortion, dst)
        })?;
    Ok(t)
}

/// The normalisation table on the training device.
pub struct PixelNorm {
    /// `[3 * 256]` f32: `lut[c * 256 + v]`.
    lut: Tensor,
    device: Device,
}

impl PixelNorm {
    pub fn new(lut: &[[f32; 256]; 3], device: Device) -> Self {
        let flat: Vec<f32> = lut.iter().flatten().copied().collect();
        PixelNorm {
            lut: Tensor::from_slice(&flat).to_device(device),
            device,
        }
    }

    /// `[B, S, S, 3]` u8 on the CPU -> `[B, 3, S, S]` f32 normalised on the
    /// device (the upload is non-blocking; the gather waits for it on the
    /// device's stream, not on the host).
    pub fn normalise(&self, pixels: &Tensor) -> Tensor {
        let x = pixels.to_device_(self.device, Kind::Uint8, true, false);
        self.lookup(&x.permute([0, 3, 1, 2]).to_kind(Kind::Int64))
    }

    /// The table's value of every level of `levels` (i64 on the device,
    /// channels on dim 1, any trailing dims): one gather, the same values as
    /// the host path's `lut[c][v]`. Both device paths normalise through it.
    pub fn lookup(&self, levels: &Tensor) -> Tensor {
        let mut shape = vec![1i64, 3];
        shape.resize(levels.dim(), 1);
        let chan = Tensor::arange(3, (Kind::Int64, self.device)).view(shape.as_slice()) * 256;
        self.lut.take(&(levels + chan))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source whose pixel at (y, x, c) of sample i is a hash of all four.
    struct Toy;

    impl PixelViews for Toy {
        fn side(&self) -> usize {
            5
        }
        fn lut(&self) -> [[f32; 256]; 3] {
            std::array::from_fn(|c| std::array::from_fn(|v| v as f32 * 0.5 - c as f32))
        }
        fn pixel_view(
            &self,
            i: usize,
            at: usize,
            seed: u64,
            epoch: u64,
            view: u8,
            _d: Distortion,
            dst: &mut [u8],
        ) -> Result<()> {
            for (k, p) in dst.iter_mut().enumerate() {
                *p = (k as u64 * 31
                    + i as u64 * 7
                    + at as u64 * 11
                    + seed
                    + epoch * 3
                    + u64::from(view) * 5) as u8;
            }
            Ok(())
        }
    }

    #[test]
    fn batches_hold_each_sample_and_normalise_through_the_table() {
        let idx = [4usize, 0, 9];
        let t = pixel_batch(&Toy, &idx, 1, 2, 1, Distortion::CropFlip, None).unwrap();
        assert_eq!(t.size(), [3, 5, 5, 3]);
        let bytes: Vec<u8> = Vec::try_from(t.flatten(0, -1)).unwrap();
        for (b, &i) in idx.iter().enumerate() {
            let mut one = vec![0u8; 75];
            Toy.pixel_view(i, i, 1, 2, 1, Distortion::CropFlip, &mut one)
                .unwrap();
            assert_eq!(&bytes[b * 75..(b + 1) * 75], &one[..], "sample {i}");
        }
        // Two views in one tensor: each block equals its own batch.
        let req = |view| ViewReq {
            images: &idx,
            at: &idx,
            view,
            distortion: Distortion::CropFlip,
        };
        let both = views_batch(&Toy, &[req(0), req(1)], 1, 2, None).unwrap();
        assert_eq!(both.size(), [6, 5, 5, 3]);
        let v0 = pixel_batch(&Toy, &idx, 1, 2, 0, Distortion::CropFlip, None).unwrap();
        assert!(both.narrow(0, 0, 3).equal(&v0));
        assert!(both.narrow(0, 3, 3).equal(&t));
        // A view of other images than its samples: row k shows image
        // `other[k]` drawn at sample `idx[k]`'s address.
        let other = [1usize, 1, 2];
        let mixed = ViewReq {
            images: &other,
            ..req(1)
        };
        let m = views_batch(&Toy, &[req(0), mixed], 1, 2, None).unwrap();
        let rows: Vec<u8> = Vec::try_from(m.narrow(0, 3, 3).flatten(0, -1)).unwrap();
        for k in 0..3 {
            let mut one = vec![0u8; 75];
            Toy.pixel_view(other[k], idx[k], 1, 2, 1, Distortion::CropFlip, &mut one)
                .unwrap();
            assert_eq!(&rows[k * 75..(k + 1) * 75], &one[..], "row {k}");
        }
        let short = ViewReq {
            images: &other[..2],
            ..req(1)
        };
        assert!(views_batch(&Toy, &[req(0), short], 1, 2, None).is_err());
        let norm = PixelNorm::new(&Toy.lut(), Device::Cpu);
        let x = norm.normalise(&t);
        assert_eq!(x.size(), [3, 3, 5, 5]);
        let lut = Toy.lut();
        for (b, y, xx, c) in [(0, 0, 0, 0), (1, 4, 2, 1), (2, 3, 4, 2)] {
            let v = bytes[((b * 5 + y) * 5 + xx) * 3 + c];
            let got = x.double_value(&[b as i64, c as i64, y as i64, xx as i64]) as f32;
            assert_eq!(got.to_bits(), lut[c][usize::from(v)].to_bits());
        }
    }
}
