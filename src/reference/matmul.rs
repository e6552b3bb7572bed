//! CPU twin of `shaders/matmul.wgsl`.

use crate::shape::MatmulShape;

/// c[m, n] = op(a)[m, k] * op(b)[k, n] (+ bias[n]).
pub fn matmul(a: &[f64], b: &[f64], bias: Option<&[f64]>, s: MatmulShape) -> Vec<f64> {
    assert_eq!(a.len(), s.m * s.k);
    assert_eq!(b.len(), s.k * s.n);
    let at = |i: usize, kk: usize| {
        if s.trans_a {
            a[kk * s.m + i]
        } else {
            a[i * s.k + kk]
        }
    };
    let bt = |kk: usize, j: usize| {
        if s.trans_b {
            b[j * s.k + kk]
        } else {
            b[kk * s.n + j]
        }
    };
    let mut c = vec![0.0; s.m * s.n];
    for i in 0..s.m {
        for j in 0..s.n {
            let mut acc = bias.map_or(0.0, |b| b[j]);
            for kk in 0..s.k {
                acc += at(i, kk) * bt(kk, j);
            }
            c[i * s.n + j] = acc;
        }
    }
    c
}

/// Forward of a dense layer: y[batch, out] = x[batch, in] * w[in, out] + b[out].
pub fn dense_forward(
    x: &[f64],
    w: &[f64],
    b: &[f64],
    batch: usize,
    inp: usize,
    out: usize,
) -> Vec<f64> {
    matmul(x, w, Some(b), MatmulShape::new(batch, out, inp))
}

/// Gradients of a dense layer: (dx, dw, db) from dy[batch, out].
pub fn dense_backward(
    x: &[f64],
    w: &[f64],
    dy: &[f64],
    batch: usize,
    inp: usize,
    out: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let dx = matmul(
        dy,
        w,
        None,
        MatmulShape {
            trans_b: true,
            ..MatmulShape::new(batch, inp, out)
        },
    );
    let dw = matmul(
        x,
        dy,
        None,
        MatmulShape {
            trans_a: true,
            ..MatmulShape::new(inp, out, batch)
        },
    );
    let db = super::column_sum::column_sum(dy, batch, out);
    (dx, dw, db)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::gradcheck::{check_gradient, seeded};

    #[test]
    fn dense_backward_matches_finite_differences() {
        let (batch, inp, out) = (3, 5, 4);
        let x = seeded(batch * inp, 1);
        let w = seeded(inp * out, 2);
        let b = seeded(out, 3);
        let dy = seeded(batch * out, 4);
        // Loss L = sum(y * dy) has dL/dy = dy, so each analytic gradient is the backward of dy.
        let loss = |x: &[f64], w: &[f64], b: &[f64]| -> f64 {
            dense_forward(x, w, b, batch, inp, out)
                .iter()
                .zip(&dy)
                .map(|(y, g)| y * g)
                .sum()
        };
        let (dx, dw, db) = dense_backward(&x, &w, &dy, batch, inp, out);
        check_gradient("dense dx", &x, &dx, |v| loss(v, &w, &b));
        check_gradient("dense dw", &w, &dw, |v| loss(&x, v, &b));
        check_gradient("dense db", &b, &db, |v| loss(&x, &w, v));
    }

    #[test]
    fn transposed_operands_agree_with_explicit_transposes() {
        let (m, n, k) = (3, 2, 4);
        let a = seeded(m * k, 5);
        let b = seeded(k * n, 6);
        let plain = matmul(&a, &b, None, MatmulShape::new(m, n, k));
        let transpose = |v: &[f64], rows: usize, cols: usize| {
            (0..cols * rows)
                .map(|i| v[(i % rows) * cols + i / rows])
                .collect::<Vec<_>>()
        };
        let at = transpose(&a, m, k);
        let bt = transpose(&b, k, n);
        let both = matmul(
            &at,
            &bt,
            None,
            MatmulShape {
                trans_a: true,
                trans_b: true,
                ..MatmulShape::new(m, n, k)
            },
        );
        for (p, q) in plain.iter().zip(&both) {
            assert!((p - q).abs() < 1e-12);
        }
    }
}
