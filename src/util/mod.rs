//! Helpers every layer shares and that know nothing of training: typed
//! input errors (one line, exit 2), atomic file writes (temp, then rename)
//! and TensorBoard's event-file format (`tfevents`).
//!
//! Uses: nothing of the crate.
pub mod atomic;
pub mod error;
pub mod tfevents;
