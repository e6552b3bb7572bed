//! Activation: an element-wise function of the previous layer's output, and the activation Conv2D and
//! Dense apply after themselves (lowered here, so ReLU has one GPU op and one CPU twin).
//!
//! Only ReLU dispatches anything: linear is the identity, and the one softmax the model may hold is its
//! last layer's, fused into the loss kernel that reads the logits (the model's output stays the logits).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{CpuStep, GpuOp, GpuStep, KerasEntry, Layer, LayerKind, Lowering};
use crate::gpu::{Dispatch, Tensor};
use crate::keras::ConfigError;
use crate::model::Shape;
use crate::{kernels, reference};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Linear,
    Relu,
    Softmax,
}

impl Activation {
    /// Keras' name for it.
    pub fn keras_name(self) -> &'static str {
        match self {
            Activation::Linear => "linear",
            Activation::Relu => "relu",
            Activation::Softmax => "softmax",
        }
    }

    /// The GPU op applying it, if it dispatches anything.
    pub(super) fn lower(self) -> Option<Box<dyn GpuOp>> {
        (self == Activation::Relu).then(|| Box::new(Relu) as Box<dyn GpuOp>)
    }

    /// y = f(z) on the CPU.
    pub(super) fn cpu_forward(self, z: Vec<f64>) -> Vec<f64> {
        match self {
            Activation::Relu => reference::relu::relu_forward(&z),
            Activation::Linear | Activation::Softmax => z,
        }
    }

    /// dz from dy, given the activation's input z.
    pub(super) fn cpu_backward(self, z: &[f64], dy: Vec<f64>) -> Vec<f64> {
        match self {
            Activation::Relu => reference::relu::relu_backward(z, &dy),
            Activation::Linear | Activation::Softmax => dy,
        }
    }
}

/// Keras' `Activation` layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActivationLayer {
    pub activation: Activation,
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

/// y = max(x, 0); dx = dy where x > 0.
struct Relu;

impl GpuOp for Relu {
    fn is_relu(&self) -> bool {
        true
    }

    fn forward(&self, s: &GpuStep, x: &Tensor, y: &Tensor) -> Vec<Dispatch> {
        vec![kernels::relu::relu_forward(s.gpu, x, y)]
    }

    fn backward(&self, s: &GpuStep, x: &Tensor, dy: &Tensor, dx: Option<&Tensor>) -> Vec<Dispatch> {
        dx.map(|dx| kernels::relu::relu_backward(s.gpu, x, dy, dx))
            .into_iter()
            .collect()
    }
}
