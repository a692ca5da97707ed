//! What a training step computes: the arms (views, forward mode, distortions,
//! loss weights and presets) and the loss they configure (cross-entropy, the
//! KL and MMD terms of DDGSD). The trainer asks this folder what to compute.
//!
//! Uses: data.
pub mod arms;
pub mod loss;
