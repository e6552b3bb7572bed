//! The architecture as JSON: Keras 3's `model.to_json()` for our `Sequential`, and the reverse for
//! what Keras 2 and 3 write, refusing clearly what we cannot run.

use std::path::Path;

use serde_json::{Value, json};

use super::{
    ARCHITECTURE_FILE, ARCHIVE_FILE, ConfigError, KerasError, MAX_JSON_FILE, archive, check_model,
    read_capped,
};
use crate::layers::keras::{malformed, unsupported};
use crate::layers::{self, KerasEntry};
use crate::model::io::{MODEL_FILE, architecture_from_json, is_model_file};
use crate::model::{Sequential, Shape};
use crate::optimizer::Optimizer;

/// What we can run, for error messages.
pub const SUPPORTED: &str = "a Sequential model of Conv2D (any strides, dilation 1, groups 1, \
    with or without bias), Activation, LeakyReLU, MaxPooling2D, AveragePooling2D, \
    GlobalAveragePooling2D, GlobalMaxPooling2D (keepdims either way), Dropout (no noise_shape), \
    Flatten, Dense (with or without bias) and BatchNormalization (axis -1, constant initializers), \
    with activations linear, relu, sigmoid, tanh, elu, leaky_relu or softmax, channels_last data, \
    float32, no regularizers or constraints, ending in a softmax; kernels and biases of Conv2D and Dense \
    initialised by Keras' glorot, he, lecun, variance-scaling, zeros, ones, constant, random \
    normal, random uniform or truncated normal initializers";

fn dtype_policy() -> Value {
    json!({
        "module": "keras",
        "class_name": "DTypePolicy",
        "config": {"name": "float32"},
        "registered_name": null
    })
}

fn batch_shape(shape: &Shape) -> Value {
    match *shape {
        Shape::Image { h, w, c } => json!([null, h, w, c]),
        Shape::Flat(n) => json!([null, n]),
    }
}

/// What Keras 3's `model.to_json()` writes for `model` (keys sorted; Keras does not mind).
pub fn model_to_json(model: &Sequential) -> Result<String, String> {
    let shapes = model.output_shapes().map_err(|e| e.to_string())?;
    let input = model.input();
    let mut layers = vec![json!({
        "module": "keras.layers",
        "class_name": "InputLayer",
        "config": {
            "batch_shape": batch_shape(&input),
            "dtype": "float32",
            "sparse": false,
            "ragged": false,
            "name": "input_layer",
            "optional": false
        },
        "registered_name": null
    })];
    let mut layer_input = input.clone();
    for (l, out) in model.layers.iter().zip(&shapes) {
        let mut config = json!({
            "name": l.name,
            "trainable": true,
            "dtype": dtype_policy(),
        });
        let kind = l.layer.kind();
        let extra = kind.keras_config();
        let map = config.as_object_mut().expect("object");
        for (k, v) in extra.as_object().expect("object") {
            map.insert(k.clone(), v.clone());
        }
        let mut entry = json!({
            "module": "keras.layers",
            "class_name": kind.class_name(),
            "config": config,
            "registered_name": null
        });
        if kind.keras_builds() {
            entry["build_config"] = json!({"input_shape": batch_shape(&layer_input)});
        }
        layers.push(entry);
        layer_input = out.clone();
    }
    let value = json!({
        "module": "keras",
        "class_name": "Sequential",
        "config": {
            "name": model.name,
            "trainable": true,
            "dtype": dtype_policy(),
            "layers": layers,
            "build_input_shape": batch_shape(&input)
        },
        "registered_name": null,
        "build_config": {"input_shape": batch_shape(&input)},
        "compile_config": {}
    });
    Ok(value.to_string())
}

/// The batch shape an entry declares for the model's input, if it declares one.
fn declared_input(config: &serde_json::Map<String, Value>) -> Option<&Value> {
    ["batch_shape", "batch_input_shape"]
        .iter()
        .find_map(|k| config.get(*k).filter(|v| !v.is_null()))
}

