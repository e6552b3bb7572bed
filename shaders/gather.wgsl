// Assembles one batch on the GPU: images gathered through an index buffer from the uploaded data set,
// bytes turned into f32 / 255, and their labels.
//
// The /255 goes through a 256-entry table computed on the host, because WGSL lets f32 division be off
// by 2.5 ULP; the table makes our pixels bit-identical to Keras' `x.astype('float32') / 255`.
//
// The data set stays on the GPU as raw bytes (a quarter of its f32 size) packed four to a u32 word.
// Adapters cap one binding (often at 128 MiB, below CIFAR-10's 153.6 MB training set), so the bytes are
// split into chunks of whole records; this kernel is dispatched once per chunk and each invocation
// writes only if its record lies in the bound chunk.

struct Params {
    // Images in the batch.
    count: u32,
    // Bytes per image (H * W * C, channels-last).
    image_bytes: u32,
    // Records [first_record, first_record + records) live in `data`.
    first_record: u32,
    records: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> data: array<u32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read> indices: array<u32>;
@group(0) @binding(4) var<storage, read_write> images: array<f32>;
@group(0) @binding(5) var<storage, read_write> batch_labels: array<u32>;
@group(0) @binding(6) var<storage, read> byte_to_unit: array<f32, 256>;

override WG: u32;

@compute @workgroup_size(WG)
fn gather_batch(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= p.count * p.image_bytes {
        return;
    }
    let sample = i / p.image_bytes;
    let e = i % p.image_bytes;
    let record = indices[sample];
    if record < p.first_record || record >= p.first_record + p.records {
        return;
    }
    let byte = (record - p.first_record) * p.image_bytes + e;
    let word = data[byte / 4u];
    let value = (word >> ((byte % 4u) * 8u)) & 0xffu;
    images[i] = byte_to_unit[value];
    if e == 0u {
        batch_labels[sample] = labels[record];
    }
}
