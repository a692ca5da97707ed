//! How the network executes (`[runtime] precision` and `memory_format`):
//! bf16 autocast for convolutions and matmuls with fp32 weights, loss,
//! optimizer and BN statistics (PyTorch's autocast, switched on through the
//! shim for the training thread only and only around the forward), and the
//! channels_last layout for the 4-D weights and the inputs.
use crate::platform::runtime::{MemoryFormat, Precision};
use crate::platform::shim;
use anyhow::{anyhow, Result};
use tch::{nn::VarStore, Device, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exec {
    pub device: Device,
    pub precision: Precision,
    pub memory_format: MemoryFormat,
}

/// Autocast on for the calling thread while it lives.
struct Autocast {
    cuda: bool,
}

impl Autocast {
    fn on(cuda: bool) -> Result<Self> {
        shim::set_autocast(cuda, true).map_err(|e| anyhow!(e))?;
        Ok(Autocast { cuda })
    }
}

impl Drop for Autocast {
    fn drop(&mut self) {
        let _ = shim::set_autocast(self.cuda, false);
    }
}

impl Exec {
    pub fn new(device: Device, precision: Precision, memory_format: MemoryFormat) -> Self {
        Exec {
            device,
            precision,
            memory_format,
        }
    }

    /// Runs `f` (a forward pass) under bf16 autocast when asked; outside it
    /// autocast stays off, so the loss and the update are fp32.
    pub fn forward<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        Ok(match self.precision {
            Precision::Fp32 => f(),
            Precision::Bf16 => {
                let _g = Autocast::on(self.device.is_cuda())?;
                f()
            }
        })
    }

    /// The input batch in the chosen memory format.
    pub fn input(&self, x: Tensor) -> Result<Tensor> {
        match self.memory_format {
            MemoryFormat::ChannelsLast if x.dim() == 4 => {
                shim::channels_last(&x).map_err(|e| anyhow!(e))
            }
            _ => Ok(x),
        }
    }

    /// Lays the 4-D variables of `vs` out channels_last when asked (before
    /// the optimizer makes its buffers, which then follow the layout).
    pub fn prepare(&self, vs: &VarStore) -> Result<()> {
        if self.memory_format == MemoryFormat::Contiguous {
            return Ok(());
        }
        for (_, mut v) in vs.variables() {
            if v.dim() == 4 {
                let cl = shim::channels_last(&v).map_err(|e| anyhow!(e))?;
                tch::no_grad(|| v.set_data(&cl));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn bf16_autocast_covers_the_forward_only() {
        let e = Exec::new(Device::Cpu, Precision::Bf16, MemoryFormat::Contiguous);
        let w = Tensor::ones([4, 4], (Kind::Float, Device::Cpu));
        let y = e
            .forward(|| Tensor::ones([2, 4], (Kind::Float, Device::Cpu)).matmul(&w))
            .unwrap();
        assert_eq!(y.kind(), Kind::BFloat16);
        assert!(!shim::autocast_enabled(false));
        let y = w.matmul(&w);
        assert_eq!(y.kind(), Kind::Float);
        let f = Exec::new(Device::Cpu, Precision::Fp32, MemoryFormat::Contiguous);
        assert_eq!(f.forward(|| w.matmul(&w)).unwrap().kind(), Kind::Float);
    }

    #[test]
    fn autocast_is_per_thread() {
        let e = Exec::new(Device::Cpu, Precision::Bf16, MemoryFormat::Contiguous);
        e.forward(|| {
            assert!(shim::autocast_enabled(false));
            std::thread::spawn(|| assert!(!shim::autocast_enabled(false)))
                .join()
                .unwrap();
        })
        .unwrap();
    }

    #[test]
    fn channels_last_keeps_values_and_changes_the_layout() {
        let e = Exec::new(Device::Cpu, Precision::Fp32, MemoryFormat::ChannelsLast);
        let x = Tensor::arange(2 * 3 * 4 * 5, (Kind::Float, Device::Cpu)).view([2, 3, 4, 5]);
        let y = e.input(x.shallow_clone()).unwrap();
        assert!(shim::is_channels_last(&y) && !shim::is_channels_last(&x));
        assert!(y.equal(&x));
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[8, 3, 3, 3], tch::nn::Init::Const(1.0));
        e.prepare(&vs).unwrap();
        assert!(shim::is_channels_last(&vs.variables()["w"]));
        assert!(w.requires_grad());
    }
}
