//! The validation split and the per-epoch order, as Keras' `model.fit` does them.

use rand::RngCore;
use rand_pcg::Pcg64;

use super::{DataError, Split};

/// Where Keras cuts `n` samples for `validation_split = fraction`: the training part is `0..index`,
/// the validation part `index..n`.
///
/// Keras 3 (`keras/src/trainers/data_adapters/array_slicing.py`, `train_validation_split`):
/// `split_at = int(math.floor(batch_dim * (1.0 - validation_split)))`, and it raises when
/// `split_at == 0 or split_at == batch_dim`. `fit` only calls it when `validation_split` is truthy
/// (`if validation_split and validation_data is None:` in each backend's `trainer.py`), so 0 means
/// no validation set. Python floats are IEEE doubles, so the same f64 expression gives the same index.
pub fn validation_split_index(n: usize, fraction: f64) -> Result<usize, DataError> {
    if !(0.0..1.0).contains(&fraction) {
        return Err(DataError::InvalidArgument {
            detail: format!("validation split {fraction} must be in [0, 1)"),
        });
    }
    if fraction == 0.0 {
        return Ok(n);
    }
    let split_at = (n as f64 * (1.0 - fraction)).floor() as usize;
    if split_at == 0 || split_at == n {
        return Err(DataError::InvalidArgument {
            detail: format!(
                "training data contains {n} samples, which is not sufficient to split it into a \
                 validation and training set as specified by validation_split={fraction}"
            ),
        });
    }
    Ok(split_at)
}

/// Split off the last `fraction` of `train` as the validation set, before any shuffling, exactly as
/// Keras' `model.fit(validation_split=fraction)`. `fraction == 0` gives an empty validation set.
pub fn validation_split(train: &Split, fraction: f64) -> Result<(Split, Split), DataError> {
    let n = train.len();
    let at = validation_split_index(n, fraction)?;
    let bytes = train.image_bytes();
    let part = |range: std::ops::Range<usize>| Split {
        images: train.images[range.start * bytes..range.end * bytes].to_vec(),
        labels: train.labels[range].to_vec(),
    };
    Ok((part(0..at), part(at..n)))
}

/// SplitMix64 finaliser: spreads (seed, epoch) over the generator's state.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform in `0..range` (`range > 0`), Lemire's multiply-and-reject, so the result does not depend
/// on how a `rand` version implements ranges.
fn below(rng: &mut Pcg64, range: u64) -> u64 {
    let mut m = (rng.next_u64() as u128) * (range as u128);
    if (m as u64) < range {
        let threshold = range.wrapping_neg() % range;
        while (m as u64) < threshold {
            m = (rng.next_u64() as u128) * (range as u128);
        }
    }
    (m >> 64) as u64
}

/// The order in which epoch `epoch` visits `n` samples: a permutation of `0..n` that depends only on
/// `(n, seed, epoch)` (PCG-64 seeded from them, then Fisher–Yates), or `0..n` when `!shuffle`.
/// Keras reshuffles every epoch and uses the last, partial batch; slicing this order into batches
/// of `batch_size` (the last one shorter) does the same.
///
/// # Panics
/// If `n` exceeds `u32::MAX` (indices are u32 for the GPU index buffer).
pub fn epoch_order(n: usize, seed: u64, epoch: u64, shuffle: bool) -> Vec<u32> {
    assert!(
        n <= u32::MAX as usize,
        "epoch_order: {n} samples do not fit u32 indices"
    );
    let mut order: Vec<u32> = (0..n as u32).collect();
    if !shuffle || n < 2 {
        return order;
    }
    let a = splitmix64(seed);
    let b = splitmix64(a ^ splitmix64(epoch));
    let state = ((a as u128) << 64) | b as u128;
    let mut rng = Pcg64::new(state, 0xa02b_dbf7_bb3c_0a7a_c28f_a16a_64ab_f96d);
    for i in (1..n).rev() {
        let j = below(&mut rng, i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}
