//! Image folders (one subfolder per class), like Keras' `image_dataset_from_directory`.

#[path = "common/writers.rs"]
mod writers;

use cifar_wgpu::data::{self, Dataset, Split, synthetic};
use writers::{ImageFormat, image_folder_order};

/// `split` in the order the reader returns an image folder written from it.
fn reordered(split: &Split, classes: usize) -> Split {
    let mut out = Split::default();
    for i in image_folder_order(split, classes) {
        out.images.extend_from_slice(split.image(i));
        out.labels.push(split.labels[i]);
    }
    out
}

fn names(ds: &Dataset) -> Vec<String> {
    ds.class_names.clone()
}

#[test]
fn png_folder_reads_back_exactly_in_the_documented_order() {
    let ds = synthetic::learnable(23, 0, 6, 5, 3, 4, 1);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("shapes");
    writers::write_image_folder(&ds, &root, false, ImageFormat::Png).unwrap();
    let got = data::read(&root, None).unwrap();
    assert_eq!(got.name, "shapes");
    assert_eq!((got.height, got.width, got.channels), (6, 5, 3));
    assert_eq!(got.class_names, names(&ds));
    assert_eq!(got.train, reordered(&ds.train, 4));
    assert!(got.test.is_empty());
    // The fixed order mixes the classes, so Keras' "last 20 %" validation split sees several.
    let (_, val) = data::validation_split(&got.train, 0.2).unwrap();
    assert!(val.class_counts(4).iter().filter(|&&c| c > 0).count() >= 2);
}

#[test]
fn train_and_test_subfolders_give_a_test_split() {
    let ds = synthetic::learnable(12, 8, 4, 4, 3, 3, 2);
    let tmp = tempfile::tempdir().unwrap();
    writers::write_image_folder(&ds, tmp.path(), true, ImageFormat::Png).unwrap();
    let got = data::read(tmp.path(), None).unwrap();
    assert_eq!(got.class_names, names(&ds));
    assert_eq!(got.train, reordered(&ds.train, 3));
    assert_eq!(got.test, reordered(&ds.test, 3));
}

#[test]
fn grayscale_images_give_one_channel() {
    let ds = synthetic::learnable(6, 0, 5, 5, 1, 2, 3);
    let tmp = tempfile::tempdir().unwrap();
    writers::write_image_folder(&ds, tmp.path(), false, ImageFormat::Png).unwrap();
    let got = data::read(tmp.path(), None).unwrap();
    assert_eq!(got.channels, 1);
    assert_eq!(got.train, reordered(&ds.train, 2));
}

#[test]
fn images_are_resized_to_the_given_size_or_to_the_first_image() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for (class, w, h, value) in [("a", 8u32, 8u32, 200u8), ("b", 16, 4, 50)] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        image::RgbImage::from_pixel(w, h, image::Rgb([value, value / 2, 0]))
            .save(root.join(class).join("x.png"))
            .unwrap();
    }
    // Default: the first image's size (class "a": 8x8).
    let got = data::read(root, None).unwrap();
    assert_eq!(
        (got.height, got.width, got.channels, got.train.len()),
        (8, 8, 3, 2)
    );
    // Given: (height, width) = (3, 7). A flat colour stays that colour under bilinear resizing.
    let got = data::read(root, Some((3, 7))).unwrap();
    assert_eq!((got.height, got.width), (3, 7));
    for i in 0..2 {
        let value = if got.train.labels[i] == 0 { 200 } else { 50 };
        assert!(
            got.train
                .image(i)
                .chunks(3)
                .all(|px| px == [value, value / 2, 0]),
            "image {i}"
        );
    }
    let err = data::read(root, Some((0, 7))).unwrap_err().to_string();
    assert!(err.contains("image size 0x7"), "{err}");
}

#[test]
fn jpeg_hidden_and_other_files() {
    let ds = synthetic::learnable(8, 0, 16, 16, 3, 2, 4);
    let tmp = tempfile::tempdir().unwrap();
    writers::write_image_folder(&ds, tmp.path(), false, ImageFormat::Jpeg).unwrap();
    std::fs::write(tmp.path().join("class0").join("README.txt"), "ignored").unwrap();
    std::fs::create_dir_all(tmp.path().join(".thumbnails")).unwrap();
    std::fs::write(tmp.path().join("class1").join(".hidden.png"), "ignored").unwrap();
    let got = data::read(tmp.path(), None).unwrap();
    assert_eq!(got.class_names, names(&ds));
    let want = reordered(&ds.train, 2);
    assert_eq!(got.train.labels, want.labels);
    // JPEG is lossy: close, not equal.
    let mean_abs: f64 = got
        .train
        .images
        .iter()
        .zip(&want.images)
        .map(|(&a, &b)| (a as f64 - b as f64).abs())
        .sum::<f64>()
        / want.images.len() as f64;
    assert!(mean_abs < 20.0, "mean absolute JPEG error {mean_abs}");
}
