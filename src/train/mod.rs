//! One run: build the network from the run seed, train it with the arm's
//! loss, evaluate every epoch, checkpoint, resume, and write its record.
//!
//! Resumability rests on the streams: the sample order and every distortion
//! are pure functions of (seed, epoch, index, view), so a checkpoint needs
//! only the weights, the momentum buffers and a position (epoch, step).
//!
//! This file is the loop; `feed` builds batches, `exec` applies precision
//! and memory format, `step_accum` keeps the logged values on the device,
//! `run_state` is the resumable checkpoint, `record` what a run writes,
//! `evaluate` the metrics of a split, `tensorboard` the event files.
//!
//! A data-parallel run (`ctx.group`: `runtime.world_size` > 1) is this
//! same loop on every rank: each takes its share of every global batch
//! (`feed::share`), `grad_sync` averages the gradients between backward and
//! the SGD step, the ranks agree on stopping at every step, evaluation is
//! sharded with its counts all-reduced, and `replicas` keeps every rank's
//! copy of the model identical to rank 0's, which alone writes checkpoints
//! (after a barrier: a checkpoint is complete only when every rank reached
//! it) and the record.
//!
//! Uses: suite, method, optim, model, data, platform, util.
pub mod eval_model;
pub mod evaluate;
pub mod exec;
pub mod feed;
pub mod grad_sync;
pub mod record;
pub mod replicas;
pub mod run_state;
pub mod step;
pub mod step_accum;
pub mod tensorboard;

use crate::data::holdout::{self, Split};
use crate::data::stream::epoch_permutation;
use crate::data::Dataset;
use crate::method::{self, Method, MethodEnv};
use crate::model;
use crate::model::checkpoint;
use crate::model::heads::{self, Heads};
use crate::optim::sgd::Sgd;
use crate::platform::dist::{Group, Op};
use crate::platform::runtime::DataPlacement;
use crate::platform::EnvInfo;
use crate::suite::RunConfig;
use crate::train::evaluate::{EvalMetrics, Evaluation, Evaluator};
use crate::train::exec::Exec;
use crate::train::feed::{share, DeviceSide, Feed, Prepared};
use crate::train::grad_sync::GradSync;
use crate::train::record::{
    BestOn, DatasetRef, EpochLog, Metrics, Record, Timing, HEADS_FILE, MODEL_FILE, RECORD_FILE,
    SCHEMA,
};
use crate::train::step::Net;
use crate::train::step_accum::{DeviceAccum, Readout};
use crate::train::tensorboard::Curves;
use crate::util::atomic;
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tch::{nn::VarStore, Device};

pub use crate::train::run_state::{Accum, TrainState, CHECKPOINT_DIR, STATE_FILE};
pub const CONFIG_FILE: &str = "config.json";

/// SHA-256 of the run's resolved config as JSON, with the dataset path left
/// out (moving the data does not change a run; its fingerprint is checked).
pub fn config_sha256(cfg: &RunConfig) -> String {
    hex::encode(Sha256::digest(cfg.comparable().to_string().as_bytes()))
}

/// Seed of libtorch's generator for weight initialisation (on the CPU, so
/// the initial weights are the same on every device).
pub fn init_seed(seed: u64) -> i64 {
    let h = Sha256::digest([b"ddgsd-bench/init\0".as_slice(), &seed.to_le_bytes()].concat());
    (u64::from_le_bytes(h[..8].try_into().unwrap()) >> 1) as i64
}

/// Seed of libtorch's generator for step `global_step` (dropout and any
/// other torch RNG use): reseeded every step, because libtorch's RNG state
/// cannot be saved through tch, so a resumed run must not depend on it.
pub fn step_seed(seed: u64, global_step: u64) -> i64 {
    let h = Sha256::digest(
        [
            b"ddgsd-bench/step\0".as_slice(),
            &seed.to_le_bytes(),
            &global_step.to_le_bytes(),
        ]
        .concat(),
    );
    (u64::from_le_bytes(h[..8].try_into().unwrap()) >> 1) as i64
}

