//! ImageNet as an ImageFolder tree of generated JPEGs: read, fingerprinted
//! (checked against an independent manifest computation), packed (files
//! unchanged, and re-encoded at a bounded short side), batches of the right
//! shape, a corrupt JPEG skipped and counted, bad layouts refused.
use ddgsd_bench::data::augment::Distortion;
use ddgsd_bench::data::imagenet::pack::{encode_jpeg, Pack};
use ddgsd_bench::data::imagenet::{Imagenet, Transform};
use ddgsd_bench::data::Dataset;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ddgsd-bench"))
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tiny() -> Transform {
    Transform {
        train_size: 16,
        resize: 20,
        crop: 16,
        ..Transform::default()
    }
}

const CLASSES: [&str; 3] = ["n01440764", "n01443537", "n01484850"];

fn jpeg(w: usize, h: usize, seed: usize) -> Vec<u8> {
    let mut px = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            px.extend([
                (x * 255 / w + seed * 40) as u8,
                (y * 255 / h) as u8,
                ((x + y + seed * 17) % 256) as u8,
            ]);
        }
    }
    encode_jpeg(&px, w, h, 92).unwrap()
}

/// train: 4 images per class (sizes vary), val: 2 per class, plus one
/// corrupt file in train/<class 1>/. Returns the root.
fn tree(dir: &Path) -> PathBuf {
    let root = dir.join("imagenet");
    for (c, wnid) in CLASSES.iter().enumerate() {
        for (split, n) in [("train", 4), ("val", 2)] {
            let d = root.join(split).join(wnid);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..n {
                let (w, h) = [(40, 30), (30, 44), (64, 48), (24, 24)][(i + c) % 4];
                std::fs::write(d.join(format!("{wnid}_{i}.JPEG")), jpeg(w, h, c * 10 + i)).unwrap();
            }
        }
    }
    std::fs::write(
        root.join("train").join(CLASSES[1]).join("zz_corrupt.JPEG"),
        b"\xff\xd8\xff\xe0 truncated nonsense",
    )
    .unwrap();
    std::fs::write(
        root.join("train").join(CLASSES[0]).join(".DS_Store"),
        b"hidden files are ignored",
    )
    .unwrap();
    root
}

/// The manifest fingerprint, computed independently of the library.
fn manifest(root: &Path, skip: &[&str]) -> String {
    let mut all = Vec::new();
    for split in ["train", "val"] {
        let mut paths = Vec::new();
        for c in CLASSES {
            for e in std::fs::read_dir(root.join(split).join(c)).unwrap() {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                let rel = format!("{split}/{c}/{name}");
                if !name.starts_with('.') && !skip.contains(&rel.as_str()) {
                    paths.push(rel);
                }
            }
        }
        paths.sort();
        all.extend(paths);
    }
    part_manifest(root, &all)
}

fn values(t: &tch::Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()
}

