//! CPU twin of `shaders/batch_norm.wgsl`: BatchNormalization over the last axis of x, `[rows,
//! channels]` row-major, in f64.

/// Each channel's mean and biased variance over the rows (Keras 3: jnp.mean, jnp.var).
pub fn batch_norm_stats(x: &[f64], rows: usize, channels: usize) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(
        x.len(),
        rows * channels,
        "batch_norm_stats: x has the wrong length"
    );
    let n = rows as f64;
    let mut mean = vec![0.0; channels];
    for row in x.chunks(channels) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n);
    let mut var = vec![0.0; channels];
    for row in x.chunks(channels) {
        for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
            *s += (v - m) * (v - m);
        }
    }
    var.iter_mut().for_each(|s| *s /= n);
    (mean, var)
}

/// moving * momentum + batch_stat * (1 - momentum), the update Keras applies to each moving
/// statistic at every training step.
pub fn moving_update(moving: &[f64], batch_stat: &[f64], momentum: f64) -> Vec<f64> {
    moving
        .iter()
        .zip(batch_stat)
        .map(|(m, b)| m * momentum + b * (1.0 - momentum))
        .collect()
}

/// y = (x - mean) / sqrt(var + epsilon) * gamma + beta, per channel.
pub fn batch_norm_normalize(
    x: &[f64],
    mean: &[f64],
    var: &[f64],
    gamma: &[f64],
    beta: &[f64],
    epsilon: f64,
) -> Vec<f64> {
    let channels = mean.len();
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = i % channels;
            (v - mean[c]) / (var[c] + epsilon).sqrt() * gamma[c] + beta[c]
        })
        .collect()
}

/// The training forward: normalised with the batch's own statistics.
pub fn batch_norm_train_forward(
    x: &[f64],
    gamma: &[f64],
    beta: &[f64],
    rows: usize,
    epsilon: f64,
) -> Vec<f64> {
    let (mean, var) = batch_norm_stats(x, rows, gamma.len());
    batch_norm_normalize(x, &mean, &var, gamma, beta, epsilon)
}

/// The backward of `batch_norm_train_forward`: (dx, dgamma, dbeta), the batch's statistics
/// recomputed from x.
pub fn batch_norm_backward(
    x: &[f64],
    dy: &[f64],
    gamma: &[f64],
    rows: usize,
    epsilon: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let channels = gamma.len();
    let (mean, var) = batch_norm_stats(x, rows, channels);
    let inv_std: Vec<f64> = var.iter().map(|v| 1.0 / (v + epsilon).sqrt()).collect();
    let xhat = |i: usize| (x[i] - mean[i % channels]) * inv_std[i % channels];
    let mut dgamma = vec![0.0; channels];
    let mut dbeta = vec![0.0; channels];
    for (i, &g) in dy.iter().enumerate() {
        dbeta[i % channels] += g;
        dgamma[i % channels] += g * xhat(i);
    }
    let n = rows as f64;
    let dx = dy
        .iter()
        .enumerate()
        .map(|(i, &g)| {
            let c = i % channels;
            gamma[c] * inv_std[c] * (g - dbeta[c] / n - xhat(i) * dgamma[c] / n)
        })
        .collect();
    (dx, dgamma, dbeta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::gradcheck::{check_gradient, seeded};

    #[test]
    fn batch_norm_backward_matches_finite_differences() {
        // An image batch's [rows, channels] and a flat batch of 3; an offset mean so the
        // centring matters.
        for (rows, channels) in [(12usize, 5usize), (3, 4)] {
            let x: Vec<f64> = seeded(rows * channels, 21)
                .iter()
                .map(|v| 2.0 * v + 0.7)
                .collect();
            let dy = seeded(rows * channels, 22);
            let gamma: Vec<f64> = seeded(channels, 23).iter().map(|v| 1.0 + 0.5 * v).collect();
            let beta = seeded(channels, 24);
            let eps = 1e-3;
            let loss = |x: &[f64], gamma: &[f64], beta: &[f64]| -> f64 {
                batch_norm_train_forward(x, gamma, beta, rows, eps)
                    .iter()
                    .zip(&dy)
                    .map(|(y, g)| y * g)
                    .sum()
            };
            let (dx, dgamma, dbeta) = batch_norm_backward(&x, &dy, &gamma, rows, eps);
            check_gradient("batch_norm dx", &x, &dx, |x| loss(x, &gamma, &beta));
            check_gradient("batch_norm dgamma", &gamma, &dgamma, |g| loss(&x, g, &beta));
            check_gradient("batch_norm dbeta", &beta, &dbeta, |b| loss(&x, &gamma, b));
        }
    }

    #[test]
    fn a_normalised_batch_has_mean_beta_and_variance_gamma_squared_near_one() {
        let (rows, channels) = (40, 3);
        let x: Vec<f64> = seeded(rows * channels, 5)
            .iter()
            .map(|v| 3.0 * v - 1.0)
            .collect();
        let gamma = [2.0, 1.0, 0.5];
        let beta = [0.25, -1.0, 0.0];
        let y = batch_norm_train_forward(&x, &gamma, &beta, rows, 0.0);
        let (mean, var) = batch_norm_stats(&y, rows, channels);
        for c in 0..channels {
            assert!((mean[c] - beta[c]).abs() < 1e-12, "mean {mean:?}");
            assert!((var[c] - gamma[c] * gamma[c]).abs() < 1e-12, "var {var:?}");
        }
        assert_eq!(moving_update(&[1.0], &[3.0], 0.75), vec![1.5]);
    }
}
