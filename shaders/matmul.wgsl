// Matrix products for dense layers: C[M,N] = op(A)[M,K] * op(B)[K,N] (+ bias[N]). op(A) is A stored
// [M,K], or [K,M] when TRANS_A; op(B) is [K,N], or [N,K] when TRANS_B. CPU twin: src/reference/matmul.rs.
//   forward   y  = x  * W     (no transposes)  -> matmul_tile when N % 4 == 0
//   backward  dW = x^T * dy   (TRANS_A)        -> matmul_tile when N % 4 == 0
//   backward  dx = dy * W^T   (TRANS_B)        -> matmul_tile_nt when K % 4 == 0
// and `matmul` (4x4 per invocation) every other shape and transpose.
//
// Two flavours (`MatmulFlavour`, src/gpu/flavours.rs). `Registers` (matmul, matmul_tile, matmul_tile_nt)
// for software adapters, which emulate every storage load lane by lane while FMAs are nearly free: each
// invocation keeps TM x 4*TQ outputs in registers, maximising FMAs per loaded word, with no shared memory
// and no barriers. `Shared` (matmul_shared) for GPUs: a classic block-tiled GEMM, a BM x BN tile per
// workgroup of 16x16, 8x8 outputs per invocation, K staged BK at a time through double-buffered K-major
// vec4 slabs in workgroup memory, one barrier per slab. Split-K: when M x N gives too few tiles,
// workgroup z takes `k_split` of K into a scratch [splits, M, N] and `matmul_split_sum` adds the
// splits in order, and the bias (no atomics: deterministic). The subgroup variant of `Registers` is
// matmul_subgroup.wgsl. Timings and the tiles tried: docs/PERFORMANCE.md.
//
// Column sums (`p.sums_at` != 0; every kernel but matmul_tile_nt): C also takes sum_k op(B)[k, n] at
// word sums_at + n, so dW = x^T dy writes the bias gradient 1^T dy too (one dispatch instead of a
// column_sum). The grid has one more row of workgroups, whose rows start at or past M: a
// workgroup-uniform branch at the top sends them to a small function and leaves the product's path
// as it was (a uniform flag inside the inner loops once slowed lavapipe's code badly; see
// docs/PERFORMANCE.md).
//
// `a4`, `b4` and `c4` are vec4 views of the bindings of `a`, `b` and `c`; each entry point uses one view
// of each, so its automatic layout has one variable per binding.

//!include common/matmul_params.wgsl
//!include common/matmul_sums.wgsl

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read_write> c4: array<vec4<f32>>;

override TRANS_A: bool = false;
override TRANS_B: bool = false;
// The general kernel's workgroup: WG_X invocations along N, WG_Y along M, each computing 4x4.
override WG_X: u32;
override WG_Y: u32;
// The tiled kernels: TILE_WG invocations per workgroup, each computing TM rows of C times TQ column
// quads (matmul_tile) or TN columns (matmul_tile_nt). Constants, since they bound private arrays, so the
// loops over them unroll and the tiles live in registers; tests/shaders.rs checks them against
// src/kernels/matmul.rs.
const TILE_WG: u32 = 16u;
const TM: u32 = 8u;
const TQ: u32 = 4u;
const TN: u32 = 8u;
// matmul_tile: blocks of TM rows per workgroup (set by src/kernels/matmul.rs per product), and the
// length of K each chunk takes (as matmul_subgroup.wgsl's matmul_sg_tile, whose header says why).
override RB: u32;
const KC: u32 = 256u;

fn load_a(row: u32, kk: u32) -> f32 {
    if TRANS_A {
        return a[kk * p.m + row];
    }
    return a[row * p.k + kk];
}

fn load_b(kk: u32, col: u32) -> f32 {
    if TRANS_B {
        return b[col * p.k + kk];
    }
    return b[kk * p.n + col];
}

// The sums row of `matmul` and `matmul_shared`: column `col` of op(B) (when in range) summed over
// [k_begin, k_end) in order, written at word `at + col` of C (column_sum.wgsl's order and bits).
fn column_sum_of_b(col: u32, k_begin: u32, k_end: u32, at: u32) {
    if col < p.n {
        var s = 0.0;
        for (var kk = k_begin; kk < k_end; kk++) {
            s += load_b(kk, col);
        }
        c[at + col] = s;
    }
}

