use cifar_wgpu::kernels::avgpool2d::{avgpool2d_backward, avgpool2d_forward};
use cifar_wgpu::reference;
use cifar_wgpu::shape::{Padding, Pool2dShape};

use crate::common::*;
use crate::pooling::{ODD_IMAGES, each_shape, label, pool};

/// Forward and backward on the GPU against the CPU twin.
pub fn check(s: Pool2dShape, seed: u64) {
    let g = gpu();
    let x = random(s.input_len(), seed, -1.0, 1.0);
    let dy = random(s.output_len(), seed + 1, -1.0, 1.0);
    let (tx, tdy) = (g.upload("x", &x), g.upload("dy", &dy));
    let (ty, tdx) = (poisoned(s.output_len()), poisoned(s.input_len()));
    run_all(&[
        avgpool2d_forward(g, &tx, &ty, s),
        avgpool2d_backward(g, &tdy, &tdx, s),
    ]);
    let name = label(s);
    compare(
        &format!("avgpool2d_forward {name} y"),
        &read(&ty),
        &reference::avgpool2d::avgpool2d_forward(&to_f64(&x), s),
        F32_TOL,
    );
    compare(
        &format!("avgpool2d_backward {name} dx"),
        &read(&tdx),
        &reference::avgpool2d::avgpool2d_backward(&to_f64(&dy), s),
        F32_TOL,
    );
}

/// Odd sizes, windows and strides that do not divide the input (uncovered rows and columns in
/// 'valid', uneven padding in 'same'), overlapping windows, strides larger than the pool (cells no
/// window reaches), 1x1 pools, a batch of one and channel counts of 1, 3 and 70.
#[test]
fn avgpool2d_general_sizes_strides_and_paddings() {
    let windows = [
        ((2, 2), (2, 2)),
        ((3, 3), (2, 2)),
        ((3, 2), (1, 2)),
        ((1, 1), (1, 1)),
        ((2, 3), (3, 2)),
        ((2, 2), (3, 3)),
        ((3, 3), (1, 1)),
    ];
    each_shape(&windows, &ODD_IMAGES, 0, check);
}

#[test]
fn avgpool2d_windows_larger_than_the_input_in_same_padding() {
    // A 5x5 window on a 3x4 input: every window is clipped on several sides.
    check(pool(2, 3, 4, 5, (5, 5), (1, 1), Padding::Same), 900);
    check(pool(1, 3, 4, 2, (5, 5), (2, 3), Padding::Same), 910);
    // A 1x1 input.
    check(pool(3, 1, 1, 4, (2, 2), (2, 2), Padding::Same), 920);
}

#[test]
fn avgpool2d_same_padding_divides_by_the_cells_in_bounds() {
    // 3x3 input 1..9, pool 2, stride 2: the windows hold 4, 2, 2 and 1 cells.
    let s = pool(1, 3, 3, 1, (2, 2), (2, 2), Padding::Same);
    let g = gpu();
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let (tx, ty) = (g.upload("x", &x), poisoned(4));
    run_all(&[avgpool2d_forward(g, &tx, &ty, s)]);
    compare(
        "avgpool2d_forward 1..9 same y",
        &read(&ty),
        &[3.0, 4.5, 7.5, 9.0],
        0.0,
    );
}
