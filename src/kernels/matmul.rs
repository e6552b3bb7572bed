//! Dense-layer products, `shaders/matmul.wgsl`, and `shaders/matmul_subgroup.wgsl` on adapters with
//! subgroups.

use crate::gpu::{Cost, Dispatch, Gpu, MatmulFlavour, Tensor, WORD, grid_1d};
use crate::shape::MatmulShape;

super::shader!(
    "matmul.wgsl",
    includes[super::common::MATMUL_PARAMS, super::common::MATMUL_SUMS]
);

/// The register-tiled kernels with A shared through subgroups; compiled only when `Plan::Subgroups`
/// runs, since the module needs Features::SUBGROUP.
pub mod subgroup {
    crate::kernels::shader!(
        "matmul_subgroup.wgsl",
        includes[
            crate::kernels::common::MATMUL_PARAMS,
            crate::kernels::common::MATMUL_SUMS
        ]
    );
}

pub(super) fn contracts() -> Vec<super::Contract> {
    let params = || {
        super::host_struct!(Params {
            m,
            n,
            k,
            has_bias,
            k_split,
            splits,
            sums_at,
            _pad1
        })
    };
    let c = |v: usize| v as u32;
    vec![
        super::Contract {
            shader: &SHADER,
            structs: vec![params()],
            consts: vec![
                ("TILE_WG", c(TILE_WG)),
                ("TM", c(TM)),
                ("TQ", c(TQ)),
                ("TN", c(TN)),
                ("BM", c(BM)),
                ("BN", c(BN)),
                ("BK", c(BK)),
            ],
        },
        super::Contract {
            shader: &subgroup::SHADER,
            structs: vec![params()],
            consts: vec![
                ("LANES", c(SG_LANES)),
                ("SR", c(SG_ROWS)),
                ("SQ", c(SG_QUADS)),
                ("SN", c(SG_COLS)),
            ],
        },
    ]
}

const WG_X: u32 = 8;
const WG_Y: u32 = 8;
/// Outputs per invocation along each axis (the register tile in the shader).
const TILE: usize = 4;
/// The tiled entry points (`const`s in the shader, array bounds and unrolled strides, checked by
/// tests/shaders.rs): invocations per workgroup, rows of C per invocation, column quads per invocation
/// (`matmul_tile`) and columns per invocation (`matmul_tile_nt`).
const TILE_WG: usize = 16;
const TM: usize = 8;
const TQ: usize = 4;
const TN: usize = 8;
/// The subgroup entry points (`const`s in `matmul_subgroup.wgsl`, checked likewise): invocations per workgroup (lanes
/// that share A), rows of C per workgroup, column quads per lane (`matmul_sg_tile`) and columns per
/// lane (`matmul_sg_tile_nt`).
const SG_LANES: usize = crate::gpu::MATMUL_SUBGROUP_LANES as usize;
const SG_ROWS: usize = 32;
const SG_QUADS: usize = 2;
const SG_COLS: usize = 2;
/// The most blocks of rows (TM for `matmul_tile`, SG_ROWS for the subgroup tiles) a workgroup
/// computes, a chunk of K at a time for all of them (the shaders' `RB` override): B is read from
/// memory once per RB blocks (docs/PERFORMANCE.md). Fewer where that would leave fewer than two
/// workgroups per CPU thread (llvmpipe runs a workgroup per thread, a thread per core), since a
/// block more per workgroup is a workgroup less to spread over the cores, and where K * RB would
/// pass MAX_K_STEPS (`row_blocks`).
const ROW_BLOCKS: usize = 4;
/// The most steps of K (quads of K for `matmul_sg_tile_nt`) one tiled invocation may take over all
/// its blocks: llvmpipe's loop limit (`gpu::flavours::loop_limit`; 4 blocks of K = 16000 still add
/// up, of 16383 no longer). One block per workgroup walks K once: a longer K runs `Plan::Shared` there
/// (`plan_for`).
const MAX_K_STEPS: usize = crate::gpu::MAX_LOOP_STEPS;
/// The shared-memory entry point (`const`s in the shader, checked likewise): a BM x BN tile of C per
/// workgroup of 256 invocations (8x8 outputs each), K staged BK at a time through double-buffered
/// slabs (2 x 2 x BK x 128 words: WebGPU's 16 KiB of workgroup storage); `matmul_split_sum` runs
/// SUM_WG invocations per workgroup (the shader's `SUM_WG` override).
const BM: usize = 128;
const BN: usize = 128;
const BK: usize = 8;
const SUM_WG: usize = 256;
/// Split-K targets. A launch should have at least MIN_WORKGROUPS workgroups (of 256 invocations):
/// twice the multiprocessors of a large GPU (132 on an H200), about as many as it holds at once (an
/// invocation's 64 sums and prefetched quads take ~128 registers, so two workgroups per
/// multiprocessor), so every one gets work and the tail is short. Each split keeps at least
/// MIN_K_PER_SPLIT of K (16 slabs), so a workgroup's partial tile (BM*BN words written, then read
/// again by the sum) is 1/128 of its FMAs and at most half its slab loads ((BM+BN) words per step of
/// K), mostly in a large GPU's L2. The notebook's first dense layer at batch 128: the forward product
/// 128x512x8192 has 1 x 4 tiles, so it takes 64 splits of 128 (256 workgroups, 16 MiB of partials);
/// dx (128x8192x512, 64 tiles) takes 4 splits of 128 (16 MiB); dW (8192x512x128, 256 tiles) none.
/// Unmeasured on a GPU: docs/PERFORMANCE.md.
const MIN_WORKGROUPS: usize = 256;
const MIN_K_PER_SPLIT: usize = 128;

