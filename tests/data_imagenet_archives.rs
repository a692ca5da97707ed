//! The official ILSVRC-2012 archives, in miniature (made by
//! `tests/python/imagenet_archives.py` with tarfile and scipy.io.savemat):
//! packed in one streaming pass, they give the same pack as the same
//! images in an ImageFolder tree (classes, labels, paths, bytes,
//! fingerprints, skipped files); an archive with an official name and size
//! but the wrong MD5 is refused and nothing is written. Without the test
//! venv (numpy, scipy, Pillow): "SKIP: ..." and pass.
use ddgsd_bench::data::imagenet::archives::{DEVKIT, OFFICIAL};
use ddgsd_bench::data::imagenet::pack::Pack;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn python() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    p.exists().then_some(p)
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ddgsd-bench"))
        .args(args)
        .output()
        .unwrap()
}

/// `data pack SRC --to DST`.
fn pack(src: &Path, dst: &Path) -> Output {
    run(&[
        "data",
        "pack",
        src.to_str().unwrap(),
        "--to",
        dst.to_str().unwrap(),
    ])
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A copy of the outer train tar whose `<wnid>.tar` holds one undecodable file.
fn with_undecodable_class(train_tar: &[u8], wnid: &str) -> Vec<u8> {
    use std::io::Read;
    let member = |b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    let mut out = tar::Builder::new(Vec::new());
    let mut a = tar::Archive::new(train_tar);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        if name == format!("{wnid}.tar") {
            let mut inner = tar::Builder::new(Vec::new());
            member(
                &mut inner,
                &format!("{wnid}_only.JPEG"),
                b"\xff\xd8\xff\xe0 not an image",
            );
            data = inner.into_inner().unwrap();
        }
        member(&mut out, &name, &data);
    }
    out.into_inner().unwrap()
}

#[test]
fn official_archives_pack_like_their_imagefolder() {
    let Some(py) = python() else {
        println!("SKIP: no .venv/bin/python next to Cargo.toml");
        return;
    };
    let ok = Command::new(&py)
        .args(["-c", "import numpy, scipy.io, PIL"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        println!("SKIP: .venv/bin/python cannot import numpy, scipy, PIL (ci/setup.sh --test installs them)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/imagenet_archives.py");
    let o = Command::new(&py)
        .arg(&script)
        .arg(t.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let (arch, tree) = (t.path().join("archives"), t.path().join("tree"));
    let (a, b) = (t.path().join("a.pack"), t.path().join("b.pack"));
    for (src, dst) in [(&arch, &a), (&tree, &b)] {
        let o = pack(src, dst);
        assert!(o.status.success(), "{}", text(&o.stderr));
        assert!(
            text(&o.stderr).contains("n01484850_corrupt.JPEG"),
            "{}",
            text(&o.stderr)
        );
    }
    let (pa, pb) = (Pack::open(&a).unwrap(), Pack::open(&b).unwrap());
    let (ha, hb) = (pa.header(), pb.header());
    assert_eq!(ha.classes, vec!["n01440764", "n01443537", "n01484850"]);
    assert_eq!((ha.train, ha.val), (10, 7), "the PNG named .JPEG is kept");
    assert_eq!(ha.fingerprint, hb.fingerprint);
    assert_eq!(ha.source_fingerprint, hb.source_fingerprint);
    assert_eq!(ha.classes, hb.classes);
    assert_eq!(ha.skipped, hb.skipped);
    assert_eq!(ha.skipped, vec!["train/n01484850/n01484850_corrupt.JPEG"]);
    for k in 0..pa.len() {
        assert_eq!(pa.path_of(k), pb.path_of(k));
        assert_eq!(pa.label_of(k), pb.label_of(k), "{}", pa.path_of(k));
        assert_eq!(pa.bytes_of(k), pb.bytes_of(k), "{}", pa.path_of(k));
    }
    assert_eq!(pa.verify().unwrap(), ha.fingerprint);
    let o = run(&["data", "verify", a.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains(
            "10 train / 7 val, 3 classes (NOT the official 1281167 / 50000 / 1000 classes"
        ),
        "{}",
        text(&o.stdout)
    );

    // The devkit with an uncompressed meta.mat (scipy's default) reads the same.
    std::fs::copy(
        t.path().join("devkit_uncompressed_mat.tar.gz"),
        arch.join(DEVKIT),
    )
    .unwrap();
    let d = t.path().join("d.pack");
    let o = pack(&arch, &d);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(Pack::open(&d).unwrap().header(), ha);

    // A class whose every training file is undecodable is an empty class:
    // refused, nothing written.
    let train_tar = arch.join("ILSVRC2012_img_train.tar");
    let good = std::fs::read(&train_tar).unwrap();
    std::fs::write(&train_tar, with_undecodable_class(&good, "n01484850")).unwrap();
    let e = t.path().join("e.pack");
    let o = pack(&arch, &e);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("train/n01484850: no decodable training image"),
        "{}",
        text(&o.stderr)
    );
    assert!(!e.exists());
    std::fs::write(&train_tar, good).unwrap();

    // An archive under its official name at its official size must have
    // the published MD5; nothing is written when it does not.
    let (_, size, md5) = OFFICIAL.iter().find(|(n, _, _)| *n == DEVKIT).unwrap();
    std::fs::write(arch.join(DEVKIT), vec![0u8; *size as usize]).unwrap();
    let c = t.path().join("c.pack");
    let o = pack(&arch, &c);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains(DEVKIT) && err.contains(md5), "{err}");
    assert!(!c.exists());
    // A missing archive is named.
    std::fs::remove_file(arch.join(DEVKIT)).unwrap();
    let o = pack(&arch, &c);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains(DEVKIT), "{}", text(&o.stderr));
}

#[test]
fn records_name_the_decoder_and_archive_folders_are_pointed_to_pack() {
    let o = run(&["env"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let env: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        env["image_decoder"],
        ddgsd_bench::data::imagenet::decode::DECODER
    );
    assert!(ddgsd_bench::data::imagenet::decode::DECODER.contains("libjpeg-turbo"));
    // verify/hash on a folder of archives: pack them first.
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join(OFFICIAL[0].0), b"").unwrap();
    let o = run(&["data", "verify", t.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("data pack"), "{}", text(&o.stderr));
}
