// BatchNormalization over the last axis, as Keras 3 computes it. x is [rows, channels] row-major:
// channels-last images are [batch * h * w, c], flat inputs [batch, n]. CPU twin:
// src/reference/batch_norm.rs.
//
// Training (`batch_norm_chunk_stats` and `batch_norm_stats`, then `batch_norm_normalize` on the
// batch's statistics): each channel's mean and biased variance over the rows (jnp.mean, jnp.var);
// the last pass then moves the moving statistics, moving = moving * momentum + batch_stat *
// (1 - momentum), once per training step: `updated[c]` remembers the step it last did so (step + 1,
// so a fresh zero buffer means "never"), so replaying a step's program (profiling) does not move
// them twice.
// Evaluation: `batch_norm_normalize` on the moving statistics.
// y = x * inv + (beta - mean * inv), inv = gamma / sqrt(var + epsilon): Keras' own order of operations.
//
// Backward (the batch's statistics, N = rows): `batch_norm_chunk_reduce` and `batch_norm_reduce`
// write dbeta = sum(dy) and dgamma = sum(dy * xhat), xhat = (x - mean) / sqrt(var + epsilon);
// `batch_norm_dx` then
// dx = gamma / sqrt(var + epsilon) * (dy - dbeta / N - xhat * dgamma / N).
//
// The per-channel reductions read x (and dy) coalesced, in two dispatches each: one invocation per
// (chunk of `rows_per_chunk` rows, channel), neighbouring invocations on neighbouring channels,
// writes its chunk's partial sums as a vec2 to the op's scratch ([chunks, channels]); then one
// invocation per channel adds its chunks in chunk order. Every sum is in a fixed order, so the
// results are deterministic and independent of timing. The statistics' chunks hold (sum of x, sum
// of squared deviations from the chunk's own mean), which the last pass combines exactly (Chan et
// al.): var = (sum_k q_k + sum_k n_k (m_k - mean)^2) / N, as accurate as Keras' mean-then-variance
// passes.
// Each entry point binds only what it uses (bindings are numbered per entry point).

struct Params {
    rows: u32,
    channels: u32,
    momentum: f32,
    // 1 - momentum, computed on the host in f64 and rounded once, as Keras' Python float is.
    one_minus_momentum: f32,
    epsilon: f32,
    rows_per_chunk: u32,
    _pad0: u32,
    _pad1: u32,
}

//!include common/step_state.wgsl

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;

// batch_norm_chunk_stats: (sum of x, sum of (x - chunk mean)^2) per (chunk, channel)
@group(0) @binding(2) var<storage, read_write> chunk_out: array<vec2<f32>>;

// batch_norm_stats and batch_norm_reduce: the chunks' partial sums
@group(0) @binding(1) var<storage, read> chunks_in: array<vec2<f32>>;

// batch_norm_stats
@group(0) @binding(2) var<storage, read_write> batch_mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> batch_var: array<f32>;
@group(0) @binding(4) var<storage, read_write> moving_mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> moving_var: array<f32>;
@group(0) @binding(6) var<storage, read_write> updated: array<u32>;
@group(0) @binding(7) var<storage, read> st: StepState;

// batch_norm_normalize (mean and var: the batch's or the moving statistics)
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> mean: array<f32>;
@group(0) @binding(4) var<storage, read> var_: array<f32>;
@group(0) @binding(5) var<storage, read> gamma: array<f32>;
@group(0) @binding(6) var<storage, read> beta: array<f32>;

// batch_norm_chunk_reduce: (sum of dy, sum of dy * xhat) per (chunk, channel)
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read> r_mean: array<f32>;
@group(0) @binding(4) var<storage, read> r_var: array<f32>;
@group(0) @binding(5) var<storage, read_write> reduce_chunk_out: array<vec2<f32>>;

// batch_norm_reduce (chunks_in as above)
@group(0) @binding(2) var<storage, read_write> dgamma_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> dbeta_out: array<f32>;

// batch_norm_dx (x, dy, r_mean, r_var as above)
@group(0) @binding(5) var<storage, read> d_gamma: array<f32>;
@group(0) @binding(6) var<storage, read> dgamma: array<f32>;
@group(0) @binding(7) var<storage, read> dbeta: array<f32>;
@group(0) @binding(8) var<storage, read_write> dx: array<f32>;

override WG: u32;

// The element-wise entry points give each invocation one channel of ROWS_PER_BLOCK rows: the
// per-channel factors are computed once per block, and a software adapter runs fewer invocations.
const ROWS_PER_BLOCK: u32 = 8u;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// The passes over rows cut the rows into parts of `size` rows: chunks (`p.rows_per_chunk`) for the
// reductions, blocks (ROWS_PER_BLOCK) for the element-wise passes. Invocation i takes channel
// i % channels of part i / channels, so neighbouring invocations read neighbouring channels.
fn parts(size: u32) -> u32 {
    return (p.rows + size - 1u) / size;
}

// The rows [start, end) of part k.
fn part_rows(k: u32, size: u32) -> vec2<u32> {
    let start = k * size;
    return vec2(start, min(start + size, p.rows));
}

