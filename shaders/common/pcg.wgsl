// The counter-based hash behind the dropout masks (common/dropout_mask.wgsl) and the augmentation's
// random draws (gather.wgsl): PCG-RXS-M-XS 32 of a counter, keyed by a hash of (seed, salt, step), so
// every value depends on those and its index alone, on any device and in the CPU twins
// (src/reference/dropout.rs and src/reference/gather.rs, bit for bit).

// PCG-RXS-M-XS 32 on four words at once; `pcg` is one lane of it, so both hash alike.
fn pcg4(v: vec4<u32>) -> vec4<u32> {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> vec4<u32>(28u)) + 4u)) ^ state) * 277803737u;
    return (word >> vec4<u32>(22u)) ^ word;
}

fn pcg(v: u32) -> u32 {
    return pcg4(vec4<u32>(v)).x;
}

// The key of (seed, salt, step): the same for every element of a dispatch (dropout_mask.wgsl's
// `dropout_key`, and gather.wgsl's augmentation draws).
fn counter_key(seed_lo: u32, seed_hi: u32, salt: u32, step: u32) -> u32 {
    return pcg(pcg(pcg(pcg(seed_lo) ^ seed_hi) ^ salt) ^ step);
}
