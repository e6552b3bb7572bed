//! Dropout: while training, each element is kept with probability 1 - rate and scaled by
//! 1 / (1 - rate), as Keras does; when evaluating it is the identity. The mask is a hash of the run's
//! seed, the step and the layer's position (its salt), so the backward pass and the CPU twin redraw
//! the same mask instead of storing it.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::keras::malformed;
use super::{CpuStep, DropoutMask, Fusion, GpuOp, GpuStep, KerasEntry, Layer, LayerKind, Lowering};
use crate::gpu::{Dispatch, Tensor};
use crate::keras::ConfigError;
use crate::model::Shape;
use crate::shape::ActivationFn;
use crate::{kernels, reference};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dropout {
    pub rate: f32,
}

/// Keras' constructor: `Dropout::new(0.25)` is `Dropout(0.25)`.
impl Dropout {
    pub fn new(rate: f32) -> Dropout {
        Dropout { rate }
    }
}

impl Dropout {
    pub(super) fn from_keras(e: &KerasEntry) -> Result<Layer, ConfigError> {
        e.float32()?;
        e.no_extras(&["noise_shape"])?;
        let rate = e
            .get("rate")
            .and_then(Value::as_f64)
            .ok_or_else(|| malformed(format!("{}: no 'rate'", e.what())))?;
        Ok(Layer::Dropout(Dropout { rate: rate as f32 }))
    }

    /// Whether the mask applies (training with a positive rate); otherwise the layer is the identity.
    fn drops(&self, train: bool) -> bool {
        train && self.rate > 0.0
    }
}

impl LayerKind for Dropout {
    fn class_name(&self) -> &'static str {
        "Dropout"
    }

    fn base_name(&self) -> &'static str {
        "dropout"
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, String> {
        if !(0.0..1.0).contains(&self.rate) {
            return Err(format!("dropout rate must be in [0, 1), got {}", self.rate));
        }
        Ok(input.clone())
    }

    fn keras_config(&self) -> Value {
        json!({
            // f32 → f64 through the shortest decimal, so 0.25 stays 0.25 and 0.1 stays 0.1.
            "rate": self.rate.to_string().parse::<f64>().unwrap_or(self.rate as f64),
            "seed": null,
            "noise_shape": null
        })
    }

    /// Rate 0 is the identity: no op at all.
    fn lower(&self, l: &Lowering) -> Vec<Box<dyn GpuOp>> {
        if self.rate == 0.0 {
            return Vec::new();
        }
        vec![Box::new(DropoutOp {
            rate: self.rate,
            salt: l.index as u32,
            relu_before: false,
            relu_input: false,
        })]
    }

    fn cpu_forward(&self, s: &CpuStep, _: &Shape, x: &[f64], _: &[&[f64]]) -> Vec<f64> {
        if self.drops(s.train) {
            reference::dropout::dropout_forward(x, s.seed, s.step, s.index as u32, self.rate)
        } else {
            x.to_vec()
        }
    }

    fn cpu_backward(
        &self,
        s: &CpuStep,
        _: &Shape,
        _: &[f64],
        dy: &[f64],
        _: &[&[f64]],
    ) -> (Vec<f64>, Vec<Vec<f64>>) {
        let dx = if self.drops(s.train) {
            reference::dropout::dropout_backward(dy, s.seed, s.step, s.index as u32, self.rate)
        } else {
            dy.to_vec()
        };
        (dx, Vec::new())
    }
}

/// A positive `rate`; `salt` is the layer's position in the model.
struct DropoutOp {
    rate: f32,
    salt: u32,
    /// `Fusion::ReluBefore` or `Fusion::ReluInput`: dx is masked by x > 0.
    relu_before: bool,
    /// `Fusion::ReluInput`: the forward applies the ReLU to x first.
    relu_input: bool,
}

impl GpuOp for DropoutOp {
    fn dropout(&self) -> Option<DropoutMask> {
        Some(DropoutMask {
            rate: self.rate,
            salt: self.salt,
            relu_input: self.relu_input,
            relu_mask: self.relu_before,
        })
    }

    fn accepts(&self, fusion: Fusion) -> bool {
        matches!(fusion, Fusion::ReluBefore | Fusion::ReluInput)
    }

    fn fuse(&mut self, fusion: Fusion) {
        assert!(self.accepts(fusion), "{fusion:?}");
        self.relu_before = true;
        self.relu_input = fusion == Fusion::ReluInput;
    }

    /// The identity when evaluating, unless it took the ReLU before it in.
    fn evaluates_as_identity(&self) -> bool {
        !self.relu_input
    }

    fn forward(&self, s: &GpuStep, x: &Tensor, y: &Tensor) -> Vec<Dispatch> {
        let forward = if self.relu_input {
            kernels::dropout::dropout_forward_relu
        } else {
            kernels::dropout::dropout_forward
        };
        vec![forward(
            s.gpu,
            x,
            y,
            s.step_state,
            s.seed,
            self.salt,
            self.rate,
        )]
    }

    /// Only after `Fusion::ReluInput` (otherwise the op is skipped): the ReLU it took in.
    fn evaluate(&self, s: &GpuStep, x: &Tensor, y: &Tensor) -> Vec<Dispatch> {
        assert!(self.relu_input, "dropout is the identity when evaluating");
        vec![kernels::activation::activation_forward(
            s.gpu,
            ActivationFn::Relu,
            x,
            y,
        )]
    }

    fn backward(&self, s: &GpuStep, x: &Tensor, dy: &Tensor, dx: Option<&Tensor>) -> Vec<Dispatch> {
        dx.map(|dx| {
            kernels::dropout::dropout_backward(
                s.gpu,
                dy,
                self.relu_before.then_some(x),
                dx,
                s.step_state,
                s.seed,
                self.salt,
                self.rate,
            )
        })
        .into_iter()
        .collect()
    }
}
