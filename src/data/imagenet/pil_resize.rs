//! Pillow's antialiased bilinear resize of an 8-bit RGB image
//! (`Image.resize(size, Image.BILINEAR)`, `src/libImaging/Resample.c`),
//! reproduced bit for bit:
//! - per axis, `scale = in / out`, `filterscale = max(scale, 1)`, support
//!   `filterscale`; output sample `i` has centre `(i + 0.5) * scale` and
//!   taps `xmin = (int)(centre - support + 0.5)` .. `(int)(centre + support
//!   + 0.5)` (clipped to the image) weighted by the triangle
//!   `1 - |(x - centre + 0.5) / filterscale|`, in double, divided by their
//!   sum, then rounded to fixed point with `PRECISION_BITS = 32 - 8 - 2`;
//! - two passes, each rounded (`+ 2^21`, shift) and clipped to u8: the
//!   vertical pass first when the height shrinks by more than twice as
//!   many pixels as the width (Pillow 13's rule), else the horizontal pass
//!   first (over only the source rows the vertical pass uses); an axis
//!   whose size does not change is not resampled.
//!
//! Any window of the output can be computed alone, with the same bits as
//! the whole output cropped: that is how the evaluation view (resize then
//! centre crop) is made.
use super::image_ops::Rgb;

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Fixed-point taps of one axis: for each output sample, the first input
/// index and its weights (`ksize` slots, the unused ones 0).
struct Taps {
    first: Vec<usize>,
    count: Vec<usize>,
    ksize: usize,
    k: Vec<i32>,
}

