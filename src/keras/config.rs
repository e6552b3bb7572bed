//! The architecture as JSON: Keras 3's `model.to_json()` for our `Sequential`, and the reverse for
//! what Keras 2 and 3 write, refusing clearly what we cannot run.

use serde_json::{Value, json};

use super::ConfigError;
use crate::model::{Activation, Layer, Sequential, Shape};
use crate::shape::Padding;

/// What we can run, for error messages.
pub const SUPPORTED: &str = "a Sequential model of Conv2D (strides 1, dilation 1, groups 1, \
    use_bias true), Activation, MaxPooling2D, Dropout (no noise_shape), Flatten and Dense \
    (use_bias true), with activations relu, softmax or linear, channels_last data, float32, no \
    regularizers or constraints, ending in a softmax";

fn dtype_policy() -> Value {
    json!({
        "module": "keras",
        "class_name": "DTypePolicy",
        "config": {"name": "float32"},
        "registered_name": null
    })
}

fn initializer(class_name: &str) -> Value {
    let config = if class_name == "GlorotUniform" {
        json!({"seed": null, "input_axes": null, "output_axes": null})
    } else {
        json!({})
    };
    json!({
        "module": "keras.initializers",
        "class_name": class_name,
        "config": config,
        "registered_name": null
    })
}

fn batch_shape(shape: &Shape) -> Value {
    match *shape {
        Shape::Image { h, w, c } => json!([null, h, w, c]),
        Shape::Flat(n) => json!([null, n]),
    }
}

fn padding_name(p: Padding) -> &'static str {
    match p {
        Padding::Same => "same",
        Padding::Valid => "valid",
    }
}

