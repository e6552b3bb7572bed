use cifar_wgpu::gpu::Tensor;
use cifar_wgpu::kernels::StepState;
use cifar_wgpu::kernels::dropout::{Mask, dropout_backward, dropout_forward};
use cifar_wgpu::kernels::maxpool2d::{maxpool2d_backward, maxpool2d_forward};
use cifar_wgpu::reference;
use cifar_wgpu::shape::{Padding, Pool2dShape};

use crate::common::*;
use crate::pooling::{ODD_IMAGES, each_shape, label, pool};

/// Forward (y and argmax) and backward, plain and with the fused ReLU mask, on the GPU against the
/// CPU twins, for input `x` (GlobalMaxPooling2D's test too).
pub fn check_with(s: Pool2dShape, x: &[f32], seed: u64) {
    let g = gpu();
    let dy = random(s.output_len(), seed, -1.0, 1.0);
    let (tx, tdy) = (g.upload("x", x), g.upload("dy", &dy));
    let ty = poisoned(s.output_len());
    let targmax = poisoned(s.output_len());
    let tdx = poisoned(s.input_len());
    let tdx_masked = poisoned(s.input_len());
    // x doubles as the ReLU mask of the fused backward (the tests' inputs are of both signs).
    let ds = [
        maxpool2d_forward(g, &tx, &ty, &targmax, None, s),
        maxpool2d_backward(g, &tdy, &targmax, None, None, &tdx, s),
        maxpool2d_backward(g, &tdy, &targmax, Some(&tx), None, &tdx_masked, s),
    ];
    run_all(&ds);
    let (want_y, want_argmax) = reference::maxpool2d::maxpool2d_forward(&to_f64(x), s);
    let want_dx = reference::maxpool2d::maxpool2d_backward(&to_f64(&dy), &want_argmax, s);
    let want_dx_masked =
        reference::maxpool2d::maxpool2d_backward_masked(&to_f64(&dy), &want_argmax, &to_f64(x), s);
    let name = label(s);
    compare(
        &format!("maxpool2d_forward {name} y"),
        &read(&ty),
        &want_y,
        0.0,
    );
    compare_exact(
        &format!("maxpool2d_forward {name} argmax"),
        &g.read_u32(&targmax).unwrap(),
        &want_argmax,
    );
    // Disjoint windows: each dx element is one dy value or 0, so the tiles kernels must be exact.
    let disjoint = s.stride_h >= s.pool_h && s.stride_w >= s.pool_w;
    compare(
        &format!("maxpool2d_backward {name} dx"),
        &read(&tdx),
        &want_dx,
        if disjoint { 0.0 } else { F32_TOL },
    );
    compare(
        &format!("maxpool2d_backward masked {name} dx"),
        &read(&tdx_masked),
        &want_dx_masked,
        if disjoint { 0.0 } else { F32_TOL },
    );
}

fn check(s: Pool2dShape, seed: u64) {
    check_with(s, &random(s.input_len(), seed, -1.0, 1.0), seed + 1);
}

#[test]
fn maxpool2d_general_sizes_strides_and_paddings() {
    let windows = [
        ((2, 2), (2, 2)),
        ((3, 3), (2, 2)),
        ((3, 2), (1, 2)),
        ((1, 1), (1, 1)),
        ((2, 3), (3, 2)),
    ];
    each_shape(&windows, &ODD_IMAGES, 0, check);
}

/// The fast paths: `_vec4` entry points (c % 4 == 0) for the forward and the disjoint-window backward,
/// and the scalar disjoint-window backward (c % 4 != 0), on strides equal to and larger than the pool
/// (gaps no window reaches), odd sizes that leave rows and columns uncovered, 'same' padding, batch 1,
/// and overlapping windows with c % 4 == 0 (vec4 forward, gather backward).
#[test]
fn maxpool2d_vec4_channels_and_disjoint_windows() {
    let windows = [
        ((2, 2), (2, 2)),
        ((3, 3), (3, 3)),
        ((2, 2), (3, 3)),
        ((2, 3), (3, 4)),
        ((1, 1), (2, 3)),
        ((3, 3), (2, 2)),
        ((2, 2), (1, 2)),
    ];
    let images = [(1, 7, 9, 4), (2, 5, 6, 8), (1, 9, 7, 3), (3, 4, 5, 12)];
    each_shape(&windows, &images, 1000, check);
    // One window covering the whole input, and a 1x1 input in 'same' padding.
    check(pool(2, 3, 3, 4, (3, 3), (3, 3), Padding::Valid), 1900);
    check(pool(1, 1, 1, 8, (2, 2), (2, 2), Padding::Same), 1910);
}

