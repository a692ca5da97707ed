//! The built-in synthetic dataset: 32x32 RGB images generated procedurally
//! from a seed, so the harness runs end to end with no files at all.
//!
//! Each class owns a coloured 6x6 binary motif (drawn at 2x, 12x12 pixels)
//! and a background grating of its own orientation and frequency. A sample
//! places its class motif at a random position, adds a faint motif of
//! another class as a distractor, random brightness, Gaussian noise, and is
//! mirrored with probability 1/2. Position and mirroring make translation
//! and flip invariance useful (the distortions matter); the distractor,
//! the weak grating and the noise keep the task from being trivial.
use super::fingerprint::SampleHasher;
use super::small::{SmallImages, Split};
use super::DatasetInfo;
use crate::data::stream::{Draw, Purpose};
use serde::{Deserialize, Serialize};

/// Parameters of the generator (all part of the dataset's fingerprint
/// through the pixels they produce).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticSpec {
    pub classes: usize,
    pub train: usize,
    pub test: usize,
    pub seed: u64,
    /// Standard deviation of the pixel noise, in units of the [0, 1] range.
    pub noise: f64,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        SyntheticSpec {
            classes: 10,
            train: 2000,
            test: 1000,
            seed: 0,
            noise: 0.25,
        }
    }
}

const SIDE: usize = 32;
const CELLS: usize = 6;
const SCALE: usize = 2;
const MOTIF: usize = CELLS * SCALE;

struct ClassStyle {
    motif: [[bool; CELLS]; CELLS],
    colour: [f64; 3],
    angle: f64,
    freq: f64,
}

fn class_styles(spec: &SyntheticSpec) -> Vec<ClassStyle> {
    (0..spec.classes)
        .map(|k| {
            let mut d = Draw::sequence(Purpose::Synthetic, spec.seed, (3 << 40) | k as u64);
            let mut motif = [[false; CELLS]; CELLS];
            for row in motif.iter_mut() {
                for cell in row.iter_mut() {
                    *cell = d.below(2) == 1;
                }
            }
            let colour = [
                0.3 + 0.7 * d.unit_f64(),
                0.3 + 0.7 * d.unit_f64(),
                0.3 + 0.7 * d.unit_f64(),
            ];
            ClassStyle {
                motif,
                colour,
                angle: std::f64::consts::PI * (k as f64 + d.unit_f64() * 0.5) / spec.classes as f64,
                freq: 2.0 + f64::from(d.below(3)),
            }
        })
        .collect()
}

