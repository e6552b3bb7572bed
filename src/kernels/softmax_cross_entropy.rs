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
    includes[super::common::STEP_STATE]
);

pub(super) fn contracts() -> Vec<super::Contract> {
    vec![super::Contract {
        shader: &SHADER,
        structs: vec![
            super::host_struct!(Params { batch, classes }),
            super::host_struct!(Metrics {
                loss_sum,
                correct,
                samples,
                first_bad_step
            }),
            StepState::host_struct(),
        ],
        consts: vec![("WG", WG)],
    }]
}

/// The metrics accumulator `softmax_cross_entropy` adds each batch into, as the shader declares it.
/// Zero it (`Gpu::write`) at the start of an epoch.
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
    assert_eq!(
        metrics.len, METRICS_WORDS,
        "{name}: metrics must be {METRICS_WORDS} words"
    );
    assert_eq!(
        step_state.len,
        StepState::WORDS,
        "{name}: step_state is not a StepState"
    );
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
            bytes: (2 * n + batch as u64 + 2 * METRICS_WORDS as u64 + StepState::WORDS as u64)
                * WORD,
        },
    )
}
