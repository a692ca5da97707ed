//! Decoding and transforming one ImageNet image (docs/method.md §4).
//!
//! JPEGs are decoded with zune-jpeg (lenient mode) to interleaved RGB
//! ([`Rgb`]); grey and CMYK images are converted.
//!
//! **Transforms.** Training view: a random-resized-crop box
//! from [`crate::augment::resized_crop`] (scale 0.08-1, ratio 3/4-4/3, a
//! pure function of seed, epoch, sample index and view) resized to 224 x 224,
//! flipped when drawn. Views without a crop (`flip_only`, `none`) use the
//! evaluation geometry at the training size instead. Evaluation: resize the
//! short side to 256 (the long side to `floor(256 * long / short)`), centre
//! crop 224 (offset `round((side - 224) / 2)`, half to even, as
//! torchvision). Resizing is bilinear, antialiased when shrinking (PIL's
//! triangle filter with support scaled by the shrink factor), in f32 with no
//! intermediate rounding. Then `(v / 255 - mean) / std` with mean (0.485,
//! 0.456, 0.406) and std (0.229, 0.224, 0.225). The sizes and ranges are
//! the fields of [`Transform`]; the training view is put together by
//! [`super::imagenet::Imagenet`].
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

/// Decodes a JPEG to RGB (grey and CMYK images are converted).
pub fn decode(bytes: &[u8]) -> Result<Rgb, String> {
    use zune_jpeg::zune_core::{
        bytestream::ZCursor, colorspace::ColorSpace, options::DecoderOptions,
    };
    let run = || -> Result<Rgb, String> {
        let opts = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
        let mut d = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), opts);
        let px = d.decode().map_err(|e| e.to_string())?;
        let (w, h) = d.dimensions().ok_or("no image dimensions")?;
        if w == 0 || h == 0 || px.len() != w * h * 3 {
            return Err(format!("decoded {} bytes for {w}x{h} RGB", px.len()));
        }
        Ok(Rgb { w, h, px })
    };
    // The decoder is fuzzed, but a panic on hostile input must not end a run.
    std::panic::catch_unwind(run).unwrap_or_else(|_| Err("the decoder panicked".into()))
}

/// Filter taps of one axis: for each output sample of `from..from+count`
/// of an axis of `out_n` samples covering input `off..off+in_n`, the first
/// input index and the weights.
fn axis_taps(
    off: usize,
    in_n: usize,
    out_n: usize,
    from: usize,
    count: usize,
) -> Vec<(usize, Vec<f32>)> {
    let scale = in_n as f64 / out_n as f64;
    let support = scale.max(1.0);
    (from..from + count)
        .map(|i| {
            let centre = (i as f64 + 0.5) * scale;
            let lo = (centre - support + 0.5).floor().max(0.0) as usize;
            let hi = ((centre + support + 0.5).floor().max(0.0) as usize).min(in_n);
            let mut w: Vec<f64> = (lo..hi)
                .map(|j| (1.0 - ((j as f64 + 0.5 - centre) / support).abs()).max(0.0))
                .collect();
            let sum: f64 = w.iter().sum();
            if sum <= 0.0 {
                let j = (centre.floor() as usize).min(in_n - 1);
                return (off + j, vec![1.0]);
            }
            w.iter_mut().for_each(|x| *x /= sum);
            (off + lo, w.into_iter().map(|x| x as f32).collect())
        })
        .collect()
}