/// Step seed of rank `rank` > 0 of a data-parallel run (rank 0 uses
/// [`step_seed`]): each rank draws its own dropout masks for its share.
pub fn rank_step_seed(seed: u64, global_step: u64, rank: usize) -> i64 {
    let h = Sha256::digest(
        [
            b"ddgsd-bench/rank-step\0".as_slice(),
            &seed.to_le_bytes(),
            &global_step.to_le_bytes(),
            &(rank as u64).to_le_bytes(),
        ]
        .concat(),
    );
    (u64::from_le_bytes(h[..8].try_into().unwrap()) >> 1) as i64
}

/// What the runner hears while a run trains.
pub struct Tick<'a> {
    pub epoch: u32,
    pub epochs: u32,
    pub step: usize,
    pub steps: usize,
    pub loss: f64,
    /// Set after an epoch's evaluation.
    pub epoch_log: Option<&'a EpochLog>,
}

pub enum Outcome {
    Finished(Box<Record>),
    /// Stopped on request after writing a checkpoint.
    Stopped {
        epoch: u32,
        step: usize,
    },
}

pub struct RunContext<'a> {
    pub cfg: &'a RunConfig,
    pub data: &'a dyn Dataset,
    pub dir: &'a Path,
    pub device: Device,
    pub env: &'a EnvInfo,
    pub stop: &'a AtomicBool,
    /// The process group of a data-parallel run (`runtime.world_size` > 1).
    pub group: Option<&'a Group>,
    /// The teacher's model file (a run whose method has a teacher: its
    /// tensors must hash to `cfg.teacher.checkpoint_sha256`).
    pub teacher: Option<&'a Path>,
}

impl RunContext<'_> {
    /// Whether this process writes the run's files (rank 0, or alone).
    pub fn writes(&self) -> bool {
        self.group.is_none_or(|g| g.rank() == 0)
    }

    /// The group when it has more than one rank: what is logged and
    /// recorded (loss sums, weight digests) is then summed over the ranks;
    /// a group of one logs what a single process does.
    fn peers(&self) -> Option<&Group> {
        self.group.filter(|g| g.world() > 1)
    }
}

pub use crate::train::feed::Batch;

/// The device-side totals are read back every this many steps (progress),
/// at the end of each epoch and before every checkpoint.
pub const READ_BACK_EVERY: usize = 32;

struct Trainer<'a> {
    ctx: &'a RunContext<'a>,
    vs: VarStore,
    net: Box<dyn model::Network>,
    /// The auxiliary heads (BYOT), in `vs` under `heads.`.
    heads: Option<Heads>,
    /// The teacher network and its weights (TF-KD-self).
    teacher: Option<(VarStore, Box<dyn model::Network>)>,
    opt: Sgd,
    /// What a step computes (the arm's method and its state).
    method: Box<dyn Method>,
    st: TrainState,
    /// What `data = "device"` keeps on the device (the split, or the
    /// normalisation table of u8 views); `None` for host batches.
    side: DeviceSide,

    /// Loss terms and correct counts since the last read-back.
    dev_acc: DeviceAccum,
    /// Precision and memory format of the forward.
    exec: Exec,
    /// Gradient buckets of a data-parallel run.
    sync: Option<GradSync>,
    /// The training split less its holdout (`[dataset] holdout`).
    split: Option<Split>,
}

