//! `train --config` and `summary --config`: architectures from Keras' JSON (2 and 3), `.keras`
//! archives (with their compile settings) and our `model.json`, trained from fresh weights drawn by
//! the initialisers the files name. The Keras 3 files are real Keras' (`assets/keras/make_golden.py`,
//! `config_models`).

#[path = "common/golden.rs"]
mod golden;
use golden::asset;

#[path = "common/cli.rs"]
mod common_cli;
use common_cli::{assert_clean_failure, cli, text, train};

#[path = "common/writers.rs"]
mod writers;

use std::path::Path;

use cifar_wgpu::data::synthetic;
use cifar_wgpu::keras::{self, load_architecture, model_to_json};
use cifar_wgpu::layers::{Distribution, FanMode, Init, Layer};
use cifar_wgpu::model::Sequential;
use cifar_wgpu::model::io::SavedModel;
use cifar_wgpu::optimizer::Optimizer;
use serde_json::Value;

/// (kernel, bias) initialisers of each Conv2D and Dense, in order.
fn initialisers(model: &Sequential) -> Vec<(Init, Init)> {
    model
        .layers
        .iter()
        .filter_map(|l| match &l.layer {
            Layer::Conv2D(c) => Some(c.kernel_bias),
            Layer::Dense(d) => Some(d.kernel_bias),
            _ => None,
        })
        .map(|k| (k.kernel_initializer, k.bias_initializer))
        .collect()
}

/// What `make_golden.py` gives the layers of `init_architecture.json`.
fn golden_initialisers() -> Vec<(Init, Init)> {
    vec![
        (Init::HeNormal, Init::Zeros),
        (
            Init::VarianceScaling {
                scale: 2.0,
                mode: FanMode::FanOut,
                distribution: Distribution::Uniform,
            },
            Init::Constant(0.1),
        ),
        (
            Init::RandomNormal {
                mean: 0.0,
                stddev: 0.02,
            },
            Init::Ones,
        ),
        (
            Init::TruncatedNormal {
                mean: 0.1,
                stddev: 0.05,
            },
            Init::RandomUniform {
                minval: -0.2,
                maxval: 0.3,
            },
        ),
        (Init::LecunUniform, Init::Constant(-0.5)),
    ]
}

#[test]
fn keras3_json_names_every_initialiser() {
    let a = load_architecture(&asset("init_architecture.json")).unwrap();
    assert_eq!(a.model.input_shape, [8, 8, 1]);
    assert_eq!(initialisers(&a.model), golden_initialisers());
    assert_eq!(a.optimizer, None, "to_json() of an uncompiled model");
}

#[test]
fn keras_archive_gives_its_compile_settings() {
    let a = load_architecture(&asset("init_adam.keras")).unwrap();
    let json = load_architecture(&asset("init_architecture.json")).unwrap();
    assert_eq!(initialisers(&a.model), golden_initialisers());
    assert_eq!(a.model.layers, json.model.layers);
    assert_eq!(
        a.optimizer,
        Some(Optimizer::Adam {
            lr: 0.002,
            beta1: 0.8,
            beta2: 0.999,
            epsilon: 1e-7,
            amsgrad: false,
        })
    );
}