/// How a product is computed: the register-tiled kernels (one dispatch), the same with A shared
/// through subgroups (one dispatch; shapes it does not cover run the register kernels), or the
/// shared-memory kernel with `splits` ranges of K (one dispatch, plus `matmul_split_sum` when
/// `splits > 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    Registers,
    Subgroups,
    Shared { splits: usize },
}

impl Plan {
    /// The plan for `s` in `flavour`: the number of splits for `Shared`, and `Registers` for the
    /// shapes the subgroup kernels do not cover.
    pub fn auto(gpu: &Gpu, flavour: MatmulFlavour, s: MatmulShape) -> Plan {
        let max_words = (gpu.max_binding_bytes() / WORD) as usize;
        plan_for(flavour, s, max_words, gpu.loop_limit())
    }
}

/// `Plan::auto` for partials of at most `max_words` and at most `loop_limit` loop iterations per
/// invocation. Every register kernel walks all of K in one invocation, so where K is past the limit
/// (llvmpipe) the shared-memory kernel runs instead, in splits of at most that much K each (its
/// invocations walk one split: slabs, their steps, or the sums row), added by `matmul_split_sum`.
/// Shapes within the limit keep their kernels and bits.
fn plan_for(
    flavour: MatmulFlavour,
    s: MatmulShape,
    max_words: usize,
    loop_limit: Option<usize>,
) -> Plan {
    let long = loop_limit.is_some_and(|limit| s.k > limit);
    match flavour {
        MatmulFlavour::Subgroups if !long && subgroups_cover(s) => Plan::Subgroups,
        MatmulFlavour::Registers | MatmulFlavour::Subgroups if !long => Plan::Registers,
        _ => Plan::Shared {
            splits: shared_splits(s, max_words).max(loop_limit.map_or(1, |l| s.k.div_ceil(l))),
        },
    }
}

/// Splits of K for the shared-memory kernel: enough to reach MIN_WORKGROUPS, never below
/// MIN_K_PER_SPLIT of K each, at least 1, and few enough that the partials fit `max_words`.
fn shared_splits(s: MatmulShape, max_words: usize) -> usize {
    let tiles = s.m.div_ceil(BM) * s.n.div_ceil(BN);
    let wanted = MIN_WORKGROUPS.div_ceil(tiles.max(1));
    let fit = max_words / (s.m * s.n).max(1);
    wanted.min(s.k / MIN_K_PER_SPLIT).min(fit).max(1)
}

/// The length of K per split, a multiple of BK so splits start on a slab, and the number of splits
/// that leaves (rounding up can leave fewer than asked, e.g. K = 20 in 3 splits is 16 + 4).
fn k_ranges(k: usize, splits: usize) -> (usize, usize) {
    let k_split = k.div_ceil(splits.max(1)).next_multiple_of(BK).max(BK);
    (k_split, k.div_ceil(k_split).max(1))
}

