//! GlobalMaxPooling2D: the maximum of each channel over the whole image, [h, w, c] to [c] (or
//! [1, 1, c] with `keepdims`, the same memory). It is max pooling with one window the size of the
//! input, so it runs the MaxPooling2D kernels and twin with that window, argmax included: the
//! backward pass routes each gradient to the FIRST maximum in row-major (row, column) order. Keras
//! (TensorFlow's and JAX's max reductions) splits it evenly among tied maxima instead; the two agree
//! whenever the maximum is unique, which is all but always in training.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::global_average_pooling2d::{global_output, global_settings, global_window};
use super::{CpuStep, Fusion, GpuOp, GpuStep, KerasEntry, Layer, LayerKind, Lowering};
use crate::gpu::{Dispatch, Tensor};
use crate::keras::ConfigError;
use crate::model::Shape;
use crate::shape::Pool2dShape;
use crate::{kernels, reference};

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
        json!({"data_format": "channels_last", "keepdims": self.keepdims})
    }

    fn lower(&self, l: &Lowering) -> Vec<Box<dyn GpuOp>> {
        vec![Box::new(GlobalMaxPool {
            s: global_window(self.class_name(), l.input, 0),
            argmax: l.gpu.zeros("argmax", l.max_batch * l.output.len()),
            relu_before: false,
        })]
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
        let (_, argmax) = reference::maxpool2d::maxpool2d_forward(x, shape);
        let dx = reference::maxpool2d::maxpool2d_backward(dy, &argmax, shape);
        (dx, Vec::new())
    }
}

/// `s.n` is set per step; `argmax` holds, for each (example, channel), the flat index of its maximum.
struct GlobalMaxPool {
    s: Pool2dShape,
    argmax: Tensor,
    /// `Fusion::ReluBefore`: dx is masked by x > 0.
    relu_before: bool,
}

impl GpuOp for GlobalMaxPool {
    fn accepts(&self, fusion: Fusion) -> bool {
        fusion == Fusion::ReluBefore
    }

    fn fuse(&mut self, fusion: Fusion) {
        assert_eq!(fusion, Fusion::ReluBefore);
        self.relu_before = true;
    }

    fn forward(&self, s: &GpuStep, x: &Tensor, y: &Tensor) -> Vec<Dispatch> {
        vec![kernels::maxpool2d::maxpool2d_forward(
            s.gpu,
            x,
            y,
            &self.argmax.slice(0, y.len),
            Pool2dShape {
                n: s.batch,
                ..self.s
            },
        )]
    }

    fn backward(&self, s: &GpuStep, x: &Tensor, dy: &Tensor, dx: Option<&Tensor>) -> Vec<Dispatch> {
        dx.map(|dx| {
            kernels::maxpool2d::maxpool2d_backward(
                s.gpu,
                dy,
                &self.argmax.slice(0, dy.len),
                self.relu_before.then_some(x),
                dx,
                Pool2dShape {
                    n: s.batch,
                    ..self.s
                },
            )
        })
        .into_iter()
        .collect()
    }
}
