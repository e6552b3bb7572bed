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

// The rows [start, end) of chunk k.
fn chunk_start(k: u32) -> u32 {
    return k * p.rows_per_chunk;
}

fn chunk_end(k: u32) -> u32 {
    return min((k + 1u) * p.rows_per_chunk, p.rows);
}

// The element-wise entry points give each invocation one channel of ROWS_PER_BLOCK rows: the
// per-channel factors are computed once per block, and a software adapter runs fewer invocations.
const ROWS_PER_BLOCK: u32 = 8u;

fn blocks() -> u32 {
    return (p.rows + ROWS_PER_BLOCK - 1u) / ROWS_PER_BLOCK;
}

fn chunks() -> u32 {
    return (p.rows + p.rows_per_chunk - 1u) / p.rows_per_chunk;
}

@compute @workgroup_size(WG)
fn batch_norm_chunk_stats(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= chunks() * p.channels {
        return;
    }
    // Invocation i is channel c of chunk k: neighbouring invocations read neighbouring channels.
    let c = i % p.channels;
    let k = i / p.channels;
    var s = 0.0;
    for (var r = chunk_start(k); r < chunk_end(k); r++) {
        s += x[r * p.channels + c];
    }
    // The chunk's rows are still in cache for the second pass over them.
    let m = s / f32(chunk_end(k) - chunk_start(k));
    var q = 0.0;
    for (var r = chunk_start(k); r < chunk_end(k); r++) {
        let d = x[r * p.channels + c] - m;
        q += d * d;
    }
    chunk_out[i] = vec2(s, q);
}

// One invocation per channel: the batch's mean and variance from the chunks, then the moving update.
@compute @workgroup_size(WG)
fn batch_norm_stats(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = gid.x + gid.y * nwg.x * WG;
    if c >= p.channels {
        return;
    }
    let n = f32(p.rows);
    let count = chunks();
    var s = 0.0;
    for (var k = 0u; k < count; k++) {
        s += chunks_in[k * p.channels + c].x;
    }
    let m = s / n;
    var q = 0.0;
    for (var k = 0u; k < count; k++) {
        let part = chunks_in[k * p.channels + c];
        let nk = f32(chunk_end(k) - chunk_start(k));
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
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= blocks() * p.channels {
        return;
    }
    let c = i % p.channels;
    let start = i / p.channels * ROWS_PER_BLOCK;
    let inv = inverseSqrt(var_[c] + p.epsilon) * gamma[c];
    let shift = beta[c] - mean[c] * inv;
    for (var r = start; r < min(start + ROWS_PER_BLOCK, p.rows); r++) {
        let j = r * p.channels + c;
        y[j] = x[j] * inv + shift;
    }
}

@compute @workgroup_size(WG)
fn batch_norm_chunk_reduce(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= chunks() * p.channels {
        return;
    }
    let c = i % p.channels;
    let k = i / p.channels;
    let m = r_mean[c];
    let inv_std = inverseSqrt(r_var[c] + p.epsilon);
    var sum_dy = 0.0;
    var sum_dy_xhat = 0.0;
    for (var r = chunk_start(k); r < chunk_end(k); r++) {
        let j = r * p.channels + c;
        sum_dy += dy[j];
        sum_dy_xhat += dy[j] * ((x[j] - m) * inv_std);
    }
    reduce_chunk_out[i] = vec2(sum_dy, sum_dy_xhat);
}

// One invocation per channel: dbeta and dgamma from the chunks, in chunk order.
@compute @workgroup_size(WG)
fn batch_norm_reduce(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = gid.x + gid.y * nwg.x * WG;
    if c >= p.channels {
        return;
    }
    var sums = vec2(0.0);
    for (var k = 0u; k < chunks(); k++) {
        sums += chunks_in[k * p.channels + c];
    }
    dbeta_out[c] = sums.x;
    dgamma_out[c] = sums.y;
}

@compute @workgroup_size(WG)
fn batch_norm_dx(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= blocks() * p.channels {
        return;
    }
    let c = i % p.channels;
    let start = i / p.channels * ROWS_PER_BLOCK;
    let n = f32(p.rows);
    let m = r_mean[c];
    let inv_std = inverseSqrt(r_var[c] + p.epsilon);
    let scale = d_gamma[c] * inv_std;
    let mean_dy = dbeta[c] / n;
    let mean_dy_xhat = dgamma[c] / n;
    for (var r = start; r < min(start + ROWS_PER_BLOCK, p.rows); r++) {
        let j = r * p.channels + c;
        let xhat = (x[j] - m) * inv_std;
        dx[j] = scale * (dy[j] - mean_dy - xhat * mean_dy_xhat);
    }
}
