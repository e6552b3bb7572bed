// Inverted dropout, as Keras: y = x * scale where the element is kept, 0 elsewhere, with
// scale = 1 / (1 - rate) computed on the host in f32. TensorFlow computes `x * scale` and then masks;
// so do we (a select, not a multiply by the mask, so rate -> 1 never makes 0 * inf = NaN).
//
// The keep decision for element i needs no state: it is a counter-based hash of
// (seed, step, salt, i), so the backward pass regenerates the forward's mask instead of storing it,
// and a run is reproducible from its seed. The step is read from the StepState buffer the host rewrites
// before each step's submission, so the forward and backward of one step agree and each step gets a
// fresh mask without rebuilding a dispatch; `salt` tells the model's dropout layers apart.
//
// The hash is PCG-RXS-M-XS 32 (Jarzynski & Olano, "Hash Functions for GPU Rendering", JCGT 2020: one
// LCG step then a random xorshift, a multiply and a xorshift), the best speed/quality trade-off of the
// 32-bit hashes measured there. Each round is a bijection of u32, so no two counters share a value within
// a round. The key absorbs seed (low, high), salt and step one word per round (h = pcg(h ^ word)); the
// element's value is pcg(key ^ pcg(i)), two rounds per element, so masks of different keys are not
// shifted copies of one another.
//
// The uniform value is the hash's top 24 bits times 2^-24: an exact f32 in [0, 1) on every device (24
// bits fit f32's significand, and scaling by a power of two is exact), so the comparison with `rate`
// (an f32 from the same uniform) is exact and the CPU twin (reference::dropout::keep) reproduces every
// decision bit for bit. Kept iff u >= rate, as Keras' `random_uniform >= rate`; P(keep) = 1 - rate to
// within 2^-24.
//
// `dropout` takes one element per invocation; `dropout_vec4` takes four (elements 4i .. 4i + 3, the hash
// evaluated on a vec4, the same function lane by lane) through vec4 views of the same bindings, and is
// used when `len` is a multiple of 4. lavapipe emulates each storage access (including the StepState
// read) one SIMD lane at a time, so four elements per access pays: 1M elements (the notebook's first
// dropout) 10.7 -> 4.2 ms (best of 5, run alternately, load ~2.5 on 2 cores). The hash is a sizeable
// part of what is left (a hash-free variant took 60% of the time), but the masks are the twin's and
// stay as they are.

struct Params {
    len: u32,
    seed_lo: u32,
    seed_hi: u32,
    salt: u32,
    rate: f32,
    scale: f32,
}

//!include common/step_state.wgsl

@group(0) @binding(0) var<uniform> p: Params;
// dropout_forward: x -> y. dropout_backward: dy -> dx (the same computation, the same mask).
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
@group(0) @binding(3) var<storage, read> st: StepState;
// The same bindings four words at a time (len / 4 elements), for dropout_vec4.
@group(0) @binding(1) var<storage, read> input4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> output4: array<vec4<f32>>;

override WG: u32;

// PCG-RXS-M-XS 32 on four words at once; `pcg` is one lane of it, so both entry points hash alike.
fn pcg4(v: vec4<u32>) -> vec4<u32> {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> vec4<u32>(28u)) + 4u)) ^ state) * 277803737u;
    return (word >> vec4<u32>(22u)) ^ word;
}

fn pcg(v: u32) -> u32 {
    return pcg4(vec4<u32>(v)).x;
}

// The key of this (seed, salt, step): the same for every element of a dispatch.
fn key() -> u32 {
    return pcg(pcg(pcg(pcg(p.seed_lo) ^ p.seed_hi) ^ p.salt) ^ st.step);
}

// Uniform in [0, 1) from the hash's top 24 bits, exact in f32.
fn to_unit(h: vec4<u32>) -> vec4<f32> {
    return vec4<f32>(h >> vec4<u32>(8u)) * (1.0 / 16777216.0);
}

@compute @workgroup_size(WG)
fn dropout(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= p.len {
        return;
    }
    let u = to_unit(vec4<u32>(pcg(key() ^ pcg(i)))).x;
    output[i] = select(0.0, input[i] * p.scale, u >= p.rate);
}

@compute @workgroup_size(WG)
fn dropout_vec4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= p.len / 4u {
        return;
    }
    let elements = vec4<u32>(4u * i) + vec4<u32>(0u, 1u, 2u, 3u);
    let u = to_unit(pcg4(vec4<u32>(key()) ^ pcg4(elements)));
    output4[i] = select(vec4<f32>(0.0), input4[i] * p.scale, u >= vec4<f32>(p.rate));
}
