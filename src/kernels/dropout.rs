//! Inverted dropout with a stateless mask, `shaders/dropout.wgsl`. CPU twin: `crate::reference::dropout`.
//!
//! The mask of element i at a step is a hash of (seed, step, salt, i); see the shader for the hash and
//! why its decisions are exact. The step comes from the `StepState` tensor, so one `Dispatch` serves
//! every step, and the backward regenerates the forward's mask rather than storing it.

use crate::gpu::{Cost, Dispatch, Gpu, Tensor, WORD};
use crate::kernels::StepState;

super::shader!(
    "dropout.wgsl",
    includes[super::common::STEP_STATE, super::common::DROPOUT_MASK]
);

pub(super) fn contracts() -> Vec<super::Contract> {
    vec![super::Contract {
        shader: &SHADER,
        structs: vec![
            super::host_struct!(Params {
                len,
                seed_lo,
                seed_hi,
                salt,
                rate,
                scale,
                relu_mask,
                relu_input
            }),
            StepState::host_struct(),
        ],
        consts: vec![],
    }]
}

/// Invocations per workgroup; must match `WG` in the shader.
const WG: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    seed_lo: u32,
    seed_hi: u32,
    salt: u32,
    rate: f32,
    scale: f32,
    /// Backward: nonzero to zero dx where x <= 0 (the ReLU backward of the layer before).
    relu_mask: u32,
    /// Forward: nonzero to apply a ReLU to x first (the ReLU before the layer).
    relu_input: u32,
}

/// A Dropout layer's mask as a kernel that applies it in passing takes it (`maxpool2d` ending its
/// forward in the dropout after it, the fused last Dense taking the one before it): the hash of
/// `shaders/common/dropout_mask.wgsl` on (seed, step, salt, element index) and the select and
/// multiply by `scale(rate)` of `dropout_forward`, so the same bits. The kernel reads the step from
/// the `StepState` it is given with the mask.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mask {
    pub seed: u64,
    pub salt: u32,
    pub rate: f32,
}

impl Mask {
    /// Checks the mask, and the step state read with it, as `name` takes them.
    pub(super) fn check(&self, name: &str, step_state: &Tensor) {
        assert_eq!(
            step_state.len,
            StepState::WORDS,
            "{name}: step_state is not a StepState"
        );
        assert!(
            (0.0..1.0).contains(&self.rate),
            "{name}: rate {} is not in [0, 1)",
            self.rate
        );
    }

    /// The seed's low and high words, as the kernels' `seed_lo` and `seed_hi` take them.
    pub(super) fn seed_words(&self) -> [u32; 2] {
        [self.seed as u32, (self.seed >> 32) as u32]
    }
}

/// Keras' inverted scaling 1 / (1 - rate), in f32 as TensorFlow computes it.
pub fn scale(rate: f32) -> f32 {
    1.0 / (1.0 - rate)
}

#[allow(clippy::too_many_arguments)]
fn dropout(
    gpu: &Gpu,
    name: &'static str,
    input: &Tensor,
    relu_mask: Option<&Tensor>,
    relu_input: bool,
    output: &Tensor,
    step_state: &Tensor,
    seed: u64,
    salt: u32,
    rate: f32,
) -> Dispatch {
    assert_eq!(
        input.len, output.len,
        "{name}: input and output differ in length"
    );
    if let Some(x) = relu_mask {
        assert_eq!(x.len, input.len, "{name}: the mask has the wrong length");
    }
    let mask = Mask { seed, salt, rate };
    mask.check(name, step_state);
    let [seed_lo, seed_hi] = mask.seed_words();
    let n = input.len;
    let params = Params {
        len: n as u32,
        seed_lo,
        seed_hi,
        salt,
        rate,
        scale: scale(rate),
        relu_mask: relu_mask.is_some() as u32,
        relu_input: relu_input as u32,
    };
    // Four elements per invocation when the length allows (2.5x faster on lavapipe, docs/PERFORMANCE.md).
    let (entry, invocations) = if n.is_multiple_of(4) {
        ("dropout_vec4", n / 4)
    } else {
        ("dropout", n)
    };
    gpu.dispatch(
        name,
        &SHADER,
        entry,
        &[("WG", WG as f64)],
        &params,
        // Without a mask, the input is bound in its place (a binding cannot be left empty), unread.
        &[input, output, step_state, relu_mask.unwrap_or(input)],
        super::grid(gpu, invocations, WG),
        Cost {
            // The multiply; the hash is integer work.
            flops: n as u64,
            bytes: ((2 + params.relu_mask as usize) * n + StepState::WORDS) as u64 * WORD,
        },
    )
}

/// y = x / (1 - rate) where element i is kept at this step, 0 elsewhere. `step_state` holds the
/// step (its other fields are ignored); `salt` differs between the model's dropout layers. Keras keeps
/// an element iff a uniform draw in [0, 1) is >= rate; rate 0 is the identity.
pub fn dropout_forward(
    gpu: &Gpu,
    x: &Tensor,
    y: &Tensor,
    step_state: &Tensor,
    seed: u64,
    salt: u32,
    rate: f32,
) -> Dispatch {
    dropout(
        gpu,
        "dropout_forward",
        x,
        None,
        false,
        y,
        step_state,
        seed,
        salt,
        rate,
    )
}

/// `dropout_forward` of max(x, 0): the ReLU before the layer, fused (activation.wgsl's ReLU select, so the
/// bits of `activation::activation_forward` (ReLU) then `dropout_forward`). Its backward is `dropout_backward` with
/// `relu_mask` x, this x.
pub fn dropout_forward_relu(
    gpu: &Gpu,
    x: &Tensor,
    y: &Tensor,
    step_state: &Tensor,
    seed: u64,
    salt: u32,
    rate: f32,
) -> Dispatch {
    dropout(
        gpu,
        "dropout_forward",
        x,
        None,
        true,
        y,
        step_state,
        seed,
        salt,
        rate,
    )
}

/// dx = dy / (1 - rate) where kept, 0 elsewhere: the same mask as `dropout_forward` with the same
/// (seed, salt, rate) at the same step. With `relu_mask` (the layer's input x, a ReLU's output), dx is
/// then zeroed where x <= 0: that ReLU's backward, fused (an exact select, the bits of
/// `relu::relu_backward`).
#[allow(clippy::too_many_arguments)]
pub fn dropout_backward(
    gpu: &Gpu,
    dy: &Tensor,
    relu_mask: Option<&Tensor>,
    dx: &Tensor,
    step_state: &Tensor,
    seed: u64,
    salt: u32,
    rate: f32,
) -> Dispatch {
    dropout(
        gpu,
        "dropout_backward",
        dy,
        relu_mask,
        false,
        dx,
        step_state,
        seed,
        salt,
        rate,
    )
}
