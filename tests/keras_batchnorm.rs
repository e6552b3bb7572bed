//! BatchNormalization against real Keras 3 (`assets/keras/make_golden.py`, `batchnorm()`): its three
//! weight files open with every value (moving statistics included) where Keras put it; prediction
//! (the moving statistics) matches Keras' on the CPU twin and the GPU; one SGD training step on the
//! GPU and on the CPU reference (the batch's statistics, the moving update, the gradients) lands on
//! the weights Keras' `train_on_batch` left; and the files we write for it read back.

#[path = "common/golden.rs"]
mod golden;
use golden::asset;

#[path = "common/gpu.rs"]
mod common_gpu;
use common_gpu::gpu;

use cifar_wgpu::gpu::run_dispatches;
use cifar_wgpu::keras::{self, SavedModel};
use cifar_wgpu::layers::{BatchNormalization, Layer};
use cifar_wgpu::model::reference;
use cifar_wgpu::optimizer::Optimizer;
use cifar_wgpu::train::{Metrics, Mode, Network};
use serde_json::Value;

const BATCH: usize = 4;
const LR: f32 = 0.1;

fn golden() -> Value {
    serde_json::from_str(&std::fs::read_to_string(asset("batchnorm_golden.json")).unwrap()).unwrap()
}

/// The golden script's weight formula: tensor `k` in `model.weights` order, flat index `i`.
fn golden_value(name: &str, k: usize, i: usize) -> f32 {
    let base = ((7 * i + 13 * k) % 23) as f64;
    (if name.ends_with("moving_variance") {
        0.5 + base / 32.0
    } else if name.ends_with("gamma") {
        1.0 + (base - 11.0) / 64.0
    } else {
        (base - 11.0) / 64.0
    }) as f32
}

/// The golden input, [4, 6, 6, 3], and labels n % 3.
fn input() -> (Vec<f32>, Vec<u32>) {
    let per = 6 * 6 * 3;
    let x = (0..BATCH * per)
        .map(|flat| (((5 * flat + 3 * (flat / per)) % 17) as f64 / 16.0 - 0.25) as f32)
        .collect();
    (x, (0..BATCH as u32).map(|n| n % 3).collect())
}

fn check_loaded(saved: &SavedModel, what: &str) {
    let kinds: Vec<&str> = saved
        .model
        .layers
        .iter()
        .map(|l| l.layer.kind().class_name())
        .collect();
    assert_eq!(
        kinds,
        [
            "Conv2D",
            "BatchNormalization",
            "Activation",
            "Flatten",
            "Dense",
            "BatchNormalization",
            "Dense"
        ],
        "{what}"
    );
    assert_eq!(
        saved.model.layers[1].layer,
        Layer::BatchNormalization(BatchNormalization::default()),
        "{what}: Keras' defaults"
    );
    let tensors = saved.model.param_tensors().unwrap();
    let names: Vec<String> = tensors
        .iter()
        .map(|t| format!("sequential/{}", t.name))
        .collect();
    assert_eq!(Value::from(names.clone()), golden()["names"], "{what}");
    for (k, t) in tensors.iter().enumerate() {
        let frozen = t.name.ends_with("moving_mean") || t.name.ends_with("moving_variance");
        assert_eq!(t.trainable, !frozen, "{what}: {}", t.name);
        let got = &saved.params[t.offset..t.offset + t.len];
        let bad = (0..t.len).find(|&i| got[i] != golden_value(&t.name, k, i));
        assert!(bad.is_none(), "{what}: {} differs at {bad:?}", t.name);
        println!(
            "{what}: {} {:?} OK, {} values equal",
            t.name, t.shape, t.len
        );
    }
}

fn load_all() -> Vec<(&'static str, SavedModel)> {
    let json = asset("batchnorm_architecture.json");
    vec![
        (
            "batchnorm_weights.h5",
            keras::load_pair(&json, &asset("batchnorm_weights.h5")).unwrap(),
        ),
        (
            "batchnorm.weights.h5",
            keras::load_pair(&json, &asset("batchnorm.weights.h5")).unwrap(),
        ),
        (
            "batchnorm.keras",
            keras::load(&asset("batchnorm.keras")).unwrap(),
        ),
    ]
}

#[test]
fn keras_batchnorm_files_load_every_value_moving_statistics_included() {
    for (what, saved) in load_all() {
        check_loaded(&saved, what);
    }
}

