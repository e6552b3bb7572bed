// Softmax fused with categorical cross-entropy. CPU twin:
// src/reference/softmax_cross_entropy.rs. Logits z are [batch, classes]; labels are class indices.
// Per row, numerically stable: m = max z, s = sum exp(z - m), loss = (m - z[label]) + log(s),
// dz = (exp(z - m) / s - onehot(label)) / batch, the gradient of the batch MEAN loss (Keras'
// "sum_over_batch_size"). This is the logits form TensorFlow uses when the model ends in a Softmax
// (keras/src/backend/tensorflow/nn.py `_get_logits`), not the clipped-probability form.
//
// `softmax_cross_entropy` also ADDS the batch's loss sum, correct count (argmax == label, the first
// maximum on ties as tf.argmax), sample count and first bad step into `metrics` (struct Metrics). One
// workgroup does the whole batch: each invocation sums rows lid, lid + WG, ..., then a tree reduction
// in workgroup memory combines them in a fixed order: no atomics, the same bits on every run.
// Non-finite values are detected from the exponent bits, not with `x != x`, which WGSL lets
// implementations compile away.

struct Params {
    batch: u32,
    classes: u32,
}

//!include common/step_state.wgsl
//!include common/metrics.wgsl

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(4) var<storage, read_write> metrics: Metrics;
@group(0) @binding(5) var<storage, read> st: StepState;

const WG: u32 = 256u;

fn non_finite(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) == 0x7f800000u;
}

@compute @workgroup_size(WG)
fn softmax_cross_entropy(@builtin(local_invocation_index) lid: u32) {
    let n = p.classes;
    let inv_batch = 1.0 / f32(p.batch);
    var loss_sum = 0.0;
    var correct = 0u;
    var bad = 0u;
    for (var row = lid; row < p.batch; row += WG) {
        let base = row * n;
        // Max and first argmax; any non-finite logit marks the row bad.
        var m = logits[base];
        var arg = 0u;
        var row_bad = non_finite(m);
        for (var c = 1u; c < n; c++) {
            let v = logits[base + c];
            row_bad = row_bad || non_finite(v);
            if v > m {
                m = v;
                arg = c;
            }
        }
        var s = 0.0;
        for (var c = 0u; c < n; c++) {
            s += exp(logits[base + c] - m);
        }
        let label = labels[row];
        // A label outside [0, classes) has no one-hot target: the row counts as bad, adds no loss.
        let in_range = label < n;
        var loss = 0.0;
        if in_range {
            loss = (m - logits[base + label]) + log(s);
        }
        row_bad = row_bad || !in_range || non_finite(loss);
        let inv_s = 1.0 / s;
        for (var c = 0u; c < n; c++) {
            let prob = exp(logits[base + c] - m) * inv_s;
            dlogits[base + c] = (prob - select(0.0, 1.0, c == label)) * inv_batch;
        }
        loss_sum += loss;
        correct += u32(in_range && arg == label);
        bad |= u32(row_bad);
    }
    wg_loss[lid] = loss_sum;
    wg_correct[lid] = correct;
    wg_bad[lid] = bad;
    reduce_lanes(lid);
    if lid == 0u {
        metrics = add_lanes(metrics, p.batch, st.step);
    }
}
