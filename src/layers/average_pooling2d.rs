//! AveragePooling2D: the mean over each window, channels-last. With 'same' padding a border window
//! divides by its in-bounds cells, as Keras does; the backward pass spreads each output's gradient
//! evenly over the cells its window averaged.

use serde_json::Value;

use super::{CpuStep, GpuOp, GpuStep, LayerKind, Lowering, pooling};
use crate::gpu::{Dispatch, Tensor};
use crate::model::Shape;
use crate::shape::Pool2dShape;
use crate::{kernels, reference};

// The settings struct, Keras' constructor and reader, as every windowed pooling has them.
pooling::windowed_layer!(AveragePooling2D);

impl LayerKind for AveragePooling2D {
    fn class_name(&self) -> &'static str {
        "AveragePooling2D"
    }

    fn base_name(&self) -> &'static str {
        "average_pooling2d"
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, String> {
        pooling::output_shape(self.class_name(), self.window(), input)
    }

    fn keras_config(&self) -> Value {
        pooling::keras_config(self.window())
    }

    fn loop_steps(&self, input: &Shape, max_batch: usize) -> usize {
        self.shape(input, max_batch).window_loop_steps()
    }

    fn lower(&self, l: &Lowering) -> Vec<Box<dyn GpuOp>> {
        vec![Box::new(AvgPool {
            s: self.shape(l.input, 0),
        })]
    }

    fn cpu_forward(&self, s: &CpuStep, input: &Shape, x: &[f64], _: &[&[f64]]) -> Vec<f64> {
        reference::avgpool2d::avgpool2d_forward(x, self.shape(input, s.batch))
    }

    fn cpu_backward(
        &self,
        s: &CpuStep,
        input: &Shape,
        _: &[f64],
        dy: &[f64],
        _: &[&[f64]],
    ) -> (Vec<f64>, Vec<Vec<f64>>) {
        let dx = reference::avgpool2d::avgpool2d_backward(dy, self.shape(input, s.batch));
        (dx, Vec::new())
    }
}

/// Average pooling on the GPU (also GlobalAveragePooling2D's op); `s.n` is set per step.
pub(super) struct AvgPool {
    pub(super) s: Pool2dShape,
}

impl GpuOp for AvgPool {
    fn forward(&self, s: &GpuStep, x: &Tensor, y: &Tensor) -> Vec<Dispatch> {
        vec![kernels::avgpool2d::avgpool2d_forward(
            s.gpu,
            x,
            y,
            Pool2dShape {
                n: s.batch,
                ..self.s
            },
        )]
    }

    fn backward(&self, s: &GpuStep, _: &Tensor, dy: &Tensor, dx: Option<&Tensor>) -> Vec<Dispatch> {
        dx.map(|dx| {
            kernels::avgpool2d::avgpool2d_backward(
                s.gpu,
                dy,
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