#[test]
fn the_summary_counts_the_moving_statistics_as_non_trainable() {
    let saved = keras::load(&asset("batchnorm.keras")).unwrap();
    let s = saved.model.summary().unwrap();
    println!("{s}");
    // gamma, beta, mean, variance of 4 channels and of 5 features: 16 + 20, of which 18 frozen.
    assert!(s.contains(" Non-trainable params: 18 (72.00 B)"), "{s}");
    // Keras wraps the long name within its column.
    assert!(
        s.contains(
            "│ batch_normalization_1           │ (None, 5)              │            20 │\n\
             │ (BatchNormalization)            │                        │               │"
        ),
        "{s}"
    );
    let total = saved.model.param_count().unwrap();
    assert!(
        s.contains(&format!(" Trainable params: {} ", total - 18)),
        "{s}"
    );
}

fn softmax(logits: &[f64]) -> Vec<f64> {
    let max = logits.iter().cloned().fold(f64::MIN, f64::max);
    let sum: f64 = logits.iter().map(|v| (v - max).exp()).sum();
    logits.iter().map(|v| (v - max).exp() / sum).collect()
}

fn check_probabilities(what: &str, logits: &[f64]) {
    let golden = golden();
    for img in 0..BATCH {
        let ours = softmax(&logits[3 * img..3 * img + 3]);
        for (c, p) in ours.iter().enumerate() {
            let theirs = golden["probabilities"][img][c].as_f64().unwrap();
            assert!(
                (p - theirs).abs() < 1e-5,
                "{what}: image {img} class {c}: ours {p}, Keras {theirs}"
            );
        }
    }
    println!("{what}: probabilities equal Keras' within 1e-5");
}

#[test]
fn prediction_uses_the_moving_statistics_as_keras_does() {
    let saved = keras::load(&asset("batchnorm.keras")).unwrap();
    let (x, labels) = input();
    let p64: Vec<f64> = saved.params.iter().map(|&v| v as f64).collect();
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let cpu = reference::forward_backward(&saved.model, &p64, &x64, &labels, BATCH, 0, 0, false);
    check_probabilities("CPU twin", &cpu.logits);

    let g = gpu();
    let net = Network::new(
        g,
        &saved.model,
        Optimizer::rmsprop_default(),
        &saved.params,
        BATCH,
        1,
    )
    .unwrap();
    g.write(&net.input(BATCH), &x);
    g.write(&net.labels.slice(0, BATCH), &labels);
    net.set_step(g, 0);
    let dispatches = net.step(g, BATCH, Mode::Eval);
    run_dispatches(g, &dispatches.iter().collect::<Vec<_>>()).unwrap();
    let logits: Vec<f64> = g
        .read_f32(&net.logits(BATCH, Mode::Eval))
        .unwrap()
        .iter()
        .map(|&v| v as f64)
        .collect();
    check_probabilities("GPU evaluation", &logits);
    // Evaluating moves nothing.
    assert_eq!(net.read_params(g).unwrap(), saved.params);
}

/// Relative error of `got - before` against `want - before`, per tensor (a step moves weights by
/// about lr * gradient; comparing the moves makes the tolerance mean something), or of the values
/// themselves for the moving statistics.
fn check_step(what: &str, saved: &SavedModel, got: &[f64]) {
    let golden = golden();
    let after = golden["weights_after_step"].as_array().unwrap();
    for (t, want) in saved.model.param_tensors().unwrap().iter().zip(after) {
        let want: Vec<f64> = want
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let before = &saved.params[t.offset..t.offset + t.len];
        let got = &got[t.offset..t.offset + t.len];
        let (mut d2, mut n2) = (0.0, 0.0);
        for ((g, w), b) in got.iter().zip(&want).zip(before) {
            let b = if t.trainable { *b as f64 } else { 0.0 };
            d2 += (g - w) * (g - w);
            n2 += (w - b) * (w - b);
        }
        // A bias before a BatchNormalization gets no gradient (the mean is taken out): it moves
        // by rounding only, so its moves are compared by their absolute size.
        let (rel, rms) = ((d2 / n2.max(1e-30)).sqrt(), (d2 / t.len as f64).sqrt());
        println!("{what}: {} rel {rel:.2e}, rms diff {rms:.2e}", t.name);
        assert!(
            rel < 2e-5 || rms < 1e-7,
            "{what}: {} off by {rel:.2e}",
            t.name
        );
    }
}

