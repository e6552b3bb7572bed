use cifar_wgpu::kernels::StepState;
use cifar_wgpu::kernels::batch_norm::{
    BatchNormDims, batch_norm_dx, batch_norm_normalize, batch_norm_reduce, batch_norm_scratch,
    batch_norm_stats,
};
use cifar_wgpu::reference::batch_norm as twin;

use crate::common::*;

/// (rows, channels, offset of x's mean): an image batch's [batch * h * w, c] with channels not a
/// multiple of anything (batch 3 of 5x7, 70 channels), a batch of one image, a flat batch of 3 and a
/// flat batch of 1 (variance 0: the output is beta), then several chunks of 128 rows: a partial last
/// chunk, a last chunk of one row, and a mean far from 0 (the chunks' variances must combine without
/// cancellation).
const SHAPES: [(usize, usize, f32); 8] = [
    (3 * 5 * 7, 70, 0.0),
    (9, 3, 0.0),
    (3, 13, 0.0),
    (1, 6, 0.0),
    (64, 1, 0.0),
    (200, 5, 0.0),
    (129, 2, 0.0),
    (3 * 128 + 37, 3, 50.0),
];

fn dims(rows: usize, channels: usize) -> BatchNormDims {
    BatchNormDims {
        rows,
        channels,
        momentum: 0.9,
        epsilon: 1e-3,
    }
}

fn step_state(step: u32) -> Vec<u32> {
    StepState {
        step,
        ..StepState::default()
    }
    .words()
    .to_vec()
}

#[test]
fn batch_norm_training_forward_and_backward_equal_the_twin() {
    let g = gpu();
    for (k, &(rows, c, offset)) in SHAPES.iter().enumerate() {
        let d = dims(rows, c);
        let seed = 700 + 10 * k as u64;
        // An offset mean, so that centring matters.
        let x = random(rows * c, seed, -1.0 + offset, 3.0 + offset);
        let dy = random(rows * c, seed + 1, -1.0, 1.0);
        let gamma = random(c, seed + 2, 0.5, 1.5);
        let beta = random(c, seed + 3, -0.5, 0.5);
        let moving_mean = random(c, seed + 4, -0.5, 0.5);
        let moving_var = random(c, seed + 5, 0.5, 1.5);
        let t = |name, v: &[f32]| g.upload(name, v);
        let (tx, tdy, tgamma, tbeta) = (
            t("x", &x),
            t("dy", &dy),
            t("gamma", &gamma),
            t("beta", &beta),
        );
        let (tmm, tmv) = (t("moving_mean", &moving_mean), t("moving_var", &moving_var));
        let (bmean, bvar) = (poisoned(c), poisoned(c));
        let updated = g.upload("updated", &vec![0u32; c]);
        let st = g.upload("step_state", &step_state(4));
        let scratch = poisoned(batch_norm_scratch(rows, c));
        let (ty, tdx, tdgamma, tdbeta) = (
            poisoned(rows * c),
            poisoned(rows * c),
            poisoned(c),
            poisoned(c),
        );
        let stats = batch_norm_stats(
            g, &d, &tx, &scratch, &bmean, &bvar, &tmm, &tmv, &updated, &st,
        );
        let mut rest = vec![batch_norm_normalize(
            g, &d, &tx, &bmean, &bvar, &tgamma, &tbeta, &ty,
        )];
        rest.extend(batch_norm_reduce(
            g, &d, &tx, &tdy, &bmean, &bvar, &scratch, &tdgamma, &tdbeta,
        ));
        rest.push(batch_norm_dx(
            g, &d, &tx, &tdy, &bmean, &bvar, &tgamma, &tdgamma, &tdbeta, &tdx,
        ));
        // The statistics twice at the same step: the moving statistics move once.
        let all: Vec<_> = stats.iter().chain(&stats).chain(&rest).collect();
        run(&all);
        let (x64, dy64, gamma64) = (to_f64(&x), to_f64(&dy), to_f64(&gamma));
        let (mean, var) = twin::batch_norm_stats(&x64, rows, c);
        let name = |what: &str| format!("batch_norm {what} rows={rows} channels={c}");
        compare(&name("batch mean"), &read(&bmean), &mean, F32_TOL);
        compare(&name("batch variance"), &read(&bvar), &var, F32_TOL);
        compare(
            &name("moving mean"),
            &read(&tmm),
            &twin::moving_update(&to_f64(&moving_mean), &mean, 0.9),
            F32_TOL,
        );
        compare(
            &name("moving variance"),
            &read(&tmv),
            &twin::moving_update(&to_f64(&moving_var), &var, 0.9),
            F32_TOL,
        );
        let y = twin::batch_norm_train_forward(&x64, &gamma64, &to_f64(&beta), rows, 1e-3);
        compare(&name("y"), &read(&ty), &y, F32_TOL);
        let (dx, dgamma, dbeta) = twin::batch_norm_backward(&x64, &dy64, &gamma64, rows, 1e-3);
        compare(&name("dgamma"), &read(&tdgamma), &dgamma, F32_TOL);
        compare(&name("dbeta"), &read(&tdbeta), &dbeta, F32_TOL);
        // With one row dx is exactly 0 (y does not depend on x); the norm comparison then checks
        // the absolute error.
        compare(&name("dx"), &read(&tdx), &dx, F32_TOL);
        // The sums have a fixed order: a second run gives the same bits.
        let first = [&bmean, &bvar, &tdgamma, &tdbeta].map(read);
        run(&all);
        let again = [&bmean, &bvar, &tdgamma, &tdbeta].map(read);
        assert!(
            first
                .iter()
                .zip(&again)
                .all(|(a, b)| a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits())),
            "{}",
            name("reductions differ between two runs")
        );
    }
}

