//! SGD with momentum, Nesterov and weight decay, written in Rust so that its
//! state (one momentum buffer per parameter, by name) can be checkpointed
//! and restored bit-exactly. The update is PyTorch's `torch.optim.SGD` with
//! dampening 0:
//!
//! ```text
//! d = grad + wd * p
//! buf = momentum * buf + d        (buf starts at 0, so step 1 gives buf = d)
//! d = d + momentum * buf  (Nesterov)   or   d = buf
//! p = p - lr * d
//! ```
use std::collections::BTreeMap;
use tch::{nn::VarStore, Tensor};

pub struct Sgd {
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    /// name -> (parameter, momentum buffer), in name order.
    params: BTreeMap<String, (Tensor, Tensor)>,
}

impl Sgd {
    /// Optimises every trainable variable of `vs`.
    pub fn new(vs: &VarStore, momentum: f64, nesterov: bool, weight_decay: f64) -> Self {
        let params = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .map(|(name, t)| {
                let buf = tch::no_grad(|| t.zeros_like());
                (name, (t, buf))
            })
            .collect();
        Sgd {
            momentum,
            nesterov,
            weight_decay,
            params,
        }
    }

    pub fn zero_grad(&mut self) {
        for (p, _) in self.params.values_mut() {
            p.zero_grad();
        }
    }

    /// One update with learning rate `lr`: foreach ops through the shim
    /// (a few multi-tensor calls per step instead of several per parameter),
    /// the same elementwise operations as [`Sgd::step_per_parameter`].
    pub fn step(&mut self, lr: f64) {
        let (ps, bs): (Vec<&Tensor>, Vec<&Tensor>) =
            self.params.values().map(|(p, b)| (p, b)).unzip();
        crate::platform::shim::sgd_step(
            &ps,
            &bs,
            lr,
            self.momentum,
            self.weight_decay,
            self.nesterov,
        )
        .expect("SGD update");
    }

    /// The same update, one op per parameter (the reference the foreach
    /// version is tested against, bit for bit).
    pub fn step_per_parameter(&mut self, lr: f64) {
        let (m, wd, nesterov) = (self.momentum, self.weight_decay, self.nesterov);
        tch::no_grad(|| {
            for (p, buf) in self.params.values_mut() {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let d = if wd != 0.0 { g + &*p * wd } else { g };
                let d = if m != 0.0 {
                    let _ = buf.g_mul_scalar_(m);
                    *buf += &d;
                    if nesterov {
                        d + &*buf * m
                    } else {
                        buf.shallow_clone()
                    }
                } else {
                    d
                };
                *p -= d * lr;
            }
        });
    }

