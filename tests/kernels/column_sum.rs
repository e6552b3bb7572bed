use cifar_wgpu::gpu::ColumnSumFlavour;
use cifar_wgpu::kernels::column_sum::{column_sum_scratch, column_sum_with};
use cifar_wgpu::reference;

use crate::common::*;

#[test]
fn column_sum_one_and_two_passes() {
    let g = gpu();
    // Short inputs take one pass; tall ones (a conv bias over batch x pixels) take two.
    // Both flavours of the last pass: an invocation per column, a workgroup of 64 per column.
    let shapes = [
        (1, 1),
        (7, 10),
        (63, 5),
        (65, 130),
        (1000, 3),
        (1025, 32),
        (5000, 7),
    ];
    let flavours = [
        ColumnSumFlavour::InvocationPerColumn,
        ColumnSumFlavour::WorkgroupPerColumn,
    ];
    for (i, &(rows, cols, flavour)) in shapes
        .iter()
        .flat_map(|&(r, c)| flavours.map(|f| (r, c, f)))
        .collect::<Vec<_>>()
        .iter()
        .enumerate()
    {
        let x = random(rows * cols, i as u64, -1.0, 1.0);
        let tx = g.upload("x", &x);
        let scratch = poisoned(column_sum_scratch(rows, cols));
        let out = poisoned(cols);
        let ds = column_sum_with(g, &tx, &scratch, &out, rows, cols, flavour);
        run_all(&ds);
        let want = reference::column_sum::column_sum(&to_f64(&x), rows, cols);
        compare(
            &format!("column_sum {rows}x{cols} ({} pass, {flavour:?})", ds.len()),
            &read(&out),
            &want,
            F32_TOL,
        );
    }
}