impl<'a> Trainer<'a> {
    fn new(ctx: &'a RunContext<'a>) -> Result<Self> {
        let cfg = ctx.cfg;
        tch::manual_seed(init_seed(cfg.seed));
        let mut vs = VarStore::new(Device::Cpu);
        let classes = ctx.data.info().classes as i64;
        let net = model::build(&cfg.arch, &vs.root(), classes)?;
        let plan = method::plan(&cfg.arm);
        // After the network: its initial weights are those of the same
        // run without heads.
        let heads = plan
            .heads
            .then(|| {
                Heads::of(&vs.root(), net.as_ref(), classes).with_context(|| {
                    format!(
                        "run {}: arm `{}` on `{}`",
                        cfg.run_id,
                        cfg.arm.name,
                        cfg.arch.id()
                    )
                })
            })
            .transpose()?;
        vs.set_device(ctx.device);
        let rt = &cfg.runtime;
        let exec = Exec::new(ctx.device, rt.precision, rt.memory_format);
        exec.prepare(&vs)?;
        let teacher = if plan.teacher {
            Some(load_teacher(ctx, classes, &exec)?)
        } else {
            None
        };
        let t = &cfg.train;
        let opt = Sgd::new(&vs, t.momentum, t.nesterov, t.weight_decay);
        let cfg_hash = config_sha256(cfg);
        let st = TrainState::fresh(&cfg.run_id, &cfg_hash, &ctx.data.info().fingerprint);
        let on_device = cfg.runtime.data == DataPlacement::Device;
        let side = DeviceSide::new(ctx.data, on_device, ctx.device)?;
        let method = method::build(
            &cfg.arm,
            &MethodEnv {
                classes,
                train_len: ctx.data.info().train_len,
                epochs: t.epochs,
                device: ctx.device,
            },
        )?;
        let dev_acc = DeviceAccum::new(&st.acc, &method.plan().terms, ctx.device);
        let sync = ctx.group.map(|_| GradSync::new(&vs));
        let split = cfg
            .holdout
            .as_ref()
            .map(|h| holdout::split(ctx.data, h))
            .transpose()?;
        Ok(Trainer {
            split,
            ctx,
            vs,
            net,
            heads,
            teacher,
            opt,
            method,
            st,
            side,
            dev_acc,
            exec,
            sync,
        })
    }

    /// Restores the last checkpoint if one exists (see `run_state::load`);
    /// in a data-parallel run rank 0 reads it and every rank starts from
    /// rank 0's state.
    fn try_resume(&mut self) -> Result<bool> {
        if !self.ctx.writes() {
            let g = self.ctx.group.expect("ranks > 0 have a group");
            replicas::start_from_rank0(g, &self.vs, &self.opt, &mut self.st)?;
            return Ok(self.st.resumed);
        }
        let found = self.load_checkpoint()?;
        if let Some(g) = self.ctx.group {
            replicas::start_from_rank0(g, &self.vs, &self.opt, &mut self.st)?;
        }
        Ok(found)
    }

    fn load_checkpoint(&mut self) -> Result<bool> {
        let dir = self.ctx.dir.join(CHECKPOINT_DIR);
        let found = run_state::load(
            &dir,
            &self.st,
            &mut self.vs,
            &mut self.opt,
            self.method.as_mut(),
            self.ctx.device,
        )?;
        Ok(match found {
            Some(st) => {
                self.st = st;
                self.st.resumed = true;
                true
            }
            None => false,
        })
    }

    /// Reads the device-side totals back into the state; fails, naming the
    /// epoch and step, when a loss since the last read-back was not finite.
    fn read_back(&mut self, steps_per_epoch: usize) -> Result<()> {
        let names = self.dev_acc.names().to_vec();
        let r = match self.ctx.peers() {
            None => self.dev_acc.read(),
            Some(g) => {
                let r = self.all_ranks(g, self.dev_acc.read())?;
                self.dev_acc = DeviceAccum::new(&Default::default(), &names, self.ctx.device);
                r
            }
        };
        if let Some((g, v)) = r.non_finite {
            let s = steps_per_epoch.max(1) as u64;
            let terms: Vec<String> = names
                .iter()
                .zip(&v[1..])
                .map(|(n, x)| format!("{n} {x}"))
                .collect();
            bail!(
                "run {}: epoch {} step {}: loss is {} ({}); lower train.lr or check the data",
                self.ctx.cfg.run_id,
                g / s + 1,
                g % s + 1,
                v[0],
                terms.join(", ")
            );
        }
        let terms: BTreeMap<String, f64> = names
            .iter()
            .map(|n| n.to_string())
            .zip(r.terms.iter().copied())
            .collect();
        let a = &mut self.st.acc;
        (a.loss, a.terms, a.correct) = (r.loss, terms, r.correct);
        Ok(())
    }

