//! One training step, whatever the method: run the forward passes of the
//! method's plan over the step's views (training mode, under the run's
//! precision and memory format; a pass without gradient under `no_grad`),
//! hand their fp32 outputs to the method, back-propagate its total and
//! update the weights. The trainer and `bench` both step through here.
use crate::method::{Loss, Method, Outputs, StepData};
use crate::model::Network;
use crate::optim::sgd::Sgd;
use crate::train::exec::Exec;
use crate::train::feed::Inputs;
use anyhow::Result;
use tch::Kind;

/// The network a step trains and how it executes.
pub struct Net<'a> {
    pub net: &'a dyn Network,
    pub exec: &'a Exec,
}

impl Net<'_> {
    /// The passes of `method`'s plan over `inputs` and the method's loss of
    /// them (no backward yet).
    pub fn loss(&self, method: &mut dyn Method, inputs: &Inputs, epoch: u32) -> Result<Loss> {
        let mut outputs = Vec::with_capacity(method.plan().passes.len());
        for p in &method.plan().passes {
            let x = self.exec.input(inputs.views(p.first, p.count))?;
            let run = || -> Result<Outputs> {
                let (z, h) = self.exec.forward(|| self.net.forward(&x, true))?;
                Ok(Outputs {
                    logits: z.to_kind(Kind::Float),
                    features: h.to_kind(Kind::Float),
                })
            };
            outputs.push(if p.grad { run()? } else { tch::no_grad(run)? });
        }
        method.loss(&StepData {
            outputs: &outputs,
            labels: &inputs.labels,
            samples: &inputs.samples,
            len: inputs.len,
            epoch,
        })
    }

    /// The loss of a step and its backward (gradients in the parameters,
    /// no update yet: a data-parallel run averages them first); returns
    /// the loss and the number of samples whose view-0 prediction was right
    /// (an integer scalar on the device).
    pub fn backward(
        &self,
        method: &mut dyn Method,
        opt: &mut Sgd,
        inputs: &Inputs,
        epoch: u32,
    ) -> Result<(Loss, tch::Tensor)> {
        let loss = self.loss(method, inputs, epoch)?;
        let hits = loss
            .logits
            .detach()
            .argmax(-1, false)
            .eq_tensor(&inputs.labels)
            .sum(Kind::Int64);
        opt.zero_grad();
        loss.total.backward();
        Ok((loss, hits))
    }

    /// One step at learning rate `lr`: [`Net::backward`] and the SGD update.
    pub fn step(
        &self,
        method: &mut dyn Method,
        opt: &mut Sgd,
        inputs: &Inputs,
        epoch: u32,
        lr: f64,
    ) -> Result<(Loss, tch::Tensor)> {
        let r = self.backward(method, opt, inputs, epoch)?;
        opt.step(lr);
        Ok(r)
    }
}
