//! The validation split as Keras takes it, and the per-epoch order.

use cifar_wgpu::data::{Split, epoch_order, validation_split, validation_split_index};

/// `int(math.floor(n * (1.0 - f)))`, as Keras computes it, evaluated by CPython 3 for each case;
/// `None` where Keras raises ("not sufficient to split"). Note (50000, 0.9) → 4999, not 5000:
/// 1.0 - 0.9 is 0.09999999999999998 in doubles, and Keras inherits that.
const KERAS: &[(usize, f64, Option<usize>)] = &[
    (50_000, 0.0, Some(50_000)),
    (50_000, 0.1, Some(45_000)),
    (50_000, 0.2, Some(40_000)),
    (50_000, 0.3, Some(35_000)),
    (50_000, 1.0 / 3.0, Some(33_333)),
    (50_000, 0.9, Some(4_999)),
    (50_000, 0.99, Some(500)),
    (60_000, 0.2, Some(48_000)),
    (60_000, 0.9, Some(5_999)),
    (49_999, 0.2, Some(39_999)),
    (100, 0.9, Some(9)),
    (100, 0.29, Some(71)),
    (100, 0.7, Some(30)),
    (10, 0.25, Some(7)),
    (10, 0.57, Some(4)),
    (7, 0.15, Some(5)),
    (7, 0.7, Some(2)),
    (2, 0.5, Some(1)),
    (1, 0.0, Some(1)),
    (1, 0.2, None),
    (2, 0.57, None),
    (10, 0.9, None),
    (100, 0.001, Some(99)),
    (100, 1e-17, None),
];

#[test]
fn split_index_matches_keras() {
    for &(n, f, want) in KERAS {
        assert_eq!(
            validation_split_index(n, f).ok(),
            want,
            "n = {n}, validation_split = {f}"
        );
    }
    for f in [-0.1, 1.0, 1.5, f64::NAN] {
        assert!(validation_split_index(10, f).is_err(), "{f} accepted");
    }
}

#[test]
fn validation_is_the_last_fraction_before_shuffling() {
    let n = 10;
    let train = Split {
        images: (0..n as u8 * 2).collect(),
        labels: (0..n as u8).collect(),
    };
    let (t, v) = validation_split(&train, 0.25).unwrap();
    assert_eq!(t.labels, (0..7).collect::<Vec<u8>>());
    assert_eq!(v.labels, vec![7, 8, 9]);
    assert_eq!(v.images, vec![14, 15, 16, 17, 18, 19]);
    assert_eq!(t.image(6), &[12, 13]);
    let (t, v) = validation_split(&train, 0.0).unwrap();
    assert_eq!(t, train);
    assert!(v.is_empty());
    assert!(validation_split(&train, 0.95).is_err());
}

#[test]
fn epoch_order_is_a_reproducible_permutation_that_changes_every_epoch() {
    for n in [0usize, 1, 2, 3, 10, 1000, 40_000] {
        let a = epoch_order(n, 7, 0, true);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (0..n as u32).collect::<Vec<_>>(),
            "n = {n}: not a permutation"
        );
        assert_eq!(a, epoch_order(n, 7, 0, true), "n = {n}: not reproducible");
        if n >= 10 {
            assert_ne!(
                a,
                epoch_order(n, 7, 1, true),
                "n = {n}: same order in epochs 0 and 1"
            );
            assert_ne!(
                a,
                epoch_order(n, 8, 0, true),
                "n = {n}: same order for seeds 7 and 8"
            );
            assert_ne!(
                a,
                (0..n as u32).collect::<Vec<_>>(),
                "n = {n}: not shuffled"
            );
        }
    }
    assert_eq!(epoch_order(5, 7, 3, false), vec![0, 1, 2, 3, 4]);
}

#[test]
fn epoch_order_is_pinned() {
    // The order is part of reproducibility: it must not change with a `rand` upgrade.
    assert_eq!(epoch_order(10, 0, 0, true), PINNED_SEED0_EPOCH0);
    assert_eq!(epoch_order(10, 42, 5, true), PINNED_SEED42_EPOCH5);
}

const PINNED_SEED0_EPOCH0: [u32; 10] = [9, 5, 2, 8, 4, 0, 1, 3, 6, 7];
const PINNED_SEED42_EPOCH5: [u32; 10] = [2, 4, 7, 9, 8, 0, 3, 5, 6, 1];

#[test]
fn epoch_order_positions_are_uniform() {
    // Each index lands in each position about equally often over many epochs.
    let n = 8;
    let epochs = 16_000;
    let mut counts = vec![[0u32; 8]; n];
    for e in 0..epochs {
        for (pos, &i) in epoch_order(n, 99, e, true).iter().enumerate() {
            counts[i as usize][pos] += 1;
        }
    }
    let expected = epochs as f64 / n as f64;
    for row in &counts {
        for &c in row {
            assert!((c as f64 - expected).abs() < 0.1 * expected, "{counts:?}");
        }
    }
}