fn input_shape(v: &Value) -> Result<[usize; 3], ConfigError> {
    let dims: Option<Vec<Option<u64>>> =
        v.as_array().map(|a| a.iter().map(Value::as_u64).collect());
    match dims.as_deref() {
        Some([_, Some(h), Some(w), Some(c)]) if *h > 0 && *w > 0 && *c > 0 => {
            Ok([*h as usize, *w as usize, *c as usize])
        }
        _ => Err(unsupported(format!(
            "input shape {v}: only images (batch, height, width, channels) of known size are \
             supported"
        ))),
    }
}

/// Our `Sequential` from what `model.to_json()` writes (Keras 3, or Keras 2 with
/// `batch_input_shape` on the first layer), checked against what we can run.
pub fn model_from_json(text: &str) -> Result<Sequential, ConfigError> {
    let root: Value = serde_json::from_str(text)
        .map_err(|e| malformed(format!("not a Keras model JSON: {e}")))?;
    let class = root.get("class_name").and_then(Value::as_str);
    match class {
        Some("Sequential") => {}
        Some(other) => {
            return Err(unsupported(format!(
                "a {other} model is not supported (only Sequential)"
            )));
        }
        None => return Err(malformed("not a Keras model JSON: no 'class_name'")),
    }
    let config = root.get("config");
    // Keras 2.0–2.1 wrote the layer list as the config itself.
    let (name, entries) = match config {
        Some(Value::Array(layers)) => ("sequential".to_string(), layers),
        Some(Value::Object(c)) => (
            c.get("name")
                .and_then(Value::as_str)
                .unwrap_or("sequential")
                .to_string(),
            c.get("layers")
                .and_then(Value::as_array)
                .ok_or_else(|| malformed("not a Keras model JSON: no 'config.layers' list"))?,
        ),
        _ => return Err(malformed("not a Keras model JSON: no 'config'")),
    };
    let mut input = None;
    let mut layers = Vec::new();
    let mut names = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let class = e
            .get("class_name")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed(format!("layer {i} has no 'class_name'")))?;
        let empty = serde_json::Map::new();
        let config = e.get("config").and_then(Value::as_object).unwrap_or(&empty);
        let entry = KerasEntry {
            class,
            name: config
                .get("name")
                .and_then(Value::as_str)
                .map_or_else(|| format!("#{i}"), str::to_string),
            config,
        };
        if let Some(v) = declared_input(config) {
            if input.is_none() && layers.is_empty() {
                input = Some(input_shape(v)?);
            } else if class == "InputLayer" {
                return Err(unsupported(format!(
                    "{}: an input layer after the first layer",
                    entry.what()
                )));
            }
        }
        if e.get("registered_name")
            .and_then(Value::as_str)
            .is_some_and(|r| r != class)
        {
            return Err(unsupported(format!(
                "{}: custom (registered) layers are not supported",
                entry.what()
            )));
        }
        if class == "InputLayer" {
            if config.get("sparse").and_then(Value::as_bool) == Some(true) {
                return Err(entry.refuse("sparse"));
            }
            continue;
        }
        let layer = layers::from_keras(&entry).unwrap_or_else(|| {
            Err(unsupported(format!(
                "{}: the layer {class} is not supported",
                entry.what()
            )))
        })?;
        if names.contains(&entry.name) {
            return Err(malformed(format!("two layers are named '{}'", entry.name)));
        }
        names.push(entry.name.clone());
        layers.push(layer);
    }
    let input = match input {
        Some(s) => s,
        None => {
            // Keras 3 without an InputLayer entry: the build shapes say it.
            let declared = config
                .and_then(|c| c.get("build_input_shape"))
                .or_else(|| root.get("build_config").and_then(|b| b.get("input_shape")))
                .filter(|v| !v.is_null())
                .ok_or_else(|| {
                    malformed(
                        "the model does not say its input shape (no InputLayer, \
                               batch_input_shape or build_input_shape)",
                    )
                })?;
            input_shape(declared)?
        }
    };
    if layers.is_empty() {
        return Err(malformed("the model has no layers"));
    }
    let mut model = Sequential::from_layers(&name, input, layers);
    for (l, n) in model.layers.iter_mut().zip(names) {
        l.name = n;
    }
    model.validate().map_err(|e| unsupported(e.to_string()))?;
    Ok(model)
}

