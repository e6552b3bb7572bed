// The uniform parameters of every matrix-product kernel (`kernels::matmul::Params` in Rust), shared by
// matmul.wgsl and matmul_subgroup.wgsl so both files bind the same struct.
struct Params {
    m: u32,
    n: u32,
    k: u32,
    has_bias: u32,
    // `matmul_shared`: the length of K each workgroup z handles (a multiple of BK). The register and
    // subgroup kernels ignore it.
    k_split: u32,
    // `matmul_split_sum`: the number of partial products in `parts`.
    splits: u32,
    // Where C also takes the column sums of op(B), sum over k of op(B)[k, n], at word sums_at + n
    // (a Dense layer's bias gradient 1ᵀ dy beside its kernel gradient xᵀ dy); 0: none. The grid
    // then has one more row of workgroups, whose rows start at or past M, to compute them.
    sums_at: u32,
    _pad1: u32,
}
