//! `ddgsd-bench data ...`: fetch, verify, hash, pack and benchmark datasets.
//! Every error is an [`InputError`] line (exit 2); success exits 0.
use crate::data::augment::Distortion;
use crate::data::cifar::{self, Format, LoadOptions, Variant};
use crate::data::imagenet::{archives as imagenet_archives, pack};
use crate::data::imagenet::{Imagenet, Transform};
use crate::data::pixels::pixel_batch;
use crate::data::Dataset;
use crate::util::error::InputError;
use crate::util::exit::Exit;
use anyhow::{Context, Result};
use clap::Subcommand;
use md5::{Digest, Md5};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Subcommand, Debug)]
pub enum DataCmd {
    /// Download the CIFAR-10 or CIFAR-100 python-version archive into a folder and verify its MD5
    Fetch {
        /// cifar10 or cifar100
        #[arg(value_parser = ["cifar10", "cifar100"])]
        dataset: String,
        /// Folder to put the archive in (created if missing)
        #[arg(long)]
        to: PathBuf,
        /// Download from this address instead (a mirror; ending in `/` appends the archive name).
        /// Also read from the environment variable DDGSD_CIFAR_URL
        #[arg(long)]
        url: Option<String>,
        /// Expected MD5 (hex) instead of the published one, for a mirror that serves another file
        #[arg(long)]
        md5: Option<String>,
    },
    /// Check a dataset (CIFAR archive or folder, ImageNet folder or pack): format, counts, labels, MD5; print a summary and its fingerprint
    Verify {
        /// Archive, extracted folder, parent folder, ImageNet folder or pack
        path: PathBuf,
        /// cifar10, cifar100 or imagenet (default: detected)
        #[arg(long, value_parser = ["cifar10", "cifar100", "imagenet"])]
        dataset: Option<String>,
    },
    /// Print a dataset's fingerprint only
    Hash {
        path: PathBuf,
        #[arg(long, value_parser = ["cifar10", "cifar100", "imagenet"])]
        dataset: Option<String>,
    },
    /// Convert ImageNet into one memory-mapped pack file: an ImageFolder tree (train/<wnid>/*.JPEG, val/<wnid>/*.JPEG) or a folder holding the official archives (ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar, ILSVRC2012_devkit_t12.tar.gz), streamed without extracting
    Pack {
        /// The ImageFolder root, or the folder of the official archives
        src: PathBuf,
        /// The pack file to write (atomically)
        #[arg(long)]
        to: PathBuf,
        /// Resize images whose short side is longer than this and re-encode them (default: store every file unchanged, same fingerprint as the folder)
        #[arg(long)]
        short_side: Option<u32>,
        /// JPEG quality of re-encoded images
        #[arg(long, default_value_t = 90)]
        quality: u8,
    },
    /// Measure the loader alone: training views decoded and distorted per second, at 1, 2, 4, ... threads (ImageNet: also as the u8 views of data = "device")
    Bench {
        path: PathBuf,
        #[arg(long, value_parser = ["cifar10", "cifar100", "imagenet"])]
        dataset: Option<String>,
        /// Batches to time (after one warm-up batch)
        #[arg(long, default_value_t = 10)]
        batches: usize,
        #[arg(long, default_value_t = 64)]
        batch_size: usize,
    },
}

