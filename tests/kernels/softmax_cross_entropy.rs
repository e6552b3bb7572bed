use cifar_wgpu::gpu::Tensor;
use cifar_wgpu::kernels::StepState;
use cifar_wgpu::kernels::dropout::{Mask, dropout_backward, dropout_forward, dropout_forward_relu};
use cifar_wgpu::kernels::softmax_cross_entropy::{METRICS_WORDS, dense, softmax_cross_entropy};
use cifar_wgpu::reference;

use crate::common::*;

fn labels_for(batch: usize, classes: usize, seed: u64) -> Vec<u32> {
    random(batch, seed, 0.0, classes as f32)
        .iter()
        .map(|&v| (v as u32).min(classes as u32 - 1))
        .collect()
}

fn step_state(step: u32) -> Tensor {
    gpu().upload(
        "step_state",
        &StepState {
            step,
            ..StepState::default()
        }
        .words(),
    )
}

/// A layer's kernel w and bias b as the network lays them out, b after w at the next 64-word
/// boundary of the same buffer (the fused forward binds them as one range).
fn kernel_and_bias(w: &[f32], b: &[f32]) -> (Tensor, Tensor) {
    let b_at = w.len().next_multiple_of(64);
    let mut words = w.to_vec();
    words.resize(b_at, f32::NAN);
    words.extend(b);
    let wb = gpu().upload("kernel and bias", &words);
    (wb.slice(0, w.len()), wb.slice(b_at, b.len()))
}

fn metrics_of(t: &Tensor) -> (f32, u32, u32, u32) {
    let m = gpu().read_u32(t).expect("readback failed");
    (f32::from_bits(m[0]), m[1], m[2], m[3])
}

/// Runs the fused kernel once on fresh zeroed metrics; checks dlogits, loss sum, correct and count
/// against the twin. Returns the loss's relative error.
fn check(batch: usize, classes: usize, logits: &[f32], labels: &[u32]) -> f64 {
    let g = gpu();
    let (tz, tl) = (g.upload("logits", logits), g.upload("labels", labels));
    let td = poisoned(batch * classes);
    let metrics = g.zeros("metrics", METRICS_WORDS);
    let st = step_state(41);
    run(&[&softmax_cross_entropy(
        g, &tz, &tl, &td, &metrics, &st, batch, classes,
    )]);
    let (loss, correct, d) = reference::softmax_cross_entropy::softmax_cross_entropy(
        &to_f64(logits),
        labels,
        batch,
        classes,
    );
    let name = format!("softmax_cross_entropy {batch}x{classes}");
    compare(&format!("{name} dlogits"), &read(&td), &d, F32_TOL);
    let (gl, gc, gn, gbad) = metrics_of(&metrics);
    let rel = compare(&format!("{name} loss sum"), &[gl], &[loss], F32_TOL);
    assert_eq!(
        (gc, gn, gbad),
        (correct, batch as u32, 0),
        "{name}: correct / count / bad step"
    );
    println!("{name}: correct {gc} of {gn}: OK exact");
    rel
}

#[test]
fn softmax_cross_entropy_matches_the_twin_on_many_shapes() {
    // Batch 1 up to more rows than the workgroup has invocations (4099 = 16 * 256 + 3), 2 to 1000 classes.
    for (i, &(batch, classes)) in [
        (1, 2),
        (1, 1000),
        (3, 10),
        (32, 10),
        (257, 7),
        (4099, 10),
        (300, 1000),
    ]
    .iter()
    .enumerate()
    {
        let logits = random(batch * classes, 1000 + i as u64, -4.0, 4.0);
        check(
            batch,
            classes,
            &logits,
            &labels_for(batch, classes, 2000 + i as u64),
        );
    }
}

