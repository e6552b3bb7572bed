//! Activation: an element-wise function of the previous layer's output, and the activation Conv2D and
//! Dense apply after themselves (lowered here, so each function has one GPU op and one CPU twin).
//!
//! Linear is the identity and dispatches nothing, and the one softmax the model may hold is its last
//! layer's, fused into the loss kernel that reads the logits (the model's output stays the logits).
//! The others run `shaders/activation.wgsl`; only ReLU's op fuses into its neighbours.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::keras::malformed;
use super::{CpuStep, GpuOp, GpuStep, KerasEntry, Layer, LayerKind, Lowering};
use crate::gpu::{Dispatch, Tensor};
use crate::keras::ConfigError;
use crate::model::Shape;
use crate::shape::ActivationFn;
use crate::{kernels, reference};

/// Keras' built-in activations that we run, by the names `keras.activations` gives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Linear,
    Relu,
    Softmax,
    Sigmoid,
    Tanh,
    /// Keras' `elu`: alpha 1.
    Elu,
    /// Keras 3's `leaky_relu` function: negative slope 0.2.
    #[serde(rename = "leaky_relu")]
    LeakyRelu,
}

impl Activation {
    const ALL: [Activation; 7] = [
        Activation::Linear,
        Activation::Relu,
        Activation::Softmax,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Elu,
        Activation::LeakyRelu,
    ];

    /// Keras' name for it.
    pub fn keras_name(self) -> &'static str {
        match self {
            Activation::Linear => "linear",
            Activation::Relu => "relu",
            Activation::Softmax => "softmax",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Elu => "elu",
            Activation::LeakyRelu => "leaky_relu",
        }
    }

    /// The activation Keras calls `name`, if we run it.
    pub(super) fn from_keras_name(name: &str) -> Option<Activation> {
        Activation::ALL.into_iter().find(|a| a.keras_name() == name)
    }

    /// Every name `from_keras_name` takes, for error messages.
    pub(super) fn keras_names() -> String {
        Activation::ALL.map(Activation::keras_name).join(", ")
    }

    /// The elementwise function the kernels and twins run; `None` for the identity and for softmax
    /// (fused into the loss).
    fn elementwise(self) -> Option<ActivationFn> {
        match self {
            Activation::Linear | Activation::Softmax => None,
            Activation::Relu => Some(ActivationFn::Relu),
            Activation::Sigmoid => Some(ActivationFn::Sigmoid),
            Activation::Tanh => Some(ActivationFn::Tanh),
            Activation::Elu => Some(ActivationFn::Elu { alpha: 1.0 }),
            Activation::LeakyRelu => Some(ActivationFn::LeakyRelu { slope: 0.2 }),
        }
    }

    /// The GPU op applying it, if it dispatches anything.
    pub(super) fn lower(self) -> Option<Box<dyn GpuOp>> {
        self.elementwise()
            .map(|f| Box::new(ActivationOp { f }) as Box<dyn GpuOp>)
    }

    /// A layer's ops: `op`, then the op applying the activation to its output (if any).
    pub(super) fn lower_after(self, op: Box<dyn GpuOp>) -> Vec<Box<dyn GpuOp>> {
        std::iter::once(op).chain(self.lower()).collect()
    }

    /// y = f(z) on the CPU.
    pub(super) fn cpu_forward(self, z: Vec<f64>) -> Vec<f64> {
        match self.elementwise() {
            Some(f) => reference::activation::activation_forward(f, &z),
            None => z,
        }
    }

    /// dz from dy, given the activation's input z.
    pub(super) fn cpu_backward(self, z: &[f64], dy: Vec<f64>) -> Vec<f64> {
        match self.elementwise() {
            Some(f) => reference::activation::activation_backward(f, z, &dy),
            None => dy,
        }
    }
}

/// Keras' `Activation` layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActivationLayer {
    pub activation: Activation,
}

/// Keras' constructor: `ActivationLayer::new(Activation::Relu)` is `Activation("relu")`.
impl ActivationLayer {
    pub fn new(activation: Activation) -> ActivationLayer {
        ActivationLayer { activation }
    }
}

impl ActivationLayer {
    pub(super) fn from_keras(e: &KerasEntry) -> Result<Layer, ConfigError> {
        e.float32()?;
        Ok(Layer::Activation(ActivationLayer {
            activation: e.activation()?,
        }))
    }
}

impl LayerKind for ActivationLayer {
    fn class_name(&self) -> &'static str {
        "Activation"
    }

    fn base_name(&self) -> &'static str {
        "activation"
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, String> {
        Ok(input.clone())
    }

    fn activation(&self) -> Activation {
        self.activation
    }

    fn keras_config(&self) -> Value {
        json!({"activation": self.activation.keras_name()})
    }

    fn lower(&self, _: &Lowering) -> Vec<Box<dyn GpuOp>> {
        self.activation.lower().into_iter().collect()
    }

    fn cpu_forward(&self, _: &CpuStep, _: &Shape, x: &[f64], _: &[&[f64]]) -> Vec<f64> {
        self.activation.cpu_forward(x.to_vec())
    }

    fn cpu_backward(
        &self,
        _: &CpuStep,
        _: &Shape,
        x: &[f64],
        dy: &[f64],
        _: &[&[f64]],
    ) -> (Vec<f64>, Vec<Vec<f64>>) {
        (self.activation.cpu_backward(x, dy.to_vec()), Vec::new())
    }
}

