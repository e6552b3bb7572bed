//! CPU twin of `shaders/column_sum.wgsl`.

/// out[c] = sum_r x[r, c] for x stored as [rows, cols].
pub fn column_sum(x: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    assert_eq!(x.len(), rows * cols);
    let mut out = vec![0.0; cols];
    for r in 0..rows {
        for (o, v) in out.iter_mut().zip(&x[r * cols..(r + 1) * cols]) {
            *o += v;
        }
    }
    out
}
