//! BYOT's auxiliary heads (Zhang et al., ICCV 2019; the public
//! implementation luanyunteng/pytorch-be-your-own-teacher
//! `models/resnet.py`, docs/method.md §15): after every stage but the
//! last, a bottleneck to the last stage's shape, a global average pool and a
//! classifier.
//!
//! Head i (1-based, shallow first) takes stage i's output (C_i channels)
//! and makes a map of the last stage's shape (C channels, the spatial size
//! divided by k = 2^(S − i) for S stages) with `branchBottleNeck(C_i, C, k)`:
//! 1x1 conv C_i → C/4, BN, ReLU; k×k conv of stride k C/4 → C/4, BN, ReLU;
//! 1x1 conv C/4 → C, BN, ReLU (every conv with a bias, as `nn.Conv2d`'s
//! default). The pooled map is the head's feature (BYOT's hint), `fc` its
//! logits. Initialisation as the official code: Kaiming-normal fan-out conv
//! weights, PyTorch's default conv biases and `nn.Linear`, BN weight 1,
//! bias 0. The official network also defines `downsample{i}_1` modules
//! that its forward never uses; they are left out (they change no output
//! and get no gradient).
//!
//! The heads' variables live under `heads.` beside the network's, named as
//! the official modules (`heads.bottleneck1_1.0.weight`, ...,
//! `heads.middle_fc1.bias`), so the network's own state dict stays the
//! plain one and [`split`] separates the two for export.
use super::layers::{bn, global_pool, linear, CONV_INIT};
use super::resnet::conv_with;
use super::Network;
use anyhow::{bail, Context, Result};
use tch::{nn, Tensor};

/// The var-store prefix of the heads' variables.
pub const PREFIX: &str = "heads.";

/// Named tensors, as files hold them.
pub type Named = Vec<(String, Tensor)>;

/// The file of a run's heads, beside its `model.safetensors`.
pub const HEADS_FILE: &str = "heads.safetensors";

struct Head {
    convs: [(nn::Conv2D, nn::BatchNorm); 3],
    fc: nn::Linear,
}

/// The auxiliary heads of a staged network.
pub struct Heads {
    heads: Vec<Head>,
}

impl Heads {
    /// Heads for a network whose stages output `channels` (shallow first,
    /// the last stage included; each stage after the first halves the
    /// spatial size), under `root / "heads"`.
    pub fn new(root: &nn::Path, channels: &[i64], classes: i64) -> Result<Heads> {
        let s = channels.len();
        if s < 2 {
            bail!("auxiliary heads need a network of at least two stages, this one has {s}");
        }
        let last = channels[s - 1];
        let mid = last / 4;
        let p = root / "heads";
        let heads = (0..s - 1)
            .map(|i| {
                let k = 1i64 << (s - 1 - i);
                let b = &p / format!("bottleneck{}_1", i + 1);
                let conv = |idx: i64, cin, cout, k| {
                    let c = conv_with(&(&b / idx), cin, cout, k, k, 0, true, CONV_INIT);
                    (c, bn(&(&b / (idx + 1)), cout))
                };
                Head {
                    convs: [
                        conv(0, channels[i], mid, 1),
                        conv(3, mid, mid, k),
                        conv(6, mid, last, 1),
                    ],
                    fc: linear(&(&p / format!("middle_fc{}", i + 1)), last, classes),
                }
            })
            .collect();
        Ok(Heads { heads })
    }

    /// Heads after the stages of `net` (its [`Network::stage_channels`]);
    /// an error for a network without such stages.
    pub fn of(root: &nn::Path, net: &dyn Network, classes: i64) -> Result<Heads> {
        let ch = net.stage_channels().context(
            "auxiliary heads attach after the stages of a ResNet; this network has no such stages",
        )?;
        Heads::new(root, &ch, classes)
    }

    pub fn len(&self) -> usize {
        self.heads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heads.is_empty()
    }