// Any shape, any transposes: each invocation computes a 4x4 block of C in registers. Loads are clamped
// to the matrix instead of branched on, so the inner loop has no bounds checks; only stores are guarded.
@compute @workgroup_size(WG_X, WG_Y, 1)
fn matmul(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    if wg.y * (WG_Y * 4u) >= p.m {
        // The sums row: invocations (x, j < 4) take column 4 gid.x + j.
        if lid.y < 4u {
            column_sum_of_b(gid.x * 4u + lid.y, 0u, p.k, p.sums_at);
        }
        return;
    }
    let row0 = gid.y * 4u;
    let col0 = gid.x * 4u;
    if row0 >= p.m || col0 >= p.n {
        return;
    }
    let r = min(vec4<u32>(row0, row0 + 1u, row0 + 2u, row0 + 3u), vec4<u32>(p.m - 1u));
    let cl = min(vec4<u32>(col0, col0 + 1u, col0 + 2u, col0 + 3u), vec4<u32>(p.n - 1u));
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var kk = 0u; kk < p.k; kk++) {
        let bv = vec4<f32>(load_b(kk, cl.x), load_b(kk, cl.y), load_b(kk, cl.z), load_b(kk, cl.w));
        acc0 += load_a(r.x, kk) * bv;
        acc1 += load_a(r.y, kk) * bv;
        acc2 += load_a(r.z, kk) * bv;
        acc3 += load_a(r.w, kk) * bv;
    }
    var bias_v = vec4<f32>(0.0);
    if p.has_bias != 0u {
        bias_v = vec4<f32>(bias[cl.x], bias[cl.y], bias[cl.z], bias[cl.w]);
    }
    let rows = array<vec4<f32>, 4>(acc0 + bias_v, acc1 + bias_v, acc2 + bias_v, acc3 + bias_v);
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + i;
        if row < p.m {
            for (var j = 0u; j < 4u; j++) {
                let col = col0 + j;
                if col < p.n {
                    c[row * p.n + col] = rows[i][j];
                }
            }
        }
    }
}

// op(B) = B stored [K,N] with N % 4 == 0; A stored [M,K], or [K,M] when TRANS_A (the forward product
// and the weight gradient). Workgroup (x, y) computes TILE_WG*TQ column quads from quad TILE_WG*TQ*x
// for the RB blocks of TM rows from row TM*RB*y; invocation i owns quads i, i+TILE_WG, ... (so
// neighbours read neighbouring quads, and stores are coalesced on a GPU). K is walked KC at a time,
// every block per chunk, so the chunk's slab of B comes from memory once per workgroup, not once per
// block; a block's sums wait in C between chunks (f32: each output adds in order of k from 0 with
// one accumulator, the bias once at the end). The k loop runs K * RB times per invocation, which
// llvmpipe caps (src/kernels/matmul.rs picks RB within it).
@compute @workgroup_size(TILE_WG)
fn matmul_tile(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    if wg.y * (TM * RB) >= p.m {
        column_sums4(wg.x * (TILE_WG * TQ) + lid.x, TILE_WG, TQ);
        return;
    }
    let quads = p.n / 4u;
    let q0 = wg.x * (TILE_WG * TQ) + lid.x;
    // Rows and quads past the end are clamped for loading; their results are dropped at the store.
    var qs: array<u32, TQ>;
    for (var t = 0u; t < TQ; t++) {
        qs[t] = min(q0 + t * TILE_WG, quads - 1u);
    }
    var bias_v: array<vec4<f32>, TQ>;
    if p.has_bias != 0u {
        for (var t = 0u; t < TQ; t++) {
            let bq = 4u * qs[t];
            bias_v[t] = vec4<f32>(bias[bq], bias[bq + 1u], bias[bq + 2u], bias[bq + 3u]);
        }
    }
    // One block shares nothing: its chunk is all of K. At least one chunk, so that K = 0 still
    // writes the bias.
    let kc = select(KC, max(p.k, 1u), RB == 1u);
    var k0 = 0u;
    loop {
        let k1 = min(k0 + kc, p.k);
        for (var rb = 0u; rb < RB; rb++) {
            let row0 = (wg.y * RB + rb) * TM;
            if row0 >= p.m {
                break;
            }
            var rows: array<u32, TM>;
            for (var r = 0u; r < TM; r++) {
                rows[r] = min(row0 + r, p.m - 1u);
            }
            var acc: array<vec4<f32>, TM * TQ>;
            if k0 > 0u {
                for (var r = 0u; r < TM; r++) {
                    for (var t = 0u; t < TQ; t++) {
                        acc[r * TQ + t] = c4[rows[r] * quads + qs[t]];
                    }
                }
            }
            for (var kk = k0; kk < k1; kk++) {
                var bq: array<vec4<f32>, TQ>;
                for (var t = 0u; t < TQ; t++) {
                    bq[t] = b4[kk * quads + qs[t]];
                }
                for (var r = 0u; r < TM; r++) {
                    let ar = load_a(rows[r], kk);
                    for (var t = 0u; t < TQ; t++) {
                        acc[r * TQ + t] += ar * bq[t];
                    }
                }
            }
            let last = k1 == p.k;
            for (var t = 0u; t < TQ; t++) {
                let q = q0 + t * TILE_WG;
                if q < quads {
                    for (var r = 0u; r < TM; r++) {
                        if row0 + r < p.m {
                            var v = acc[r * TQ + t];
                            if last {
                                v += bias_v[t];
                            }
                            c4[(row0 + r) * quads + q] = v;
                        }
                    }
                }
            }
        }
        continuing {
            k0 = k1;
            break if k0 >= p.k;
        }
    }
}