    /// A data-parallel read-back: every rank's device sums hold its part
    /// since the last read-back (weighted by its share of each batch); the
    /// totals are the host's plus the sum over the ranks, the first
    /// non-finite step the earliest of any rank.
    fn all_ranks(&self, g: &Group, mine: Readout) -> Result<Readout> {
        let a = &self.st.acc;
        let names = self.dev_acc.names();
        let k = names.len();
        let mut v = vec![mine.loss];
        v.extend(&mine.terms);
        v.push(mine.correct as f64);
        let sum = g.sum_f64(&v)?;
        let first = mine
            .non_finite
            .as_ref()
            .map_or(i64::MAX, |(s, _)| *s as i64);
        let first = g.reduce_i64(&[first], Op::Min)?[0];
        Ok(Readout {
            loss: a.loss + sum[0],
            terms: names
                .iter()
                .zip(&sum[1..=k])
                .map(|(n, x)| a.terms.get(*n).copied().unwrap_or(0.0) + x)
                .collect(),
            correct: a.correct + sum[k + 1] as u64,
            non_finite: (first != i64::MAX).then(|| {
                let v = mine.non_finite.map_or(vec![f64::NAN; k + 1], |(_, v)| v);
                (first as u64, v)
            }),
        })
    }

    /// Points the device-side totals at the host's (a new epoch, a resume);
    /// a data-parallel run's start from zero (see `all_ranks`).
    fn reset_device_acc(&mut self) {
        let from = if self.ctx.peers().is_some() {
            Default::default()
        } else {
            self.st.acc.clone()
        };
        self.dev_acc = DeviceAccum::new(&from, &self.method.plan().terms, self.ctx.device);
    }

    /// Writes a checkpoint; callers read back first, so a checkpoint never
    /// holds weights updated from a non-finite loss. In a data-parallel run
    /// every rank reaches a barrier first, then rank 0 writes.
    fn save_checkpoint(&mut self) -> Result<()> {
        if let Some(g) = self.ctx.group {
            g.barrier()?;
        }
        if !self.ctx.writes() {
            return Ok(());
        }
        run_state::save(
            &self.ctx.dir.join(CHECKPOINT_DIR),
            &mut self.st,
            &self.vs,
            &self.opt,
            self.method.as_ref(),
        )
    }

    /// The test split's metrics, and the holdout's when there is one; a
    /// data-parallel run evaluates rank r's share of each split with rank
    /// 0's BN statistics and sums over the ranks.
    fn evaluate(&self) -> Result<(Evaluation, Option<EvalMetrics>)> {
        let data = self.ctx.data;
        if let Some(g) = self.ctx.group {
            replicas::broadcast_buffers(g, &self.vs)?;
        }
        let e = Evaluator {
            net: self.net.as_ref(),
            exec: &self.exec,
            batch: self.ctx.cfg.train.eval_batch_size,
            bins: self.ctx.cfg.train.ece_bins,
            group: self.ctx.group,
            heads: self.heads.as_ref(),
        };
        let test = e.run(data.info().test_len, &|s, l| data.test_batch(s, l))?;
        let val = match &self.split {
            Some(sp) => {
                let ids = &sp.record.ids;
                Some(e.run(ids.len(), &|s, l| data.train_eval_batch(&ids[s..s + l]))?)
            }
            None => None,
        };
        Ok((test, val.map(|v| v.metrics)))
    }

    /// One step on this rank's `batch` of a global batch of `global`
    /// samples (the same number outside a data-parallel run).
    fn step(&mut self, batch: Prepared, global: usize, lr: f64) -> Result<()> {
        let cfg = self.ctx.cfg;
        let inputs = batch.into_inputs(self.ctx.device, &self.side);
        let len = inputs.len;
        let share = len as f64 / global as f64;
        tch::manual_seed(match self.ctx.group {
            Some(g) if g.rank() > 0 => rank_step_seed(cfg.seed, self.st.global_step, g.rank()),
            _ => step_seed(cfg.seed, self.st.global_step),
        });
        let net = Net {
            net: self.net.as_ref(),
            exec: &self.exec,
            heads: self.heads.as_ref(),
            teacher: self.teacher.as_ref().map(|(_, t)| t.as_ref()),
        };
        let (loss, hits) =
            net.backward(self.method.as_mut(), &mut self.opt, &inputs, self.st.epoch)?;
        // Logged values stay on the device (no per-step sync); a non-finite
        // loss is caught at the next read-back, before any checkpoint.
        self.dev_acc
            .add_weighted(&loss, &hits, self.st.global_step, share);
        // Data-parallel: the gradients averaged over the ranks, whatever
        // loss made them, before the same SGD step on every rank.
        if let (Some(g), Some(sync)) = (self.ctx.group, &self.sync) {
            sync.all_reduce(g, share)?;
        }
        self.opt.step(lr);
        let a = &mut self.st.acc;
        a.steps += 1;
        a.seen += global as u64;
        self.st.images_trained += (global * self.method.plan().images_per_sample()) as u64;
        Ok(())
    }
}

