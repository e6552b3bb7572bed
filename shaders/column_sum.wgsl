// Column sums: out[c] = sum over rows r of x[r, c], for x stored row-major as [rows, cols]. A bias
// gradient is exactly this, summed over the batch (and pixels: channels-last makes a convolution's
// [N*H*W, C] a plain matrix). Where a layer's kernel and bias gradients lie together, as the network
// places them, the bias is summed by the kernel's gradient (matmul.wgsl's column sums for Dense;
// conv2d_backward_weight for Conv2D, whose chunk sums of both this then adds). CPU twin:
// src/reference/column_sum.rs.
//
// Tall inputs (131,072 rows for a conv bias summed apart from its kernel) are summed in two
// dispatches so that enough invocations run: the first writes partial sums of `rows_per_chunk` rows
// each, [chunks, cols]; the second sums those. Rows are always added in the same order, so results
// are deterministic.
//
// Two flavours of the last pass (`ColumnSumFlavour`, src/gpu/flavours.rs): `column_sum` gives each
// column one invocation that walks its rows (right for software adapters: few invocations, no
// barriers); `column_sum_lanes` gives each column a workgroup of LANES invocations that sum every
// LANES-th row and add their sums in a fixed tree through workgroup memory (a GPU wants many
// invocations; still deterministic). Timings: docs/PERFORMANCE.md.

struct Params {
    rows: u32,
    cols: u32,
    rows_per_chunk: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// One invocation per (chunk, column); x is the chunk index's fastest-varying partner so neighbouring
// invocations read neighbouring columns.
override WG: u32;

@compute @workgroup_size(WG)
fn column_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    let chunks = (p.rows + p.rows_per_chunk - 1u) / p.rows_per_chunk;
    if i >= chunks * p.cols {
        return;
    }
    let col = i % p.cols;
    let chunk = i / p.cols;
    let start = chunk * p.rows_per_chunk;
    let end = min(start + p.rows_per_chunk, p.rows);
    var s = 0.0;
    for (var r = start; r < end; r++) {
        s += x[r * p.cols + col];
    }
    out[chunk * p.cols + col] = s;
}

const LANES: u32 = 64u;
var<workgroup> lane_sums: array<f32, LANES>;

// One workgroup per column (grid spilling into y). The column is workgroup-uniform, so the early
// return is uniform control flow and every invocation that reaches a barrier has its whole workgroup.
@compute @workgroup_size(LANES)
fn column_sum_lanes(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let col = wg.x + wg.y * nwg.x;
    if col >= p.cols {
        return;
    }
    var s = 0.0;
    for (var r = lane; r < p.rows; r += LANES) {
        s += x[r * p.cols + col];
    }
    lane_sums[lane] = s;
    workgroupBarrier();
    for (var width = LANES / 2u; width > 0u; width /= 2u) {
        if lane < width {
            lane_sums[lane] += lane_sums[lane + width];
        }
        workgroupBarrier();
    }
    if lane == 0u {
        out[col] = lane_sums[0];
    }
}
