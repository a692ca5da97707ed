//! Training-curve figures: per suite and architecture, test top-1 (with the
//! validation top-1 as a thin line where the runs have a holdout) and
//! training loss per epoch, and the test NLL and ECE where the records have
//! them, one line per arm (the mean over seeds) with a
//! shaded min-max band over seeds; written as SVG and PNG with plotters
//! (pure Rust, no system font libraries: DejaVu Sans is embedded, see
//! assets/fonts/LICENSE-DejaVu.txt).
use crate::results::Loaded;
use crate::train::record::Record;
use crate::util::atomic;
use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const SIZE: (u32, u32) = (1000, 900);
/// With the calibration panels beside the curves (2 x 2).
const WIDE: (u32, u32) = (1600, 900);
/// Matplotlib's "tab10" colours: distinct, readable on white.
const COLOURS: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

/// Mean, min and max over seeds of one quantity, per epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub mean: Vec<f64>,
    pub min: Vec<f64>,
    pub max: Vec<f64>,
}

/// One arm's curves: epochs 1..=len common to all its seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    pub arm: String,
    pub seeds: usize,
    pub test_top1: Band,
    pub loss: Band,
    /// Present when every run of the arm logged it.
    pub val_top1: Option<Band>,
    pub test_nll: Option<Band>,
    pub test_ece: Option<Band>,
}

fn band(runs: &[&Record], len: usize, f: impl Fn(&crate::train::record::EpochLog) -> f64) -> Band {
    let mut b = Band {
        mean: vec![],
        min: vec![],
        max: vec![],
    };
    for e in 0..len {
        let xs: Vec<f64> = runs.iter().map(|r| f(&r.history[e])).collect();
        b.mean.push(crate::gate::stats::mean_sd(&xs).0);
        b.min.push(xs.iter().cloned().fold(f64::INFINITY, f64::min));
        b.max
            .push(xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
    }
    b
}

fn band_opt(
    runs: &[&Record],
    len: usize,
    f: impl Fn(&crate::train::record::EpochLog) -> Option<f64>,
) -> Option<Band> {
    let all = runs
        .iter()
        .all(|r| r.history[..len].iter().all(|h| f(h).is_some()));
    all.then(|| band(runs, len, |h| f(h).unwrap_or(f64::NAN)))
}

/// The curves of one architecture, one per arm that has runs with history.
pub fn curves(records: &[Record], arch: &str, arms: &[String]) -> Vec<Curve> {
    arms.iter()
        .filter_map(|arm| {
            let runs: Vec<&Record> = records
                .iter()
                .filter(|r| r.arch == arch && &r.arm == arm && !r.history.is_empty())
                .collect();
            let len = runs.iter().map(|r| r.history.len()).min()?;
            Some(Curve {
                arm: arm.clone(),
                seeds: runs.len(),
                test_top1: band(&runs, len, |h| h.test_top1),
                loss: band(&runs, len, |h| h.loss),
                val_top1: band_opt(&runs, len, |h| h.val_top1),
                test_nll: band_opt(&runs, len, |h| h.test_nll),
                test_ece: band_opt(&runs, len, |h| h.test_ece),
            })
        })
        .collect()
}

/// Which band of a curve a panel draws (`None`: the curve has none).
type Pick = fn(&Curve) -> Option<&Band>;

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .map_err(|_| ())
            .expect("the embedded DejaVu Sans is a valid font");
    });
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotting failed: {e:?}")
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    y_desc: &str,
    curves: &[Curve],
    pick: Pick,
    thin: Option<(Pick, &str)>,
    legend_at: SeriesLabelPosition,
) -> Result<()> {
    let bands = |c: &Curve| -> Vec<Band> {
        pick(c)
            .into_iter()
            .chain(thin.and_then(|(t, _)| t(c)))
            .cloned()
            .collect()
    };
    let n = curves
        .iter()
        .flat_map(bands)
        .map(|b| b.mean.len())
        .max()
        .unwrap_or(1);
    let lo = curves
        .iter()
        .flat_map(bands)
        .flat_map(|b| b.min)
        .fold(f64::INFINITY, f64::min);
    let hi = curves
        .iter()
        .flat_map(bands)
        .flat_map(|b| b.max)
        .fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.05).max(1e-3 * hi.abs().max(1.0));
    let (lo, hi) = (lo - pad, hi + pad);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.5f64..n as f64 + 0.5, lo..hi)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .x_labels(n.min(20))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .light_line_style(WHITE.mix(0.0))
        .y_desc(y_desc)
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .draw()
        .map_err(err)?;
    for (i, c) in curves.iter().enumerate() {
        let (r, g, b_) = COLOURS[i % COLOURS.len()];
        let colour = RGBColor(r, g, b_).to_rgba();
        if let Some((t, what)) = thin {
            if let Some(v) = t(c) {
                let x = |e: usize| (e + 1) as f64;
                chart
                    .draw_series(LineSeries::new(
                        v.mean.iter().enumerate().map(|(e, y)| (x(e), *y)),
                        colour.mix(0.6).stroke_width(1),
                    ))
                    .map_err(err)?
                    .label(format!("{} {what}", c.arm))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], colour.mix(0.6).stroke_width(1))
                    });
            }
        }
        let Some(b) = pick(c) else { continue };
        let x = |e: usize| (e + 1) as f64;
        let mut poly: Vec<(f64, f64)> = b.max.iter().enumerate().map(|(e, y)| (x(e), *y)).collect();
        poly.extend(b.min.iter().enumerate().rev().map(|(e, y)| (x(e), *y)));
        chart
            .draw_series(std::iter::once(Polygon::new(
                poly,
                colour.mix(0.18).filled(),
            )))
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                b.mean.iter().enumerate().map(|(e, y)| (x(e), *y)),
                colour.stroke_width(2),
            ))
            .map_err(err)?
            .label(format!("{} ({} seeds)", c.arm, c.seeds))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3))
            });
        if n <= 30 {
            chart
                .draw_series(
                    b.mean
                        .iter()
                        .enumerate()
                        .map(|(e, y)| Circle::new((x(e), *y), 3, colour.filled())),
                )
                .map_err(err)?;
        }
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(legend_at)
        .draw()
        .map_err(err)?;
    Ok(())
}

