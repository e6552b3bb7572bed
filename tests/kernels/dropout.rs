use cifar_wgpu::gpu::Tensor;
use cifar_wgpu::kernels::StepState;
use cifar_wgpu::kernels::dropout::{
    dropout_backward, dropout_forward, dropout_forward_relu, scale,
};
use cifar_wgpu::reference;

use crate::common::*;

const SEED: u64 = 0x5EED_0000_0000_CAFE;

fn step_state(step: u32) -> Tensor {
    let st = StepState {
        step,
        ..StepState::default()
    };
    gpu().upload("step_state", &st.words())
}

/// Runs forward on `x` and backward on `dy` at `step`; returns (y, dx).
fn run_dropout(x: &[f32], dy: &[f32], step: u32, salt: u32, rate: f32) -> (Vec<f32>, Vec<f32>) {
    let g = gpu();
    let st = step_state(step);
    let (tx, tdy) = (g.upload("x", x), g.upload("dy", dy));
    let (ty, tdx) = (poisoned(x.len()), poisoned(dy.len()));
    let fwd = dropout_forward(g, &tx, &ty, &st, SEED, salt, rate);
    let bwd = dropout_backward(g, &tdy, None, &tdx, &st, SEED, salt, rate);
    run(&[&fwd, &bwd]);
    (read(&ty), read(&tdx))
}

/// Every element of the GPU's output is the twin's, bit for bit: the same mask (same hash on both
/// sides) and the same f32 product x * scale. Inputs are in [0.5, 1.5), never 0, so 0 means dropped.
fn check_exact(name: &str, x: &[f32], got: &[f32], step: u32, salt: u32, rate: f32) -> usize {
    let s = scale(rate);
    let mut kept = 0;
    for (i, (&v, &o)) in x.iter().zip(got).enumerate() {
        let k = reference::dropout::keep(SEED, step, salt, i as u32, rate);
        let want = if k { v * s } else { 0.0 };
        assert!(
            o.to_bits() == want.to_bits(),
            "{name}: element {i} is {o}, twin says {want} (kept: {k})"
        );
        kept += k as usize;
    }
    println!("{name}: OK exact, {kept} of {} kept", x.len());
    kept
}

#[test]
fn dropout_forward_and_backward_equal_the_twin_exactly() {
    // Odd lengths take the scalar entry point, multiples of 4 the vec4 one (the notebook's 65,536).
    for (i, &(n, rate, step, salt)) in [
        (1usize, 0.5f32, 0u32, 0u32),
        (257, 0.25, 1, 1),
        (10_001, 0.5, 77, 2),
        (100_003, 0.25, 123_456, 3),
        (4, 0.5, 2, 4),
        (1_000, 0.25, 9, 5),
        (65_536, 0.5, 123_457, 6),
    ]
    .iter()
    .enumerate()
    {
        let x = random(n, 500 + i as u64, 0.5, 1.5);
        let dy = random(n, 600 + i as u64, 0.5, 1.5);
        let (y, dx) = run_dropout(&x, &dy, step, salt, rate);
        check_exact(
            &format!("dropout_forward n={n} rate={rate}"),
            &x,
            &y,
            step,
            salt,
            rate,
        );
        check_exact(
            &format!("dropout_backward n={n} rate={rate}"),
            &dy,
            &dx,
            step,
            salt,
            rate,
        );
        // And within F32_TOL of the f64 twin, as every kernel.
        let want = reference::dropout::dropout_forward(&to_f64(&x), SEED, step, salt, rate);
        compare(
            &format!("dropout_forward n={n} vs f64 twin"),
            &y,
            &want,
            F32_TOL,
        );
    }
}

#[test]
fn dropout_kept_fraction_is_within_five_sigma_and_scaling_is_right() {
    let n = 100_000;
    let x = random(n, 700, 0.5, 1.5);
    for rate in [0.25f32, 0.5] {
        let (y, _) = run_dropout(&x, &x, 3, 1, rate);
        let kept = y.iter().filter(|&&v| v != 0.0).count() as f64 / n as f64;
        let q = 1.0 - rate as f64;
        let five_sigma = 5.0 * (q * (1.0 - q) / n as f64).sqrt();
        println!("dropout rate {rate}: kept {kept:.4}, expected {q} +- {five_sigma:.4}");
        assert!(
            (kept - q).abs() <= five_sigma,
            "rate {rate}: kept fraction {kept}"
        );
        // Inverted scaling: every kept element is x / (1 - rate), so the mean is preserved.
        for (&v, &o) in x.iter().zip(&y) {
            assert!(
                o == 0.0 || o == v * scale(rate),
                "rate {rate}: {v} became {o}"
            );
        }
        let (sx, sy): (f64, f64) = (
            x.iter().map(|&v| v as f64).sum(),
            y.iter().map(|&v| v as f64).sum(),
        );
        assert!(
            (sy / sx - 1.0).abs() < 5.0 * five_sigma,
            "rate {rate}: mean not preserved ({sy} vs {sx})"
        );
    }
    assert_eq!(scale(0.5), 2.0);
    assert_eq!(scale(0.25), 1.0 / 0.75f32);
}

