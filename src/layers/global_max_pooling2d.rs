//! GlobalMaxPooling2D: the maximum of each channel over the whole image, [h, w, c] to [c] (or
//! [1, 1, c] with `keepdims`, the same memory). It is max pooling with one window the size of the
//! input, so it runs the MaxPooling2D kernels and twin with that window, argmax included: the
//! backward pass routes each gradient to the FIRST maximum in row-major (row, column) order. Keras
//! (TensorFlow's and JAX's max reductions) splits it evenly among tied maxima instead; the two agree
//! whenever the maximum is unique, which is all but always in training.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::max_pooling2d::{MaxPool, cpu_max_pool_backward};
use super::pooling::{global_keras_config, global_output, global_settings, global_window};
use super::{CpuStep, GpuOp, KerasEntry, Layer, LayerKind, Lowering};
use crate::keras::ConfigError;
use crate::model::Shape;
use crate::reference;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GlobalMaxPooling2D {
    /// Keras' `keepdims`: the output is [1, 1, c] instead of [c].
    pub keepdims: bool,
}

impl GlobalMaxPooling2D {
    pub(super) fn from_keras(e: &KerasEntry) -> Result<Layer, ConfigError> {
        Ok(Layer::GlobalMaxPooling2D(GlobalMaxPooling2D {
            keepdims: global_settings(e)?,
        }))
    }
}

impl LayerKind for GlobalMaxPooling2D {
    fn class_name(&self) -> &'static str {
        "GlobalMaxPooling2D"
    }

    fn base_name(&self) -> &'static str {
        "global_max_pooling2d"
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, String> {
        global_output(self.class_name(), input, self.keepdims)
    }

    fn keras_config(&self) -> Value {
        global_keras_config(self.keepdims)
    }

    fn loop_steps(&self, input: &Shape, max_batch: usize) -> usize {
        global_window(self.class_name(), input, max_batch).window_loop_steps()
    }

    fn lower(&self, l: &Lowering) -> Vec<Box<dyn GpuOp>> {
        vec![Box::new(MaxPool::new(
            global_window(self.class_name(), l.input, 0),
            l,
        ))]
    }

    fn cpu_forward(&self, s: &CpuStep, input: &Shape, x: &[f64], _: &[&[f64]]) -> Vec<f64> {
        let shape = global_window(self.class_name(), input, s.batch);
        reference::maxpool2d::maxpool2d_forward(x, shape).0
    }

    fn cpu_backward(
        &self,
        s: &CpuStep,
        input: &Shape,
        x: &[f64],
        dy: &[f64],
        _: &[&[f64]],
    ) -> (Vec<f64>, Vec<Vec<f64>>) {
        let shape = global_window(self.class_name(), input, s.batch);
        (cpu_max_pool_backward(x, dy, shape), Vec::new())
    }
}
