//! The synthetic generators: deterministic, the right shapes, and `learnable` really is learnable.

use cifar_wgpu::data::synthetic::{learnable, random_like_cifar};

#[test]
fn random_like_cifar_is_deterministic_and_shaped_like_cifar() {
    let a = random_like_cifar(30, 7, 1);
    assert_eq!(a, random_like_cifar(30, 7, 1));
    assert_ne!(a.train.images, random_like_cifar(30, 7, 2).train.images);
    assert_eq!(
        (a.height, a.width, a.channels, a.num_classes()),
        (32, 32, 3, 10)
    );
    assert_eq!(
        (a.train.images.len(), a.test.images.len()),
        (30 * 3072, 7 * 3072)
    );
    assert!(a.train.labels.iter().chain(&a.test.labels).all(|&l| l < 10));
}

#[test]
fn learnable_is_deterministic_and_balanced() {
    let a = learnable(100, 20, 8, 8, 3, 10, 5);
    assert_eq!(a, learnable(100, 20, 8, 8, 3, 10, 5));
    assert_eq!(a.train.class_counts(10), vec![10; 10]);
    assert_eq!(a.test.class_counts(10), vec![2; 10]);
    assert_eq!(a.train.images.len(), 100 * 8 * 8 * 3);
}

/// A nearest-class-mean classifier (a linear model) fitted on the training set must score ≥ 90 %
/// on the test set, in colour and in grey; a CNN or MLP only does better.
#[test]
fn learnable_is_learnable_by_a_linear_model() {
    for (channels, classes) in [(3, 10), (1, 10), (3, 32)] {
        let ds = learnable(40 * classes, 20 * classes, 16, 16, channels, classes, 9);
        let d = ds.image_bytes();
        let mut means = vec![vec![0f64; d]; classes];
        for (i, &l) in ds.train.labels.iter().enumerate() {
            for (m, &p) in means[l as usize].iter_mut().zip(ds.train.image(i)) {
                *m += p as f64 / 40.0;
            }
        }
        let correct = (0..ds.test.len())
            .filter(|&i| {
                let img = ds.test.image(i);
                let dist = |m: &Vec<f64>| {
                    m.iter()
                        .zip(img)
                        .map(|(a, &b)| (a - b as f64).powi(2))
                        .sum::<f64>()
                };
                let best = (0..classes)
                    .min_by(|&a, &b| dist(&means[a]).total_cmp(&dist(&means[b])))
                    .unwrap();
                best == ds.test.labels[i] as usize
            })
            .count();
        let accuracy = correct as f64 / ds.test.len() as f64;
        assert!(
            accuracy >= 0.9,
            "{channels} channels, {classes} classes: accuracy {accuracy}"
        );
    }
}
