//! What a training step computes, one file per method behind one interface
//! (docs/method.md §8): `step.rs` is the [`Method`] trait the trainer calls,
//! `plan.rs` what a step needs (views, partner samples, forward passes,
//! logged terms), `config.rs` the resolved constants of every method and the
//! only code that names them all ([`build`], [`plan()`]).
//!
//! Methods: `ddgsd.rs` (the DDGSD family: baseline, the ablation arms and
//! DDGSD, with `loss.rs` and the presets of `presets.rs`), `cs_kd.rs`,
//! `ps_kd.rs`, `tf_kd_reg.rs`, `label_smoothing.rs`, `tf_kd_self.rs` (a
//! trained run as teacher) and `byot.rs` (auxiliary heads); `arms.rs` holds
//! the resolved arm and the built-in ones.
//!
//! Uses: data.
pub mod arms;
pub mod byot;
pub mod config;
pub mod cs_kd;
pub mod ddgsd;
pub mod label_smoothing;
pub mod loss;
pub mod plan;
pub mod presets;
pub mod ps_kd;
pub mod step;
pub mod tf_kd_reg;
pub mod tf_kd_self;

pub use config::{build, plan, MethodConfig, MethodEnv};
pub use step::{Loss, Method, Outputs, StepData};
