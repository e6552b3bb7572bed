//! BatchNormalization over the last axis, `shaders/batch_norm.wgsl`. CPU twin:
//! `crate::reference::batch_norm`.
//!
//! Training runs `batch_norm_stats` (the batch's mean and biased variance per channel, and the
//! moving statistics' update, once per step) then `batch_norm_normalize` on those statistics;
//! evaluation runs `batch_norm_normalize` on the moving statistics. The backward is
//! `batch_norm_reduce` (dgamma, dbeta) then `batch_norm_dx`.

use crate::gpu::{Cost, Dispatch, Gpu, Tensor, WORD};
use crate::kernels::StepState;

super::shader!("batch_norm.wgsl", includes[super::common::STEP_STATE]);

pub(super) fn contracts() -> Vec<super::Contract> {
    vec![super::Contract {
        shader: &SHADER,
        structs: vec![
            super::host_struct!(Params {
                rows,
                channels,
                momentum,
                one_minus_momentum,
                epsilon,
                _pad0,
                _pad1,
                _pad2
            }),
            StepState::host_struct(),
        ],
        consts: vec![("LANES", LANES as u32)],
    }]
}

/// Invocations per channel in the reductions (the shader's `LANES`, an array bound).
const LANES: usize = 64;
/// Invocations per workgroup of the element-wise entry points: the shader's `WG` override.
const WG: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    channels: u32,
    momentum: f32,
    one_minus_momentum: f32,
    epsilon: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

/// What every entry point shares: x is `[rows, channels]` (an image batch `[batch * h * w, c]`, a
/// flat one `[batch, n]`), and the layer's settings as Keras holds them (Python floats).
#[derive(Clone, Copy, Debug)]
pub struct BatchNormDims {
    pub rows: usize,
    pub channels: usize,
    pub momentum: f64,
    pub epsilon: f64,
}

impl BatchNormDims {
    fn params(&self) -> Params {
        Params {
            rows: self.rows as u32,
            channels: self.channels as u32,
            momentum: self.momentum as f32,
            one_minus_momentum: (1.0 - self.momentum) as f32,
            epsilon: self.epsilon as f32,
            _pad0: 0,
            _pad1: 0,
            _pad2: 0,
        }
    }

    fn len(&self) -> usize {
        self.rows * self.channels
    }

    fn check(&self, name: &str, tensors: &[(&str, &Tensor, usize)]) {
        assert!(self.rows >= 1, "{name}: no rows");
        for (what, t, len) in tensors {
            assert_eq!(t.len, *len, "{name}: {what} has the wrong length");
        }
    }
}

/// The batch's statistics of x: `batch_mean[c]`, `batch_var[c]` (biased), then, unless `updated[c]`
/// says this step already did, moving = moving * momentum + batch_stat * (1 - momentum). `updated`
/// (u32 per channel, zeros at first) is the op's own; `step_state` holds the step.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_stats(
    gpu: &Gpu,
    d: &BatchNormDims,
    x: &Tensor,
    batch_mean: &Tensor,
    batch_var: &Tensor,
    moving_mean: &Tensor,
    moving_var: &Tensor,
    updated: &Tensor,
    step_state: &Tensor,
) -> Dispatch {
    let c = d.channels;
    d.check(
        "batch_norm_stats",
        &[
            ("x", x, d.len()),
            ("batch_mean", batch_mean, c),
            ("batch_var", batch_var, c),
            ("moving_mean", moving_mean, c),
            ("moving_var", moving_var, c),
            ("updated", updated, c),
            ("step_state", step_state, StepState::WORDS),
        ],
    );
    gpu.dispatch(
        "batch_norm_stats",
        &SHADER,
        "batch_norm_stats",
        &[("WG", WG as f64)],
        &d.params(),
        &[
            x,
            batch_mean,
            batch_var,
            moving_mean,
            moving_var,
            updated,
            step_state,
        ],
        super::grid(gpu, c * LANES, LANES as u32),
        Cost {
            flops: 3 * d.len() as u64,
            bytes: (2 * d.len() + 7 * c) as u64 * WORD,
        },
    )
}

/// y = x * inv + (beta - mean * inv), inv = gamma / sqrt(var + epsilon), per channel; `mean` and
/// `var` are the batch's (training) or the moving statistics (evaluation).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_normalize(
    gpu: &Gpu,
    d: &BatchNormDims,
    x: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    y: &Tensor,
) -> Dispatch {
    let c = d.channels;
    d.check(
        "batch_norm_normalize",
        &[
            ("x", x, d.len()),
            ("y", y, d.len()),
            ("mean", mean, c),
            ("var", var, c),
            ("gamma", gamma, c),
            ("beta", beta, c),
        ],
    );
    gpu.dispatch(
        "batch_norm_normalize",
        &SHADER,
        "batch_norm_normalize",
        &[("WG", WG as f64)],
        &d.params(),
        &[x, y, mean, var, gamma, beta],
        super::grid(gpu, d.len(), WG),
        Cost {
            flops: 2 * d.len() as u64,
            bytes: (2 * d.len() + 4 * c) as u64 * WORD,
        },
    )
}

/// dbeta[c] = sum of dy, dgamma[c] = sum of dy * (x - mean) / sqrt(var + epsilon), over the rows,
/// with the batch's statistics.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_reduce(
    gpu: &Gpu,
    d: &BatchNormDims,
    x: &Tensor,
    dy: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    dgamma: &Tensor,
    dbeta: &Tensor,
) -> Dispatch {
    let c = d.channels;
    d.check(
        "batch_norm_reduce",
        &[
            ("x", x, d.len()),
            ("dy", dy, d.len()),
            ("mean", mean, c),
            ("var", var, c),
            ("dgamma", dgamma, c),
            ("dbeta", dbeta, c),
        ],
    );
    gpu.dispatch(
        "batch_norm_reduce",
        &SHADER,
        "batch_norm_reduce",
        &[("WG", WG as f64)],
        &d.params(),
        &[x, dy, mean, var, dgamma, dbeta],
        super::grid(gpu, c * LANES, LANES as u32),
        Cost {
            flops: 5 * d.len() as u64,
            bytes: (2 * d.len() + 4 * c) as u64 * WORD,
        },
    )
}

/// dx = gamma / sqrt(var + epsilon) * (dy - dbeta / N - xhat * dgamma / N), N = rows, from
/// `batch_norm_reduce`'s sums.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_dx(
    gpu: &Gpu,
    d: &BatchNormDims,
    x: &Tensor,
    dy: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    gamma: &Tensor,
    dgamma: &Tensor,
    dbeta: &Tensor,
    dx: &Tensor,
) -> Dispatch {
    let c = d.channels;
    d.check(
        "batch_norm_dx",
        &[
            ("x", x, d.len()),
            ("dy", dy, d.len()),
            ("dx", dx, d.len()),
            ("mean", mean, c),
            ("var", var, c),
            ("gamma", gamma, c),
            ("dgamma", dgamma, c),
            ("dbeta", dbeta, c),
        ],
    );
    gpu.dispatch(
        "batch_norm_dx",
        &SHADER,
        "batch_norm_dx",
        &[("WG", WG as f64)],
        &d.params(),
        &[x, dy, mean, var, gamma, dgamma, dbeta, dx],
        super::grid(gpu, d.len(), WG),
        Cost {
            flops: 8 * d.len() as u64,
            bytes: (3 * d.len() + 5 * c) as u64 * WORD,
        },
    )
}