/// Runs one `data` subcommand; returns the exit code.
pub fn run(cmd: DataCmd) -> Result<Exit> {
    match cmd {
        DataCmd::Fetch {
            dataset,
            to,
            url,
            md5,
        } => {
            let v = Variant::parse(&dataset).expect("checked by clap");
            let url = url.or_else(|| {
                std::env::var("DDGSD_CIFAR_URL")
                    .ok()
                    .filter(|s| !s.is_empty())
            });
            let path = fetch(v, &to, url.as_deref(), md5.as_deref())?;
            println!("{}", path.display());
            Ok(Exit::Pass)
        }
        DataCmd::Verify { path, dataset } => {
            print!("{}", verify(&path, dataset.as_deref())?);
            Ok(Exit::Pass)
        }
        DataCmd::Hash { path, dataset } => {
            println!("{}", hash(&path, dataset.as_deref())?);
            Ok(Exit::Pass)
        }
        DataCmd::Pack {
            src,
            to,
            short_side,
            quality,
        } => {
            // A bad --to fails now, not after the whole pack.
            crate::util::atomic::check_target(&to, "--to")?;
            let t0 = Instant::now();
            let opts = pack::PackOptions {
                short_side,
                quality,
            };
            let h = if imagenet_archives::is_archive_dir(&src) {
                imagenet_archives::pack(&src, &to, opts)?
            } else {
                pack::write(&src, &to, opts)?
            };
            let size = std::fs::metadata(&to).map(|m| m.len()).unwrap_or(0);
            println!(
                "packed {} train + {} val images of {} classes into {} ({:.1} MiB, {} re-encoded, {} skipped) in {:.1}s",
                h.train,
                h.val,
                h.classes.len(),
                to.display(),
                size as f64 / (1u64 << 20) as f64,
                h.reencoded,
                h.skipped.len(),
                t0.elapsed().as_secs_f64()
            );
            println!("source fingerprint: {}", h.source_fingerprint);
            println!("pack fingerprint:   {}", h.fingerprint);
            Ok(Exit::Pass)
        }
        DataCmd::Bench {
            path,
            dataset,
            batches,
            batch_size,
        } => {
            print!("{}", bench(&path, dataset.as_deref(), batches, batch_size)?);
            Ok(Exit::Pass)
        }
    }
}

/// What kind of dataset lies at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Cifar(Option<Variant>),
    Imagenet,
}

/// Detects the dataset at `path` (or takes the user's word for it).
pub fn detect(path: &Path, dataset: Option<&str>) -> Result<Kind> {
    match dataset {
        Some("imagenet") => return Ok(Kind::Imagenet),
        Some(d) => return Ok(Kind::Cifar(Variant::parse(d))),
        None => {}
    }
    if !path.exists() {
        return Err(InputError::new(path, None, "not found").into());
    }
    if (path.is_file() && pack::is_pack(path))
        || (path.join("train").is_dir() && path.join("val").is_dir())
    {
        return Ok(Kind::Imagenet);
    }
    if imagenet_archives::is_archive_dir(path) {
        return Err(InputError::new(
            path,
            None,
            format!(
                "holds the official ImageNet archives; pack them first: `ddgsd-bench data pack {} --to imagenet.pack`",
                path.display()
            ),
        )
        .into());
    }
    Ok(Kind::Cifar(None))
}

pub(crate) fn open_any(path: &Path, dataset: Option<&str>) -> Result<Box<dyn Dataset>> {
    Ok(match detect(path, dataset)? {
        Kind::Imagenet => Box::new(Imagenet::open(path, Transform::default())?),
        Kind::Cifar(v) => Box::new(cifar::load(path, v, LoadOptions::default())?.into_dataset()),
    })
}

/// The fingerprint of the dataset at `path`.
pub fn hash(path: &Path, dataset: Option<&str>) -> Result<String> {
    match detect(path, dataset)? {
        Kind::Imagenet if path.is_file() => Ok(pack::Pack::open(path)?.verify()?),
        _ => Ok(open_any(path, dataset)?.info().fingerprint.clone()),
    }
}

