//! The layers of issue 15 beyond the notebook's, in files real Keras 3 wrote
//! (`assets/keras/make_golden.py::more_layers`): strided convolutions with TensorFlow's asymmetric
//! 'same' padding, a convolution and a Dense without bias, and the activations elu, leaky_relu,
//! sigmoid and tanh as arguments and as Activation layers, and a LeakyReLU layer of slope 0.1. Every
//! Keras file opens with each weight
//! where Keras put it; our JSON is Keras'; our CPU reference matches Keras' output layer by layer
//! and the GPU matches its predictions; one GPU training step equals the CPU reference step; our own
//! files keep the layers that hold one tensor.

#[path = "common/golden.rs"]
mod golden;
use golden::{asset, golden_value};

#[path = "common/gpu.rs"]
mod common_gpu;
#[path = "common/keras_python.rs"]
mod keras_python;
use common_gpu::{gpu, more_layers_model};

use cifar_wgpu::gpu::run_dispatches;
use cifar_wgpu::keras::{self, SavedModel};
use cifar_wgpu::layers::CpuStep;
use cifar_wgpu::model::reference;
use cifar_wgpu::optimizer::Optimizer;
use cifar_wgpu::train::{Mode, Network};

/// The golden prediction input, [2, 9, 9, 3].
fn golden_input() -> Vec<f32> {
    let per = 9 * 9 * 3;
    (0..2 * per)
        .map(|flat| ((5 * flat + 3 * (flat / per)) % 17) as f32 / 16.0)
        .collect()
}

fn golden_outputs() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(asset("more_layers_predictions.json")).unwrap())
        .unwrap()
}

fn softmax(logits: &[f64]) -> Vec<f64> {
    let max = logits.iter().cloned().fold(f64::MIN, f64::max);
    let e: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|v| v / sum).collect()
}

/// The largest absolute difference, after checking that every value is finite.
fn max_diff(name: &str, got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "{name}: length");
    got.iter()
        .zip(want)
        .map(|(g, w)| {
            assert!(g.is_finite(), "{name}: {g}");
            (g - w).abs()
        })
        .fold(0.0, f64::max)
}

const TENSORS: [&str; 10] = [
    "conv2d/kernel",
    "conv2d/bias",
    "conv2d_1/kernel",
    "conv2d_2/kernel",
    "conv2d_2/bias",
    "dense/kernel",
    "dense/bias",
    "dense_1/kernel",
    "dense_2/kernel",
    "dense_2/bias",
];

/// The model and every weight against the formula, one line per tensor.
fn check_saved(saved: &SavedModel, what: &str) {
    assert_eq!(saved.model, more_layers_model(), "{what}");
    let tensors = saved.model.param_tensors().unwrap();
    let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, TENSORS, "{what}");
    for (k, t) in tensors.iter().enumerate() {
        let got = &saved.params[t.offset..t.offset + t.len];
        let bad = (0..t.len).find(|&i| got[i] != golden_value(k, i));
        assert!(
            bad.is_none(),
            "{what}: {} {:?} differs at {bad:?}",
            t.name,
            t.shape
        );
        println!(
            "{what}: {} {:?} OK, {} values equal",
            t.name, t.shape, t.len
        );
    }
}

#[test]
fn every_keras_file_loads_every_value() {
    let json = asset("more_layers_architecture.json");
    for (what, saved) in [
        (
            "more_layers.keras",
            keras::load(&asset("more_layers.keras")),
        ),
        (
            "more_layers_model.h5",
            keras::load(&asset("more_layers_model.h5")),
        ),
        (
            "json + legacy more_layers_weights.h5",
            keras::load_pair(&json, &asset("more_layers_weights.h5")),
        ),
        (
            "json + more_layers.weights.h5",
            keras::load_pair(&json, &asset("more_layers.weights.h5")),
        ),
        ("json, weights found beside it", keras::load(&json)),
    ] {
        check_saved(&saved.unwrap_or_else(|e| panic!("{what}: {e}")), what);
    }
}

#[test]
fn our_json_is_what_keras_writes() {
    let mut theirs: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(asset("more_layers_architecture.json")).unwrap(),
    )
    .unwrap();
    theirs["config"]["layers"][0]["config"]["name"] = "input_layer".into();
    let ours: serde_json::Value =
        serde_json::from_str(&keras::model_to_json(&more_layers_model()).unwrap()).unwrap();
    assert_eq!(ours, theirs);
    println!("more_layers_architecture.json: our to_json() equals Keras' value for value");
}

#[test]
fn every_layer_output_matches_keras() {
    // Our CPU twins layer by layer against Keras' outputs on the golden input: a misplaced pixel of
    // padding or stride shows in the first layer it touches, which the flat probabilities would hide.
    let saved = keras::load(&asset("more_layers.keras")).unwrap();
    let model = &saved.model;
    let golden = golden_outputs();
    let tensors = model.param_tensors().unwrap();
    let params: Vec<f64> = saved.params.iter().map(|&p| p as f64).collect();
    let shapes = model.output_shapes().unwrap();
    let mut input_shape = model.input();
    let mut x: Vec<f64> = golden_input().iter().map(|&v| v as f64).collect();
    let last = model.layers.len() - 1;
    for (i, l) in model.layers.iter().enumerate() {
        let p: Vec<&[f64]> = tensors
            .iter()
            .filter(|t| t.layer == i)
            .map(|t| &params[t.offset..t.offset + t.len])
            .collect();
        let step = CpuStep {
            batch: 2,
            train: false,
            seed: 0,
            step: 0,
            index: i,
        };
        x = l.layer.kind().cpu_forward(&step, &input_shape, &x, &p);
        input_shape = shapes[i].clone();
        let per = x.len() / 2;
        for img in 0..2 {
            let mut ours = x[img * per..(img + 1) * per].to_vec();
            // The model's output stays the logits; Keras' last layer applies the softmax.
            if i == last {
                ours = softmax(&ours);
            }
            let theirs: Vec<f64> = golden["layer_outputs"][i][img]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let d = max_diff(&l.name, &ours, &theirs);
            assert!(d < 1e-5, "{} image {img}: max diff {d:e}", l.name);
            println!(
                "{} image {img}: {per} values within {d:.1e} of Keras'",
                l.name
            );
        }
    }
}

