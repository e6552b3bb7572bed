//! GlobalAveragePooling2D and GlobalMaxPooling2D run the avgpool2d and maxpool2d kernels with one
//! window the size of the input: those kernels against their twins on such windows, and the
//! global maximum's tie rule (the first maximum in row-major order takes the gradient).

use cifar_wgpu::kernels::maxpool2d::{maxpool2d_backward, maxpool2d_forward};
use cifar_wgpu::reference;
use cifar_wgpu::shape::{Padding, Pool2dShape};

use crate::avgpool2d;
use crate::common::*;

fn global(n: usize, h: usize, w: usize, c: usize) -> Pool2dShape {
    avgpool2d::pool(n, h, w, c, (h, w), (h, w), Padding::Valid)
}

/// Shapes of every parity, c % 4 == 0 and not (the maxpool2d kernels' vec4 paths), 1x1 images.
const SHAPES: [(usize, usize, usize, usize); 7] = [
    (1, 1, 1, 1),
    (2, 3, 5, 3),
    (3, 7, 4, 8),
    (1, 8, 8, 64),
    (5, 2, 9, 5),
    (2, 1, 6, 4),
    (4, 6, 6, 70),
];

#[test]
fn global_average_pooling_on_the_avgpool2d_kernels() {
    for (i, &(n, h, w, c)) in SHAPES.iter().enumerate() {
        avgpool2d::check(global(n, h, w, c), 3000 + 10 * i as u64);
    }
}

/// Forward (y and argmax) and backward, plain and with the fused ReLU mask, against the twins.
fn check_max(s: Pool2dShape, x: &[f32], seed: u64) {
    let g = gpu();
    let dy = random(s.output_len(), seed, -1.0, 1.0);
    let (tx, tdy) = (g.upload("x", x), g.upload("dy", &dy));
    let (ty, targmax) = (poisoned(s.output_len()), poisoned(s.output_len()));
    let (tdx, tdx_masked) = (poisoned(s.input_len()), poisoned(s.input_len()));
    run_all(&[
        maxpool2d_forward(g, &tx, &ty, &targmax, None, s),
        maxpool2d_backward(g, &tdy, &targmax, None, None, &tdx, s),
        maxpool2d_backward(g, &tdy, &targmax, Some(&tx), None, &tdx_masked, s),
    ]);
    let (want_y, want_argmax) = reference::maxpool2d::maxpool2d_forward(&to_f64(x), s);
    let want_dx = reference::maxpool2d::maxpool2d_backward(&to_f64(&dy), &want_argmax, s);
    let want_masked =
        reference::maxpool2d::maxpool2d_backward_masked(&to_f64(&dy), &want_argmax, &to_f64(x), s);
    let name = format!("global max n{} {}x{}x{}", s.n, s.h, s.w, s.c);
    compare(&format!("{name} y"), &read(&ty), &want_y, 0.0);
    compare_exact(
        &format!("{name} argmax"),
        &g.read_u32(&targmax).unwrap(),
        &want_argmax,
    );
    // One window: each dx element is one dy value or 0, exactly.
    compare(&format!("{name} dx"), &read(&tdx), &want_dx, 0.0);
    compare(
        &format!("{name} masked dx"),
        &read(&tdx_masked),
        &want_masked,
        0.0,
    );
}

#[test]
fn global_max_pooling_on_the_maxpool2d_kernels() {
    for (i, &(n, h, w, c)) in SHAPES.iter().enumerate() {
        let s = global(n, h, w, c);
        let seed = 4000 + 10 * i as u64;
        check_max(s, &random(s.input_len(), seed, -1.0, 1.0), seed + 1);
        // Values from a set of three, so most channels tie: the first maximum takes the gradient.
        let quantised: Vec<f32> = random(s.input_len(), seed + 2, 0.0, 3.0)
            .iter()
            .map(|v| v.floor())
            .collect();
        check_max(s, &quantised, seed + 3);
    }
    // An explicit tie: channel 0 peaks at cells 1 and 2, channel 1 everywhere; the first wins.
    let s = global(1, 2, 2, 2);
    let g = gpu();
    let tx = g.upload("x", &[0.0f32, 4.0, 5.0, 4.0, 5.0, 4.0, 1.0, 4.0]);
    let (ty, targmax) = (poisoned(2), poisoned(2));
    let (tdy, tdx) = (g.upload("dy", &[1.0f32, 2.0]), poisoned(8));
    run_all(&[
        maxpool2d_forward(g, &tx, &ty, &targmax, None, s),
        maxpool2d_backward(g, &tdy, &targmax, None, None, &tdx, s),
    ]);
    compare_exact(
        "global max tie argmax",
        &g.read_u32(&targmax).unwrap(),
        &[2, 1],
    );
    compare(
        "global max tie dx",
        &read(&tdx),
        &[0.0, 2.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        0.0,
    );
}
