//! Decoding one image file to 8-bit RGB the way torchvision sees it:
//! `PIL.Image.open(f).convert("RGB")`.
//!
//! The format comes from the content, not the name (ILSVRC-2012 train has
//! a PNG named `.JPEG`, and Pillow opens it):
//! - **JPEG** with libjpeg-turbo (the library Pillow ships; the bundled
//!   source of `turbojpeg-sys`, built without SIMD where no NASM is found,
//!   which decodes the same bits) at Pillow's settings: accurate integer
//!   IDCT, fancy upsampling, no scaling. Greyscale is replicated to RGB
//!   (Pillow's `L` -> `RGB`); CMYK and YCCK are decoded to CMYK, taken as
//!   Adobe-inverted (Pillow's `CMYK;I` raw mode) and converted with
//!   Pillow's `cmyk2rgb`. libjpeg warnings (e.g. extraneous bytes before a
//!   marker) are accepted, as Pillow accepts them, except a premature end
//!   of file: Pillow refuses a truncated image ("image file is truncated"),
//!   so it is skipped here.
//! - **PNG** with the `png` decoder of the `image` crate, converted as
//!   Pillow's `convert("RGB")` does: alpha dropped (not composited), grey
//!   replicated, palettes expanded, 16-bit RGB samples reduced to their
//!   high byte (Pillow's `RGB;16B`), 16-bit grey clipped to 255 (Pillow's
//!   `I;16` -> `RGB`).
//!
//! Images over [`MAX_PIXELS`] are refused, as Pillow refuses them. Anything
//! else is undecodable (the caller skips and lists it). EXIF
//! orientation is ignored, as torchvision ignores it.
use super::image_ops::Rgb;
use turbojpeg_sys as tj;

/// What decodes images (recorded in `env.image_decoder` of every record).
pub const DECODER: &str = "libjpeg-turbo 3.1.0 (turbojpeg-sys, islow IDCT, fancy upsampling) + image/png; Pillow-compatible convert(\"RGB\")";

/// Pillow refuses images with more pixels than this (twice its
/// `MAX_IMAGE_PIXELS`: a `DecompressionBombError`), so they are skipped.
pub const MAX_PIXELS: usize = 2 * 89_478_485;

/// Decodes a JPEG or PNG file's bytes to RGB.
pub fn decode(bytes: &[u8]) -> Result<Rgb, String> {
    if bytes.starts_with(&[0xff, 0xd8]) {
        decode_jpeg(bytes)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        // The decoder is fuzzed, but a panic on hostile input must not end a run.
        std::panic::catch_unwind(|| decode_png(bytes))
            .unwrap_or_else(|_| Err("the PNG decoder panicked".into()))
    } else {
        Err("neither a JPEG nor a PNG".into())
    }
}

/// A TurboJPEG decompressor handle, destroyed on drop.
struct Handle(tj::tjhandle);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from tj3Init and is destroyed once.
        unsafe { tj::tj3Destroy(self.0) }
    }
}

impl Handle {
    fn error(&self) -> (bool, String) {
        // SAFETY: a valid handle; the string is owned by it and copied here.
        unsafe {
            let warning = tj::tj3GetErrorCode(self.0) == tj::TJERR_TJERR_WARNING as i32;
            let msg = std::ffi::CStr::from_ptr(tj::tj3GetErrorStr(self.0));
            (warning, msg.to_string_lossy().into_owned())
        }
    }
}

fn decode_jpeg(bytes: &[u8]) -> Result<Rgb, String> {
    // SAFETY: tj3Init returns null or a handle owned by `h`.
    let h = Handle(unsafe { tj::tj3Init(tj::TJINIT_TJINIT_DECOMPRESS as i32) });
    if h.0.is_null() {
        return Err("cannot create a libjpeg-turbo decompressor".into());
    }
    // SAFETY: the buffer outlives the call.
    if unsafe { tj::tj3DecompressHeader(h.0, bytes.as_ptr(), bytes.len() as tj::size_t) } != 0 {
        return Err(h.error().1);
    }
    // SAFETY: plain parameter reads on a valid handle.
    let get = |p: tj::TJPARAM| unsafe { tj::tj3Get(h.0, p as i32) };
    let (w, ht) = (
        get(tj::TJPARAM_TJPARAM_JPEGWIDTH),
        get(tj::TJPARAM_TJPARAM_JPEGHEIGHT),
    );
    if w <= 0 || ht <= 0 {
        return Err(format!("no valid JPEG frame header (size {w}x{ht})"));
    }
    if get(tj::TJPARAM_TJPARAM_PRECISION) != 8 {
        return Err("not an 8-bit JPEG (Pillow opens only those)".into());
    }
    let (w, ht) = (w as usize, ht as usize);
    if w * ht > MAX_PIXELS {
        return Err(format!(
            "{w}x{ht} pixels: more than Pillow opens ({MAX_PIXELS})"
        ));
    }
    let cs = get(tj::TJPARAM_TJPARAM_COLORSPACE) as u32;
    let (format, channels) = match cs {
        tj::TJCS_TJCS_CMYK | tj::TJCS_TJCS_YCCK => (tj::TJPF_TJPF_CMYK as std::ffi::c_int, 4),
        tj::TJCS_TJCS_GRAY => (tj::TJPF_TJPF_GRAY as std::ffi::c_int, 1),
        _ => (tj::TJPF_TJPF_RGB as std::ffi::c_int, 3),
    };
    let mut buf = vec![0u8; w * ht * channels];
    // SAFETY: `buf` holds exactly height rows of `pitch` bytes.
    let rc = unsafe {
        tj::tj3Decompress8(
            h.0,
            bytes.as_ptr(),
            bytes.len() as tj::size_t,
            buf.as_mut_ptr(),
            (w * channels) as i32,
            format,
        )
    };
    if rc != 0 {
        let (warning, msg) = h.error();
        if !warning || msg.contains("Premature end") {
            return Err(msg);
        }
    }
    let px = match channels {
        3 => buf,
        1 => buf.iter().flat_map(|&v| [v, v, v]).collect(),
        _ => buf.chunks_exact(4).flat_map(inverted_cmyk_to_rgb).collect(),
    };
    Ok(Rgb { w, h: ht, px })
}

