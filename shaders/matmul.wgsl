// Matrix products for dense layers: C[M,N] = op(A)[M,K] * op(B)[K,N] (+ bias[N]).
//
// op(A) is A stored row-major as [M,K], or its transpose stored as [K,M] when TRANS_A; likewise op(B) is
// [K,N], or [N,K] when TRANS_B. The three products of a dense layer are then one kernel:
//   forward   y  = x  * W     (no transposes)
//   backward  dx = dy * W^T   (TRANS_B)
//   backward  dW = x^T * dy   (TRANS_A)
//
// Each invocation computes a TM x TN = 4x4 block of C in registers, so every value loaded from A or B
// feeds four multiply-adds. This register tiling is what a CPU implementation of Vulkan (lavapipe) runs
// fastest, since it vectorises invocations and pays dearly for workgroup barriers. Loads are clamped to
// the matrix instead of branched on, so the inner loop has no bounds checks; only the stores are guarded.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    has_bias: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

override TRANS_A: bool = false;
override TRANS_B: bool = false;
// Workgroup shape: WG_X invocations along N, WG_Y along M.
override WG_X: u32 = 8u;
override WG_Y: u32 = 8u;

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
