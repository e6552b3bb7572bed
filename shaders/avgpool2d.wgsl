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

//!include common/pool_window.wgsl

@group(0) @binding(0) var<uniform> p: PoolWindow;

override WG: u32;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
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
    let rows = window_rows(p, oy);
    let cols = window_cols(p, ox);
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

@group(0) @binding(1) var<storage, read> bwd_dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> bwd_dx: array<f32>;

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
    let rows = rows_containing(p, iy);
    let cols = cols_containing(p, ix);
    var sum = 0.0;
    for (var oy = rows.x; oy <= rows.y; oy++) {
        let r = window_rows(p, u32(oy));
        for (var ox = cols.x; ox <= cols.y; ox++) {
            let q = window_cols(p, u32(ox));
            let o = ((n * p.oh + u32(oy)) * p.ow + u32(ox)) * p.c + c;
            sum += bwd_dy[o] / f32((r.y - r.x) * (q.y - q.x));
        }
    }
    bwd_dx[i] = sum;
}
