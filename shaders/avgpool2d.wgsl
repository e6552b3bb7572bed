// 2-D average pooling, channels-last, forward and backward.
//   x / dx [N, H, W, C], y / dy [N, OH, OW, C].
// Output (oy, ox) averages input rows oy*stride_h - pad_top + [0, pool_h) and columns
// ox*stride_w - pad_left + [0, pool_w) that lie inside the input: with 'same' padding a window at the
// border divides by the number of its in-bounds cells, not by pool_h * pool_w, as Keras does (its
// TensorFlow and JAX backends agree; checked against Keras in tests/keras_pooling.rs). The window is
// summed row-major, then divided once. GlobalAveragePooling2D is this kernel with one window the size
// of the input. CPU twin: src/reference/avgpool2d.rs.
//
// Memory-bound and simple: channels fastest, so neighbouring invocations touch neighbouring words.
// Entry points:
//   avgpool2d_forward    one output per invocation
//   avgpool2d_backward   a gather, one input per invocation: no atomics, deterministic

struct Params {
    n: u32,
    h: u32,
    w: u32,
    c: u32,
    pool_h: u32,
    pool_w: u32,
    stride_h: u32,
    stride_w: u32,
    oh: u32,
    ow: u32,
    pad_top: u32,
    pad_left: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

override WG: u32;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// The in-bounds input range [lo, hi) of the window of output coordinate `o` along one axis.
fn window(o: u32, stride: u32, pad: u32, pool: u32, size: u32) -> vec2<u32> {
    let start = i32(o * stride) - i32(pad);
    let lo = u32(max(start, 0));
    let hi = u32(min(start + i32(pool), i32(size)));
    return vec2<u32>(lo, hi);
}

// ---------------------------------------------------------------------------------------------------
// Forward: one invocation per output element.

@group(0) @binding(1) var<storage, read> fwd_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> fwd_y: array<f32>;

@compute @workgroup_size(WG)
fn avgpool2d_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = linear_id(gid, nwg);
    if o >= p.n * p.oh * p.ow * p.c {
        return;
    }
    let c = o % p.c;
    let ox = (o / p.c) % p.ow;
    let oy = (o / p.c / p.ow) % p.oh;
    let n = o / p.c / p.ow / p.oh;
    let rows = window(oy, p.stride_h, p.pad_top, p.pool_h, p.h);
    let cols = window(ox, p.stride_w, p.pad_left, p.pool_w, p.w);
    var sum = 0.0;
    for (var iy = rows.x; iy < rows.y; iy++) {
        for (var ix = cols.x; ix < cols.y; ix++) {
            sum += fwd_x[((n * p.h + iy) * p.w + ix) * p.c + c];
        }
    }
    fwd_y[o] = sum / f32((rows.y - rows.x) * (cols.y - cols.x));
}

// ---------------------------------------------------------------------------------------------------
// Backward: dx[i] = sum of dy[o] / count(o) over the windows o that contain input i, visited in
// increasing output order; zero for a cell no window reaches ('valid' padding whose windows do not
// tile the input, or strides larger than the pool).
// Input row iy lies in window rows oy with oy*stride_h - pad_top <= iy <= oy*stride_h - pad_top + pool_h - 1,
// i.e. ceil((iy + pad_top + 1 - pool_h) / stride_h) <= oy <= floor((iy + pad_top) / stride_h); columns alike.

@group(0) @binding(1) var<storage, read> bwd_dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> bwd_dx: array<f32>;

// The outputs [first, last] along one axis whose windows contain input coordinate `i`; empty when first > last.
fn windows_containing(i: u32, pad: u32, pool: u32, stride: u32, outs: u32) -> vec2<i32> {
    let lo = i32(i + pad + 1u) - i32(pool);
    var first = 0;
    if lo > 0 {
        first = (lo + i32(stride) - 1) / i32(stride);
    }
    let last = min(i32((i + pad) / stride), i32(outs) - 1);
    return vec2<i32>(first, last);
}

@compute @workgroup_size(WG)
fn avgpool2d_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= p.n * p.h * p.w * p.c {
        return;
    }
    let c = i % p.c;
    let ix = (i / p.c) % p.w;
    let iy = (i / p.c / p.w) % p.h;
    let n = i / p.c / p.w / p.h;
    let rows = windows_containing(iy, p.pad_top, p.pool_h, p.stride_h, p.oh);
    let cols = windows_containing(ix, p.pad_left, p.pool_w, p.stride_w, p.ow);
    var sum = 0.0;
    for (var oy = rows.x; oy <= rows.y; oy++) {
        let r = window(u32(oy), p.stride_h, p.pad_top, p.pool_h, p.h);
        for (var ox = cols.x; ox <= cols.y; ox++) {
            let q = window(u32(ox), p.stride_w, p.pad_left, p.pool_w, p.w);
            let o = ((n * p.oh + u32(oy)) * p.ow + u32(ox)) * p.c + c;
            sum += bwd_dy[o] / f32((r.y - r.x) * (q.y - q.x));
        }
    }
    bwd_dx[i] = sum;
}
