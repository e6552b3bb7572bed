// 2-D max pooling, channels-last, with the argmax its backward pass routes the gradient through.
//   x [N, H, W, C] input, y [N, OH, OW, C] output, argmax [N, OH, OW, C] (u32 flat index into x).
// Output (oy, ox) pools input rows oy*stride_h - pad_top + [0, pool_h) and columns
// ox*stride_w - pad_left + [0, pool_w); cells outside the input ('same' padding) never win. The window
// is scanned row-major and only a strictly greater value wins, so a tie goes to the FIRST maximum, as
// TensorFlow does. CPU twin: src/reference/maxpool2d.rs.
//
// Memory-bound: channels fastest, so neighbouring invocations touch neighbouring words; with c % 4 == 0
// the `_vec4` entry points take four channels per invocation (a software adapter's emulated access
// moving four words costs little more than one). Entry points:
//   maxpool2d_forward              any shape, one output per invocation
//   maxpool2d_forward_vec4         c % 4 == 0, four channels of one output
//   maxpool2d_backward             any shape, a gather, one input per invocation
//   maxpool2d_backward_tiles       stride >= pool (disjoint windows), one output scatters its gradient
//   maxpool2d_backward_tiles_vec4  the same with c % 4 == 0, four channels
// Each backward can also apply the ReLU backward of the layer before (`relu_mask`), saving its pass.
// Each entry point has a `_dropout` twin that also takes in the Dropout layer after the pool
// (Fusion::DropoutAfter): the forward writes y = select(0, max * scale, keep(o)) and the backward
// routes select(0, dy * scale, keep(o)), dropout.wgsl's own select on the same mask of output o, so
// the bits of maxpool then dropout (forward) and dropout then maxpool (backward). They are entry
// points of their own because only they bind the step state; the bodies are shared functions that
// take the mask's key, and `drop` false leaves the plain kernels as they were.
// Timings: docs/PERFORMANCE.md.

//!include common/pool_window.wgsl
//!include common/step_state.wgsl
//!include common/pcg.wgsl
//!include common/dropout_mask.wgsl

struct Params {
    window: PoolWindow,
    // The `_dropout` entry points' mask (zero for the others). Both structs are 16-byte multiples,
    // as a uniform needs of struct members, so the fields need no padding between them.
    mask: MaskParams,
    // Backward: nonzero when x is a ReLU's output, so dx is also zeroed where x <= 0 (that ReLU's
    // backward, fused here; x is bound either way).
    relu_mask: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

override WG: u32;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// The dropout's key at this step, for the `_dropout` entry points (st is their binding).
fn key_of(step: u32) -> u32 {
    return dropout_key(p.mask, step);
}

// Output o's value (or gradient) v after the dropout, when `drop`: dropout.wgsl's select.
fn dropped(v: f32, o: u32, key: u32, drop: bool) -> f32 {
    if drop {
        return dropout_apply(p.mask, key, o, v);
    }
    return v;
}

// The same for outputs 4 * o4 + (0, 1, 2, 3).
fn dropped4(v: vec4<f32>, o4: u32, key: u32, drop: bool) -> vec4<f32> {
    if drop {
        return dropout_apply4(p.mask, key, vec4<u32>(4u * o4) + vec4<u32>(0u, 1u, 2u, 3u), v);
    }
    return v;
}

// ---------------------------------------------------------------------------------------------------
// Forward: one invocation per output element.

@group(0) @binding(1) var<storage, read> fwd_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> fwd_y: array<f32>;
@group(0) @binding(3) var<storage, read_write> fwd_argmax: array<u32>;
// The `_dropout` forwards' step state (after the three tensors of either forward).
@group(0) @binding(4) var<storage, read> fwd_st: StepState;

@compute @workgroup_size(WG)
fn maxpool2d_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    forward(linear_id(gid, nwg), 0u, false);
}

@compute @workgroup_size(WG)
fn maxpool2d_forward_dropout(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    forward(linear_id(gid, nwg), key_of(fwd_st.step), true);
}

fn forward(o: u32, key: u32, drop: bool) {
    let win = p.window;
    if o >= win.n * win.oh * win.ow * win.c {
        return;
    }
    let c = o % win.c;
    let ox = (o / win.c) % win.ow;
    let oy = (o / win.c / win.ow) % win.oh;
    let n = o / win.c / win.ow / win.oh;
    let rows = window_rows(win, oy);
    let cols = window_cols(win, ox);
    var found = false;
    var best = 0.0;
    var best_at = 0u;
    for (var iy = rows.x; iy < rows.y; iy++) {
        for (var ix = cols.x; ix < cols.y; ix++) {
            let at = ((n * win.h + iy) * win.w + ix) * win.c + c;
            let v = fwd_x[at];
            if !found || v > best {
                found = true;
                best = v;
                best_at = at;
            }
        }
    }
    fwd_y[o] = dropped(best, o, key, drop);
    fwd_argmax[o] = best_at;
}

