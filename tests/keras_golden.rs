//! Files written by real Keras 3 (`assets/keras/make_golden.py`, which says how to run it) open
//! here with every weight where Keras put it, and our JSON is the one Keras writes.

#[path = "common/golden.rs"]
mod golden;
use golden::{asset, golden_value};

use cifar_wgpu::keras::{self, KerasError, SavedModel};
use cifar_wgpu::layers::Layer;
use cifar_wgpu::model::{Sequential, reference};

/// The notebook's layers at the golden script's tiny size: 8x8x3, Conv2D(4), Dense(6), Dense(3).
fn tiny() -> Sequential {
    let mut m = Sequential::notebook([8, 8, 3], 3);
    for l in &mut m.layers {
        match &mut l.layer {
            Layer::Conv2D(conv) => conv.filters = 4,
            Layer::Dense(dense) if dense.units == 512 => dense.units = 6,
            _ => {}
        }
    }
    m
}

/// The golden script builds the tiny model second in its Python session, so Keras numbered its
/// layers on from the notebook model's: `conv2d_1`, `activation_3`, … — while Keras 3's
/// `.weights.h5` still keys them `layers/conv2d`, `layers/activation`, …. Loading must cope.
const TINY_NAMES: [&str; 10] = [
    "conv2d_1",
    "activation_3",
    "max_pooling2d_1",
    "dropout_2",
    "flatten_1",
    "dense_2",
    "activation_4",
    "dropout_3",
    "dense_3",
    "activation_5",
];

/// The tiny model named as in the golden files.
fn tiny_as_saved() -> Sequential {
    let mut m = tiny();
    m.name = "sequential_1".into();
    for (l, n) in m.layers.iter_mut().zip(TINY_NAMES) {
        l.name = n.into();
    }
    m
}

/// Checks the model and every weight against the formula, one line per tensor.
fn check_tiny(saved: &SavedModel, what: &str) {
    assert_eq!(saved.model, tiny_as_saved(), "{what}");
    assert_eq!(saved.class_names, ["class0", "class1", "class2"], "{what}");
    let tensors = saved.model.param_tensors().unwrap();
    let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "conv2d_1/kernel",
            "conv2d_1/bias",
            "dense_2/kernel",
            "dense_2/bias",
            "dense_3/kernel",
            "dense_3/bias"
        ]
    );
    for (k, t) in tensors.iter().enumerate() {
        let got = &saved.params[t.offset..t.offset + t.len];
        let bad: Vec<usize> = (0..t.len)
            .filter(|&i| got[i] != golden_value(k, i))
            .collect();
        assert!(
            bad.is_empty(),
            "{what}: {} {:?}: {} values differ, first at {} ({} != {})",
            t.name,
            t.shape,
            bad.len(),
            bad[0],
            got[bad[0]],
            golden_value(k, bad[0])
        );
        println!(
            "{what}: {} {:?} OK, {} values equal",
            t.name, t.shape, t.len
        );
    }
}

#[test]
fn keras_legacy_h5_with_json_loads_every_value() {
    let saved =
        keras::load_pair(&asset("tiny_architecture.json"), &asset("tiny_weights.h5")).unwrap();
    check_tiny(&saved, "tiny_weights.h5");
}

#[test]
fn keras3_weights_h5_with_json_loads_every_value() {
    let saved =
        keras::load_pair(&asset("tiny_architecture.json"), &asset("tiny.weights.h5")).unwrap();
    check_tiny(&saved, "tiny.weights.h5");
}

#[test]
fn keras_archive_loads_every_value() {
    let saved = keras::load(&asset("tiny.keras")).unwrap();
    check_tiny(&saved, "tiny.keras");
}

#[test]
fn whole_model_h5_loads_every_value() {
    // model.save("tiny_model.h5"): the architecture in a root attribute, weights in model_weights/.
    let saved = keras::load(&asset("tiny_model.h5")).unwrap();
    check_tiny(&saved, "tiny_model.h5");
}

#[test]
fn weights_found_next_to_the_architecture() {
    // tiny_architecture.json → tiny_weights.h5, as the notebook's cifar10_* pair.
    let saved = keras::load(&asset("tiny_architecture.json")).unwrap();
    check_tiny(&saved, "tiny_architecture.json");
}

#[test]
fn notebook_architecture_is_our_notebook_model() {
    let text = std::fs::read_to_string(asset("notebook_architecture.json")).unwrap();
    let model = keras::model_from_json(&text).unwrap();
    assert_eq!(model, Sequential::notebook([32, 32, 3], 10));
    assert_eq!(model.param_count().unwrap(), 4_200_842);
}

#[test]
fn our_json_is_what_keras_writes() {
    for (file, model) in [
        (
            "notebook_architecture.json",
            Sequential::notebook([32, 32, 3], 10),
        ),
        ("tiny_architecture.json", tiny_as_saved()),
    ] {
        let mut keras: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(asset(file)).unwrap()).unwrap();
        // Keras numbers input layers too (input_layer_1 for the second model); any name does.
        keras["config"]["layers"][0]["config"]["name"] = "input_layer".into();
        let ours: serde_json::Value =
            serde_json::from_str(&keras::model_to_json(&model).unwrap()).unwrap();
        assert_eq!(ours, keras, "{file}");
        println!("{file}: our to_json() equals Keras' value for value");
    }
}

#[test]
fn predictions_match_keras() {
    // Keras' model.predict on the golden input, against our CPU reference forward pass: checks
    // Flatten's (height, width, channel) order and every kernel layout end to end.
    let saved = keras::load(&asset("tiny.keras")).unwrap();
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(asset("tiny_predictions.json")).unwrap())
            .unwrap();
    let (n, per) = (2, 8 * 8 * 3);
    let x: Vec<f64> = (0..n * per)
        .map(|flat| ((5 * flat + 3 * (flat / per)) % 17) as f32 as f64 / 16.0)
        .collect();
    let params: Vec<f64> = saved.params.iter().map(|&p| p as f64).collect();
    let r = reference::forward_backward(&saved.model, &params, &x, &[0, 0], n, 0, 0, false);
    for img in 0..n {
        let logits = &r.logits[img * 3..img * 3 + 3];
        let max = logits.iter().cloned().fold(f64::MIN, f64::max);
        let sum: f64 = logits.iter().map(|l| (l - max).exp()).sum();
        for c in 0..3 {
            let ours = (logits[c] - max).exp() / sum;
            let theirs = golden["probabilities"][img][c].as_f64().unwrap();
            assert!(
                (ours - theirs).abs() < 1e-6,
                "image {img} class {c}: ours {ours}, Keras {theirs}"
            );
        }
        println!("image {img}: probabilities equal Keras' within 1e-6");
    }
}

#[test]
fn keras_models_we_cannot_run_are_refused_by_name() {
    for (file, words) in [
        ("unsupported_dilation.json", ["conv2d", "dilation_rate"]),
        (
            "unsupported_layer.json",
            ["conv2d_transpose", "Conv2DTranspose"],
        ),
    ] {
        let text = std::fs::read_to_string(asset(file)).unwrap();
        let e = keras::model_from_json(&text).unwrap_err().to_string();
        for w in words {
            assert!(e.contains(w), "{file}: {e}");
        }
        assert!(e.contains("Supported:") && e.contains("Conv2D"), "{e}");
        println!("{file}: {e}");
        // Through load_pair too, with the file named.
        let e = keras::load_pair(&asset(file), &asset("tiny_weights.h5")).unwrap_err();
        assert!(matches!(e, KerasError::Unsupported { .. }), "{e}");
        assert!(e.to_string().contains(file), "{e}");
    }
}
