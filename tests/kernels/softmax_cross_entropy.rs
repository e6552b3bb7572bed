use cifar_wgpu::gpu::{Dispatch, Tensor};
use cifar_wgpu::kernels::StepState;
use cifar_wgpu::kernels::dropout::{Mask, dropout_backward, dropout_forward, dropout_forward_relu};
use cifar_wgpu::kernels::softmax_cross_entropy::{
    METRICS_WORDS, Metrics, dense, softmax_cross_entropy,
};
use cifar_wgpu::reference;
use cifar_wgpu::reference::softmax_cross_entropy::DenseLoss;

use crate::common::*;

fn labels_for(batch: usize, classes: usize, seed: u64) -> Vec<u32> {
    random(batch, seed, 0.0, classes as f32)
        .iter()
        .map(|&v| (v as u32).min(classes as u32 - 1))
        .collect()
}

fn step_words(step: u32) -> [u32; 4] {
    StepState {
        step,
        ..StepState::default()
    }
    .words()
}

fn step_state(step: u32) -> Tensor {
    gpu().upload("step_state", &step_words(step))
}

/// Rewrites the step the kernels read from `st`.
fn set_step(st: &Tensor, step: u32) {
    gpu().write(st, &step_words(step));
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

fn metrics_of(t: &Tensor) -> Metrics {
    Metrics::from_words(&gpu().read_u32(t).expect("readback failed"))
}

/// Checks the metrics in `t` against the twin's loss sum (within F32_TOL) and correct count, the
/// samples seen, and no bad step. Returns the loss sum's relative error.
fn check_metrics(name: &str, t: &Tensor, loss_sum: f64, correct: u32, samples: usize) -> f64 {
    let m = metrics_of(t);
    let rel = compare(
        &format!("{name} loss sum"),
        &[m.loss_sum],
        &[loss_sum],
        F32_TOL,
    );
    assert_eq!(
        (m.correct, m.samples, m.first_bad_step),
        (correct, samples as u32, 0),
        "{name}: correct / count / bad step"
    );
    println!("{name}: correct {} of {}: OK exact", m.correct, m.samples);
    rel
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
    compare_tensor(&format!("{name} dlogits"), &td, &d);
    check_metrics(&name, &metrics, loss, correct, batch)
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
        set_step(&st, step);
        run(&[&d]);
    }
    check_metrics(
        "metrics after 3 batches",
        &metrics,
        3.0 * loss,
        3 * correct,
        3 * batch,
    );
    // A NaN logit at step 6, then an infinite one at step 9: the first bad step (6, stored as 7) stays.
    for (step, bad) in [(6u32, f32::NAN), (9, f32::INFINITY)] {
        let mut z = logits.clone();
        z[17] = bad;
        g.write(&tz, &z);
        set_step(&st, step);
        run(&[&d]);
    }
    let m = metrics_of(&metrics);
    assert_eq!(
        (m.samples, m.first_bad_step),
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
    set_step(&st, 12);
    run(&[&softmax_cross_entropy(
        g, &tz2, &tl2, &td, &fresh, &st, batch, classes,
    )]);
    assert_eq!(
        metrics_of(&fresh).first_bad_step,
        13,
        "an infinite loss marks the step"
    );
    println!("metrics: OK (accumulate; first bad step kept; NaN, inf and overflow detected)");
}

/// The fused last layer's inputs on the host: x [batch, inp], its kernel w [inp, units] and bias b
/// [units], and the labels.
struct DenseData {
    batch: usize,
    inp: usize,
    units: usize,
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    labels: Vec<u32>,
}

impl DenseData {
    /// x in [-1, 1) from `seed`, w and b in [-0.5, 0.5) from seed + 1 and seed + 2, the labels from
    /// seed + 3.
    fn random(batch: usize, inp: usize, units: usize, seed: u64) -> DenseData {
        DenseData {
            batch,
            inp,
            units,
            x: random(batch * inp, seed, -1.0, 1.0),
            w: random(inp * units, seed + 1, -0.5, 0.5),
            b: random(units, seed + 2, -0.5, 0.5),
            labels: labels_for(batch, units, seed + 3),
        }
    }
}

/// `DenseData` and its tensors: w and b in one buffer (`kernel_and_bias`).
struct DenseCase {
    d: DenseData,
    tx: Tensor,
    tw: Tensor,
    tb: Tensor,
    tl: Tensor,
}

/// What the fused kernels write, poisoned; the metrics zeroed.
struct DenseOutputs {
    logits: Tensor,
    dlogits: Tensor,
    rows: Tensor,
    dx: Tensor,
    dw: Tensor,
    db: Tensor,
    metrics: Tensor,
}

impl DenseOutputs {
    fn new(c: &DenseCase) -> DenseOutputs {
        let c = &c.d;
        DenseOutputs {
            logits: poisoned(c.batch * c.units),
            dlogits: poisoned(c.batch * c.units),
            rows: poisoned(c.batch * dense::ROW_WORDS),
            dx: poisoned(c.batch * c.inp),
            dw: poisoned(c.inp * c.units),
            db: poisoned(c.units),
            metrics: gpu().zeros("metrics", METRICS_WORDS),
        }
    }

    fn named(&self) -> [(&'static str, &Tensor); 7] {
        [
            ("logits", &self.logits),
            ("dlogits", &self.dlogits),
            ("rows", &self.rows),
            ("dx", &self.dx),
            ("dw", &self.dw),
            ("db", &self.db),
            ("metrics", &self.metrics),
        ]
    }
}

impl DenseCase {
    fn new(d: DenseData) -> DenseCase {
        let g = gpu();
        let (tw, tb) = kernel_and_bias(&d.w, &d.b);
        let (tx, tl) = (g.upload("x", &d.x), g.upload("labels", &d.labels));
        DenseCase { d, tx, tw, tb, tl }
    }

    /// The forward's tensors: the layer on `x` (the case's own, or what an unfused dropout wrote)
    /// through `input`, writing into `out`, and dx into `dx` when given.
    fn forward<'a>(
        &'a self,
        x: &'a Tensor,
        input: dense::Input,
        step_state: &'a Tensor,
        out: &'a DenseOutputs,
        dx: Option<&'a Tensor>,
    ) -> dense::Forward<'a> {
        dense::Forward {
            x,
            input,
            step_state,
            w: &self.tw,
            b: &self.tb,
            labels: &self.tl,
            logits: &out.logits,
            dlogits: &out.dlogits,
            rows: &out.rows,
            dx,
        }
    }

    fn forward_dispatch(&self, t: &dense::Forward) -> Dispatch {
        dense::dense_loss_forward(gpu(), t, self.d.batch, self.d.inp, self.d.units)
    }

    /// The backward on `x` through `input`, from and into `out`.
    fn backward(
        &self,
        x: &Tensor,
        input: &dense::Input,
        step_state: &Tensor,
        out: &DenseOutputs,
    ) -> Dispatch {
        dense::dense_loss_backward(
            gpu(),
            x,
            input,
            &out.dlogits,
            &out.rows,
            &out.dw,
            &out.db,
            &out.metrics,
            step_state,
            self.d.batch,
            self.d.inp,
            self.d.units,
        )
    }

    /// The twin of the forward on `x` (the case's x as the layer takes it).
    fn twin_forward(&self, x: &[f64]) -> DenseLoss {
        reference::softmax_cross_entropy::dense_loss_forward(
            x,
            &to_f64(&self.d.w),
            &to_f64(&self.d.b),
            &self.d.labels,
            self.d.batch,
            self.d.inp,
            self.d.units,
        )
    }

    /// The twin of the backward: (dw, db).
    fn twin_backward(&self, x: &[f64], dlogits: &[f64]) -> (Vec<f64>, Vec<f64>) {
        reference::softmax_cross_entropy::dense_loss_backward(
            x,
            dlogits,
            self.d.batch,
            self.d.inp,
            self.d.units,
        )
    }
}