// Four channels of one output per invocation (c % 4 == 0). Padding depends on the cell, not the
// channel, so the window scan is the scalar one; each lane keeps its own best and argmax, replaced
// only by a strictly greater value (first maximum wins), as in maxpool2d_forward.

@group(0) @binding(1) var<storage, read> fwd4_x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> fwd4_y: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> fwd4_argmax: array<vec4<u32>>;

@compute @workgroup_size(WG)
fn maxpool2d_forward_vec4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    forward_vec4(linear_id(gid, nwg), 0u, false);
}

@compute @workgroup_size(WG)
fn maxpool2d_forward_vec4_dropout(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    forward_vec4(linear_id(gid, nwg), key_of(fwd_st.step), true);
}

fn forward_vec4(o: u32, key: u32, drop: bool) {
    let win = p.window;
    let c4 = win.c / 4u;
    if o >= win.n * win.oh * win.ow * c4 {
        return;
    }
    let c = o % c4;
    let ox = (o / c4) % win.ow;
    let oy = (o / c4 / win.ow) % win.oh;
    let n = o / c4 / win.ow / win.oh;
    let rows = window_rows(win, oy);
    let cols = window_cols(win, ox);
    var found = false;
    var best = vec4<f32>(0.0);
    var best_at = vec4<u32>(0u);
    for (var iy = rows.x; iy < rows.y; iy++) {
        for (var ix = cols.x; ix < cols.y; ix++) {
            let at4 = ((n * win.h + iy) * win.w + ix) * c4 + c;
            let v = fwd4_x[at4];
            let at = vec4<u32>(at4 * 4u) + vec4<u32>(0u, 1u, 2u, 3u);
            let take = vec4<bool>(!found) | (v > best);
            best = select(best, v, take);
            best_at = select(best_at, at, take);
            found = true;
        }
    }
    fwd4_y[o] = dropped4(best, o, key, drop);
    fwd4_argmax[o] = best_at;
}

// ---------------------------------------------------------------------------------------------------
// Backward: dx[i] = sum of dy[o] over the outputs o whose argmax is i. A gather, so it needs no atomics
// and is deterministic: each input element visits the windows that contain it (several when
// stride < pool) in increasing output order, and writes its sum, zero if it won no window.

@group(0) @binding(1) var<storage, read> bwd_dy: array<f32>;
@group(0) @binding(2) var<storage, read> bwd_argmax: array<u32>;
@group(0) @binding(3) var<storage, read_write> bwd_dx: array<f32>;
@group(0) @binding(4) var<storage, read> bwd_x: array<f32>;
// The `_dropout` backwards' step state.
@group(0) @binding(5) var<storage, read> bwd_st: StepState;

// dx[i] = d, then the fused ReLU backward: select(0, d, x[i] > 0), as activation.wgsl's ReLU (the same bits).
fn masked(d: f32, i: u32) -> f32 {
    if p.relu_mask != 0u {
        return select(0.0, d, bwd_x[i] > 0.0);
    }
    return d;
}

@compute @workgroup_size(WG)
fn maxpool2d_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    backward(linear_id(gid, nwg), 0u, false);
}

@compute @workgroup_size(WG)
fn maxpool2d_backward_dropout(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    backward(linear_id(gid, nwg), key_of(bwd_st.step), true);
}

fn backward(i: u32, key: u32, drop: bool) {
    let win = p.window;
    if i >= win.n * win.h * win.w * win.c {
        return;
    }
    let c = i % win.c;
    let ix = (i / win.c) % win.w;
    let iy = (i / win.c / win.w) % win.h;
    let n = i / win.c / win.w / win.h;
    let rows = rows_containing(win, iy);
    let cols = cols_containing(win, ix);
    var sum = 0.0;
    for (var oy = rows.x; oy <= rows.y; oy++) {
        for (var ox = cols.x; ox <= cols.y; ox++) {
            let o = ((n * win.oh + u32(oy)) * win.ow + u32(ox)) * win.c + c;
            if bwd_argmax[o] == i {
                sum += dropped(bwd_dy[o], o, key, drop);
            }
        }
    }
    bwd_dx[i] = masked(sum, i);
}

