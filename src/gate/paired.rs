//! Paired statistics over seeds: for two arms run with the same seeds, the
//! per-seed differences, their mean, the 95% confidence interval of the mean
//! (Student t with n - 1 degrees of freedom) and a one-sided paired t-test.
//! Quantiles and the CDF come from `statrs`.
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Summary of paired differences `x_i - y_i` (same seed i).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Paired {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation of the differences (n - 1).
    pub sd: f64,
    /// 95% confidence interval of the mean difference; absent below 2 seeds.
    pub ci95: Option<(f64, f64)>,
    /// One-sided p-value of the paired t-test for "the first is better"
    /// (mean difference > 0, or < 0 where lower is better); absent below 2
    /// seeds. With all differences equal it is 0 or 1 (or 0.5 for all 0).
    pub p_one_sided: Option<f64>,
}

/// A p-value with three decimals, `< 0.001` below that.
pub fn fmt_p(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".into()
    } else {
        format!("{p:.3}")
    }
}

/// Paired statistics of `diffs`; `lower_is_better` turns the one-sided test
/// around (error rates).
pub fn paired(diffs: &[f64], lower_is_better: bool) -> Paired {
    let (mean, sd) = crate::gate::stats::mean_sd(diffs);
    let n = diffs.len();
    if n < 2 {
        return Paired {
            n,
            mean,
            sd,
            ci95: None,
            p_one_sided: None,
        };
    }
    let df = (n - 1) as f64;
    let t = StudentsT::new(0.0, 1.0, df).expect("df >= 1");
    let se = sd / (n as f64).sqrt();
    let q = t.inverse_cdf(0.975);
    let ci95 = Some((mean - q * se, mean + q * se));
    let signed = if lower_is_better { -mean } else { mean };
    let p = if se > 0.0 {
        t.sf(signed / se)
    } else if signed > 0.0 {
        0.0
    } else if signed < 0.0 {
        1.0
    } else {
        0.5
    };
    Paired {
        n,
        mean,
        sd,
        ci95,
        p_one_sided: Some(p),
    }
}

/// Differences `a - b` over the seeds both have (inputs sorted or not).
pub fn diffs(a: &[(u64, f64)], b: &[(u64, f64)]) -> Vec<(u64, f64)> {
    a.iter()
        .filter_map(|(s, x)| b.iter().find(|(t, _)| t == s).map(|(_, y)| (*s, x - y)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() < tol, "{a} vs {b}");
    }

    #[test]
    fn matches_scipy() {
        // scipy.stats.ttest_1samp([1.0, 2.0, 3.0, 0.5], 0, alternative="greater")
        //   statistic 2.9314195092110324, pvalue 0.03046537153528998
        // scipy.stats.t.interval(0.95, 3, loc=1.625, scale=sd/2)
        //   (-0.1391539294653481, 3.389153929465348)
        let p = paired(&[1.0, 2.0, 3.0, 0.5], false);
        assert_eq!(p.n, 4);
        close(p.mean, 1.625, 1e-12);
        let (lo, hi) = p.ci95.unwrap();
        close(lo, -0.1391539294653481, 1e-9);
        close(hi, 3.389153929465348, 1e-9);
        close(p.p_one_sided.unwrap(), 0.03046537153528998, 1e-9);
        // Lower is better: the same data is evidence against "better".
        close(
            paired(&[1.0, 2.0, 3.0, 0.5], true).p_one_sided.unwrap(),
            1.0 - 0.03046537153528998,
            1e-9,
        );
    }

    #[test]
    fn by_hand_two_seeds() {
        // d = [1, 3]: mean 2, sd sqrt(2), se 1, t = 2 with 1 df:
        // P(T > 2) = 1/2 - atan(2)/pi; t_{0.975,1} = tan(0.475 pi) = 12.706204736174694 (scipy t.ppf(0.975, 1))
        let p = paired(&[1.0, 3.0], false);
        close(
            p.p_one_sided.unwrap(),
            0.5 - 2f64.atan() / std::f64::consts::PI,
            1e-9,
        );
        let q = (0.475 * std::f64::consts::PI).tan();
        let (lo, hi) = p.ci95.unwrap();
        close(lo, 2.0 - q, 1e-7);
        close(hi, 2.0 + q, 1e-7);
    }

    #[test]
    fn degenerate_cases() {
        let one = paired(&[2.0], false);
        assert_eq!((one.ci95, one.p_one_sided), (None, None));
        assert_eq!(paired(&[1.0, 1.0], false).p_one_sided, Some(0.0));
        assert_eq!(paired(&[1.0, 1.0], true).p_one_sided, Some(1.0));
        assert_eq!(paired(&[0.0, 0.0], false).p_one_sided, Some(0.5));
        assert_eq!(
            diffs(&[(0, 5.0), (1, 6.0), (2, 1.0)], &[(1, 2.0), (0, 1.0)]),
            vec![(0, 4.0), (1, 4.0)]
        );
    }
}
