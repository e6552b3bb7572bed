//! MNIST-family IDX files, gzipped or not, and the real Fashion-MNIST when it is installed.

#[path = "common/data_fixtures.rs"]
mod fixtures;
#[path = "common/writers.rs"]
mod writers;

use std::path::Path;

use cifar_wgpu::data::{self, FASHION_MNIST_CLASSES, synthetic};
use fixtures::assert_same_data;

#[test]
fn idx_files_read_back_exactly_gzipped_or_not() {
    let ds = synthetic::learnable(12, 5, 7, 9, 1, 4, 3);
    for gz in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("my-digits");
        writers::write_idx(&ds, &dir, gz).unwrap();
        let got = data::read(&dir, None).unwrap();
        assert_same_data(&got, &ds.clone_with_class_names(&["0", "1", "2", "3"]));
        assert_eq!(got.name, "my-digits");
        assert_eq!((got.height, got.width, got.channels), (7, 9, 1));
    }
}

#[test]
fn folder_name_decides_mnist_or_fashion_mnist() {
    let ds = synthetic::learnable(10, 10, 4, 4, 1, 10, 4);
    let tmp = tempfile::tempdir().unwrap();
    for (folder, name) in [("Fashion-MNIST", "fashion-mnist"), ("mnist", "mnist")] {
        let dir = tmp.path().join(folder);
        writers::write_idx(&ds, &dir, true).unwrap();
        let got = data::read(&dir, None).unwrap();
        assert_eq!(got.name, name);
        assert_eq!(got.num_classes(), 10);
        if name == "fashion-mnist" {
            assert_eq!(got.class_names[0], "T-shirt/top");
            assert_eq!(got.class_names[9], "Ankle boot");
        } else {
            assert_eq!(got.class_names[3], "3");
        }
    }
}

#[test]
fn fashion_mnist_label_over_nine_is_an_error() {
    let mut ds = synthetic::learnable(10, 10, 4, 4, 1, 10, 5);
    ds.test.labels[4] = 10;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fashion");
    writers::write_idx(&ds, &dir, false).unwrap();
    let err = data::read(&dir, None).unwrap_err().to_string();
    assert!(
        err.contains("t10k-labels-idx1-ubyte") && err.contains("label 10 of record 4"),
        "{err}"
    );
}

#[test]
fn missing_test_files_are_named() {
    let ds = synthetic::learnable(4, 4, 4, 4, 1, 2, 6);
    let tmp = tempfile::tempdir().unwrap();
    writers::write_idx(&ds, tmp.path(), true).unwrap();
    std::fs::remove_file(tmp.path().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let err = data::read(tmp.path(), None).unwrap_err().to_string();
    assert!(
        err.contains("missing member t10k-labels-idx1-ubyte[.gz]"),
        "{err}"
    );
}

/// The real data set, installed by `apt-get install dataset-fashion-mnist`. Skipped (with a note)
/// where it is not installed.
#[test]
fn real_fashion_mnist() {
    let dir = Path::new("/usr/share/datasets/fashion-mnist");
    if !dir.join("train-images-idx3-ubyte.gz").is_file() {
        eprintln!(
            "SKIPPED: {} is not installed (apt-get install dataset-fashion-mnist)",
            dir.display()
        );
        return;
    }
    let ds = data::read(dir, None).unwrap();
    assert_eq!(ds.name, "fashion-mnist");
    assert_eq!((ds.height, ds.width, ds.channels), (28, 28, 1));
    assert_eq!((ds.train.len(), ds.test.len()), (60_000, 10_000));
    assert_eq!(ds.class_names, FASHION_MNIST_CLASSES.map(String::from));
    assert_eq!(ds.train.class_counts(10), vec![6000; 10]);
    assert_eq!(ds.test.class_counts(10), vec![1000; 10]);
    // The first image of each split is an ankle boot (label 9), as in Keras' fashion_mnist.load_data().
    assert_eq!((ds.train.labels[0], ds.test.labels[0]), (9, 9));
    assert_eq!(ds.train.images.len(), 60_000 * 784);
}

trait WithNames {
    fn clone_with_class_names(&self, names: &[&str]) -> data::Dataset;
}

impl WithNames for data::Dataset {
    fn clone_with_class_names(&self, names: &[&str]) -> data::Dataset {
        let mut d = self.clone();
        d.class_names = names.iter().map(|s| s.to_string()).collect();
        d
    }
}
