//! What one training step of a method needs, declared before the run starts
//! ([`StepPlan`]): the views the data side makes of each sample of the
//! step, the forward passes the trainer runs over them, and the names of
//! the loss terms the method logs.
//!
//! The plan is data, not code: the trainer reads it to build batches, run
//! the passes (under the run's precision and memory format), count the
//! batch-norm updates of the exported state dict and size the logs, without
//! naming any method. Because the forward passes are declared rather than
//! run by the method, runs with the same plan could share one forward of a
//! wider, fused model (HFTA) and each compute its own loss from its slice
//! of the outputs.
use crate::data::augment::Distortion;

/// Where the images of a view come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Images {
    /// The step's own samples.
    Samples,
    /// For each sample, a training sample of the same class drawn from the
    /// Partner stream (`data::partner`), distorted by the draw at its
    /// anchor's address (CS-KD).
    SameClass,
}

/// One view of every sample of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewSpec {
    pub images: Images,
    pub distortion: Distortion,
}

/// One forward pass of the network in training mode (batch statistics,
/// running statistics updated) over the views `first .. first + count`,
/// which go through it as one batch (view after view), with or without
/// autograd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub first: usize,
    pub count: usize,
    /// False: the pass runs under `no_grad` (CS-KD's partners).
    pub grad: bool,
}

/// A step of a method: views, passes and logged terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepPlan {
    /// View 0 is always the step's samples (its labels and indices are the
    /// step's); at most 4 views (the streams address 4 per epoch).
    pub views: Vec<ViewSpec>,
    /// Every view in exactly one pass, in view order.
    pub passes: Vec<Pass>,
    /// The loss terms the method returns, in order (logged in the history
    /// under these names beside the total `loss`).
    pub terms: Vec<&'static str>,
    /// The method keeps a record of every training sample from earlier
    /// epochs (PS-KD's predictions): a data-parallel run cannot train it,
    /// since each rank would see only the samples of its own shares.
    pub sample_memory: bool,
    /// A teacher network (another run's final model, in eval mode, without
    /// gradient) also runs over view 0: its outputs are
    /// [`crate::method::StepData::teacher`] (TF-KD-self). The run then
    /// depends on the teacher's run.
    pub teacher: bool,
    /// The network carries auxiliary heads after its stages (BYOT): every
    /// pass returns their outputs beside the final ones
    /// ([`crate::method::Outputs::heads`]), and the heads train with it.
    pub heads: bool,
}

impl StepPlan {
    /// The baseline's step: the samples in one view (`distortion`), one
    /// pass with gradient, the terms `terms`.
    pub fn one_view(distortion: Distortion, terms: &[&'static str]) -> StepPlan {
        StepPlan {
            views: vec![ViewSpec {
                images: Images::Samples,
                distortion,
            }],
            passes: vec![Pass {
                first: 0,
                count: 1,
                grad: true,
            }],
            terms: terms.to_vec(),
            sample_memory: false,
            teacher: false,
            heads: false,
        }
    }

    /// Images forwarded per sample of a step.
    pub fn images_per_sample(&self) -> usize {
        self.views.len()
    }

    /// Training-mode forwards per step: each updates the batch-norm
    /// running statistics once (PyTorch's `num_batches_tracked`).
    pub fn train_forwards(&self) -> usize {
        self.passes.len()
    }

    pub fn needs_partners(&self) -> bool {
        self.views.iter().any(|v| v.images == Images::SameClass)
    }

    /// The plan's own consistency (a method's plan that fails this is a
    /// bug, caught by every method's unit test).
    pub fn check(&self) -> Result<(), String> {
        match self.views.first() {
            None => return Err("a step has at least one view".into()),
            Some(v) if v.images != Images::Samples => {
                return Err("view 0 must show the step's own samples".into())
            }
            _ => {}
        }
        if self.views.len() > 4 {
            return Err(format!(
                "{} views: the streams address 4 per epoch",
                self.views.len()
            ));
        }
        let mut next = 0;
        for p in &self.passes {
            if p.first != next || p.count == 0 {
                return Err(format!(
                    "passes must cover views 0..{} once, in order",
                    self.views.len()
                ));
            }
            next += p.count;
        }
        if next != self.views.len() {
            return Err(format!("passes cover {next} of {} views", self.views.len()));
        }
        if self.terms.is_empty() || self.terms.contains(&"loss") {
            return Err("terms: at least one, and `loss` is the total's name".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(images: Images) -> ViewSpec {
        ViewSpec {
            images,
            distortion: Distortion::CropFlip,
        }
    }

    fn pass(first: usize, count: usize) -> Pass {
        Pass {
            first,
            count,
            grad: true,
        }
    }

    #[test]
    fn plans_are_checked() {
        let good = StepPlan {
            views: vec![view(Images::Samples), view(Images::SameClass)],
            passes: vec![pass(0, 1), pass(1, 1)],
            terms: vec!["ce", "kl"],
            sample_memory: false,
            teacher: false,
            heads: false,
        };
        assert_eq!(good.check(), Ok(()));
        assert!(good.needs_partners());
        assert_eq!((good.images_per_sample(), good.train_forwards()), (2, 2));
        let bad = |f: &dyn Fn(&mut StepPlan)| {
            let mut p = good.clone();
            f(&mut p);
            p.check().unwrap_err()
        };
        assert!(bad(&|p| p.views.swap(0, 1)).contains("view 0"));
        assert!(bad(&|p| p.passes = vec![pass(0, 1)]).contains("cover 1 of 2"));
        assert!(bad(&|p| p.passes = vec![pass(1, 1), pass(0, 1)]).contains("in order"));
        assert!(bad(&|p| p.terms = vec!["loss"]).contains("terms"));
        assert!(bad(&|p| p.views = vec![]).contains("at least one view"));
    }
}