fn activation_name(a: Activation) -> &'static str {
    match a {
        Activation::Linear => "linear",
        Activation::Relu => "relu",
        Activation::Softmax => "softmax",
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
        let mut build = false;
        let extra = match &l.layer {
            Layer::Conv2D {
                filters,
                kernel_size,
                padding,
                activation,
            } => {
                build = true;
                json!({
                    "filters": filters,
                    "kernel_size": kernel_size,
                    "strides": [1, 1],
                    "padding": padding_name(*padding),
                    "data_format": "channels_last",
                    "dilation_rate": [1, 1],
                    "groups": 1,
                    "activation": activation_name(*activation),
                    "use_bias": true,
                    "kernel_initializer": initializer("GlorotUniform"),
                    "bias_initializer": initializer("Zeros"),
                    "kernel_regularizer": null,
                    "bias_regularizer": null,
                    "activity_regularizer": null,
                    "kernel_constraint": null,
                    "bias_constraint": null
                })
            }
            Layer::Activation { activation } => {
                json!({"activation": activation_name(*activation)})
            }
            Layer::MaxPooling2D {
                pool_size,
                strides,
                padding,
            } => json!({
                "pool_size": pool_size,
                "padding": padding_name(*padding),
                "strides": strides,
                "data_format": "channels_last"
            }),
            Layer::Dropout { rate } => json!({
                // f32 → f64 through the shortest decimal, so 0.25 stays 0.25 and 0.1 stays 0.1.
                "rate": rate.to_string().parse::<f64>().unwrap_or(*rate as f64),
                "seed": null,
                "noise_shape": null
            }),
            Layer::Flatten => {
                build = true;
                json!({"data_format": "channels_last"})
            }
            Layer::Dense { units, activation } => {
                build = true;
                json!({
                    "units": units,
                    "activation": activation_name(*activation),
                    "use_bias": true,
                    "kernel_initializer": initializer("GlorotUniform"),
                    "bias_initializer": initializer("Zeros"),
                    "kernel_regularizer": null,
                    "bias_regularizer": null,
                    "kernel_constraint": null,
                    "bias_constraint": null,
                    "quantization_config": null
                })
            }
        };
        let map = config.as_object_mut().expect("object");
        for (k, v) in extra.as_object().expect("object") {
            map.insert(k.clone(), v.clone());
        }
        let mut entry = json!({
            "module": "keras.layers",
            "class_name": l.layer.class_name(),
            "config": config,
            "registered_name": null
        });
        if build {
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

fn malformed(message: impl Into<String>) -> ConfigError {
    ConfigError {
        unsupported: false,
        message: message.into(),
    }
}

fn unsupported(message: impl Into<String>) -> ConfigError {
    ConfigError {
        unsupported: true,
        message: message.into(),
    }
}

/// One layer's entry, with the helpers that read its settings and name it in errors.
struct Entry<'a> {
    class: &'a str,
    name: String,
    config: &'a serde_json::Map<String, Value>,
}

impl Entry<'_> {
    fn what(&self) -> String {
        format!("layer '{}' ({})", self.name, self.class)
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.config.get(key).filter(|v| !v.is_null())
    }

    fn refuse(&self, setting: &str) -> ConfigError {
        unsupported(format!(
            "{}: {setting} = {} is not supported",
            self.what(),
            self.get(setting).map_or("null".into(), |v| v.to_string())
        ))
    }

    fn usize(&self, key: &str) -> Result<usize, ConfigError> {
        self.get(key)
            .and_then(Value::as_u64)
            .map(|v| v as usize)
            .ok_or_else(|| malformed(format!("{}: '{key}' must be a whole number", self.what())))
    }

    /// A pair like `kernel_size`: `[a, b]` or one number for both.
    fn pair(&self, key: &str) -> Result<Option<[usize; 2]>, ConfigError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let bad = || {
            malformed(format!(
                "{}: '{key}' must be a number or two, got {v}",
                self.what()
            ))
        };
        if let Some(n) = v.as_u64() {
            return Ok(Some([n as usize, n as usize]));
        }
        match v
            .as_array()
            .map(|a| a.iter().map(Value::as_u64).collect::<Vec<_>>())
        {
            Some(a) if a.len() == 2 && a.iter().all(Option::is_some) => {
                Ok(Some([a[0].unwrap() as usize, a[1].unwrap() as usize]))
            }
            _ => Err(bad()),
        }
    }

    /// A setting that must be absent, null or one of `allowed`.
    fn only(&self, key: &str, allowed: &[Value]) -> Result<(), ConfigError> {
        match self.get(key) {
            None => Ok(()),
            Some(v) if allowed.contains(v) => Ok(()),
            Some(_) => Err(self.refuse(key)),
        }
    }

    fn no_extras(&self, keys: &[&str]) -> Result<(), ConfigError> {
        keys.iter().try_for_each(|k| self.only(k, &[]))
    }

    fn padding(&self) -> Result<Padding, ConfigError> {
        match self.get("padding").and_then(Value::as_str) {
            None | Some("valid") => Ok(Padding::Valid),
            Some("same") => Ok(Padding::Same),
            Some(_) => Err(self.refuse("padding")),
        }
    }

    fn activation(&self) -> Result<Activation, ConfigError> {
        let Some(v) = self.get("activation") else {
            return Ok(Activation::Linear);
        };
        // Keras 3 writes built-in activations as strings; older files or custom setups may write
        // `{"class_name": "function", "config": "relu"}` or `{"class_name": "ReLU", …}`.
        let name = match v {
            Value::String(s) => Some(s.as_str()),
            Value::Object(o) => o
                .get("config")
                .and_then(Value::as_str)
                .or_else(|| o.get("class_name").and_then(Value::as_str)),
            _ => None,
        };
        match name.map(str::to_ascii_lowercase).as_deref() {
            Some("linear") => Ok(Activation::Linear),
            Some("relu") => Ok(Activation::Relu),
            Some("softmax") => Ok(Activation::Softmax),
            _ => Err(unsupported(format!(
                "{}: activation {v} is not supported (relu, softmax and linear are)",
                self.what()
            ))),
        }
    }

    fn channels_last(&self) -> Result<(), ConfigError> {
        self.only("data_format", &[json!("channels_last")])
    }

    fn float32(&self) -> Result<(), ConfigError> {
        let name = match self.get("dtype") {
            None => return Ok(()),
            Some(Value::String(s)) => Some(s.as_str()),
            Some(Value::Object(o)) => o
                .get("config")
                .and_then(|c| c.get("name"))
                .and_then(Value::as_str),
            Some(_) => None,
        };
        if name == Some("float32") {
            Ok(())
        } else {
            Err(self.refuse("dtype"))
        }
    }

    fn no_regularizers(&self) -> Result<(), ConfigError> {
        self.no_extras(&[
            "kernel_regularizer",
            "bias_regularizer",
            "activity_regularizer",
            "kernel_constraint",
            "bias_constraint",
            "quantization_config",
            "lora_rank",
        ])
    }
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
        let entry = Entry {
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
        let layer = match class {
            "InputLayer" => {
                if config.get("sparse").and_then(Value::as_bool) == Some(true) {
                    return Err(entry.refuse("sparse"));
                }
                continue;
            }
            "Conv2D" | "Convolution2D" => {
                entry.float32()?;
                entry.channels_last()?;
                entry.no_regularizers()?;
                entry.only("strides", &[json!([1, 1]), json!(1)])?;
                entry.only("dilation_rate", &[json!([1, 1]), json!(1)])?;
                entry.only("groups", &[json!(1)])?;
                entry.only("use_bias", &[json!(true)])?;
                let filters = entry.usize("filters")?;
                let kernel_size = entry
                    .pair("kernel_size")?
                    .ok_or_else(|| malformed(format!("{}: no 'kernel_size'", entry.what())))?;
                Layer::Conv2D {
                    filters,
                    kernel_size,
                    padding: entry.padding()?,
                    activation: entry.activation()?,
                }
            }
            "Activation" => {
                entry.float32()?;
                Layer::Activation {
                    activation: entry.activation()?,
                }
            }
            "MaxPooling2D" | "MaxPool2D" => {
                entry.float32()?;
                entry.channels_last()?;
                let pool_size = entry.pair("pool_size")?.unwrap_or([2, 2]);
                Layer::MaxPooling2D {
                    pool_size,
                    strides: entry.pair("strides")?.unwrap_or(pool_size),
                    padding: entry.padding()?,
                }
            }
            "Dropout" => {
                entry.float32()?;
                entry.no_extras(&["noise_shape"])?;
                let rate = entry
                    .get("rate")
                    .and_then(Value::as_f64)
                    .ok_or_else(|| malformed(format!("{}: no 'rate'", entry.what())))?;
                Layer::Dropout { rate: rate as f32 }
            }
            "Flatten" => {
                entry.float32()?;
                entry.channels_last()?;
                Layer::Flatten
            }
            "Dense" => {
                entry.float32()?;
                entry.no_regularizers()?;
                entry.only("use_bias", &[json!(true)])?;
                Layer::Dense {
                    units: entry.usize("units")?,
                    activation: entry.activation()?,
                }
            }
            other => {
                return Err(unsupported(format!(
                    "{}: the layer {other} is not supported",
                    entry.what()
                )));
            }
        };
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

#[cfg(test)]
mod tests {
    use super::*;

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
            Layer::Conv2D {
                activation: Activation::Relu,
                padding: Padding::Same,
                ..
            }
        ));
    }
}
