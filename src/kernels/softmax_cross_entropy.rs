//! Softmax fused with categorical cross-entropy, `shaders/softmax_cross_entropy.wgsl`. CPU twin:
//! `crate::reference::softmax_cross_entropy`.
//!
//! The loss is computed from the logits (logsumexp(z) - z[label]), as Keras' TensorFlow backend does
//! when the model ends in a Softmax; see the shader for why that differs from Keras' clipped-probability
//! form and what the `metrics` words hold.

use crate::gpu::{Cost, Dispatch, Gpu, Tensor, WORD};
use crate::kernels::StepState;

super::shader!(
    "softmax_cross_entropy.wgsl",
    includes[super::common::STEP_STATE, super::common::METRICS]
);

pub(super) fn contracts() -> Vec<super::Contract> {
    let fused = dense::contract();
    vec![
        super::Contract {
            shader: &SHADER,
            structs: vec![
                super::host_struct!(Params { batch, classes }),
                Metrics::host_struct(),
                StepState::host_struct(),
            ],
            consts: vec![("WG", WG)],
        },
        fused,
    ]
}

/// The metrics accumulator the loss kernels (`softmax_cross_entropy`, and `dense`'s
/// `dense_loss_backward` and `dense_loss_metrics`) add each batch into, as
/// `shaders/common/metrics.wgsl` declares it. Zero it (`Gpu::write`) at the start of an epoch; read it
/// back with `from_words`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Metrics {
    /// Loss summed over samples.
    pub loss_sum: f32,
    /// Samples whose argmax is their label.
    pub correct: u32,
    /// Samples seen.
    pub samples: u32,
    /// The first step (+ 1) where a row's loss was NaN or infinite; 0 while there is none.
    pub first_bad_step: u32,
}

/// Words of `Metrics`.
pub const METRICS_WORDS: usize = size_of::<Metrics>() / 4;

impl Metrics {
    /// The metrics in the first `METRICS_WORDS` words read back from their tensor.
    pub fn from_words(w: &[u32]) -> Metrics {
        bytemuck::cast_slice::<u32, Metrics>(&w[..METRICS_WORDS])[0]
    }

    /// The mean loss of the samples seen (0 before any).
    pub fn loss(&self) -> f64 {
        self.loss_sum as f64 / self.samples.max(1) as f64
    }

    /// The fraction of the samples seen that were classified right (0 before any).
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.samples.max(1) as f64
    }

    /// Its entry in the contract of every shader that includes `common/metrics.wgsl`.
    fn host_struct() -> super::HostStruct {
        super::host_struct!(Metrics {
            loss_sum,
            correct,
            samples,
            first_bad_step
        })
    }
}

/// The most loop iterations one invocation of `softmax_cross_entropy` takes (`Gpu::loop_limit`): its
/// rows of the batch (one in WG), three passes over the classes each, then the lanes' tree.
pub fn loop_steps(batch: usize, classes: usize) -> usize {
    batch.div_ceil(WG as usize) * (1 + 3 * classes) + WG.ilog2() as usize + 1
}

/// Invocations of the single workgroup of `softmax_cross_entropy`: the shader's `WG`, an array bound.
const WG: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    classes: u32,
}

fn check_shape(name: &str, logits: &Tensor, batch: usize, classes: usize) {
    assert!(
        batch >= 1 && classes >= 1,
        "{name}: batch {batch} x classes {classes}"
    );
    assert_eq!(
        logits.len,
        batch * classes,
        "{name}: logits are not [{batch}, {classes}]"
    );
}

/// Every loss kernel's check of its metrics and step state tensors.
fn check_metrics(name: &str, metrics: &Tensor, step_state: &Tensor) {
    assert_eq!(
        metrics.len, METRICS_WORDS,
        "{name}: metrics must be {METRICS_WORDS} words"
    );
    assert_eq!(
        step_state.len,
        StepState::WORDS,
        "{name}: step_state is not a StepState"
    );
}

