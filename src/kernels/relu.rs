//! ReLU and its backward, `shaders/relu.wgsl`. CPU twin: `crate::reference::relu`.

use crate::gpu::{Cost, Dispatch, Gpu, Tensor, WORD};

super::shader!("relu.wgsl");

pub(super) fn contracts() -> Vec<super::Contract> {
    vec![super::Contract {
        shader: &SHADER,
        structs: vec![super::host_struct!(Params { len })],
        consts: vec![],
    }]
}

/// Invocations per workgroup: the shader's `WG` override.
const WG: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
}

/// The entry point and invocation count for `n` elements: four per invocation when `n` allows it
/// (twice as fast on lavapipe, docs/PERFORMANCE.md), else one.
fn entry(scalar: &'static str, vec4: &'static str, n: usize) -> (&'static str, usize) {
    if n.is_multiple_of(4) {
        (vec4, n / 4)
    } else {
        (scalar, n)
    }
}

/// y = max(x, 0), elementwise. `x` and `y` have the same length (any shape, flattened).
pub fn relu_forward(gpu: &Gpu, x: &Tensor, y: &Tensor) -> Dispatch {
    assert_eq!(x.len, y.len, "relu_forward: x and y differ in length");
    let n = x.len;
    let (entry, invocations) = entry("relu_forward", "relu_forward_vec4", n);
    gpu.dispatch(
        "relu_forward",
        &SHADER,
        entry,
        &[("WG", WG as f64)],
        &Params { len: n as u32 },
        &[x, y],
        super::grid(gpu, invocations, WG),
        Cost {
            flops: n as u64,
            bytes: 2 * n as u64 * WORD,
        },
    )
}

/// dx = dy where x > 0, else 0 (0 at exactly x = 0, as TensorFlow). `x` is the forward's input.
pub fn relu_backward(gpu: &Gpu, x: &Tensor, dy: &Tensor, dx: &Tensor) -> Dispatch {
    assert_eq!(x.len, dy.len, "relu_backward: x and dy differ in length");
    assert_eq!(x.len, dx.len, "relu_backward: x and dx differ in length");
    let n = x.len;
    let (entry, invocations) = entry("relu_backward", "relu_backward_vec4", n);
    gpu.dispatch(
        "relu_backward",
        &SHADER,
        entry,
        &[("WG", WG as f64)],
        &Params { len: n as u32 },
        &[x, dy, dx],
        super::grid(gpu, invocations, WG),
        Cost {
            flops: n as u64,
            bytes: 3 * n as u64 * WORD,
        },
    )
}