/// The entry point for `s`, its workgroup counts and its blocks of rows per workgroup (1 but for
/// `matmul_tile`): a register-tiled kernel (8x16 or 8x8 outputs per invocation, see the shader for
/// why lavapipe needs that) when the widths allow vec4 loads (every dense layer whose sizes are
/// multiples of 4), else the general 4x4 kernel. With column sums at `sums_at` (one more row of
/// workgroups): `matmul_tile` writes them as quads, so only where they start on one;
/// `matmul_tile_nt` has none. `threads`: the CPU threads that run the workgroups.
fn entry_point(
    s: MatmulShape,
    sums_at: Option<usize>,
    threads: usize,
) -> (&'static str, [u32; 3], usize) {
    let sums_row = sums_at.is_some() as u32;
    match (s.trans_a, s.trans_b) {
        (_, false) if s.n.is_multiple_of(4) && quad_sums(sums_at) => {
            let cols = (s.n / 4).div_ceil(TILE_WG * TQ);
            let blocks = s.m.div_ceil(TM);
            let rb = row_blocks(cols, blocks, s.k, threads);
            (
                "matmul_tile",
                [cols as u32, blocks.div_ceil(rb) as u32 + sums_row, 1],
                rb,
            )
        }
        // One block of rows per workgroup: sharing B between blocks, as matmul_tile does, ran
        // slower here (its chunks of B, 128 rows of W, leave the cache between blocks;
        // docs/PERFORMANCE.md).
        (false, true) if s.k.is_multiple_of(4) && sums_at.is_none() => (
            "matmul_tile_nt",
            [
                s.n.div_ceil(TILE_WG * TN) as u32,
                s.m.div_ceil(TM) as u32,
                1,
            ],
            1,
        ),
        _ => (
            "matmul",
            [
                s.n.div_ceil(TILE).div_ceil(WG_X as usize) as u32,
                s.m.div_ceil(TILE).div_ceil(WG_Y as usize) as u32 + sums_row,
                1,
            ],
            1,
        ),
    }
}

/// Blocks of rows per workgroup for the tiles that share B, `cols` workgroups across, `blocks`
/// blocks down and `k` steps of K per block: the most of ROW_BLOCKS, halved (so the workgroups of a
/// full batch get equal shares), that leaves two workgroups per thread and k * RB within MAX_K_STEPS.
fn row_blocks(cols: usize, blocks: usize, k: usize, threads: usize) -> usize {
    std::iter::successors(Some(ROW_BLOCKS), |&rb| Some(rb / 2))
        .take_while(|&rb| rb > 1)
        .find(|&rb| cols * blocks.div_ceil(rb) >= 2 * threads && k * rb <= MAX_K_STEPS)
        .unwrap_or(1)
}

/// Whether the vec4 kernels can write column sums at `sums_at` (none asked, or they start on a quad:
/// `Tensor::span_to` gives multiples of 4 in a parameter buffer, whose tensors are 64-word aligned).
fn quad_sums(sums_at: Option<usize>) -> bool {
    sums_at.is_none_or(|at| at.is_multiple_of(4))
}

/// Whether `Plan::Subgroups` runs `s` on the subgroup kernels (the other shapes run `Plan::Registers`'
/// kernels): N % 4 == 0 without TRANS_B, K % 4 == 0 with TRANS_B alone.
pub fn subgroups_cover(s: MatmulShape) -> bool {
    subgroup_entry_point(s, None, 1).is_some()
}

/// The CPU threads a software adapter spreads workgroups over (llvmpipe: one per core).
fn cpu_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The subgroup kernel for `s`, its workgroup counts and its blocks of rows per workgroup, where one
/// covers it: the same shapes as the register-tiled kernels of `entry_point`, and the same column
/// sums. `threads`: the CPU threads that run the workgroups.
fn subgroup_entry_point(
    s: MatmulShape,
    sums_at: Option<usize>,
    threads: usize,
) -> Option<(&'static str, [u32; 3], usize)> {
    let sums_row = sums_at.is_some() as u32;
    match (s.trans_a, s.trans_b) {
        (_, false) if s.n.is_multiple_of(4) && quad_sums(sums_at) => {
            let cols = (s.n / 4).div_ceil(SG_LANES * SG_QUADS);
            let blocks = s.m.div_ceil(SG_ROWS);
            let rb = row_blocks(cols, blocks, s.k, threads);
            Some((
                "matmul_sg_tile",
                [cols as u32, blocks.div_ceil(rb) as u32 + sums_row, 1],
                rb,
            ))
        }
        (false, true) if s.k.is_multiple_of(4) && sums_at.is_none() => {
            let cols = s.n.div_ceil(SG_LANES * SG_COLS);
            let blocks = s.m.div_ceil(SG_ROWS);
            let rb = row_blocks(cols, blocks, s.k / 4, threads);
            Some((
                "matmul_sg_tile_nt",
                [cols as u32, blocks.div_ceil(rb) as u32, 1],
                rb,
            ))
        }
        _ => None,
    }
}