#[test]
fn keras2_json_names_initialisers_its_own_ways() {
    // Keras 2 writes {"class_name", "config"} without a module, he_normal as VarianceScaling with
    // distribution "normal" (truncated), and older files bare names.
    let text = r#"{"class_name": "Sequential", "keras_version": "2.2.4", "config": {"name": "s",
      "layers": [
        {"class_name": "Conv2D", "config": {"name": "conv2d_1", "batch_input_shape": [null, 8, 8, 1],
          "filters": 2, "kernel_size": [3, 3], "padding": "valid", "activation": "relu",
          "kernel_initializer": {"class_name": "VarianceScaling",
            "config": {"scale": 2.0, "mode": "fan_in", "distribution": "normal", "seed": null}},
          "bias_initializer": {"class_name": "Zeros", "config": {}}}},
        {"class_name": "Flatten", "config": {"name": "flatten_1"}},
        {"class_name": "Dense", "config": {"name": "dense_1", "units": 10, "activation": "softmax",
          "kernel_initializer": "glorot_normal", "bias_initializer": "ones"}}]}}"#;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keras2.json");
    std::fs::write(&path, text).unwrap();
    let a = load_architecture(&path).unwrap();
    assert_eq!(
        initialisers(&a.model),
        vec![
            (
                Init::VarianceScaling {
                    scale: 2.0,
                    mode: FanMode::FanIn,
                    distribution: Distribution::TruncatedNormal,
                },
                Init::Zeros
            ),
            (Init::GlorotNormal, Init::Ones),
        ]
    );
}

#[test]
fn our_model_json_and_folders_are_architectures() {
    let model = load_architecture(&asset("init_architecture.json"))
        .unwrap()
        .model;
    let saved = SavedModel {
        params: model.init_params(1).unwrap(),
        class_names: (0..10).map(|i| format!("c{i}")).collect(),
        model: model.clone(),
    };
    let dir = tempfile::tempdir().unwrap();
    saved.save(dir.path()).unwrap();
    for path in [dir.path().join("model.json"), dir.path().to_path_buf()] {
        let a = load_architecture(&path).unwrap();
        assert_eq!(a.model, model, "{}", path.display());
        assert_eq!(a.optimizer, None);
    }
}

#[test]
fn a_model_json_without_initialisers_reads_keras_defaults() {
    // model.json files written before layers stored their initialisers (ours leave Keras' defaults
    // out as well; the test removes any a newer writer might put in).
    let dir = tempfile::tempdir().unwrap();
    let model = Sequential::notebook([8, 8, 3], 3);
    SavedModel {
        params: model.init_params(0).unwrap(),
        class_names: vec!["a".into(), "b".into(), "c".into()],
        model: model.clone(),
    }
    .save(dir.path())
    .unwrap();
    let path = dir.path().join("model.json");
    let mut root: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for l in root["model"]["layers"].as_array_mut().unwrap() {
        // NamedLayer flattens the layer's fields into its entry.
        let layer = l.as_object_mut().unwrap();
        layer.remove("kernel_initializer");
        layer.remove("bias_initializer");
    }
    let text = root.to_string();
    std::fs::write(&path, text).unwrap();
    let read = load_architecture(&path).unwrap().model;
    assert_eq!(read, model);
    assert!(
        initialisers(&read)
            .iter()
            .all(|&i| i == (Init::GlorotUniform, Init::Zeros))
    );
}

#[test]
fn fresh_weights_follow_each_initialiser() {
    let model = load_architecture(&asset("init_architecture.json"))
        .unwrap()
        .model;
    let params = model.init_params(5).unwrap();
    assert_eq!(params, model.init_params(5).unwrap(), "the seed fixes them");
    assert_ne!(params, model.init_params(6).unwrap());
    let tensor = |name: &str| {
        let t = model
            .param_tensors()
            .unwrap()
            .into_iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no tensor {name}"));
        params[t.offset..t.offset + t.len].to_vec()
    };
    let within = |name: &str, low: f32, high: f32| {
        let v = tensor(name);
        assert!(
            v.iter().all(|x| (low..high).contains(x)),
            "{name} outside [{low}, {high}): {v:?}"
        );
    };
    // he_normal on [3, 3, 1, 4]: fan_in 9, truncated at 2 * sqrt(2 / 9) / 0.8796.
    let he = 2.0 * (2.0f32 / 9.0).sqrt() / 0.879_625_7;
    within("conv2d/kernel", -he, he);
    assert_eq!(tensor("conv2d/bias"), vec![0.0; 4]);
    // VarianceScaling(2, fan_out, uniform) on [2, 2, 4, 3]: fan_out 12.
    let vs = (3.0 * 2.0f32 / 12.0).sqrt();
    within("conv2d_1/kernel", -vs, vs);
    assert_eq!(tensor("conv2d_1/bias"), vec![0.1; 3]);
    within("dense/kernel", -0.2, 0.2);
    assert_eq!(tensor("dense/bias"), vec![1.0; 6]);
    within("dense_1/kernel", 0.0, 0.2);
    within("dense_1/bias", -0.2, 0.3);
    // lecun_uniform on [5, 10]: fan_in 5.
    let lecun = (3.0f32 / 5.0).sqrt();
    within("dense_2/kernel", -lecun, lecun);
    assert_eq!(tensor("dense_2/bias"), vec![-0.5; 10]);
}

