//! Inverted dropout with a stateless mask, `shaders/dropout.wgsl`. CPU twin: `crate::reference::dropout`.
//!
//! The mask of element i at a step is a hash of (seed, step, salt, i); see the shader for the hash and
//! why its decisions are exact. The step comes from the `StepState` tensor, so one `Dispatch` serves
//! every step, and the backward regenerates the forward's mask rather than storing it.

use crate::gpu::{Cost, Dispatch, Gpu, Tensor, WORD};
use crate::kernels::StepState;
use bytemuck::Zeroable;

super::shader!(
    "dropout.wgsl",
    includes[
        super::common::STEP_STATE,
        super::common::PCG,
        super::common::DROPOUT_MASK
    ]
);

pub(super) fn contracts() -> Vec<super::Contract> {
    vec![super::Contract {
        shader: &SHADER,
        structs: vec![
            super::host_struct!(Params {
                mask,
                len,
                relu_mask,
                relu_input
            }),
            MaskParams::host_struct(),
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
    mask: MaskParams,
    len: u32,
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
    /// The mask as the kernel `name` takes it in its parameters, after checking it and the step
    /// state read with it.
    pub(super) fn uniform(&self, name: &str, step_state: &Tensor) -> MaskParams {
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
        MaskParams {
            seed_lo: self.seed as u32,
            seed_hi: (self.seed >> 32) as u32,
            salt: self.salt,
            rate: self.rate,
            scale: scale(self.rate),
            ..MaskParams::zeroed()
        }
    }
}

/// A `Mask` as the kernels' parameters hold it: `shaders/common/dropout_mask.wgsl`'s `MaskParams`,
/// 32 bytes so that it can be a uniform's field anywhere on a 16-byte boundary. All zero where a
/// kernel that can take a mask has none.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct MaskParams {
    seed_lo: u32,
    seed_hi: u32,
    salt: u32,
    rate: f32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

impl MaskParams {
    /// Its entry in the contract of every shader that includes `common/dropout_mask.wgsl`.
    pub(super) fn host_struct() -> super::HostStruct {
        super::host_struct!(MaskParams {
            seed_lo,
            seed_hi,
            salt,
            rate,
            scale,
            _pad0,
            _pad1,
            _pad2
        })
    }
}

impl super::WgslType for MaskParams {
    const WGSL: &'static str = "MaskParams";
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
    let n = input.len;
    let params = Params {
        mask: Mask { seed, salt, rate }.uniform(name, step_state),
        len: n as u32,
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