fn bilinear(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for an axis of
/// `in_size` samples resized to `out_size`.
fn taps(in_size: usize, out_size: usize) -> Taps {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut t = Taps {
        first: Vec::with_capacity(out_size),
        count: Vec::with_capacity(out_size),
        ksize,
        k: vec![0; out_size * ksize],
    };
    let ss = 1.0 / filterscale;
    let mut w = vec![0f64; ksize];
    for xx in 0..out_size {
        let centre = (xx as f64 + 0.5) * scale;
        // C's (int) truncates toward zero.
        let xmin = ((centre - support + 0.5) as i64).max(0);
        let xmax = ((centre + support + 0.5) as i64).min(in_size as i64) - xmin;
        let n = xmax.max(0) as usize;
        let mut ww = 0.0;
        for (x, wx) in w.iter_mut().enumerate().take(n) {
            *wx = bilinear(((x as i64 + xmin) as f64 - centre + 0.5) * ss);
            ww += *wx;
        }
        let row = &mut t.k[xx * ksize..xx * ksize + n];
        for (kx, &wx) in row.iter_mut().zip(&w) {
            let v = if ww != 0.0 { wx / ww } else { wx };
            let f = v * f64::from(1u32 << PRECISION_BITS);
            *kx = if v < 0.0 {
                (-0.5 + f) as i32
            } else {
                (0.5 + f) as i32
            };
        }
        t.first.push(xmin as usize);
        t.count.push(n);
    }
    t
}

fn clip8(v: i32) -> u8 {
    if v >= (1 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// One horizontal pass: output columns `xs` of a row whose slice `src`
/// starts at input column `c0`.
fn h_row(src: &[u8], c0: usize, t: &Taps, xs: std::ops::Range<usize>, dst: &mut [u8]) {
    for (x, o) in xs.zip(dst.chunks_exact_mut(3)) {
        let k = &t.k[x * t.ksize..x * t.ksize + t.count[x]];
        let src = &src[(t.first[x] - c0) * 3..];
        let mut acc = [1i32 << (PRECISION_BITS - 1); 3];
        for (j, &kj) in k.iter().enumerate() {
            let p = &src[j * 3..j * 3 + 3];
            acc[0] += i32::from(p[0]) * kj;
            acc[1] += i32::from(p[1]) * kj;
            acc[2] += i32::from(p[2]) * kj;
        }
        o.copy_from_slice(&acc.map(clip8));
    }
}

/// One vertical pass: output row `y` from the rows `row(r)` (input row
/// indices), each `n` bytes wide.
fn v_row<'a>(row: impl Fn(usize) -> &'a [u8], t: &Taps, y: usize, acc: &mut [i32], dst: &mut [u8]) {
    acc.fill(1 << (PRECISION_BITS - 1));
    let k = &t.k[y * t.ksize..y * t.ksize + t.count[y]];
    for (j, &kj) in k.iter().enumerate() {
        for (a, &s) in acc.iter_mut().zip(row(t.first[y] + j)) {
            *a += i32::from(s) * kj;
        }
    }
    for (o, &a) in dst.iter_mut().zip(acc.iter()) {
        *o = clip8(a);
    }
}

/// The input range the taps of outputs `from..to` read.
fn span(t: &Taps, from: usize, to: usize) -> std::ops::Range<usize> {
    let lo = (from..to).map(|i| t.first[i]).min().unwrap_or(0);
    let hi = (from..to)
        .map(|i| t.first[i] + t.count[i])
        .max()
        .unwrap_or(0);
    lo..hi
}

/// The crop `(top, left, h, w)` of `img` (Pillow's `img.crop((left, top,
/// left + w, top + h))`, inside the image) resized to `out_h x out_w`
/// with Pillow's bilinear filter; of that output only the window `(y0,
/// x0, ny, nx)` is computed and returned (HWC u8).
///
/// Pass order as Pillow 13: the vertical pass runs first when the height
/// shrinks by more than twice as many pixels as the width does, else the
/// horizontal pass runs first.
pub fn resize(
    img: &Rgb,
    crop: (usize, usize, usize, usize),
    out: (usize, usize),
    win: (usize, usize, usize, usize),
) -> Vec<u8> {
    let (top, left, ch, cw) = crop;
    let (out_h, out_w) = out;
    let (y0, x0, ny, nx) = win;
    assert!(top + ch <= img.h && left + cw <= img.w && ch > 0 && cw > 0);
    assert!(y0 + ny <= out_h && x0 + nx <= out_w);
    let src_row =
        |r: usize| &img.px[((top + r) * img.w + left) * 3..((top + r) * img.w + left + cw) * 3];
    let ht = (out_w != cw).then(|| taps(cw, out_w));
    let vt = (out_h != ch).then(|| taps(ch, out_h));
    let dy = ch as i64 - out_h as i64;
    let horizontal_first = !(dy > 0 && dy > (cw as i64 - out_w as i64) * 2);
    let mut out = vec![0u8; ny * nx * 3];
    match (ht, vt) {
        (None, None) => {
            for (y, o) in (y0..y0 + ny).zip(out.chunks_exact_mut(nx * 3)) {
                o.copy_from_slice(&src_row(y)[x0 * 3..(x0 + nx) * 3]);
            }
        }
        (Some(h), None) => {
            for (y, o) in (y0..y0 + ny).zip(out.chunks_exact_mut(nx * 3)) {
                h_row(src_row(y), 0, &h, x0..x0 + nx, o);
            }
        }
        (None, Some(v)) => {
            let mut acc = vec![0i32; nx * 3];
            for (y, o) in (y0..y0 + ny).zip(out.chunks_exact_mut(nx * 3)) {
                v_row(|r| &src_row(r)[x0 * 3..(x0 + nx) * 3], &v, y, &mut acc, o);
            }
        }
        (Some(h), Some(v)) if horizontal_first => {
            // Horizontal pass (rounded to u8) over the rows the window reads.
            let rows = span(&v, y0, y0 + ny);
            let mut tmp = vec![0u8; rows.len() * nx * 3];
            for (r, t) in rows.clone().zip(tmp.chunks_exact_mut(nx * 3)) {
                h_row(src_row(r), 0, &h, x0..x0 + nx, t);
            }
            let mut acc = vec![0i32; nx * 3];
            for (y, o) in (y0..y0 + ny).zip(out.chunks_exact_mut(nx * 3)) {
                let row = |r: usize| &tmp[(r - rows.start) * nx * 3..(r - rows.start + 1) * nx * 3];
                v_row(row, &v, y, &mut acc, o);
            }
        }
        (Some(h), Some(v)) => {
            // Vertical pass (rounded to u8) over the columns the window reads.
            let cols = span(&h, x0, x0 + nx);
            let n = cols.len() * 3;
            let mut tmp = vec![0u8; ny * n];
            let mut acc = vec![0i32; n];
            for (y, t) in (y0..y0 + ny).zip(tmp.chunks_exact_mut(n)) {
                v_row(
                    |r| &src_row(r)[cols.start * 3..cols.end * 3],
                    &v,
                    y,
                    &mut acc,
                    t,
                );
            }
            for (t, o) in tmp.chunks_exact(n).zip(out.chunks_exact_mut(nx * 3)) {
                h_row(t, cols.start, &h, x0..x0 + nx, o);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(w: usize, h: usize) -> Rgb {
        let px = (0..w * h * 3)
            .map(|i| ((i * 2_654_435_761usize) >> 7) as u8)
            .collect();
        Rgb { w, h, px }
    }

    #[test]
    fn taps_sum_to_one_in_fixed_point() {
        for (n_in, n_out) in [(500, 256), (37, 224), (224, 224), (3, 1), (341, 224)] {
            let t = taps(n_in, n_out);
            for i in 0..n_out {
                let s: i64 = t.k[i * t.ksize..(i + 1) * t.ksize]
                    .iter()
                    .map(|&k| i64::from(k))
                    .sum();
                assert!(
                    (s - (1 << PRECISION_BITS)).abs() <= t.ksize as i64,
                    "{n_in}->{n_out}"
                );
            }
        }
    }

    #[test]
    fn identity_is_a_copy_and_windows_match_the_whole() {
        let img = noise(23, 17);
        assert_eq!(
            resize(&img, (0, 0, 17, 23), (17, 23), (0, 0, 17, 23)),
            img.px
        );
        for (oh, ow) in [(9, 11), (30, 40), (17, 12), (5, 23), (4, 18), (3, 30)] {
            let whole = resize(&img, (2, 3, 14, 19), (oh, ow), (0, 0, oh, ow));
            let (y0, x0, ny, nx) = (oh / 3, ow / 4, oh / 2, ow / 2);
            let part = resize(&img, (2, 3, 14, 19), (oh, ow), (y0, x0, ny, nx));
            for y in 0..ny {
                assert_eq!(
                    &part[y * nx * 3..(y + 1) * nx * 3],
                    &whole[((y0 + y) * ow + x0) * 3..((y0 + y) * ow + x0 + nx) * 3]
                );
            }
        }
        let flat = Rgb {
            w: 50,
            h: 30,
            px: vec![200; 50 * 30 * 3],
        };
        assert!(resize(&flat, (3, 5, 20, 40), (13, 11), (0, 0, 13, 11))
            .iter()
            .all(|&v| v == 200));
    }
}