/// Runs the fused last layer (forward with dx, then backward) on fresh zeroed metrics and compares
/// every output with the twins; then the evaluation path (forward without dx, then the metrics alone)
/// on another zeroed metrics tensor.
fn check_dense_loss(batch: usize, inp: usize, units: usize, seed: u64) {
    let g = gpu();
    let c = DenseCase::new(DenseData::random(batch, inp, units, seed));
    let out = DenseOutputs::new(&c);
    let st = step_state(5);
    let plain = dense::Input::default();
    let t = c.forward(&c.tx, plain, &st, &out, Some(&out.dx));
    run(&[
        &c.forward_dispatch(&t),
        &c.backward(&c.tx, &plain, &st, &out),
    ]);
    let x = to_f64(&c.d.x);
    let want = c.twin_forward(&x);
    let (want_dw, want_db) = c.twin_backward(&x, &want.dlogits);
    let name = format!("dense_loss {batch}x{inp}->{units}");
    compare_tensor(&format!("{name} logits"), &out.logits, &want.logits);
    compare_tensor(&format!("{name} dlogits"), &out.dlogits, &want.dlogits);
    compare_tensor(&format!("{name} dx"), &out.dx, &want.dx);
    compare_tensor(&format!("{name} dw"), &out.dw, &want_dw);
    compare_tensor(&format!("{name} db"), &out.db, &want_db);
    let metrics_match = |what: &str, metrics: &Tensor| {
        check_metrics(
            &format!("{name} {what}"),
            metrics,
            want.loss_sum,
            want.correct,
            batch,
        )
    };
    metrics_match("training", &out.metrics);
    // Evaluation: no dx, the metrics from their own dispatch; the logits again.
    let eval_logits = poisoned(batch * units);
    let eval = dense::Forward {
        logits: &eval_logits,
        dx: None,
        ..t
    };
    let eval_metrics = g.zeros("metrics", METRICS_WORDS);
    run(&[
        &c.forward_dispatch(&eval),
        &dense::dense_loss_metrics(g, &out.rows, &eval_metrics, &st, batch, units),
    ]);
    compare_tensor(&format!("{name} eval logits"), &eval_logits, &want.logits);
    metrics_match("evaluation", &eval_metrics);
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
    let (batch, inp, units) = (9, 6, 5);
    let mut x = random(batch * inp, 6000, -1.0, 1.0);
    x[4 * inp + 2] = f32::NAN;
    let w = random(inp * units, 6001, -0.5, 0.5);
    let b = vec![0.0f32; units];
    // A label out of range is bad too, and adds no correct count.
    let mut labels = labels_for(batch, units, 6002);
    labels[7] = units as u32;
    let c = DenseCase::new(DenseData {
        batch,
        inp,
        units,
        x,
        w,
        b,
        labels,
    });
    let out = DenseOutputs::new(&c);
    let st = step_state(20);
    let plain = dense::Input::default();
    run(&[
        &c.forward_dispatch(&c.forward(&c.tx, plain, &st, &out, None)),
        &c.backward(&c.tx, &plain, &st, &out),
    ]);
    let m = metrics_of(&out.metrics);
    assert_eq!(
        (m.samples, m.first_bad_step),
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
    let c = DenseCase::new(DenseData::random(batch, inp, units, seed));
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
    let (fused, unfused) = (DenseOutputs::new(&c), DenseOutputs::new(&c));
    let (x_dropped, dx_dropped) = (poisoned(batch * inp), poisoned(batch * inp));
    let dropout_x = if relu {
        dropout_forward_relu
    } else {
        dropout_forward
    };
    let plain = dense::Input::default();
    run(&[
        &c.forward_dispatch(&c.forward(&c.tx, input, &st, &fused, Some(&fused.dx))),
        &c.backward(&c.tx, &input, &st, &fused),
        &dropout_x(g, &c.tx, &x_dropped, &st, run_seed, salt, rate),
        &c.forward_dispatch(&c.forward(&x_dropped, plain, &st, &unfused, Some(&dx_dropped))),
        &dropout_backward(
            g,
            &dx_dropped,
            relu.then_some(&c.tx),
            &unfused.dx,
            &st,
            run_seed,
            salt,
            rate,
        ),
        &c.backward(&x_dropped, &plain, &st, &unfused),
    ]);
    let name = format!("dense_loss relu {relu} dropout {rate} {batch}x{inp}->{units}");
    let bits = |t: &Tensor| g.read_u32(t).unwrap();
    for ((what, fused), (_, unfused)) in fused.named().into_iter().zip(unfused.named()) {
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
    let x64 = to_f64(&c.d.x);
    let relu_x = if relu {
        reference::activation::relu_forward(&x64)
    } else {
        x64.clone()
    };
    let x_in = twin_mask.apply(&relu_x);
    let want = c.twin_forward(&x_in);
    let mut want_dx = twin_mask.apply(&want.dx);
    if relu {
        want_dx = reference::activation::relu_backward(&x64, &want_dx);
    }
    let (want_dw, want_db) = c.twin_backward(&x_in, &want.dlogits);
    compare_tensor(
        &format!("{name} logits = twin"),
        &fused.logits,
        &want.logits,
    );
    compare_tensor(&format!("{name} dx = twin"), &fused.dx, &want_dx);
    compare_tensor(&format!("{name} dw = twin"), &fused.dw, &want_dw);
    compare_tensor(&format!("{name} db = twin"), &fused.db, &want_db);
    // Evaluation: the ReLU alone, no mask, no dx.
    let eval_logits = poisoned(batch * units);
    let eval_input = dense::Input {
        dropout: None,
        ..input
    };
    run(&[&c.forward_dispatch(&dense::Forward {
        logits: &eval_logits,
        ..c.forward(&c.tx, eval_input, &st, &fused, None)
    })]);
    compare_tensor(
        &format!("{name} eval logits = twin"),
        &eval_logits,
        &c.twin_forward(&relu_x).logits,
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
