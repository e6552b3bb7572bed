//! CPU twin of `shaders/conv2d.wgsl`: a strided 2-D convolution, channels-last, in plain loops.
//!
//! x [n, h, w, cin], w [kh, kw, cin, cout] (Keras' layout), b [cout] or none, y [n, oh, ow, cout].
//! Input pixel (oy * sh + i - pad_top, ox * sw + j - pad_left) meets kernel tap (i, j); taps that fall
//! outside the input read zero ('same' padding). Like Keras this is a correlation: the kernel is not
//! flipped.

use crate::shape::Conv2dShape;

/// The input pixel that output pixel (oy, ox) meets at kernel tap (i, j), if it is inside the image.
fn input_pixel(
    s: &Conv2dShape,
    oy: usize,
    ox: usize,
    i: usize,
    j: usize,
) -> Option<(usize, usize)> {
    let iy = (oy * s.stride_h + i)
        .checked_sub(s.pad_top())
        .filter(|&v| v < s.h)?;
    let ix = (ox * s.stride_w + j)
        .checked_sub(s.pad_left())
        .filter(|&v| v < s.w)?;
    Some((iy, ix))
}

/// y[n, oy, ox, co] = b[co] + sum_{i, j, ci} x[n, oy*sh + i - pt, ox*sw + j - pl, ci] * w[i, j, ci, co],
/// without the b[co] when `b` is `None`.
pub fn conv2d_forward(x: &[f64], w: &[f64], b: Option<&[f64]>, s: Conv2dShape) -> Vec<f64> {
    assert_eq!(
        x.len(),
        s.input_len(),
        "conv2d: input has the wrong size for {s:?}"
    );
    assert_eq!(
        w.len(),
        s.kernel_len(),
        "conv2d: kernel has the wrong size for {s:?}"
    );
    if let Some(b) = b {
        assert_eq!(b.len(), s.cout, "conv2d: bias has the wrong size for {s:?}");
    }
    let (oh, ow) = (s.out_h(), s.out_w());
    let mut y = vec![0.0; s.output_len()];
    for n in 0..s.n {
        for oy in 0..oh {
            for ox in 0..ow {
                let out = &mut y[((n * oh + oy) * ow + ox) * s.cout..][..s.cout];
                if let Some(b) = b {
                    out.copy_from_slice(b);
                }
                for i in 0..s.kh {
                    for j in 0..s.kw {
                        let Some((iy, ix)) = input_pixel(&s, oy, ox, i, j) else {
                            continue;
                        };
                        let xin = &x[((n * s.h + iy) * s.w + ix) * s.cin..][..s.cin];
                        for (ci, &xv) in xin.iter().enumerate() {
                            let wrow = &w[((i * s.kw + j) * s.cin + ci) * s.cout..][..s.cout];
                            for (o, &wv) in out.iter_mut().zip(wrow) {
                                *o += xv * wv;
                            }
                        }
                    }
                }
            }
        }
    }
    y
}

/// Checks a tensor's length against the size `s` gives it.
fn check_len(name: &str, v: &[f64], len: usize, s: &Conv2dShape) {
    assert_eq!(v.len(), len, "conv2d: {name} has the wrong size for {s:?}");
}

/// Calls `f(out, at, k)` for every output pixel (n, oy, ox) and kernel tap (i, j) that meets an input
/// pixel (iy, ix): `out` is the output pixel's index, `at` indexes x[n, iy, ix, 0] and `k` indexes
/// w[i, j, 0, 0]. The backward twins share this walk, so they add in the same order.
fn for_each_tap(s: &Conv2dShape, mut f: impl FnMut(usize, usize, usize)) {
    let (oh, ow) = (s.out_h(), s.out_w());
    for n in 0..s.n {
        for oy in 0..oh {
            for ox in 0..ow {
                for i in 0..s.kh {
                    for j in 0..s.kw {
                        let Some((iy, ix)) = input_pixel(s, oy, ox, i, j) else {
                            continue;
                        };
                        let out = (n * oh + oy) * ow + ox;
                        let at = ((n * s.h + iy) * s.w + ix) * s.cin;
                        let k = (i * s.kw + j) * s.cin * s.cout;
                        f(out, at, k);
                    }
                }
            }
        }
    }
}

