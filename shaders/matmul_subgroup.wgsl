// Dense-layer products with A shared through subgroups: `MatmulFlavour::Subgroups`, the `Registers`
// flavour of matmul.wgsl for adapters whose subgroups have at least LANES lanes. Same products, bindings
// and `Params` as matmul.wgsl (read its header first):
//   forward   y  = x  * W     (no transposes)  -> matmul_sg_tile when N % 4 == 0
//   backward  dW = x^T * dy   (TRANS_A)        -> matmul_sg_tile when N % 4 == 0
//   backward  dx = dy * W^T   (TRANS_B)        -> matmul_sg_tile_nt when K % 4 == 0
// Other shapes run matmul.wgsl. A file of its own because a module calling a subgroup builtin fails
// validation without Features::SUBGROUP (and naga 30 rejects `enable subgroups;`).
//
// Why: a workgroup is one subgroup of LANES invocations that all compute the same SR rows of C; each lane
// loads SR/LANES of the values of A and subgroupBroadcast hands them to the others (a register shuffle on
// llvmpipe), so a lane loads (R + C) / LANES words per step for R*C/LANES FMAs. Which lane loaded which
// row comes from `subgroup_invocation_id`; broadcasts need constant lane indices, hence `lanes`/`lanes4`.
// Every lane takes the same path through every broadcast: loads are clamped, only stores are guarded.
// Timings and the tile shapes tried: docs/PERFORMANCE.md.

//!include common/matmul_params.wgsl
//!include common/matmul_sums.wgsl

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read_write> c4: array<vec4<f32>>;

override TRANS_A: bool = false;

// Invocations per workgroup = lanes that share A (keep in sync with src/kernels/matmul.rs, and with
// the eight literal indices of `lanes`).
const LANES: u32 = 8u;
// matmul_sg_tile: SR rows of C per workgroup (every lane computes all of them), SQ column quads per
// lane. matmul_sg_tile_nt: SR rows, SN columns per lane. SR is a multiple of LANES.
const SR: u32 = 32u;
const SQ: u32 = 2u;
const SN: u32 = 2u;
// matmul_sg_tile: blocks of SR rows per workgroup (set by src/kernels/matmul.rs per product), and the
// length of K each chunk takes.
override RB: u32;
const KC: u32 = 256u;
// Values of A each lane loads per step.
const SA: u32 = SR / LANES;

// The value `v` of each of the LANES lanes, in lane order.
fn lanes(v: f32) -> array<f32, LANES> {
    return array<f32, LANES>(
        subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u),
        subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u), subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u),
    );
}

fn lanes4(v: vec4<f32>) -> array<vec4<f32>, LANES> {
    return array<vec4<f32>, LANES>(
        subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u),
        subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u), subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u),
    );
}

fn load_a(row: u32, kk: u32) -> f32 {
    if TRANS_A {
        return a[kk * p.m + row];
    }
    return a[row * p.k + kk];
}

