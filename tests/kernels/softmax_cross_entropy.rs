use cifar_wgpu::gpu::Tensor;
use cifar_wgpu::kernels::StepState;
use cifar_wgpu::kernels::softmax_cross_entropy::{METRICS_WORDS, softmax_cross_entropy};
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