/// The metrics read and written, and the step state read.
fn metrics_bytes() -> u64 {
    (2 * METRICS_WORDS + StepState::WORDS) as u64 * WORD
}

/// For logits [batch, classes] and labels [batch] (class indices): writes dlogits [batch, classes] =
/// (softmax(logits) - onehot(labels)) / batch, the gradient of the batch's mean loss, and ADDS the batch's
/// loss sum, correct count and sample count into `metrics` (see `METRICS_WORDS`). If any row's loss is
/// NaN or infinite (or its label is out of range) and metrics[3] is 0, sets metrics[3] to step + 1, the
/// step read from `step_state`. One workgroup, deterministic, any batch and class count.
#[allow(clippy::too_many_arguments)]
pub fn softmax_cross_entropy(
    gpu: &Gpu,
    logits: &Tensor,
    labels: &Tensor,
    dlogits: &Tensor,
    metrics: &Tensor,
    step_state: &Tensor,
    batch: usize,
    classes: usize,
) -> Dispatch {
    let name = "softmax_cross_entropy";
    check_shape(name, logits, batch, classes);
    assert_eq!(labels.len, batch, "{name}: labels are not [{batch}]");
    assert_eq!(
        dlogits.len,
        batch * classes,
        "{name}: dlogits are not [{batch}, {classes}]"
    );
    check_metrics(name, metrics, step_state);
    let n = (batch * classes) as u64;
    gpu.dispatch(
        name,
        &SHADER,
        "softmax_cross_entropy",
        &[],
        &Params {
            batch: batch as u32,
            classes: classes as u32,
        },
        &[logits, labels, dlogits, metrics, step_state],
        [1, 1, 1],
        Cost {
            // Per element: max, subtract and exp twice, sum, scale, subtract the target, divide.
            flops: 8 * n + 3 * batch as u64 + WG as u64 * 3,
            bytes: (2 * n + batch as u64) * WORD + metrics_bytes(),
        },
    )
}

/// The model's last Dense layer fused with the loss, `shaders/softmax_cross_entropy_dense.wgsl`: two
/// dispatches per training step instead of five (forward product, loss, dW, db, dx), for layers of at
/// most `MAX_UNITS` units. CPU twin: `crate::reference::softmax_cross_entropy::{dense_loss_forward,
/// dense_loss_backward}`.
pub mod dense {
    use super::{Metrics, check_metrics, metrics_bytes};
    use crate::gpu::{Cost, Dispatch, Gpu, Tensor, WORD};
    use crate::kernels::StepState;
    use crate::kernels::dropout::{Mask, MaskParams};
    use bytemuck::Zeroable;

    crate::kernels::shader!(
        "softmax_cross_entropy_dense.wgsl",
        includes[
            crate::kernels::common::STEP_STATE,
            crate::kernels::common::PCG,
            crate::kernels::common::DROPOUT_MASK,
            crate::kernels::common::METRICS
        ]
    );

    pub(in crate::kernels) fn contract() -> crate::kernels::Contract {
        crate::kernels::Contract {
            shader: &SHADER,
            structs: vec![
                crate::kernels::host_struct!(Params {
                    batch,
                    inp,
                    units,
                    rows_per_group,
                    b_at,
                    relu_input,
                    dropout,
                    relu_mask,
                    mask
                }),
                Metrics::host_struct(),
                StepState::host_struct(),
                MaskParams::host_struct(),
            ],
            consts: vec![("WG", WG)],
        }
    }

    /// Invocations per workgroup (the shader's `WG`, an array bound): a workgroup holds whole rows
    /// of logits, so this is also the most units the fused layer may have.
    const WG: u32 = 64;
    /// The widest last layer the fused kernels take.
    pub const MAX_UNITS: usize = WG as usize;