#[test]
fn softmax_cross_entropy_is_stable_for_huge_logits_and_counts_ties_as_tf_argmax() {
    // Logits near 1e4 would overflow exp() without the max subtraction.
    let (batch, classes) = (64, 10);
    let logits: Vec<f32> = random(batch * classes, 3000, -3.0, 3.0)
        .iter()
        .map(|v| v + 1e4)
        .collect();
    check(batch, classes, &logits, &labels_for(batch, classes, 3001));
    // Exact ties: rows of equal logits (argmax is class 0) and rows with two equal maxima.
    let rows: [[f32; 4]; 4] = [
        [1.0; 4],
        [1.0; 4],
        [0.0, 2.0, 2.0, 1.0],
        [0.0, 2.0, 2.0, 1.0],
    ];
    let logits: Vec<f32> = rows.iter().flatten().copied().collect();
    let labels = [0, 1, 1, 2];
    check(4, 4, &logits, &labels);
    let (_, correct, _) =
        reference::softmax_cross_entropy::softmax_cross_entropy(&to_f64(&logits), &labels, 4, 4);
    assert_eq!(correct, 2, "ties go to the first maximum");
}

#[test]
fn metrics_accumulate_over_batches_and_record_the_first_bad_step() {
    let g = gpu();
    let (batch, classes) = (50, 10);
    let logits = random(batch * classes, 4000, -2.0, 2.0);
    let labels = labels_for(batch, classes, 4001);
    let (tz, tl) = (g.upload("logits", &logits), g.upload("labels", &labels));
    let td = poisoned(batch * classes);
    let metrics = g.zeros("metrics", METRICS_WORDS);
    let st = step_state(0);
    let d = softmax_cross_entropy(g, &tz, &tl, &td, &metrics, &st, batch, classes);
    let (loss, correct, _) = reference::softmax_cross_entropy::softmax_cross_entropy(
        &to_f64(&logits),
        &labels,
        batch,
        classes,
    );
    // Three healthy steps add up.
    for step in 0..3 {
        g.write(
            &st,
            &StepState {
                step,
                ..StepState::default()
            }
            .words(),
        );
        run(&[&d]);
    }
    let (gl, gc, gn, gbad) = metrics_of(&metrics);
    compare(
        "metrics loss sum after 3 batches",
        &[gl],
        &[3.0 * loss],
        F32_TOL,
    );
    assert_eq!((gc, gn, gbad), (3 * correct, 3 * batch as u32, 0));
    // A NaN logit at step 6, then an infinite one at step 9: the first bad step (6, stored as 7) stays.
    for (step, bad) in [(6u32, f32::NAN), (9, f32::INFINITY)] {
        let mut z = logits.clone();
        z[17] = bad;
        g.write(&tz, &z);
        g.write(
            &st,
            &StepState {
                step,
                ..StepState::default()
            }
            .words(),
        );
        run(&[&d]);
    }
    let (_, _, gn, gbad) = metrics_of(&metrics);
    assert_eq!(
        (gn, gbad),
        (5 * batch as u32, 7),
        "count and first bad step + 1"
    );
    // A finite but overflowing loss (logit gap beyond f32) counts as bad too.
    let fresh = g.zeros("metrics", METRICS_WORDS);
    let mut z = vec![0.0f32; batch * classes];
    z[0] = 3e38;
    z[1] = -3e38;
    let mut l = labels.clone();
    l[0] = 1;
    let (tz2, tl2) = (g.upload("logits", &z), g.upload("labels", &l));
    g.write(
        &st,
        &StepState {
            step: 12,
            ..StepState::default()
        }
        .words(),
    );
    run(&[&softmax_cross_entropy(
        g, &tz2, &tl2, &td, &fresh, &st, batch, classes,
    )]);
    assert_eq!(metrics_of(&fresh).3, 13, "an infinite loss marks the step");
    println!("metrics: OK (accumulate; first bad step kept; NaN, inf and overflow detected)");
}

