//! 2-D max pooling, channels-last, forward and backward: `shaders/maxpool2d.wgsl`.
//!
//! x / dx [n, h, w, c], y / dy / argmax [n, oh, ow, c]; argmax holds u32 flat indices into x.

use crate::gpu::{Cost, Dispatch, Gpu, Tensor, WORD};
use crate::shape::Pool2dShape;

super::shader!("maxpool2d.wgsl");

pub(super) fn contracts() -> Vec<super::Contract> {
    vec![super::Contract {
        shader: &SHADER,
        structs: vec![super::host_struct!(Params {
            n,
            h,
            w,
            c,
            pool_h,
            pool_w,
            stride_h,
            stride_w,
            oh,
            ow,
            pad_top,
            pad_left,
            relu_mask
        })],
        consts: vec![],
    }]
}

/// Invocations per workgroup (1-D grids).
const WG: u32 = 64;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    h: u32,
    w: u32,
    c: u32,
    pool_h: u32,
    pool_w: u32,
    stride_h: u32,
    stride_w: u32,
    oh: u32,
    ow: u32,
    pad_top: u32,
    pad_left: u32,
    /// Backward: nonzero to zero dx where x <= 0 (the ReLU backward of the layer before).
    relu_mask: u32,
}

impl Params {
    fn of(s: &Pool2dShape) -> Params {
        assert!(
            s.pool_h >= 1 && s.pool_w >= 1 && s.stride_h >= 1 && s.stride_w >= 1,
            "maxpool2d: empty window or zero stride in {s:?}"
        );
        assert!(
            s.padding == crate::shape::Padding::Same || (s.pool_h <= s.h && s.pool_w <= s.w),
            "maxpool2d: window larger than the input in {s:?}"
        );
        assert!(
            s.input_len() <= u32::MAX as usize,
            "maxpool2d: argmax indices overflow u32"
        );
        Params {
            n: s.n as u32,
            h: s.h as u32,
            w: s.w as u32,
            c: s.c as u32,
            pool_h: s.pool_h as u32,
            pool_w: s.pool_w as u32,
            stride_h: s.stride_h as u32,
            stride_w: s.stride_w as u32,
            oh: s.out_h() as u32,
            ow: s.out_w() as u32,
            pad_top: s.pad_top() as u32,
            pad_left: s.pad_left() as u32,
            relu_mask: 0,
        }
    }
}

/// y = max over each window of x, and argmax = the flat index into x of the winner (the first maximum
/// in row-major window order on a tie; padded cells never win). One invocation per output element, or
/// per four channels of one when c is a multiple of 4.
/// Cost: one comparison per window cell; x read once, y and argmax written once.
pub fn maxpool2d_forward(
    gpu: &Gpu,
    x: &Tensor,
    y: &Tensor,
    argmax: &Tensor,
    s: Pool2dShape,
) -> Dispatch {
    assert_eq!(
        x.len,
        s.input_len(),
        "maxpool2d_forward: x has the wrong size for {s:?}"
    );
    assert_eq!(
        y.len,
        s.output_len(),
        "maxpool2d_forward: y has the wrong size for {s:?}"
    );
    assert_eq!(
        argmax.len,
        s.output_len(),
        "maxpool2d_forward: argmax has the wrong size for {s:?}"
    );
    let cost = Cost {
        flops: (s.output_len() * s.pool_h * s.pool_w) as u64,
        bytes: (s.input_len() + 2 * s.output_len()) as u64 * WORD,
    };
    // Four channels per invocation when c allows it (docs/PERFORMANCE.md).
    let (entry, invocations) = if s.c.is_multiple_of(4) {
        ("maxpool2d_forward_vec4", s.output_len() / 4)
    } else {
        ("maxpool2d_forward", s.output_len())
    };
    gpu.dispatch(
        "maxpool2d_forward",
        &SHADER,
        entry,
        &[("WG", WG as f64)],
        &Params::of(&s),
        &[x, y, argmax],
        super::grid(gpu, invocations, WG),
        cost,
    )
}

/// dx[i] = sum of dy[o] over the outputs o whose argmax is i. Every element of dx is written (zero where
/// no window chose it), with no atomics and deterministically. Disjoint windows (stride >= pool on both
/// axes): one invocation per output (or four channels of one) writes the input cells it owns.
/// Overlapping windows (stride < pool): a gather, one invocation per input element visits the windows
/// that contain it.
/// With `relu_mask` (the layer's input x, a ReLU's output), dx is then zeroed where x <= 0: that
/// ReLU's backward, fused (an exact select, the bits of `relu::relu_backward`).
/// Cost: one add per output; dy and argmax (and x) read once, dx written once.
pub fn maxpool2d_backward(
    gpu: &Gpu,
    dy: &Tensor,
    argmax: &Tensor,
    relu_mask: Option<&Tensor>,
    dx: &Tensor,
    s: Pool2dShape,
) -> Dispatch {
    assert_eq!(
        dy.len,
        s.output_len(),
        "maxpool2d_backward: dy has the wrong size for {s:?}"
    );
    assert_eq!(
        argmax.len,
        s.output_len(),
        "maxpool2d_backward: argmax has the wrong size for {s:?}"
    );
    assert_eq!(
        dx.len,
        s.input_len(),
        "maxpool2d_backward: dx has the wrong size for {s:?}"
    );
    if let Some(x) = relu_mask {
        assert_eq!(
            x.len,
            s.input_len(),
            "maxpool2d_backward: the mask has the wrong size for {s:?}"
        );
    }
    let masked = relu_mask.is_some() as usize;
    let cost = Cost {
        flops: s.output_len() as u64,
        bytes: (2 * s.output_len() + (1 + masked) * s.input_len()) as u64 * WORD,
    };
    // Disjoint windows (the notebook's 2x2, stride 2): one invocation per output writes the input
    // cells it owns, four channels at a time when c allows it, much faster than the gather
    // (docs/PERFORMANCE.md). Overlapping windows need the gather, one invocation per input.
    let disjoint = s.stride_h >= s.pool_h && s.stride_w >= s.pool_w;
    let (entry, invocations) = match (disjoint, s.c.is_multiple_of(4)) {
        (true, true) => ("maxpool2d_backward_tiles_vec4", s.output_len() / 4),
        (true, false) => ("maxpool2d_backward_tiles", s.output_len()),
        (false, _) => ("maxpool2d_backward", s.input_len()),
    };
    gpu.dispatch(
        "maxpool2d_backward",
        &SHADER,
        entry,
        &[("WG", WG as f64)],
        &Params {
            relu_mask: masked as u32,
            ..Params::of(&s)
        },
        // Without a mask, dy is bound in its place (a binding cannot be left empty) and never read.
        &[dy, argmax, dx, relu_mask.unwrap_or(dy)],
        super::grid(gpu, invocations, WG),
        cost,
    )
}