    /// The most loop iterations one invocation of these kernels takes for a batch of `batch` rows of
    /// `inp` inputs into `units` units (at most MAX_UNITS): `dense_loss_forward_dx`'s product over
    /// the inputs, its softmax over the units and its share of dx (the workgroup's rows x inputs, WG
    /// at a time, each over the units), or `dense_loss_backward`'s walk over the batch and the
    /// metrics' share of it, whichever is more. A layer past the adapter's `Gpu::loop_limit` does
    /// not take the loss in (the plain product and loss then run, each within it).
    pub fn loop_steps(batch: usize, inp: usize, units: usize) -> usize {
        let units = units.clamp(1, MAX_UNITS);
        let rows = MAX_UNITS / units;
        let forward = inp + 2 * units + (rows * inp).div_ceil(WG as usize) * (units + 1);
        let backward = batch + batch.div_ceil(WG as usize) + 8;
        forward.max(backward)
    }

    /// Scratch words per row: the row's loss and its flags, summed into the metrics by
    /// `dense_loss_backward` or `dense_loss_metrics`.
    pub const ROW_WORDS: usize = 2;

    #[repr(C)]
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    struct Params {
        batch: u32,
        inp: u32,
        units: u32,
        rows_per_group: u32,
        /// The forward's: where b starts in the binding of w and b.
        b_at: u32,
        /// `Input`'s flags and mask (all 0 for a plain input).
        relu_input: u32,
        dropout: u32,
        relu_mask: u32,
        mask: MaskParams,
    }

    fn params(
        name: &str,
        batch: usize,
        inp: usize,
        units: usize,
        input: &Input,
        step_state: &Tensor,
    ) -> Params {
        assert!(
            batch >= 1 && inp >= 1 && (1..=MAX_UNITS).contains(&units),
            "dense_loss: batch {batch}, inputs {inp}, units {units} (at most {MAX_UNITS})"
        );
        Params {
            batch: batch as u32,
            inp: inp as u32,
            units: units as u32,
            rows_per_group: (MAX_UNITS / units) as u32,
            b_at: 0,
            relu_input: input.relu as u32,
            dropout: input.dropout.is_some() as u32,
            relu_mask: input.relu_mask as u32,
            mask: input
                .dropout
                .map_or(MaskParams::zeroed(), |m| m.uniform(name, step_state)),
        }
    }

    /// What stands between the layer's input tensor x and the product: the ReLU and Dropout layers
    /// before it when it took them in (`Fusion::DropoutBefore`), applied where x is loaded with
    /// the activation and dropout kernels' own selects, so the bits of the tensor they would have
    /// written. `Input::default()` is x itself.
    #[derive(Clone, Copy, Debug, Default, PartialEq)]
    pub struct Input {
        /// x is a ReLU's input: the ReLU is applied first.
        pub relu: bool,
        /// The dropout's mask (training), on the step in the kernels' step state: x is then
        /// masked and scaled, and so is dx.
        pub dropout: Option<Mask>,
        /// dx is zeroed where x <= 0: the backward of the ReLU before (x is its input or output).
        pub relu_mask: bool,
    }

