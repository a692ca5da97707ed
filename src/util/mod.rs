//! Helpers every layer shares and that know nothing of training: the exit
//! codes, typed input errors (one line, exit 2), atomic file writes (temp,
//! then rename), who a process is (liveness on Linux) and TensorBoard's
//! event-file format (`tfevents`).
//!
//! Uses: nothing of the crate.
pub mod atomic;
pub mod error;
pub mod exit;
pub mod proc;
pub mod tfevents;