// op(B) = B stored [K,N] with N % 4 == 0; A stored [M,K], or [K,M] when TRANS_A. Workgroup (x, y)
// computes LANES*SQ column quads from quad LANES*SQ*x, invocation i owning quads i, i+LANES, ..., for
// the RB blocks of SR rows from row SR*RB*y, one block at a time. Lane l loads rows l, l+LANES, ... of
// a block: slot s of lane l is row s*LANES + l, which is where its broadcast lands in `acc`.
// K is walked KC at a time, and each chunk of K runs every row block before the next chunk: the
// chunk's slab of B (KC rows of the workgroup's quads) is loaded from memory by the first block and
// from cache by the others, where block after block over all of K would stream B from memory once
// per block (a short-M product such as the forward Dense at batch 128 is B-bound that way). Between
// chunks a block's sums wait in C, f32 as in `acc`, so each output still adds in order of k from 0
// with one accumulator, and the bias is added once after the last chunk. The k loop runs K * RB
// times per invocation, which llvmpipe caps (src/kernels/matmul.rs picks RB within it).
@compute @workgroup_size(LANES)
fn matmul_sg_tile(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    // The column sums row (`Params::sums_at`, matmul.wgsl's header): workgroup-uniform.
    if wg.y * (SR * RB) >= p.m {
        column_sums4(wg.x * (LANES * SQ) + lid.x, LANES, SQ);
        return;
    }
    let quads = p.n / 4u;
    let q0 = wg.x * (LANES * SQ) + lid.x;
    // Quads past the end are clamped for loading (and rows below); their results are dropped at the
    // store.
    var qs: array<u32, SQ>;
    for (var t = 0u; t < SQ; t++) {
        qs[t] = min(q0 + t * LANES, quads - 1u);
    }
    var bias_v: array<vec4<f32>, SQ>;
    if p.has_bias != 0u {
        for (var t = 0u; t < SQ; t++) {
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
            let row0 = (wg.y * RB + rb) * SR;
            if row0 >= p.m {
                break;
            }
            var arows: array<u32, SA>;
            for (var s = 0u; s < SA; s++) {
                arows[s] = min(row0 + s * LANES + lane, p.m - 1u);
            }
            var acc: array<vec4<f32>, SR * SQ>;
            if k0 > 0u {
                for (var r = 0u; r < SR; r++) {
                    let row = min(row0 + r, p.m - 1u);
                    for (var t = 0u; t < SQ; t++) {
                        acc[r * SQ + t] = c4[row * quads + qs[t]];
                    }
                }
            }
            for (var kk = k0; kk < k1; kk++) {
                var bq: array<vec4<f32>, SQ>;
                for (var t = 0u; t < SQ; t++) {
                    bq[t] = b4[kk * quads + qs[t]];
                }
                for (var s = 0u; s < SA; s++) {
                    let av = lanes(load_a(arows[s], kk));
                    for (var l = 0u; l < LANES; l++) {
                        for (var t = 0u; t < SQ; t++) {
                            acc[(s * LANES + l) * SQ + t] += av[l] * bq[t];
                        }
                    }
                }
            }
            let last = k1 == p.k;
            for (var t = 0u; t < SQ; t++) {
                let q = q0 + t * LANES;
                if q < quads {
                    for (var r = 0u; r < SR; r++) {
                        if row0 + r < p.m {
                            var v = acc[r * SQ + t];
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
// operands are read along K as vec4: A's rows shared as in matmul_sg_tile, B's rows (columns of C) SN
// per invocation: i, i+LANES, ... Workgroup (x, y) computes LANES*SN columns for the RB blocks of SR
// rows from row SR*RB*y, chunk by chunk of K as matmul_sg_tile does, for the same reason: the chunk's
// rows of B come from memory for the first block and from cache for the others (dx at batch 128
// would stream W from memory once per block), and a block's sums wait in C between chunks.
@compute @workgroup_size(LANES)
fn matmul_sg_tile_nt(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let k4 = p.k / 4u;
    let col0 = wg.x * (LANES * SN) + lid.x;
    // Columns past the end are clamped for loading (rows too, below); their results are dropped at
    // the store. `brows`: where each column's row of B starts, in quads.
    var cols: array<u32, SN>;
    var brows: array<u32, SN>;
    var bias_v: array<f32, SN>;
    for (var t = 0u; t < SN; t++) {
        cols[t] = min(col0 + t * LANES, p.n - 1u);
        brows[t] = cols[t] * k4;
        if p.has_bias != 0u {
            bias_v[t] = bias[cols[t]];
        }
    }
    // In quads of K; one block's chunk is all of K, and there is at least one chunk (K = 0).
    let kc = select(KC / 4u, max(k4, 1u), RB == 1u);
    var k0 = 0u;
    loop {
        let k1 = min(k0 + kc, k4);
        for (var rb = 0u; rb < RB; rb++) {
            let row0 = (wg.y * RB + rb) * SR;
            if row0 >= p.m {
                break;
            }
            var arows: array<u32, SA>;
            for (var s = 0u; s < SA; s++) {
                arows[s] = min(row0 + s * LANES + lane, p.m - 1u) * k4;
            }
            var acc: array<f32, SR * SN>;
            if k0 > 0u {
                for (var r = 0u; r < SR; r++) {
                    let row = min(row0 + r, p.m - 1u);
                    for (var t = 0u; t < SN; t++) {
                        acc[r * SN + t] = c[row * p.n + cols[t]];
                    }
                }
            }
            for (var kq = k0; kq < k1; kq++) {
                var bq: array<vec4<f32>, SN>;
                for (var t = 0u; t < SN; t++) {
                    bq[t] = b4[brows[t] + kq];
                }
                for (var s = 0u; s < SA; s++) {
                    let av = lanes4(a4[arows[s] + kq]);
                    for (var l = 0u; l < LANES; l++) {
                        for (var t = 0u; t < SN; t++) {
                            acc[(s * LANES + l) * SN + t] += dot(av[l], bq[t]);
                        }
                    }
                }
            }
            // The bias (0 without one, as before chunking: the same bits) after the last chunk.
            let last = k1 == k4;
            for (var t = 0u; t < SN; t++) {
                let col = col0 + t * LANES;
                if col < p.n {
                    for (var r = 0u; r < SR; r++) {
                        if row0 + r < p.m {
                            var v = acc[r * SN + t];
                            if last {
                                v += bias_v[t];
                            }
                            c[(row0 + r) * p.n + col] = v;
                        }
                    }
                }
            }
        }
        continuing {
            k0 = k1;
            break if k0 >= k4;
        }
    }
}
