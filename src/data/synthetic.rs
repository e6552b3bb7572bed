//! Deterministic synthetic data sets for tests, `bench` and `profile`. Same arguments, same bytes,
//! on every machine (PCG-64 streams, no `rand` range helpers).

use std::path::PathBuf;

use rand::RngCore;
use rand_pcg::Pcg64;

use super::{CIFAR10_CLASSES, Dataset, Split, epoch_order};

fn rng(seed: u64, stream: u128) -> Pcg64 {
    Pcg64::new(
        ((seed as u128) << 64) ^ 0x853c_49e6_748f_ea9b_0000_0000_0000_0001,
        stream,
    )
}

/// CIFAR-10-shaped noise: 32×32×3 random bytes, labels uniform in 0..10, CIFAR's class names.
/// For timing and plumbing; there is nothing to learn in it.
pub fn random_like_cifar(n_train: usize, n_test: usize, seed: u64) -> Dataset {
    let mut r = rng(seed, 1);
    let mut split = |n: usize| {
        let mut images = vec![0u8; n * 3072];
        r.fill_bytes(&mut images);
        let labels = (0..n).map(|_| (r.next_u32() % 10) as u8).collect();
        Split { images, labels }
    };
    let train = split(n_train);
    let test = split(n_test);
    Dataset {
        name: "random-cifar".into(),
        height: 32,
        width: 32,
        channels: 3,
        class_names: CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
        train,
        test,
        source: PathBuf::from("<synthetic: random_like_cifar>"),
    }
}

/// Eight well-separated colours (RGB).
const PALETTE: [[u8; 3]; 8] = [
    [230, 40, 40],
    [40, 200, 40],
    [40, 60, 230],
    [230, 220, 40],
    [220, 40, 220],
    [40, 210, 210],
    [240, 140, 30],
    [140, 140, 140],
];

/// A learnable data set: class `c` is a colour (`PALETTE[(c / 4) % 8]`, or a grey level with one
/// channel) drawn as stripes of one of four directions (`c % 4`: horizontal, vertical, diagonal,
/// anti-diagonal; period `4 + 2·(c / 32)` pixels) on a darker background, plus uniform noise of
/// ±24 per byte. Labels cycle through the classes in a random order, so every class is balanced.
/// Even a linear classifier separates the classes; a small CNN or MLP reaches ≥ 90 % in an epoch
/// or two. `classes` must be 1..=256.
pub fn learnable(
    n_train: usize,
    n_test: usize,
    height: usize,
    width: usize,
    channels: usize,
    classes: usize,
    seed: u64,
) -> Dataset {
    assert!(
        (1..=256).contains(&classes),
        "learnable: classes must be 1..=256, got {classes}"
    );
    assert!(channels >= 1, "learnable: channels must be at least 1");
    let mut r = rng(seed, 2);
    let image_bytes = height * width * channels;
    let mut split = |n: usize, part: u64| {
        let mut images = Vec::with_capacity(n * image_bytes);
        // Balanced labels (i mod classes), in a random order.
        let labels: Vec<u8> = epoch_order(n, seed ^ 0x5eed_1ab5, part, true)
            .iter()
            .map(|&i| (i as usize % classes) as u8)
            .collect();
        for &c in &labels {
            let c = c as usize;
            let colour = PALETTE[(c / 4) % PALETTE.len()];
            let grey = [(40 + (c / 4) % 8 * 30) as u8; 3];
            let base: [u8; 3] = if channels >= 3 { colour } else { grey };
            let period = 4 + 2 * (c / 32);
            for y in 0..height {
                for x in 0..width {
                    let t = match c % 4 {
                        0 => y,
                        1 => x,
                        2 => x + y,
                        _ => x + height - y,
                    };
                    let on = (t % period) < period / 2;
                    for ch in 0..channels {
                        let v = base[ch % 3] as i32;
                        let v = if on { v } else { v / 4 };
                        let noise = (r.next_u32() % 49) as i32 - 24;
                        images.push((v + noise).clamp(0, 255) as u8);
                    }
                }
            }
        }
        Split { images, labels }
    };
    let train = split(n_train, 0);
    let test = split(n_test, 1);
    Dataset {
        name: "learnable".into(),
        height,
        width,
        channels,
        class_names: (0..classes).map(|c| format!("class{c}")).collect(),
        train,
        test,
        source: PathBuf::from("<synthetic: learnable>"),
    }
}