/// Keras' `LeakyReLU` layer: x for x > 0, else negative_slope * x (the `leaky_relu` activation with
/// a slope of the layer's own; Keras' default 0.3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeakyReLU {
    pub negative_slope: f32,
}

impl LeakyReLU {
    pub(super) fn from_keras(e: &KerasEntry) -> Result<Layer, ConfigError> {
        e.float32()?;
        // Keras 3 writes negative_slope; Keras 2 called it alpha.
        let slope = match e.get("negative_slope").or_else(|| e.get("alpha")) {
            None => 0.3,
            Some(v) => v
                .as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .ok_or_else(|| {
                    malformed(format!(
                        "{}: negative_slope must be a number >= 0, got {v}",
                        e.what()
                    ))
                })?,
        };
        Ok(Layer::LeakyReLU(LeakyReLU {
            negative_slope: slope as f32,
        }))
    }

    fn function(&self) -> ActivationFn {
        ActivationFn::LeakyRelu {
            slope: self.negative_slope,
        }
    }
}

impl LayerKind for LeakyReLU {
    fn class_name(&self) -> &'static str {
        "LeakyReLU"
    }

    fn base_name(&self) -> &'static str {
        "leaky_re_lu"
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, String> {
        if !(self.negative_slope.is_finite() && self.negative_slope >= 0.0) {
            return Err(format!(
                "negative_slope must be a number >= 0, got {}",
                self.negative_slope
            ));
        }
        Ok(input.clone())
    }

    fn keras_config(&self) -> Value {
        // f32 → f64 through the shortest decimal, so 0.3 stays 0.3.
        let slope = self.negative_slope.to_string().parse::<f64>();
        json!({"negative_slope": slope.unwrap_or(self.negative_slope as f64)})
    }

    fn lower(&self, _: &Lowering) -> Vec<Box<dyn GpuOp>> {
        vec![Box::new(ActivationOp { f: self.function() })]
    }

    fn cpu_forward(&self, _: &CpuStep, _: &Shape, x: &[f64], _: &[&[f64]]) -> Vec<f64> {
        reference::activation::activation_forward(self.function(), x)
    }

    fn cpu_backward(
        &self,
        _: &CpuStep,
        _: &Shape,
        x: &[f64],
        dy: &[f64],
        _: &[&[f64]],
    ) -> (Vec<f64>, Vec<Vec<f64>>) {
        let dx = reference::activation::activation_backward(self.function(), x, dy);
        (dx, Vec::new())
    }
}

/// y = f(x); dx = f'(x) dy.
struct ActivationOp {
    f: ActivationFn,
}

impl GpuOp for ActivationOp {
    fn is_relu(&self) -> bool {
        self.f == ActivationFn::Relu
    }

    fn forward(&self, s: &GpuStep, x: &Tensor, y: &Tensor) -> Vec<Dispatch> {
        vec![kernels::activation::activation_forward(s.gpu, self.f, x, y)]
    }

    fn backward(&self, s: &GpuStep, x: &Tensor, dy: &Tensor, dx: Option<&Tensor>) -> Vec<Dispatch> {
        dx.map(|dx| kernels::activation::activation_backward(s.gpu, self.f, x, dy, dx))
            .into_iter()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every activation reads back from the name it writes, in `model.json` and in Keras' config,
    /// and Keras 2's object form and other case are read too.
    #[test]
    fn every_activation_reads_back_by_its_keras_name() {
        for a in Activation::ALL {
            assert_eq!(Activation::from_keras_name(a.keras_name()), Some(a));
            let json = serde_json::to_value(a).unwrap();
            assert_eq!(json, json!(a.keras_name()));
            assert_eq!(serde_json::from_value::<Activation>(json).unwrap(), a);
            let config =
                json!({"activation": {"class_name": "function", "config": a.keras_name()}});
            let entry = KerasEntry {
                class: "Activation",
                name: "activation".into(),
                config: config.as_object().unwrap(),
            };
            assert_eq!(entry.activation().unwrap(), a);
        }
        for refused in ["selu", "gelu", "relu6", "swish", "LeakyReLU"] {
            let config = json!({ "activation": refused });
            let entry = KerasEntry {
                class: "Dense",
                name: "dense".into(),
                config: config.as_object().unwrap(),
            };
            let err = entry.activation().unwrap_err();
            assert!(
                err.unsupported && err.message.contains(refused),
                "{}",
                err.message
            );
        }
    }
}
