// The metrics the loss kernels sum on the GPU (`kernels::softmax_cross_entropy::Metrics` in Rust;
// tests/shaders.rs checks that both lay it out alike), and how one workgroup adds a batch into them:
// each lane sums its rows into its slots of the wg_ arrays, `reduce_lanes` combines the slots in a
// fixed tree (no atomics: the same bits on every run), and lane 0 adds the totals with `add_lanes`.
// softmax_cross_entropy.wgsl and softmax_cross_entropy_dense.wgsl both declare `WG`, their
// workgroup size.
struct Metrics {
    loss_sum: f32,
    correct: u32,
    samples: u32,
    // step + 1 of the first batch with a NaN or infinite loss; 0 while there is none.
    first_bad_step: u32,
}

var<workgroup> wg_loss: array<f32, WG>;
var<workgroup> wg_correct: array<u32, WG>;
var<workgroup> wg_bad: array<u32, WG>;

// Combines the lanes' slots in a fixed tree; the totals end in slot 0.
fn reduce_lanes(lid: u32) {
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if lid < stride {
            wg_loss[lid] += wg_loss[lid + stride];
            wg_correct[lid] += wg_correct[lid + stride];
            wg_bad[lid] |= wg_bad[lid + stride];
        }
        workgroupBarrier();
    }
}

// `m` with the batch in slot 0 added: its loss sum, correct count and `samples`, and step + 1 as the
// first bad step if a row was bad and no earlier batch was.
fn add_lanes(m: Metrics, samples: u32, step: u32) -> Metrics {
    var out = m;
    out.loss_sum += wg_loss[0];
    out.correct += wg_correct[0];
    out.samples += samples;
    if out.first_bad_step == 0u && wg_bad[0] != 0u {
        out.first_bad_step = step + 1u;
    }
    return out;
}
