//! A validation split held out of the training split (`[dataset] holdout =
//! N`): N training samples are taken out of training and evaluated every
//! epoch, so that a "best epoch" can be chosen without looking at the test
//! set.
//!
//! Which samples: a draw of the ChaCha stream keyed by the dataset seed
//! ([`Purpose::Holdout`]), stratified by class when the classes allow it:
//! class c, with n_c of the n training samples, gives floor(N n_c / n)
//! samples, and the N - Σ floor(...) left over go one each to the classes
//! with the largest remainders (N n_c mod n; ties to the lower class). Class
//! c's samples are taken by a partial Fisher-Yates shuffle of its sample
//! ids (ascending) on stream c. When that would leave a class with no
//! training sample, the N samples are drawn the same way from all ids on
//! stream 2^64 - 1 instead (`stratified = false`).
//!
//! Both parts are fingerprinted as the dataset is (README "Fingerprints"),
//! restricted to the part's training samples in ascending id order: for the
//! 32x32 datasets SHA-256 over each sample's label (u16 LE) and its 3072
//! pixel bytes; for ImageNet the manifest lines of the part's files.
use crate::data::stream::{Draw, Purpose};
use crate::data::Dataset;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// `[dataset] holdout` and the seed that chooses it (the synthetic set's
/// `seed`; `[dataset] seed` for real datasets, default 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldoutSpec {
    pub n: usize,
    pub seed: u64,
}

/// What a record says about its holdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldoutRecord {
    pub n: usize,
    pub seed: u64,
    /// False when the draw could not be stratified by class.
    pub stratified: bool,
    /// Training samples left for training (train split minus holdout).
    pub train_len: usize,
    pub train_fingerprint: String,
    pub holdout_fingerprint: String,
    /// The held-out sample ids (indices into the training split), ascending.
    pub ids: Vec<usize>,
}

/// A training split divided into the part that trains and the holdout.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Ids that train, ascending.
    pub train_ids: Vec<usize>,
    pub record: HoldoutRecord,
}

/// The holdout ids (ascending) for `labels` (one per training sample, in
/// `0..classes`), and whether the draw is stratified.
pub fn choose(labels: &[i64], classes: usize, n: usize, seed: u64) -> Result<(Vec<usize>, bool)> {
    let total = labels.len();
    if n == 0 || n >= total {
        bail!(
            "[dataset] holdout = {n}: expected between 1 and {} (the training split has {total} samples)",
            total.saturating_sub(1)
        );
    }
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        match usize::try_from(l).ok().filter(|&c| c < classes) {
            Some(c) => by_class[c].push(i),
            None => bail!("training sample {i} has label {l}, outside 0..{classes}"),
        }
    }
    let (t, n128) = (total as u128, n as u128);
    let mut quota: Vec<usize> = by_class
        .iter()
        .map(|ids| (n128 * ids.len() as u128 / t) as usize)
        .collect();
    let left = n - quota.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..classes).collect();
    // Largest remainder first, ties to the lower class (a stable sort).
    order.sort_by_key(|&c| std::cmp::Reverse(n128 * by_class[c].len() as u128 % t));
    for &c in order.iter().take(left) {
        quota[c] += 1;
    }
    let stratified = by_class
        .iter()
        .zip(&quota)
        .all(|(ids, &q)| q < ids.len() || ids.is_empty());
    let mut out = Vec::with_capacity(n);
    if stratified {
        for (c, ids) in by_class.iter_mut().enumerate() {
            out.extend(partial_shuffle(ids, quota[c], seed, c as u64));
        }
    } else {
        let mut all: Vec<usize> = (0..total).collect();
        out.extend(partial_shuffle(&mut all, n, seed, u64::MAX));
    }
    out.sort_unstable();
    Ok((out, stratified))
}

