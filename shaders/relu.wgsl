// ReLU and its backward, elementwise over a flat tensor of `len` f32 values. CPU twin:
// src/reference/relu.rs.
//   forward   y  = max(x, 0)
//   backward  dx = dy where x > 0, else 0
// The gradient at exactly x = 0 is 0, as TensorFlow's ReluGrad (`gradients * (features > 0)`). A NaN
// input stays NaN in the forward pass (`x <= 0` is false for NaN), so a diverging model is not silently
// cleaned up; its gradient is 0.
//
// `relu_forward` / `relu_backward` take one element per invocation; the `_vec4` entry points four,
// through vec4 views of the same bindings, when `len` is a multiple of 4 (a software adapter emulates
// each access lane by lane, so moving four words per access pays). The 1-D grid may spill into y
// (kernels::grid), so the index is rebuilt from both. Timings: docs/PERFORMANCE.md.

struct Params {
    len: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// Both entry points read x at binding 1; binding 2 is y (written) in relu_forward and dy (read) in
// relu_backward. Each entry point's layout holds only the variables it uses, so the two share a slot.
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

@compute @workgroup_size(WG)
fn relu_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i < p.len {
        let v = x[i];
        y[i] = select(v, 0.0, v <= 0.0);
    }
}

@compute @workgroup_size(WG)
fn relu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i < p.len {
        dx[i] = select(0.0, dy[i], x[i] > 0.0);
    }
}

@compute @workgroup_size(WG)
fn relu_forward_vec4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i < p.len / 4u {
        let v = x4[i];
        y4[i] = select(v, vec4<f32>(0.0), v <= vec4<f32>(0.0));
    }
}

@compute @workgroup_size(WG)
fn relu_backward_vec4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i < p.len / 4u {
        dx4[i] = select(vec4<f32>(0.0), dy4[i], x4[i] > vec4<f32>(0.0));
    }
}
