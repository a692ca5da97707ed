//! One training step, whatever the method: run the forward passes of the
//! method's plan over the step's views (training mode, under the run's
//! precision and memory format; a pass without gradient under `no_grad`;
//! with the auxiliary heads when the network has them), run the teacher
//! over view 0 when the plan has one (eval mode, no gradient), hand their
//! fp32 outputs to the method, back-propagate its total and update the
//! weights. The trainer and `bench` both step through here.
use crate::method::{Loss, Method, Outputs, StepData};
use crate::model::heads::Heads;
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
    /// The network's auxiliary heads (a plan with `heads`).
    pub heads: Option<&'a Heads>,
    /// The teacher network (a plan with `teacher`).
    pub teacher: Option<&'a dyn Network>,
}

/// `(logits, features)` and the heads' of one forward of `net` (with
/// `heads`: through its stages), cast to fp32.
pub fn forward(
    net: &dyn Network,
    heads: Option<&Heads>,
    exec: &Exec,
    x: &tch::Tensor,
    train: bool,
) -> Result<Outputs> {
    let f32 = |(z, h): (tch::Tensor, tch::Tensor)| (z.to_kind(Kind::Float), h.to_kind(Kind::Float));
    let Some(heads) = heads else {
        let (z, h) = f32(exec.forward(|| net.forward(x, train))?);
        return Ok(Outputs::plain(z, h));
    };
    let (st, aux) = exec.forward(|| {
        let st = net
            .forward_stages(x, train)
            .expect("heads are built only for staged networks");
        let aux = heads.forward(&st.stages, train);
        (st, aux)
    })?;
    let (z, h) = f32((st.logits, st.features));
    Ok(Outputs {
        logits: z,
        features: h,
        heads: aux.into_iter().map(f32).collect(),
    })
}

impl Net<'_> {
    /// The passes of `method`'s plan over `inputs` and the method's loss of
    /// them (no backward yet).
    pub fn loss(&self, method: &mut dyn Method, inputs: &Inputs, epoch: u32) -> Result<Loss> {
        let plan = method.plan();
        let mut outputs = Vec::with_capacity(plan.passes.len());
        // View 0 as the network took it, when a pass took it alone.
        let mut view0 = None;
        for p in &plan.passes {
            let x = self.exec.input(inputs.views(p.first, p.count))?;
            let run = || forward(self.net, self.heads, self.exec, &x, true);
            outputs.push(if p.grad { run()? } else { tch::no_grad(run)? });
            if p.first == 0 && p.count == 1 {
                view0 = Some(x);
            }
        }
        let teacher = match (plan.teacher, self.teacher) {
            (false, _) => None,
            (true, None) => anyhow::bail!("the plan has a teacher pass, but no teacher was loaded"),
            (true, Some(t)) => {
                let x = match view0 {
                    Some(x) => x,
                    None => self.exec.input(inputs.views(0, 1))?,
                };
                Some(tch::no_grad(|| forward(t, None, self.exec, &x, false))?)
            }
        };
        method.loss(&StepData {
            outputs: &outputs,
            labels: &inputs.labels,
            samples: &inputs.samples,
            len: inputs.len,
            epoch,
            teacher: teacher.as_ref(),
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
