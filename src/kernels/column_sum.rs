//! Column sums (bias gradients), `shaders/column_sum.wgsl`. CPU twin: `crate::reference::column_sum`.

use crate::gpu::{ColumnSumFlavour, Cost, Dispatch, Gpu, Tensor, WORD};

super::shader!("column_sum.wgsl");

pub(super) fn contracts() -> Vec<super::Contract> {
    vec![super::Contract {
        shader: &SHADER,
        structs: vec![super::host_struct!(Params {
            rows,
            cols,
            rows_per_chunk,
            _pad
        })],
        consts: vec![("LANES", LANES as u32)],
    }]
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    rows_per_chunk: u32,
    _pad: u32,
}

/// Rows summed by one invocation in the first of two passes. Enough that the second pass is short,
/// few enough that the first has thousands of invocations for a conv layer's bias.
const ROWS_PER_CHUNK: usize = 256;

/// Scratch words `column_sum` needs for a [rows, cols] input (0 when one pass suffices).
pub fn column_sum_scratch(rows: usize, cols: usize) -> usize {
    if rows > ROWS_PER_CHUNK * 4 {
        rows.div_ceil(ROWS_PER_CHUNK) * cols
    } else {
        0
    }
}

/// The most loop iterations one invocation of `column_sum` takes over `rows` rows: a chunk's rows,
/// or the chunks of the last pass (`Gpu::loop_limit`).
pub fn loop_steps(rows: usize) -> usize {
    if column_sum_scratch(rows, 1) == 0 {
        rows + LANES.ilog2() as usize
    } else {
        ROWS_PER_CHUNK.max(rows.div_ceil(ROWS_PER_CHUNK) + LANES.ilog2() as usize)
    }
}

/// Invocations per column in `column_sum_lanes` (the shader's `LANES`, an array bound).
const LANES: usize = 64;
/// Invocations per workgroup of `column_sum`: the shader's `WG` override.
const WG: u32 = 64;

/// out[c] = sum_r x[r, c] for x stored as [rows, cols]. Tall inputs take two dispatches through
/// `scratch`, which must hold `column_sum_scratch(rows, cols)` words. The last pass runs
/// `gpu.flavours.column_sum`.
pub fn column_sum(
    gpu: &Gpu,
    x: &Tensor,
    scratch: &Tensor,
    out: &Tensor,
    rows: usize,
    cols: usize,
) -> Vec<Dispatch> {
    column_sum_with(gpu, x, scratch, out, rows, cols, gpu.flavours.column_sum)
}

/// `column_sum` with the last pass's flavour given (the tests run both on one device).
pub fn column_sum_with(
    gpu: &Gpu,
    x: &Tensor,
    scratch: &Tensor,
    out: &Tensor,
    rows: usize,
    cols: usize,
    flavour: ColumnSumFlavour,
) -> Vec<Dispatch> {
    assert_eq!(x.len, rows * cols, "column_sum: input has the wrong size");
    assert_eq!(out.len, cols, "column_sum: output has the wrong size");
    let one = |input: &Tensor, output: &Tensor, rows: usize, per_chunk: usize| {
        let chunks = rows.div_ceil(per_chunk);
        let params = Params {
            rows: rows as u32,
            cols: cols as u32,
            rows_per_chunk: per_chunk as u32,
            _pad: 0,
        };
        let cost = Cost {
            flops: (rows * cols) as u64,
            bytes: ((rows + chunks) * cols) as u64 * WORD,
        };
        let last = per_chunk >= rows;
        let (entry, groups) = if last && flavour == ColumnSumFlavour::WorkgroupPerColumn {
            (
                "column_sum_lanes",
                super::grid(gpu, cols * LANES, LANES as u32),
            )
        } else {
            ("column_sum", super::grid(gpu, chunks * cols, WG))
        };
        gpu.dispatch(
            "column_sum",
            &SHADER,
            entry,
            &[("WG", WG as f64)],
            &params,
            &[input, output],
            groups,
            cost,
        )
    };
    let scratch_len = column_sum_scratch(rows, cols);
    if scratch_len == 0 {
        return vec![one(x, out, rows, rows.max(1))];
    }
    assert!(scratch.len >= scratch_len, "column_sum: scratch too small");
    let partial = scratch.slice(0, scratch_len);
    let chunks = rows.div_ceil(ROWS_PER_CHUNK);
    vec![
        one(x, &partial, rows, ROWS_PER_CHUNK),
        one(&partial, out, chunks, chunks),
    ]
}