/// The first `k` of a Fisher-Yates shuffle of `ids` on `stream`.
fn partial_shuffle(ids: &mut [usize], k: usize, seed: u64, stream: u64) -> Vec<usize> {
    let mut d = Draw::sequence(Purpose::Holdout, seed, stream);
    let len = ids.len();
    for i in 0..k {
        let j = i + d.below_u64((len - i) as u64) as usize;
        ids.swap(i, j);
    }
    ids[..k].to_vec()
}

/// Divides the training split of `data` as `spec` says, with both parts'
/// fingerprints.
pub fn split(data: &dyn Dataset, spec: &HoldoutSpec) -> Result<Split> {
    let info = data.info();
    let all: Vec<usize> = (0..info.train_len).collect();
    let labels: Vec<i64> = Vec::try_from(data.train_labels(&all))?;
    let (ids, stratified) = choose(&labels, info.classes, spec.n, spec.seed)?;
    let mut held = vec![false; info.train_len];
    for &i in &ids {
        held[i] = true;
    }
    let train_ids: Vec<usize> = all.into_iter().filter(|&i| !held[i]).collect();
    let record = HoldoutRecord {
        n: spec.n,
        seed: spec.seed,
        stratified,
        train_len: train_ids.len(),
        train_fingerprint: data.train_fingerprint(&train_ids)?,
        holdout_fingerprint: data.train_fingerprint(&ids)?,
        ids,
    };
    Ok(Split { train_ids, record })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(per_class: &[usize]) -> Vec<i64> {
        // Interleaved, as real datasets are: 0, 1, 2, 0, 1, 2, ...
        let mut v = Vec::new();
        let mut left = per_class.to_vec();
        while left.iter().any(|&n| n > 0) {
            for (c, n) in left.iter_mut().enumerate() {
                if *n > 0 {
                    v.push(c as i64);
                    *n -= 1;
                }
            }
        }
        v
    }

    #[test]
    fn balanced_classes_give_equal_shares() {
        let l = labels(&[100; 10]);
        let (ids, strat) = choose(&l, 10, 50, 0).unwrap();
        assert!(strat);
        assert_eq!(ids.len(), 50);
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ascending, distinct");
        for c in 0..10 {
            assert_eq!(ids.iter().filter(|&&i| l[i] == c).count(), 5, "class {c}");
        }
    }

    #[test]
    fn remainders_go_to_the_largest_fractions_and_the_draw_is_seeded() {
        // n = 60: 30, 20, 10 samples; N = 7 -> 3.5, 2.33, 1.17 -> 3, 2, 1 + 1 to class 0.
        let l = labels(&[30, 20, 10]);
        let (ids, _) = choose(&l, 3, 7, 4).unwrap();
        let count = |c| ids.iter().filter(|&&i| l[i] == c).count();
        assert_eq!((count(0), count(1), count(2)), (4, 2, 1));
        assert_eq!(choose(&l, 3, 7, 4).unwrap().0, ids, "a pure function");
        assert_ne!(choose(&l, 3, 7, 5).unwrap().0, ids, "the seed matters");
    }

    #[test]
    fn a_class_that_would_lose_every_sample_falls_back_to_a_plain_draw() {
        // One sample of class 2: N = 40 of 41 would give it its own share.
        let l = labels(&[20, 20, 1]);
        let (ids, strat) = choose(&l, 3, 40, 0).unwrap();
        assert!(!strat);
        assert_eq!(ids.len(), 40);
        let e = choose(&l, 3, 41, 0).unwrap_err().to_string();
        assert!(
            e.contains("holdout = 41") && e.contains("41 samples"),
            "{e}"
        );
        assert!(choose(&l, 3, 0, 0).is_err());
    }

    #[test]
    fn golden_draw() {
        // Pins the stream: changing it changes every tuning suite's split.
        let l = labels(&[10, 10]);
        assert_eq!(choose(&l, 2, 4, 0).unwrap().0, GOLDEN);
    }
    const GOLDEN: [usize; 4] = [4, 9, 13, 14];
}
