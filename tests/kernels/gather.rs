use cifar_wgpu::data::augment::Augment;
use cifar_wgpu::kernels::StepState;
use cifar_wgpu::kernels::gather::{
    Augmentation, gather_batch, gather_batch_augmented, upload_images,
};
use cifar_wgpu::reference;
use cifar_wgpu::reference::gather::{Affine, augment_image};

use crate::common::*;

#[test]
fn gather_batch_across_chunks_is_bit_exact() {
    // 7-byte images so records straddle u32 words (gather_batch); 12-byte images are whole words
    // (gather_batch_vec4). Chunks of 3 records force several dispatches.
    for image_bytes in [7, 12] {
        gather_batch_is_bit_exact(image_bytes);
    }
}

fn gather_batch_is_bit_exact(image_bytes: usize) {
    let g = gpu();
    let n = 10usize;
    let data: Vec<u8> = (0..n * image_bytes).map(|i| (i * 37 % 256) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let dev = upload_images(g, &data, &labels, image_bytes, (3 * image_bytes) as u64).unwrap();
    assert_eq!(dev.chunks.len(), 4);
    let indices: Vec<u32> = vec![9, 0, 4, 4, 7, 2];
    let ti = g.upload("indices", &indices);
    let images = poisoned(indices.len() * image_bytes);
    let batch_labels = g.upload("labels", &vec![u32::MAX; indices.len()]);
    let ds = gather_batch(g, &dev, &ti, &images, &batch_labels);
    run_all(&ds);
    let (want_images, want_labels) =
        reference::gather::gather_batch(&data, &labels, image_bytes, &indices);
    let got = read(&images);
    let got_bits: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
    let want_bits: Vec<u32> = want_images.iter().map(|v| v.to_bits()).collect();
    compare_exact("gather_batch images (bits)", &got_bits, &want_bits);
    compare_exact(
        "gather_batch labels",
        &g.read_u32(&batch_labels).unwrap(),
        &want_labels,
    );
}

/// The augmented gather against its twin, bit for bit: non-square images of 1 and 3 channels, a
/// batch whose records sit in several chunks, repeated records, several steps and seeds, the book's
/// recipe and a stronger one.
#[test]
fn gather_augmented_across_chunks_is_bit_exact() {
    let g = gpu();
    let stronger = Augment {
        rotation_range: 180.0,
        width_shift_range: 0.5,
        height_shift_range: 0.3,
        zoom_range: 0.9,
        ..Augment::default()
    };
    for (shape, aug) in [
        ([5usize, 7usize, 3usize], Augment::default()),
        ([9, 4, 1], Augment::default()),
        ([6, 11, 3], stronger),
    ] {
        let image_bytes = shape.iter().product::<usize>();
        let n = 10;
        let data: Vec<u8> = (0..n * image_bytes).map(|i| (i * 37 % 251) as u8).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let dev = upload_images(g, &data, &labels, image_bytes, (3 * image_bytes) as u64).unwrap();
        assert_eq!(dev.chunks.len(), 4);
        let consts = aug.consts(shape[0], shape[1]).unwrap();
        let table = aug.rotation_table();
        for (seed, step) in [(0u64, 0u32), (0x1234_5678_9abc, 17), (3, 123_456)] {
            let augmentation = Augmentation::new(g, consts, &table, seed);
            let indices: Vec<u32> = vec![9, 0, 4, 4, 7, 2, 5];
            let ti = g.upload("indices", &indices);
            let st = StepState {
                step,
                ..StepState::default()
            };
            let step_state = g.upload("step state", &st.words());
            let images = poisoned(indices.len() * image_bytes);
            let batch_labels = g.upload("labels", &vec![u32::MAX; indices.len()]);
            let ds = gather_batch_augmented(
                g,
                &dev,
                shape,
                &augmentation,
                &ti,
                &images,
                &batch_labels,
                &step_state,
            );
            run_all(&ds);
            let (want, want_labels) = reference::gather::gather_batch_augmented(
                &data, &labels, shape, &indices, &consts, &table, seed, step,
            );
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let name = format!("gather_augmented {shape:?} seed {seed} step {step} (bits)");
            compare_exact(&name, &bits(&read(&images)), &bits(&want));
            compare_exact(&name, &g.read_u32(&batch_labels).unwrap(), &want_labels);
            // The two copies of record 4 were drawn different transforms.
            let slot = |s: usize| &want[s * image_bytes..(s + 1) * image_bytes];
            assert_ne!(
                slot(2),
                slot(3),
                "{name}: slots 2 and 3 hold the same augmentation"
            );
        }
    }
}

/// The twin against Keras' own `apply_affine_transform` and flip (assets/keras/augment_golden.json,
/// made by make_augment_golden.py; scipy computes in f64). Given the same parameters, the twin's
/// fixed point (cos, sin and zooms rounded to Q15, products floored to Q16 coordinates, bilinear
/// weights floored to Q12) moves each coordinate of a source point by under 7e-4 pixel on these
/// sizes, and bilinear interpolation of values in [0, 1] moves by at most the sum of the two
/// coordinate errors: every value must be within 1.5e-3 (0.4 of a grey level) of Keras'. Measured:
/// 2.9e-4.
#[test]
fn augmentation_geometry_matches_keras() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/keras/augment_golden.json"),
    )
    .unwrap();
    let golden: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = golden["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 21);
    let mut worst = 0f64;
    for case in cases {
        let shape: Vec<usize> = serde_json::from_value(case["shape"].clone()).unwrap();
        let image: Vec<u8> = serde_json::from_value(case["image"].clone()).unwrap();
        let keras: Vec<f64> = serde_json::from_value(case["keras"].clone()).unwrap();
        let f = |k: &str| case[k].as_f64().unwrap();
        let a = Affine::keras(
            f("theta"),
            f("tx"),
            f("ty"),
            f("zx"),
            f("zy"),
            case["flip"] == true,
        );
        let got = augment_image(&image, [shape[0], shape[1], shape[2]], &a);
        assert_eq!(got.len(), keras.len());
        for (i, (g, k)) in got.iter().zip(&keras).enumerate() {
            let d = (*g as f64 - k).abs();
            worst = worst.max(d);
            assert!(
                d <= 1.5e-3,
                "{case:?}\nvalue {i}: ours {g}, Keras {k}",
                case = a
            );
        }
    }
    println!(
        "augmentation vs Keras: largest difference {worst:.2e} over {} cases",
        cases.len()
    );
}
