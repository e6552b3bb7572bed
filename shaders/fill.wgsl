// Sets every element of a buffer to one value: zeroing accumulators, and poisoning outputs with NaN in
// tests so that an element a kernel forgets to write cannot pass unnoticed.

struct Params {
    len: u32,
    value: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if i < p.len {
        out[i] = p.value;
    }
}
