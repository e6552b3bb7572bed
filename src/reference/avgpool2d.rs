//! CPU twin of `shaders/avgpool2d.wgsl`: 2-D average pooling, channels-last. With one window the size
//! of the input it is also GlobalAveragePooling2D.

use crate::shape::Pool2dShape;

/// The in-bounds input range [lo, hi) of output coordinate `o`'s window along one axis.
fn window(o: usize, stride: usize, pad: usize, pool: usize, size: usize) -> (usize, usize) {
    let start = o * stride;
    (
        start.saturating_sub(pad),
        (start + pool).saturating_sub(pad).min(size),
    )
}

/// The input rows and columns output (oy, ox) averages.
fn rows_cols(s: &Pool2dShape, oy: usize, ox: usize) -> ((usize, usize), (usize, usize)) {
    (
        window(oy, s.stride_h, s.pad_top(), s.pool_h, s.h),
        window(ox, s.stride_w, s.pad_left(), s.pool_w, s.w),
    )
}

/// y[n, oy, ox, c] = the mean of x over the window's in-bounds cells: with 'same' padding a window at
/// the border divides by the cells it covers, not by pool_h * pool_w, as Keras does.
pub fn avgpool2d_forward(x: &[f64], s: Pool2dShape) -> Vec<f64> {
    assert_eq!(
        x.len(),
        s.input_len(),
        "avgpool2d: input has the wrong size for {s:?}"
    );
    let (oh, ow) = (s.out_h(), s.out_w());
    let mut y = vec![0.0; s.output_len()];
    for n in 0..s.n {
        for oy in 0..oh {
            for ox in 0..ow {
                let ((r0, r1), (q0, q1)) = rows_cols(&s, oy, ox);
                let count = ((r1 - r0) * (q1 - q0)) as f64;
                assert!(count > 0.0, "every pooling window holds an input cell");
                for c in 0..s.c {
                    let mut sum = 0.0;
                    for iy in r0..r1 {
                        for ix in q0..q1 {
                            sum += x[((n * s.h + iy) * s.w + ix) * s.c + c];
                        }
                    }
                    y[((n * oh + oy) * ow + ox) * s.c + c] = sum / count;
                }
            }
        }
    }
    y
}

/// dx[i] = sum of dy[o] / count(o) over the windows o that contain input i (zero where none does).
pub fn avgpool2d_backward(dy: &[f64], s: Pool2dShape) -> Vec<f64> {
    assert_eq!(
        dy.len(),
        s.output_len(),
        "avgpool2d: dy has the wrong size for {s:?}"
    );
    let (oh, ow) = (s.out_h(), s.out_w());
    let mut dx = vec![0.0; s.input_len()];
    for n in 0..s.n {
        for oy in 0..oh {
            for ox in 0..ow {
                let ((r0, r1), (q0, q1)) = rows_cols(&s, oy, ox);
                let count = ((r1 - r0) * (q1 - q0)) as f64;
                for c in 0..s.c {
                    let g = dy[((n * oh + oy) * ow + ox) * s.c + c] / count;
                    for iy in r0..r1 {
                        for ix in q0..q1 {
                            dx[((n * s.h + iy) * s.w + ix) * s.c + c] += g;
                        }
                    }
                }
            }
        }
    }
    dx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::gradcheck::{check_gradient, seeded};
    use crate::shape::Padding;

    fn check(s: Pool2dShape, seed: u64) {
        let x = seeded(s.input_len(), seed);
        let dy = seeded(s.output_len(), seed + 1);
        let loss = |x: &[f64]| -> f64 {
            avgpool2d_forward(x, s)
                .iter()
                .zip(&dy)
                .map(|(y, g)| y * g)
                .sum()
        };
        let dx = avgpool2d_backward(&dy, s);
        check_gradient(&format!("avgpool2d {s:?} dx"), &x, &dx, loss);
    }

    fn pool(s: Pool2dShape, size: [usize; 2], stride: [usize; 2], padding: Padding) -> Pool2dShape {
        Pool2dShape {
            pool_h: size[0],
            pool_w: size[1],
            stride_h: stride[0],
            stride_w: stride[1],
            padding,
            ..s
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        let mut seed = 1;
        for padding in [Padding::Valid, Padding::Same] {
            for (size, stride) in [
                ([2, 2], [2, 2]),
                ([3, 3], [2, 2]),
                ([3, 2], [1, 2]),
                ([2, 2], [3, 3]),
            ] {
                check(
                    pool(Pool2dShape::new(2, 5, 7, 3, 1), size, stride, padding),
                    seed,
                );
                seed += 2;
            }
        }
        // The global average: one window the size of the input.
        check(
            pool(
                Pool2dShape::new(2, 3, 5, 4, 1),
                [3, 5],
                [3, 5],
                Padding::Valid,
            ),
            seed,
        );
    }

    #[test]
    fn same_padding_divides_by_the_cells_in_bounds() {
        // 3x3 input 1..9, pool 2, stride 2, 'same': output 2x2, no padding before, one row and column
        // after. The windows hold 4, 2, 2 and 1 cells.
        let s = pool(
            Pool2dShape::new(1, 3, 3, 1, 2),
            [2, 2],
            [2, 2],
            Padding::Same,
        );
        let x: Vec<f64> = (1..=9).map(f64::from).collect();
        assert_eq!(
            avgpool2d_forward(&x, s),
            vec![
                (1.0 + 2.0 + 4.0 + 5.0) / 4.0,
                (3.0 + 6.0) / 2.0,
                (7.0 + 8.0) / 2.0,
                9.0
            ]
        );
        // And the gradient of each window spreads over its own cells only.
        let dx = avgpool2d_backward(&[4.0, 2.0, 2.0, 1.0], s);
        assert_eq!(dx, vec![1.0; 9]);
        // A 3x3 window with stride 1, 'same': the corner window holds 4 cells, the edge one 6.
        let s = pool(
            Pool2dShape::new(1, 3, 3, 1, 1),
            [3, 3],
            [1, 1],
            Padding::Same,
        );
        let y = avgpool2d_forward(&x, s);
        assert_eq!(y[0], (1.0 + 2.0 + 4.0 + 5.0) / 4.0);
        assert_eq!(y[1], (1.0 + 2.0 + 3.0 + 4.0 + 5.0 + 6.0) / 6.0);
        assert_eq!(y[4], 5.0);
    }

    #[test]
    fn valid_padding_leaves_uncovered_cells_without_gradient() {
        // 5 columns, pool 2 stride 2: the last column is in no window.
        let s = Pool2dShape::new(1, 2, 5, 1, 2);
        let dx = avgpool2d_backward(&[4.0, 8.0], s);
        assert_eq!(dx, vec![1.0, 1.0, 2.0, 2.0, 0.0, 1.0, 1.0, 2.0, 2.0, 0.0]);
    }
}
