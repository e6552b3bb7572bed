// 2-D max pooling, channels-last, with the argmax its backward pass routes the gradient through.
//
//   x       [N, H, W, C]    input
//   y       [N, OH, OW, C]  output
//   argmax  [N, OH, OW, C]  u32: flat index into x of each output's winner
//
// Output (oy, ox) pools input rows oy*stride_h - pad_top + [0, pool_h) and columns
// ox*stride_w - pad_left + [0, pool_w); cells outside the input ('same' padding) never win. The window
// is scanned in row-major order and only a strictly greater value replaces the best so far, so a tie
// goes to the FIRST maximum, as TensorFlow and PyTorch do.
//
// CPU twin: src/reference/maxpool2d.rs. Both kernels are memory-bound: one invocation per element,
// channels fastest so that neighbouring invocations touch neighbouring words.

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

override WG: u32 = 64u;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// ---------------------------------------------------------------------------------------------------
// Forward: one invocation per output element.

@group(0) @binding(1) var<storage, read> fwd_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> fwd_y: array<f32>;
@group(0) @binding(3) var<storage, read_write> fwd_argmax: array<u32>;

@compute @workgroup_size(WG)
fn maxpool2d_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = linear_id(gid, nwg);
    if o >= p.n * p.oh * p.ow * p.c {
        return;
    }
    let c = o % p.c;
    let ox = (o / p.c) % p.ow;
    let oy = (o / p.c / p.ow) % p.oh;
    let n = o / p.c / p.ow / p.oh;
    let y0 = i32(oy * p.stride_h) - i32(p.pad_top);
    let x0 = i32(ox * p.stride_w) - i32(p.pad_left);
    var found = false;
    var best = 0.0;
    var best_at = 0u;
    for (var r = 0u; r < p.pool_h; r++) {
        let iy = y0 + i32(r);
        if iy < 0 || iy >= i32(p.h) {
            continue;
        }
        for (var q = 0u; q < p.pool_w; q++) {
            let ix = x0 + i32(q);
            if ix < 0 || ix >= i32(p.w) {
                continue;
            }
            let at = ((n * p.h + u32(iy)) * p.w + u32(ix)) * p.c + c;
            let v = fwd_x[at];
            if !found || v > best {
                found = true;
                best = v;
                best_at = at;
            }
        }
    }
    fwd_y[o] = best;
    fwd_argmax[o] = best_at;
}

// ---------------------------------------------------------------------------------------------------
// Backward: dx[i] = sum of dy[o] over the outputs o whose argmax is i. A gather, so it needs no atomics
// and is deterministic: each input element visits the windows that contain it (several when
// stride < pool) in increasing output order, and writes its sum, zero if it won no window.
// Input row iy lies in window rows oy with oy*stride_h - pad_top <= iy <= oy*stride_h - pad_top + pool_h - 1,
// i.e. ceil((iy + pad_top + 1 - pool_h) / stride_h) <= oy <= floor((iy + pad_top) / stride_h); columns alike.

@group(0) @binding(1) var<storage, read> bwd_dy: array<f32>;
@group(0) @binding(2) var<storage, read> bwd_argmax: array<u32>;
@group(0) @binding(3) var<storage, read_write> bwd_dx: array<f32>;

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
fn maxpool2d_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
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
        for (var ox = cols.x; ox <= cols.y; ox++) {
            let o = ((n * p.oh + u32(oy)) * p.ow + u32(ox)) * p.c + c;
            if bwd_argmax[o] == i {
                sum += bwd_dy[o];
            }
        }
    }
    bwd_dx[i] = sum;
}