#[test]
fn maxpool2d_overlapping_windows_pool_3_stride_2() {
    // Interior cells belong to up to four windows; the backward must sum them all.
    check(pool(2, 9, 11, 5, (3, 3), (2, 2), Padding::Valid), 500);
    check(pool(2, 9, 11, 5, (3, 3), (2, 2), Padding::Same), 510);
    // Stride 1: nine windows per cell, and the same cell often wins several of them.
    check(pool(1, 6, 7, 4, (3, 3), (1, 1), Padding::Same), 520);
}

#[test]
fn maxpool2d_notebook_layer_at_batch_2() {
    // 2x2 pooling of the first conv layer's 32x32x32 output.
    check(Pool2dShape::new(2, 32, 32, 32, 2), 600);
}

#[test]
fn maxpool2d_ties_go_to_the_first_maximum() {
    // Values from a set of four, so most windows hold ties; rows of an all-equal image; and an
    // overlapping case, where one cell can be the first maximum of one window and not of another.
    let quantised = |n: usize, seed: u64| -> Vec<f32> {
        random(n, seed, 0.0, 4.0)
            .iter()
            .map(|v| v.floor())
            .collect()
    };
    for (i, s) in [
        Pool2dShape::new(2, 8, 8, 3, 2),
        pool(1, 7, 9, 2, (3, 3), (2, 2), Padding::Same),
        pool(1, 6, 6, 5, (3, 3), (1, 1), Padding::Valid),
        // The vec4 entry points: each lane keeps its own first maximum.
        Pool2dShape::new(2, 7, 8, 8, 2),
        pool(1, 7, 9, 4, (3, 3), (2, 2), Padding::Same),
    ]
    .into_iter()
    .enumerate()
    {
        check_with(
            s,
            &quantised(s.input_len(), 700 + 30 * i as u64),
            710 + 30 * i as u64,
        );
        check_with(s, &vec![1.5; s.input_len()], 720 + 30 * i as u64);
    }
    // An explicit window: 1 5 / 5 2 -> the 5 at flat index 1.
    let s = Pool2dShape::new(1, 2, 2, 1, 2);
    let g = gpu();
    let (tx, ty, targmax) = (
        g.upload("x", &[1.0f32, 5.0, 5.0, 2.0]),
        poisoned(1),
        poisoned(1),
    );
    run_all(&[maxpool2d_forward(g, &tx, &ty, &targmax, None, s)]);
    compare_exact(
        "maxpool2d_forward 1 5 / 5 2 argmax",
        &g.read_u32(&targmax).unwrap(),
        &[1],
    );
    // The same window in four channels (vec4 path), each with its tie in a different place.
    let s = Pool2dShape::new(1, 2, 2, 4, 2);
    #[rustfmt::skip]
    let x = [
        1.0f32, 5.0, 5.0, 5.0,
        5.0, 5.0, 1.0, 5.0,
        5.0, 2.0, 5.0, 5.0,
        2.0, 1.0, 2.0, 5.0,
    ];
    let (tx, ty, targmax) = (g.upload("x", &x), poisoned(4), poisoned(4));
    run_all(&[maxpool2d_forward(g, &tx, &ty, &targmax, None, s)]);
    compare_exact(
        "maxpool2d_forward 4 channels argmax",
        &g.read_u32(&targmax).unwrap(),
        &[4, 1, 2, 3],
    );
}

