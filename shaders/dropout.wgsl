// Inverted dropout, as Keras: y = x * scale where the element is kept, 0 elsewhere, with
// scale = 1 / (1 - rate) computed on the host in f32; a select, not a multiply by the mask, so
// rate -> 1 never makes 0 * inf = NaN. CPU twin: src/reference/dropout.rs (bit for bit).
//
// The keep decision for element i is a counter-based hash of (seed, step, salt, i): the backward pass
// regenerates the forward's mask instead of storing it, and a run is reproducible from its seed. The
// step comes from the StepState buffer the host rewrites before each step; `salt` tells layers apart.
// The hash is PCG-RXS-M-XS 32 (Jarzynski & Olano, JCGT 2020), each round a bijection of u32: the key
// absorbs seed (low, high), salt and step one word per round, and element i's value is
// pcg(key ^ pcg(i)). Its top 24 bits times 2^-24 are an exact f32 in [0, 1), so `u >= rate` (Keras'
// `random_uniform >= rate`) decides identically on every device and in the twin. The hash lives in
// common/dropout_mask.wgsl, shared with the kernels that apply a dropout in passing.
//
// `dropout` takes one element per invocation; `dropout_vec4` four, through vec4 views of the same
// bindings, when `len` is a multiple of 4 (software adapters emulate each access lane by lane, so
// moving four words per access pays). Timings: docs/PERFORMANCE.md.

//!include common/step_state.wgsl
//!include common/pcg.wgsl
//!include common/dropout_mask.wgsl

struct Params {
    // First: a struct in a uniform starts on a 16-byte boundary.
    mask: MaskParams,
    len: u32,
    // Backward only: nonzero when the layer's input is a ReLU's output, so dx is also zeroed where
    // x <= 0 (that ReLU's backward, fused here; binding 4 is x, bound either way).
    relu_mask: u32,
    // Forward only: nonzero to apply a ReLU to the input first (the ReLU before the layer, fused here
    // with activation.wgsl's ReLU select, so the bits are the two kernels'; dropout commutes with it).
    relu_input: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// dropout_forward: x -> y. dropout_backward: dy -> dx (the same computation, the same mask).
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
@group(0) @binding(3) var<storage, read> st: StepState;
@group(0) @binding(4) var<storage, read> relu_x: array<f32>;
// The same bindings four words at a time (len / 4 elements), for dropout_vec4.
@group(0) @binding(1) var<storage, read> input4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> output4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> relu_x4: array<vec4<f32>>;

override WG: u32;

@compute @workgroup_size(WG)
fn dropout(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= p.len {
        return;
    }
    var x = input[i];
    if p.relu_input != 0u {
        x = select(x, 0.0, x <= 0.0);
    }
    var v = dropout_apply(p.mask, dropout_key(p.mask, st.step), i, x);
    if p.relu_mask != 0u {
        v = select(0.0, v, relu_x[i] > 0.0);
    }
    output[i] = v;
}

@compute @workgroup_size(WG)
fn dropout_vec4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= p.len / 4u {
        return;
    }
    let elements = vec4<u32>(4u * i) + vec4<u32>(0u, 1u, 2u, 3u);
    var x = input4[i];
    if p.relu_input != 0u {
        x = select(x, vec4<f32>(0.0), x <= vec4<f32>(0.0));
    }
    var v = dropout_apply4(p.mask, dropout_key(p.mask, st.step), elements, x);
    if p.relu_mask != 0u {
        v = select(vec4<f32>(0.0), v, relu_x4[i] > vec4<f32>(0.0));
    }
    output4[i] = v;
}