// ---------------------------------------------------------------------------------------------------
// Backward with disjoint windows (stride >= pool on both axes, any padding): every input cell lies in
// at most one window, so the cells can be split among the outputs and each output writes its own:
// dy[o] where the cell is argmax[o], 0 elsewhere. Every element of dx is written exactly once, no
// atomics, no sums, deterministic. Output (oy, ox) owns input rows [start(oy), start(oy + 1)) with
// start(0) = 0 and start(oy) = oy*stride_h - pad_top, the last output's rows running on to h: this
// contains its window's rows (stride >= pool) and also covers the rows no window reaches (h % pool
// in the valid case, the gaps when stride > pool); columns alike. One invocation per output (or per
// four channels of one), reading dy and argmax once instead of once per input, and no window search:
// 177 -> 12 ms on the notebook's shape (table above). start(oy) >= stride - pad_top > 0 for oy >= 1, since pad_top < pool <= stride.

// The input rows (or columns) [lo, hi) that output coordinate `o` of `outs` writes.
fn owned(o: u32, outs: u32, stride: u32, pad: u32, size: u32) -> vec2<u32> {
    var lo = 0u;
    if o > 0u {
        lo = o * stride - pad;
    }
    var hi = size;
    if o + 1u < outs {
        hi = (o + 1u) * stride - pad;
    }
    return vec2<u32>(lo, hi);
}

@compute @workgroup_size(WG)
fn maxpool2d_backward_tiles(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    backward_tiles(linear_id(gid, nwg), 0u, false);
}

@compute @workgroup_size(WG)
fn maxpool2d_backward_tiles_dropout(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    backward_tiles(linear_id(gid, nwg), key_of(bwd_st.step), true);
}

fn backward_tiles(o: u32, key: u32, drop: bool) {
    let win = p.window;
    if o >= win.n * win.oh * win.ow * win.c {
        return;
    }
    let c = o % win.c;
    let ox = (o / win.c) % win.ow;
    let oy = (o / win.c / win.ow) % win.oh;
    let n = o / win.c / win.ow / win.oh;
    let g = dropped(bwd_dy[o], o, key, drop);
    let best_at = bwd_argmax[o];
    let rows = owned(oy, win.oh, win.stride_h, win.pad_top, win.h);
    let cols = owned(ox, win.ow, win.stride_w, win.pad_left, win.w);
    for (var iy = rows.x; iy < rows.y; iy++) {
        for (var ix = cols.x; ix < cols.y; ix++) {
            let at = ((n * win.h + iy) * win.w + ix) * win.c + c;
            bwd_dx[at] = masked(select(0.0, g, at == best_at), at);
        }
    }
}

// The same with four channels per invocation (c % 4 == 0); argmax is compared lane by lane.

@group(0) @binding(1) var<storage, read> bwd4_dy: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bwd4_argmax: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read_write> bwd4_dx: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> bwd4_x: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn maxpool2d_backward_tiles_vec4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    backward_tiles_vec4(linear_id(gid, nwg), 0u, false);
}

@compute @workgroup_size(WG)
fn maxpool2d_backward_tiles_vec4_dropout(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    backward_tiles_vec4(linear_id(gid, nwg), key_of(bwd_st.step), true);
}

fn backward_tiles_vec4(o: u32, key: u32, drop: bool) {
    let win = p.window;
    let c4 = win.c / 4u;
    if o >= win.n * win.oh * win.ow * c4 {
        return;
    }
    let c = o % c4;
    let ox = (o / c4) % win.ow;
    let oy = (o / c4 / win.ow) % win.oh;
    let n = o / c4 / win.ow / win.oh;
    let g = dropped4(bwd4_dy[o], o, key, drop);
    let best_at = bwd4_argmax[o];
    let rows = owned(oy, win.oh, win.stride_h, win.pad_top, win.h);
    let cols = owned(ox, win.ow, win.stride_w, win.pad_left, win.w);
    for (var iy = rows.x; iy < rows.y; iy++) {
        for (var ix = cols.x; ix < cols.y; ix++) {
            let at4 = ((n * win.h + iy) * win.w + ix) * c4 + c;
            let at = vec4<u32>(at4 * 4u) + vec4<u32>(0u, 1u, 2u, 3u);
            var d = select(vec4<f32>(0.0), g, at == best_at);
            if p.relu_mask != 0u {
                d = select(vec4<f32>(0.0), d, bwd4_x[at4] > vec4<f32>(0.0));
            }
            bwd4_dx[at4] = d;
        }
    }
}