/// Both shaders declare this struct (`matmul_subgroup.wgsl` reads its first four fields only).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    has_bias: u32,
    /// `matmul_shared`: the length of K per workgroup z.
    k_split: u32,
    /// `matmul_split_sum`: the number of partial products.
    splits: u32,
    /// Where C takes the column sums of op(B) (0: none); see `matmul_with_sums`.
    sums_at: u32,
    _pad1: u32,
}

/// c = op(a) * op(b) (+ bias broadcast over rows), with the kernels of `gpu.flavours.matmul`. One dispatch, or
/// two when the shared-memory kernel splits K; record them in order.
pub fn matmul(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    c: &Tensor,
    s: MatmulShape,
) -> Vec<Dispatch> {
    matmul_planned(
        gpu,
        a,
        b,
        bias,
        c,
        None,
        s,
        Plan::auto(gpu, gpu.flavours.matmul, s),
    )
}

/// c[..M*N] = op(a) * op(b), and c[sums_at + n] = sum_k op(b)[k, n] for each column n: a Dense
/// layer's kernel gradient xᵀ dy and its bias gradient 1ᵀ dy in one product ([x | 1]ᵀ dy), `c` a view
/// from the first to the end of the second (`Tensor::span_to`; the words between are left as they
/// are). Sums are added in order of k, as `column_sum`'s one pass does. Dispatches as `matmul`.
pub fn matmul_with_sums(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    sums_at: usize,
    s: MatmulShape,
) -> Vec<Dispatch> {
    matmul_planned(
        gpu,
        a,
        b,
        None,
        c,
        Some(sums_at),
        s,
        Plan::auto(gpu, gpu.flavours.matmul, s),
    )
}