#[test]
fn folder_read_fingerprinted_batched_and_packed() {
    let t = tempfile::tempdir().unwrap();
    let root = tree(t.path());
    let corrupt = format!("train/{}/zz_corrupt.JPEG", CLASSES[1]);

    let d = Imagenet::open(&root, tiny()).unwrap();
    let info = d.info().clone();
    assert_eq!(
        (info.classes, info.train_len, info.test_len, info.skipped),
        (3, 12, 6, 1)
    );
    assert_eq!(d.skipped, vec![corrupt.clone()]);
    assert_eq!(info.fingerprint, manifest(&root, &[&corrupt]));
    assert_eq!(info.input_size, 16);

    let idx = [0, 5, 11, 3];
    let x = d.train_batch(&idx, 7, 2, 1, Distortion::CropFlip).unwrap();
    assert_eq!(x.size(), vec![4, 3, 16, 16]);
    let again = d.train_batch(&idx, 7, 2, 1, Distortion::CropFlip).unwrap();
    assert_eq!(
        values(&x),
        values(&again),
        "a view is a pure function of its address"
    );
    let other = d.train_batch(&idx, 7, 2, 0, Distortion::CropFlip).unwrap();
    assert_ne!(values(&x), values(&other));
    let labels: Vec<i64> = Vec::try_from(d.train_labels(&idx)).unwrap();
    assert_eq!(labels, vec![0, 1, 2, 0]);
    let v = values(&x);
    assert!(v.iter().all(|p| p.is_finite() && p.abs() < 3.0));
    assert_eq!(
        d.train_batch(&[1], 0, 0, 0, Distortion::FlipOnly)
            .unwrap()
            .size(),
        vec![1, 3, 16, 16]
    );
    let (tx, ty) = d.test_batch(2, 10).unwrap();
    assert_eq!(tx.size(), vec![4, 3, 16, 16]);
    assert_eq!(Vec::<i64>::try_from(ty).unwrap(), vec![1, 1, 2, 2]);

    // Pack with files unchanged: same fingerprint, bit-identical batches.
    let packed = t.path().join("in.pack");
    let o = pack_folder(&root, &packed);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("zz_corrupt.JPEG"),
        "the skipped path is reported: {}",
        text(&o.stderr)
    );
    let p = Imagenet::open(&packed, tiny()).unwrap();
    assert_eq!(p.info().fingerprint, info.fingerprint);
    assert_eq!(p.info().skipped, 1);
    assert_eq!(
        p.source_fingerprint.as_deref(),
        Some(info.fingerprint.as_str())
    );
    assert_eq!(
        values(&p.train_batch(&idx, 7, 2, 1, Distortion::CropFlip).unwrap()),
        values(&x)
    );
    assert_eq!(values(&p.test_batch(2, 10).unwrap().0), values(&tx));

    // Pack re-encoding at a short side of 26: its own fingerprint, the
    // source's recorded, images bounded.
    let small = t.path().join("small.pack");
    let o = run(&[
        "data",
        "pack",
        root.to_str().unwrap(),
        "--to",
        small.to_str().unwrap(),
        "--short-side",
        "26",
        "--quality",
        "85",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let sp = Pack::open(&small).unwrap();
    assert_eq!(sp.header().source_fingerprint, info.fingerprint);
    assert_ne!(sp.header().fingerprint, info.fingerprint);
    assert_eq!(
        sp.header().reencoded,
        14,
        "every image with a short side over 26"
    );
    for k in 0..sp.len() {
        let img = ddgsd_bench::data::imagenet::decode(sp.bytes_of(k)).unwrap();
        assert!(
            img.w.min(img.h) <= 26,
            "{}: {}x{}",
            sp.path_of(k),
            img.w,
            img.h
        );
    }
    let s = Imagenet::open(&small, tiny()).unwrap();
    assert_eq!(
        s.train_batch(&idx, 7, 2, 1, Distortion::CropFlip)
            .unwrap()
            .size(),
        vec![4, 3, 16, 16]
    );

    // The command line: verify, hash, bench on folder and packs.
    for (path, fp) in [
        (&root, &info.fingerprint),
        (&packed, &info.fingerprint),
        (&small, &sp.header().fingerprint),
    ] {
        let o = run(&["data", "verify", path.to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let out = text(&o.stdout);
        assert!(out.contains("12 train / 6 val, 3 classes"), "{out}");
        assert!(out.contains(&format!("fingerprint: {fp}")), "{out}");
        assert!(out.contains("skipped:     1 undecodable"), "{out}");
        assert_eq!(&ddgsd_bench::cli::data::hash(path, None).unwrap(), fp);
    }
    let o = run(&[
        "data",
        "bench",
        packed.to_str().unwrap(),
        "--batches",
        "2",
        "--batch-size",
        "4",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("images/s decoded+augmented"), "{out}");
    // The u8 output of the device path is timed too.
    assert!(
        out.contains("images/s decoded+augmented as u8 (data = \"device\")"),
        "{out}"
    );
    // One line per thread count, from 1 up to every core.
    assert!(out.contains("of 4, 1 threads)"), "{out}");
    let cores = std::thread::available_parallelism().map_or(1, |p| p.get());
    assert!(out.contains(&format!("of 4, {cores} threads)")), "{out}");
}

fn refused(args: &[&str], needle: &str) {
    let o = run(args);
    let e = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
    assert!(e.contains(needle), "{args:?}: `{needle}` not in {e}");
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
}

/// The same check through the library (no process start).
fn refused_lib(path: &Path, needle: &str) {
    let e = format!(
        "{:#}",
        ddgsd_bench::cli::data::verify(path, Some("imagenet")).expect_err("should be refused")
    );
    assert!(
        e.contains(needle) && !e.contains('\n'),
        "`{needle}` not in {e}"
    );
}

#[test]
fn bad_layouts_and_bad_packs_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let root = tree(t.path());
    let r = root.to_str().unwrap();

    // A damaged pack: truncated, then one stored byte flipped.
    let packed = t.path().join("p.pack");
    assert!(run(&["data", "pack", r, "--to", packed.to_str().unwrap()])
        .status
        .success());
    let bytes = std::fs::read(&packed).unwrap();
    let cut = t.path().join("cut.pack");
    std::fs::write(&cut, &bytes[..bytes.len() - 40]).unwrap();
    refused(
        &["data", "verify", cut.to_str().unwrap()],
        "cut.pack: truncated pack",
    );
    let mut flipped = bytes.clone();
    flipped[100] ^= 0x55;
    let fl = t.path().join("flipped.pack");
    std::fs::write(&fl, &flipped).unwrap();
    refused_lib(&fl, "the pack is corrupt");

    // An empty class folder.
    let empty = root.join("val").join(CLASSES[2]);
    for e in std::fs::read_dir(&empty).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    refused(
        &["data", "verify", r],
        &format!("val/{}: empty class folder", CLASSES[2]),
    );
    std::fs::remove_dir(&empty).unwrap();
    // A val class that train lacks.
    std::fs::create_dir_all(root.join("val/n99999999")).unwrap();
    std::fs::write(root.join("val/n99999999/a.JPEG"), jpeg(8, 8, 0)).unwrap();
    refused_lib(&root, "val/n99999999: class folder not in train/");
    std::fs::remove_dir_all(root.join("val")).unwrap();
    // val/ as loose files (the raw ILSVRC layout).
    std::fs::create_dir_all(root.join("val")).unwrap();
    std::fs::write(root.join("val/ILSVRC2012_val_00000001.JPEG"), jpeg(8, 8, 0)).unwrap();
    refused(
        &["data", "verify", "--dataset", "imagenet", r],
        "val: holds 1 loose files but no class folders",
    );
    // No val/ at all.
    std::fs::remove_dir_all(root.join("val")).unwrap();
    refused(
        &["data", "verify", "--dataset", "imagenet", r],
        "val: missing folder",
    );
    // A root that does not exist.
    refused(
        &[
            "data",
            "verify",
            "--dataset",
            "imagenet",
            t.path().join("none").to_str().unwrap(),
        ],
        "not found; ImageNet cannot be downloaded automatically",
    );
}

/// A class whose every training file is undecodable is an empty class,
/// refused by `data verify` and `data pack` (nothing written); a `--to`
/// that cannot be written is refused before the pack starts.
#[test]
fn a_class_left_without_a_decodable_training_image_is_empty_and_bad_targets_fail_first() {
    let t = tempfile::tempdir().unwrap();
    let root = tree(t.path());
    let r = root.to_str().unwrap();
    let class = root.join("train").join(CLASSES[2]);
    for e in std::fs::read_dir(&class).unwrap() {
        std::fs::write(e.unwrap().path(), b"\xff\xd8\xff\xe0 not an image").unwrap();
    }
    let want = format!("train/{}: no decodable training image", CLASSES[2]);
    let dst = t.path().join("x.pack");
    for args in [
        vec!["data", "verify", r],
        vec!["data", "pack", r, "--to", dst.to_str().unwrap()],
    ] {
        let o = run(&args);
        let e = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
        let line = e
            .lines()
            .find(|l| l.starts_with("ddgsd-bench: error:"))
            .unwrap();
        assert!(line.contains(&want), "{args:?}: {line}");
    }
    assert!(!dst.exists(), "nothing written");
    let leftovers: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        leftovers
            .iter()
            .all(|n| !n.to_string_lossy().starts_with(".tmp-")),
        "{leftovers:?}"
    );
    // --to a folder, or into a folder that does not exist: at once.
    for (to, needle) in [
        (t.path().to_path_buf(), "--to names a folder"),
        (t.path().join("no/such/x.pack"), "no such folder"),
    ] {
        let t0 = std::time::Instant::now();
        refused(&["data", "pack", r, "--to", to.to_str().unwrap()], needle);
        assert!(t0.elapsed() < std::time::Duration::from_secs(20));
    }
}

/// `[runtime] data = "device"` on ImageNet: the loader writes u8 views and
/// the device normalises them; the batches must equal the host path's f32
/// batches bit for bit, for every distortion, through the trainer's own
/// glue (`feed::prepare` and `Prepared::into_inputs`).
#[test]
fn u8_views_normalised_on_the_device_equal_the_host_batches() {
    use ddgsd_bench::data::pixels::{pixel_batch, PixelNorm};
    use ddgsd_bench::train::feed::{DeviceSide, Feed, Path as BatchPath};
    use tch::Device;
    let t = tempfile::tempdir().unwrap();
    let root = tree(t.path());
    let bits = |t: &tch::Tensor| values(t).iter().map(|v| v.to_bits()).collect::<Vec<_>>();

    let d = Imagenet::open(&root, tiny()).unwrap();
    let src = d.pixel_views().expect("ImageNet has a u8 path");
    let norm = PixelNorm::new(&src.lut(), Device::Cpu);
    let idx = [0, 5, 11, 3, 5];
    for dist in [
        Distortion::CropFlip,
        Distortion::FlipOnly,
        Distortion::CropOnly,
        Distortion::None,
    ] {
        for (epoch, view) in [(0u64, 0u8), (3, 1)] {
            let host = d.train_batch(&idx, 7, epoch, view, dist).unwrap();
            let u8s = pixel_batch(src, &idx, 7, epoch, view, dist, None).unwrap();
            assert_eq!(u8s.size(), vec![5, 16, 16, 3]);
            let dev = norm.normalise(&u8s);
            assert_eq!(dev.size(), host.size());
            assert!(
                bits(&host) == bits(&dev),
                "{dist:?} epoch {epoch} view {view}"
            );
        }
    }

    // The u8 view itself, rebuilt here from the public pieces: the drawn
    // box, the decoded file, Pillow's resize, then the mirror when drawn.
    let u8s = pixel_batch(src, &idx, 7, 1, 0, Distortion::CropFlip, None).unwrap();
    let got: Vec<u8> = Vec::try_from(u8s.flatten(0, -1)).unwrap();
    let tr = tiny();
    let mut flips = 0;
    for (k, &i) in idx.iter().enumerate() {
        let e = &d.train_entries()[i];
        let img = ddgsd_bench::data::imagenet::decode(&std::fs::read(root.join(&e.path)).unwrap())
            .unwrap();
        let b = ddgsd_bench::data::augment::resized_crop(
            7,
            1,
            i as u64,
            0,
            img.h as u32,
            img.w as u32,
            tr.scale,
            tr.ratio,
            Distortion::CropFlip,
        );
        let crop = ddgsd_bench::data::imagenet::resized_crop_view(
            &img,
            (
                b.top as usize,
                b.left as usize,
                b.height as usize,
                b.width as usize,
            ),
            16,
            16,
        );
        let mut want = crop.clone();
        if b.flip {
            flips += 1;
            for y in 0..16 {
                for x in 0..16 {
                    let (o, si) = ((y * 16 + x) * 3, (y * 16 + 15 - x) * 3);
                    want[o..o + 3].copy_from_slice(&crop[si..si + 3]);
                }
            }
        }
        assert_eq!(&got[k * 768..(k + 1) * 768], &want[..], "sample {i}");
    }
    assert!(flips > 0 && flips < idx.len(), "both cases occur: {flips}");

    // The same through a suite's run config and the trainer's glue.
    let suite = t.path().join("s.toml");
    std::fs::write(
        &suite,
        format!(
            "name = \"s\"\nseeds = [3]\narchitectures = [\"imagenet_resnet18\"]\narms = [\"ddgsd\"]\n\
             [dataset]\nname = \"imagenet\"\npath = \"{}\"\n[train]\nepochs = 1\nmilestones = []\nbatch_size = 4\n",
            root.display()
        ),
    )
    .unwrap();
    let s = ddgsd_bench::suite::load(&suite, &Default::default()).unwrap();
    let cfg = &s.runs[0];
    let data = ddgsd_bench::data::open(&s.dataset).unwrap();
    let side = DeviceSide::new(data.as_ref(), true, Device::Cpu).unwrap();
    assert_eq!(side.path(Device::Cpu), BatchPath::Pixels { pin: None });
    let host_side = DeviceSide::new(data.as_ref(), false, Device::Cpu).unwrap();
    assert_eq!(host_side.path(Device::Cpu), BatchPath::Host);
    let idx = [11, 2, 7];
    let feed = Feed::new(cfg, data.as_ref()).unwrap();
    let p = feed
        .prepare(data.as_ref(), &idx, 4, side.path(Device::Cpu))
        .unwrap();
    let h = feed
        .prepare(data.as_ref(), &idx, 4, BatchPath::Host)
        .unwrap();
    let pi = p.into_inputs(Device::Cpu, &side);
    let hi = h.into_inputs(Device::Cpu, &host_side);
    assert_eq!((pi.len, hi.len), (3, 3));
    assert_eq!(
        pi.x.size(),
        vec![6, 3, 224, 224],
        "both views in one tensor"
    );
    assert!(bits(&pi.x) == bits(&hi.x));
    // View v is rows v*B.. of the joint tensor, and equals the dataset's
    // own batch of that view.
    for v in 0..2u8 {
        let own = data
            .train_batch(&idx, 3, 4, v, Distortion::CropFlip)
            .unwrap();
        assert!(bits(&pi.view(v as usize)) == bits(&own), "view {v}");
    }
    assert!(pi.labels.equal(&hi.labels));
    assert!(pi.labels.equal(&data.train_labels(&idx)));
    let bad = feed.prepare(data.as_ref(), &[12], 0, side.path(Device::Cpu));
    assert!(bad.is_err(), "an index past the split is refused");
}

/// `ddgsd-bench data pack ROOT --to PACK` (files unchanged).
fn pack_folder(root: &Path, to: &Path) -> Output {
    run(&[
        "data",
        "pack",
        root.to_str().unwrap(),
        "--to",
        to.to_str().unwrap(),
    ])
}

/// The fingerprint of the files `paths` (relative to `root`, in order),
/// computed independently of the library:
/// the manifest's lines (`path\tsha256\n`) of those files, hashed. The
/// whole dataset's fingerprint is that of every train then val file.
fn part_manifest(root: &Path, paths: &[String]) -> String {
    let lines: String = paths
        .iter()
        .map(|p| {
            let sha = hex::encode(Sha256::digest(std::fs::read(root.join(p)).unwrap()));
            format!("{p}\t{sha}\n")
        })
        .collect();
    hex::encode(Sha256::digest(lines.as_bytes()))
}

/// `[dataset] holdout` on ImageNet, folder and pack: stratified by class,
/// the two parts fingerprinted as the manifest defines them (the folder from
/// the hashes its check computed, the pack from its stored bytes: the same
/// numbers), and the held-out samples evaluated with the evaluation
/// transform, as the validation split is.
#[test]
fn a_holdout_of_imagenet_is_stratified_fingerprinted_and_evaluated() {
    use ddgsd_bench::data::holdout::{split, HoldoutSpec};
    let t = tempfile::tempdir().unwrap();
    let root = tree(t.path());
    let folder = Imagenet::open(&root, tiny()).unwrap();
    let spec = HoldoutSpec { n: 3, seed: 5 };
    let s = split(&folder, &spec).unwrap();
    let r = &s.record;
    assert!(r.stratified);
    assert_eq!((r.n, r.train_len, s.train_ids.len()), (3, 9, 9));
    let labels: Vec<i64> = Vec::try_from(folder.train_labels(&r.ids)).unwrap();
    let mut sorted = labels.clone();
    sorted.sort();
    assert_eq!(sorted, vec![0, 1, 2], "one sample of each class");
    let paths = |ids: &[usize]| -> Vec<String> {
        ids.iter()
            .map(|&i| folder.train_entries()[i].path.clone())
            .collect()
    };
    let (held, kept) = (paths(&r.ids), paths(&s.train_ids));
    assert_eq!(r.holdout_fingerprint, part_manifest(&root, &held));
    assert_eq!(r.train_fingerprint, part_manifest(&root, &kept));
    assert_ne!(r.train_fingerprint, folder.info().fingerprint);
    assert_eq!(split(&folder, &spec).unwrap().record, *r, "a pure function");
    let other = split(&folder, &HoldoutSpec { n: 3, seed: 6 }).unwrap();
    assert_eq!(other.record.ids.len(), 3);

    // The pack of the same files: the same ids and fingerprints.
    let packed = t.path().join("h.pack");
    let o = pack_folder(&root, &packed);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let pack = Imagenet::open(&packed, tiny()).unwrap();
    assert_eq!(split(&pack, &spec).unwrap().record, *r);

    // Held-out samples in the evaluation transform: the centre crop of the
    // resized image, the same whichever store they come from.
    let (x, y) = folder.train_eval_batch(&r.ids).unwrap();
    assert_eq!(x.size(), vec![3, 3, 16, 16]);
    assert_eq!(Vec::<i64>::try_from(y).unwrap(), labels);
    assert_eq!(
        values(&x),
        values(&pack.train_eval_batch(&r.ids).unwrap().0)
    );
    assert!(folder.train_eval_batch(&[12]).is_err());
    assert!(folder.train_fingerprint(&[12]).is_err());
}