/// Checks the dataset at `path` and returns a summary (several lines).
pub fn verify(path: &Path, dataset: Option<&str>) -> Result<String> {
    let mut out = String::new();
    match detect(path, dataset)? {
        Kind::Cifar(v) => {
            let c = cifar::load(path, v, LoadOptions { always_md5: true })?;
            let (tr, te) = c.variant.official_counts();
            out.push_str(&format!(
                "dataset:     {} ({})\n",
                c.variant.name(),
                c.variant.title()
            ));
            out.push_str(&format!("source:      {}\n", c.source()));
            if let Some(m) = &c.md5 {
                out.push_str(&format!("archive md5: {}\n", m.describe()));
            }
            let official = if c.has_official_counts() {
                "the official counts".to_string()
            } else {
                format!("NOT the official {tr} / {te}: a subset or a test fixture")
            };
            out.push_str(&format!(
                "images:      {} train / {} test ({official})\n",
                c.train.len(),
                c.test.len()
            ));
            let mut counts = vec![0usize; c.variant.classes()];
            for &l in &c.train.labels {
                counts[usize::from(l)] += 1;
            }
            let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            out.push_str(&format!(
                "labels:      {} classes, all in range; {lo}..{hi} train images per class{}\n",
                c.variant.classes(),
                if c.variant == Variant::Cifar100 {
                    " (fine labels; coarse labels in range too)"
                } else {
                    ""
                }
            ));
            out.push_str(&format!("fingerprint: {}\n", c.fingerprint));
        }
        Kind::Imagenet => {
            let d = Imagenet::open(path, Transform::default())?;
            let info = d.info().clone();
            out.push_str("dataset:     imagenet\n");
            out.push_str(&format!("source:      {}\n", info.source));
            let (tr, va, cl) = imagenet_archives::OFFICIAL_COUNTS;
            let official = if (info.train_len, info.test_len, info.classes) == (tr, va, cl) {
                "the official ILSVRC-2012 counts".to_string()
            } else {
                format!("NOT the official {tr} / {va} / {cl} classes: a subset or a test fixture")
            };
            out.push_str(&format!(
                "images:      {} train / {} val, {} classes ({official})\n",
                info.train_len, info.test_len, info.classes
            ));
            out.push_str(&format!(
                "skipped:     {} undecodable{}\n",
                info.skipped,
                if info.skipped > 0 {
                    format!(": {}", d.skipped.join(", "))
                } else {
                    String::new()
                }
            ));
            if path.is_file() {
                let p = pack::Pack::open(path)?;
                p.verify()?;
                out.push_str("pack:        every stored image re-hashed: matches the header\n");
                out.push_str(&format!(
                    "source fingerprint: {}\n",
                    p.header().source_fingerprint
                ));
            }
            out.push_str(&format!("fingerprint: {}\n", info.fingerprint));
        }
    }
    out.push_str("ok\n");
    Ok(out)
}

/// Times `batches` training batches (one view each, crop + flip) at 1, 2,
/// 4, ... and every available thread, one line each, so the scaling of the
/// decoding pool is visible.
pub fn bench(
    path: &Path,
    dataset: Option<&str>,
    batches: usize,
    batch_size: usize,
) -> Result<String> {
    let t0 = Instant::now();
    let d = open_any(path, dataset)?;
    let open_s = t0.elapsed().as_secs_f64();
    let n = d.info().train_len;
    let bs = batch_size.clamp(1, n);
    let idx = |b: usize| -> Vec<usize> { (0..bs).map(|k| (b * bs + k) * 7919 % n).collect() };
    let _ = d.train_batch(&idx(0), 0, 0, 0, Distortion::CropFlip)?;
    let max = std::thread::available_parallelism().map_or(1, |p| p.get());
    let mut counts: Vec<usize> = std::iter::successors(Some(1usize), |&k| Some(k * 2))
        .take_while(|&k| k < max)
        .collect();
    counts.push(max);
    let mut out = format!("{}: opened in {open_s:.2}s\n", d.info().source);
    for threads in counts {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .context("cannot start the decoding threads")?;
        let images = batches * bs;
        let timed = |f: &(dyn Fn(&[usize]) -> Result<()> + Sync)| -> Result<f64> {
            pool.install(|| {
                let t = Instant::now();
                for b in 1..=batches {
                    f(&idx(b))?;
                }
                Ok(t.elapsed().as_secs_f64().max(1e-9))
            })
        };
        let s = timed(&|i| d.train_batch(i, 0, 0, 0, Distortion::CropFlip).map(drop))?;
        out.push_str(&format!(
            "{images} training views ({batches} batches of {bs}, {threads} threads) in {s:.2}s: {:.0} images/s decoded+augmented\n",
            images as f64 / s
        ));
        // The loader's output with `data = "device"`: u8 views, normalised
        // on the device.
        if let Some(src) = d.pixel_views() {
            let s = timed(&|i| pixel_batch(src, i, 0, 0, 0, Distortion::CropFlip, None).map(drop))?;
            out.push_str(&format!(
                "{images} training views ({batches} batches of {bs}, {threads} threads) in {s:.2}s: {:.0} images/s decoded+augmented as u8 (data = \"device\")\n",
                images as f64 / s
            ));
        }
    }
    Ok(out)
}

