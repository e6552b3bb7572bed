use cifar_wgpu::kernels::reduce::{column_sum, column_sum_scratch};
use cifar_wgpu::reference;

use crate::common::*;

#[test]
fn column_sum_one_and_two_passes() {
    let g = gpu();
    // Short inputs take one pass; tall ones (a conv bias over batch x pixels) take two.
    for (i, &(rows, cols)) in [(1, 1), (7, 10), (1000, 3), (1025, 32), (5000, 7)]
        .iter()
        .enumerate()
    {
        let x = random(rows * cols, i as u64, -1.0, 1.0);
        let tx = g.upload("x", &x);
        let scratch = poisoned(column_sum_scratch(rows, cols));
        let out = poisoned(cols);
        let ds = column_sum(g, &tx, &scratch, &out, rows, cols);
        run_all(&ds);
        let want = reference::reduce::column_sum(&to_f64(&x), rows, cols);
        compare(
            &format!("column_sum {rows}x{cols} ({} pass)", ds.len()),
            &read(&out),
            &want,
            F32_TOL,
        );
    }
}
