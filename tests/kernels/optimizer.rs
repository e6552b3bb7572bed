use cifar_wgpu::gpu::Tensor;
use cifar_wgpu::kernels::optimizer::update;
use cifar_wgpu::optimizer::Optimizer;
use cifar_wgpu::reference;

use crate::common::*;

/// Gradients whose magnitudes span 1e-3 .. 1 (so epsilon matters for some), changing every step.
fn gradients(n: usize, seed: u64) -> Vec<f32> {
    let sign = random(n, seed, -1.0, 1.0);
    let exponent = random(n, seed + 1, -3.0, 0.0);
    sign.iter()
        .zip(&exponent)
        .map(|(s, e)| s * 10f32.powf(*e))
        .collect()
}

struct Run {
    params: Tensor,
    grads: Tensor,
    state: Vec<Tensor>,
    step_state: Tensor,
}

impl Run {
    fn new(opt: &Optimizer, w0: &[f32]) -> Run {
        let g = gpu();
        Run {
            params: g.upload("params", w0),
            grads: g.zeros("grads", w0.len()),
            state: (0..opt.state_buffers())
                .map(|_| g.zeros("state", w0.len()))
                .collect(),
            step_state: g.zeros("step_state", 4),
        }
    }

    /// Builds the dispatch once, as training does, and replays it with new gradients and step state.
    fn steps(&self, opt: &Optimizer, grads: &[Vec<f32>]) {
        let g = gpu();
        let state: Vec<&Tensor> = self.state.iter().collect();
        let d = update(g, opt, &self.params, &self.grads, &state, &self.step_state);
        for (step, gs) in grads.iter().enumerate() {
            g.write(&self.grads, gs);
            g.write(&self.step_state, &opt.step_state(step as u32).words());
            run(&[&d]);
        }
    }
}

/// `steps` GPU updates against the twin, step by step. Each step's update (w_t - w_{t-1}) is compared,
/// since comparing the weights themselves would hide an update wrong by 1%; the weights start small
/// (|w| < 0.01, an f32 spacing of at most 1e-9) so that the f32 rounding of w stays far below the
/// updates (~1e-3). The state tensors and the final weights are compared directly.
fn trajectory(name: &str, opt: Optimizer, n: usize, steps: u32, seed: u64) -> f64 {
    let g = gpu();
    let w0 = random(n, seed, -0.01, 0.01);
    let r = Run::new(&opt, &w0);
    let state: Vec<&Tensor> = r.state.iter().collect();
    let d = update(g, &opt, &r.params, &r.grads, &state, &r.step_state);
    let (mut gpu_w, mut w) = (w0.clone(), to_f64(&w0));
    let mut s = vec![vec![0.0; n]; opt.state_buffers()];
    let mut worst = 0.0f64;
    for step in 0..steps {
        let gs = gradients(n, seed + 100 * (step as u64 + 1));
        g.write(&r.grads, &gs);
        g.write(&r.step_state, &opt.step_state(step).words());
        run(&[&d]);
        let before = w.clone();
        reference::optimizer::update(&opt, &mut w, &to_f64(&gs), &mut s, step);
        let now = read(&r.params);
        let got: Vec<f32> = now.iter().zip(&gpu_w).map(|(a, b)| a - b).collect();
        let want: Vec<f64> = w.iter().zip(&before).map(|(a, b)| a - b).collect();
        worst = worst.max(compare(
            &format!("{name} n={n} step {step} update"),
            &got,
            &want,
            F32_TOL,
        ));
        for (k, (t, want)) in r.state.iter().zip(&s).enumerate() {
            worst = worst.max(compare(
                &format!("{name} n={n} step {step} state {k}"),
                &read(t),
                want,
                F32_TOL,
            ));
        }
        gpu_w = now;
    }
    worst.max(compare(
        &format!("{name} n={n} params after {steps} steps"),
        &gpu_w,
        &w,
        F32_TOL,
    ))
}

fn rmsprop(momentum: f32, centered: bool, legacy_epsilon: bool) -> Optimizer {
    Optimizer::RmsProp {
        lr: 0.01,
        rho: 0.9,
        momentum,
        epsilon: 1e-7,
        centered,
        legacy_epsilon,
    }
}

#[test]
fn every_optimizer_follows_the_twin_for_five_steps() {
    let cases = [
        ("sgd default", Optimizer::sgd_default()),
        (
            "sgd momentum",
            Optimizer::Sgd {
                lr: 0.01,
                momentum: 0.9,
                nesterov: false,
            },
        ),
        (
            "sgd nesterov",
            Optimizer::Sgd {
                lr: 0.01,
                momentum: 0.9,
                nesterov: true,
            },
        ),
        ("rmsprop default", Optimizer::rmsprop_default()),
        ("rmsprop momentum", rmsprop(0.5, false, false)),
        ("rmsprop centered", rmsprop(0.0, true, false)),
        ("rmsprop centered momentum", rmsprop(0.5, true, false)),
        ("rmsprop legacy epsilon", rmsprop(0.0, false, true)),
        ("rmsprop legacy centered momentum", rmsprop(0.5, true, true)),
        ("adam default", Optimizer::adam_default()),
        (
            "adam amsgrad",
            Optimizer::Adam {
                lr: 0.01,
                beta1: 0.9,
                beta2: 0.999,
                epsilon: 1e-7,
                amsgrad: true,
            },
        ),
    ];
    let mut summary = Vec::new();
    for (i, (name, opt)) in cases.iter().enumerate() {
        // Lengths that are not multiples of the 256-wide workgroup: odd ones take the scalar entry
        // points, multiples of 4 the vec4 ones.
        for n in [[1003, 257][i % 2], [1004, 260][i % 2]] {
            summary.push((
                name,
                trajectory(name, opt.clone(), n, 5, 10 * i as u64 + n as u64),
            ));
        }
    }
    for (name, rel) in summary {
        println!("optimizer {name}: OK, largest relative error over 5 steps {rel:.2e}");
    }
}

