//! The fingerprint of 32x32 datasets (synthetic and CIFAR): SHA-256 over the
//! train split then the test split, each in its official order, each sample
//! as its label (u16 little-endian) followed by its 3072 pixel bytes in CIFAR
//! layout (1024 R, 1024 G, 1024 B, row-major). See README "Fingerprints".
use sha2::{Digest, Sha256};

/// Incremental fingerprint: feed samples in order, train split first.
#[derive(Default)]
pub struct SampleHasher {
    h: Sha256,
    count: usize,
}

impl SampleHasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn sample(&mut self, label: u16, pixels: &[u8]) {
        self.h.update(label.to_le_bytes());
        self.h.update(pixels);
        self.count += 1;
    }

    pub fn count(&self) -> usize {
        self.count
    }

    pub fn finish(self) -> String {
        hex::encode(self.h.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_definition() {
        let mut s = SampleHasher::new();
        let px = vec![7u8; 3072];
        s.sample(258, &px);
        let mut h = Sha256::new();
        h.update([2u8, 1u8]);
        h.update(&px);
        assert_eq!(s.finish(), hex::encode(h.finalize()));
    }
}