    /// The forward's tensors: the layer's input (and what stands before it, `input`), kernel [inp,
    /// units] and bias (b after w in one buffer, as a layer's parameters lie, so that the two take
    /// one binding: with the step state the `_dx` entry point binds WebGPU's 8 storage buffers), the labels, the step state (the step of `input`'s mask; bound either way),
    /// and what it writes: the logits, their gradient (of the batch's mean loss), the per-row
    /// scratch (`ROW_WORDS` per row) and, when training a layer whose input has a gradient, dx.
    pub struct Forward<'a> {
        pub x: &'a Tensor,
        pub input: Input,
        pub step_state: &'a Tensor,
        pub w: &'a Tensor,
        pub b: &'a Tensor,
        pub labels: &'a Tensor,
        pub logits: &'a Tensor,
        pub dlogits: &'a Tensor,
        pub rows: &'a Tensor,
        pub dx: Option<&'a Tensor>,
    }

    /// logits = x w + b, then softmax-cross-entropy as `super::softmax_cross_entropy` computes it:
    /// dlogits, and each row's loss and flags into `t.rows` (added into the metrics by
    /// `dense_loss_backward` or `dense_loss_metrics`); with `t.dx`, also dx = dlogits wᵀ (then
    /// through the backward of `t.input`'s dropout and ReLU). One dispatch, `MAX_UNITS / units` rows
    /// per workgroup.
    pub fn dense_loss_forward(
        gpu: &Gpu,
        t: &Forward,
        batch: usize,
        inp: usize,
        units: usize,
    ) -> Dispatch {
        let name = "dense_loss_forward";
        let (wb, b_at) =
            t.w.span_to(t.b)
                .unwrap_or_else(|| panic!("{name}: b does not follow w in their buffer"));
        let p = Params {
            b_at: b_at as u32,
            ..params(name, batch, inp, units, &t.input, t.step_state)
        };
        let bu = batch * units;
        assert_eq!(t.x.len, batch * inp, "{name}: x is not [{batch}, {inp}]");
        assert_eq!(t.w.len, inp * units, "{name}: w is not [{inp}, {units}]");
        assert_eq!(t.b.len, units, "{name}: b is not [{units}]");
        assert_eq!(t.labels.len, batch, "{name}: labels are not [{batch}]");
        assert_eq!(
            t.step_state.len,
            StepState::WORDS,
            "{name}: step_state is not a StepState"
        );
        assert_eq!(
            t.logits.len, bu,
            "{name}: logits are not [{batch}, {units}]"
        );
        assert_eq!(
            t.dlogits.len, bu,
            "{name}: dlogits are not [{batch}, {units}]"
        );
        assert_eq!(
            t.rows.len,
            batch * ROW_WORDS,
            "{name}: rows are not [{batch}, {ROW_WORDS}]"
        );
        let mut buffers = vec![
            t.x,
            &wb,
            t.labels,
            t.logits,
            t.dlogits,
            t.rows,
            t.step_state,
        ];
        let (entry, dx_words) = match t.dx {
            Some(dx) => {
                assert_eq!(dx.len, batch * inp, "{name}: dx is not [{batch}, {inp}]");
                buffers.push(dx);
                ("dense_loss_forward_dx", batch * inp)
            }
            None => ("dense_loss_forward", 0),
        };
        let (b, i, u) = (batch as u64, inp as u64, units as u64);
        let dropped = t.input.dropout.is_some() as u64;
        gpu.dispatch(
            name,
            &SHADER,
            entry,
            &[],
            &p,
            &buffers,
            crate::gpu::grid_1d(
                batch.div_ceil(p.rows_per_group as usize) as u32,
                gpu.limits.max_compute_workgroups_per_dimension,
            ),
            Cost {
                // The product and bias, the loss's 8 per logit (softmax_cross_entropy's count), and
                // dx's product; with a dropout taken in, its multiply of each x (and dx) element.
                flops: 2 * b * i * u
                    + b * u
                    + 8 * b * u
                    + 2 * dx_words as u64 * u
                    + dropped * (b * i + dx_words as u64),
                bytes: (b * i
                    + i * u
                    + u
                    + b
                    + 2 * b * u
                    + b * ROW_WORDS as u64
                    + dx_words as u64
                    + StepState::WORDS as u64)
                    * WORD,
            },
        )
    }

    /// dw = xᵀ dlogits and db = the column sums of dlogits (as one product [x | 1]ᵀ dlogits, rows in
    /// order, x through `input` as the forward took it), and the rows' loss sum, correct count and
    /// sample count added into `metrics`, with the first bad step recorded as
    /// `super::softmax_cross_entropy` does. One dispatch.
    #[allow(clippy::too_many_arguments)]
    pub fn dense_loss_backward(
        gpu: &Gpu,
        x: &Tensor,
        input: &Input,
        dlogits: &Tensor,
        rows: &Tensor,
        dw: &Tensor,
        db: &Tensor,
        metrics: &Tensor,
        step_state: &Tensor,
        batch: usize,
        inp: usize,
        units: usize,
    ) -> Dispatch {
        let name = "dense_loss_backward";
        let p = params(name, batch, inp, units, input, step_state);
        assert_eq!(x.len, batch * inp, "{name}: x is not [{batch}, {inp}]");
        assert_eq!(
            dlogits.len,
            batch * units,
            "{name}: dlogits are not [{batch}, {units}]"
        );
        assert_eq!(
            rows.len,
            batch * ROW_WORDS,
            "{name}: rows are not [{batch}, {ROW_WORDS}]"
        );
        assert_eq!(dw.len, inp * units, "{name}: dw is not [{inp}, {units}]");
        assert_eq!(db.len, units, "{name}: db is not [{units}]");
        check_metrics(name, metrics, step_state);
        // One invocation per 4 x 4 block of the (inp + 1) x units product.
        let invocations = (inp + 1).div_ceil(4) * units.div_ceil(4);
        let (b, i, u) = (batch as u64, inp as u64, units as u64);
        gpu.dispatch(
            name,
            &SHADER,
            "dense_loss_backward",
            &[],
            &p,
            &[x, dlogits, rows, dw, db, metrics, step_state],
            crate::kernels::grid(gpu, invocations, WG),
            Cost {
                flops: 2 * b * i * u + b * u + b + input.dropout.is_some() as u64 * b * i,
                bytes: (b * i + b * u + b * ROW_WORDS as u64 + i * u + u) * WORD + metrics_bytes(),
            },
        )
    }

    /// The rows' metrics alone, added into `metrics` (evaluation, which has no backward). One
    /// workgroup.
    pub fn dense_loss_metrics(
        gpu: &Gpu,
        rows: &Tensor,
        metrics: &Tensor,
        step_state: &Tensor,
        batch: usize,
        units: usize,
    ) -> Dispatch {
        let name = "dense_loss_metrics";
        let p = params(name, batch, 1, units, &Input::default(), step_state);
        assert_eq!(
            rows.len,
            batch * ROW_WORDS,
            "{name}: rows are not [{batch}, {ROW_WORDS}]"
        );
        check_metrics(name, metrics, step_state);
        gpu.dispatch(
            name,
            &SHADER,
            "dense_loss_metrics",
            &[],
            &p,
            &[rows, metrics, step_state],
            [1, 1, 1],
            Cost {
                flops: batch as u64,
                bytes: (batch * ROW_WORDS) as u64 * WORD + metrics_bytes(),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::dense::loop_steps;

    #[test]
    fn the_plain_losss_loops_are_its_rows_passes_over_the_classes() {
        assert_eq!(super::loop_steps(128, 10), 31 + 9);
        assert_eq!(super::loop_steps(257, 10), 2 * 31 + 9);
        assert!(super::loop_steps(128, 20_000) > crate::gpu::MAX_LOOP_STEPS);
    }

    #[test]
    fn the_fused_dense_losss_loops_grow_with_the_inputs_and_the_batch() {
        // The notebook's last layer (512 -> 10, batch 128): 512 + 20 + 48 steps of dx x 11.
        assert_eq!(loop_steps(128, 512, 10), 1060);
        // A layer after Flatten of a 32x32x64 image, and a batch past llvmpipe's limit.
        let limit = crate::gpu::MAX_LOOP_STEPS;
        assert!(loop_steps(2, 65536, 10) > limit);
        assert!(loop_steps(49152, 512, 10) > limit);
        // One unit: 64 rows per workgroup, so dx takes as many steps (x 2) as the product.
        assert_eq!(loop_steps(2, 16384, 1), 16384 + 2 + 16384 * 2);
        assert!(loop_steps(2, 16400, 1) > limit);
    }
}