/// Trains (or resumes) one run in `ctx.dir` and writes its record.
pub fn run(ctx: &RunContext, on_tick: &mut dyn FnMut(Tick)) -> Result<Outcome> {
    let wall = Instant::now();
    let mut tr = Trainer::new(ctx)?;
    tr.try_resume()?;
    if let Some(g) = ctx.group {
        let (n, b, w) = (
            ctx.data.info().train_len,
            ctx.cfg.train.batch_size,
            g.world(),
        );
        if n % b != 0 && n % b < w {
            bail!(
                "run {}: the last batch of an epoch has {} samples ({n} % train.batch_size {b}), fewer than the {w} ranks: choose a batch size that leaves at least {w} or none",
                ctx.cfg.run_id,
                n % b
            );
        }
    }
    let ranks = ctx.group.map(|g| (g.rank(), g.world()));
    let wall_before = tr.st.wall_seconds;
    let cfg = ctx.cfg;
    let t = &cfg.train;
    // The samples that train: the training split, less its holdout.
    let ids = tr.split.as_ref().map(|s| s.train_ids.clone());
    let n = ids.as_ref().map_or(ctx.data.info().train_len, Vec::len);
    let steps = n.div_ceil(t.batch_size);
    // Rank 0 writes the event file (the other ranks write nothing).
    let mut curves = if cfg.runtime.tensorboard && ctx.writes() {
        Some(Curves::open(ctx.dir, &tr.st)?)
    } else {
        None
    };
    // The threads that build batches (decode, crop, resize): the run's own
    // pool, `[runtime] loader_threads` wide.
    // What the producer thread makes for each step (the method's views,
    // the partner index when a view needs one).
    let feed = Feed::new(cfg, ctx.data)?;
    let loader = rayon::ThreadPoolBuilder::new()
        .num_threads(cfg.runtime.loader_threads())
        .thread_name(|i| format!("ddgsd-loader-{i}"))
        .build()
        .context("cannot start the loader threads")?;
    while tr.st.epoch < t.epochs {
        let epoch = tr.st.epoch;
        let mut perm = epoch_permutation(cfg.seed, u64::from(epoch), n);
        if let Some(ids) = &ids {
            perm.iter_mut().for_each(|p| *p = ids[*p]);
        }
        let mut lr = t.schedule.lr(epoch, 0, steps);
        // A producer thread builds the next batches (distortions, decoding)
        // while this one trains; the queue is bounded and the order fixed.
        let first = tr.st.step_in_epoch;
        tr.reset_device_acc();
        tr.method.begin_epoch(epoch);
        let path = tr.side.path(ctx.device);
        let stopped = std::thread::scope(|scope| -> Result<Option<Outcome>> {
            let depth = cfg.runtime.prefetch;
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<(Prepared, usize)>>(depth);
            let (perm, data, loader, feed) = (&perm, ctx.data, &loader, &feed);
            scope.spawn(move || {
                for step in first..steps {
                    let idx = &perm[step * t.batch_size..((step + 1) * t.batch_size).min(n)];
                    let global = idx.len();
                    let idx = match ranks {
                        Some((r, w)) => &idx[share(global, r, w)],
                        None => idx,
                    };
                    let batch = loader
                        .install(|| feed.prepare(data, idx, epoch, path))
                        .map(|b| (b, global));
                    if tx.send(batch).is_err() {
                        break; // the trainer stopped
                    }
                }
            });
            while tr.st.step_in_epoch < steps {
                let step = tr.st.step_in_epoch;
                let mut stop = ctx.stop.load(Ordering::SeqCst);
                if let Some(g) = ctx.group {
                    // Every rank stops at the same step.
                    stop = g.reduce_i64(&[i64::from(stop)], Op::Max)?[0] != 0;
                }
                if stop {
                    tr.read_back(steps)?;
                    tr.st.wall_seconds = wall_before + wall.elapsed().as_secs_f64();
                    tr.save_checkpoint()?;
                    return Ok(Some(Outcome::Stopped { epoch, step }));
                }
                let t0 = Instant::now();
                let (batch, global) = rx.recv().context("the batch producer thread died")??;
                lr = t.schedule.lr(epoch, step, steps);
                tr.step(batch, global, lr)?;
                tr.st.step_in_epoch += 1;
                tr.st.global_step += 1;
                let done = tr.st.step_in_epoch;
                if done == steps || (done - first) % READ_BACK_EVERY == 0 {
                    tr.read_back(steps)?;
                } else {
                    tr.st.acc.seconds += t0.elapsed().as_secs_f64();
                    continue;
                }
                tr.st.acc.seconds += t0.elapsed().as_secs_f64();
                let avg = tr.st.acc.loss / tr.st.acc.steps as f64;
                if let Some(c) = curves.as_mut() {
                    c.read_back(tr.st.global_step, avg)?;
                }
                on_tick(Tick {
                    epoch,
                    epochs: t.epochs,
                    step: step + 1,
                    steps,
                    loss: avg,
                    epoch_log: None,
                });
            }
            Ok(None)
        })?;
        if let Some(outcome) = stopped {
            return Ok(outcome);
        }
        let t_eval = Instant::now();
        let (eval, val) = tr.evaluate()?;
        let test = eval.metrics;
        let a = std::mem::take(&mut tr.st.acc);
        let s = a.steps.max(1) as f64;
        let weights_sha256 = match ctx.group {
            Some(g) => Some(replicas::check_identical(g, &tr.vs, epoch + 1)?)
                .filter(|_| ctx.peers().is_some()),
            None => None,
        };
        let log = EpochLog {
            epoch: epoch + 1,
            lr,
            loss: a.loss / s,
            terms: a.terms.iter().map(|(k, v)| (k.clone(), v / s)).collect(),
            train_top1: 100.0 * a.correct as f64 / a.seen.max(1) as f64,
            test_top1: test.top1,
            test_top5: test.top5,
            seconds: a.seconds + t_eval.elapsed().as_secs_f64(),
            weights_sha256,
            test_nll: Some(test.nll),
            test_ece: Some(test.ece),
            val_top1: val.map(|v| v.top1),
            val_top5: val.map(|v| v.top5),
            val_nll: val.map(|v| v.nll),
            val_ece: val.map(|v| v.ece),
            heads_test_top1: tr.heads.as_ref().map(|_| eval.heads_top1.clone()),
        };
        tr.st.train_seconds += a.seconds;
        tr.st.note_best(&log);
        tr.st.history.push(log.clone());
        if let Some(c) = curves.as_mut() {
            let views = f64::from(cfg.arm.views);
            c.epoch(&log, a.seen as f64 * views / a.seconds.max(1e-9))?;
        }
        tr.st.epoch += 1;
        tr.st.step_in_epoch = 0;
        on_tick(Tick {
            epoch,
            epochs: t.epochs,
            step: steps,
            steps,
            loss: log.loss,
            epoch_log: Some(&log),
        });
        let last = tr.st.epoch == t.epochs;
        if last || tr.st.epoch % cfg.runtime.checkpoint_every == 0 {
            tr.st.wall_seconds = wall_before + wall.elapsed().as_secs_f64();
            tr.save_checkpoint()?;
        }
    }
    finish(&tr, ctx, wall_before + wall.elapsed().as_secs_f64())
        .map(|r| Outcome::Finished(Box::new(r)))
}

