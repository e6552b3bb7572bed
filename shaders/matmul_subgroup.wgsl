// Dense-layer products with A shared through subgroups: the `Registers` flavour of matmul.wgsl for
// adapters with Features::SUBGROUP (chosen by `Gpu::matmul_subgroups`, see src/kernels/matmul.rs).
//
// Same products, bindings and `Params` as matmul.wgsl (read its header first):
//   forward   y  = x  * W     (no transposes)      -> matmul_sg_tile when N % 4 == 0
//   backward  dW = x^T * dy   (TRANS_A)            -> matmul_sg_tile when N % 4 == 0
//   backward  dx = dy * W^T   (TRANS_B)            -> matmul_sg_tile_nt when K % 4 == 0
// Every other shape runs matmul.wgsl's kernels. A file of its own because a module that calls a
// subgroup builtin fails validation on a device without Features::SUBGROUP. (No `enable subgroups;`:
// naga 30 rejects the directive as "not yet supported" and takes the builtins without it, checked
// against the device's features instead.)
//
// Why. On lavapipe every storage-buffer load is emulated one lane at a time and multiply-adds are
// nearly free, so what counts is FMAs per loaded word. matmul_tile has each of its 16 invocations load
// the same 8 values of A per step of K and 16 of B, for 128 FMAs. Here a workgroup is one subgroup of
// LANES = 8 invocations that all compute the same SR rows of C: each lane loads SR/8 of the values of
// A (rows lane, lane+8, ...) and subgroupBroadcast hands them to the others, which on llvmpipe is a
// register shuffle, no memory. The subgroup computes an R x C block of C, and however the block is
// split among lanes, a lane loads (R + C) / 8 words per step for R*C/8 FMAs: square blocks are best,
// and bigger ones better, until the accumulators no longer fit. That limit decides the shapes, and it
// is a cliff. Interleaved runs of `profile` (ms per step of batch 128, the notebook's two dense
// layers; the second is 1 ms of it), each set measured together:
//   matmul_sg_tile     SR x 4*SQ outputs per lane: 32x8 (chosen: 32 + 64 = 96 words per step for
//                      2048 FMAs) 105-117 at load 1.8; 32x4 about 20-40% slower than 32x8; 32x12
//                      and 32x16 430-580; SA = 8 slots of A (64x4, 64x8) 3 to 6 times slower.
//   matmul_sg_tile_nt  SR x SN per lane, 4 FMAs each per vec4 step: 32x2 (chosen) and 16x4 82-93;
//                      16x2 103-109; 32x4 166-182, no faster than matmul_tile_nt (157-249 in the
//                      same runs: 128 scalar accumulators spill); 64x1 209-235.
// Loading a whole cache line of each row per step (4 vec4 along K at once, against the 2 KiB stride
// of the rows, which maps all 64 rows a workgroup reads onto two L1 sets) made matmul_sg_tile_nt
// slower (more live registers), and writing the loop over lanes out by hand changed nothing (it is
// unrolled either way).
//
// Subgroup layout. A workgroup is LANES invocations; the Rust side selects this file only when every
// subgroup has at least LANES lanes (lavapipe: exactly 8), so a workgroup is one subgroup, or the
// active part of a wider one. Which lane loaded which row is taken from `subgroup_invocation_id`, not
// from the local id, so nothing assumes how the two are numbered. Broadcast needs a constant lane
// index (WGSL and SPIR-V both), hence `lanes`/`lanes4` with eight literal indices. Every lane takes
// the same path through every broadcast: the loop over K is bounded by a uniform, out-of-range rows
// and columns are clamped for loading (no early return), and only the stores are guarded.
//
// Measured on lavapipe (Mesa 22.3, LLVM 15, 2 cores shared with other jobs, load average 1.4-1.7),
// batch 128, `profile --steps 5 --warmup 1`, medians of 5 interleaved runs of `--tiling registers`
// (matmul.wgsl) and `--tiling subgroups` (this file), ms per step of both dense layers:
//   matmul_nn (forward 128x512x8192)   180 -> 105 (1.7x)
//   matmul_tn (dW 8192x512x128)        174 -> 103 (1.7x)
//   matmul_nt (dx 128x8192x512)        157 ->  80 (2.0x)
// about 510 -> 290 ms of a step, all three products together.

//!include common/matmul_params.wgsl

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
// computes rows SR*y .. SR*y+SR-1 and LANES*SQ column quads from quad LANES*SQ*x; invocation i owns
// quads i, i+LANES, ... Lane l loads rows l, l+LANES, ... of the block: slot s of lane l is row
// s*LANES + l, which is where its broadcast lands in `acc`.
@compute @workgroup_size(LANES)
fn matmul_sg_tile(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let quads = p.n / 4u;
    let q0 = wg.x * (LANES * SQ) + lid.x;
    let row0 = wg.y * SR;
    // Rows and quads past the end are clamped for loading; their results are dropped at the store.
    var arows: array<u32, SA>;
    for (var s = 0u; s < SA; s++) {
        arows[s] = min(row0 + s * LANES + lane, p.m - 1u);
    }
    var qs: array<u32, SQ>;
    for (var t = 0u; t < SQ; t++) {
        qs[t] = min(q0 + t * LANES, quads - 1u);
    }
    var acc: array<vec4<f32>, SR * SQ>;
    for (var kk = 0u; kk < p.k; kk++) {
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
    for (var t = 0u; t < SQ; t++) {
        let q = q0 + t * LANES;
        if q < quads {
            var bias_v = vec4<f32>(0.0);
            if p.has_bias != 0u {
                let bq = 4u * q;
                bias_v = vec4<f32>(bias[bq], bias[bq + 1u], bias[bq + 2u], bias[bq + 3u]);
            }
            for (var r = 0u; r < SR; r++) {
                if row0 + r < p.m {
                    c4[(row0 + r) * quads + q] = acc[r * SQ + t] + bias_v;
                }
            }
        }
    }
}

// C = A * B^T with A stored [M,K], B stored [N,K] and K % 4 == 0 (the input gradient dy * W^T). Both
// operands are read along K as vec4: A's rows shared as in matmul_sg_tile, B's rows (columns of C) SN
// per invocation: i, i+LANES, ... Workgroup (x, y) computes rows SR*y.. and LANES*SN columns.
@compute @workgroup_size(LANES)
fn matmul_sg_tile_nt(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let k4 = p.k / 4u;
    let col0 = wg.x * (LANES * SN) + lid.x;
    let row0 = wg.y * SR;
    var arows: array<u32, SA>;
    for (var s = 0u; s < SA; s++) {
        arows[s] = min(row0 + s * LANES + lane, p.m - 1u) * k4;
    }
    var cols: array<u32, SN>;
    for (var t = 0u; t < SN; t++) {
        cols[t] = min(col0 + t * LANES, p.n - 1u) * k4;
    }
    var acc: array<f32, SR * SN>;
    for (var kq = 0u; kq < k4; kq++) {
        var bq: array<vec4<f32>, SN>;
        for (var t = 0u; t < SN; t++) {
            bq[t] = b4[cols[t] + kq];
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
    for (var t = 0u; t < SN; t++) {
        let col = col0 + t * LANES;
        if col < p.n {
            var bias_v = 0.0;
            if p.has_bias != 0u {
                bias_v = bias[col];
            }
            for (var r = 0u; r < SR; r++) {
                if row0 + r < p.m {
                    c[(row0 + r) * p.n + col] = acc[r * SN + t] + bias_v;
                }
            }
        }
    }
}
