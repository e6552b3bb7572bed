//! 2-D average pooling, channels-last, forward and backward: `shaders/avgpool2d.wgsl`. With one
//! window the size of the input it is also GlobalAveragePooling2D.
//!
//! x / dx [n, h, w, c], y / dy [n, oh, ow, c].

use crate::gpu::{Cost, Dispatch, Gpu, Tensor, WORD};
use crate::shape::Pool2dShape;

use super::pool_window::PoolWindow;

super::shader!("avgpool2d.wgsl", includes[super::common::POOL_WINDOW]);

pub(super) fn contracts() -> Vec<super::Contract> {
    vec![super::Contract {
        shader: &SHADER,
        structs: vec![PoolWindow::host_struct()],
        consts: vec![],
    }]
}

/// Invocations per workgroup (1-D grids).
const WG: u32 = 64;

/// y = the mean of each window's in-bounds cells of x ('same' padding divides a border window by
/// the cells it covers). One invocation per output element.
/// Cost: one add per window cell; x read once, y written once.
pub fn avgpool2d_forward(gpu: &Gpu, x: &Tensor, y: &Tensor, s: Pool2dShape) -> Dispatch {
    assert_eq!(
        x.len,
        s.input_len(),
        "avgpool2d_forward: x has the wrong size for {s:?}"
    );
    assert_eq!(
        y.len,
        s.output_len(),
        "avgpool2d_forward: y has the wrong size for {s:?}"
    );
    let cost = Cost {
        flops: (s.output_len() * s.pool_h * s.pool_w) as u64,
        bytes: (s.input_len() + s.output_len()) as u64 * WORD,
    };
    gpu.dispatch(
        "avgpool2d_forward",
        &SHADER,
        "avgpool2d_forward",
        &[("WG", WG as f64)],
        &PoolWindow::of(&s, "avgpool2d"),
        &[x, y],
        super::grid(gpu, s.output_len(), WG),
        cost,
    )
}

/// dx[i] = sum of dy[o] / count(o) over the windows o containing input i (zero where none does),
/// count(o) being the cells the forward averaged. A gather, one invocation per input element: no
/// atomics, deterministic.
/// Cost: one divide and add per (input, window) pair; dy read once, dx written once.
pub fn avgpool2d_backward(gpu: &Gpu, dy: &Tensor, dx: &Tensor, s: Pool2dShape) -> Dispatch {
    assert_eq!(
        dy.len,
        s.output_len(),
        "avgpool2d_backward: dy has the wrong size for {s:?}"
    );
    assert_eq!(
        dx.len,
        s.input_len(),
        "avgpool2d_backward: dx has the wrong size for {s:?}"
    );
    // Each input lies in about (pool / stride)^2 windows.
    let per_input = s.pool_h.div_ceil(s.stride_h) * s.pool_w.div_ceil(s.stride_w);
    let cost = Cost {
        flops: (2 * s.input_len() * per_input) as u64,
        bytes: (s.input_len() + s.output_len()) as u64 * WORD,
    };
    gpu.dispatch(
        "avgpool2d_backward",
        &SHADER,
        "avgpool2d_backward",
        &[("WG", WG as f64)],
        &PoolWindow::of(&s, "avgpool2d"),
        &[dy, dx],
        super::grid(gpu, s.input_len(), WG),
        cost,
    )
}