#[test]
fn batch_norm_moves_the_moving_statistics_once_per_step() {
    let g = gpu();
    let (rows, c) = (10, 3);
    let d = dims(rows, c);
    let x = random(rows * c, 801, -1.0, 1.0);
    let tx = g.upload("x", &x);
    let (bmean, bvar) = (poisoned(c), poisoned(c));
    let (tmm, tmv) = (g.upload("mm", &[0.0f32; 3]), g.upload("mv", &[1.0f32; 3]));
    let updated = g.upload("updated", &vec![0u32; c]);
    let st = g.upload("step_state", &step_state(0));
    let scratch = poisoned(batch_norm_scratch(rows, c));
    let stats = batch_norm_stats(
        g, &d, &tx, &scratch, &bmean, &bvar, &tmm, &tmv, &updated, &st,
    );
    let (mean, var) = twin::batch_norm_stats(&to_f64(&x), rows, c);
    let mut want = (vec![0.0; c], vec![1.0; c]);
    // Steps 0, 0 again (a replay), 1 and 2: three updates.
    for step in [0u32, 0, 1, 2] {
        g.write(&st, &step_state(step));
        run_all(&stats);
    }
    for _ in 0..3 {
        want = (
            twin::moving_update(&want.0, &mean, 0.9),
            twin::moving_update(&want.1, &var, 0.9),
        );
    }
    compare("moving mean after 3 steps", &read(&tmm), &want.0, F32_TOL);
    compare(
        "moving variance after 3 steps",
        &read(&tmv),
        &want.1,
        F32_TOL,
    );
}

#[test]
fn batch_norm_evaluation_uses_the_given_statistics() {
    let g = gpu();
    let (rows, c) = (2 * 3 * 3, 7);
    let d = dims(rows, c);
    let x = random(rows * c, 901, -2.0, 2.0);
    let mean = random(c, 902, -0.5, 0.5);
    let var = random(c, 903, 0.25, 2.0);
    let gamma = random(c, 904, 0.5, 1.5);
    let beta = random(c, 905, -0.5, 0.5);
    let y = poisoned(rows * c);
    let u = |name, v: &[f32]| g.upload(name, v);
    run(&[&batch_norm_normalize(
        g,
        &d,
        &u("x", &x),
        &u("mean", &mean),
        &u("var", &var),
        &u("gamma", &gamma),
        &u("beta", &beta),
        &y,
    )]);
    let want = twin::batch_norm_normalize(
        &to_f64(&x),
        &to_f64(&mean),
        &to_f64(&var),
        &to_f64(&gamma),
        &to_f64(&beta),
        1e-3,
    );
    compare(
        "batch_norm_normalize (moving statistics)",
        &read(&y),
        &want,
        F32_TOL,
    );
}

/// Each kernel on a batch of 128 of 32x32x32 activations (a conv layer's output), on whatever
/// adapter the tests use: `cargo test --test kernels batch_norm_timing -- --ignored --nocapture`.
#[test]
#[ignore = "timing, not a check"]
fn batch_norm_timing_batch_128_32x32x32() {
    let g = gpu();
    let (rows, c) = (128 * 32 * 32, 32);
    let d = dims(rows, c);
    let tx = g.upload("x", &random(rows * c, 1, -1.0, 3.0));
    let tdy = g.upload("dy", &random(rows * c, 2, -1.0, 1.0));
    let ones = g.upload("gamma", &vec![1.0f32; c]);
    let zeros = g.upload("beta", &vec![0.0f32; c]);
    let (bmean, bvar, tmm, tmv) = (
        g.zeros("bm", c),
        g.zeros("bv", c),
        g.zeros("mm", c),
        g.zeros("mv", c),
    );
    let (tdgamma, tdbeta) = (g.zeros("dgamma", c), g.zeros("dbeta", c));
    let updated = g.upload("updated", &vec![0u32; c]);
    let st = g.upload("step_state", &step_state(0));
    let (ty, tdx) = (g.zeros("y", rows * c), g.zeros("dx", rows * c));
    let scratch = g.zeros("scratch", batch_norm_scratch(rows, c));
    let cases = [
        (
            "stats",
            batch_norm_stats(
                g, &d, &tx, &scratch, &bmean, &bvar, &tmm, &tmv, &updated, &st,
            ),
        ),
        (
            "normalize",
            vec![batch_norm_normalize(
                g, &d, &tx, &bmean, &bvar, &ones, &zeros, &ty,
            )],
        ),
        (
            "reduce",
            batch_norm_reduce(g, &d, &tx, &tdy, &bmean, &bvar, &scratch, &tdgamma, &tdbeta),
        ),
        (
            "dx",
            vec![batch_norm_dx(
                g, &d, &tx, &tdy, &bmean, &bvar, &ones, &tdgamma, &tdbeta, &tdx,
            )],
        ),
    ];
    for (name, ds) in &cases {
        run_all(ds);
        // The fastest of 5 runs: the machine may be shared, and a slow run says little.
        let secs = (0..5)
            .map(|_| {
                let start = std::time::Instant::now();
                run_all(ds);
                start.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        println!(
            "batch_norm {name}: {:.2} ms (fastest of 5, {} dispatches)",
            secs * 1e3,
            ds.len()
        );
    }
}
