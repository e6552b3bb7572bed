use cifar_wgpu::kernels::fill::fill;

use crate::common::*;

#[test]
fn fill_writes_every_element_and_nothing_past_the_end() {
    let g = gpu();
    // Lengths around the 256-wide workgroup; the tensor is a view inside a larger buffer whose
    // neighbouring words must stay untouched.
    for (i, &n) in [1usize, 255, 256, 257, 70_001].iter().enumerate() {
        let value = 0.25 + i as f32;
        let whole = g.upload("whole", &vec![f32::NAN; n + 128]);
        let d = fill(g, &whole.slice(64, n), value);
        run(&[&d]);
        let got = read(&whole);
        compare(
            &format!("fill {n}"),
            &got[64..64 + n],
            &vec![value as f64; n],
            0.0,
        );
        assert!(
            got[..64].iter().chain(&got[64 + n..]).all(|v| v.is_nan()),
            "fill wrote outside its view"
        );
    }
}
