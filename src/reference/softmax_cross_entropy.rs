//! CPU twin of `shaders/softmax_cross_entropy.wgsl` and `shaders/softmax_cross_entropy_dense.wgsl`.

use super::matmul;
use crate::shape::MatmulShape;

/// Row-wise softmax of logits [batch, classes], stable (the row maximum is subtracted first).
pub fn softmax(logits: &[f64], batch: usize, classes: usize) -> Vec<f64> {
    assert_eq!(
        logits.len(),
        batch * classes,
        "softmax: logits are not [{batch}, {classes}]"
    );
    let mut out = vec![0.0; logits.len()];
    for (z, o) in logits.chunks(classes).zip(out.chunks_mut(classes)) {
        let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = z.iter().map(|&v| (v - m).exp()).sum();
        for (o, &v) in o.iter_mut().zip(z) {
            *o = (v - m).exp() / s;
        }
    }
    out
}

/// Cross-entropy of softmax(logits) against one-hot `labels`, from the logits:
/// returns (sum over rows of logsumexp(z) - z[label], rows whose first argmax equals the label,
/// dlogits = (softmax - onehot) / batch, the gradient of the MEAN loss as Keras reduces it).
pub fn softmax_cross_entropy(
    logits: &[f64],
    labels: &[u32],
    batch: usize,
    classes: usize,
) -> (f64, u32, Vec<f64>) {
    assert_eq!(
        labels.len(),
        batch,
        "softmax_cross_entropy: labels are not [{batch}]"
    );
    let mut d = softmax(logits, batch, classes);
    let mut loss_sum = 0.0;
    let mut correct = 0;
    for (row, (z, d)) in logits
        .chunks(classes)
        .zip(d.chunks_mut(classes))
        .enumerate()
    {
        let label = labels[row] as usize;
        assert!(
            label < classes,
            "label {label} of row {row} is not below {classes}"
        );
        // First maximum on ties, as tf.argmax.
        let mut arg = 0;
        for c in 1..classes {
            if z[c] > z[arg] {
                arg = c;
            }
        }
        let m = z[arg];
        let s: f64 = z.iter().map(|&v| (v - m).exp()).sum();
        loss_sum += (m - z[label]) + s.ln();
        correct += (arg == label) as u32;
        d[label] -= 1.0;
        for v in d.iter_mut() {
            *v /= batch as f64;
        }
    }
    (loss_sum, correct, d)
}

/// What `dense_loss_forward` computes for the last Dense layer and the loss.
pub struct DenseLoss {
    pub logits: Vec<f64>,
    pub loss_sum: f64,
    pub correct: u32,
    pub dlogits: Vec<f64>,
    /// The layer's input gradient, dlogits wᵀ.
    pub dx: Vec<f64>,
}

/// Twin of `dense_loss_forward[_dx]` (shaders/softmax_cross_entropy_dense.wgsl): the dense layer's
/// forward on x [batch, inp], w [inp, units], b [units], then `softmax_cross_entropy`, then the
/// layer's dx.
pub fn dense_loss_forward(
    x: &[f64],
    w: &[f64],
    b: &[f64],
    labels: &[u32],
    batch: usize,
    inp: usize,
    units: usize,
) -> DenseLoss {
    let logits = matmul::dense_forward(x, w, b, batch, inp, units);
    let (loss_sum, correct, dlogits) = softmax_cross_entropy(&logits, labels, batch, units);
    let dx = matmul::matmul(
        &dlogits,
        w,
        None,
        MatmulShape {
            trans_b: true,
            ..MatmulShape::new(batch, inp, units)
        },
    );
    DenseLoss {
        logits,
        loss_sum,
        correct,
        dlogits,
        dx,
    }
}

/// Twin of `dense_loss_backward`: the layer's (dw, db) for dlogits [batch, units].
pub fn dense_loss_backward(
    x: &[f64],
    dlogits: &[f64],
    batch: usize,
    inp: usize,
    units: usize,
) -> (Vec<f64>, Vec<f64>) {
    let dw = matmul::matmul(
        x,
        dlogits,
        None,
        MatmulShape {
            trans_a: true,
            ..MatmulShape::new(inp, units, batch)
        },
    );
    (dw, super::column_sum::column_sum(dlogits, batch, units))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::gradcheck::{check_gradient, seeded};

    #[test]
    fn dlogits_match_finite_differences_of_the_mean_loss() {
        let (batch, classes) = (4, 7);
        let z: Vec<f64> = seeded(batch * classes, 21)
            .iter()
            .map(|v| 3.0 * v)
            .collect();
        let labels = [0, 6, 3, 3];
        let mean_loss =
            |z: &[f64]| softmax_cross_entropy(z, &labels, batch, classes).0 / batch as f64;
        let (_, _, d) = softmax_cross_entropy(&z, &labels, batch, classes);
        check_gradient("softmax_cross_entropy dlogits", &z, &d, mean_loss);
    }

    #[test]
    fn the_fused_dense_layers_gradients_match_finite_differences_of_the_mean_loss() {
        let (batch, inp, units) = (3, 5, 4);
        let x = seeded(batch * inp, 31);
        let w = seeded(inp * units, 32);
        let b = seeded(units, 33);
        let labels = [3, 0, 2];
        let mean = |x: &[f64], w: &[f64], b: &[f64]| {
            dense_loss_forward(x, w, b, &labels, batch, inp, units).loss_sum / batch as f64
        };
        let f = dense_loss_forward(&x, &w, &b, &labels, batch, inp, units);
        let (dw, db) = dense_loss_backward(&x, &f.dlogits, batch, inp, units);
        check_gradient("dense_loss dw", &w, &dw, |w| mean(&x, w, &b));
        check_gradient("dense_loss db", &b, &db, |b| mean(&x, &w, b));
        check_gradient("dense_loss dx", &x, &f.dx, |x| mean(x, &w, &b));
    }

    #[test]
    fn loss_is_stable_for_huge_logits_and_matches_the_textbook_form() {
        let z = [1000.0, 1001.0, 999.0];
        let (loss, correct, _) = softmax_cross_entropy(&z, &[1], 1, 3);
        let textbook = -(1.0f64.exp() / (1.0f64.exp() + 1.0 + (-1.0f64).exp())).ln();
        assert!((loss - textbook).abs() < 1e-12, "{loss} vs {textbook}");
        assert_eq!(correct, 1);
        let p = softmax(&z, 1, 3);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-15);
    }

    #[test]
    fn argmax_ties_go_to_the_first_maximum() {
        let z = [0.5, 2.0, 2.0, 2.0, 1.0, 1.0];
        assert_eq!(softmax_cross_entropy(&z, &[1, 0], 2, 3).1, 2);
        assert_eq!(softmax_cross_entropy(&z, &[2, 1], 2, 3).1, 0);
    }
}
