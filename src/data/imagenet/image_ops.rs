//! Decoding and transforming one ImageNet image (docs/method.md §4).
//!
//! Files are decoded to interleaved 8-bit RGB ([`Rgb`]) by
//! [`mod@super::decode`] as `PIL.Image.open(f).convert("RGB")` decodes them.
//!
//! **Transforms.** Training view: a random-resized-crop box
//! from [`crate::data::augment::resized_crop`] (scale 0.08-1, ratio 3/4-4/3, a
//! pure function of seed, epoch, sample index and view) resized to 224 x 224,
//! flipped when drawn. Views without a crop (`flip_only`, `none`) use the
//! evaluation geometry at the training size instead. Evaluation: resize the
//! short side to 256 (the long side to `floor(256 * long / short)`), centre
//! crop 224 (offset `round((side - 224) / 2)`, half to even, as
//! torchvision). Resizing is Pillow's antialiased bilinear on 8-bit
//! images, bit for bit ([`super::pil_resize`]), so views are the u8 pixels
//! torchvision's transforms make from a PIL image. Then `(v / 255 - mean) /
//! std` in f32 as `ToTensor` + `Normalize` compute it, with mean (0.485,
//! 0.456, 0.406) and std (0.229, 0.224, 0.225). The sizes and ranges are
//! the fields of [`Transform`]; the training view is put together by
//! [`super::Imagenet`].
use anyhow::Result;

pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Sizes and ranges of the transforms. Fields, so tests can use tiny images.
#[derive(Debug, Clone, PartialEq)]
pub struct Transform {
    /// Side of a training view (224).
    pub train_size: usize,
    /// Evaluation: the short side is resized to this (256) ...
    pub resize: usize,
    /// ... then a centre crop of this side is taken (224).
    pub crop: usize,
    /// Random-resized-crop area range, as fractions of the image.
    pub scale: (f64, f64),
    /// Random-resized-crop aspect-ratio range (width / height).
    pub ratio: (f64, f64),
}

impl Default for Transform {
    fn default() -> Self {
        Transform {
            train_size: 224,
            resize: 256,
            crop: 224,
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
        }
    }
}

impl Transform {
    pub(super) fn check(&self) -> Result<()> {
        anyhow::ensure!(
            self.train_size > 0 && self.crop > 0 && self.resize >= self.crop,
            "bad ImageNet transform sizes {self:?}: need train_size > 0 and resize >= crop > 0"
        );
        Ok(())
    }
}

/// A decoded image: `h` rows of `w` RGB pixels, interleaved.
pub struct Rgb {
    pub w: usize,
    pub h: usize,
    pub px: Vec<u8>,
}

pub use super::decode::decode;

/// The crop `(top, left, h, w)` of `img` resized to `out_h x out_w` with
/// Pillow's bilinear filter (torchvision's `resized_crop` on a PIL image),
/// HWC u8.
pub fn resized_crop_view(
    img: &Rgb,
    crop: (usize, usize, usize, usize),
    out_h: usize,
    out_w: usize,
) -> Vec<u8> {
    super::pil_resize::resize(img, crop, (out_h, out_w), (0, 0, out_h, out_w))
}

/// torchvision's `Resize(short)` output size for an `h x w` image.
pub fn short_side_size(h: usize, w: usize, short: usize) -> (usize, usize) {
    if w <= h {
        (short * h / w, short)
    } else {
        (short, short * w / h)
    }
}

/// `round((n - crop) / 2)` with Python's half-to-even rounding.
fn centre_offset(n: usize, crop: usize) -> usize {
    let d = n.saturating_sub(crop);
    let k = d / 2;
    if d % 2 == 1 && k % 2 == 1 {
        k + 1
    } else {
        k
    }
}

/// The evaluation transform: torchvision's `Resize(resize)` then
/// `CenterCrop(crop)` on a PIL image (HWC u8). Only the crop is computed.
pub fn eval_view(img: &Rgb, resize: usize, crop: usize) -> Vec<u8> {
    let (oh, ow) = short_side_size(img.h, img.w, resize);
    let win = (centre_offset(oh, crop), centre_offset(ow, crop), crop, crop);
    super::pil_resize::resize(img, (0, 0, img.h, img.w), (oh, ow), win)
}

/// What torchvision's `ToTensor()` + `Normalize(MEAN, STD)` make of the
/// value `v` of channel `c`: `(v / 255 - mean) / std`, each step in f32.
pub fn normalised(c: usize, v: u8) -> f32 {
    (f32::from(v) / 255.0 - MEAN[c]) / STD[c]
}

/// `lut[c][v]` = [`normalised`]`(c, v)`: the table both batch paths use.
pub fn normalisation_table() -> [[f32; 256]; 3] {
    std::array::from_fn(|c| std::array::from_fn(|v| normalised(c, v as u8)))
}

/// Copies an HWC u8 view of side `s` into `dst`, mirrored left-right when
/// `flip`.
pub(super) fn mirror_into(view: &[u8], s: usize, flip: bool, dst: &mut [u8]) {
    if !flip {
        dst.copy_from_slice(view);
        return;
    }
    for (src_row, dst_row) in view.chunks_exact(s * 3).zip(dst.chunks_exact_mut(s * 3)) {
        for (x, px) in dst_row.chunks_exact_mut(3).enumerate() {
            let sx = s - 1 - x;
            px.copy_from_slice(&src_row[sx * 3..sx * 3 + 3]);
        }
    }
}

/// Writes an HWC u8 view of side `s` into `dst` (CHW), normalised as
/// [`normalised`] (a mirrored view is mirrored first, by [`mirror_into`]).
pub(super) fn normalise_into(view: &[u8], s: usize, dst: &mut [f32]) {
    let lut = normalisation_table();
    for (k, p) in view.chunks_exact(3).enumerate() {
        for c in 0..3 {
            dst[c * s * s + k] = lut[c][usize::from(p[c])];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_geometry_follows_torchvision() {
        assert_eq!(short_side_size(375, 500, 256), (256, 341));
        assert_eq!(short_side_size(500, 333, 256), (384, 256));
        assert_eq!(centre_offset(341, 224), 58); // round(58.5) = 58
        assert_eq!(centre_offset(343, 224), 60); // round(59.5) = 60
        assert_eq!(centre_offset(256, 224), 16);
        let img = Rgb {
            w: 64,
            h: 48,
            px: (0..48)
                .flat_map(|_| (0..64).flat_map(|x| [(x * 4) as u8, 9, 77]))
                .collect(),
        };
        let v = eval_view(&img, 32, 28);
        assert_eq!(v.len(), 28 * 28 * 3);
        for x in 1..28 {
            assert!(v[x * 3] >= v[(x - 1) * 3]);
        }
    }

    #[test]
    fn normalisation_is_torchvisions_arithmetic() {
        // (0/255 - 0.485) / 0.229 and (255/255 - 0.406) / 0.225 in f32.
        assert_eq!(normalised(0, 0), -0.485f32 / 0.229f32);
        assert_eq!(normalised(2, 255), (1.0f32 - 0.406f32) / 0.225f32);
        let mut dst = vec![0f32; 3 * 2 * 2];
        let mut mirrored = [0u8; 12];
        mirror_into(
            &[0, 0, 0, 255, 255, 255, 0, 0, 0, 0, 0, 0],
            2,
            true,
            &mut mirrored,
        );
        normalise_into(&mirrored, 2, &mut dst);
        assert_eq!(dst[0], normalised(0, 255));
        assert_eq!(dst[1], normalised(0, 0));
    }
}