fn check_md5_arg(md5: &str) -> Result<String> {
    let m = md5.trim().to_ascii_lowercase();
    if m.len() != 32 || !m.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(InputError::new(
            Path::new("--md5"),
            None,
            format!("expected 32 hex digits, got `{md5}`"),
        )
        .into());
    }
    Ok(m)
}

/// Downloads the python-version archive of `v` into `to`, streamed to a
/// temporary file, checks its MD5 (the published one unless `md5` is
/// given), and renames it into place. A file already there with the right
/// MD5 is kept. Returns the archive's path.
pub fn fetch(v: Variant, to: &Path, url: Option<&str>, md5: Option<&str>) -> Result<PathBuf> {
    let name = v.archive_name(Format::Python);
    let expected = match md5 {
        Some(m) => check_md5_arg(m)?,
        None => cifar::official_md5(name).expect("official").to_string(),
    };
    std::fs::create_dir_all(to)
        .map_err(|e| InputError::new(to, None, format!("cannot create the folder: {e}")))?;
    let target = to.join(name);
    if target.is_file() && cifar::md5_file(&target)? == expected {
        eprintln!(
            "ddgsd-bench: {} is already here with the expected MD5 {expected}",
            target.display()
        );
        return Ok(target);
    }
    let url = match url {
        Some(u) if u.ends_with('/') => format!("{u}{name}"),
        Some(u) => u.to_string(),
        None => v.url(),
    };
    let net = |e: &dyn std::fmt::Display| -> anyhow::Error {
        InputError::new(Path::new(&url), None, format!("download failed: {e}")).into()
    };
    eprintln!("ddgsd-bench: downloading {url} to {}", target.display());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .build()
        .into();
    let resp = agent.get(&url).call().map_err(|e| net(&e))?;
    let total = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<u64>().ok());
    let mut body = resp.into_body().into_reader();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".part")
        .tempfile_in(to)
        .map_err(|e| InputError::new(to, None, format!("cannot create a temporary file: {e}")))?;
    let mut h = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    let (mut got, start) = (0u64, Instant::now());
    let mut last = Instant::now();
    loop {
        let n = body.read(&mut buf).map_err(|e| net(&e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        tmp.write_all(&buf[..n])
            .map_err(|e| InputError::new(tmp.path(), None, format!("write failed: {e}")))?;
        got += n as u64;
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            eprintln!("ddgsd-bench: {}", progress(got, total, start.elapsed()));
        }
    }
    eprintln!("ddgsd-bench: {}", progress(got, total, start.elapsed()));
    if let Some(t) = total {
        if t != got {
            return Err(net(&format!("received {got} of {t} bytes")));
        }
    }
    let actual = hex::encode(h.finalize());
    if actual != expected {
        // Dropping `tmp` deletes the download.
        return Err(InputError::new(
            Path::new(&url),
            None,
            format!("downloaded file has MD5 {actual}, expected {expected}: deleted, nothing was written to {}", target.display()),
        )
        .into());
    }
    tmp.as_file().sync_all().ok();
    tmp.persist(&target).map_err(|e| {
        InputError::new(
            &target,
            None,
            format!("cannot rename the download into place: {}", e.error),
        )
    })?;
    eprintln!(
        "ddgsd-bench: MD5 {actual} verified; next: `ddgsd-bench data verify {}`",
        target.display()
    );
    Ok(target)
}

fn progress(got: u64, total: Option<u64>, t: Duration) -> String {
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let rate = mib(got) / t.as_secs_f64().max(1e-3);
    match total {
        Some(tot) if tot > 0 => format!(
            "{:.1} / {:.1} MiB ({:.0}%), {rate:.1} MiB/s",
            mib(got),
            mib(tot),
            100.0 * got as f64 / tot as f64
        ),
        _ => format!("{:.1} MiB, {rate:.1} MiB/s", mib(got)),
    }
}