#[test]
fn gpu_predictions_match_keras() {
    let g = gpu();
    let saved = keras::load(&asset("more_layers.keras")).unwrap();
    let batch = 2;
    let net = Network::new(
        g,
        &saved.model,
        Optimizer::rmsprop_default(),
        &saved.params,
        batch,
        0,
    )
    .unwrap();
    g.write(&net.input(batch), &golden_input());
    g.write(&net.labels.slice(0, batch), &[0u32, 1]);
    let dispatches = net.step(g, batch, Mode::Eval);
    run_dispatches(g, &dispatches.iter().collect::<Vec<_>>()).unwrap();
    let logits = g.read_f32(&net.logits(batch, Mode::Eval)).unwrap();
    let golden = golden_outputs();
    for img in 0..batch {
        let ours: Vec<f64> = logits[img * 3..img * 3 + 3]
            .iter()
            .map(|&v| v as f64)
            .collect();
        let theirs: Vec<f64> = (0..3)
            .map(|c| golden["probabilities"][img][c].as_f64().unwrap())
            .collect();
        let d = max_diff("probabilities", &softmax(&ours), &theirs);
        assert!(d < 1e-5, "image {img}: max diff {d:e}");
        println!("GPU image {img}: probabilities within {d:.1e} of Keras'");
    }
}

#[test]
fn one_gpu_training_step_equals_the_cpu_reference_step() {
    // Every gradient through the strided and bias-free convolutions and each activation's backward,
    // from fresh weights (larger than the golden ones, so no activation sits in one regime).
    let g = gpu();
    let model = more_layers_model();
    let batch = 4;
    let params = model.init_params(21).unwrap();
    let net = Network::new(g, &model, Optimizer::rmsprop_default(), &params, batch, 5).unwrap();
    let x: Vec<f32> = (0..batch * 9 * 9 * 3)
        .map(|i| ((i * 7919) % 256) as f32 / 255.0 - 0.4)
        .collect();
    let labels = [0u32, 2, 1, 2];
    g.write(&net.input(batch), &x);
    g.write(&net.labels.slice(0, batch), &labels);
    net.set_step(g, 1);
    let dispatches = net.step(g, batch, Mode::Train);
    run_dispatches(g, &dispatches.iter().collect::<Vec<_>>()).unwrap();

    let p64: Vec<f64> = params.iter().map(|&v| v as f64).collect();
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let want = reference::forward_backward(&model, &p64, &x64, &labels, batch, 5, 1, true);
    let grads = net.read_grads(g).unwrap();
    for t in model.param_tensors().unwrap() {
        let got: Vec<f64> = grads[t.offset..t.offset + t.len]
            .iter()
            .map(|&v| v as f64)
            .collect();
        let want = &want.grads[t.offset..t.offset + t.len];
        let norm = want.iter().map(|v| v * v).sum::<f64>().sqrt();
        let err = got
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt();
        assert!(
            norm > 0.0,
            "d {}: the reference gradient is all zeros",
            t.name
        );
        let rel = err / norm;
        println!("d {}: rel {rel:.2e}", t.name);
        assert!(rel < 1e-4, "d {}: relative error {rel:e}", t.name);
    }
}

#[test]
fn our_files_keep_layers_with_one_tensor() {
    // weights.bin + model.json, and the four Keras files, each read back whole.
    let model = more_layers_model();
    let params = model.init_params(3).unwrap();
    let saved = SavedModel {
        class_names: keras::default_class_names(3),
        model,
        params,
    };
    let ours = tempfile::tempdir().unwrap();
    saved.save(ours.path()).unwrap();
    assert_eq!(
        SavedModel::load(ours.path()).unwrap(),
        saved,
        "model.json + weights.bin"
    );
    let dir = tempfile::tempdir().unwrap();
    keras::save_keras_files(dir.path(), &saved).unwrap();
    for name in [
        keras::ARCHIVE_FILE,
        keras::ARCHITECTURE_FILE,
        keras::LEGACY_WEIGHTS_FILE,
    ] {
        let loaded = keras::load(&dir.path().join(name)).unwrap();
        assert_eq!(loaded.model, saved.model, "{name}");
        assert_eq!(loaded.params, saved.params, "{name}");
        println!("{name}: every weight read back");
    }
    let loaded = keras::load_pair(
        &dir.path().join(keras::ARCHITECTURE_FILE),
        &dir.path().join(keras::WEIGHTS_FILE),
    )
    .unwrap();
    assert_eq!(loaded.params, saved.params, "{}", keras::WEIGHTS_FILE);
}

/// We read back the Keras files we write for the strided, bias-free and activation layers, and Keras 3
/// opens them: each way of loading gives Keras' own predictions on the golden input.
#[test]
fn we_read_back_what_we_save_and_so_does_keras() {
    let asked = keras_python::we_and_keras_read_what_we_save(
        &asset("more_layers.keras"),
        &asset("more_layers_predictions.json"),
    );
    if !asked {
        keras_python::say_keras_skipped("we_read_back_what_we_save_and_so_does_keras");
    }
}