/// Runs the fused last layer (forward with dx, then backward) on fresh zeroed metrics and compares
/// every output with the twins; then the evaluation path (forward without dx, then the metrics alone)
/// on another zeroed metrics tensor.
fn check_dense_loss(batch: usize, inp: usize, units: usize, seed: u64) {
    let g = gpu();
    let x = random(batch * inp, seed, -1.0, 1.0);
    let w = random(inp * units, seed + 1, -0.5, 0.5);
    let b = random(units, seed + 2, -0.5, 0.5);
    let labels = labels_for(batch, units, seed + 3);
    let (tw, tb) = kernel_and_bias(&w, &b);
    let (tx, tl) = (g.upload("x", &x), g.upload("labels", &labels));
    let (logits, dlogits, dx) = (
        poisoned(batch * units),
        poisoned(batch * units),
        poisoned(batch * inp),
    );
    let rows = poisoned(batch * dense::ROW_WORDS);
    let (dw, db) = (poisoned(inp * units), poisoned(units));
    let st = step_state(5);
    let t = dense::Forward {
        x: &tx,
        input: dense::Input::default(),
        step_state: &st,
        w: &tw,
        b: &tb,
        labels: &tl,
        logits: &logits,
        dlogits: &dlogits,
        rows: &rows,
        dx: Some(&dx),
    };
    let metrics = g.zeros("metrics", METRICS_WORDS);
    run(&[
        &dense::dense_loss_forward(g, &t, batch, inp, units),
        &dense::dense_loss_backward(
            g,
            &tx,
            &dense::Input::default(),
            &dlogits,
            &rows,
            &dw,
            &db,
            &metrics,
            &st,
            batch,
            inp,
            units,
        ),
    ]);
    let want = reference::softmax_cross_entropy::dense_loss_forward(
        &to_f64(&x),
        &to_f64(&w),
        &to_f64(&b),
        &labels,
        batch,
        inp,
        units,
    );
    let (want_dw, want_db) = reference::softmax_cross_entropy::dense_loss_backward(
        &to_f64(&x),
        &want.dlogits,
        batch,
        inp,
        units,
    );
    let name = format!("dense_loss {batch}x{inp}->{units}");
    compare(
        &format!("{name} logits"),
        &read(&logits),
        &want.logits,
        F32_TOL,
    );
    compare(
        &format!("{name} dlogits"),
        &read(&dlogits),
        &want.dlogits,
        F32_TOL,
    );
    compare(&format!("{name} dx"), &read(&dx), &want.dx, F32_TOL);
    compare(&format!("{name} dw"), &read(&dw), &want_dw, F32_TOL);
    compare(&format!("{name} db"), &read(&db), &want_db, F32_TOL);
    let check_metrics = |what: &str, metrics: &Tensor| {
        let (gl, gc, gn, gbad) = metrics_of(metrics);
        compare(
            &format!("{name} {what} loss sum"),
            &[gl],
            &[want.loss_sum],
            F32_TOL,
        );
        assert_eq!(
            (gc, gn, gbad),
            (want.correct, batch as u32, 0),
            "{name} {what}: correct / count / bad step"
        );
    };
    check_metrics("training", &metrics);
    // Evaluation: no dx, the metrics from their own dispatch; the logits again.
    let eval_logits = poisoned(batch * units);
    let eval = dense::Forward {
        logits: &eval_logits,
        dx: None,
        ..t
    };
    let eval_metrics = g.zeros("metrics", METRICS_WORDS);
    run(&[
        &dense::dense_loss_forward(g, &eval, batch, inp, units),
        &dense::dense_loss_metrics(g, &rows, &eval_metrics, &st, batch, units),
    ]);
    compare(
        &format!("{name} eval logits"),
        &read(&eval_logits),
        &want.logits,
        F32_TOL,
    );
    check_metrics("evaluation", &eval_metrics);
}

#[test]
fn the_fused_last_dense_layer_matches_the_twins_on_awkward_shapes() {
    // One unit, a single row per workgroup (64 units), partial last workgroups, inputs not a
    // multiple of 4, more rows than a workgroup's lanes, 64 rows per workgroup (one unit), and the
    // notebook's 512 -> 10.
    for (i, &(batch, inp, units)) in [
        (1, 1, 1),
        (1, 3, 2),
        (7, 13, 10),
        (65, 5, 3),
        (70, 37, 1),
        (130, 37, 64),
        (129, 512, 10),
    ]
    .iter()
    .enumerate()
    {
        check_dense_loss(batch, inp, units, 5000 + 10 * i as u64);
    }
}

