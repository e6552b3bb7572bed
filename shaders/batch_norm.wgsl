// BatchNormalization over the last axis, as Keras 3 computes it. x is [rows, channels] row-major:
// channels-last images are [batch * h * w, c], flat inputs [batch, n]. CPU twin:
// src/reference/batch_norm.rs.
//
// Training (`batch_norm_stats`, then `batch_norm_normalize` on the batch's statistics): each channel's
// mean and biased variance over the rows (jnp.mean, jnp.var), in two passes (the mean, then the mean
// of squared deviations, which stays accurate when the mean is large); the same workgroup then moves
// the moving statistics, moving = moving * momentum + batch_stat * (1 - momentum), once per training
// step: `updated[c]` remembers the step it last did so (step + 1, so a fresh zero buffer means
// "never"), so replaying a step's program (profiling) does not move them twice.
// Evaluation: `batch_norm_normalize` on the moving statistics.
// y = x * inv + (beta - mean * inv), inv = gamma / sqrt(var + epsilon): Keras' own order of operations.
//
// Backward (the batch's statistics, N = rows): `batch_norm_reduce` writes dbeta = sum(dy) and
// dgamma = sum(dy * xhat), xhat = (x - mean) / sqrt(var + epsilon); `batch_norm_dx` then
// dx = gamma / sqrt(var + epsilon) * (dy - dbeta / N - xhat * dgamma / N).
//
// The reductions give each channel one workgroup of LANES invocations that sum every LANES-th row and
// add their sums in a fixed tree through workgroup memory: deterministic, and on a software adapter
// the whole reduction is one dispatch per pass. Element-wise entry points take one element per
// invocation. Each entry point binds only what it uses (bindings are numbered per entry point).

struct Params {
    rows: u32,
    channels: u32,
    momentum: f32,
    // 1 - momentum, computed on the host in f64 and rounded once, as Keras' Python float is.
    one_minus_momentum: f32,
    epsilon: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

//!include common/step_state.wgsl

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;

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

// batch_norm_reduce
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read> r_mean: array<f32>;
@group(0) @binding(4) var<storage, read> r_var: array<f32>;
@group(0) @binding(5) var<storage, read_write> dgamma_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> dbeta_out: array<f32>;

// batch_norm_dx (x, dy, r_mean, r_var as above)
@group(0) @binding(5) var<storage, read> d_gamma: array<f32>;
@group(0) @binding(6) var<storage, read> dgamma: array<f32>;
@group(0) @binding(7) var<storage, read> dbeta: array<f32>;
@group(0) @binding(8) var<storage, read_write> dx: array<f32>;

override WG: u32;

const LANES: u32 = 64u;
var<workgroup> lane_sums: array<f32, LANES>;
var<workgroup> lane_sums2: array<f32, LANES>;

// Adds the LANES partial sums of `lane_sums` (and `lane_sums2`) in a fixed tree; every invocation of
// the workgroup calls it (uniform control flow) and reads the totals from element 0 afterwards.
fn reduce_lanes(lane: u32) {
    workgroupBarrier();
    for (var width = LANES / 2u; width > 0u; width /= 2u) {
        if lane < width {
            lane_sums[lane] += lane_sums[lane + width];
            lane_sums2[lane] += lane_sums2[lane + width];
        }
        workgroupBarrier();
    }
}

// One workgroup per channel (the grid spills into y). The channel is workgroup-uniform, so the early
// return keeps the barriers in uniform control flow.
@compute @workgroup_size(LANES)
fn batch_norm_stats(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let c = wg.x + wg.y * nwg.x;
    if c >= p.channels {
        return;
    }
    let n = f32(p.rows);
    var s = 0.0;
    for (var r = lane; r < p.rows; r += LANES) {
        s += x[r * p.channels + c];
    }
    lane_sums[lane] = s;
    lane_sums2[lane] = 0.0;
    reduce_lanes(lane);
    let m = lane_sums[0] / n;
    workgroupBarrier();
    var s2 = 0.0;
    for (var r = lane; r < p.rows; r += LANES) {
        let d = x[r * p.channels + c] - m;
        s2 += d * d;
    }
    lane_sums[lane] = 0.0;
    lane_sums2[lane] = s2;
    reduce_lanes(lane);
    if lane == 0u {
        let v = lane_sums2[0] / n;
        batch_mean[c] = m;
        batch_var[c] = v;
        if updated[c] != st.step + 1u {
            moving_mean[c] = moving_mean[c] * p.momentum + m * p.one_minus_momentum;
            moving_var[c] = moving_var[c] * p.momentum + v * p.one_minus_momentum;
            updated[c] = st.step + 1u;
        }
    }
}

@compute @workgroup_size(WG)
fn batch_norm_normalize(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= p.rows * p.channels {
        return;
    }
    let c = i % p.channels;
    let inv = inverseSqrt(var_[c] + p.epsilon) * gamma[c];
    y[i] = x[i] * inv + (beta[c] - mean[c] * inv);
}

@compute @workgroup_size(LANES)
fn batch_norm_reduce(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let c = wg.x + wg.y * nwg.x;
    if c >= p.channels {
        return;
    }
    let m = r_mean[c];
    let inv_std = inverseSqrt(r_var[c] + p.epsilon);
    var sum_dy = 0.0;
    var sum_dy_xhat = 0.0;
    for (var r = lane; r < p.rows; r += LANES) {
        let i = r * p.channels + c;
        sum_dy += dy[i];
        sum_dy_xhat += dy[i] * ((x[i] - m) * inv_std);
    }
    lane_sums[lane] = sum_dy;
    lane_sums2[lane] = sum_dy_xhat;
    reduce_lanes(lane);
    if lane == 0u {
        dbeta_out[c] = lane_sums[0];
        dgamma_out[c] = lane_sums2[0];
    }
}

@compute @workgroup_size(WG)
fn batch_norm_dx(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if i >= p.rows * p.channels {
        return;
    }
    let c = i % p.channels;
    let n = f32(p.rows);
    let inv_std = inverseSqrt(r_var[c] + p.epsilon);
    let xhat = (x[i] - r_mean[c]) * inv_std;
    dx[i] = d_gamma[c] * inv_std * (dy[i] - dbeta[c] / n - xhat * dgamma[c] / n);
}
