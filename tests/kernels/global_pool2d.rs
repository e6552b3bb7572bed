//! GlobalAveragePooling2D and GlobalMaxPooling2D run the avgpool2d and maxpool2d kernels with one
//! window the size of the input: those kernels against their twins on such windows, and the
//! global maximum's tie rule (the first maximum in row-major order takes the gradient).

use cifar_wgpu::kernels::maxpool2d::{maxpool2d_backward, maxpool2d_forward};

use crate::common::*;
use crate::pooling::global;
use crate::{avgpool2d, maxpool2d};

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

#[test]
fn global_max_pooling_on_the_maxpool2d_kernels() {
    for (i, &(n, h, w, c)) in SHAPES.iter().enumerate() {
        let s = global(n, h, w, c);
        let seed = 4000 + 10 * i as u64;
        maxpool2d::check_with(s, &random(s.input_len(), seed, -1.0, 1.0), seed + 1);
        // Values from a set of three, so most channels tie: the first maximum takes the gradient.
        let quantised: Vec<f32> = random(s.input_len(), seed + 2, 0.0, 3.0)
            .iter()
            .map(|v| v.floor())
            .collect();
        maxpool2d::check_with(s, &quantised, seed + 3);
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