/// Pillow's `MULDIV255`: `a * b / 255`, rounded, in integers.
fn muldiv255(a: i32, b: i32) -> i32 {
    let t = a * b + 128;
    ((t >> 8) + t) >> 8
}

/// An Adobe (inverted) CMYK pixel as libjpeg returns it, through Pillow's
/// `CMYK;I` unpacking and `cmyk2rgb`.
fn inverted_cmyk_to_rgb(p: &[u8]) -> [u8; 3] {
    let [c, m, y, k] = [0, 1, 2, 3].map(|i| 255 - i32::from(p[i]));
    let nk = 255 - k;
    let ch = |v: i32| (nk - muldiv255(v, nk)).clamp(0, 255) as u8;
    [ch(c), ch(m), ch(y)]
}

fn decode_png(bytes: &[u8]) -> Result<Rgb, String> {
    use image::DynamicImage as D;
    let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
        .map_err(|e| e.to_string())?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 || w * h > MAX_PIXELS {
        return Err(format!("{w}x{h} pixels: not an image Pillow opens"));
    }
    let hi = |v: u16| (v >> 8) as u8;
    let clip = |v: u16| v.min(255) as u8;
    let px: Vec<u8> = match &img {
        D::ImageRgb8(b) => b.as_raw().clone(),
        D::ImageRgba8(b) => b
            .as_raw()
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        D::ImageLuma8(b) => b.as_raw().iter().flat_map(|&v| [v, v, v]).collect(),
        D::ImageLumaA8(b) => b.as_raw().chunks_exact(2).flat_map(|p| [p[0]; 3]).collect(),
        D::ImageRgb16(b) => b.as_raw().iter().map(|&v| hi(v)).collect(),
        D::ImageRgba16(b) => b
            .as_raw()
            .chunks_exact(4)
            .flat_map(|p| [hi(p[0]), hi(p[1]), hi(p[2])])
            .collect(),
        D::ImageLuma16(b) => b.as_raw().iter().flat_map(|&v| [clip(v); 3]).collect(),
        D::ImageLumaA16(b) => b
            .as_raw()
            .chunks_exact(2)
            .flat_map(|p| [clip(p[0]); 3])
            .collect(),
        other => return Err(format!("unsupported PNG pixel type {:?}", other.color())),
    };
    Ok(Rgb { w, h, px })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmyk_conversion_is_pillows() {
        // Inverted CMYK as stored: 255 = no ink.
        assert_eq!(inverted_cmyk_to_rgb(&[255, 255, 255, 255]), [255, 255, 255]);
        assert_eq!(inverted_cmyk_to_rgb(&[0, 0, 0, 0]), [0, 0, 0]);
        assert_eq!(inverted_cmyk_to_rgb(&[0, 255, 255, 255]), [0, 255, 255]);
        // k = 255 - 55 = 200 -> nk = 55; c = 100 -> 55 - 55*100/255 = 55 - 22 = 33.
        assert_eq!(inverted_cmyk_to_rgb(&[155, 255, 255, 55]), [33, 55, 55]);
        assert_eq!(muldiv255(255, 255), 255);
        assert_eq!(muldiv255(128, 255), 128);
    }

    #[test]
    fn png_content_decodes_whatever_the_name() {
        use image::ImageEncoder as _;
        let mut png = Vec::new();
        let rgba: Vec<u8> = (0..4 * 3 * 2).map(|i| (i * 10) as u8).collect();
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(&rgba, 3, 2, image::ExtendedColorType::Rgba8)
            .unwrap();
        let img = decode(&png).unwrap();
        assert_eq!((img.w, img.h), (3, 2));
        assert_eq!(&img.px[..6], &[0, 10, 20, 40, 50, 60]);
    }

    #[test]
    fn garbage_and_truncation_are_refused() {
        assert!(decode(b"definitely not an image").is_err());
        assert!(decode(&[0xff, 0xd8, 0xff]).is_err());
        let mut jpg = Vec::new();
        let px: Vec<u8> = (0..64 * 48 * 3).map(|i| (i * 7 % 251) as u8).collect();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpg, 90)
            .encode(&px, 64, 48, image::ExtendedColorType::Rgb8)
            .unwrap();
        assert!(decode(&jpg).is_ok());
        assert!(decode(&jpg[..jpg.len() / 2]).is_err());
        // A header announcing 65000 x 65000 pixels is refused before any
        // allocation (Pillow: DecompressionBombError).
        let sof = jpg.windows(2).position(|w| w == [0xff, 0xc0]).unwrap();
        let mut bomb = jpg.clone();
        bomb[sof + 5..sof + 9].copy_from_slice(&[0xfd, 0xe8, 0xfd, 0xe8]);
        let e = decode(&bomb).err().expect("refused");
        assert!(e.contains("more than Pillow opens"), "{e}");
    }
}
