//! Keras' golden files: what `assets/keras/make_golden.py` wrote with real Keras 3, and the weight
//! formula it fills most models with.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `assets/keras/NAME`.
pub fn asset(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets/keras")
        .join(name)
}

/// The golden script's weight formula: tensor `k` in `model.weights` order, flat index `i`.
pub fn golden_value(k: usize, i: usize) -> f32 {
    (((7 * i + 13 * k) % 23) as f64 - 11.0) as f32 / 64.0
}
