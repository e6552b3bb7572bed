//! Flatten: [h, w, c] to [h * w * c]. Activations are channels-last like Keras', so the flat vector is
//! the image's own memory: no dispatch, no copy, and Dense's kernel keeps Keras' row order.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{CpuStep, GpuOp, KerasEntry, Layer, LayerKind, Lowering};
use crate::keras::ConfigError;
use crate::model::Shape;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Flatten;

impl Flatten {
    pub(super) fn from_keras(e: &KerasEntry) -> Result<Layer, ConfigError> {
        e.float32()?;
        e.channels_last()?;
        Ok(Layer::Flatten(Flatten))
    }
}

impl LayerKind for Flatten {
    fn class_name(&self) -> &'static str {
        "Flatten"
    }

    fn base_name(&self) -> &'static str {
        "flatten"
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, String> {
        Ok(Shape::Flat(input.len()))
    }

    fn keras_config(&self) -> Value {
        json!({"data_format": "channels_last"})
    }

    fn keras_builds(&self) -> bool {
        true
    }

    fn lower(&self, _: &Lowering) -> Vec<Box<dyn GpuOp>> {
        Vec::new()
    }

    fn cpu_forward(&self, _: &CpuStep, _: &Shape, x: &[f64], _: &[&[f64]]) -> Vec<f64> {
        x.to_vec()
    }

    fn cpu_backward(
        &self,
        _: &CpuStep,
        _: &Shape,
        _: &[f64],
        dy: &[f64],
        _: &[&[f64]],
    ) -> (Vec<f64>, Vec<Vec<f64>>) {
        (dy.to_vec(), Vec::new())
    }
}