/// Twin of the `conv2d_backward_input` entry point: dx[n, iy, ix, ci] = sum over the (oy, ox, i, j)
/// that meet (iy, ix), and co, of dy[n, oy, ox, co] * w[i, j, ci, co] (a full correlation of dy with
/// the flipped kernel).
pub fn conv2d_backward_input(dy: &[f64], w: &[f64], s: Conv2dShape) -> Vec<f64> {
    check_len("dy", dy, s.output_len(), &s);
    check_len("kernel", w, s.kernel_len(), &s);
    let mut dx = vec![0.0; s.input_len()];
    for_each_tap(&s, |out, at, k| {
        let g = &dy[out * s.cout..][..s.cout];
        for ci in 0..s.cin {
            let wrow = &w[k + ci * s.cout..][..s.cout];
            dx[at + ci] += g.iter().zip(wrow).map(|(gv, wv)| gv * wv).sum::<f64>();
        }
    });
    dx
}

/// Twin of the `conv2d_backward_weight` entry point:
/// dw[i, j, ci, co] = sum_{n, oy, ox} x[n, oy*sh + i - pt, ox*sw + j - pl, ci] * dy[n, oy, ox, co].
pub fn conv2d_backward_weight(x: &[f64], dy: &[f64], s: Conv2dShape) -> Vec<f64> {
    check_len("input", x, s.input_len(), &s);
    check_len("dy", dy, s.output_len(), &s);
    let mut dw = vec![0.0; s.kernel_len()];
    for_each_tap(&s, |out, at, k| {
        let g = &dy[out * s.cout..][..s.cout];
        for ci in 0..s.cin {
            let xv = x[at + ci];
            for (d, &gv) in dw[k + ci * s.cout..][..s.cout].iter_mut().zip(g) {
                *d += xv * gv;
            }
        }
    });
    dw
}

/// Twin of `kernels::conv2d::conv2d_backward_bias` (a column sum on the GPU):
/// db[co] = sum_{n, oy, ox} dy[n, oy, ox, co].
pub fn conv2d_backward_bias(dy: &[f64], s: Conv2dShape) -> Vec<f64> {
    check_len("dy", dy, s.output_len(), &s);
    super::column_sum::column_sum(dy, s.n * s.out_h() * s.out_w(), s.cout)
}

/// The fused `conv2d_forward` with its ReLU: the two twins composed.
pub fn conv2d_forward_relu(x: &[f64], w: &[f64], b: Option<&[f64]>, s: Conv2dShape) -> Vec<f64> {
    crate::reference::activation::relu_forward(&conv2d_forward(x, w, b, s))
}

