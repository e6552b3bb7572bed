//! CPU twin of `shaders/dropout.wgsl`: the same hash bit for bit, so the GPU's mask can be checked
//! element by element.

/// PCG-RXS-M-XS 32 as a hash (Jarzynski & Olano 2020), the shader's `pcg`.
pub fn pcg(v: u32) -> u32 {
    let state = v.wrapping_mul(747796405).wrapping_add(2891336453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277803737);
    (word >> 22) ^ word
}

/// The uniform value in [0, 1) drawn for element `i`: the top 24 bits of the hash, exactly as the
/// shader computes it (an exact f32).
pub fn uniform(seed: u64, step: u32, salt: u32, i: u32) -> f32 {
    let key = pcg(pcg(pcg(pcg(seed as u32) ^ (seed >> 32) as u32) ^ salt) ^ step);
    (pcg(key ^ pcg(i)) >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// Whether element `i` is kept at `step`: uniform >= rate, as Keras.
pub fn keep(seed: u64, step: u32, salt: u32, i: u32, rate: f32) -> bool {
    uniform(seed, step, salt, i) >= rate
}

/// The kept elements scaled by 1 / (1 - rate) (computed in f32, as the host passes it), others 0.
pub fn dropout_forward(x: &[f64], seed: u64, step: u32, salt: u32, rate: f32) -> Vec<f64> {
    let scale = crate::kernels::dropout::scale(rate) as f64;
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            if keep(seed, step, salt, i as u32, rate) {
                v * scale
            } else {
                0.0
            }
        })
        .collect()
}

/// A dropout layer's mask at one step, for the twins of kernels that apply one in passing (the
/// kernels' `dropout::Mask` with the step they read).
#[derive(Clone, Copy, Debug)]
pub struct MaskAt {
    pub seed: u64,
    pub step: u32,
    pub salt: u32,
    pub rate: f32,
}

impl MaskAt {
    /// `dropout_forward` (and so `dropout_backward`) with this mask.
    pub fn apply(&self, v: &[f64]) -> Vec<f64> {
        dropout_forward(v, self.seed, self.step, self.salt, self.rate)
    }
}

/// The backward of `dropout_forward`: the same mask and scale applied to dy.
pub fn dropout_backward(dy: &[f64], seed: u64, step: u32, salt: u32, rate: f32) -> Vec<f64> {
    dropout_forward(dy, seed, step, salt, rate)
}

/// The fused `dropout_backward` with the ReLU mask of the layer before (`x`, that ReLU's output): the
/// dropout twin on dy (its backward is its forward), then the ReLU's backward.
pub fn dropout_backward_masked(
    dy: &[f64],
    x: &[f64],
    seed: u64,
    step: u32,
    salt: u32,
    rate: f32,
) -> Vec<f64> {
    crate::reference::activation::relu_backward(x, &dropout_forward(dy, seed, step, salt, rate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::gradcheck::{check_gradient, seeded};

    #[test]
    fn dropout_backward_matches_finite_differences() {
        let x = seeded(50, 11);
        let dy = seeded(50, 12);
        let (seed, step, salt, rate) = (42, 3, 1, 0.5);
        let loss = |x: &[f64]| -> f64 {
            dropout_forward(x, seed, step, salt, rate)
                .iter()
                .zip(&dy)
                .map(|(y, g)| y * g)
                .sum()
        };
        check_gradient(
            "dropout dx",
            &x,
            &dropout_backward(&dy, seed, step, salt, rate),
            loss,
        );
    }

    /// P(keep) = 1 - rate within 5 sigma over 200,000 draws, for several rates, seeds and salts;
    /// neighbouring elements and consecutive steps are independent (joint keep rate (1 - rate)^2).
    #[test]
    fn kept_fraction_and_independence_within_five_sigma() {
        let n = 200_000u32;
        for (rate, seed, salt) in [
            (0.25f32, 1u64, 0u32),
            (0.5, 2, 7),
            (0.1, u64::MAX, 3),
            (0.9, 1 << 40, 1),
        ] {
            let q = 1.0 - rate as f64;
            let a: Vec<bool> = (0..n).map(|i| keep(seed, 5, salt, i, rate)).collect();
            let b: Vec<bool> = (0..n).map(|i| keep(seed, 6, salt, i, rate)).collect();
            let within = |what: &str, count: usize, p: f64, trials: f64| {
                let sigma = (p * (1.0 - p) / trials).sqrt();
                let got = count as f64 / trials;
                println!(
                    "rate {rate}: {what} {got:.4}, expected {p:.4} +- {:.4} (5 sigma)",
                    5.0 * sigma
                );
                assert!(
                    (got - p).abs() <= 5.0 * sigma,
                    "rate {rate}: {what} {got} vs {p}"
                );
            };
            within("kept", a.iter().filter(|&&k| k).count(), q, n as f64);
            let pairs = a.windows(2).filter(|w| w[0] && w[1]).count();
            within("neighbours both kept", pairs, q * q, (n - 1) as f64);
            let both = a.iter().zip(&b).filter(|(x, y)| **x && **y).count();
            within("kept at steps 5 and 6", both, q * q, n as f64);
        }
    }

    #[test]
    fn uniform_is_exact_24_bits_and_rate_zero_keeps_everything() {
        for i in 0..10_000 {
            let u = uniform(9, 0, 0, i);
            assert!((0.0..1.0).contains(&u));
            assert_eq!((u * 16_777_216.0).fract(), 0.0);
            assert!(keep(9, 0, 0, i, 0.0));
        }
        assert_eq!(dropout_forward(&[1.5, -2.0], 9, 0, 0, 0.0), vec![1.5, -2.0]);
    }
}