#[test]
fn our_keras_json_writes_the_initialisers_as_keras_does() {
    let path = asset("init_architecture.json");
    let model = load_architecture(&path).unwrap().model;
    let ours: Value = serde_json::from_str(&model_to_json(&model).unwrap()).unwrap();
    let theirs: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let inits = |root: &Value| -> Vec<Value> {
        root["config"]["layers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|l| l["config"].get("kernel_initializer").map(|k| (k, l)))
            .flat_map(|(k, l)| [k.clone(), l["config"]["bias_initializer"].clone()])
            .collect()
    };
    assert_eq!(inits(&ours), inits(&theirs));
    assert_eq!(inits(&ours).len(), 10);
}

#[test]
fn unsupported_initialisers_optimizers_and_losses_are_refused_by_name() {
    let e = load_architecture(&asset("unsupported_initializer.json"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("kernel_initializer: initializer Orthogonal is not supported"),
        "{e}"
    );
    let e = load_architecture(&asset("unsupported_optimizer.keras"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("optimizer AdamW is not supported"), "{e}");

    // A compiled model's to_json() with a loss or optimizer setting we do not train.
    let text = std::fs::read_to_string(asset("init_architecture.json")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let with_compile = |compile: Value| {
        let mut root: Value = serde_json::from_str(&text).unwrap();
        root["compile_config"] = compile;
        let path = dir.path().join("compiled.json");
        std::fs::write(&path, root.to_string()).unwrap();
        load_architecture(&path)
    };
    let ok = with_compile(serde_json::json!({"optimizer": "sgd",
        "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}))
    .unwrap();
    assert_eq!(ok.optimizer, Some(Optimizer::sgd_default()));
    for (compile, says) in [
        (
            serde_json::json!({"optimizer": "adam", "loss": "mean_squared_error"}),
            "loss = \"mean_squared_error\" is not supported",
        ),
        (
            serde_json::json!({"optimizer": "adam", "loss": {"module": "keras.losses",
                "class_name": "CategoricalCrossentropy", "config": {"from_logits": true}}}),
            "CategoricalCrossentropy",
        ),
        (
            serde_json::json!({"optimizer": {"class_name": "RMSprop",
                "config": {"learning_rate": 0.01, "clipnorm": 1.0}}}),
            "optimizer RMSprop: clipnorm = 1.0 is not supported",
        ),
        (
            serde_json::json!({"optimizer": {"class_name": "SGD", "config": {"learning_rate":
                {"class_name": "ExponentialDecay", "config": {}}}}}),
            "learning-rate schedules are not supported",
        ),
        (
            serde_json::json!({"optimizer": {"class_name": "Adam", "config": {"beta_1": 1.5}}}),
            "beta_1 = 1.5 must be at least 0 and below 1",
        ),
        (
            serde_json::json!({"optimizer": "adam", "loss_weights": [2.0]}),
            "loss_weights = [2.0] is not supported",
        ),
    ] {
        let e = with_compile(compile.clone()).unwrap_err().to_string();
        assert!(e.contains(says), "{compile}: {e}");
    }
}

#[test]
fn files_that_are_no_architecture_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let e = load_architecture(dir.path()).unwrap_err().to_string();
    assert!(e.contains("no architecture here"), "{e}");
    let h5 = asset("tiny_weights.h5");
    let e = load_architecture(&h5).unwrap_err().to_string();
    assert!(e.contains("not an architecture file"), "{e}");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"format\": \"cifar-wgpu-model/1\", \"model\": 3}").unwrap();
    let e = load_architecture(&bad).unwrap_err().to_string();
    assert!(e.contains("not a cifar-wgpu model file"), "{e}");
    // keras::load (fine-tuning) still reads the archive's weights; only --config ignores them.
    assert!(keras::load(&asset("init_adam.keras")).is_ok());
}

/// A tiny learnable IDX set of `side`x`side` grey images, 10 classes.
fn tiny_idx(dir: &Path, side: usize) -> String {
    let ds = synthetic::learnable(120, 30, side, side, 1, 10, 4);
    let path = dir.join(format!("idx{side}"));
    writers::write_idx(&ds, &path, false).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn summary_shows_a_config_file() {
    let o = cli(&[
        "summary",
        "--config",
        asset("init_architecture.json").to_str().unwrap(),
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    // conv2d 40, conv2d_1 51, dense 27 * 6 + 6, dense_1 35, dense_2 60.
    assert!(
        t.contains("conv2d_1 (Conv2D)") && t.contains("dense_2 (Dense)"),
        "{t}"
    );
    assert!(t.contains("Total params: 354 "), "{t}");
}

#[test]
fn train_from_a_keras_archive_takes_its_optimizer_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_idx(dir.path(), 8);
    let out = dir.path().join("run");
    let config = asset("init_adam.keras");
    let train = |extra: &[&str]| {
        let config = config.to_str().unwrap();
        let flags = [
            "--config",
            config,
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--quiet",
        ];
        train(&data, &out, &[&flags[..], extra].concat())
    };
    let o = train(&[]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains(
            "Adam(learning_rate=0.002, beta_1=0.8, beta_2=0.999, epsilon=1e-07, amsgrad=False)"
        ),
        "{t}"
    );
    assert!(t.contains("test: loss"), "{t}");
    // The saved model keeps its initialisers: ours and Keras' files.
    let saved = SavedModel::load(&out).unwrap();
    assert_eq!(initialisers(&saved.model), golden_initialisers());
    let exported = std::fs::read_to_string(out.join("cifar10_architecture.json")).unwrap();
    assert!(
        exported.contains("\"class_name\":\"HeNormal\""),
        "{exported}"
    );

    let o = train(&["--lr", "0.01", "--amsgrad"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains(
            "Adam(learning_rate=0.01, beta_1=0.8, beta_2=0.999, epsilon=1e-07, amsgrad=True)"
        ),
        "{t}"
    );
    let o = train(&["--optimizer", "sgd"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("SGD(learning_rate=0.01, momentum=0.0, nesterov=False)"),
        "{t}"
    );
}

#[test]
fn train_config_refusals_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_idx(dir.path(), 12);
    let out = dir.path().join("run");
    let run = |config: &Path, extra: &[&str]| {
        let flags = ["--config", config.to_str().unwrap(), "--epochs", "1"];
        train(&data, &out, &[&flags[..], extra].concat())
    };
    // 8x8 architecture, 12x12 images: both named.
    assert_clean_failure(
        &run(&asset("init_architecture.json"), &[]),
        &["[8, 8, 1]", "[12, 12, 1]"],
    );
    assert_clean_failure(
        &run(&asset("unsupported_initializer.json"), &[]),
        &["Orthogonal is not supported"],
    );
    assert_clean_failure(
        &run(&asset("unsupported_optimizer.keras"), &[]),
        &["AdamW is not supported"],
    );
    assert_clean_failure(
        &run(&asset("init_architecture.json"), &["--preset", "deeper"]),
        &["cannot be used with"],
    );
    assert!(!out.exists(), "nothing is written when a run is refused");
}
