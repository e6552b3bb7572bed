//! AveragePooling2D, GlobalAveragePooling2D and GlobalMaxPooling2D against real Keras 3: the files
//! `assets/keras/make_golden.py` (`pooling_models`) wrote open with every weight in place, our JSON
//! is Keras' own, Keras 2's names read the same, and our forward passes (the CPU twin and the GPU)
//! give Keras' predictions, 'same' average pooling's clipped border windows included.

#[path = "common/golden.rs"]
mod golden;
use golden::{asset, golden_value};

#[path = "common/gpu.rs"]
mod common_gpu;
#[path = "common/keras_python.rs"]
mod keras_python;

use common_gpu::gpu;
use keras_python::{say_keras_skipped, we_and_keras_read_what_we_save};

use cifar_wgpu::gpu::run_dispatches;
use cifar_wgpu::keras::{self, SavedModel};
use cifar_wgpu::layers::{
    Activation, AveragePooling2D, Conv2D, Dense, Flatten, GlobalAveragePooling2D,
    GlobalMaxPooling2D, Layer,
};
use cifar_wgpu::model::{Sequential, reference};
use cifar_wgpu::optimizer::Optimizer;
use cifar_wgpu::shape::Padding;
use cifar_wgpu::train::{Mode, Network};

/// `layers` named as the script names them.
fn named(name: &str, input: [usize; 3], layers: Vec<(&str, Layer)>) -> Sequential {
    let (names, layers): (Vec<&str>, Vec<Layer>) = layers.into_iter().unzip();
    let mut m = Sequential::from_layers(name, input, layers);
    for (l, n) in m.layers.iter_mut().zip(names) {
        l.name = n.into();
    }
    m
}

fn conv(filters: usize, size: usize, padding: Padding, activation: Activation) -> Layer {
    Conv2D::new(filters, [size, size], padding)
        .activation(activation)
        .into()
}

fn head() -> Layer {
    Dense::new(3).activation(Activation::Softmax).into()
}

/// `pooling_avg`: 'same' average pooling with clipped windows, then a global average.
fn pooling_avg() -> Sequential {
    named(
        "pooling_avg",
        [9, 7, 3],
        vec![
            ("conv_a", conv(4, 3, Padding::Same, Activation::Linear)),
            (
                "avg_pool",
                AveragePooling2D::new([3, 3])
                    .strides([2, 2])
                    .padding(Padding::Same)
                    .into(),
            ),
            ("conv_b", conv(5, 2, Padding::Valid, Activation::Relu)),
            (
                "global_avg",
                GlobalAveragePooling2D { keepdims: false }.into(),
            ),
            ("head", head()),
        ],
    )
}

/// `pooling_max`: 'valid' average pooling with uneven windows and strides, then a global maximum
/// that keeps its dimensions.
fn pooling_max() -> Sequential {
    named(
        "pooling_max",
        [8, 9, 2],
        vec![
            (
                "avg_pool",
                AveragePooling2D::new([2, 3]).strides([1, 2]).into(),
            ),
            ("conv", conv(4, 2, Padding::Same, Activation::Linear)),
            ("global_max", GlobalMaxPooling2D { keepdims: true }.into()),
            ("flatten", Flatten.into()),
            ("head", head()),
        ],
    )
}

fn models() -> [Sequential; 2] {
    [pooling_avg(), pooling_max()]
}

/// Checks the model and every weight against the formula, one line per tensor.
fn check_weights(saved: &SavedModel, want: &Sequential, what: &str) {
    assert_eq!(&saved.model, want, "{what}");
    for (k, t) in saved.model.param_tensors().unwrap().iter().enumerate() {
        let got = &saved.params[t.offset..t.offset + t.len];
        let bad = (0..t.len).find(|&i| got[i] != golden_value(k, i));
        assert_eq!(bad, None, "{what}: {} differs", t.name);
    }
    println!("{what}: model and every weight as Keras saved them");
}

