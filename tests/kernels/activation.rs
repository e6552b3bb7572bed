use cifar_wgpu::kernels::activation::{activation_backward, activation_forward};
use cifar_wgpu::reference;
use cifar_wgpu::shape::ActivationFn;

use crate::common::*;

/// Every function of the shader, ELU also with an alpha other than Keras' default.
const ALL: [ActivationFn; 6] = [
    ActivationFn::Relu,
    ActivationFn::Sigmoid,
    ActivationFn::Tanh,
    ActivationFn::Elu { alpha: 1.0 },
    ActivationFn::Elu { alpha: 0.5 },
    ActivationFn::LeakyRelu { slope: 0.2 },
];

/// Forward and backward of every function against the twin on lengths that are not multiples of the
/// 256-wide workgroup, with some inputs exactly 0: odd lengths take the scalar entry points,
/// multiples of 4 the vec4 ones. Inputs span [-20, 20] (sigmoid and tanh saturate) and every
/// eighth is tiny, where tanh is its Taylor series.
#[test]
fn activations_forward_and_backward_match_the_twin() {
    let g = gpu();
    for f in ALL {
        for (i, &n) in [1usize, 255, 257, 1000, 70_001, 4, 1028, 70_000]
            .iter()
            .enumerate()
        {
            let mut x = random(n, 300 + i as u64, -20.0, 20.0);
            for v in x.iter_mut().skip(3).step_by(8) {
                *v /= 400.0;
            }
            for v in x.iter_mut().step_by(7) {
                *v = 0.0;
            }
            let dy = random(n, 400 + i as u64, -1.0, 1.0);
            let (tx, tdy) = (g.upload("x", &x), g.upload("dy", &dy));
            let (ty, tdx) = (poisoned(n), poisoned(n));
            let fwd = activation_forward(g, f, &tx, &ty);
            let bwd = activation_backward(g, f, &tx, &tdy, &tdx);
            run(&[&fwd, &bwd]);
            let (x64, dy64) = (to_f64(&x), to_f64(&dy));
            // ReLU and leaky ReLU only select and scale, so f32 and f64 agree exactly where x is
            // exact: demand a relative error of 0 for ReLU.
            let tol = if f == ActivationFn::Relu { 0.0 } else { 1e-6 };
            compare(
                &format!("{f:?} forward n={n}"),
                &read(&ty),
                &reference::activation::activation_forward(f, &x64),
                tol,
            );
            compare(
                &format!("{f:?} backward n={n}"),
                &read(&tdx),
                &reference::activation::activation_backward(f, &x64, &dy64),
                tol,
            );
        }
    }
}

/// Each element within `tol` of the twin relative to its own size (floor 1e-30): the norm-relative
/// comparison would hide an error on small values, such as tanh's near 0.
fn elementwise(name: &str, got: &[f32], want: &[f64], tol: f64) {
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let rel = (g as f64 - w).abs() / w.abs().max(1e-30);
        assert!(
            rel <= tol,
            "{name}: element {i} is {g}, want {w} (rel {rel:e})"
        );
    }
    println!("{name}: OK elementwise rel <= {tol:e}");
}

#[test]
fn sigmoid_and_tanh_keep_their_precision_at_small_and_large_inputs() {
    let g = gpu();
    let x: Vec<f32> = [
        1e-7f32, -3e-5, 0.01, -0.124, 0.126, -0.5, 2.0, -9.0, 15.5, -100.0, 100.0,
    ]
    .to_vec();
    let n = x.len();
    let tx = g.upload("x", &x);
    for f in [ActivationFn::Sigmoid, ActivationFn::Tanh] {
        let ty = poisoned(n);
        run(&[&activation_forward(g, f, &tx, &ty)]);
        let want = reference::activation::activation_forward(f, &to_f64(&x));
        // Sigmoid near 0 of large negative inputs: e^-100 is below f32's range, so 0 is exact to
        // within the floor.
        elementwise(&format!("{f:?} forward"), &read(&ty), &want, 1e-5);
    }
}

#[test]
fn gradients_at_exactly_zero_are_tensorflows_on_the_gpu() {
    let g = gpu();
    let x = [0.0f32, -0.0, 1e-30, -1e-30, 2.0, -2.0, -0.0, 3.0];
    let relu_y = [0.0f32, 0.0, 1e-30, 0.0, 2.0, 0.0, 0.0, 3.0];
    let relu_dx = [0.0f32, 0.0, 5.0, 0.0, 5.0, 0.0, 0.0, 5.0];
    let leaky_dx = [1.0f32, 1.0, 5.0, 1.0, 5.0, 1.0, 1.0, 5.0];
    // 6 elements: the scalar entry points; 8: the vec4 ones.
    for n in [6, 8] {
        let dy = vec![5.0f32; n];
        let (tx, tdy) = (g.upload("x", &x[..n]), g.upload("dy", &dy));
        let (ty, tdx, tleaky) = (poisoned(n), poisoned(n), poisoned(n));
        run(&[
            &activation_forward(g, ActivationFn::Relu, &tx, &ty),
            &activation_backward(g, ActivationFn::Relu, &tx, &tdy, &tdx),
            &activation_backward(
                g,
                ActivationFn::LeakyRelu { slope: 0.2 },
                &tx,
                &tdy,
                &tleaky,
            ),
        ]);
        let y = read(&ty);
        assert_eq!(y, relu_y[..n], "relu forward n={n}");
        // -0.0 == 0.0 in the comparison above; the output must not be a negative zero either.
        assert!(
            y.iter().all(|v| !v.is_sign_negative()),
            "relu forward n={n} wrote -0: {y:?}"
        );
        assert_eq!(read(&tdx), relu_dx[..n], "relu backward n={n} at x = 0");
        assert_eq!(
            read(&tleaky),
            leaky_dx[..n],
            "leaky_relu backward n={n} at x = 0"
        );
        println!("n={n} at x == 0: OK (ReLU gradient 0, leaky ReLU slope, as TensorFlow)");
    }
}
