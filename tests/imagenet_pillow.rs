//! Pixels against the real thing: Pillow and torchvision (in `.venv`)
//! generate JPEGs (4:2:0, 4:2:2 at odd sizes, 4:4:4, progressive, greyscale,
//! CMYK, EXIF-rotated, noise, upscaled), PNGs (RGB, RGBA, palette with and
//! without transparency, grey, 16-bit grey, LA, 1-bit; some named `.JPEG`) and a
//! truncated JPEG, and write what torchvision makes of each
//! (`tests/python/pillow_views.py`). Decoding, the evaluation view
//! (`Resize(256)` + `CenterCrop(224)`), `resized_crop` boxes and the
//! normalised test batch must be bit-identical; a JPEG with a libjpeg
//! warning (extraneous bytes) is decoded, and the truncated file is
//! refused as Pillow refuses it. Without the venv: "SKIP: ..." and pass.
use ddgsd_bench::data::imagenet::{decode, eval_view, resized_crop_view, Imagenet, Transform};
use ddgsd_bench::data::Dataset;
use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    p.exists().then_some(p)
}

/// Asserts equality, saying how far apart the two are when they are not.
fn same(what: &str, ours: &[u8], theirs: &[u8]) {
    assert_eq!(ours.len(), theirs.len(), "{what}: sizes differ");
    let diffs: Vec<i32> = ours
        .iter()
        .zip(theirs)
        .map(|(&a, &b)| (i32::from(a) - i32::from(b)).abs())
        .filter(|&d| d > 0)
        .collect();
    assert!(
        diffs.is_empty(),
        "{what}: {} of {} values differ, max |diff| {}",
        diffs.len(),
        ours.len(),
        diffs.iter().max().unwrap()
    );
}

#[test]
fn decoding_and_views_are_torchvisions_bit_for_bit() {
    let Some(py) = python() else {
        println!("SKIP: no .venv/bin/python next to Cargo.toml");
        return;
    };
    let ok = Command::new(&py)
        .args(["-c", "import torchvision, numpy, PIL"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        println!("SKIP: .venv/bin/python cannot import torchvision, numpy, PIL (ci/setup.sh --test installs them)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/pillow_views.py");
    let o = Command::new(&py)
        .arg(&script)
        .arg(t.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    println!("{}", String::from_utf8_lossy(&o.stdout).trim());
    let cases: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(t.path().join("cases.json")).unwrap()).unwrap();
    let read = |n: &str| std::fs::read(t.path().join(n)).unwrap();

    let root = t.path().join("tree");
    let mut decodable = Vec::new();
    for c in &cases {
        let name = c["name"].as_str().unwrap();
        let bytes = read(&format!("files/{name}"));
        for split in ["train", "val"] {
            let d = root.join(split).join("n00000001");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(name), &bytes).unwrap();
        }
        if !c["decodes"].as_bool().unwrap() {
            assert!(decode(&bytes).is_err(), "{name}: Pillow refuses it");
            continue;
        }
        decodable.push(name.to_string());
        let img = decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (w, h) = (c["w"].as_u64().unwrap(), c["h"].as_u64().unwrap());
        assert_eq!((img.w as u64, img.h as u64), (w, h), "{name}");
        same(
            &format!("{name} decoded"),
            &img.px,
            &read(&format!("expect/{name}.rgb")),
        );
        same(
            &format!("{name} Resize(256)+CenterCrop(224)"),
            &eval_view(&img, 256, 224),
            &read(&format!("expect/{name}.eval")),
        );
        for (k, b) in c["boxes"].as_array().unwrap().iter().enumerate() {
            let b: Vec<usize> = b
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            same(
                &format!("{name} resized_crop{b:?}"),
                &resized_crop_view(&img, (b[0], b[1], b[2], b[3]), 224, 224),
                &read(&format!("expect/{name}.crop{k}")),
            );
        }
    }
    assert!(decodable.iter().any(|n| n == "png_rgb.JPEG"));

    // The whole evaluation path: folder -> normalised test batch.
    let d = Imagenet::open(&root, Transform::default()).unwrap();
    assert_eq!(d.info().test_len, decodable.len());
    assert_eq!(d.info().skipped, 2, "the truncated file, in train and val");
    let (x, _) = d.test_batch(0, decodable.len()).unwrap();
    let ours = Vec::<f32>::try_from(x.flatten(0, -1)).unwrap();
    let theirs: Vec<f32> = decodable
        .iter()
        .flat_map(|n| read(&format!("expect/{n}.norm")))
        .collect::<Vec<u8>>()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(ours.len(), theirs.len());
    let bad = ours
        .iter()
        .zip(&theirs)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    assert_eq!(bad, 0, "normalised values differing from torchvision's");
}