/// Every way Keras saves a model, for the model named `name`.
fn every_file(name: &str) -> Vec<(String, SavedModel)> {
    let json = asset(&format!("{name}_architecture.json"));
    vec![
        (
            format!("{name}_weights.h5 (legacy)"),
            keras::load_pair(&json, &asset(&format!("{name}_weights.h5"))).unwrap(),
        ),
        (
            format!("{name}.weights.h5"),
            keras::load_pair(&json, &asset(&format!("{name}.weights.h5"))).unwrap(),
        ),
        (
            format!("{name}.keras"),
            keras::load(&asset(&format!("{name}.keras"))).unwrap(),
        ),
        (
            format!("{name}_model.h5"),
            keras::load(&asset(&format!("{name}_model.h5"))).unwrap(),
        ),
        (
            format!("{name}_architecture.json (weights beside it)"),
            keras::load(&json).unwrap(),
        ),
    ]
}

#[test]
fn every_keras_file_loads_with_every_weight() {
    for model in models() {
        for (what, saved) in every_file(&model.name) {
            check_weights(&saved, &model, &what);
        }
    }
}

/// The golden input, image n of `per` values: ((5 * flat + 3 * n) % 17) / 16.
fn golden_input(n: usize, per: usize) -> Vec<f64> {
    (0..n * per)
        .map(|flat| ((5 * flat + 3 * (flat / per)) % 17) as f32 as f64 / 16.0)
        .collect()
}

fn keras_probabilities(name: &str) -> Vec<f64> {
    let text = std::fs::read_to_string(asset(&format!("{name}_predictions.json"))).unwrap();
    let golden: serde_json::Value = serde_json::from_str(&text).unwrap();
    golden["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|p| p.as_f64().unwrap()))
        .collect()
}

/// Softmax of each row of `classes` logits.
fn softmax(logits: &[f64], classes: usize) -> Vec<f64> {
    logits
        .chunks(classes)
        .flat_map(|row| {
            let max = row.iter().cloned().fold(f64::MIN, f64::max);
            let sum: f64 = row.iter().map(|l| (l - max).exp()).sum();
            row.iter().map(move |l| (l - max).exp() / sum)
        })
        .collect()
}

fn assert_close(what: &str, ours: &[f64], keras: &[f64], tol: f64) {
    assert_eq!(ours.len(), keras.len(), "{what}");
    let worst = ours
        .iter()
        .zip(keras)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < tol, "{what}: ours {ours:?}, Keras {keras:?}");
    println!("{what}: probabilities equal Keras' within {worst:.1e}");
}

#[test]
fn predictions_match_keras_on_the_cpu_and_the_gpu() {
    let g = gpu();
    let n = 2;
    for model in models() {
        let keras = keras_probabilities(&model.name);
        let x = golden_input(n, model.input().len());
        let labels = [0u32; 2];
        for (what, saved) in every_file(&model.name) {
            let params: Vec<f64> = saved.params.iter().map(|&p| p as f64).collect();
            let r = reference::forward_backward(&saved.model, &params, &x, &labels, n, 0, 0, false);
            assert_close(&format!("{what} CPU"), &softmax(&r.logits, 3), &keras, 1e-6);
        }
        let saved = keras::load(&asset(&format!("{}.keras", model.name))).unwrap();
        let net = Network::new(
            g,
            &saved.model,
            Optimizer::rmsprop_default(),
            &saved.params,
            n,
            0,
        )
        .unwrap();
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        g.write(&net.input(n), &x32);
        g.write(&net.labels.slice(0, n), &labels);
        let dispatches = net.step(g, n, Mode::Eval);
        run_dispatches(g, &dispatches.iter().collect::<Vec<_>>()).unwrap();
        let logits: Vec<f64> = g
            .read_f32(&net.logits(n, Mode::Eval))
            .unwrap()
            .iter()
            .map(|&l| l as f64)
            .collect();
        assert_close(
            &format!("{}.keras GPU", model.name),
            &softmax(&logits, 3),
            &keras,
            1e-5,
        );
    }
}

#[test]
fn our_json_is_what_keras_writes() {
    for model in models() {
        let file = format!("{}_architecture.json", model.name);
        let mut keras: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(asset(&file)).unwrap()).unwrap();
        // Keras numbers input layers too (input_layer_1 for the second model); any name does.
        keras["config"]["layers"][0]["config"]["name"] = "input_layer".into();
        let ours: serde_json::Value =
            serde_json::from_str(&keras::model_to_json(&model).unwrap()).unwrap();
        assert_eq!(ours, keras, "{file}");
        println!("{file}: our to_json() equals Keras' value for value");
    }
}