/// `matmul` or `matmul_with_sums` (`sums_at`) with the flavour and number of splits given (the tests
/// run every plan on one device).
///
/// Without a bias, `a` is bound in its place (a binding cannot be left empty, and binding `c` twice
/// would alias a writable buffer) and never read. With several splits the partial products (and
/// sums) go to a scratch tensor allocated here, when the program is built; the dispatches' bind
/// groups keep it alive (wgpu resources are reference-counted), so nothing else has to hold it.
#[allow(clippy::too_many_arguments)]
pub fn matmul_planned(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    c: &Tensor,
    sums_at: Option<usize>,
    s: MatmulShape,
    plan: Plan,
) -> Vec<Dispatch> {
    assert_eq!(a.len, s.m * s.k, "matmul: A has the wrong size for {s:?}");
    assert_eq!(b.len, s.k * s.n, "matmul: B has the wrong size for {s:?}");
    match sums_at {
        None => assert_eq!(c.len, s.m * s.n, "matmul: C has the wrong size for {s:?}"),
        Some(at) => {
            // 0 means none in `Params`, and an empty product has no sums worth a kernel.
            assert!(
                at >= s.m * s.n && s.m * s.n > 0,
                "matmul: sums at {at} overlap C for {s:?}"
            );
            assert_eq!(c.len, at + s.n, "matmul: C has the wrong size for {s:?}");
            assert!(bias.is_none(), "matmul: column sums with a bias");
        }
    }
    if let Some(bias) = bias {
        assert_eq!(bias.len, s.n, "matmul: bias has the wrong size for {s:?}");
    }
    let name = match (s.trans_a, s.trans_b) {
        (false, false) => "matmul_nn",
        (false, true) => "matmul_nt",
        (true, false) => "matmul_tn",
        (true, true) => "matmul_tt",
    };
    let constants = [
        ("TRANS_A", s.trans_a as u32 as f64),
        ("TRANS_B", s.trans_b as u32 as f64),
        ("WG_X", WG_X as f64),
        ("WG_Y", WG_Y as f64),
    ];
    let bias_len = if bias.is_some() { s.n } else { 0 };
    let (m, n, k) = (s.m as u64, s.n as u64, s.k as u64);
    let sums_len = if sums_at.is_some() { n } else { 0 };
    // The fewest bytes: each input read once, each output written once (the blocked kernel reads A
    // ceil(N/128) and B ceil(M/128) times, mostly from cache; the profiler's bytes/s is against the
    // minimum).
    let product = Cost {
        flops: 2 * m * n * k + m * bias_len as u64 + k * sums_len,
        bytes: (m * k + k * n + bias_len as u64 + m * n + sums_len) * WORD,
    };
    let mut params = Params {
        m: s.m as u32,
        n: s.n as u32,
        k: s.k as u32,
        has_bias: bias.is_some() as u32,
        k_split: s.k as u32,
        splits: 1,
        sums_at: sums_at.unwrap_or(0) as u32,
        _pad1: 0,
    };
    let splits = match plan {
        Plan::Registers | Plan::Subgroups => {
            // Shapes the subgroup kernels do not cover run matmul.wgsl's.
            let threads = cpu_threads();
            let sg = subgroup_entry_point(s, sums_at, threads).filter(|_| plan == Plan::Subgroups);
            // The subgroup kernels declare TRANS_A only; the tiles that share B take their blocks
            // of rows (RB), the only entry points that declare it.
            let (shader, (entry, groups, rb), mut constants) = match sg {
                Some(e) => {
                    assert!(
                        gpu.can_run_subgroup_matmul(),
                        "matmul: Plan::Subgroups on an adapter without subgroups of {SG_LANES} lanes"
                    );
                    (&subgroup::SHADER, e, constants[..1].to_vec())
                }
                None => (
                    &SHADER,
                    entry_point(s, sums_at, threads),
                    constants.to_vec(),
                ),
            };
            if matches!(
                entry,
                "matmul_tile" | "matmul_sg_tile" | "matmul_sg_tile_nt"
            ) {
                constants.push(("RB", rb as f64));
            }
            return vec![gpu.dispatch(
                name,
                shader,
                entry,
                &constants,
                &params,
                &[a, b, bias.unwrap_or(a), c],
                groups,
                product,
            )];
        }
        Plan::Shared { splits } => splits,
    };
    let (k_split, splits) = k_ranges(s.k, splits);
    params.k_split = k_split as u32;
    params.splits = splits as u32;
    let tiles = [
        s.n.div_ceil(BN) as u32,
        s.m.div_ceil(BM) as u32 + sums_at.is_some() as u32,
        splits as u32,
    ];
    if splits == 1 {
        return vec![gpu.dispatch(
            name,
            &SHADER,
            "matmul_shared",
            &constants,
            &params,
            &[a, b, bias.unwrap_or(a), c],
            tiles,
            product,
        )];
    }
    // Several splits: partial products into the scratch (no bias), then their sum (+ bias) into C.
    // Each split's column sums follow all the partial products, [splits, N].
    let scratch = gpu.zeros(
        "matmul_split_scratch",
        splits * (s.m * s.n + sums_len as usize),
    );
    let parts = (splits * s.m * s.n) as u64;
    let part_sums = splits as u64 * sums_len;
    let partial = Cost {
        flops: 2 * m * n * k + k * sums_len,
        bytes: (m * k + k * n + parts + part_sums) * WORD,
    };
    params.has_bias = 0;
    if sums_at.is_some() {
        params.sums_at = parts as u32;
    }
    let first = gpu.dispatch(
        name,
        &SHADER,
        "matmul_shared",
        &constants,
        &params,
        &[a, b, a, &scratch],
        tiles,
        partial,
    );
    params.has_bias = bias.is_some() as u32;
    params.sums_at = sums_at.unwrap_or(0) as u32;
    let sum = Cost {
        flops: parts - m * n + m * bias_len as u64 + part_sums - sums_len,
        bytes: (parts + bias_len as u64 + m * n + part_sums + sums_len) * WORD,
    };
    let groups = grid_1d(
        (s.m * s.n + sums_len as usize).div_ceil(SUM_WG) as u32,
        gpu.limits.max_compute_workgroups_per_dimension,
    );
    let second = gpu.dispatch(
        "matmul_split_sum",
        &SHADER,
        "matmul_split_sum",
        &[("SUM_WG", SUM_WG as f64)],
        &params,
        &[&scratch, bias.unwrap_or(&scratch), c],
        groups,
        sum,
    );
    vec![first, second]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_k_goes_where_tiles_are_few_and_k_is_long() {
        let big = usize::MAX;
        let nt = |m, n, k| MatmulShape {
            trans_b: true,
            ..MatmulShape::new(m, n, k)
        };
        let tn = |m, n, k| MatmulShape {
            trans_a: true,
            ..MatmulShape::new(m, n, k)
        };
        // The notebook's dense layers at batch 128: splits only where the 128 x 128 tiles are fewer
        // than 256, each of at least 128 of K.
        assert_eq!(shared_splits(MatmulShape::new(128, 512, 8192), big), 64);
        assert_eq!(shared_splits(tn(8192, 512, 128), big), 1);
        assert_eq!(shared_splits(nt(128, 8192, 512), big), 4);
        assert_eq!(shared_splits(MatmulShape::new(128, 10, 512), big), 4);
        assert_eq!(shared_splits(nt(128, 512, 10), big), 1);
        // 256 tiles or more: never split, however long K.
        assert_eq!(shared_splits(MatmulShape::new(2048, 2048, 1 << 20), big), 1);
        assert_eq!(shared_splits(MatmulShape::new(1920, 2048, 1 << 20), big), 2);
        // The partials must fit one binding.
        assert_eq!(
            shared_splits(MatmulShape::new(128, 512, 8192), 4 * 128 * 512),
            4
        );
        // K ranges are whole slabs; rounding can leave fewer splits than asked.
        assert_eq!(k_ranges(8192, 64), (128, 64));
        assert_eq!(k_ranges(512, 4), (128, 4));
        assert_eq!(k_ranges(131, 3), (48, 3));
        assert_eq!(k_ranges(17, 3), (8, 3));
        assert_eq!(k_ranges(9, 3), (8, 2));
        assert_eq!(k_ranges(1, 3), (8, 1));
        assert_eq!(k_ranges(0, 1), (8, 1));
    }

    #[test]
    fn k_past_the_loop_limit_runs_the_shared_kernel_in_splits_within_it() {
        let big = usize::MAX;
        let limit = Some(crate::gpu::MAX_LOOP_STEPS);
        let tn = |m, n, k| MatmulShape {
            trans_a: true,
            ..MatmulShape::new(m, n, k)
        };
        // Within the limit (or on adapters without one) every flavour keeps its kernels.
        for (flavour, plan) in [
            (MatmulFlavour::Subgroups, Plan::Subgroups),
            (MatmulFlavour::Registers, Plan::Registers),
        ] {
            for loops in [None, limit] {
                assert_eq!(
                    plan_for(flavour, MatmulShape::new(128, 512, 49152), big, loops),
                    plan
                );
            }
            assert_eq!(
                plan_for(flavour, MatmulShape::new(8, 8, 70_000), big, None),
                plan
            );
        }
        // A Dense layer after Flatten of 32x32x64 (K = 65536), forward and dW at a batch past the
        // limit: splits of at most 49152 of K, more where the shared kernel wants them anyway.
        for flavour in [MatmulFlavour::Subgroups, MatmulFlavour::Registers] {
            let dense = MatmulShape::new(2, 4, 65536);
            assert_eq!(
                plan_for(flavour, dense, big, limit),
                Plan::Shared { splits: 256 }
            );
            let dw = tn(4096, 4096, 100_000);
            assert_eq!(
                plan_for(flavour, dw, big, limit),
                Plan::Shared { splits: 3 }
            );
            assert_eq!(k_ranges(100_000, 3), (33336, 3));
        }
        // The shared flavour already splits; where it would not, the limit does.
        let wide = MatmulShape::new(2048, 2048, 1 << 20);
        let shared = |loops| plan_for(MatmulFlavour::Shared, wide, big, loops);
        assert_eq!(shared(None), Plan::Shared { splits: 1 });
        assert_eq!(shared(limit), Plan::Shared { splits: 22 });
        assert!(k_ranges(1 << 20, 22).0 <= crate::gpu::MAX_LOOP_STEPS);
    }

    #[test]
    fn column_sums_take_one_more_row_of_workgroups_in_the_kernels_that_have_them() {
        let tn = |m, n, k| MatmulShape {
            trans_a: true,
            ..MatmulShape::new(m, n, k)
        };
        // The notebook's dW (8192 x 512 over a batch of 128) with its bias gradient adjacent.
        let dw = tn(8192, 512, 128);
        let at = Some(8192 * 512);
        assert_eq!(entry_point(dw, None, 2), ("matmul_tile", [2, 256, 1], 4));
        assert_eq!(entry_point(dw, at, 2), ("matmul_tile", [2, 257, 1], 4));
        assert_eq!(
            subgroup_entry_point(dw, at, 2),
            Some(("matmul_sg_tile", [8, 65, 1], 4))
        );
        // Sums not on a quad, or with TRANS_B alone: the general kernel.
        let off = Some(8192 * 512 + 3);
        assert_eq!(entry_point(dw, off, 2), ("matmul", [16, 257, 1], 1));
        assert_eq!(subgroup_entry_point(dw, off, 2), None);
        let nt = MatmulShape {
            trans_b: true,
            ..MatmulShape::new(8, 8, 8)
        };
        assert_eq!(entry_point(nt, None, 2), ("matmul_tile_nt", [1, 1, 1], 1));
        // dx of the notebook's first dense layer: 16 blocks of 8 rows, one to a workgroup.
        let dx = MatmulShape {
            trans_b: true,
            ..MatmulShape::new(128, 8192, 512)
        };
        assert_eq!(entry_point(dx, None, 2), ("matmul_tile_nt", [64, 16, 1], 1));
        assert_eq!(entry_point(nt, Some(64), 2), ("matmul", [1, 2, 1], 1));
        assert_eq!(subgroup_entry_point(nt, Some(64), 2), None);
    }

    #[test]
    fn subgroup_kernels_take_the_first_dense_layer_and_leave_the_rest() {
        let nt = |m, n, k| MatmulShape {
            trans_b: true,
            ..MatmulShape::new(m, n, k)
        };
        let tn = |m, n, k| MatmulShape {
            trans_a: true,
            ..MatmulShape::new(m, n, k)
        };
        // 8192 -> 512 at batch 128 on 2 threads: 4 blocks of 32 rows by 16 quads (matmul_sg_tile)
        // or by 16 columns (matmul_sg_tile_nt), so the forward's and dx's whole batch in one row
        // of workgroups.
        let first = [
            (
                MatmulShape::new(128, 512, 8192),
                "matmul_sg_tile",
                [8, 1, 1],
                4,
            ),
            (tn(8192, 512, 128), "matmul_sg_tile", [8, 64, 1], 4),
            (nt(128, 8192, 512), "matmul_sg_tile_nt", [512, 1, 1], 4),
        ];
        for (s, entry, groups, rb) in first {
            assert_eq!(
                subgroup_entry_point(s, None, 2),
                Some((entry, groups, rb)),
                "{s:?}"
            );
        }
        // Fewer blocks per workgroup where 4 would leave fewer than two workgroups per thread: the
        // forward on 16 threads, and a 64-unit layer (one column of workgroups) on 2, keep one
        // block per workgroup.
        let forward = MatmulShape::new(128, 512, 8192);
        assert_eq!(
            subgroup_entry_point(forward, None, 16),
            Some(("matmul_sg_tile", [8, 4, 1], 1))
        );
        assert_eq!(
            subgroup_entry_point(forward, None, 3),
            Some(("matmul_sg_tile", [8, 1, 1], 4))
        );
        assert_eq!(
            subgroup_entry_point(MatmulShape::new(128, 64, 8192), None, 2),
            Some(("matmul_sg_tile", [1, 4, 1], 1))
        );
        // And fewer where K * blocks would pass llvmpipe's loop limiter.
        let long = |k| MatmulShape::new(128, 512, k);
        assert_eq!(subgroup_entry_point(long(12288), None, 2).unwrap().2, 4);
        assert_eq!(subgroup_entry_point(long(16500), None, 2).unwrap().2, 2);
        assert_eq!(subgroup_entry_point(long(24577), None, 2).unwrap().2, 1);
        // matmul_sg_tile_nt's loop takes K a quad at a time.
        assert_eq!(
            subgroup_entry_point(nt(128, 64, 49152), None, 2).unwrap().2,
            4
        );
        assert_eq!(
            subgroup_entry_point(nt(128, 64, 66000), None, 2).unwrap().2,
            2
        );
        // 512 -> 10: N or K of 10 is not a multiple of 4, and no kernel here transposes both.
        for s in [
            MatmulShape::new(128, 10, 512),
            tn(512, 10, 128),
            nt(128, 512, 10),
            MatmulShape {
                trans_a: true,
                ..nt(4, 4, 4)
            },
        ] {
            assert_eq!(subgroup_entry_point(s, None, 2), None, "{s:?}");
        }
    }
}
