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
@group(0) @binding(4) var<storage, read_write> images4: array<vec4<f32>>;
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

// The same for images of a multiple of 4 bytes, whose records start on a word: one word, four
// pixels, per invocation (`images4` is `images` seen four floats at a time).
@compute @workgroup_size(WG)
fn gather_batch_vec4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    let image_words = p.image_bytes / 4u;
    if i >= p.count * image_words {
        return;
    }
    let sample = i / image_words;
    let e = i % image_words;
    let record = indices[sample];
    if record < p.first_record || record >= p.first_record + p.records {
        return;
    }
    let word = data[(record - p.first_record) * image_words + e];
    images4[i] = vec4<f32>(
        byte_to_unit[word & 0xffu],
        byte_to_unit[(word >> 8u) & 0xffu],
        byte_to_unit[(word >> 16u) & 0xffu],
        byte_to_unit[word >> 24u],
    );
    if e == 0u {
        batch_labels[sample] = labels[record];
    }
}

// ---------------------------------------------------------------------------------------------------
// gather_augmented: the same batch, each training image through a random affine as Keras'
// ImageDataGenerator draws and applies it (rotation, shifts, zoom, horizontal flip, fill_mode
// 'nearest', bilinear interpolation: scipy.ndimage.affine_transform with order=1). CPU twin:
// reference::gather::gather_batch_augmented, bit for bit.
//
// Geometry, as keras/src/legacy/preprocessing/image.py computes it for channels-last images of
// h rows and w columns, in (x, y) = (column, row):
//   source(x, y) = R (Z ((x, y) - o) + t) + o,  R = rotation by theta, Z = diag(zx, zy), t = (tx, ty)
// and the output pixel (row, col) takes the source point of (x, y) = (col, row), or of
// (w - 1 - col, row) when the image is flipped (Keras flips after the affine). Keras' two quirks on
// non-square images are kept: the centre is o = ((h - 1) / 2, (w - 1) / 2), heights' on the column
// axis, and tx, drawn from height_shift_range times h, moves along columns (ty, width times w, along
// rows). Outside the image, each coordinate is clamped (mode 'nearest': the edge pixel repeats).
//
// Arithmetic: integers only, so every device and the twin agree bit for bit (f32 would let drivers
// fuse multiply-adds, and sin/cos differ between devices). Coordinates are Q16 (pixels * 2^16),
// factors Q15; `mul_q15` is floor(a * b / 2^15) exactly within i32 for the bounds below (sides up to
// MAX_AUGMENT_SIDE, zooms below 2). cos and sin come from a host table of ANGLES angles, the
// bilinear weights are Q12, the weighted byte sum is exact in u32 and, rounded to 24 bits, becomes
// the pixel by one f32 multiply by 1 / (255 * 2^16).
//
// Random draws: the dropout masks' hash (common/pcg.wgsl), keyed by (seed, AUGMENT_SALT, step) and
// per image its slot in the batch: pcg(key ^ pcg(slot * 8 + j)) for draw j, its top 16 bits (the
// angle: its top 12, the flip: its top bit).

struct AugmentParams {
    count: u32,
    image_bytes: u32,
    first_record: u32,
    records: u32,
    height: u32,
    width: u32,
    channels: u32,
    // 1 when half of the images are flipped left to right.
    flip: u32,
    seed_lo: u32,
    seed_hi: u32,
    // Zoom factors: zoom_lo + floor(zoom_span * u / 2^16), Q15, u the draw's 16 bits.
    zoom_lo: u32,
    zoom_span: u32,
    // Shifts: uniform in [-shift, shift) pixels, Q16; shift_x along columns (Keras' tx).
    shift_x: u32,
    shift_y: u32,
    // 1 / (255 * 2^16) in f32, from the host.
    unit: f32,
    salt: u32,
}

//!include common/step_state.wgsl
//!include common/pcg.wgsl

const ANGLES: u32 = 4096u;

@group(0) @binding(0) var<uniform> ap: AugmentParams;
@group(0) @binding(6) var<storage, read> rotations: array<vec2<i32>, ANGLES>;
@group(0) @binding(7) var<storage, read> st: StepState;