    /// `(logits, features)` of every head from the outputs of the stages
    /// before the last (shallow first).
    pub fn forward(&self, stages: &[Tensor], train: bool) -> Vec<(Tensor, Tensor)> {
        assert_eq!(stages.len(), self.heads.len(), "one stage output per head");
        self.heads
            .iter()
            .zip(stages)
            .map(|(h, x)| {
                let mut y = x.shallow_clone();
                for (c, b) in &h.convs {
                    y = y.apply(c).apply_t(b, train).relu();
                }
                let f = global_pool(&y);
                (f.apply(&h.fc), f)
            })
            .collect()
    }
}

/// Splits named tensors into the network's and the heads' (the heads'
/// without their prefix).
pub fn split(tensors: Named) -> (Named, Named) {
    let mut plain = Vec::new();
    let mut heads = Vec::new();
    for (n, t) in tensors {
        match n.strip_prefix(PREFIX) {
            Some(h) => heads.push((h.to_string(), t)),
            None => plain.push((n, t)),
        }
    }
    (plain, heads)
}

/// The heads' tensors back under their prefix (to hash or load them with
/// the network's).
pub fn prefixed(heads: Named) -> Named {
    heads
        .into_iter()
        .map(|(n, t)| (format!("{PREFIX}{n}"), t))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{build, ArchSpec};
    use tch::{Device, Kind};

    fn staged(name: &str, classes: i64) -> (nn::VarStore, Box<dyn crate::model::Network>) {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = build(
            &ArchSpec {
                name: name.into(),
                width: None,
            },
            &vs.root(),
            classes,
        )
        .unwrap();
        (vs, net)
    }

    #[test]
    fn heads_reach_the_last_stage_shape_on_every_resnet() {
        for (name, px, heads, c) in [
            ("resnet8", 32, 2, 64),
            ("resnet18", 32, 3, 512),
            ("preact_resnet18", 32, 3, 512),
            ("imagenet_resnet18", 64, 3, 512),
        ] {
            let (vs, net) = staged(name, 7);
            let ch = net.stage_channels().unwrap_or_else(|| panic!("{name}"));
            let h = Heads::new(&vs.root(), &ch, 7).unwrap();
            assert_eq!(h.len(), heads, "{name}");
            let x = Tensor::randn([2, 3, px, px], (Kind::Float, Device::Cpu));
            let st = net.forward_stages(&x, true).unwrap();
            let (z, f) = net.forward(&x, true);
            assert_eq!(st.stages.len(), heads);
            assert_eq!(st.logits.size(), z.size());
            assert_eq!(f.size(), vec![2, c]);
            for (zi, fi) in h.forward(&st.stages, true) {
                assert_eq!((zi.size(), fi.size()), (vec![2, 7], vec![2, c]), "{name}");
            }
            let names: Vec<String> = vs.variables().into_keys().collect();
            for n in [
                "heads.bottleneck1_1.0.weight",
                "heads.bottleneck1_1.0.bias",
                "heads.bottleneck1_1.7.running_var",
                "heads.middle_fc1.weight",
            ] {
                assert!(names.iter().any(|x| x == n), "{name}: {n}");
            }
        }
        let (vs, net) = staged("densenet_bc100", 10);
        assert!(net.stage_channels().is_none());
        assert!(Heads::new(&vs.root(), &[64], 10).is_err());
    }

    #[test]
    fn split_keeps_the_plain_network_apart() {
        let t = || Tensor::zeros([1], (Kind::Float, Device::Cpu));
        let (p, h) = split(vec![
            ("fc.weight".into(), t()),
            ("heads.middle_fc1.bias".into(), t()),
        ]);
        assert_eq!(p[0].0, "fc.weight");
        assert_eq!(h[0].0, "middle_fc1.bias");
        assert_eq!(prefixed(h)[0].0, "heads.middle_fc1.bias");
    }
}