// C = A * B^T with A stored [M,K], B stored [N,K] and K % 4 == 0 (the input gradient dy * W^T). Both
// operands are read along K as vec4: A's TM rows at workgroup-uniform addresses, B's rows (columns of C)
// TN per invocation: i, i+TILE_WG, ... Workgroup (x, y) computes rows TM*y.. and TILE_WG*TN columns.
@compute @workgroup_size(TILE_WG)
fn matmul_tile_nt(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let k4 = p.k / 4u;
    let col0 = wg.x * (TILE_WG * TN) + lid.x;
    let row0 = wg.y * TM;
    var rows: array<u32, TM>;
    for (var r = 0u; r < TM; r++) {
        rows[r] = min(row0 + r, p.m - 1u) * k4;
    }
    var cols: array<u32, TN>;
    for (var t = 0u; t < TN; t++) {
        cols[t] = min(col0 + t * TILE_WG, p.n - 1u) * k4;
    }
    var acc: array<f32, TM * TN>;
    for (var kq = 0u; kq < k4; kq++) {
        var bq: array<vec4<f32>, TN>;
        for (var t = 0u; t < TN; t++) {
            bq[t] = b4[cols[t] + kq];
        }
        for (var r = 0u; r < TM; r++) {
            let aq = a4[rows[r] + kq];
            for (var t = 0u; t < TN; t++) {
                acc[r * TN + t] += dot(aq, bq[t]);
            }
        }
    }
    for (var t = 0u; t < TN; t++) {
        let col = col0 + t * TILE_WG;
        if col < p.n {
            var bias_v = 0.0;
            if p.has_bias != 0u {
                bias_v = bias[col];
            }
            for (var r = 0u; r < TM; r++) {
                if row0 + r < p.m {
                    c[(row0 + r) * p.n + col] = acc[r * TN + t] + bias_v;
                }
            }
        }
    }
}

// ---- Shared flavour: block-tiled GEMM through workgroup memory (see the header) ----
// Keep in sync with src/kernels/matmul.rs.
//
// The shape is the classic SIMT SGEMM (as CUTLASS's SIMT kernels): a 128 x 128 block of C per
// workgroup of 16 x 16 invocations, each invocation an 8 x 8 tile (64 sums in registers), K staged
// BK = 8 at a time. Per step of k an invocation reads 2 vec4 of A and 2 of B from the slab for 64 FMAs
// (the 4x4 tiles before read 2 for 16): 4 FMAs per word read from workgroup memory, and 64 per word
// read from global memory (each slab word feeds 128 outputs; 32 with 64 x 64 blocks). Its 8 rows are
// two quads 64 apart, its 8 columns likewise, so the 16 invocations of a row read 16 consecutive vec4
// of B (no bank conflicts) and the rows of a subgroup read the same vec4 of A (a broadcast).
// Double buffering: two slabs of each operand, 2 x 2 x BK x 128 words = exactly WebGPU's default
// 16 KiB of workgroup storage (hence BK = 8 and no padding). While the workgroup multiplies one slab,
// each invocation holds its share of the next in registers (one quad of A, one of B: global loads in
// flight during the FMAs) and stores it into the other slab afterwards, so one barrier per slab
// suffices: a slab is rewritten only after the barrier that ends the step reading it.
// Split-K (workgroup z) is for shapes with fewer 128 x 128 tiles than a large GPU has room for
// (src/kernels/matmul.rs: shared_splits).
const BM: u32 = 128u;
const BN: u32 = 128u;
const BK: u32 = 8u;
// 16 x 16 invocations, each SH_T x SH_T outputs in two quads per axis: BM = SH_WG * SH_T.
const SH_WG: u32 = 16u;
const SH_T: u32 = 8u;
// Quads per k in a slab, and vec4 per slab: BK * BM / 4 = 256, one quad of each operand per invocation.
const QA: u32 = BM / 4u;
const QB: u32 = BN / 4u;
const SLAB_A: u32 = BK * QA;
const SLAB_B: u32 = BK * QB;

