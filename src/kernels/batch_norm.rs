//! BatchNormalization over the last axis, `shaders/batch_norm.wgsl`. CPU twin:
//! `crate::reference::batch_norm`.
//!
//! Training runs `batch_norm_stats` (the batch's mean and biased variance per channel, and the
//! moving statistics' update, once per step) then `batch_norm_normalize` on those statistics;
//! evaluation runs `batch_norm_normalize` on the moving statistics. The backward is
//! `batch_norm_reduce` (dgamma, dbeta) then `batch_norm_dx`. The two reductions take two dispatches
//! each, through a scratch of `batch_norm_scratch` words (partial sums per chunk of rows).

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
                rows_per_chunk,
                _pad0,
                _pad1
            }),
            StepState::host_struct(),
        ],
        consts: vec![("ROWS_PER_BLOCK", ROWS_PER_BLOCK as u32)],
    }]
}

/// Invocations per workgroup of every entry point: the shader's `WG` override.
const WG: u32 = 256;
/// Rows one invocation of a chunk pass sums: few enough that a conv layer's batch (131,072 rows)
/// gives tens of thousands of invocations, enough that the per-channel pass over the chunks is short.
const ROWS_PER_CHUNK: usize = 128;

/// The most loop iterations one invocation of these kernels takes over `rows` rows
/// (`Gpu::loop_limit`): a chunk's rows twice (sum, then squares), or every chunk twice (the
/// per-channel statistics).
pub fn loop_steps(rows: usize) -> usize {
    2 * ROWS_PER_CHUNK.max(rows.div_ceil(ROWS_PER_CHUNK)) + 2
}

/// Rows of one channel per invocation in the element-wise entry points (the shader's
/// `ROWS_PER_BLOCK`).
const ROWS_PER_BLOCK: usize = 8;