/// The Dropout layer after the pool, taken in (`_dropout` entry points): the fused forward and
/// backward (plain and ReLU-masked) equal the unfused kernels (maxpool then dropout, dropout then
/// maxpool) bit for bit, and the twins' composition within tolerance.
fn check_dropout(s: Pool2dShape, seed: u64, step: u32, salt: u32, rate: f32) {
    let g = gpu();
    let run_seed = 0xD80B_0000_0000_0001 ^ seed;
    let x = random(s.input_len(), seed, -1.0, 1.0);
    let dy = random(s.output_len(), seed + 1, -1.0, 1.0);
    let (tx, tdy) = (g.upload("x", &x), g.upload("dy", &dy));
    let st = g.upload(
        "step_state",
        &StepState {
            step,
            ..StepState::default()
        }
        .words(),
    );
    let mask = Mask {
        seed: run_seed,
        salt,
        rate,
    };
    let fused = Some((&mask, &st));
    let [y, argmax, dx, dx_masked] =
        [s.output_len(), s.output_len(), s.input_len(), s.input_len()].map(poisoned);
    // The unfused chain: pool, dropout; dropout's backward, pool's backward.
    let [y0, y0_dropped, argmax0, dy0, dx0, dx0_masked] = [
        s.output_len(),
        s.output_len(),
        s.output_len(),
        s.output_len(),
        s.input_len(),
        s.input_len(),
    ]
    .map(poisoned);
    run_all(&[
        maxpool2d_forward(g, &tx, &y, &argmax, fused, s),
        maxpool2d_backward(g, &tdy, &argmax, None, fused, &dx, s),
        maxpool2d_backward(g, &tdy, &argmax, Some(&tx), fused, &dx_masked, s),
        maxpool2d_forward(g, &tx, &y0, &argmax0, None, s),
        dropout_forward(g, &y0, &y0_dropped, &st, run_seed, salt, rate),
        dropout_backward(g, &tdy, None, &dy0, &st, run_seed, salt, rate),
        maxpool2d_backward(g, &dy0, &argmax0, None, None, &dx0, s),
        maxpool2d_backward(g, &dy0, &argmax0, Some(&tx), None, &dx0_masked, s),
    ]);
    let name = format!("{} rate {rate}", label(s));
    let bits = |t: &Tensor| g.read_u32(t).unwrap();
    compare_exact(
        &format!("{name} y = unfused"),
        &bits(&y),
        &bits(&y0_dropped),
    );
    compare_exact(&format!("{name} argmax"), &bits(&argmax), &bits(&argmax0));
    compare_exact(&format!("{name} dx = unfused"), &bits(&dx), &bits(&dx0));
    compare_exact(
        &format!("{name} masked dx = unfused"),
        &bits(&dx_masked),
        &bits(&dx0_masked),
    );
    let twin_mask = reference::dropout::MaskAt {
        seed: run_seed,
        step,
        salt,
        rate,
    };
    let x64 = to_f64(&x);
    let (want_y, want_argmax) =
        reference::maxpool2d::maxpool2d_forward_dropout(&x64, s, &twin_mask);
    compare_exact(
        &format!("{name} argmax = twin"),
        &bits(&argmax),
        &want_argmax,
    );
    compare(&format!("{name} y = twin"), &read(&y), &want_y, F32_TOL);
    for (relu_x, t, what) in [(None, &dx, "dx"), (Some(&x64[..]), &dx_masked, "masked dx")] {
        let want = reference::maxpool2d::maxpool2d_backward_dropout(
            &to_f64(&dy),
            &want_argmax,
            relu_x,
            s,
            &twin_mask,
        );
        compare(&format!("{name} {what} = twin"), &read(t), &want, F32_TOL);
    }
    let dropped = read(&y).iter().filter(|&&v| v == 0.0).count();
    assert!(
        dropped > 0 && dropped < s.output_len(),
        "{name}: {dropped} of {} outputs dropped: the mask was not applied",
        s.output_len()
    );
}

#[test]
fn maxpool2d_with_the_dropout_after_it_equals_the_two_kernels() {
    // Every entry point's `_dropout` twin: vec4 and scalar forwards, disjoint windows (tiles, vec4
    // and scalar) and overlapping ones (the gather), odd sizes, 'same' padding, and the notebook's
    // 2x2 pool on 32 channels.
    for (i, s) in [
        pool(3, 7, 9, 4, (2, 2), (2, 2), Padding::Valid),
        pool(2, 5, 7, 3, (2, 2), (2, 2), Padding::Same),
        pool(1, 9, 7, 5, (3, 3), (2, 2), Padding::Valid),
        pool(2, 6, 5, 8, (3, 2), (1, 2), Padding::Same),
        pool(1, 7, 7, 3, (2, 3), (3, 4), Padding::Valid),
        Pool2dShape::new(3, 8, 8, 32, 2),
    ]
    .into_iter()
    .enumerate()
    {
        let rate = [0.3, 0.25, 0.5][i % 3];
        check_dropout(s, 9000 + 10 * i as u64, 17 + i as u32, 1 + i as u32, rate);
    }
}
