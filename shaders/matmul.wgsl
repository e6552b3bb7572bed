// Matrix products for dense layers: C[M,N] = op(A)[M,K] * op(B)[K,N] (+ bias[N]).
//
// op(A) is A stored row-major as [M,K], or its transpose stored as [K,M] when TRANS_A; likewise op(B) is
// [K,N], or [N,K] when TRANS_B. The three products of a dense layer are then one kernel family:
//   forward   y  = x  * W     (no transposes)      -> matmul_tile when N % 4 == 0
//   backward  dW = x^T * dy   (TRANS_A)            -> matmul_tile when N % 4 == 0
//   backward  dx = dy * W^T   (TRANS_B)            -> matmul_tile_nt when K % 4 == 0
// and `matmul` handles every other shape and transpose.
//
// Why big register tiles. On lavapipe (llvmpipe: invocations run 8 to a SIMD register on the CPU) every
// storage-buffer load is emulated one lane at a time with an exec-mask test and a bounds test, even when
// the address is the same for every invocation, and a vec4 load costs as much as four scalar ones;
// multiply-adds are nearly free. Measured on 2 cores: a loop of FMAs runs at ~10 GFLOP/s, the same
// loop with 4 uniform scalar loads per step at 2.2, with one vec4 load per step at 1.55. So the kernels
// maximise multiply-adds per loaded element: each invocation keeps TM x 4*TQ = 8 x 16 outputs in
// registers and, per step of K, loads 8 values of A (workgroup-uniform) and 16 of B, for 128 FMAs (5.3
// per loaded element, against 2 for the 4x4 tiles before). Workgroup-shared memory does not help
// there: its loads are emulated per lane too (a 16-row shared-memory tile ran 1.7x slower than the
// same kernel reading A from the buffer). On a GPU the same shape is a classic register-tiled GEMM: A
// uniform (a broadcast from cache), B read as vec4 with neighbouring invocations on neighbouring
// quads. No barriers, so no coroutine switches on lavapipe.
//
// Not here: sharing A through subgroups (each lane loads one of 8 values of A, subgroupBroadcast hands
// it to the others) cut the forward product to ~170 ms with 32x16 tiles on lavapipe, but subgroup
// operations in this file would make the whole module fail to compile on adapters without
// Features::SUBGROUP; it needs a shader file of its own, chosen when the feature is present.
//
// Measured on lavapipe (Mesa 22.3, 2 cores shared with other jobs, load average ~5), batch 128, the
// previous 4-row kernels -> these, medians of 5 interleaved runs: forward 128x512x8192 2365 -> 572 ms
// (4.1x); dW 8192x512x128 945 -> 366 ms (2.6x); dx 128x8192x512 1329 -> ~330 ms (4x, 8x8 tiles).
//
// `a4`, `b4` and `c4` are vec4 views of the same bindings as `a`, `b` and `c`; each entry point uses
// one view of each, so its automatic layout has one variable per binding.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    has_bias: u32,
}

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
override WG_X: u32 = 8u;
override WG_Y: u32 = 8u;
// The tiled kernels: TILE_WG invocations per workgroup, each computing TM rows of C times TQ column
// quads (matmul_tile) or TN columns (matmul_tile_nt). Constants, so the loops over them unroll and the
// tiles live in registers (keep in sync with src/kernels/matmul.rs). Measured alternatives on lavapipe:
// matmul_tile with 16x8 tiles about as fast, 8x32 and 12x16 slower (spills); matmul_tile_nt holds
// TN vec4 of B besides its TM*TN sums, so 8x8 beat 8x16 there (~320 against ~560 ms) and 4x8 was slower.
const TILE_WG: u32 = 16u;
const TM: u32 = 8u;
const TQ: u32 = 4u;
const TN: u32 = 8u;

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

// Any shape, any transposes: each invocation computes a 4x4 block of C in registers. Loads are clamped
// to the matrix instead of branched on, so the inner loop has no bounds checks; only stores are guarded.
@compute @workgroup_size(WG_X, WG_Y, 1)
fn matmul(@builtin(global_invocation_id) gid: vec3<u32>) {
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
// and the weight gradient). Workgroup (x, y) computes rows TM*y .. TM*y+TM-1 and TILE_WG*TQ column
// quads from quad TILE_WG*TQ*x; invocation i owns quads i, i+TILE_WG, ... (so neighbours read
// neighbouring quads, and stores are coalesced on a GPU).
@compute @workgroup_size(TILE_WG)
fn matmul_tile(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let quads = p.n / 4u;
    let q0 = wg.x * (TILE_WG * TQ) + lid.x;
    let row0 = wg.y * TM;
    // Rows and quads past the end are clamped for loading; their results are dropped at the store.
    var rows: array<u32, TM>;
    for (var r = 0u; r < TM; r++) {
        rows[r] = min(row0 + r, p.m - 1u);
    }
    var qs: array<u32, TQ>;
    for (var t = 0u; t < TQ; t++) {
        qs[t] = min(q0 + t * TILE_WG, quads - 1u);
    }
    var acc: array<vec4<f32>, TM * TQ>;
    for (var kk = 0u; kk < p.k; kk++) {
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
    for (var t = 0u; t < TQ; t++) {
        let q = q0 + t * TILE_WG;
        if q < quads {
            var bias_v = vec4<f32>(0.0);
            if p.has_bias != 0u {
                let bq = 4u * q;
                bias_v = vec4<f32>(bias[bq], bias[bq + 1u], bias[bq + 2u], bias[bq + 3u]);
            }
            for (var r = 0u; r < TM; r++) {
                if row0 + r < p.m {
                    c4[(row0 + r) * quads + q] = acc[r * TQ + t] + bias_v;
                }
            }
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
