//! What every layer's Keras config shares: reading one layer entry of `model.to_json()` (its settings,
//! checked against what we can run, with errors that name the layer) and the pieces Keras 3 writes
//! the same way for several layers.

use serde_json::{Map, Value, json};

use super::{Activation, Init};
use crate::keras::ConfigError;
use crate::shape::Padding;

pub(crate) fn malformed(message: impl Into<String>) -> ConfigError {
    ConfigError {
        unsupported: false,
        message: message.into(),
    }
}

pub(crate) fn unsupported(message: impl Into<String>) -> ConfigError {
    ConfigError {
        unsupported: true,
        message: message.into(),
    }
}

/// One layer's entry, with the helpers that read its settings and name it in errors.
pub struct KerasEntry<'a> {
    pub class: &'a str,
    pub name: String,
    pub config: &'a Map<String, Value>,
}

impl KerasEntry<'_> {
    pub fn what(&self) -> String {
        format!("layer '{}' ({})", self.name, self.class)
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.config.get(key).filter(|v| !v.is_null())
    }

    pub fn refuse(&self, setting: &str) -> ConfigError {
        unsupported(format!(
            "{}: {setting} = {} is not supported",
            self.what(),
            self.get(setting).map_or("null".into(), |v| v.to_string())
        ))
    }

    pub fn usize(&self, key: &str) -> Result<usize, ConfigError> {
        self.get(key)
            .and_then(Value::as_u64)
            .map(|v| v as usize)
            .ok_or_else(|| malformed(format!("{}: '{key}' must be a whole number", self.what())))
    }

    /// A pair like `kernel_size`: `[a, b]` or one number for both.
    pub fn pair(&self, key: &str) -> Result<Option<[usize; 2]>, ConfigError> {
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
    pub fn only(&self, key: &str, allowed: &[Value]) -> Result<(), ConfigError> {
        match self.get(key) {
            None => Ok(()),
            Some(v) if allowed.contains(v) => Ok(()),
            Some(_) => Err(self.refuse(key)),
        }
    }

    pub fn no_extras(&self, keys: &[&str]) -> Result<(), ConfigError> {
        keys.iter().try_for_each(|k| self.only(k, &[]))
    }

    pub fn padding(&self) -> Result<Padding, ConfigError> {
        match self.get("padding").and_then(Value::as_str) {
            None | Some("valid") => Ok(Padding::Valid),
            Some("same") => Ok(Padding::Same),
            Some(_) => Err(self.refuse("padding")),
        }
    }

    pub fn activation(&self) -> Result<Activation, ConfigError> {
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
        match name
            .map(str::to_ascii_lowercase)
            .and_then(|n| Activation::from_keras_name(&n))
        {
            Some(a) => Ok(a),
            None => Err(unsupported(format!(
                "{}: activation {v} is not supported ({} are)",
                self.what(),
                Activation::keras_names()
            ))),
        }
    }

    /// The initialiser a setting names (any form Keras writes), `default` when absent.
    pub fn initializer(&self, key: &str, default: Init) -> Result<Init, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => {
                Init::from_keras(v).map_err(|e| unsupported(format!("{}: {key}: {e}", self.what())))
            }
        }
    }

    /// `use_bias`: true when absent, as Keras' default.
    pub fn use_bias(&self) -> Result<bool, ConfigError> {
        match self.get("use_bias") {
            None => Ok(true),
            Some(v) => v.as_bool().ok_or_else(|| {
                malformed(format!("{}: 'use_bias' must be true or false", self.what()))
            }),
        }
    }

    pub fn channels_last(&self) -> Result<(), ConfigError> {
        self.only("data_format", &[json!("channels_last")])
    }

    pub fn float32(&self) -> Result<(), ConfigError> {
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

    pub fn no_regularizers(&self) -> Result<(), ConfigError> {
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

pub fn padding_name(p: Padding) -> &'static str {
    match p {
        Padding::Same => "same",
        Padding::Valid => "valid",
    }
}
