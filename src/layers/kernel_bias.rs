//! What Conv2D and Dense share: a kernel, a bias unless `use_bias` is false, and the Keras
//! initialisers that draw them; their settings in `model.json` and Keras' config, and their tensors.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Init, KerasEntry, ParamSpec};
use crate::keras::ConfigError;

/// The kernel and bias settings, stored among the layer's own in `model.json` (`serde(flatten)`).
/// Each is written only when it is not Keras' default, so files from before it read (and save
/// again) unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct KernelBias {
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub use_bias: bool,
    #[serde(
        default = "Init::kernel_default",
        skip_serializing_if = "Init::is_kernel_default"
    )]
    pub kernel_initializer: Init,
    #[serde(
        default = "Init::bias_default",
        skip_serializing_if = "Init::is_bias_default"
    )]
    pub bias_initializer: Init,
}

fn yes() -> bool {
    true
}

fn is_yes(b: &bool) -> bool {
    *b
}

/// Keras' defaults: a bias, glorot_uniform and zeros.
impl Default for KernelBias {
    fn default() -> KernelBias {
        KernelBias {
            use_bias: true,
            kernel_initializer: Init::kernel_default(),
            bias_initializer: Init::bias_default(),
        }
    }
}

impl KernelBias {
    pub(super) fn from_keras(e: &KerasEntry) -> Result<KernelBias, ConfigError> {
        Ok(KernelBias {
            use_bias: e.use_bias()?,
            kernel_initializer: e.initializer("kernel_initializer", Init::kernel_default())?,
            bias_initializer: e.initializer("bias_initializer", Init::bias_default())?,
        })
    }

    /// Why an initialiser cannot draw, if one cannot.
    pub(super) fn check(&self) -> Result<(), String> {
        self.kernel_initializer.check()?;
        self.bias_initializer.check()
    }

    /// The layer's tensors: the kernel of shape `kernel`, then the bias of `units` if it has one.
    pub(super) fn params(&self, kernel: Vec<usize>, units: usize) -> Vec<ParamSpec> {
        let mut params = vec![ParamSpec::new("kernel", kernel, self.kernel_initializer)];
        if self.use_bias {
            params.push(ParamSpec::new("bias", vec![units], self.bias_initializer));
        }
        params
    }

    /// The CPU twin's gradients in `params`' order: `dw`, then `db()` if there is a bias.
    pub(super) fn grads(&self, dw: Vec<f64>, db: impl FnOnce() -> Vec<f64>) -> Vec<Vec<f64>> {
        let mut grads = vec![dw];
        if self.use_bias {
            grads.push(db());
        }
        grads
    }

    /// `settings` with what Keras 3 writes for a layer with a kernel and a bias: `use_bias`, the
    /// initialisers (the bias's even without a bias, as Keras does), no regularizers or constraints.
    pub(super) fn keras_config(&self, mut settings: Value) -> Value {
        let map = settings.as_object_mut().expect("settings are an object");
        map.insert("use_bias".into(), json!(self.use_bias));
        map.insert(
            "kernel_initializer".into(),
            self.kernel_initializer.to_keras(),
        );
        map.insert("bias_initializer".into(), self.bias_initializer.to_keras());
        for key in [
            "kernel_regularizer",
            "bias_regularizer",
            "kernel_constraint",
            "bias_constraint",
        ] {
            map.insert(key.into(), Value::Null);
        }
        settings
    }
}

/// The builder setters of a layer's `kernel_bias`, named after Keras' arguments:
/// `Dense::new(10).use_bias(false).kernel_initializer(Init::HeNormal)`.
macro_rules! kernel_bias_setters {
    ($layer:ident) => {
        impl $layer {
            pub fn use_bias(mut self, use_bias: bool) -> $layer {
                self.kernel_bias.use_bias = use_bias;
                self
            }

            pub fn kernel_initializer(
                mut self,
                kernel_initializer: $crate::layers::Init,
            ) -> $layer {
                self.kernel_bias.kernel_initializer = kernel_initializer;
                self
            }

            pub fn bias_initializer(mut self, bias_initializer: $crate::layers::Init) -> $layer {
                self.kernel_bias.bias_initializer = bias_initializer;
                self
            }
        }
    };
}
pub(super) use kernel_bias_setters;