/// Whether any curve has the calibration panels.
fn calibrated(curves: &[Curve]) -> bool {
    curves
        .iter()
        .any(|c| c.test_nll.is_some() || c.test_ece.is_some())
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    curves: &[Curve],
) -> Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(title, ("sans-serif", 24)).map_err(err)?;
    let calibration = calibrated(curves);
    let (top, bottom) = root.split_vertically(SIZE.1 / 2 - 20);
    let (tl, tr, bl, br) = if calibration {
        let (a, b) = top.split_horizontally(WIDE.0 / 2);
        let (c, d) = bottom.split_horizontally(WIDE.0 / 2);
        (a, Some(b), c, Some(d))
    } else {
        (top, None, bottom, None)
    };
    let val = curves.iter().any(|c| c.val_top1.is_some());
    panel(
        &tl,
        if val {
            "test top-1 (%), thin: validation top-1"
        } else {
            "test top-1 (%)"
        },
        "top-1 (%)",
        curves,
        |c| Some(&c.test_top1),
        Some((|c| c.val_top1.as_ref(), "validation")),
        SeriesLabelPosition::LowerRight,
    )?;
    panel(
        &bl,
        "training loss (mean over the epoch's steps)",
        "loss",
        curves,
        |c| Some(&c.loss),
        None,
        SeriesLabelPosition::UpperRight,
    )?;
    if let (Some(tr), Some(br)) = (tr, br) {
        panel(
            &tr,
            "test NLL (nats)",
            "NLL",
            curves,
            |c| c.test_nll.as_ref(),
            None,
            SeriesLabelPosition::UpperRight,
        )?;
        panel(
            &br,
            "test ECE (%)",
            "ECE (%)",
            curves,
            |c| c.test_ece.as_ref(),
            None,
            SeriesLabelPosition::UpperRight,
        )?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// Writes `<suite>__<arch>.svg` and `.png` into `folder` for every
/// architecture of a results directory; returns the files written.
pub fn write_curves(loaded: &Loaded, folder: &Path) -> Result<Vec<PathBuf>> {
    register_font();
    std::fs::create_dir_all(folder).map_err(|e| {
        crate::util::error::InputError::new(folder, None, format!("cannot create: {e}"))
    })?;
    let mut written = Vec::new();
    for arch in &loaded.meta.archs {
        let cs = curves(&loaded.records, arch, &loaded.meta.arms);
        if cs.is_empty() {
            continue;
        }
        let title = format!(
            "{} / {}: mean over seeds, shaded min-max",
            loaded.meta.suite, arch
        );
        let stem = format!("{}__{}", loaded.meta.suite, arch);
        let size = if calibrated(&cs) { WIDE } else { SIZE };
        let svg_path = folder.join(format!("{stem}.svg"));
        let mut svg = String::new();
        draw(
            SVGBackend::with_string(&mut svg, size).into_drawing_area(),
            &title,
            &cs,
        )?;
        atomic::write(&svg_path, svg.as_bytes())?;
        written.push(svg_path);
        let png_path = folder.join(format!("{stem}.png"));
        atomic::write_with(&png_path, |tmp| {
            draw(
                BitMapBackend::new(tmp, size).into_drawing_area(),
                &title,
                &cs,
            )
            .with_context(|| format!("{}", png_path.display()))
        })?;
        written.push(png_path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_are_mean_min_max_over_seeds() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report/cifar100");
        let loaded = crate::results::load(&dir).unwrap();
        let cs = curves(&loaded.records, "resnet18", &loaded.meta.arms);
        let names: Vec<&str> = cs.iter().map(|c| c.arm.as_str()).collect();
        assert_eq!(names, ["baseline", "two_branch", "ddgsd"]);
        let d = &cs[2];
        assert_eq!((d.seeds, d.test_top1.mean.len()), (3, 6));
        // Epoch 1 of seeds 0, 1, 2: 51.14, 50.68, 50.21 (the fixture's records).
        assert!((d.test_top1.mean[0] - (51.14 + 50.68 + 50.21) / 3.0).abs() < 1e-9);
        assert_eq!((d.test_top1.min[0], d.test_top1.max[0]), (50.21, 51.14));
        // Last epoch's loss: 0.2323, 0.2254, 0.222.
        assert_eq!((d.loss.min[5], d.loss.max[5]), (0.222, 0.2323));
        assert!(curves(&loaded.records, "no_such_arch", &loaded.meta.arms).is_empty());
    }

    #[test]
    fn calibration_and_validation_curves_only_where_every_run_has_them() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report/cifar100");
        let mut loaded = crate::results::load(&dir).unwrap();
        let cs = curves(&loaded.records, "resnet18", &loaded.meta.arms);
        assert!(cs
            .iter()
            .all(|c| c.test_nll.is_none() && c.val_top1.is_none()));
        assert!(
            !calibrated(&cs),
            "old records draw the two panels as before"
        );
        for r in &mut loaded.records {
            for h in &mut r.history {
                h.test_nll = Some(f64::from(h.epoch));
                h.test_ece = Some(2.0);
            }
        }
        // One ddgsd run without NLL: that arm gets no NLL curve.
        let k = loaded
            .records
            .iter()
            .position(|r| r.arch == "resnet18" && r.arm == "ddgsd")
            .unwrap();
        loaded.records[k].history[0].test_nll = None;
        let cs = curves(&loaded.records, "resnet18", &loaded.meta.arms);
        assert!(calibrated(&cs));
        assert_eq!(cs[0].test_nll.as_ref().unwrap().mean[2], 3.0);
        assert!(cs[2].test_nll.is_none() && cs[2].test_ece.is_some());
        let d = tempfile::tempdir().unwrap();
        let files = write_curves(&loaded, d.path()).unwrap();
        let svg = std::fs::read_to_string(&files[0]).unwrap();
        assert!(svg.contains("test NLL (nats)") && svg.contains("test ECE (%)"));
    }
}
