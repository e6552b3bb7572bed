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
    _pad0: u32,
    _pad1: u32,
}