#[test]
fn dropout_masks_repeat_per_step_and_differ_across_steps_and_salts() {
    let n = 20_000;
    let x = random(n, 800, 0.5, 1.5);
    let mask = |step, salt| -> Vec<bool> {
        run_dropout(&x, &x, step, salt, 0.5)
            .0
            .iter()
            .map(|&v| v != 0.0)
            .collect()
    };
    let a = mask(10, 1);
    assert_eq!(
        a,
        mask(10, 1),
        "same (seed, step, salt) must give the same mask"
    );
    for (what, other) in [("step 11", mask(11, 1)), ("salt 2", mask(10, 2))] {
        let same = a.iter().zip(&other).filter(|(p, q)| p == q).count() as f64 / n as f64;
        // Independent masks at rate 0.5 agree on half the elements; 5 sigma is 0.018 here.
        println!("dropout mask at {what}: agrees with step 10 / salt 1 on {same:.4} of elements");
        assert!(
            (same - 0.5).abs() < 5.0 * (0.25 / n as f64).sqrt(),
            "{what}: masks are not independent ({same})"
        );
    }
}

#[test]
fn dropout_rate_zero_is_the_identity() {
    let x = random(1000, 900, -1.0, 1.0);
    let (y, dx) = run_dropout(&x, &x, 5, 0, 0.0);
    assert_eq!(y, x);
    assert_eq!(dx, x);
    println!("dropout rate 0: OK identity");
}

#[test]
fn one_step_state_tensor_drives_forward_and_backward_across_steps() {
    // The host rewrites the step between submissions; the same dispatches then draw a new mask.
    let g = gpu();
    let n = 5000;
    let x = random(n, 950, 0.5, 1.5);
    let st = step_state(0);
    let tx = g.upload("x", &x);
    let (ty, tdx) = (poisoned(n), poisoned(n));
    let fwd = dropout_forward(g, &tx, &ty, &st, SEED, 4, 0.5);
    let bwd = dropout_backward(g, &tx, None, &tdx, &st, SEED, 4, 0.5);
    for step in [0u32, 1, 1000] {
        g.write(
            &st,
            &StepState {
                step,
                ..StepState::default()
            }
            .words(),
        );
        run(&[&fwd, &bwd]);
        check_exact(
            &format!("dropout_forward step {step}"),
            &x,
            &read(&ty),
            step,
            4,
            0.5,
        );
        check_exact(
            &format!("dropout_backward step {step}"),
            &x,
            &read(&tdx),
            step,
            4,
            0.5,
        );
    }
}

/// The backward with the ReLU mask of the layer before fused: the twin's dropout backward, then its
/// ReLU backward, bit for bit, on the scalar and vec4 entry points, with some mask values exactly 0.
#[test]
fn dropout_backward_with_the_relu_mask_equals_the_twins_exactly() {
    let g = gpu();
    for (i, &n) in [1001usize, 4096].iter().enumerate() {
        let mut x = random(n, 700 + i as u64, -1.0, 1.0);
        for v in x.iter_mut().step_by(9) {
            *v = 0.0;
        }
        let dy = random(n, 800 + i as u64, -1.0, 1.0);
        let st = step_state(3);
        let (tx, tdy, tdx) = (g.upload("x", &x), g.upload("dy", &dy), poisoned(n));
        run(&[&dropout_backward(
            g,
            &tdy,
            Some(&tx),
            &tdx,
            &st,
            SEED,
            2,
            0.25,
        )]);
        let want = reference::dropout::dropout_backward_masked(
            &to_f64(&dy),
            &to_f64(&x),
            SEED,
            3,
            2,
            0.25,
        );
        let got = read(&tdx);
        for (j, (&o, &w)) in got.iter().zip(&want).enumerate() {
            assert!(
                o.to_bits() == (w as f32).to_bits(),
                "dropout_backward masked n={n}: element {j} is {o}, twin says {w}"
            );
        }
    }
}

/// The forward with the ReLU before the layer fused: the twin's ReLU, then its dropout, bit for bit,
/// on the scalar and vec4 entry points, with negative inputs and some exactly 0 (and -0).
#[test]
fn dropout_forward_with_the_relu_before_equals_the_twins_exactly() {
    let g = gpu();
    for (i, &n) in [1001usize, 4096].iter().enumerate() {
        let mut x = random(n, 900 + i as u64, -1.0, 1.0);
        for (j, v) in x.iter_mut().enumerate().step_by(9) {
            *v = if j % 2 == 0 { 0.0 } else { -0.0 };
        }
        let st = step_state(4);
        let (tx, ty) = (g.upload("x", &x), poisoned(n));
        run(&[&dropout_forward_relu(g, &tx, &ty, &st, SEED, 3, 0.5)]);
        let relu = reference::activation::relu_forward(&to_f64(&x));
        let want = reference::dropout::dropout_forward(&relu, SEED, 4, 3, 0.5);
        let got = read(&ty);
        for (j, (&o, &w)) in got.iter().zip(&want).enumerate() {
            assert!(
                o.to_bits() == (w as f32).to_bits(),
                "dropout_forward after ReLU n={n}: element {j} is {o}, twin says {w}"
            );
        }
        println!("dropout_forward after ReLU n={n}: OK exact");
    }
}
