//! One dispatch updates every parameter of a model, `shaders/optimizer.wgsl`. CPU twin:
//! `crate::reference::optimizer`; configuration and Keras' defaults: `crate::optimizer`.

use crate::gpu::{Cost, Dispatch, Gpu, Tensor, WORD};
use crate::kernels::StepState;
use crate::optimizer::{Optimizer, one_minus};

super::shader!("optimizer.wgsl", includes[super::common::STEP_STATE]);

pub(super) fn contracts() -> Vec<super::Contract> {
    vec![super::Contract {
        shader: &SHADER,
        structs: vec![
            super::host_struct!(Params {
                len,
                momentum,
                decay,
                one_minus_decay,
                one_minus_decay2,
                epsilon,
                nesterov,
                legacy_epsilon
            }),
            StepState::host_struct(),
        ],
        consts: vec![
            ("SGD", SGD),
            ("SGD_MOMENTUM", SGD_MOMENTUM),
            ("RMSPROP", RMSPROP),
            ("RMSPROP_MOMENTUM", RMSPROP_MOMENTUM),
            ("RMSPROP_CENTERED", RMSPROP_CENTERED),
            ("RMSPROP_CENTERED_MOMENTUM", RMSPROP_CENTERED_MOMENTUM),
            ("ADAM", ADAM),
            ("ADAM_AMSGRAD", ADAM_AMSGRAD),
        ],
    }]
}

/// Invocations per workgroup; must match `WG` in the shader.
const WG: u32 = 256;

/// The rules as the shader's `RULE` override takes them (its constants of the same names).
const SGD: u32 = 0;
const SGD_MOMENTUM: u32 = 1;
const RMSPROP: u32 = 2;
const RMSPROP_MOMENTUM: u32 = 3;
const RMSPROP_CENTERED: u32 = 4;
const RMSPROP_CENTERED_MOMENTUM: u32 = 5;
const ADAM: u32 = 6;
const ADAM_AMSGRAD: u32 = 7;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    momentum: f32,
    decay: f32,
    one_minus_decay: f32,
    one_minus_decay2: f32,
    epsilon: f32,
    nesterov: u32,
    legacy_epsilon: u32,
}

/// Applies one step of `opt` to `params` (read and written) from `grads`, keeping `state`: exactly
/// `opt.state_buffers()` tensors (zero before the first step), in the order `Optimizer::state_buffers`
/// gives, each as long as `params`. The learning rate (and Adam's bias-corrected step size) are read
/// from `step_state`, which the host fills with `opt.step_state(step)` before each step.
///
/// Binding order in the shader: params, grads, step_state, state... The `RULE` override picks the
/// rule; `update<N>` (N state tensors) updates one parameter per invocation, `update<N>_vec4` four
/// where the length is a multiple of 4.
pub fn update(
    gpu: &Gpu,
    opt: &Optimizer,
    params: &Tensor,
    grads: &Tensor,
    state: &[&Tensor],
    step_state: &Tensor,
) -> Dispatch {
    let n = params.len;
    assert_eq!(
        grads.len, n,
        "optimizer: {} gradients for {n} parameters",
        grads.len
    );
    assert_eq!(
        state.len(),
        opt.state_buffers(),
        "optimizer: {opt:?} keeps {} state tensors",
        opt.state_buffers()
    );
    for (k, s) in state.iter().enumerate() {
        assert_eq!(
            s.len, n,
            "optimizer: state tensor {k} has {} words for {n} parameters",
            s.len
        );
    }
    assert_eq!(
        step_state.len,
        StepState::WORDS,
        "optimizer: step_state is not a StepState"
    );
    let mut p = Params {
        len: n as u32,
        momentum: 0.0,
        decay: 0.0,
        one_minus_decay: 0.0,
        one_minus_decay2: 0.0,
        epsilon: 0.0,
        nesterov: 0,
        legacy_epsilon: 0,
    };
    // (the rule's name in profiles, its number for `RULE`, FLOPs per parameter counting sqrt and
    // division as one).
    let (name, rule, flops) = match *opt {
        Optimizer::Sgd {
            momentum, nesterov, ..
        } => {
            p.momentum = momentum;
            p.nesterov = nesterov as u32;
            if momentum != 0.0 {
                ("sgd_momentum", SGD_MOMENTUM, if nesterov { 6 } else { 4 })
            } else {
                ("sgd", SGD, 2)
            }
        }
        Optimizer::RmsProp {
            rho,
            momentum,
            epsilon,
            centered,
            legacy_epsilon,
            ..
        } => {
            p.momentum = momentum;
            p.decay = rho;
            p.one_minus_decay = one_minus(rho);
            p.epsilon = epsilon;
            p.legacy_epsilon = legacy_epsilon as u32;
            match (centered, momentum > 0.0) {
                (false, false) => ("rmsprop", RMSPROP, 9),
                (false, true) => ("rmsprop_momentum", RMSPROP_MOMENTUM, 11),
                (true, false) => ("rmsprop_centered", RMSPROP_CENTERED, 15),
                (true, true) => ("rmsprop_centered_momentum", RMSPROP_CENTERED_MOMENTUM, 17),
            }
        }
        Optimizer::Adam {
            beta1,
            beta2,
            epsilon,
            amsgrad,
            ..
        } => {
            p.one_minus_decay = one_minus(beta1);
            p.one_minus_decay2 = one_minus(beta2);
            p.epsilon = epsilon;
            if amsgrad {
                ("adam_amsgrad", ADAM_AMSGRAD, 13)
            } else {
                ("adam", ADAM, 12)
            }
        }
    };
    let mut buffers = vec![params, grads, step_state];
    buffers.extend_from_slice(state);
    // The entry point binds as many state tensors as the rule keeps; four parameters per invocation
    // when the length allows (the model's flat buffer always does): 2.3x faster on lavapipe
    // (docs/PERFORMANCE.md). The dispatch keeps the rule's name in profiles.
    let [scalar, vec4] = ENTRY_POINTS[state.len()];
    let (entry, invocations) = if n.is_multiple_of(4) {
        (vec4, n / 4)
    } else {
        (scalar, n)
    };
    gpu.dispatch(
        name,
        &SHADER,
        entry,
        &[("WG", WG as f64), ("RULE", rule as f64)],
        &p,
        &buffers,
        super::grid(gpu, invocations, WG),
        // Words moved per parameter: params read and written, the gradient read, each state tensor
        // read and written.
        Cost {
            flops: flops * n as u64,
            bytes: ((3 + 2 * state.len()) * n + StepState::WORDS) as u64 * WORD,
        },
    )
}

/// The shader's entry points (scalar, vec4) by the number of state tensors they bind.
const ENTRY_POINTS: [[&str; 2]; 4] = [
    ["update0", "update0_vec4"],
    ["update1", "update1_vec4"],
    ["update2", "update2_vec4"],
    ["update3", "update3_vec4"],
];
