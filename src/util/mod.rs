//! Helpers every layer shares and that know nothing of training: typed
//! input errors (one line, exit 2) and atomic file writes (temp, then rename).
//!
//! Uses: nothing of the crate.
pub mod atomic;
pub mod error;
