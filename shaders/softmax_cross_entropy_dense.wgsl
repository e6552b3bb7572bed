// The model's last Dense layer fused with softmax-cross-entropy, for layers of at most WG units (the
// notebook's 512 -> 10). A product that narrow fills few tiles of the GEMM kernels, yet took five
// dispatches with the loss (forward, loss, dW, db, dx); here it takes two. CPU twin:
// src/reference/softmax_cross_entropy.rs (dense_loss_forward, dense_loss_backward).
//
// dense_loss_forward[_dx]: workgroup g takes rows g*R .. g*R+R-1 (R = rows_per_group = WG / units);
//   invocation (row r, unit n) computes z = sum_k x[r,k] w[k,n] (k in order, then + b[n], as
//   matmul.wgsl's kernels), then the row's softmax-cross-entropy with softmax_cross_entropy.wgsl's
//   formulas: logits, dlogits = (softmax - onehot) / batch, and the row's loss and flags into
//   `rows` (no atomics across workgroups: `dense_loss_backward` or `dense_loss_metrics` adds them
//   up). `_dx` then also writes dx = dlogits w^T for its rows (n in order), the layer's input
//   gradient, while the row's dlogits are in workgroup memory.
// dense_loss_backward: dW = x^T dlogits and db = column sums of dlogits as one product
//   [x | 1]^T dlogits over the rows in order, 4 x 4 outputs per invocation (row K of the extended
//   product is db). Workgroup 0 then adds the rows' loss sum, correct count and flags into
//   `metrics` in a fixed order (so the sums have the same bits on every run).
// dense_loss_metrics: that last part alone, for evaluation, which has no backward.
//
// The layer can take in the Dropout layer before it, with the ReLU that Dropout took in
// (Fusion::DropoutBefore): x is then the ReLU's input, and both products load it as the dropout
// kernel would have written it, relu_input's select then dropout.wgsl's select(0, x * scale, keep)
// on the mask of x's element index (common/dropout_mask.wgsl); `_dx` masks and scales its dx
// alike and zeroes it where x <= 0 (relu_mask), the dropout's and the ReLU's backward, so every bit
// is the unfused kernels'. When evaluating only the ReLU applies (`dropout` 0).
//
// Each entry point binds its tensors from binding 1 in the order the Rust wrapper passes them
// (kernels::softmax_cross_entropy::dense); variables that share a binding belong to different entry
// points.

struct Params {
    batch: u32,
    inp: u32,
    units: u32,
    rows_per_group: u32,
    // dense_loss_forward[_dx]: where b starts in `wb`, after w (the layer's kernel and bias, bound
    // as one range to stay within WebGPU's 8 storage buffers per stage).
    b_at: u32,
    // The ReLU and Dropout before the layer, taken in: apply the ReLU to x, apply the dropout's
    // mask and scale to x and dx, zero dx where x <= 0. All 0 when not taken.
    relu_input: u32,
    dropout: u32,
    relu_mask: u32,
    // At byte 32: a struct in a uniform starts on a 16-byte boundary.
    mask: MaskParams,
}

//!include common/step_state.wgsl
//!include common/pcg.wgsl
//!include common/dropout_mask.wgsl
//!include common/metrics.wgsl

@group(0) @binding(0) var<uniform> p: Params;
// dense_loss_forward[_dx].
@group(0) @binding(1) var<storage, read> x: array<f32>;
// w [inp, units] from 0, b [units] from p.b_at.
@group(0) @binding(2) var<storage, read> wb: array<f32>;
@group(0) @binding(3) var<storage, read> labels: array<u32>;
@group(0) @binding(4) var<storage, read_write> logits: array<f32>;
@group(0) @binding(5) var<storage, read_write> dlogits: array<f32>;
// Per row: the loss's bits, then (argmax == label) | (row is bad) << 1.
@group(0) @binding(6) var<storage, read_write> rows: array<u32>;
@group(0) @binding(7) var<storage, read> fwd_st: StepState;
@group(0) @binding(8) var<storage, read_write> dx: array<f32>;
// dense_loss_backward: x at binding 1, then these.
@group(0) @binding(2) var<storage, read> dl: array<f32>;
@group(0) @binding(3) var<storage, read> rows_in: array<u32>;
@group(0) @binding(4) var<storage, read_write> dw: array<f32>;
@group(0) @binding(5) var<storage, read_write> db: array<f32>;
@group(0) @binding(6) var<storage, read_write> metrics: Metrics;
@group(0) @binding(7) var<storage, read> st: StepState;
// dense_loss_metrics: the same three, from binding 1.
@group(0) @binding(1) var<storage, read> rows_only: array<u32>;
@group(0) @binding(2) var<storage, read_write> metrics_only: Metrics;
@group(0) @binding(3) var<storage, read> st_only: StepState;