/// Crop `(top, left, h, w)` of `img`, resized to a virtual `out_h x out_w`
/// image of which the window `(y0, x0, ny, nx)` is returned, HWC f32 in
/// 0..255.
#[allow(clippy::too_many_arguments)]
pub fn resample(
    img: &Rgb,
    crop: (usize, usize, usize, usize),
    out_h: usize,
    out_w: usize,
    win: (usize, usize, usize, usize),
) -> Vec<f32> {
    let (top, left, ch, cw) = crop;
    let (y0, x0, ny, nx) = win;
    let xt = axis_taps(left, cw, out_w, x0, nx);
    let yt = axis_taps(top, ch, out_h, y0, ny);
    let rmin = yt.iter().map(|t| t.0).min().unwrap_or(0);
    let rmax = yt.iter().map(|t| t.0 + t.1.len()).max().unwrap_or(0);
    let mut tmp = vec![0f32; (rmax - rmin) * nx * 3];
    for r in rmin..rmax {
        let src = &img.px[r * img.w * 3..(r + 1) * img.w * 3];
        let dst = &mut tmp[(r - rmin) * nx * 3..(r - rmin + 1) * nx * 3];
        for (x, (start, w)) in xt.iter().enumerate() {
            let mut acc = [0f32; 3];
            for (k, &wk) in w.iter().enumerate() {
                let p = &src[(start + k) * 3..(start + k) * 3 + 3];
                acc[0] += wk * f32::from(p[0]);
                acc[1] += wk * f32::from(p[1]);
                acc[2] += wk * f32::from(p[2]);
            }
            dst[x * 3..x * 3 + 3].copy_from_slice(&acc);
        }
    }
    let mut out = vec![0f32; ny * nx * 3];
    for (y, (start, w)) in yt.iter().enumerate() {
        let row = &mut out[y * nx * 3..(y + 1) * nx * 3];
        for (k, &wk) in w.iter().enumerate() {
            let src = &tmp[(start + k - rmin) * nx * 3..(start + k - rmin + 1) * nx * 3];
            for (o, &s) in row.iter_mut().zip(src) {
                *o += wk * s;
            }
        }
    }
    out
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

/// The evaluation transform: resize the short side to `resize`, centre
/// crop `crop` (HWC f32).
pub fn eval_view(img: &Rgb, resize: usize, crop: usize) -> Vec<f32> {
    let (oh, ow) = short_side_size(img.h, img.w, resize);
    let win = (centre_offset(oh, crop), centre_offset(ow, crop), crop, crop);
    resample(img, (0, 0, img.h, img.w), oh, ow, win)
}

/// Writes an HWC f32 view of side `s` into `dst` (CHW), normalised and
/// optionally mirrored.
pub(super) fn normalise_into(view: &[f32], s: usize, flip: bool, dst: &mut [f32]) {
    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * STD[c]));
    let shift: [f32; 3] = std::array::from_fn(|c| MEAN[c] / STD[c]);
    for y in 0..s {
        for x in 0..s {
            let sx = if flip { s - 1 - x } else { x };
            let p = &view[(y * s + sx) * 3..(y * s + sx) * 3 + 3];
            for c in 0..3 {
                dst[c * s * s + y * s + x] = p[c] * scale[c] - shift[c];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: usize, h: usize) -> Rgb {
        let mut px = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                px.extend([
                    (x * 255 / (w - 1).max(1)) as u8,
                    (y * 255 / (h - 1).max(1)) as u8,
                    77,
                ]);
            }
        }
        Rgb { w, h, px }
    }

    #[test]
    fn identity_resize_is_exact_and_taps_sum_to_one() {
        let img = gradient(9, 7);
        let out = resample(&img, (0, 0, 7, 9), 7, 9, (0, 0, 7, 9));
        for (o, &p) in out.iter().zip(&img.px) {
            assert!((o - f32::from(p)).abs() < 1e-3);
        }
        for (n_in, n_out) in [(500, 224), (37, 224), (224, 224), (3, 1)] {
            for (_, w) in axis_taps(0, n_in, n_out, 0, n_out) {
                assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            }
        }
        // A constant image stays constant at any scale (antialiased or not).
        let flat = Rgb {
            w: 50,
            h: 30,
            px: vec![200; 50 * 30 * 3],
        };
        for v in resample(&flat, (3, 5, 20, 40), 13, 11, (0, 0, 13, 11)) {
            assert!((v - 200.0).abs() < 1e-3);
        }
    }

    #[test]
    fn eval_geometry_follows_torchvision() {
        assert_eq!(short_side_size(375, 500, 256), (256, 341));
        assert_eq!(short_side_size(500, 333, 256), (384, 256));
        assert_eq!(centre_offset(341, 224), 58); // round(58.5) = 58
        assert_eq!(centre_offset(343, 224), 60); // round(59.5) = 60
        assert_eq!(centre_offset(256, 224), 16);
        // Downscaling a horizontal gradient keeps it monotone and in range.
        let img = gradient(64, 48);
        let v = eval_view(&img, 32, 28);
        assert_eq!(v.len(), 28 * 28 * 3);
        for x in 1..28 {
            assert!(v[x * 3] >= v[(x - 1) * 3]);
        }
        assert!(v.iter().all(|&p| (0.0..=255.0).contains(&p)));
    }

    #[test]
    fn grey_jpegs_decode_to_rgb() {
        let grey: Vec<u8> = (0..12 * 9).map(|i| (i * 2) as u8).collect();
        let mut jpg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpg, 95)
            .encode(&grey, 12, 9, image::ExtendedColorType::L8)
            .unwrap();
        let img = decode(&jpg).unwrap();
        assert_eq!((img.w, img.h, img.px.len()), (12, 9, 12 * 9 * 3));
        assert!(img.px.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
    }

    #[test]
    fn garbage_is_not_a_jpeg() {
        assert!(decode(b"definitely not a jpeg").is_err());
        assert!(decode(&[0xff, 0xd8, 0xff]).is_err());
    }
}