#[test]
fn the_fused_last_dense_layer_records_the_first_bad_step() {
    let g = gpu();
    let (batch, inp, units) = (9, 6, 5);
    let mut x = random(batch * inp, 6000, -1.0, 1.0);
    x[4 * inp + 2] = f32::NAN;
    let w = random(inp * units, 6001, -0.5, 0.5);
    let b = vec![0.0f32; units];
    // A label out of range is bad too, and adds no correct count.
    let mut labels = labels_for(batch, units, 6002);
    labels[7] = units as u32;
    let (tw, tb) = kernel_and_bias(&w, &b);
    let (tx, tl) = (g.upload("x", &x), g.upload("labels", &labels));
    let (logits, dlogits, rows) = (
        poisoned(batch * units),
        poisoned(batch * units),
        poisoned(batch * dense::ROW_WORDS),
    );
    let (dw, db) = (poisoned(inp * units), poisoned(units));
    let st = step_state(20);
    let metrics = g.zeros("metrics", METRICS_WORDS);
    let t = dense::Forward {
        x: &tx,
        input: dense::Input::default(),
        step_state: &st,
        w: &tw,
        b: &tb,
        labels: &tl,
        logits: &logits,
        dlogits: &dlogits,
        rows: &rows,
        dx: None,
    };
    run(&[
        &dense::dense_loss_forward(g, &t, batch, inp, units),
        &dense::dense_loss_backward(
            g,
            &tx,
            &dense::Input::default(),
            &dlogits,
            &rows,
            &dw,
            &db,
            &metrics,
            &st,
            batch,
            inp,
            units,
        ),
    ]);
    let (_, _, gn, gbad) = metrics_of(&metrics);
    assert_eq!(
        (gn, gbad),
        (batch as u32, 21),
        "count and first bad step + 1"
    );
    println!("dense_loss metrics: OK (a NaN input and a label out of range mark the step)");
}