// Invocations per workgroup of every entry point, and the most units the fused layer may have.
const WG: u32 = 64u;

var<workgroup> wg_z: array<f32, WG>;
var<workgroup> wg_d: array<f32, WG>;

fn non_finite(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) == 0x7f800000u;
}

// The dropout's key at `step` (used only when p.dropout != 0).
fn key_of(step: u32) -> u32 {
    return dropout_key(p.mask, step);
}

// x[i] as the layer takes it: through the ReLU and the dropout before it when they were taken in,
// with their kernels' selects (the bits of the tensor the dropout kernel would have written).
fn load_x(i: u32, key: u32) -> f32 {
    var v = x[i];
    if p.relu_input != 0u {
        v = select(v, 0.0, v <= 0.0);
    }
    if p.dropout != 0u {
        v = dropout_apply(p.mask, key, i, v);
    }
    return v;
}

// The first row of workgroup `wg` (a 1-D grid spilled into y, see kernels::grid).
fn first_row(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return (wg.x + wg.y * nwg.x) * p.rows_per_group;
}

// Logits, softmax-cross-entropy and dlogits of the workgroup's rows; leaves each invocation's
// dlogit in wg_d (0 for idle invocations).
fn logits_and_loss(row0: u32, lid: u32) {
    let n = p.units;
    let key = key_of(fwd_st.step);
    let r = lid / n;
    let col = lid % n;
    let row = row0 + r;
    let live = r < p.rows_per_group && row < p.batch;
    var z = 0.0;
    if live {
        var acc = 0.0;
        // The plain product in a loop of its own: a uniform branch per step of k cost the plain
        // kernel about 15% on lavapipe (docs/PERFORMANCE.md).
        if p.relu_input == 0u && p.dropout == 0u {
            for (var k = 0u; k < p.inp; k++) {
                acc += x[row * p.inp + k] * wb[k * n + col];
            }
        } else {
            for (var k = 0u; k < p.inp; k++) {
                acc += load_x(row * p.inp + k, key) * wb[k * n + col];
            }
        }
        z = acc + wb[p.b_at + col];
        logits[row * n + col] = z;
    }
    wg_z[lid] = z;
    workgroupBarrier();
    var d = 0.0;
    if live {
        // The row's max and first argmax, sum of exponentials and loss, as softmax_cross_entropy.wgsl.
        let base = r * n;
        var m = wg_z[base];
        var arg = 0u;
        var row_bad = non_finite(m);
        for (var c = 1u; c < n; c++) {
            let v = wg_z[base + c];
            row_bad = row_bad || non_finite(v);
            if v > m {
                m = v;
                arg = c;
            }
        }
        var s = 0.0;
        for (var c = 0u; c < n; c++) {
            s += exp(wg_z[base + c] - m);
        }
        let label = labels[row];
        let in_range = label < n;
        let inv_s = 1.0 / s;
        let prob = exp(z - m) * inv_s;
        d = (prob - select(0.0, 1.0, col == label)) * (1.0 / f32(p.batch));
        dlogits[row * n + col] = d;
        if col == 0u {
            var loss = 0.0;
            if in_range {
                loss = (m - wg_z[base + label]) + log(s);
            }
            row_bad = row_bad || !in_range || non_finite(loss);
            rows[2u * row] = bitcast<u32>(loss);
            rows[2u * row + 1u] = u32(in_range && arg == label) | (u32(row_bad) << 1u);
        }
    }
    wg_d[lid] = d;
}

@compute @workgroup_size(WG)
fn dense_loss_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    logits_and_loss(first_row(wg, nwg), lid);
}

