//! The optimiser: SGD (Nesterov, weight decay) written in Rust with its
//! momentum buffers as named tensors, so a resume is exact, and the
//! learning-rate schedule (multi-step decay with a warm-up).
//!
//! Uses: platform.
pub mod lr_schedule;
pub mod sgd;
