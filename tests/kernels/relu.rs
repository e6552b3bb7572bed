use cifar_wgpu::kernels::relu::{relu_backward, relu_forward};
use cifar_wgpu::reference;

use crate::common::*;

/// Forward and backward against the twin on lengths that are not multiples of the 256-wide workgroup,
/// with some inputs exactly 0: odd lengths take the scalar entry points, multiples of 4 the vec4 ones.
#[test]
fn relu_forward_and_backward_match_the_twin() {
    let g = gpu();
    for (i, &n) in [1usize, 255, 257, 1000, 70_001, 4, 1028, 70_000]
        .iter()
        .enumerate()
    {
        let mut x = random(n, 300 + i as u64, -1.0, 1.0);
        for v in x.iter_mut().step_by(7) {
            *v = 0.0;
        }
        let dy = random(n, 400 + i as u64, -1.0, 1.0);
        let (tx, tdy) = (g.upload("x", &x), g.upload("dy", &dy));
        let (ty, tdx) = (poisoned(n), poisoned(n));
        let fwd = relu_forward(g, &tx, &ty);
        let bwd = relu_backward(g, &tx, &tdy, &tdx);
        run(&[&fwd, &bwd]);
        let (x64, dy64) = (to_f64(&x), to_f64(&dy));
        // ReLU only selects, so f32 and f64 agree exactly: demand a relative error of 0.
        compare(
            &format!("relu_forward n={n}"),
            &read(&ty),
            &reference::relu::relu_forward(&x64),
            0.0,
        );
        compare(
            &format!("relu_backward n={n}"),
            &read(&tdx),
            &reference::relu::relu_backward(&x64, &dy64),
            0.0,
        );
    }
}

#[test]
fn relu_gradient_is_zero_at_exactly_zero_on_the_gpu() {
    let g = gpu();
    let x = [0.0f32, -0.0, 1e-30, -1e-30, 2.0, -2.0, -0.0, 3.0];
    let want_y = [0.0f32, 0.0, 1e-30, 0.0, 2.0, 0.0, 0.0, 3.0];
    let want_dx = [0.0f32, 0.0, 5.0, 0.0, 5.0, 0.0, 0.0, 5.0];
    // 6 elements: the scalar entry points; 8: the vec4 ones.
    for n in [6, 8] {
        let dy = vec![5.0f32; n];
        let (tx, tdy) = (g.upload("x", &x[..n]), g.upload("dy", &dy));
        let (ty, tdx) = (poisoned(n), poisoned(n));
        run(&[
            &relu_forward(g, &tx, &ty),
            &relu_backward(g, &tx, &tdy, &tdx),
        ]);
        let y = read(&ty);
        assert_eq!(y, want_y[..n], "relu_forward n={n}");
        // -0.0 == 0.0 in the comparison above; the output must not be a negative zero either.
        assert!(
            y.iter().all(|v| !v.is_sign_negative()),
            "relu_forward n={n} wrote -0: {y:?}"
        );
        assert_eq!(read(&tdx), want_dx[..n], "relu_backward n={n} at x = 0");
        println!("relu n={n} at x == 0: OK (gradient 0, as TensorFlow's ReluGrad)");
    }
}