/// The ReLU and Dropout before the layer taken in (`dense::Input`): the fused kernels equal the
/// unfused chain (dropout, with its ReLU when `relu`; the fused layer; the dropout's backward, with
/// the ReLU's mask) bit for bit, and the twins' composition within tolerance; evaluation (no mask)
/// applies the ReLU alone.
fn check_dense_loss_dropout(
    batch: usize,
    inp: usize,
    units: usize,
    relu: bool,
    rate: f32,
    seed: u64,
) {
    let g = gpu();
    let (step, salt, run_seed) = (11 + seed as u32 % 7, 3, 0xD2E5_0000_0000_0007 ^ seed);
    let x = random(batch * inp, seed, -1.0, 1.0);
    let w = random(inp * units, seed + 1, -0.5, 0.5);
    let b = random(units, seed + 2, -0.5, 0.5);
    let labels = labels_for(batch, units, seed + 3);
    let (tw, tb) = kernel_and_bias(&w, &b);
    let (tx, tl) = (g.upload("x", &x), g.upload("labels", &labels));
    let st = step_state(step);
    let mask = Mask {
        seed: run_seed,
        salt,
        rate,
    };
    let input = dense::Input {
        relu,
        dropout: Some(mask),
        relu_mask: relu,
    };
    let outputs = || {
        (
            poisoned(batch * units),
            poisoned(batch * units),
            poisoned(batch * dense::ROW_WORDS),
            poisoned(batch * inp),
            poisoned(inp * units),
            poisoned(units),
            g.zeros("metrics", METRICS_WORDS),
        )
    };
    let (logits, dlogits, rows, dx, dw, db, metrics) = outputs();
    let (logits0, dlogits0, rows0, dx0, dw0, db0, metrics0) = outputs();
    let (x_dropped, dx_dropped) = (poisoned(batch * inp), poisoned(batch * inp));
    let forward = |x, input, logits, dlogits, rows, dx| dense::Forward {
        x,
        input,
        step_state: &st,
        w: &tw,
        b: &tb,
        labels: &tl,
        logits,
        dlogits,
        rows,
        dx,
    };
    let dropout_x = if relu {
        dropout_forward_relu
    } else {
        dropout_forward
    };
    let plain = dense::Input::default();
    run(&[
        &dense::dense_loss_forward(
            g,
            &forward(&tx, input, &logits, &dlogits, &rows, Some(&dx)),
            batch,
            inp,
            units,
        ),
        &dense::dense_loss_backward(
            g, &tx, &input, &dlogits, &rows, &dw, &db, &metrics, &st, batch, inp, units,
        ),
        &dropout_x(g, &tx, &x_dropped, &st, run_seed, salt, rate),
        &dense::dense_loss_forward(
            g,
            &forward(
                &x_dropped,
                plain,
                &logits0,
                &dlogits0,
                &rows0,
                Some(&dx_dropped),
            ),
            batch,
            inp,
            units,
        ),
        &dropout_backward(
            g,
            &dx_dropped,
            relu.then_some(&tx),
            &dx0,
            &st,
            run_seed,
            salt,
            rate,
        ),
        &dense::dense_loss_backward(
            g, &x_dropped, &plain, &dlogits0, &rows0, &dw0, &db0, &metrics0, &st, batch, inp, units,
        ),
    ]);
    let name = format!("dense_loss relu {relu} dropout {rate} {batch}x{inp}->{units}");
    let bits = |t: &Tensor| g.read_u32(t).unwrap();
    for (what, fused, unfused) in [
        ("logits", &logits, &logits0),
        ("dlogits", &dlogits, &dlogits0),
        ("rows", &rows, &rows0),
        ("dx", &dx, &dx0),
        ("dw", &dw, &dw0),
        ("db", &db, &db0),
        ("metrics", &metrics, &metrics0),
    ] {
        compare_exact(
            &format!("{name} {what} = unfused"),
            &bits(fused),
            &bits(unfused),
        );
    }
    // The twins: relu, dropout, the layer and loss; the dropout's and the ReLU's backward on dx.
    let twin_mask = reference::dropout::MaskAt {
        seed: run_seed,
        step,
        salt,
        rate,
    };
    let x64 = to_f64(&x);
    let relu_x = if relu {
        reference::activation::relu_forward(&x64)
    } else {
        x64.clone()
    };
    let x_in = twin_mask.apply(&relu_x);
    let want = reference::softmax_cross_entropy::dense_loss_forward(
        &x_in,
        &to_f64(&w),
        &to_f64(&b),
        &labels,
        batch,
        inp,
        units,
    );
    let mut want_dx = twin_mask.apply(&want.dx);
    if relu {
        want_dx = reference::activation::relu_backward(&x64, &want_dx);
    }
    let (want_dw, want_db) = reference::softmax_cross_entropy::dense_loss_backward(
        &x_in,
        &want.dlogits,
        batch,
        inp,
        units,
    );
    compare(
        &format!("{name} logits = twin"),
        &read(&logits),
        &want.logits,
        F32_TOL,
    );
    compare(&format!("{name} dx = twin"), &read(&dx), &want_dx, F32_TOL);
    compare(&format!("{name} dw = twin"), &read(&dw), &want_dw, F32_TOL);
    compare(&format!("{name} db = twin"), &read(&db), &want_db, F32_TOL);
    // Evaluation: the ReLU alone, no mask, no dx.
    let eval_logits = poisoned(batch * units);
    let eval_input = dense::Input {
        dropout: None,
        ..input
    };
    run(&[&dense::dense_loss_forward(
        g,
        &forward(&tx, eval_input, &eval_logits, &dlogits, &rows, None),
        batch,
        inp,
        units,
    )]);
    let want_eval = reference::softmax_cross_entropy::dense_loss_forward(
        &relu_x,
        &to_f64(&w),
        &to_f64(&b),
        &labels,
        batch,
        inp,
        units,
    );
    compare(
        &format!("{name} eval logits = twin"),
        &read(&eval_logits),
        &want_eval.logits,
        F32_TOL,
    );
}

#[test]
fn the_fused_last_dense_layer_takes_the_dropout_before_it_in() {
    // Batches not a multiple of a workgroup's rows (64 / units), odd inputs, a rate of 0.3, with
    // and without the ReLU the dropout took in, and the notebook's 512 -> 10 at rate 0.5.
    for (i, &(batch, inp, units, relu, rate)) in [
        (7, 13, 10, true, 0.3),
        (65, 5, 3, false, 0.3),
        (70, 37, 1, true, 0.3),
        (130, 37, 64, true, 0.25),
        (129, 512, 10, true, 0.5),
    ]
    .iter()
    .enumerate()
    {
        check_dense_loss_dropout(batch, inp, units, relu, rate, 7000 + 10 * i as u64);
    }
}