var<workgroup> slab_a: array<vec4<f32>, 2u * SLAB_A>;
var<workgroup> slab_b: array<vec4<f32>, 2u * SLAB_B>;

// Invocation li's quad of the slab of op(A) at rows m0.., k0..: four consecutive words in memory, so
// neighbouring invocations read neighbouring 16 bytes. A stored [K,M]: the quad is 4 rows of one k
// (k = li / QA). A stored [M,K]: 4 k of one row (row = li / (BK/4)). Zero past M and past k_end.
fn fetch_a(m0: u32, k0: u32, k_end: u32, li: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        var row: u32;
        var kk: u32;
        if TRANS_A {
            kk = k0 + li / QA;
            row = m0 + (li % QA) * 4u + j;
        } else {
            row = m0 + li / (BK / 4u);
            kk = k0 + (li % (BK / 4u)) * 4u + j;
        }
        if row < p.m && kk < k_end {
            v[j] = load_a(row, kk);
        }
    }
    return v;
}

// The same for op(B) at k0.., columns n0..: B stored [K,N] gives 4 columns of one k, B stored [N,K]
// 4 k of one column.
fn fetch_b(n0: u32, k0: u32, k_end: u32, li: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        var col: u32;
        var kk: u32;
        if TRANS_B {
            col = n0 + li / (BK / 4u);
            kk = k0 + (li % (BK / 4u)) * 4u + j;
        } else {
            kk = k0 + li / QB;
            col = n0 + (li % QB) * 4u + j;
        }
        if col < p.n && kk < k_end {
            v[j] = load_b(kk, col);
        }
    }
    return v;
}

// Stores a fetched quad into the slab at `at` (0 or SLAB_A), K-major: quad q of k holds rows 4q..4q+3.
// A quad along M is one vec4; a quad along K is spread over 4 k (two invocations per bank at most).
fn stash_a(at: u32, li: u32, v: vec4<f32>) {
    if TRANS_A {
        slab_a[at + li] = v;
    } else {
        let row = li / (BK / 4u);
        let k0 = (li % (BK / 4u)) * 4u;
        for (var j = 0u; j < 4u; j++) {
            slab_a[at + (k0 + j) * QA + row / 4u][row % 4u] = v[j];
        }
    }
}

fn stash_b(at: u32, li: u32, v: vec4<f32>) {
    if TRANS_B {
        let col = li / (BK / 4u);
        let k0 = (li % (BK / 4u)) * 4u;
        for (var j = 0u; j < 4u; j++) {
            slab_b[at + (k0 + j) * QB + col / 4u][col % 4u] = v[j];
        }
    } else {
        slab_b[at + li] = v;
    }
}