// floor(a * b / 2^15) without overflow: a = hi * 2^15 + lo with 0 <= lo < 2^15.
fn mul_q15(a: i32, b: i32) -> i32 {
    return (a >> 15u) * b + (((a & 0x7fff) * b) >> 15u);
}

// floor(a * u / 2^16) for a < 2^28, u < 2^16.
fn mul_u16(a: u32, u: u32) -> u32 {
    return (a >> 16u) * u + (((a & 0xffffu) * u) >> 16u);
}

// Byte `e` of record `local` of the bound chunk.
fn byte_at(local: u32, e: u32) -> u32 {
    let byte = local * ap.image_bytes + e;
    return (data[byte / 4u] >> ((byte % 4u) * 8u)) & 0xffu;
}

@compute @workgroup_size(WG)
fn gather_augmented(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= ap.count * ap.image_bytes {
        return;
    }
    let sample = i / ap.image_bytes;
    let e = i % ap.image_bytes;
    let record = indices[sample];
    if record < ap.first_record || record >= ap.first_record + ap.records {
        return;
    }
    let local = record - ap.first_record;
    let c = e % ap.channels;
    let col = (e / ap.channels) % ap.width;
    let row = e / (ap.channels * ap.width);

    // This image's draws.
    let key = counter_key(ap.seed_lo, ap.seed_hi, ap.salt, st.step);
    let base = sample * 8u;
    let r_angle = pcg(key ^ pcg(base));
    let r_tx = pcg(key ^ pcg(base + 1u)) >> 16u;
    let r_ty = pcg(key ^ pcg(base + 2u)) >> 16u;
    let r_zx = pcg(key ^ pcg(base + 3u)) >> 16u;
    let r_zy = pcg(key ^ pcg(base + 4u)) >> 16u;
    let r_flip = pcg(key ^ pcg(base + 5u));
    let rot = rotations[r_angle >> 20u];
    let tx = i32(mul_u16(2u * ap.shift_x, r_tx)) - i32(ap.shift_x);
    let ty = i32(mul_u16(2u * ap.shift_y, r_ty)) - i32(ap.shift_y);
    let zx = i32(ap.zoom_lo + ((ap.zoom_span * r_zx) >> 16u));
    let zy = i32(ap.zoom_lo + ((ap.zoom_span * r_zy) >> 16u));
    let flipped = ap.flip == 1u && r_flip < 0x80000000u;

    // The source point, Q16. (2x - (h - 1)) * 2^15 is (x - o_x) * 2^16, exact.
    let h = i32(ap.height);
    let w = i32(ap.width);
    let x = select(i32(col), w - 1 - i32(col), flipped);
    let sx = mul_q15((2 * x - (h - 1)) << 15u, zx) + tx;
    let sy = mul_q15((2 * i32(row) - (w - 1)) << 15u, zy) + ty;
    let src_x = mul_q15(sx, rot.x) - mul_q15(sy, rot.y) + ((h - 1) << 15u);
    let src_y = mul_q15(sx, rot.y) + mul_q15(sy, rot.x) + ((w - 1) << 15u);

    // Bilinear between the four neighbours, each coordinate clamped into the image.
    let x0 = src_x >> 16u;
    let y0 = src_y >> 16u;
    let fx = u32(src_x & 0xffff) >> 4u;
    let fy = u32(src_y & 0xffff) >> 4u;
    let cx0 = u32(clamp(x0, 0, w - 1));
    let cx1 = u32(clamp(x0 + 1, 0, w - 1));
    let cy0 = u32(clamp(y0, 0, h - 1));
    let cy1 = u32(clamp(y0 + 1, 0, h - 1));
    let stride = ap.width * ap.channels;
    let top = byte_at(local, cy0 * stride + cx0 * ap.channels + c) * (4096u - fx)
        + byte_at(local, cy0 * stride + cx1 * ap.channels + c) * fx;
    let bottom = byte_at(local, cy1 * stride + cx0 * ap.channels + c) * (4096u - fx)
        + byte_at(local, cy1 * stride + cx1 * ap.channels + c) * fx;
    let sum = top * (4096u - fy) + bottom * fy;
    images[i] = f32((sum + 128u) >> 8u) * ap.unit;
    if e == 0u {
        batch_labels[sample] = labels[record];
    }
}