/// Scratch words `batch_norm_stats` and `batch_norm_reduce` need for `rows` × `channels` (a vec2 of
/// partial sums per chunk of rows and channel); one buffer can serve both, as they never overlap.
pub fn batch_norm_scratch(rows: usize, channels: usize) -> usize {
    2 * rows.div_ceil(ROWS_PER_CHUNK) * channels
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    channels: u32,
    momentum: f32,
    one_minus_momentum: f32,
    epsilon: f32,
    rows_per_chunk: u32,
    _pad0: u32,
    _pad1: u32,
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
    /// The entry point `entry` of this shader on `buffers`, with these dimensions' parameters.
    fn dispatch(
        &self,
        gpu: &Gpu,
        entry: &'static str,
        buffers: &[&Tensor],
        workgroups: [u32; 3],
        cost: Cost,
    ) -> Dispatch {
        let constants = [("WG", WG as f64)];
        gpu.dispatch(
            entry,
            &SHADER,
            entry,
            &constants,
            &self.params(),
            buffers,
            workgroups,
            cost,
        )
    }

    fn params(&self) -> Params {
        Params {
            rows: self.rows as u32,
            channels: self.channels as u32,
            momentum: self.momentum as f32,
            one_minus_momentum: (1.0 - self.momentum) as f32,
            epsilon: self.epsilon as f32,
            rows_per_chunk: ROWS_PER_CHUNK as u32,
            _pad0: 0,
            _pad1: 0,
        }
    }

    fn len(&self) -> usize {
        self.rows * self.channels
    }

    /// The (block, channel) pairs of an element-wise pass.
    fn block_pairs(&self) -> usize {
        self.rows.div_ceil(ROWS_PER_BLOCK) * self.channels
    }

    /// The (chunk, channel) pairs of a chunk pass.
    fn chunk_pairs(&self) -> usize {
        self.rows.div_ceil(ROWS_PER_CHUNK) * self.channels
    }

    /// The part of `scratch` the reductions use, checked to be there.
    fn scratch(&self, name: &str, scratch: &Tensor) -> Tensor {
        let words = batch_norm_scratch(self.rows, self.channels);
        assert!(scratch.len >= words, "{name}: scratch too small");
        scratch.slice(0, words)
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
/// (u32 per channel, zeros at first) is the op's own; `step_state` holds the step. Two dispatches,
/// through `scratch` (at least `batch_norm_scratch(rows, channels)` words).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_stats(
    gpu: &Gpu,
    d: &BatchNormDims,
    x: &Tensor,
    scratch: &Tensor,
    batch_mean: &Tensor,
    batch_var: &Tensor,
    moving_mean: &Tensor,
    moving_var: &Tensor,
    updated: &Tensor,
    step_state: &Tensor,
) -> Vec<Dispatch> {
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
    let chunks = d.scratch("batch_norm_stats", scratch);
    vec![
        d.dispatch(
            gpu,
            "batch_norm_chunk_stats",
            &[x, &chunks],
            super::grid(gpu, d.chunk_pairs(), WG),
            Cost {
                flops: 4 * d.len() as u64,
                bytes: (2 * d.len() + chunks.len) as u64 * WORD,
            },
        ),
        d.dispatch(
            gpu,
            "batch_norm_stats",
            &[
                &chunks,
                batch_mean,
                batch_var,
                moving_mean,
                moving_var,
                updated,
                step_state,
            ],
            super::grid(gpu, c, WG),
            Cost {
                flops: 3 * chunks.len as u64,
                bytes: (2 * chunks.len + 7 * c) as u64 * WORD,
            },
        ),
    ]
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
    d.dispatch(
        gpu,
        "batch_norm_normalize",
        &[x, y, mean, var, gamma, beta],
        super::grid(gpu, d.block_pairs(), WG),
        Cost {
            flops: 2 * d.len() as u64,
            bytes: (2 * d.len() + 4 * c) as u64 * WORD,
        },
    )
}

/// dbeta[c] = sum of dy, dgamma[c] = sum of dy * (x - mean) / sqrt(var + epsilon), over the rows,
/// with the batch's statistics. Two dispatches, through `scratch` (at least
/// `batch_norm_scratch(rows, channels)` words).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_reduce(
    gpu: &Gpu,
    d: &BatchNormDims,
    x: &Tensor,
    dy: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    scratch: &Tensor,
    dgamma: &Tensor,
    dbeta: &Tensor,
) -> Vec<Dispatch> {
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
    let chunks = d.scratch("batch_norm_reduce", scratch);
    vec![
        d.dispatch(
            gpu,
            "batch_norm_chunk_reduce",
            &[x, dy, mean, var, &chunks],
            super::grid(gpu, d.chunk_pairs(), WG),
            Cost {
                flops: 5 * d.len() as u64,
                bytes: (2 * d.len() + 2 * c + chunks.len) as u64 * WORD,
            },
        ),
        d.dispatch(
            gpu,
            "batch_norm_reduce",
            &[&chunks, dgamma, dbeta],
            super::grid(gpu, c, WG),
            Cost {
                flops: chunks.len as u64,
                bytes: (chunks.len + 2 * c) as u64 * WORD,
            },
        ),
    ]
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
    d.dispatch(
        gpu,
        "batch_norm_dx",
        &[x, dy, mean, var, gamma, dgamma, dbeta, dx],
        super::grid(gpu, d.block_pairs(), WG),
        Cost {
            flops: 8 * d.len() as u64,
            bytes: (3 * d.len() + 5 * c) as u64 * WORD,
        },
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn loop_steps_are_a_chunks_rows_or_the_chunks_twice() {
        assert_eq!(super::loop_steps(100), 258);
        // The notebook's convolution output at batch 128: 1024 chunks.
        assert_eq!(super::loop_steps(128 * 32 * 32), 2050);
        // ~3.1 million rows pass llvmpipe's limit with its margin.
        assert!(super::loop_steps(3_200_000) > crate::gpu::MAX_LOOP_STEPS);
    }
}