    /// Momentum buffers as named tensors (`momentum.<param name>`).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .map(|(n, (_, b))| (format!("momentum.{n}"), b.shallow_clone()))
            .collect()
    }

    /// Restores buffers saved by [`Sgd::state`]; every buffer must be present
    /// with the right shape.
    pub fn load_state(&mut self, tensors: &[(String, Tensor)]) -> Result<(), String> {
        let by_name: BTreeMap<&str, &Tensor> =
            tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        for (name, (p, buf)) in self.params.iter_mut() {
            let key = format!("momentum.{name}");
            let t = by_name
                .get(key.as_str())
                .ok_or_else(|| format!("missing tensor `{key}`"))?;
            if t.size() != p.size() {
                return Err(format!(
                    "tensor `{key}` has shape {:?}, expected {:?}",
                    t.size(),
                    p.size()
                ));
            }
            tch::no_grad(|| buf.copy_(t));
        }
        if by_name.len() != self.params.len() {
            return Err(format!(
                "{} momentum tensors, expected {}",
                by_name.len(),
                self.params.len()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device, Kind};

    #[test]
    fn matches_the_pytorch_update_rule_by_hand() {
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[2], nn::Init::Const(1.0));
        let mut opt = Sgd::new(&vs, 0.9, true, 0.1);
        // loss = sum(w * c): grad = c
        let c = Tensor::from_slice(&[2.0f32, -1.0]);
        let (lr, m, wd) = (0.5f64, 0.9f64, 0.1f64);
        let mut p = [1.0f64, 1.0];
        let mut buf = [0.0f64, 0.0];
        for _ in 0..3 {
            opt.zero_grad();
            (&w * &c).sum(Kind::Float).backward();
            opt.step(lr);
            for i in 0..2 {
                let g = [2.0, -1.0][i];
                let d = g + wd * p[i];
                buf[i] = m * buf[i] + d;
                p[i] -= lr * (d + m * buf[i]);
            }
        }
        let got: Vec<f32> = Vec::try_from(&w).unwrap();
        for i in 0..2 {
            assert!((f64::from(got[i]) - p[i]).abs() < 1e-5, "{got:?} vs {p:?}");
        }
    }

    #[test]
    fn the_foreach_update_equals_the_per_parameter_update_bit_for_bit() {
        for (m, nesterov, wd) in [
            (0.9, true, 5e-4),
            (0.9, false, 1e-4),
            (0.0, false, 5e-4),
            (0.9, true, 0.0),
        ] {
            tch::manual_seed(3);
            let make = || {
                let vs = VarStore::new(Device::Cpu);
                let a = vs.root().var(
                    "a",
                    &[7, 3, 3, 3],
                    nn::Init::Randn {
                        mean: 0.0,
                        stdev: 1.0,
                    },
                );
                let b = vs.root().var(
                    "b",
                    &[10],
                    nn::Init::Randn {
                        mean: 0.0,
                        stdev: 1.0,
                    },
                );
                let _unused = vs.root().var("c", &[4], nn::Init::Const(1.0));
                (vs, a, b)
            };
            let (vs1, a1, b1) = make();
            let (vs2, a2, b2) = make();
            tch::no_grad(|| {
                let mut a2 = a2.shallow_clone();
                let mut b2 = b2.shallow_clone();
                a2.copy_(&a1);
                b2.copy_(&b1);
            });
            let mut o1 = Sgd::new(&vs1, m, nesterov, wd);
            let mut o2 = Sgd::new(&vs2, m, nesterov, wd);
            let x = Tensor::randn([7, 3, 3, 3], (Kind::Float, Device::Cpu));
            for step in 0..4 {
                for (o, a, b) in [(&mut o1, &a1, &b1), (&mut o2, &a2, &b2)] {
                    o.zero_grad();
                    ((a * &x).sum(Kind::Float) * (b * b).sum(Kind::Float)).backward();
                }
                o1.step(0.1);
                o2.step_per_parameter(0.1);
                for (n, t) in vs1.variables() {
                    let u = &vs2.variables()[&n];
                    assert!(
                        t.equal(u),
                        "{n} differs after step {step} (m {m}, nesterov {nesterov}, wd {wd})"
                    );
                }
                let (s1, s2) = (o1.state(), o2.state());
                for ((n, t), (_, u)) in s1.iter().zip(&s2) {
                    assert!(t.equal(u), "{n} differs after step {step}");
                }
            }
        }
    }

    #[test]
    fn state_round_trips() {
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[3], nn::Init::Const(1.0));
        let mut opt = Sgd::new(&vs, 0.9, false, 0.0);
        (&w * 3.0).sum(Kind::Float).backward();
        opt.step(0.1);
        let st = opt.state();
        let vs2 = VarStore::new(Device::Cpu);
        let _w2 = vs2.root().var("w", &[3], nn::Init::Const(1.0));
        let mut opt2 = Sgd::new(&vs2, 0.9, false, 0.0);
        opt2.load_state(&st).unwrap();
        assert!(opt2.state()[0].1.equal(&st[0].1));
        assert!(opt2.load_state(&[]).is_err());
    }
}
