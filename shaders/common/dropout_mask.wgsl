// The dropout mask: whether element i is kept at a step, a counter-based hash of (seed, step, salt,
// i) (dropout.wgsl's header says why it is built so). dropout.wgsl and the kernels that apply a
// Dropout layer in passing (maxpool2d.wgsl ends its forward in one, softmax_cross_entropy_dense.wgsl
// takes the one before it) share it, so each keeps element i exactly as the dropout kernels would.
// CPU twin: src/reference/dropout.rs (bit for bit).

// PCG-RXS-M-XS 32 on four words at once; `pcg` is one lane of it, so both hash alike.
fn pcg4(v: vec4<u32>) -> vec4<u32> {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> vec4<u32>(28u)) + 4u)) ^ state) * 277803737u;
    return (word >> vec4<u32>(22u)) ^ word;
}

fn pcg(v: u32) -> u32 {
    return pcg4(vec4<u32>(v)).x;
}

// The key of (seed, salt, step): the same for every element of a dispatch.
fn dropout_key(seed_lo: u32, seed_hi: u32, salt: u32, step: u32) -> u32 {
    return pcg(pcg(pcg(pcg(seed_lo) ^ seed_hi) ^ salt) ^ step);
}

// Uniform in [0, 1) from the hash's top 24 bits, exact in f32.
fn to_unit(h: vec4<u32>) -> vec4<f32> {
    return vec4<f32>(h >> vec4<u32>(8u)) * (1.0 / 16777216.0);
}

// Whether elements i are kept: u >= rate, Keras' `random_uniform >= rate`.
fn dropout_keep4(key: u32, i: vec4<u32>, rate: f32) -> vec4<bool> {
    return to_unit(pcg4(vec4<u32>(key) ^ pcg4(i))) >= vec4<f32>(rate);
}

fn dropout_keep(key: u32, i: u32, rate: f32) -> bool {
    return to_unit(vec4<u32>(pcg(key ^ pcg(i)))).x >= rate;
}
