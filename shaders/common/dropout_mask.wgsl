// The dropout mask: whether element i is kept at a step, a counter-based hash of (seed, step, salt,
// i) (dropout.wgsl's header says why it is built so). dropout.wgsl and the kernels that apply a
// Dropout layer in passing (maxpool2d.wgsl ends its forward in one, softmax_cross_entropy_dense.wgsl
// takes the one before it) share it, so each keeps element i exactly as the dropout kernels would.
// Its includers include common/pcg.wgsl too. CPU twin: src/reference/dropout.rs (bit for bit).

// A Dropout layer's mask as each of those kernels takes it in its parameters (`kernels::dropout::
// MaskParams` in Rust): the run's seed (low and high words), the layer's salt, its rate and
// scale = 1 / (1 - rate), computed on the host in f32. The three pads make it 32 bytes, a multiple of
// 16, so a uniform struct can hold it at any 16-byte boundary with its next field right after it.
struct MaskParams {
    seed_lo: u32,
    seed_hi: u32,
    salt: u32,
    rate: f32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// The key of (seed, salt, step) (common/pcg.wgsl): the same for every element of a dispatch.
fn dropout_key(m: MaskParams, step: u32) -> u32 {
    return counter_key(m.seed_lo, m.seed_hi, m.salt, step);
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

// Inverted dropout of element i's value v: v * scale where kept, else 0 (dropout.wgsl's select).
fn dropout_apply(m: MaskParams, key: u32, i: u32, v: f32) -> f32 {
    return select(0.0, v * m.scale, dropout_keep(key, i, m.rate));
}

// The same for elements i of values v.
fn dropout_apply4(m: MaskParams, key: u32, i: vec4<u32>, v: vec4<f32>) -> vec4<f32> {
    return select(vec4<f32>(0.0), v * m.scale, dropout_keep4(key, i, m.rate));
}