/// The teacher network of a run (TF-KD-self) from `ctx.teacher`: built for
/// the run's architecture, its weights checked against the config's
/// `teacher.checkpoint_sha256` (a changed teacher file is refused), frozen,
/// on the run's device.
fn load_teacher(
    ctx: &RunContext,
    classes: i64,
    exec: &Exec,
) -> Result<(VarStore, Box<dyn model::Network>)> {
    let cfg = ctx.cfg;
    let (Some(file), Some(want)) = (
        ctx.teacher,
        cfg.teacher
            .as_ref()
            .and_then(|t| t.checkpoint_sha256.as_ref()),
    ) else {
        bail!(
            "run {}: arm `{}` distils from a teacher, but none was bound to the run",
            cfg.run_id,
            cfg.arm.name
        );
    };
    let tensors = checkpoint::read_model(file)?;
    let got = checkpoint::tensors_sha256(&tensors);
    if &got != want {
        bail!(crate::util::error::InputError::new(
            file,
            None,
            format!(
                "the teacher's tensors hash to {got}, run {} was planned with teacher {want}: the teacher changed since",
                cfg.run_id
            )
        ));
    }
    let (mut tvs, net) = model::build_loaded(&cfg.arch, classes, &tensors, file)?;
    tvs.freeze();
    tvs.set_device(ctx.device);
    exec.prepare(&tvs)?;
    Ok((tvs, net))
}

