// Elementwise activations and their backward, over a flat tensor of `len` f32 values. CPU twin:
// src/reference/activation.rs. FUNCTION (an override, so each pipeline holds one function and the
// compiler folds the choice away) selects:
//   0 relu        y = max(x, 0)                      dx = dy where x > 0, else 0
//   1 sigmoid     y = 1 / (1 + exp(-x))              dx = dy * y * (1 - y)
//   2 tanh        y = tanh(x)                        dx = dy * (1 - y * y)
//   3 elu         y = x > 0 ? x : ALPHA (exp(x) - 1) dx = x > 0 ? dy : dy * ALPHA exp(x)
//   4 leaky_relu  y = x > 0 ? x : ALPHA x            dx = x > 0 ? dy : dy * ALPHA
// The backward takes the forward's input x and recomputes what it needs, so no op keeps its output
// for its backward. Gradients at exactly x = 0 are TensorFlow's (ReluGrad 0, ELU ALPHA dy,
// LeakyReluGrad ALPHA dy). ReLU is a pure select: a NaN input stays NaN in the forward (`x <= 0` is
// false for NaN), so a diverging model is not silently cleaned up; its gradient is 0. Conv2D fuses
// these same selects (shaders/conv2d.wgsl), bit for bit.
//
// `activation_forward` / `activation_backward` take one element per invocation; the `_vec4` entry
// points four, through vec4 views of the same bindings, when `len` is a multiple of 4 (a software
// adapter emulates each access lane by lane, so moving four words per access pays). The 1-D grid may
// spill into y (kernels::grid), so the index is rebuilt from both. Timings: docs/PERFORMANCE.md.

struct Params {
    len: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// Both entry points read x at binding 1; binding 2 is y (written) in the forward and dy (read) in
// the backward. Each entry point's layout holds only the variables it uses, so the two share a slot.
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
// The same bindings four words at a time (len / 4 elements), for the _vec4 entry points.
@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> dy4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> dx4: array<vec4<f32>>;

override WG: u32;
// The function (numbered as above) and its parameter (elu's alpha, leaky_relu's slope; unused by
// the others), set from Rust (`kernels::activation`).
override FUNCTION: u32;
override ALPHA: f32;

fn sigmoid(v: vec4<f32>) -> vec4<f32> {
    // exp(-v) overflows to infinity below -88, and 1 / (1 + inf) is the 0 the limit wants.
    return 1.0 / (1.0 + exp(-v));
}

// tanh from exp rather than the built-in, whose accuracy varies by platform (Mesa's loses the
// relative precision near 0): the clamp keeps exp(2v) finite (beyond |v| = 15 tanh rounds to ±1 in
// f32), and below |v| = 1/8, where 1 - 2 / (e + 1) would cancel, its Taylor series to v^7 is exact
// to f32 precision.
fn tanh_(v: vec4<f32>) -> vec4<f32> {
    let c = clamp(v, vec4<f32>(-15.0), vec4<f32>(15.0));
    let t = 1.0 - 2.0 / (exp(2.0 * c) + 1.0);
    let v2 = v * v;
    let series = v * (1.0 + v2 * (-1.0 / 3.0 + v2 * (2.0 / 15.0 + v2 * (-17.0 / 315.0))));
    return select(t, series, abs(v) < vec4<f32>(0.125));
}

// The forward of FUNCTION, four lanes at a time (the scalar entry points use lane x).
fn forward(v: vec4<f32>) -> vec4<f32> {
    let negative = v <= vec4<f32>(0.0);
    if FUNCTION == 0u {
        return select(v, vec4<f32>(0.0), negative);
    } else if FUNCTION == 1u {
        return sigmoid(v);
    } else if FUNCTION == 2u {
        return tanh_(v);
    } else if FUNCTION == 3u {
        return select(v, ALPHA * (exp(v) - 1.0), negative);
    }
    return select(v, ALPHA * v, negative);
}

// dx from the forward's input v and dy.
fn backward(v: vec4<f32>, g: vec4<f32>) -> vec4<f32> {
    let positive = v > vec4<f32>(0.0);
    if FUNCTION == 0u {
        return select(vec4<f32>(0.0), g, positive);
    } else if FUNCTION == 1u {
        let s = sigmoid(v);
        return g * s * (1.0 - s);
    } else if FUNCTION == 2u {
        let t = tanh_(v);
        return g * (1.0 - t * t);
    } else if FUNCTION == 3u {
        return select(g * ALPHA * exp(v), g, positive);
    }
    return select(g * ALPHA, g, positive);
}

@compute @workgroup_size(WG)
fn activation_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i < p.len {
        y[i] = forward(vec4<f32>(x[i])).x;
    }
}

@compute @workgroup_size(WG)
fn activation_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i < p.len {
        dx[i] = backward(vec4<f32>(x[i]), vec4<f32>(dy[i])).x;
    }
}

@compute @workgroup_size(WG)
fn activation_forward_vec4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i < p.len / 4u {
        y4[i] = forward(x4[i]);
    }
}

@compute @workgroup_size(WG)
fn activation_backward_vec4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i < p.len / 4u {
        dx4[i] = backward(x4[i], dy4[i]);
    }
}
