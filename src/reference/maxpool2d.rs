//! CPU twin of `shaders/maxpool2d.wgsl`: 2-D max pooling, channels-last, with the argmax the backward
//! pass routes the gradient through.

use crate::shape::Pool2dShape;

/// y[n, oy, ox, c] = max over the window of x, and argmax[...] = the flat index into x of the winner.
/// Windows are scanned in row-major order and only a strictly greater value replaces the best so far,
/// so a tie goes to the FIRST maximum (as TensorFlow and PyTorch do). Padded cells never win.
pub fn maxpool2d_forward(x: &[f64], s: Pool2dShape) -> (Vec<f64>, Vec<u32>) {
    assert_eq!(
        x.len(),
        s.input_len(),
        "maxpool2d: input has the wrong size for {s:?}"
    );
    let (oh, ow) = (s.out_h(), s.out_w());
    let mut y = vec![0.0; s.output_len()];
    let mut argmax = vec![0u32; s.output_len()];
    for n in 0..s.n {
        for oy in 0..oh {
            for ox in 0..ow {
                for c in 0..s.c {
                    let mut best: Option<(f64, usize)> = None;
                    for r in 0..s.pool_h {
                        let Some(iy) = (oy * s.stride_h + r)
                            .checked_sub(s.pad_top())
                            .filter(|&v| v < s.h)
                        else {
                            continue;
                        };
                        for q in 0..s.pool_w {
                            let Some(ix) = (ox * s.stride_w + q)
                                .checked_sub(s.pad_left())
                                .filter(|&v| v < s.w)
                            else {
                                continue;
                            };
                            let i = ((n * s.h + iy) * s.w + ix) * s.c + c;
                            if best.is_none_or(|(b, _)| x[i] > b) {
                                best = Some((x[i], i));
                            }
                        }
                    }
                    let (v, i) = best.expect("every pooling window holds at least one input cell");
                    let o = ((n * oh + oy) * ow + ox) * s.c + c;
                    y[o] = v;
                    argmax[o] = i as u32;
                }
            }
        }
    }
    (y, argmax)
}

/// dx[i] = sum of dy[o] over the outputs o whose argmax is i (zero for inputs that won no window).
pub fn maxpool2d_backward(dy: &[f64], argmax: &[u32], s: Pool2dShape) -> Vec<f64> {
    assert_eq!(
        dy.len(),
        s.output_len(),
        "maxpool2d: dy has the wrong size for {s:?}"
    );
    assert_eq!(
        argmax.len(),
        s.output_len(),
        "maxpool2d: argmax has the wrong size for {s:?}"
    );
    let mut dx = vec![0.0; s.input_len()];
    for (&g, &i) in dy.iter().zip(argmax) {
        dx[i as usize] += g;
    }
    dx
}

/// The fused `maxpool2d_backward` with the ReLU mask of the layer before (`x`, that ReLU's output):
/// the two twins composed.
pub fn maxpool2d_backward_masked(
    dy: &[f64],
    argmax: &[u32],
    x: &[f64],
    s: Pool2dShape,
) -> Vec<f64> {
    crate::reference::activation::relu_backward(x, &maxpool2d_backward(dy, argmax, s))
}

/// Twin of the `_dropout` forwards (the Dropout layer after the pool, taken in): the pool, then the
/// dropout twin on its output.
pub fn maxpool2d_forward_dropout(
    x: &[f64],
    s: Pool2dShape,
    mask: &crate::reference::dropout::MaskAt,
) -> (Vec<f64>, Vec<u32>) {
    let (y, argmax) = maxpool2d_forward(x, s);
    (mask.apply(&y), argmax)
}

