//! 2-D max pooling, channels-last, forward and backward: `shaders/maxpool2d.wgsl`.
//!
//! x / dx [n, h, w, c], y / dy / argmax [n, oh, ow, c]; argmax holds u32 flat indices into x.
//! Both can take in the Dropout layer after the pool (a `dropout::Mask` on y's elements).

use crate::gpu::{Cost, Dispatch, Gpu, Tensor, WORD};
use crate::kernels::StepState;
use crate::kernels::dropout::{Mask, MaskParams};
use crate::shape::Pool2dShape;
use bytemuck::Zeroable;

use super::pool_window::PoolWindow;

super::shader!(
    "maxpool2d.wgsl",
    includes[
        super::common::POOL_WINDOW,
        super::common::STEP_STATE,
        super::common::PCG,
        super::common::DROPOUT_MASK
    ]
);

pub(super) fn contracts() -> Vec<super::Contract> {
    vec![super::Contract {
        shader: &SHADER,
        structs: vec![
            super::host_struct!(Params {
                window,
                mask,
                relu_mask
            }),
            PoolWindow::host_struct(),
            MaskParams::host_struct(),
            StepState::host_struct(),
        ],
        consts: vec![],
    }]
}

/// Invocations per workgroup (1-D grids).
const WG: u32 = 64;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    window: PoolWindow,
    /// The `_dropout` entry points' mask (zero for the others).
    mask: MaskParams,
    /// Backward: nonzero to zero dx where x <= 0 (the ReLU backward of the layer before).
    relu_mask: u32,
}

impl Params {
    fn of(s: &Pool2dShape) -> Params {
        Params {
            window: PoolWindow::of(s, "maxpool2d"),
            mask: MaskParams::zeroed(),
            relu_mask: 0,
        }
    }

    /// With the dropout after the pool, if any: its mask, the `_dropout` entry point instead of
    /// `entry`, and the step state to bind after the tensors.
    fn with_dropout<'a>(
        self,
        name: &str,
        entry: &'static str,
        dropout: Option<(&Mask, &'a Tensor)>,
    ) -> (Params, &'static str, Option<&'a Tensor>) {
        let Some((m, step_state)) = dropout else {
            return (self, entry, None);
        };
        let params = Params {
            mask: m.uniform(name, step_state),
            ..self
        };
        let entry = match entry {
            "maxpool2d_forward" => "maxpool2d_forward_dropout",
            "maxpool2d_forward_vec4" => "maxpool2d_forward_vec4_dropout",
            "maxpool2d_backward" => "maxpool2d_backward_dropout",
            "maxpool2d_backward_tiles" => "maxpool2d_backward_tiles_dropout",
            "maxpool2d_backward_tiles_vec4" => "maxpool2d_backward_tiles_vec4_dropout",
            _ => unreachable!("{entry} has no dropout twin"),
        };
        (params, entry, Some(step_state))
    }
}

/// y = max over each window of x, and argmax = the flat index into x of the winner (the first maximum
/// in row-major window order on a tie; padded cells never win). One invocation per output element, or
/// per four channels of one when c is a multiple of 4.
/// With `dropout` (a mask and the step state it reads its step from), y is then the Dropout layer's
/// output: select(0, max * scale, kept), the bits of `dropout::dropout_forward` on the pool's output
/// (the mask of y's element index).
/// Cost: one comparison per window cell; x read once, y and argmax written once.
pub fn maxpool2d_forward(
    gpu: &Gpu,
    x: &Tensor,
    y: &Tensor,
    argmax: &Tensor,
    dropout: Option<(&Mask, &Tensor)>,
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
    // With a dropout, the multiply of each kept output (as `dropout_forward` counts) and the step.
    let dropped = dropout.is_some() as u64;
    let cost = Cost {
        flops: (s.output_len() * s.pool_h * s.pool_w) as u64 + dropped * s.output_len() as u64,
        bytes: ((s.input_len() + 2 * s.output_len()) as u64 + dropped * StepState::WORDS as u64)
            * WORD,
    };
    // Four channels per invocation when c allows it (docs/PERFORMANCE.md).
    let (entry, invocations) = if s.c.is_multiple_of(4) {
        ("maxpool2d_forward_vec4", s.output_len() / 4)
    } else {
        ("maxpool2d_forward", s.output_len())
    };
    let name = "maxpool2d_forward";
    let (params, entry, step_state) = Params::of(&s).with_dropout(name, entry, dropout);
    let mut buffers = vec![x, y, argmax];
    buffers.extend(step_state);
    gpu.dispatch(
        name,
        &SHADER,
        entry,
        &[("WG", WG as f64)],
        &params,
        &buffers,
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
/// With `dropout` (the forward's), dy is the Dropout layer's output gradient: each output's
/// select(0, dy * scale, kept) is routed, the bits of `dropout::dropout_backward` then the pool's.
/// Cost: one add per output; dy and argmax (and x) read once, dx written once.
pub fn maxpool2d_backward(
    gpu: &Gpu,
    dy: &Tensor,
    argmax: &Tensor,
    relu_mask: Option<&Tensor>,
    dropout: Option<(&Mask, &Tensor)>,
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
    let dropped = dropout.is_some() as u64;
    let cost = Cost {
        flops: (1 + dropped) * s.output_len() as u64,
        bytes: ((2 * s.output_len() + (1 + masked) * s.input_len()) as u64
            + dropped * StepState::WORDS as u64)
            * WORD,
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
    let name = "maxpool2d_backward";
    let (params, entry, step_state) = Params {
        relu_mask: masked as u32,
        ..Params::of(&s)
    }
    .with_dropout(name, entry, dropout);
    // Without a mask, dy is bound in its place (a binding cannot be left empty) and never read.
    let mut buffers = vec![dy, argmax, dx, relu_mask.unwrap_or(dy)];
    buffers.extend(step_state);
    gpu.dispatch(
        name,
        &SHADER,
        entry,
        &[("WG", WG as f64)],
        &params,
        &buffers,
        super::grid(gpu, invocations, WG),
        cost,
    )
}
