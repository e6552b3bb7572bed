//! Shared helpers of the `data_*` tests (included with `#[path]`, so each test crate uses a part).
#![allow(dead_code)]

use std::path::Path;

use cifar_wgpu::data::{DataOptions, Dataset, synthetic};

/// A tiny CIFAR-shaped data set: 5 training batches of `per_batch` records, `n_test` test records.
pub fn tiny_cifar(per_batch: usize, n_test: usize, seed: u64) -> Dataset {
    synthetic::random_like_cifar(5 * per_batch, n_test, seed)
}

/// Options that only ever look inside `dir`: cache in `dir/cache`, no Keras search, offline.
pub fn offline_opts(dir: &Path) -> DataOptions {
    DataOptions {
        cache_dir: Some(dir.join("cache")),
        keras_datasets: None,
        offline: true,
        ..DataOptions::default()
    }
}

/// Pixels, labels, shape and class names equal (names and sources may differ).
pub fn assert_same_data(got: &Dataset, want: &Dataset) {
    assert_eq!(
        (got.height, got.width, got.channels),
        (want.height, want.width, want.channels),
        "shape"
    );
    assert_eq!(got.class_names, want.class_names, "class names");
    assert_eq!(got.train.labels, want.train.labels, "train labels");
    assert!(got.train.images == want.train.images, "train images differ");
    assert_eq!(got.test.labels, want.test.labels, "test labels");
    assert!(got.test.images == want.test.images, "test images differ");
}

/// The files in `dir` (names), sorted; empty if `dir` does not exist.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
