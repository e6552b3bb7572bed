//! Elementwise activations (ReLU, sigmoid, tanh, ELU, leaky ReLU) and their backward,
//! `shaders/activation.wgsl`. CPU twin: `crate::reference::activation`.

use crate::gpu::{Cost, Dispatch, Gpu, Tensor, WORD};
use crate::shape::ActivationFn;

super::shader!("activation.wgsl");

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

/// What a function is called in dispatch names (the profiler's table), its number in the shader
/// (`FUNCTION`), its parameter (`ALPHA`) and FLOPs per element forward and backward (an exp counted
/// as one).
struct Function {
    forward: &'static str,
    backward: &'static str,
    number: u32,
    alpha: f32,
    flops: (u64, u64),
}

fn function(f: ActivationFn) -> Function {
    let (forward, backward, number, alpha, flops) = match f {
        ActivationFn::Relu => ("relu_forward", "relu_backward", 0, 0.0, (1, 1)),
        ActivationFn::Sigmoid => ("sigmoid_forward", "sigmoid_backward", 1, 0.0, (3, 6)),
        ActivationFn::Tanh => ("tanh_forward", "tanh_backward", 2, 0.0, (4, 7)),
        ActivationFn::Elu { alpha } => ("elu_forward", "elu_backward", 3, alpha, (3, 3)),
        ActivationFn::LeakyRelu { slope } => (
            "leaky_relu_forward",
            "leaky_relu_backward",
            4,
            slope,
            (2, 2),
        ),
    };
    Function {
        forward,
        backward,
        number,
        alpha,
        flops,
    }
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

/// y = f(x), elementwise. `x` and `y` have the same length (any shape, flattened).
pub fn activation_forward(gpu: &Gpu, f: ActivationFn, x: &Tensor, y: &Tensor) -> Dispatch {
    assert_eq!(x.len, y.len, "activation_forward: x and y differ in length");
    let n = x.len;
    let fun = function(f);
    let (entry, invocations) = entry("activation_forward", "activation_forward_vec4", n);
    gpu.dispatch(
        fun.forward,
        &SHADER,
        entry,
        &[
            ("WG", WG as f64),
            ("FUNCTION", fun.number as f64),
            ("ALPHA", fun.alpha as f64),
        ],
        &Params { len: n as u32 },
        &[x, y],
        super::grid(gpu, invocations, WG),
        Cost {
            flops: fun.flops.0 * n as u64,
            bytes: 2 * n as u64 * WORD,
        },
    )
}

/// dx = f'(x) dy, elementwise, from the forward's input `x` (TensorFlow's gradients at exactly
/// x = 0: 0 for ReLU, alpha * dy for ELU, slope * dy for leaky ReLU: the left limits).
pub fn activation_backward(
    gpu: &Gpu,
    f: ActivationFn,
    x: &Tensor,
    dy: &Tensor,
    dx: &Tensor,
) -> Dispatch {
    assert_eq!(
        x.len, dy.len,
        "activation_backward: x and dy differ in length"
    );
    assert_eq!(
        x.len, dx.len,
        "activation_backward: x and dx differ in length"
    );
    let n = x.len;
    let fun = function(f);
    let (entry, invocations) = entry("activation_backward", "activation_backward_vec4", n);
    gpu.dispatch(
        fun.backward,
        &SHADER,
        entry,
        &[
            ("WG", WG as f64),
            ("FUNCTION", fun.number as f64),
            ("ALPHA", fun.alpha as f64),
        ],
        &Params { len: n as u32 },
        &[x, dy, dx],
        super::grid(gpu, invocations, WG),
        Cost {
            flops: fun.flops.1 * n as u64,
            bytes: 3 * n as u64 * WORD,
        },
    )
}