/// An architecture to train from fresh weights (`train --config`), with the optimizer its file's
/// compile settings name, if any.
#[derive(Clone, Debug, PartialEq)]
pub struct Architecture {
    pub model: Sequential,
    pub optimizer: Option<Optimizer>,
}

/// Reads an architecture from Keras' `model.to_json()` (Keras 2 or 3), a `.keras` archive (its
/// `config.json`; the weights are not read) or our `model.json`; a folder is searched for
/// `model.json`, `model.keras` and `cifar10_architecture.json`, in that order. The compile settings
/// are read where Keras writes them (a compiled model's `compile_config`).
pub fn load_architecture(path: &Path) -> Result<Architecture, KerasError> {
    if path.is_dir() {
        let file = [MODEL_FILE, ARCHIVE_FILE, ARCHITECTURE_FILE]
            .iter()
            .map(|f| path.join(f))
            .find(|f| f.is_file())
            .ok_or_else(|| {
                KerasError::malformed(
                    path,
                    format!(
                        "no architecture here: looked for {MODEL_FILE}, {ARCHIVE_FILE} and \
                         {ARCHITECTURE_FILE}"
                    ),
                )
            })?;
        return load_architecture(&file);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let (text, at) = if name.ends_with(".keras") {
        (archive::archive_config(path)?, path.join("config.json"))
    } else if name.ends_with(".json") {
        let text = String::from_utf8(read_capped(path, MAX_JSON_FILE)?)
            .map_err(|_| KerasError::malformed(path, "not UTF-8 text"))?;
        (text, path.to_path_buf())
    } else {
        return Err(KerasError::malformed(
            path,
            "not an architecture file: expected Keras' model.to_json() (.json), a .keras \
             archive or our model.json",
        ));
    };
    let root: Value = serde_json::from_str(&text)
        .map_err(|e| KerasError::malformed(&at, format!("not JSON: {e}")))?;
    let (model, optimizer) = if is_model_file(&root) {
        let model = architecture_from_json(&text)
            .map_err(|e| KerasError::malformed(&at, format!("not a cifar-wgpu model file: {e}")))?;
        (model, None)
    } else {
        let model = model_from_json(&text).map_err(|e| e.at(&at))?;
        let optimizer = archive::compile_optimizer(&root).map_err(|e| e.at(&at))?;
        (model, optimizer)
    };
    check_model(&at, &model)?;
    Ok(Architecture { model, optimizer })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{Activation, Conv2D, Layer};
    use crate::shape::Padding;

    #[test]
    fn our_json_reads_back_as_the_same_model() {
        let m = Sequential::notebook([32, 32, 3], 10);
        let text = model_to_json(&m).unwrap();
        assert_eq!(model_from_json(&text).unwrap(), m);
    }

    #[test]
    fn keras2_json_with_batch_input_shape_reads() {
        let text = r#"{"class_name": "Sequential", "keras_version": "2.2.4", "backend": "tensorflow",
          "config": {"name": "sequential_1", "layers": [
            {"class_name": "Conv2D", "config": {"name": "conv2d_1", "batch_input_shape": [null, 8, 8, 3],
              "dtype": "float32", "filters": 4, "kernel_size": [3, 3], "strides": [1, 1],
              "padding": "same", "data_format": "channels_last", "dilation_rate": [1, 1],
              "activation": "relu", "use_bias": true}},
            {"class_name": "Flatten", "config": {"name": "flatten_1", "data_format": "channels_last"}},
            {"class_name": "Dense", "config": {"name": "dense_1", "units": 3, "activation": "softmax",
              "use_bias": true}}]}}"#;
        let m = model_from_json(text).unwrap();
        assert_eq!(m.input_shape, [8, 8, 3]);
        assert_eq!(m.layers[0].name, "conv2d_1");
        assert_eq!(m.layers.len(), 3);
        assert!(matches!(
            m.layers[0].layer,
            Layer::Conv2D(Conv2D {
                activation: Activation::Relu,
                padding: Padding::Same,
                ..
            })
        ));
    }
}
