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

/// Which invocations an entry point runs: one per (chunk of `ROWS_PER_CHUNK` rows, channel), per
/// (block of `ROWS_PER_BLOCK` rows, channel), or per channel.
#[derive(Clone, Copy)]
enum Pass {
    Chunks,
    Blocks,
    Channels,
}

/// `[("x", x), ...]`: tensors with their names, for `BatchNormDims::check`.
macro_rules! named {
    ($($t:ident),* $(,)?) => {
        [$((stringify!($t), $t)),*]
    };
}

/// A launch's cost: `flops`, and `words` of 32 bits moved.
fn cost(flops: usize, words: usize) -> Cost {
    Cost {
        flops: flops as u64,
        bytes: words as u64 * WORD,
    }
}

impl BatchNormDims {
    /// The entry point `entry` of this shader on `buffers`, with these dimensions' parameters, over
    /// the invocations of `pass`.
    fn dispatch(
        &self,
        gpu: &Gpu,
        entry: &'static str,
        pass: Pass,
        buffers: &[&Tensor],
        cost: Cost,
    ) -> Dispatch {
        let invocations = match pass {
            Pass::Chunks => self.rows.div_ceil(ROWS_PER_CHUNK) * self.channels,
            Pass::Blocks => self.rows.div_ceil(ROWS_PER_BLOCK) * self.channels,
            Pass::Channels => self.channels,
        };
        let constants = [("WG", WG as f64)];
        gpu.dispatch(
            entry,
            &SHADER,
            entry,
            &constants,
            &self.params(),
            buffers,
            super::grid(gpu, invocations, WG),
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

    /// The part of `scratch` the reductions use, checked to be there.
    fn scratch(&self, name: &str, scratch: &Tensor) -> Tensor {
        let words = batch_norm_scratch(self.rows, self.channels);
        assert!(scratch.len >= words, "{name}: scratch too small");
        scratch.slice(0, words)
    }

    /// Entry point `name`'s operands: at least one row, each of `elements` `[rows, channels]`, each
    /// of `per_channel` one word per channel.
    fn check(&self, name: &str, elements: &[(&str, &Tensor)], per_channel: &[(&str, &Tensor)]) {
        assert!(self.rows >= 1, "{name}: no rows");
        for (tensors, len) in [(elements, self.len()), (per_channel, self.channels)] {
            for (what, t) in tensors {
                assert_eq!(t.len, len, "{name}: {what} has the wrong length");
            }
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
    let name = "batch_norm_stats";
    let per_channel = named![batch_mean, batch_var, moving_mean, moving_var, updated];
    d.check(name, &named![x], &per_channel);
    assert_eq!(
        step_state.len,
        StepState::WORDS,
        "{name}: step_state has the wrong length"
    );
    let chunks = d.scratch(name, scratch);
    let (n, c) = (d.len(), d.channels);
    vec![
        d.dispatch(
            gpu,
            "batch_norm_chunk_stats",
            Pass::Chunks,
            &[x, &chunks],
            cost(4 * n, 2 * n + chunks.len),
        ),
        d.dispatch(
            gpu,
            name,
            Pass::Channels,
            &[
                &chunks,
                batch_mean,
                batch_var,
                moving_mean,
                moving_var,
                updated,
                step_state,
            ],
            cost(3 * chunks.len, 2 * chunks.len + 7 * c),
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
    let name = "batch_norm_normalize";
    d.check(name, &named![x, y], &named![mean, var, gamma, beta]);
    let (n, c) = (d.len(), d.channels);
    d.dispatch(
        gpu,
        name,
        Pass::Blocks,
        &[x, y, mean, var, gamma, beta],
        cost(2 * n, 2 * n + 4 * c),
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
    let name = "batch_norm_reduce";
    d.check(name, &named![x, dy], &named![mean, var, dgamma, dbeta]);
    let chunks = d.scratch(name, scratch);
    let (n, c) = (d.len(), d.channels);
    vec![
        d.dispatch(
            gpu,
            "batch_norm_chunk_reduce",
            Pass::Chunks,
            &[x, dy, mean, var, &chunks],
            cost(5 * n, 2 * n + 2 * c + chunks.len),
        ),
        d.dispatch(
            gpu,
            name,
            Pass::Channels,
            &[&chunks, dgamma, dbeta],
            cost(chunks.len, chunks.len + 2 * c),
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
    let name = "batch_norm_dx";
    d.check(
        name,
        &named![x, dy, dx],
        &named![mean, var, gamma, dgamma, dbeta],
    );
    let (n, c) = (d.len(), d.channels);
    d.dispatch(
        gpu,
        name,
        Pass::Blocks,
        &[x, dy, mean, var, gamma, dgamma, dbeta, dx],
        cost(8 * n, 3 * n + 5 * c),
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
