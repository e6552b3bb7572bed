// Matrix products for dense layers: C[M,N] = op(A)[M,K] * op(B)[K,N] (+ bias[N]).
//
// op(A) is A stored row-major as [M,K], or its transpose stored as [K,M] when TRANS_A; likewise op(B) is
// [K,N], or [N,K] when TRANS_B. The three products of a dense layer are then one kernel family:
//   forward   y  = x  * W     (no transposes)      -> matmul_rows_vec4 when N % 4 == 0
//   backward  dW = x^T * dy   (TRANS_A)            -> matmul_rows_vec4 when N % 4 == 0
//   backward  dx = dy * W^T   (TRANS_B)            -> matmul_nt_vec4 when K % 4 == 0
// and `matmul` handles every other shape and transpose.
//
// The fast entry points give each workgroup a block of ROWS rows of C and each invocation its own
// columns: rows are the same for the whole workgroup, so A is read with workgroup-uniform addresses
// (one load broadcast to all invocations: what a CPU implementation of Vulkan such as lavapipe turns
// into a single scalar load, and a broadcast from L1 on a GPU), while neighbouring invocations read
// neighbouring columns of B as vec4 (coalesced on GPUs, one vector load per invocation on lavapipe).
// No shared memory and no barriers, which lavapipe pays for dearly.
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
// Rows of C per workgroup in the fast kernels (they are unrolled: keep in sync with the code).
const ROWS: u32 = 4u;
const FAST_WG: u32 = 64u;

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

// op(B) = B stored [K,N] with N % 4 == 0; A stored [M,K], or [K,M] when TRANS_A. Workgroup (x, y) computes
// rows 4y..4y+3 and column quads 64x..64x+63; each invocation one quad of four rows.
@compute @workgroup_size(FAST_WG)
fn matmul_rows_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let quads = p.n / 4u;
    let q = wg.x * FAST_WG + lid.x;
    let qc = min(q, quads - 1u);
    let row0 = wg.y * ROWS;
    // Rows past the end are clamped for loading (the values are discarded at the store).
    let r0 = min(row0, p.m - 1u);
    let r1 = min(row0 + 1u, p.m - 1u);
    let r2 = min(row0 + 2u, p.m - 1u);
    let r3 = min(row0 + 3u, p.m - 1u);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var kk = 0u; kk < p.k; kk++) {
        let bq = b4[kk * quads + qc];
        acc0 += load_a(r0, kk) * bq;
        acc1 += load_a(r1, kk) * bq;
        acc2 += load_a(r2, kk) * bq;
        acc3 += load_a(r3, kk) * bq;
    }
    if q >= quads {
        return;
    }
    var bias_v = vec4<f32>(0.0);
    if p.has_bias != 0u {
        bias_v = vec4<f32>(bias[4u * q], bias[4u * q + 1u], bias[4u * q + 2u], bias[4u * q + 3u]);
    }
    let rows = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < ROWS; i++) {
        if row0 + i < p.m {
            c4[(row0 + i) * quads + q] = rows[i] + bias_v;
        }
    }
}

// C = A * B^T with A stored [M,K], B stored [N,K] and K % 4 == 0 (a dense layer's input gradient,
// dy * W^T). Both operands are read along K as vec4: A's rows uniformly, B's rows one per invocation.
// Workgroup (x, y) computes rows 4y..4y+3 and columns 64x..64x+63.
@compute @workgroup_size(FAST_WG)
fn matmul_nt_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let k4 = p.k / 4u;
    let col = wg.x * FAST_WG + lid.x;
    let cc = min(col, p.n - 1u);
    let row0 = wg.y * ROWS;
    let r0 = min(row0, p.m - 1u) * k4;
    let r1 = min(row0 + 1u, p.m - 1u) * k4;
    let r2 = min(row0 + 2u, p.m - 1u) * k4;
    let r3 = min(row0 + 3u, p.m - 1u) * k4;
    var acc = vec4<f32>(0.0);
    for (var kq = 0u; kq < k4; kq++) {
        let bq = b4[cc * k4 + kq];
        acc += vec4<f32>(dot(a4[r0 + kq], bq), dot(a4[r1 + kq], bq), dot(a4[r2 + kq], bq), dot(a4[r3 + kq], bq));
    }
    if col >= p.n {
        return;
    }
    var bias_v = 0.0;
    if p.has_bias != 0u {
        bias_v = bias[col];
    }
    for (var i = 0u; i < ROWS; i++) {
        if row0 + i < p.m {
            c[(row0 + i) * p.n + col] = acc[i] + bias_v;
        }
    }
}