// Workgroup (x, y, z) computes C[128y.., 128x..] over K range [z * k_split, (z+1) * k_split), writing
// to `c` at offset z*M*N: C itself with one split, the scratch tensor of partial sums with several.
// Invocation (x', y') (its local id) owns rows 128y + 4y' + {0..3, 64..67} and columns
// 128x + 4x' + {0..3, 64..67}; acc[2i + h] holds its row i, column quad h.
@compute @workgroup_size(SH_WG, SH_WG, 1)
fn matmul_shared(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    if wg.y * BM >= p.m {
        // The sums row: invocation li < BN takes column 128x + li over split z's range of K, written
        // after the partial products with several splits (`sums_at` is then splits * M * N).
        if li < BN {
            let k0 = wg.z * p.k_split;
            column_sum_of_b(wg.x * BN + li, k0, min(p.k, k0 + p.k_split), p.sums_at + wg.z * p.n);
        }
        return;
    }
    let m0 = wg.y * BM;
    let n0 = wg.x * BN;
    let k_begin = wg.z * p.k_split;
    let k_end = min(p.k, k_begin + p.k_split);
    var acc: array<vec4<f32>, 16>;
    // Uniform across the workgroup (workgroup id and uniforms only), so the barriers inside are legal.
    if k_begin < k_end {
        let slabs = (k_end - k_begin + BK - 1u) / BK;
        var va = fetch_a(m0, k_begin, k_end, li);
        var vb = fetch_b(n0, k_begin, k_end, li);
        stash_a(0u, li, va);
        stash_b(0u, li, vb);
        workgroupBarrier();
        for (var s = 0u; s < slabs; s++) {
            let more = s + 1u < slabs;
            // The next slab's loads, issued before this slab's FMAs so they overlap them.
            if more {
                va = fetch_a(m0, k_begin + (s + 1u) * BK, k_end, li);
                vb = fetch_b(n0, k_begin + (s + 1u) * BK, k_end, li);
            }
            let at_a = (s % 2u) * SLAB_A;
            let at_b = (s % 2u) * SLAB_B;
            for (var kk = 0u; kk < BK; kk++) {
                let a0 = slab_a[at_a + kk * QA + lid.y];
                let a1 = slab_a[at_a + kk * QA + lid.y + SH_WG];
                let b0 = slab_b[at_b + kk * QB + lid.x];
                let b1 = slab_b[at_b + kk * QB + lid.x + SH_WG];
                acc[0] += a0.x * b0;
                acc[1] += a0.x * b1;
                acc[2] += a0.y * b0;
                acc[3] += a0.y * b1;
                acc[4] += a0.z * b0;
                acc[5] += a0.z * b1;
                acc[6] += a0.w * b0;
                acc[7] += a0.w * b1;
                acc[8] += a1.x * b0;
                acc[9] += a1.x * b1;
                acc[10] += a1.y * b0;
                acc[11] += a1.y * b1;
                acc[12] += a1.z * b0;
                acc[13] += a1.z * b1;
                acc[14] += a1.w * b0;
                acc[15] += a1.w * b1;
            }
            // Into the other slab, whose last readers finished before the previous barrier.
            if more {
                stash_a(SLAB_A - at_a, li, va);
                stash_b(SLAB_B - at_b, li, vb);
            }
            workgroupBarrier();
        }
    }
    let base = wg.z * p.m * p.n;
    for (var i = 0u; i < SH_T; i++) {
        let row = m0 + (i / 4u) * (BM / 2u) + lid.y * 4u + i % 4u;
        if row < p.m {
            for (var h = 0u; h < 2u; h++) {
                for (var j = 0u; j < 4u; j++) {
                    let col = n0 + h * (BN / 2u) + lid.x * 4u + j;
                    if col < p.n {
                        var v = acc[2u * i + h][j];
                        if p.has_bias != 0u {
                            v += bias[col];
                        }
                        c[base + row * p.n + col] = v;
                    }
                }
            }
        }
    }
}

@group(0) @binding(1) var<storage, read> parts: array<f32>;
@group(0) @binding(2) var<storage, read> sum_bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> sum_out: array<f32>;

override SUM_WG: u32;

// C = sum over z of parts[z] (+ bias): parts is [splits, M, N], one invocation per element of C,
// splits added in order. Linear index over a grid_1d grid. With column sums, parts then holds each
// split's [N] sums and N more invocations add them in order into C at word sums_at.
@compute @workgroup_size(SUM_WG)
fn matmul_split_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * SUM_WG;
    let len = p.m * p.n;
    if i >= len {
        if p.sums_at != 0u && i < len + p.n {
            let j = i - len;
            let at = p.splits * len + j;
            var s = parts[at];
            for (var z = 1u; z < p.splits; z++) {
                s += parts[at + z * p.n];
            }
            sum_out[p.sums_at + j] = s;
        }
        return;
    }
    var v = parts[i];
    for (var z = 1u; z < p.splits; z++) {
        v += parts[z * len + i];
    }
    if p.has_bias != 0u {
        v += sum_bias[i % p.n];
    }
    sum_out[i] = v;
}