fn chunks() -> u32 {
    return parts(p.rows_per_chunk);
}

fn chunk_rows(k: u32) -> vec2<u32> {
    return part_rows(k, p.rows_per_chunk);
}

fn blocks() -> u32 {
    return parts(ROWS_PER_BLOCK);
}

fn block_rows(k: u32) -> vec2<u32> {
    return part_rows(k, ROWS_PER_BLOCK);
}

// The index of (row r, channel c) in a [rows, channels] tensor.
fn at(r: u32, c: u32) -> u32 {
    return r * p.channels + c;
}

// Channel c's partial sums of the chunks, added in chunk order.
fn chunk_sums(c: u32) -> vec2<f32> {
    var sums = vec2(0.0);
    for (var k = 0u; k < chunks(); k++) {
        sums += chunks_in[at(k, c)];
    }
    return sums;
}

// 1 / sqrt(var + epsilon).
fn inv_std(v: f32) -> f32 {
    return inverseSqrt(v + p.epsilon);
}

// The backward's statistics of channel c: (mean, 1 / sqrt(var + epsilon)).
fn r_stats(c: u32) -> vec2<f32> {
    return vec2(r_mean[c], inv_std(r_var[c]));
}

// (x - mean) / sqrt(var + epsilon), from `r_stats`.
fn xhat(xv: f32, stats: vec2<f32>) -> f32 {
    return (xv - stats.x) * stats.y;
}

@compute @workgroup_size(WG)
fn batch_norm_chunk_stats(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= chunks() * p.channels {
        return;
    }
    let c = i % p.channels;
    let rows = chunk_rows(i / p.channels);
    var s = 0.0;
    for (var r = rows.x; r < rows.y; r++) {
        s += x[at(r, c)];
    }
    // The chunk's rows are still in cache for the second pass over them.
    let m = s / f32(rows.y - rows.x);
    var q = 0.0;
    for (var r = rows.x; r < rows.y; r++) {
        let d = x[at(r, c)] - m;
        q += d * d;
    }
    chunk_out[i] = vec2(s, q);
}

// One invocation per channel: the batch's mean and variance from the chunks, then the moving update.
@compute @workgroup_size(WG)
fn batch_norm_stats(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = linear_id(gid, nwg);
    if c >= p.channels {
        return;
    }
    let n = f32(p.rows);
    // The chunks' sums of squares are added below, each with its chunk's correction.
    let m = chunk_sums(c).x / n;
    var q = 0.0;
    for (var k = 0u; k < chunks(); k++) {
        let part = chunks_in[at(k, c)];
        let rows = chunk_rows(k);
        let nk = f32(rows.y - rows.x);
        let d = part.x / nk - m;
        q += part.y + nk * d * d;
    }
    let v = q / n;
    batch_mean[c] = m;
    batch_var[c] = v;
    if updated[c] != st.step + 1u {
        moving_mean[c] = moving_mean[c] * p.momentum + m * p.one_minus_momentum;
        moving_var[c] = moving_var[c] * p.momentum + v * p.one_minus_momentum;
        updated[c] = st.step + 1u;
    }
}

@compute @workgroup_size(WG)
fn batch_norm_normalize(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= blocks() * p.channels {
        return;
    }
    let c = i % p.channels;
    let inv = inv_std(var_[c]) * gamma[c];
    let shift = beta[c] - mean[c] * inv;
    let rows = block_rows(i / p.channels);
    for (var r = rows.x; r < rows.y; r++) {
        let j = at(r, c);
        y[j] = x[j] * inv + shift;
    }
}

@compute @workgroup_size(WG)
fn batch_norm_chunk_reduce(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= chunks() * p.channels {
        return;
    }
    let c = i % p.channels;
    let stats = r_stats(c);
    let rows = chunk_rows(i / p.channels);
    var sums = vec2(0.0);
    for (var r = rows.x; r < rows.y; r++) {
        let g = dy[at(r, c)];
        sums += vec2(g, g * xhat(x[at(r, c)], stats));
    }
    reduce_chunk_out[i] = sums;
}

// One invocation per channel: dbeta and dgamma from the chunks, in chunk order.
@compute @workgroup_size(WG)
fn batch_norm_reduce(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = linear_id(gid, nwg);
    if c >= p.channels {
        return;
    }
    let sums = chunk_sums(c);
    dbeta_out[c] = sums.x;
    dgamma_out[c] = sums.y;
}

@compute @workgroup_size(WG)
fn batch_norm_dx(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if i >= blocks() * p.channels {
        return;
    }
    let c = i % p.channels;
    let n = f32(p.rows);
    let stats = r_stats(c);
    let scale = d_gamma[c] * stats.y;
    let mean_dy = dbeta[c] / n;
    let mean_dy_xhat = dgamma[c] / n;
    let rows = block_rows(i / p.channels);
    for (var r = rows.x; r < rows.y; r++) {
        let j = at(r, c);
        dx[j] = scale * (dy[j] - mean_dy - xhat(x[j], stats) * mean_dy_xhat);
    }
}
