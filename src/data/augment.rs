//! Data distortions as pure functions of their stream address.
//!
//! A view's parameters for one sample depend only on (run seed, epoch,
//! sample index, view): [`stream_id`] fixes the ChaCha stream of an
//! (epoch, view) pair and the sample index fixes the word position.
use crate::data::stream::{Draw, Purpose};
use serde::{Deserialize, Serialize};

/// Which distortions a view applies (docs/method.md §4: the paper's views are two
/// independent draws of "random mirror and cropping"; the `youngerous`
/// preset uses a flip-only and a crop-only view).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Distortion {
    /// Pad-and-crop (CIFAR) or random-resized crop (ImageNet), and a flip.
    CropFlip,
    /// Only the horizontal flip.
    FlipOnly,
    /// Only the crop.
    CropOnly,
    /// Nothing: the image as evaluated.
    None,
}

impl Distortion {
    pub fn crops(self) -> bool {
        matches!(self, Distortion::CropFlip | Distortion::CropOnly)
    }
    pub fn flips(self) -> bool {
        matches!(self, Distortion::CropFlip | Distortion::FlipOnly)
    }
}

/// The ChaCha stream of (epoch, view). Views 0..3 are addressable.
pub fn stream_id(epoch: u64, view: u8) -> u64 {
    epoch * 4 + u64::from(view & 3)
}

/// Pad-and-crop plus flip for small images (CIFAR, synthetic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PadCrop {
    /// Left edge of the crop in the padded image, in `0..=2*pad`.
    pub dx: u32,
    /// Top edge of the crop in the padded image, in `0..=2*pad`.
    pub dy: u32,
    pub flip: bool,
}

/// Word 0: dx, word 1: dy, word 2: flip (low bit of the word's top half).
/// Words are always consumed, so switching a distortion off does not shift
/// the other parameters.
pub fn pad_crop(
    seed: u64,
    epoch: u64,
    index: u64,
    view: u8,
    pad: u32,
    kind: Distortion,
) -> PadCrop {
    let mut d = Draw::at(Purpose::Augment, seed, stream_id(epoch, view), index);
    let dx = d.below(2 * pad + 1);
    let dy = d.below(2 * pad + 1);
    let flip = d.below(2) == 1;
    PadCrop {
        dx: if kind.crops() { dx } else { pad },
        dy: if kind.crops() { dy } else { pad },
        flip: kind.flips() && flip,
    }
}

/// A random-resized-crop box (torchvision's RandomResizedCrop algorithm:
/// up to 10 attempts of (scale, log-ratio), then a centre-crop fallback).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    pub top: u32,
    pub left: u32,
    pub height: u32,
    pub width: u32,
    pub flip: bool,
}

/// Draws an RRC box for an image of `height` x `width`. Each attempt reads
/// four words (scale, ratio, top, left); the flip is word 15 of the block,
/// so a sample never spills into its neighbour's block.
#[allow(clippy::too_many_arguments)]
pub fn resized_crop(
    seed: u64,
    epoch: u64,
    index: u64,
    view: u8,
    height: u32,
    width: u32,
    scale: (f64, f64),
    ratio: (f64, f64),
    kind: Distortion,
) -> CropBox {
    let mut d = Draw::at(Purpose::Augment, seed, stream_id(epoch, view), index);
    let mut words = [0u32; 16];
    for w in words.iter_mut() {
        *w = d.u32();
    }
    let unit = |w: u32| (w >> 8) as f64 * (1.0 / 16_777_216.0);
    let flip = kind.flips() && (words[15] >> 31) == 1;
    if !kind.crops() {
        return CropBox {
            top: 0,
            left: 0,
            height,
            width,
            flip,
        };
    }
    let area = f64::from(height) * f64::from(width);
    let (lr0, lr1) = (ratio.0.ln(), ratio.1.ln());
    // 3 attempts fit the 15 words left before the flip word; torchvision makes
    // 10, but almost all boxes succeed in the first three.
    for attempt in 0..3 {
        let w0 = words[attempt * 4];
        let w1 = words[attempt * 4 + 1];
        let target = area * (scale.0 + unit(w0) * (scale.1 - scale.0));
        let aspect = (lr0 + unit(w1) * (lr1 - lr0)).exp();
        let w = (target * aspect).sqrt().round() as i64;
        let h = (target / aspect).sqrt().round() as i64;
        if w > 0 && h > 0 && w <= i64::from(width) && h <= i64::from(height) {
            let (w, h) = (w as u32, h as u32);
            let top =
                ((u64::from(words[attempt * 4 + 2]) * u64::from(height - h + 1)) >> 32) as u32;
            let left =
                ((u64::from(words[attempt * 4 + 3]) * u64::from(width - w + 1)) >> 32) as u32;
            return CropBox {
                top,
                left,
                height: h,
                width: w,
                flip,
            };
        }
    }
    // Fallback: centre crop at the nearest allowed ratio.
    let in_ratio = f64::from(width) / f64::from(height);
    let (w, h) = if in_ratio < ratio.0 {
        (width, (f64::from(width) / ratio.0).round() as u32)
    } else if in_ratio > ratio.1 {
        ((f64::from(height) * ratio.1).round() as u32, height)
    } else {
        (width, height)
    };
    CropBox {
        top: (height - h) / 2,
        left: (width - w) / 2,
        height: h,
        width: w,
        flip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pad_crop_ranges_and_independence() {
        let mut flips = 0;
        for i in 0..2000 {
            let p = pad_crop(1, 0, i, 0, 4, Distortion::CropFlip);
            assert!(p.dx <= 8 && p.dy <= 8);
            flips += u32::from(p.flip);
        }
        assert!((900..1100).contains(&flips), "{flips}");
        // Same address, same answer; other view, other answer (somewhere).
        let a: Vec<_> = (0..50)
            .map(|i| pad_crop(1, 3, i, 0, 4, Distortion::CropFlip))
            .collect();
        let b: Vec<_> = (0..50)
            .map(|i| pad_crop(1, 3, i, 0, 4, Distortion::CropFlip))
            .collect();
        let c: Vec<_> = (0..50)
            .map(|i| pad_crop(1, 3, i, 1, 4, Distortion::CropFlip))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn switched_off_distortions() {
        for i in 0..100 {
            let f = pad_crop(2, 0, i, 0, 4, Distortion::FlipOnly);
            assert_eq!((f.dx, f.dy), (4, 4));
            let c = pad_crop(2, 0, i, 0, 4, Distortion::CropOnly);
            assert!(!c.flip);
            let full = pad_crop(2, 0, i, 0, 4, Distortion::CropFlip);
            assert_eq!((c.dx, c.dy), (full.dx, full.dy));
            assert_eq!(f.flip, full.flip);
        }
    }

    #[test]
    fn resized_crop_within_bounds() {
        for i in 0..500 {
            let b = resized_crop(
                0,
                1,
                i,
                0,
                300,
                400,
                (0.08, 1.0),
                (0.75, 4.0 / 3.0),
                Distortion::CropFlip,
            );
            assert!(b.height >= 1 && b.width >= 1);
            assert!(b.top + b.height <= 300 && b.left + b.width <= 400, "{b:?}");
        }
    }
}