fn finish(tr: &Trainer, ctx: &RunContext, wall_seconds: f64) -> Result<Record> {
    let cfg = ctx.cfg;
    // A PyTorch state dict: BN counters = training-mode forwards per step x steps.
    let per_step = tr.method.plan().train_forwards() as i64;
    let tensors = model::export::state_dict(&tr.vs, tr.st.global_step as i64 * per_step);
    // The hash covers the heads too; the model file stays the plain network.
    let sha = checkpoint::tensors_sha256(&tensors);
    let (plain, head_tensors) = heads::split(tensors);
    if ctx.writes() {
        if !head_tensors.is_empty() {
            checkpoint::write_safetensors(&ctx.dir.join(HEADS_FILE), &head_tensors)?;
        }
        checkpoint::write_safetensors(&ctx.dir.join(MODEL_FILE), &plain)?;
    }
    let last = tr
        .st
        .history
        .last()
        .context("a finished run has at least one epoch")?;
    let info = ctx.data.info();
    let rec = Record {
        schema: SCHEMA,
        run_id: cfg.run_id.clone(),
        suite: cfg.suite.clone(),
        arch: cfg.arch.id(),
        arm: cfg.arm.name.clone(),
        seed: cfg.seed,
        dataset: DatasetRef {
            name: info.name.clone(),
            fingerprint: info.fingerprint.clone(),
            train_len: info.train_len,
            test_len: info.test_len,
            skipped: info.skipped,
            holdout: tr.split.as_ref().map(|s| s.record.clone()),
        },
        epochs: cfg.train.epochs,
        metrics: Metrics {
            top1_final: last.test_top1,
            top5_final: last.test_top5,
            top1_best: tr.st.best_top1,
            best_epoch: tr.st.best_epoch,
            best_on: if tr.split.is_some() {
                BestOn::Validation
            } else {
                BestOn::Test
            },
            nll_final: last.test_nll,
            ece_final: last.test_ece,
            val_top1_final: last.val_top1,
            val_top1_best: tr.st.best_val_top1,
            accuracy_of: tr
                .heads
                .as_ref()
                .map(|_| "deepest head (the network's own fc)".to_string()),
            heads_top1_final: last.heads_test_top1.clone(),
        },
        checkpoint_sha256: sha,
        platform: ctx.env.platform(),
        config: cfg.clone(),
        env: ctx.env.clone(),
        timing: Timing {
            wall_seconds,
            train_images_per_second: tr.st.images_trained as f64 / tr.st.train_seconds.max(1e-9),
            resumed: tr.st.resumed,
        },
        history: tr.st.history.clone(),
    };
    if ctx.writes() {
        atomic::write_json(&ctx.dir.join(RECORD_FILE), &rec)?;
    }
    Ok(rec)
}
