//! MaxPooling2D: the maximum over each window, channels-last; the backward pass routes each output's
//! gradient to the input cell that won its window, remembered by the forward pass (argmax).

use serde_json::Value;

use super::{CpuStep, DropoutMask, Fusion, GpuOp, GpuStep, LayerKind, Lowering, pooling};
use crate::gpu::{Dispatch, Tensor};
use crate::model::Shape;
use crate::shape::Pool2dShape;
use crate::{kernels, reference};

// The settings struct, Keras' constructor and reader, as every windowed pooling has them.
pooling::windowed_layer!(MaxPooling2D);

impl LayerKind for MaxPooling2D {
    fn class_name(&self) -> &'static str {
        "MaxPooling2D"
    }

    fn base_name(&self) -> &'static str {
        "max_pooling2d"
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
        vec![Box::new(MaxPool::new(self.shape(l.input, 0), l))]
    }

    fn cpu_forward(&self, s: &CpuStep, input: &Shape, x: &[f64], _: &[&[f64]]) -> Vec<f64> {
        reference::maxpool2d::maxpool2d_forward(x, self.shape(input, s.batch)).0
    }

    fn cpu_backward(
        &self,
        s: &CpuStep,
        input: &Shape,
        x: &[f64],
        dy: &[f64],
        _: &[&[f64]],
    ) -> (Vec<f64>, Vec<Vec<f64>>) {
        (
            cpu_max_pool_backward(x, dy, self.shape(input, s.batch)),
            Vec::new(),
        )
    }
}

/// The twin's dx for windows `shape`: each output's gradient to the input cell that won its window.
pub(super) fn cpu_max_pool_backward(x: &[f64], dy: &[f64], shape: Pool2dShape) -> Vec<f64> {
    let (_, argmax) = reference::maxpool2d::maxpool2d_forward(x, shape);
    reference::maxpool2d::maxpool2d_backward(dy, &argmax, shape)
}

/// `s.n` is set per step; `argmax` holds, for each output, the flat index of its window's winner.
pub(super) struct MaxPool {
    s: Pool2dShape,
    argmax: Tensor,
    /// `Fusion::ReluBefore`: dx is masked by x > 0.
    relu_before: bool,
    /// `Fusion::DropoutAfter`: the training forward ends in the dropout, the backward begins with it.
    dropout_after: Option<DropoutMask>,
}

impl MaxPool {
    /// Max pooling over the windows of `s`, with its argmax buffer for `l`'s largest batch.
    pub(super) fn new(s: Pool2dShape, l: &Lowering) -> MaxPool {
        MaxPool {
            s,
            argmax: l.gpu.zeros("argmax", l.max_batch * l.output.len()),
            relu_before: false,
            dropout_after: None,
        }
    }

    fn forward_with(&self, s: &GpuStep, x: &Tensor, y: &Tensor, train: bool) -> Dispatch {
        let dropout = self.dropout_after.filter(|_| train).map(|d| d.mask(s));
        kernels::maxpool2d::maxpool2d_forward(
            s.gpu,
            x,
            y,
            &self.argmax.slice(0, y.len),
            dropout.as_ref().map(|m| (m, s.step_state)),
            Pool2dShape {
                n: s.batch,
                ..self.s
            },
        )
    }
}

impl GpuOp for MaxPool {
    /// A ReLU's mask before it, and a plain dropout after it (one that took no ReLU in: the pool's
    /// output is not a ReLU's).
    fn accepts(&self, fusion: Fusion) -> bool {
        match fusion {
            Fusion::ReluBefore => true,
            Fusion::DropoutAfter(d) => d.is_plain() && self.dropout_after.is_none(),
            _ => false,
        }
    }

    fn fuse(&mut self, fusion: Fusion) {
        assert!(self.accepts(fusion), "{fusion:?}");
        match fusion {
            Fusion::ReluBefore => self.relu_before = true,
            Fusion::DropoutAfter(d) => self.dropout_after = Some(d),
            _ => unreachable!(),
        }
    }

    fn forward(&self, s: &GpuStep, x: &Tensor, y: &Tensor) -> Vec<Dispatch> {
        vec![self.forward_with(s, x, y, true)]
    }

    /// The plain pool: the dropout it took in is the identity when evaluating.
    fn evaluate(&self, s: &GpuStep, x: &Tensor, y: &Tensor) -> Vec<Dispatch> {
        vec![self.forward_with(s, x, y, false)]
    }

    fn backward(&self, s: &GpuStep, x: &Tensor, dy: &Tensor, dx: Option<&Tensor>) -> Vec<Dispatch> {
        dx.map(|dx| {
            kernels::maxpool2d::maxpool2d_backward(
                s.gpu,
                dy,
                &self.argmax.slice(0, dy.len),
                self.relu_before.then_some(x),
                self.dropout_after
                    .map(|d| d.mask(s))
                    .as_ref()
                    .map(|m| (m, s.step_state)),
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
