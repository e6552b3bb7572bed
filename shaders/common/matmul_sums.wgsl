// The column sums of B stored [K,N] with N % 4 == 0, for the vec4 kernels of matmul.wgsl and
// matmul_subgroup.wgsl (`Params::sums_at`, a multiple of 4 for them): quads q0, q0 + stride, ...
// (`count` of them), each summed over all of K in order from k = 0 with one accumulator per column, as
// column_sum.wgsl's one-pass `column_sum` adds (the same bits), and written at word p.sums_at of C.
// Both files declare `p`, `b4` and `c4`.
fn column_sums4(q0: u32, stride: u32, count: u32) {
    let quads = p.n / 4u;
    for (var t = 0u; t < count; t++) {
        let q = q0 + t * stride;
        if q < quads {
            var s = vec4<f32>(0.0);
            for (var kk = 0u; kk < p.k; kk++) {
                s += b4[kk * quads + q];
            }
            c4[p.sums_at / 4u + q] = s;
        }
    }
}