@compute @workgroup_size(WG)
fn dense_loss_forward_dx(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row0 = first_row(wg, nwg);
    logits_and_loss(row0, lid);
    workgroupBarrier();
    let key = key_of(fwd_st.step);
    // dx[row, k] = sum_n dlogits[row, n] w[k, n]: the workgroup's rows x inp outputs, WG at a time.
    let n = p.units;
    let rows_here = min(p.rows_per_group, p.batch - min(row0, p.batch));
    for (var i = lid; i < rows_here * p.inp; i += WG) {
        let r = i / p.inp;
        let k = i % p.inp;
        var acc = 0.0;
        for (var c = 0u; c < n; c++) {
            acc += wg_d[r * n + c] * wb[k * n + c];
        }
        // The backward of the dropout and ReLU taken in, as dropout.wgsl computes it.
        let at = (row0 + r) * p.inp + k;
        if p.dropout != 0u {
            acc = dropout_apply(p.mask, key, at, acc);
        }
        if p.relu_mask != 0u {
            acc = select(0.0, acc, x[at] > 0.0);
        }
        dx[at] = acc;
    }
}

// Lane lid's share of the rows' metrics, accumulated in its workgroup slots: rows lid, lid + WG, ...
// in order, from the two words `dense_loss_forward` wrote per row.
fn add_row(lid: u32, loss_bits: u32, flags: u32) {
    wg_loss[lid] += bitcast<f32>(loss_bits);
    wg_correct[lid] += flags & 1u;
    wg_bad[lid] |= flags >> 1u;
}

fn clear_lane(lid: u32) {
    wg_loss[lid] = 0.0;
    wg_correct[lid] = 0u;
    wg_bad[lid] = 0u;
}

@compute @workgroup_size(WG)
fn dense_loss_backward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let n = p.units;
    let quads = (n + 3u) / 4u;
    let t = gid.x + gid.y * nwg.x * WG;
    // Rows k0 .. k0+3 of [x | 1]^T dlogits (row inp is db) and columns c0 .. c0+3, clamped for
    // loading; what lies past the end is dropped at the store.
    let k0 = (t / quads) * 4u;
    let c0 = (t % quads) * 4u;
    if k0 <= p.inp {
        let key = key_of(st.step);
        let cl = min(vec4<u32>(c0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(n - 1u));
        let kl = vec4<u32>(k0) + vec4<u32>(0u, 1u, 2u, 3u);
        let kx = min(kl, vec4<u32>(p.inp - 1u));
        var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
        for (var r = 0u; r < p.batch; r++) {
            let base = r * n;
            let dv = vec4<f32>(dl[base + cl.x], dl[base + cl.y], dl[base + cl.z], dl[base + cl.w]);
            for (var i = 0u; i < 4u; i++) {
                // The extra row of ones is exact: 1 * dlogit adds dlogit itself.
                var xv = 1.0;
                if kl[i] < p.inp {
                    xv = load_x(r * p.inp + kx[i], key);
                }
                acc[i] += xv * dv;
            }
        }
        for (var i = 0u; i < 4u; i++) {
            for (var j = 0u; j < 4u; j++) {
                let c = c0 + j;
                if c < n {
                    if kl[i] < p.inp {
                        dw[kl[i] * n + c] = acc[i][j];
                    } else if kl[i] == p.inp {
                        db[c] = acc[i][j];
                    }
                }
            }
        }
    }
    // Uniform per workgroup: only workgroup 0 reaches the barriers inside.
    if wg.x == 0u && wg.y == 0u {
        clear_lane(lid);
        for (var r = lid; r < p.batch; r += WG) {
            add_row(lid, rows_in[2u * r], rows_in[2u * r + 1u]);
        }
        reduce_lanes(lid);
        if lid == 0u {
            metrics = add_lanes(metrics, p.batch, st.step);
        }
    }
}

@compute @workgroup_size(WG)
fn dense_loss_metrics(@builtin(local_invocation_index) lid: u32) {
    clear_lane(lid);
    for (var r = lid; r < p.batch; r += WG) {
        add_row(lid, rows_only[2u * r], rows_only[2u * r + 1u]);
    }
    reduce_lanes(lid);
    if lid == 0u {
        metrics_only = add_lanes(metrics_only, p.batch, st_only.step);
    }
}
