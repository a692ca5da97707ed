//! Benchmarks that print figures and ratios (no test times anything): one
//! training step per architecture (`step`), and the whole training loop
//! beside the PyTorch reference in bench/ddgsd_pytorch.py (`train_loop`),
//! and the loop of a data-parallel run at several rank counts (`scaling`).
//!
//! Uses: train, suite, method, optim, model, data, platform.
pub mod scaling;
pub mod step;
pub mod train_loop;