/// The golden JSON of `name` with `edit` applied to each layer's entry.
fn edited(name: &str, edit: impl Fn(&mut serde_json::Value)) -> String {
    let text = std::fs::read_to_string(asset(&format!("{name}_architecture.json"))).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for layer in v["config"]["layers"].as_array_mut().unwrap() {
        edit(layer);
    }
    v.to_string()
}

#[test]
fn keras_aliases_and_keras_2_configs_read_the_same() {
    // Keras' short names, and no `keepdims` (Keras 2 before 2.6 had none: false).
    for model in models() {
        let text = edited(&model.name, |layer| {
            let class = layer["class_name"].as_str().unwrap().to_string();
            let alias = match class.as_str() {
                "AveragePooling2D" => "AvgPool2D",
                "GlobalAveragePooling2D" => "GlobalAvgPool2D",
                "GlobalMaxPooling2D" => "GlobalMaxPool2D",
                _ => return,
            };
            layer["class_name"] = alias.into();
            if layer["config"]["keepdims"] == false {
                layer["config"].as_object_mut().unwrap().remove("keepdims");
            }
        });
        assert_eq!(keras::model_from_json(&text).unwrap(), model);
    }
}

#[test]
fn settings_we_cannot_run_are_refused_by_name() {
    for (name, class, key, value, words) in [
        (
            "pooling_avg",
            "AveragePooling2D",
            "data_format",
            serde_json::json!("channels_first"),
            ["avg_pool", "data_format", "channels_first"],
        ),
        (
            "pooling_avg",
            "GlobalAveragePooling2D",
            "data_format",
            serde_json::json!("channels_first"),
            ["global_avg", "data_format", "channels_first"],
        ),
        (
            "pooling_max",
            "GlobalMaxPooling2D",
            "data_format",
            serde_json::json!("channels_first"),
            ["global_max", "data_format", "channels_first"],
        ),
        (
            "pooling_avg",
            "AveragePooling2D",
            "padding",
            serde_json::json!("causal"),
            ["avg_pool", "padding", "causal"],
        ),
        (
            "pooling_max",
            "GlobalMaxPooling2D",
            "keepdims",
            serde_json::json!("yes"),
            ["global_max", "keepdims", "true or false"],
        ),
    ] {
        let text = edited(name, |layer| {
            if layer["class_name"] == class {
                layer["config"][key] = value.clone();
            }
        });
        let e = keras::model_from_json(&text).unwrap_err().to_string();
        for w in words {
            assert!(e.contains(w), "{class} {key}: {e}");
        }
        println!("{class} {key} = {value}: {e}");
    }
    // A global pooling needs an image: after a Flatten it is refused, naming the layer.
    let mut model = pooling_max();
    model.layers.swap(2, 3);
    let e = model.validate().unwrap_err().to_string();
    assert!(
        e.contains("GlobalMaxPooling2D") && e.contains("image"),
        "{e}"
    );
}

#[test]
fn summary_rows_are_keras_rows() {
    let summary = pooling_avg().summary().unwrap();
    println!("{summary}");
    for row in [
        "│ avg_pool (AveragePooling2D)     │ (None, 5, 4, 4)        │             0 │",
        "│ global_avg                      │ (None, 5)              │             0 │\n\
         │ (GlobalAveragePooling2D)        │                        │               │",
        "│ head (Dense)                    │ (None, 3)              │            18 │",
    ] {
        assert!(summary.contains(row), "missing {row:?} in\n{summary}");
    }
    let summary = pooling_max().summary().unwrap();
    println!("{summary}");
    for row in [
        "│ avg_pool (AveragePooling2D)     │ (None, 7, 4, 2)        │             0 │",
        "│ global_max (GlobalMaxPooling2D) │ (None, 1, 1, 4)        │             0 │",
    ] {
        assert!(summary.contains(row), "missing {row:?} in\n{summary}");
    }
}

/// We read back the Keras files we write for the pooling models, and Keras 3 opens them: each way of
/// loading gives Keras' own predictions on the golden input.
#[test]
fn we_read_back_what_we_save_and_so_does_keras() {
    let mut asked = false;
    for model in models() {
        asked |= we_and_keras_read_what_we_save(
            &asset(&format!("{}.keras", model.name)),
            &asset(&format!("{}_predictions.json", model.name)),
        );
    }
    if !asked {
        say_keras_skipped("we_read_back_what_we_save_and_so_does_keras");
    }
}