/// The fused `conv2d_backward_input` with the ReLU mask of the layer before (`x`, that ReLU's output):
/// the two twins composed.
pub fn conv2d_backward_input_masked(dy: &[f64], w: &[f64], x: &[f64], s: Conv2dShape) -> Vec<f64> {
    crate::reference::activation::relu_backward(x, &conv2d_backward_input(dy, w, s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::gradcheck::{check_gradient, seeded};
    use crate::shape::Padding;

    fn check(s: Conv2dShape, seed: u64) {
        let x = seeded(s.input_len(), seed);
        let w = seeded(s.kernel_len(), seed + 1);
        let b = seeded(s.cout, seed + 2);
        let dy = seeded(s.output_len(), seed + 3);
        // Loss L = sum(y * dy) has dL/dy = dy, so each analytic gradient is the backward of dy.
        let loss = |x: &[f64], w: &[f64], b: &[f64]| -> f64 {
            conv2d_forward(x, w, Some(b), s)
                .iter()
                .zip(&dy)
                .map(|(y, g)| y * g)
                .sum()
        };
        let dx = conv2d_backward_input(&dy, &w, s);
        let dw = conv2d_backward_weight(&x, &dy, s);
        let db = conv2d_backward_bias(&dy, s);
        let name = format!(
            "conv2d {}x{} /{}x{} {:?} cin {} cout {}",
            s.kh, s.kw, s.stride_h, s.stride_w, s.padding, s.cin, s.cout
        );
        check_gradient(&format!("{name} dx"), &x, &dx, |v| loss(v, &w, &b));
        check_gradient(&format!("{name} dw"), &w, &dw, |v| loss(&x, v, &b));
        check_gradient(&format!("{name} db"), &b, &db, |v| loss(&x, &w, v));
    }

    fn shape(kh: usize, kw: usize, padding: Padding) -> Conv2dShape {
        strided(kh, kw, (1, 1), padding)
    }

    fn strided(
        kh: usize,
        kw: usize,
        (stride_h, stride_w): (usize, usize),
        padding: Padding,
    ) -> Conv2dShape {
        Conv2dShape {
            n: 2,
            h: 5,
            w: 4,
            cin: 2,
            cout: 3,
            kh,
            kw,
            stride_h,
            stride_w,
            padding,
        }
    }

    #[test]
    fn backward_matches_finite_differences_same_padding() {
        // Odd, even (TensorFlow puts the extra padding after) and rectangular kernels.
        for (i, &(kh, kw)) in [(3, 3), (2, 2), (1, 1), (3, 2), (4, 5)].iter().enumerate() {
            check(shape(kh, kw, Padding::Same), 10 * i as u64);
        }
    }

    #[test]
    fn backward_matches_finite_differences_valid_padding() {
        for (i, &(kh, kw)) in [(3, 3), (2, 2), (1, 1), (2, 3), (5, 4)].iter().enumerate() {
            check(shape(kh, kw, Padding::Valid), 100 + 10 * i as u64);
        }
    }

    #[test]
    fn backward_matches_finite_differences_with_strides() {
        // Strides that divide the 5x4 input and strides that do not, larger than the kernel too
        // (taps that meet no output), in both paddings.
        let cases = [
            ((3, 3), (2, 2)),
            ((2, 2), (2, 2)),
            ((3, 2), (2, 3)),
            ((1, 1), (3, 2)),
            ((4, 3), (3, 1)),
        ];
        for (i, &((kh, kw), stride)) in cases.iter().enumerate() {
            for (k, padding) in [Padding::Same, Padding::Valid].into_iter().enumerate() {
                check(
                    strided(kh, kw, stride, padding),
                    200 + 10 * i as u64 + k as u64,
                );
            }
        }
    }

    #[test]
    fn strided_sizes_and_padding_are_tensorflows() {
        // TensorFlow: 'same' gives ceil(in / stride) and pads max((out - 1) * stride + k - in, 0),
        // the smaller half before; 'valid' gives floor((in - k) / stride) + 1.
        let s = |h, kh, stride, padding| Conv2dShape {
            h,
            kh,
            stride_h: stride,
            ..strided(1, 1, (1, 1), padding)
        };
        // (in, k, stride) -> (out, pad before) for 'same', out for 'valid'.
        let cases = [
            ((7, 3, 2), (4, 1), 3),
            ((8, 3, 2), (4, 0), 3),
            ((5, 1, 2), (3, 0), 3),
            ((6, 4, 3), (2, 0), 1),
            ((7, 4, 3), (3, 1), 2),
            ((5, 2, 1), (5, 0), 4),
        ];
        for ((h, kh, stride), (same_out, same_pad), valid_out) in cases {
            let same = s(h, kh, stride, Padding::Same);
            assert_eq!(
                (same.out_h(), same.pad_top()),
                (same_out, same_pad),
                "{same:?}"
            );
            assert_eq!(s(h, kh, stride, Padding::Valid).out_h(), valid_out);
        }
    }

    #[test]
    fn no_bias_is_a_zero_bias() {
        let s = strided(3, 2, (2, 1), Padding::Same);
        let x = seeded(s.input_len(), 1);
        let w = seeded(s.kernel_len(), 2);
        assert_eq!(
            conv2d_forward(&x, &w, None, s),
            conv2d_forward(&x, &w, Some(&vec![0.0; s.cout]), s)
        );
    }

    #[test]
    fn same_padding_puts_the_odd_pixel_after() {
        // A 2x2 all-ones kernel on a single-channel ramp: with the padding after, output (0, 0) sums
        // input pixels (0, 0), (0, 1), (1, 0), (1, 1), and the last row and column see zeros below/right.
        let s = Conv2dShape {
            n: 1,
            h: 2,
            w: 2,
            cin: 1,
            cout: 1,
            kh: 2,
            kw: 2,
            stride_h: 1,
            stride_w: 1,
            padding: Padding::Same,
        };
        let y = conv2d_forward(&[1.0, 2.0, 3.0, 4.0], &[1.0; 4], Some(&[0.0]), s);
        assert_eq!(y, vec![10.0, 6.0, 7.0, 4.0]);
    }

    #[test]
    fn a_one_by_one_kernel_is_a_matrix_product_per_pixel() {
        let s = Conv2dShape {
            n: 2,
            h: 3,
            w: 2,
            cin: 4,
            cout: 5,
            kh: 1,
            kw: 1,
            stride_h: 1,
            stride_w: 1,
            padding: Padding::Same,
        };
        let x = seeded(s.input_len(), 7);
        let w = seeded(s.kernel_len(), 8);
        let b = seeded(s.cout, 9);
        let y = conv2d_forward(&x, &w, Some(&b), s);
        let mm = crate::reference::matmul::matmul(
            &x,
            &w,
            Some(&b),
            crate::shape::MatmulShape::new(s.n * s.h * s.w, s.cout, s.cin),
        );
        for (p, q) in y.iter().zip(&mm) {
            assert!((p - q).abs() < 1e-12);
        }
    }
}
