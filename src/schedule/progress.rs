//! Progress of one worker on stderr: a line per epoch, a live step line on a
//! terminal, and an ETA over the runs this worker has left.
use crate::suite::RunConfig;
use crate::train::Tick;
use std::io::IsTerminal;
use std::time::Instant;

pub fn fmt_secs(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

pub struct Progress {
    total: usize,
    start: Instant,
    done_units: f64,
    last_print: Instant,
    tty: bool,
    /// Work units (image-views) of the runs left when the current one started.
    left_units: f64,
}

impl Progress {
    pub fn new(total: usize) -> Self {
        Progress {
            total,
            start: Instant::now(),
            done_units: 0.0,
            last_print: Instant::now(),
            tty: std::io::stderr().is_terminal(),
            left_units: 0.0,
        }
    }

    /// Units of `cfg`; remembers the units of everything `pending` (for the ETA).
    pub fn units(&mut self, cfg: &RunConfig, train_len: usize, pending: &[&RunConfig]) -> f64 {
        let u = |c: &RunConfig| run_units(c, train_len);
        self.left_units = pending.iter().map(|c| u(c)).sum();
        u(cfg)
    }

    pub fn finished(&mut self, units: f64) {
        self.done_units += units;
    }

    pub fn tick(&mut self, i: usize, cfg: &RunConfig, run_units: f64, t: &Tick) {
        let total = self.total;
        let frac = (f64::from(t.epoch) + t.step as f64 / t.steps as f64) / f64::from(t.epochs);
        let done = self.done_units + frac * run_units;
        let el = self.start.elapsed().as_secs_f64();
        let eta = if done > 0.0 {
            el / done * (self.left_units - frac * run_units).max(0.0)
        } else {
            f64::NAN
        };
        if let Some(log) = t.epoch_log {
            let terms: Vec<String> = log
                .terms
                .iter()
                .map(|(k, v)| format!("{k} {v:.4}"))
                .collect();
            eprintln!(
                "{}[run {i}/{total}] {} epoch {}/{} loss {:.4} ({}) train {:.1}% test top1 {:.2}% top5 {:.2}%{} | {:.1}s | ETA {}",
                if self.tty { "\r\x1b[2K" } else { "" },
                cfg.run_id,
                log.epoch,
                t.epochs,
                log.loss,
                terms.join(" "),
                log.train_top1,
                log.test_top1,
                log.test_top5,
                calibration_and_validation(log),
                log.seconds,
                fmt_secs(eta)
            );
        } else if self.tty && self.last_print.elapsed().as_millis() > 200 {
            self.last_print = Instant::now();
            eprint!(
                "\r\x1b[2K[run {i}/{total}] {} epoch {}/{} step {}/{} loss {:.4} | ETA {}",
                cfg.run_id,
                t.epoch + 1,
                t.epochs,
                t.step,
                t.steps,
                t.loss,
                fmt_secs(eta)
            );
        }
    }
}

/// ` nll 0.9312 ece 5.21%` and ` val top1 71.30%` where the log has them.
fn calibration_and_validation(log: &crate::train::record::EpochLog) -> String {
    let mut s = String::new();
    if let (Some(n), Some(e)) = (log.test_nll, log.test_ece) {
        s.push_str(&format!(" nll {n:.4} ece {e:.2}%"));
    }
    if let Some(v) = log.val_top1 {
        s.push_str(&format!(" val top1 {v:.2}%"));
    }
    s
}

/// The image-views a run trains: the samples it trains on (the training
/// split less its holdout) x epochs x views.
fn run_units(c: &RunConfig, train_len: usize) -> f64 {
    let trained = train_len - c.holdout.as_ref().map_or(0, |h| h.n.min(train_len));
    trained as f64 * f64::from(c.train.epochs) * f64::from(c.arm.views)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holdout_is_not_counted_as_training_work() {
        let s = crate::suite::load(
            std::path::Path::new("suites/smoke.toml"),
            &Default::default(),
        )
        .unwrap();
        let mut c = s.runs[0].clone();
        let whole = run_units(&c, 1000);
        assert_eq!(
            whole,
            1000.0 * f64::from(c.train.epochs) * f64::from(c.arm.views)
        );
        c.holdout = Some(crate::data::holdout::HoldoutSpec { n: 250, seed: 0 });
        assert_eq!(run_units(&c, 1000), whole * 0.75);
    }
}
