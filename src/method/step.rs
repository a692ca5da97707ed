//! The method interface: what the trainer hands a method each step and what
//! it gets back (docs/method.md §8).
//!
//! A run's method is built once ([`crate::method::build`]) from its resolved
//! arm. Each step the trainer makes the views of the plan, runs its passes
//! and calls [`Method::loss`] with their outputs; it then back-propagates
//! the total and updates the weights itself. The method never runs the
//! network, the backward or the optimizer, so a step stays the trainer's
//! (precision, memory format, deterministic reseeding, on-device logging)
//! whatever the method, and several same-shaped runs could share one fused
//! forward (HFTA) with one method instance each.
//!
//! Beyond a network and its own past (docs/method.md §8):
//! - a teacher network (TF-KD-self: another run's final model): a plan with
//!   `teacher` gets the teacher's outputs of view 0 in
//!   [`StepData::teacher`], computed in eval mode without gradient;
//! - auxiliary heads (BYOT): a plan with `heads` gets every head's logits
//!   and features in [`Outputs::heads`] beside the final ones; the heads'
//!   parameters live beside the network's (under `heads.`), train with it,
//!   and are exported to a file of their own.
use crate::method::plan::StepPlan;
use tch::{Kind, Tensor};

/// What one forward pass returned, cast to fp32: the logits and the pooled
/// penultimate features (`[rows, classes]`, `[rows, D]`), the rows being
/// the pass's views one after the other.
pub struct Outputs {
    pub logits: Tensor,
    pub features: Tensor,
    /// `(logits, features)` of every auxiliary head, shallow first (empty
    /// unless the plan has `heads`).
    pub heads: Vec<(Tensor, Tensor)>,
}

impl Outputs {
    /// The outputs of a network without heads.
    pub fn plain(logits: Tensor, features: Tensor) -> Outputs {
        Outputs {
            logits,
            features,
            heads: Vec::new(),
        }
    }
}

/// Everything a method sees of one step.
pub struct StepData<'a> {
    /// One entry per pass of the plan, in order.
    pub outputs: &'a [Outputs],
    /// `[B]` i64: the labels of the step's samples.
    pub labels: &'a Tensor,
    /// `[B]` i64: the samples' indices in the training split (PS-KD's
    /// memory rows), on the training device.
    pub samples: &'a Tensor,
    /// B.
    pub len: usize,
    /// The epoch in progress, 0-based.
    pub epoch: u32,
    /// The teacher's outputs of view 0 (a plan with `teacher`).
    pub teacher: Option<&'a Outputs>,
}

impl StepData<'_> {
    /// View `v` of the pass that contains it: `(logits, features)`, `[B, ..]`.
    pub fn view(&self, plan: &StepPlan, v: usize) -> (Tensor, Tensor) {
        let (i, p) = plan
            .passes
            .iter()
            .enumerate()
            .find(|(_, p)| (p.first..p.first + p.count).contains(&v))
            .expect("the plan covers every view");
        let o = &self.outputs[i];
        let n = self.len as i64;
        let k = (v - p.first) as i64;
        if p.count == 1 {
            (o.logits.shallow_clone(), o.features.shallow_clone())
        } else {
            (o.logits.narrow(0, k * n, n), o.features.narrow(0, k * n, n))
        }
    }
}

/// A step's loss: the total to back-propagate, each logged term (weighted,
/// in the plan's order; the total is their sum), and the logits whose
/// training accuracy is logged (view 0's).
pub struct Loss {
    pub total: Tensor,
    pub terms: Vec<Tensor>,
    pub logits: Tensor,
}

impl Loss {
    /// The loss whose total is the sum of `terms` (in order).
    pub fn of_terms(terms: Vec<Tensor>, logits: Tensor) -> Loss {
        let mut total = terms[0].shallow_clone();
        for t in &terms[1..] {
            // Out of place: the first term keeps its own value.
            total = &total + t;
        }
        Loss {
            total,
            terms,
            logits,
        }
    }

    /// `[total, terms..., extra...]` as one detached f32 tensor on the
    /// device (what the logs accumulate without a host sync).
    pub fn stacked(&self, extra: &[&Tensor]) -> Tensor {
        let mut all = vec![self.total.detach().to_kind(Kind::Float)];
        all.extend(self.terms.iter().map(|t| t.detach().to_kind(Kind::Float)));
        all.extend(extra.iter().map(|t| t.detach().to_kind(Kind::Float)));
        Tensor::stack(&all, 0)
    }
}

/// One method's step, with whatever state it keeps across steps.
pub trait Method: Send {
    /// The views, passes and terms of every step of this run.
    fn plan(&self) -> &StepPlan;

    /// Called before the first step of every epoch, and again when a run
    /// resumes inside one (so it must depend only on `epoch` and the
    /// method's checkpointed state).
    fn begin_epoch(&mut self, _epoch: u32) {}

    /// The loss of one step from the outputs of the plan's passes. A method
    /// with memory updates it here (the step is never undone: a checkpoint
    /// holds the state after the steps it counts).
    fn loss(&mut self, step: &StepData) -> anyhow::Result<Loss>;

    /// Tensors the checkpoint must hold beside the weights and momentum
    /// buffers (named, on any device; written as safetensors).
    fn state(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    /// Restores [`Method::state`] from a checkpoint; an error names what
    /// does not fit (a missing tensor, another shape).
    fn load_state(&mut self, tensors: &[(String, Tensor)]) -> Result<(), String> {
        match tensors.first() {
            None => Ok(()),
            Some((n, _)) => Err(format!("this method keeps no state, found `{n}`")),
        }
    }
}
