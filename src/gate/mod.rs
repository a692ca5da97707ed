//! Judging results: expected files (bands, claims, pins), `check`'s verdict,
//! paired statistics against the baseline, `compare` of two results
//! directories, and `calibrate` / `pin`, which move bands and pins on purpose.
//!
//! Uses: results, train, util.
pub mod calibrate;
pub mod check;
pub mod compare;
pub mod expected;
pub mod paired;
pub mod pin;
pub mod stats;