#[test]
fn one_sgd_step_lands_where_keras_train_on_batch_does() {
    let saved = keras::load(&asset("batchnorm.keras")).unwrap();
    let (x, labels) = input();
    let opt = Optimizer::Sgd {
        lr: LR,
        momentum: 0.0,
        nesterov: false,
    };
    let golden_loss = golden()["loss"].as_f64().unwrap();

    // The CPU reference: its gradients, the SGD update and its moving statistics.
    let p64: Vec<f64> = saved.params.iter().map(|&v| v as f64).collect();
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let r = reference::forward_backward(&saved.model, &p64, &x64, &labels, BATCH, 0, 0, true);
    assert!(
        (r.loss_sum / BATCH as f64 - golden_loss).abs() < 1e-5,
        "CPU loss {}",
        r.loss_sum
    );
    let mut cpu = r.params.clone();
    cifar_wgpu::reference::optimizer::update(&opt, &mut cpu, &r.grads, &mut [], 0);
    check_step("CPU reference", &saved, &cpu);

    let g = gpu();
    let net = Network::new(g, &saved.model, opt, &saved.params, BATCH, 1).unwrap();
    g.write(&net.input(BATCH), &x);
    g.write(&net.labels.slice(0, BATCH), &labels);
    net.set_step(g, 0);
    let dispatches = net.step(g, BATCH, Mode::Train);
    run_dispatches(g, &dispatches.iter().collect::<Vec<_>>()).unwrap();
    let metrics = Metrics::from_words(&g.read_u32(&net.train_metrics).unwrap());
    assert!(
        (metrics.loss_sum as f64 / BATCH as f64 - golden_loss).abs() < 1e-5,
        "GPU loss {}",
        metrics.loss_sum
    );
    let got: Vec<f64> = net
        .read_params(g)
        .unwrap()
        .iter()
        .map(|&v| v as f64)
        .collect();
    check_step("GPU", &saved, &got);
}

#[test]
fn our_keras_files_for_batchnorm_read_back() {
    let saved = keras::load(&asset("batchnorm.keras")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    keras::save_keras_files(dir.path(), &saved).unwrap();
    for (name, _) in keras::keras_files(&saved).unwrap() {
        if name.ends_with(".json") {
            continue;
        }
        let back = keras::load(&dir.path().join(name)).unwrap();
        assert_eq!(back.model, saved.model, "{name}");
        assert_eq!(back.params, saved.params, "{name}");
        println!("{name}: read back equal");
    }
}

const KERAS_CHECK: &str = r#"
import sys, json, numpy as np, keras
d, assets = sys.argv[1], sys.argv[2]
ref = keras.models.load_model(assets + "/batchnorm.keras")
golden = json.load(open(assets + "/batchnorm_golden.json"))
flat = np.arange(4 * 6 * 6 * 3).reshape(4, 6, 6, 3)
n = np.arange(4).reshape(4, 1, 1, 1)
x = (((5 * flat + 3 * n) % 17) / 16 - 0.25).astype(np.float32)
def from_json(weights):
    m = keras.models.model_from_json(open(d + "/cifar10_architecture.json").read())
    m.load_weights(d + "/" + weights)
    return m
for what, m in [("cifar10_weights.h5", from_json("cifar10_weights.h5")),
                ("model.weights.h5", from_json("model.weights.h5")),
                ("model.keras", keras.models.load_model(d + "/model.keras"))]:
    for a, b in zip(m.weights, ref.weights):
        assert a.path == b.path and np.array_equal(np.asarray(a), np.asarray(b)), (what, a.path)
    p = m.predict(x, verbose=0)
    assert np.allclose(p, golden["probabilities"], atol=1e-6), (what, p)
    print("keras:", what, "every weight (moving statistics included) and prediction equal")
"#;

/// Keras opens the files we write for a model with BatchNormalization, moving statistics in place:
/// only when `CIFAR_WGPU_KERAS_PYTHON` names a Python with Keras 3 (as tests/keras_files.rs).
#[test]
fn real_keras_opens_our_batchnorm_files() {
    let Ok(python) = std::env::var("CIFAR_WGPU_KERAS_PYTHON") else {
        eprintln!(
            "\n*** SKIPPED real_keras_opens_our_batchnorm_files: set CIFAR_WGPU_KERAS_PYTHON to a \
             Python with Keras 3 to run it ***\n"
        );
        return;
    };
    let saved = keras::load(&asset("batchnorm.keras")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    keras::save_keras_files(dir.path(), &saved).unwrap();
    let out = std::process::Command::new(&python)
        .args(["-c", KERAS_CHECK])
        .arg(dir.path())
        .arg(asset(""))
        .env("KERAS_BACKEND", "jax")
        .output()
        .unwrap_or_else(|e| panic!("{python}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    println!("{text}");
    assert!(
        out.status.success(),
        "Keras could not open our files:\n{text}"
    );
}