fn render(spec: &SyntheticSpec, styles: &[ClassStyle], d: &mut Draw, label: usize) -> Vec<u8> {
    let s = &styles[label];
    let mut img = vec![0f64; 3 * SIDE * SIDE];
    let phase = d.unit_f64() * std::f64::consts::TAU;
    let bright = 0.35 + 0.3 * d.unit_f64();
    let (ca, sa) = (s.angle.cos(), s.angle.sin());
    for y in 0..SIDE {
        for x in 0..SIDE {
            let t = (x as f64 * ca + y as f64 * sa) / SIDE as f64;
            let g = 0.12 * (std::f64::consts::TAU * s.freq * t + phase).cos();
            for c in 0..3 {
                img[c * SIDE * SIDE + y * SIDE + x] = bright + g * s.colour[c];
            }
        }
    }
    let other = (label + 1 + d.below(styles.len() as u32 - 1) as usize) % styles.len();
    let mut stamp = |st: &ClassStyle, alpha: f64, d: &mut Draw| {
        let ox = d.below((SIDE - MOTIF + 1) as u32) as usize;
        let oy = d.below((SIDE - MOTIF + 1) as u32) as usize;
        for y in 0..MOTIF {
            for x in 0..MOTIF {
                if st.motif[y / SCALE][x / SCALE] {
                    for c in 0..3 {
                        let p = &mut img[c * SIDE * SIDE + (oy + y) * SIDE + ox + x];
                        *p = (1.0 - alpha) * *p + alpha * st.colour[c];
                    }
                }
            }
        }
    };
    stamp(&styles[other], 0.45, d);
    stamp(s, 0.9, d);
    let mirror = d.below(2) == 1;
    let mut out = vec![0u8; 3 * SIDE * SIDE];
    for c in 0..3 {
        for y in 0..SIDE {
            for x in 0..SIDE {
                let sx = if mirror { SIDE - 1 - x } else { x };
                let v = img[c * SIDE * SIDE + y * SIDE + sx] + spec.noise * d.normal();
                out[c * SIDE * SIDE + y * SIDE + x] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
    }
    out
}

fn split(
    spec: &SyntheticSpec,
    styles: &[ClassStyle],
    which: u64,
    n: usize,
    h: &mut SampleHasher,
) -> Split {
    let mut pixels = Vec::with_capacity(n * 3 * SIDE * SIDE);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let mut d = Draw::sequence(Purpose::Synthetic, spec.seed, (which << 40) | i as u64);
        // Balanced classes: sample i has class i mod K, positions shuffled by
        // the trainer's own permutation anyway.
        let label = i % spec.classes;
        let img = render(spec, styles, &mut d, label);
        h.sample(label as u16, &img);
        pixels.extend_from_slice(&img);
        labels.push(label as u16);
    }
    Split { pixels, labels }
}

/// Generates the dataset; mean and std are those of CIFAR-10 (the synthetic
/// images are in the same range), so the normalisation path is the real one.
pub fn generate(spec: &SyntheticSpec) -> SmallImages {
    let styles = class_styles(spec);
    let mut h = SampleHasher::new();
    let train = split(spec, &styles, 1, spec.train, &mut h);
    let test = split(spec, &styles, 2, spec.test, &mut h);
    let info = DatasetInfo {
        name: "synthetic".into(),
        fingerprint: h.finish(),
        classes: spec.classes,
        train_len: spec.train,
        test_len: spec.test,
        input_size: SIDE,
        source: "built-in".into(),
        skipped: 0,
    };
    SmallImages::new(
        info,
        SIDE,
        train,
        test,
        [0.4914, 0.4822, 0.4465],
        [0.2470, 0.2435, 0.2616],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Dataset;

    #[test]
    fn deterministic_and_seed_dependent() {
        let spec = SyntheticSpec {
            train: 50,
            test: 20,
            ..Default::default()
        };
        let a = generate(&spec);
        let b = generate(&spec);
        assert_eq!(a.info().fingerprint, b.info().fingerprint);
        assert_eq!(a.train_split().pixels, b.train_split().pixels);
        let c = generate(&SyntheticSpec {
            seed: 1,
            ..spec.clone()
        });
        assert_ne!(a.info().fingerprint, c.info().fingerprint);
        assert_eq!(a.info().train_len, 50);
        assert!(a.train_split().labels.iter().all(|&l| l < 10));
    }

    #[test]
    fn classes_are_separable_by_their_mean_image() {
        // A nearest-class-mean classifier on raw pixels must beat chance
        // clearly (structure exists) yet stay far from perfect (not trivial).
        let spec = SyntheticSpec {
            train: 1000,
            test: 500,
            ..Default::default()
        };
        let d = generate(&spec);
        let n = 3 * 32 * 32;
        let mut means = vec![vec![0f64; n]; 10];
        let tr = d.train_split();
        for i in 0..tr.len() {
            let l = tr.labels[i] as usize;
            for (m, &p) in means[l].iter_mut().zip(&tr.pixels[i * n..(i + 1) * n]) {
                *m += f64::from(p) / 100.0;
            }
        }
        let te = d.test_split();
        let mut correct = 0;
        for i in 0..te.len() {
            let px = &te.pixels[i * n..(i + 1) * n];
            let best = (0..10)
                .min_by(|&a, &b| {
                    let da: f64 = means[a]
                        .iter()
                        .zip(px)
                        .map(|(m, &p)| (m - f64::from(p)).powi(2))
                        .sum();
                    let db: f64 = means[b]
                        .iter()
                        .zip(px)
                        .map(|(m, &p)| (m - f64::from(p)).powi(2))
                        .sum();
                    da.total_cmp(&db)
                })
                .unwrap();
            correct += usize::from(best == te.labels[i] as usize);
        }
        let acc = correct as f64 / te.len() as f64;
        assert!(acc > 0.15 && acc < 0.9, "nearest-mean accuracy {acc}");
    }
}