#[test]
fn one_parameter_and_a_long_flat_buffer() {
    trajectory("rmsprop default", Optimizer::rmsprop_default(), 1, 3, 900);
    trajectory("adam default", Optimizer::adam_default(), 70_001, 3, 901);
    trajectory("rmsprop default", Optimizer::rmsprop_default(), 4, 3, 902);
    trajectory(
        "rmsprop default",
        Optimizer::rmsprop_default(),
        70_000,
        3,
        903,
    );
}

/// One RMSprop step with Keras' defaults, worked by hand:
///   v  = 0.9 * 0 + 0.1 * 0.5^2 = 0.025
///   w' = w - 0.001 * 0.5 / sqrt(0.025 + 1e-7) = w - 0.0005 / 0.158114199 = w - 0.003162271336
/// and with Keras 2.3's epsilon outside the root: w - 0.0005 / (0.158113883 + 1e-7) = w - 0.003162275660.
/// From w = 1 the two differ by 4e-9, below f32's resolution there, so w = 0 checks the difference.
#[test]
fn one_rmsprop_step_equals_the_hand_computed_keras_example() {
    for (legacy, want_step) in [(false, 0.003_162_271_336f64), (true, 0.003_162_275_660)] {
        let opt = Optimizer::RmsProp {
            lr: 0.001,
            rho: 0.9,
            momentum: 0.0,
            epsilon: 1e-7,
            centered: false,
            legacy_epsilon: legacy,
        };
        assert!(legacy || opt == Optimizer::rmsprop_default());
        // Two parameters take the scalar entry point, four the vec4 one; [1, 0] repeated.
        for n in [2, 4] {
            let w0: Vec<f32> = (0..n).map(|i| [1.0, 0.0][i % 2]).collect();
            let r = Run::new(&opt, &w0);
            r.steps(&opt, &[vec![0.5; n]]);
            let w = read(&r.params);
            let v = read(&r.state[0]);
            println!("rmsprop legacy_epsilon={legacy} n={n}: w = {w:?}, v = {v:?}");
            assert!(
                (v[0] as f64 - 0.025).abs() < 1e-9 && v.iter().all(|&x| x == v[0]),
                "v = {v:?}"
            );
            assert_eq!(w[..2], w[n - 2..], "n={n}: equal inputs, different updates");
            check_hand_step(legacy, want_step, &w);
        }
    }
    // Keras' RMSprop docstring: learning_rate=0.1, var = 10, gradient = var: one step gives 9.683772.
    let opt = Optimizer::RmsProp {
        lr: 0.1,
        rho: 0.9,
        momentum: 0.0,
        epsilon: 1e-7,
        centered: false,
        legacy_epsilon: false,
    };
    for n in [1, 4] {
        let r = Run::new(&opt, &vec![10.0; n]);
        r.steps(&opt, &[vec![10.0; n]]);
        for w in read(&r.params) {
            assert!((w - 9.683772).abs() <= 1e-6, "Keras docstring example: {w}");
        }
        println!("rmsprop Keras docstring example n={n}: OK (Keras prints 9.683772)");
    }
}

/// The hand-computed step of the test above, on w = [1, 0, ...] after one step.
fn check_hand_step(legacy: bool, want_step: f64, w: &[f32]) {
    if !legacy {
        // 1 - 0.003162271336 = 0.996837728664, to f32's resolution at 1 (6e-8).
        assert!(
            (w[0] as f64 - 0.996_837_728_664).abs() < 6e-8,
            "w = {}",
            w[0]
        );
    }
    let rel = ((-w[1] as f64) - want_step).abs() / want_step;
    assert!(
        rel < 2e-7,
        "legacy_epsilon={legacy}: step {} vs {want_step} (rel {rel:.1e})",
        -w[1]
    );
}

/// The learning rate comes from the step state, so a schedule can change it without a new dispatch.
#[test]
fn learning_rate_is_read_from_the_step_state() {
    let g = gpu();
    let opt = Optimizer::sgd_default();
    let r = Run::new(&opt, &[1.0, 2.0, 3.0]);
    let d = update(g, &opt, &r.params, &r.grads, &[], &r.step_state);
    g.write(&r.grads, &[1.0f32, 1.0, -1.0]);
    let mut st = opt.step_state(0);
    st.lr = 0.5;
    g.write(&r.step_state, &st.words());
    run(&[&d]);
    assert_eq!(read(&r.params), vec![0.5, 1.5, 3.5]);
    println!("optimizer: OK, learning rate read per step");
}