/// Twin of the `_dropout` backwards: the dropout twin on dy, then the pool's backward, masked by
/// the ReLU before when `relu_x` (that ReLU's output) is given.
pub fn maxpool2d_backward_dropout(
    dy: &[f64],
    argmax: &[u32],
    relu_x: Option<&[f64]>,
    s: Pool2dShape,
    mask: &crate::reference::dropout::MaskAt,
) -> Vec<f64> {
    let dy = mask.apply(dy);
    match relu_x {
        Some(x) => maxpool2d_backward_masked(&dy, argmax, x, s),
        None => maxpool2d_backward(&dy, argmax, s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::gradcheck::{check_gradient, seeded};
    use crate::shape::Padding;

    fn check(s: Pool2dShape, seed: u64) {
        let x = seeded(s.input_len(), seed);
        // Finite differences need every window's maximum to stay the maximum under a 1e-6 step.
        let mut sorted = x.clone();
        sorted.sort_by(f64::total_cmp);
        assert!(
            sorted.windows(2).all(|p| p[1] - p[0] > 1e-5),
            "test input has near-ties"
        );
        let dy = seeded(s.output_len(), seed + 1);
        let loss = |x: &[f64]| -> f64 {
            maxpool2d_forward(x, s)
                .0
                .iter()
                .zip(&dy)
                .map(|(y, g)| y * g)
                .sum()
        };
        let (_, argmax) = maxpool2d_forward(&x, s);
        let dx = maxpool2d_backward(&dy, &argmax, s);
        check_gradient(&format!("maxpool2d {s:?} dx"), &x, &dx, loss);
    }

    #[test]
    fn backward_matches_finite_differences() {
        check(Pool2dShape::new(2, 4, 6, 3, 2), 1);
        // Odd sizes (the last row and column are dropped), overlapping windows, 'same' padding.
        check(Pool2dShape::new(1, 5, 5, 2, 2), 2);
        let overlapping = Pool2dShape {
            stride_h: 2,
            stride_w: 2,
            ..Pool2dShape::new(2, 5, 7, 2, 3)
        };
        check(overlapping, 3);
        check(
            Pool2dShape {
                padding: Padding::Same,
                ..overlapping
            },
            4,
        );
        check(
            Pool2dShape {
                padding: Padding::Same,
                ..Pool2dShape::new(1, 5, 3, 2, 2)
            },
            5,
        );
    }

    /// The dropout twins: the backward is the gradient of the forward (with the same mask), on
    /// overlapping windows, where a cell can win several windows, some dropped and some kept.
    #[test]
    fn dropout_backward_matches_finite_differences() {
        let s = Pool2dShape {
            stride_h: 1,
            stride_w: 2,
            ..Pool2dShape::new(2, 5, 7, 3, 3)
        };
        let mask = crate::reference::dropout::MaskAt {
            seed: 7,
            step: 3,
            salt: 2,
            rate: 0.3,
        };
        let x = seeded(s.input_len(), 6);
        let dy = seeded(s.output_len(), 7);
        let loss = |x: &[f64]| -> f64 {
            maxpool2d_forward_dropout(x, s, &mask)
                .0
                .iter()
                .zip(&dy)
                .map(|(y, g)| y * g)
                .sum()
        };
        let (_, argmax) = maxpool2d_forward(&x, s);
        let dx = maxpool2d_backward_dropout(&dy, &argmax, None, s, &mask);
        check_gradient("maxpool2d dropout dx", &x, &dx, loss);
    }

    #[test]
    fn ties_go_to_the_first_maximum_in_row_major_order() {
        // One 2x2 window, one channel: the two 5s tie, the first in row-major order wins.
        let s = Pool2dShape::new(1, 2, 2, 1, 2);
        let (y, argmax) = maxpool2d_forward(&[1.0, 5.0, 5.0, 2.0], s);
        assert_eq!((y, argmax), (vec![5.0], vec![1]));
        // All equal: the first cell. Two channels, so flat indices step by c.
        let s = Pool2dShape::new(1, 2, 2, 2, 2);
        let (_, argmax) = maxpool2d_forward(&[3.0, 0.0, 3.0, 1.0, 3.0, 1.0, 3.0, 0.0], s);
        assert_eq!(argmax, vec![0, 3]);
        // The gradient goes to the winner only.
        let dx = maxpool2d_backward(&[1.0, 2.0], &argmax, s);
        assert_eq!(dx, vec![1.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn same_padding_never_lets_a_padded_cell_win() {
        // All inputs negative: a padded zero would win if padding took part.
        let s = Pool2dShape {
            padding: Padding::Same,
            ..Pool2dShape::new(1, 3, 3, 1, 2)
        };
        let x: Vec<f64> = (0..9).map(|i| -1.0 - i as f64).collect();
        let (y, argmax) = maxpool2d_forward(&x, s);
        assert_eq!(y, vec![-1.0, -3.0, -7.0, -9.0]);
        assert_eq!(argmax, vec![0, 2, 6, 8]);
    }
}
