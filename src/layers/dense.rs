//! Dense: y[batch, out] = x[batch, in] * kernel[in, out] + bias[out], then its activation.
//! Kernel in Keras' [in, out] order (glorot_uniform), bias zeros; the input must be flat.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::keras::with_kernel_and_bias;
use super::{
    Activation, CpuStep, Fusion, GpuOp, GpuStep, Init, KerasEntry, Layer, LayerKind, LossTensors,
    Lowering, ParamSpec,
};
use crate::gpu::{Dispatch, Tensor};
use crate::keras::ConfigError;
use crate::kernels::softmax_cross_entropy::dense as dense_loss;
use crate::model::Shape;
use crate::shape::MatmulShape;
use crate::{kernels, reference};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dense {
    pub units: usize,
    pub activation: Activation,
}

impl Dense {
    pub(super) fn from_keras(e: &KerasEntry) -> Result<Layer, ConfigError> {
        e.float32()?;
        e.no_regularizers()?;
        e.only("use_bias", &[json!(true)])?;
        Ok(Layer::Dense(Dense {
            units: e.usize("units")?,
            activation: e.activation()?,
        }))
    }
}

impl LayerKind for Dense {
    fn class_name(&self) -> &'static str {
        "Dense"
    }

    fn base_name(&self) -> &'static str {
        "dense"
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, String> {
        match input {
            Shape::Flat(_) if self.units > 0 => Ok(Shape::Flat(self.units)),
            Shape::Flat(_) => Err("units must be positive".into()),
            // Keras would apply Dense to the last axis of an image; our kernels take a flat input.
            Shape::Image { .. } => Err(format!(
                "Dense needs a flat input; add a Flatten before it (got {input})"
            )),
        }
    }

    fn params(&self, input: &Shape) -> Vec<ParamSpec> {
        vec![
            ParamSpec::new("kernel", vec![input.len(), self.units], Init::GlorotUniform),
            ParamSpec::new("bias", vec![self.units], Init::Constant(0.0)),
        ]
    }

    fn activation(&self) -> Activation {
        self.activation
    }

    fn keras_config(&self) -> Value {
        with_kernel_and_bias(json!({
            "units": self.units,
            "activation": self.activation.keras_name(),
            "quantization_config": null
        }))
    }

    fn keras_builds(&self) -> bool {
        true
    }

    fn lower(&self, l: &Lowering) -> Vec<Box<dyn GpuOp>> {
        let dense = DenseOp {
            inp: l.input.len(),
            units: self.units,
            w: l.params[0].clone(),
            b: l.params[1].clone(),
            dw: l.grads[0].clone(),
            db: l.grads[1].clone(),
            bias_scratch: l.gpu.zeros(
                "bias scratch",
                kernels::column_sum::column_sum_scratch(l.max_batch, self.units).max(1),
            ),
            loss_rows: (self.units <= dense_loss::MAX_UNITS).then(|| {
                l.gpu
                    .zeros("loss rows", l.max_batch * dense_loss::ROW_WORDS)
            }),
            loss: false,
        };
        let mut ops: Vec<Box<dyn GpuOp>> = vec![Box::new(dense)];
        ops.extend(self.activation.lower());
        ops
    }

    fn cpu_forward(&self, s: &CpuStep, input: &Shape, x: &[f64], p: &[&[f64]]) -> Vec<f64> {
        let z = reference::matmul::dense_forward(x, p[0], p[1], s.batch, input.len(), self.units);
        self.activation.cpu_forward(z)
    }

    fn cpu_backward(
        &self,
        s: &CpuStep,
        input: &Shape,
        x: &[f64],
        dy: &[f64],
        p: &[&[f64]],
    ) -> (Vec<f64>, Vec<Vec<f64>>) {
        let (inp, units) = (input.len(), self.units);
        let z = reference::matmul::dense_forward(x, p[0], p[1], s.batch, inp, units);
        let dz = self.activation.cpu_backward(&z, dy.to_vec());
        let (dx, dw, db) = reference::matmul::dense_backward(x, p[0], &dz, s.batch, inp, units);
        (dx, vec![dw, db])
    }
}

/// The matrix product with its bias, before the activation. It takes no ReLU into its epilogue: on
/// llvmpipe that made the register-tiled forward 2.5x slower (docs/PERFORMANCE.md, 2026-12-02). As
/// the model's last op, with at most `dense_loss::MAX_UNITS` units, it takes the loss in
/// (`Fusion::Loss`): two dispatches per training step for the product, the loss and the gradients.
struct DenseOp {
    inp: usize,
    units: usize,
    w: Tensor,
    b: Tensor,
    dw: Tensor,
    db: Tensor,
    /// The bias gradient's first pass over tall batches (`column_sum`).
    bias_scratch: Tensor,
    /// Each row's loss and flags, between the fused loss kernels; `None` for layers too wide for them.
    loss_rows: Option<Tensor>,
    /// `Fusion::Loss` taken.
    loss: bool,
}

impl DenseOp {
    fn loss_rows(&self, batch: usize) -> Tensor {
        self.loss_rows
            .as_ref()
            .expect("Fusion::Loss is accepted only with its scratch")
            .slice(0, batch * dense_loss::ROW_WORDS)
    }
}

impl GpuOp for DenseOp {
    fn accepts(&self, fusion: Fusion) -> bool {
        fusion == Fusion::Loss && self.loss_rows.is_some()
    }

    fn fuse(&mut self, fusion: Fusion) {
        assert!(self.accepts(fusion), "{fusion:?}");
        self.loss = true;
    }

    fn forward_loss(
        &self,
        s: &GpuStep,
        x: &Tensor,
        y: &Tensor,
        loss: &LossTensors,
    ) -> Vec<Dispatch> {
        assert!(self.loss, "forward_loss before Fusion::Loss");
        let rows = self.loss_rows(s.batch);
        let t = dense_loss::Forward {
            x,
            w: &self.w,
            b: &self.b,
            labels: loss.labels,
            logits: y,
            dlogits: loss.dlogits,
            rows: &rows,
            dx: loss.dx,
        };
        let mut out = vec![dense_loss::dense_loss_forward(
            s.gpu, &t, s.batch, self.inp, self.units,
        )];
        if !loss.train {
            out.push(dense_loss::dense_loss_metrics(
                s.gpu,
                &rows,
                loss.metrics,
                s.step_state,
                s.batch,
                self.units,
            ));
        }
        out
    }

    fn backward_loss(&self, s: &GpuStep, x: &Tensor, loss: &LossTensors) -> Vec<Dispatch> {
        assert!(self.loss, "backward_loss before Fusion::Loss");
        vec![dense_loss::dense_loss_backward(
            s.gpu,
            x,
            loss.dlogits,
            &self.loss_rows(s.batch),
            &self.dw,
            &self.db,
            loss.metrics,
            s.step_state,
            s.batch,
            self.inp,
            self.units,
        )]
    }

    fn forward(&self, s: &GpuStep, x: &Tensor, y: &Tensor) -> Vec<Dispatch> {
        kernels::matmul::matmul(
            s.gpu,
            x,
            &self.w,
            Some(&self.b),
            y,
            MatmulShape::new(s.batch, self.units, self.inp),
        )
    }

    /// dw = xᵀ dy, db = column sums of dy, dx = dy wᵀ.
    fn backward(&self, s: &GpuStep, x: &Tensor, dy: &Tensor, dx: Option<&Tensor>) -> Vec<Dispatch> {
        let (batch, inp, units) = (s.batch, self.inp, self.units);
        let mut out = kernels::matmul::matmul(
            s.gpu,
            x,
            dy,
            None,
            &self.dw,
            MatmulShape {
                trans_a: true,
                ..MatmulShape::new(inp, units, batch)
            },
        );
        out.extend(kernels::column_sum::column_sum(
            s.gpu,
            dy,
            &self.bias_scratch,
            &self.db,
            batch,
            units,
        ));
        if let Some(dx) = dx {
            out.extend(kernels::matmul::matmul(
                s.gpu,
                dy,
                &self.w,
                None,
                dx,
                MatmulShape {
                    trans_b: true,
                    ..MatmulShape::new(batch, inp, units)
                },
            ));
        }
        out
    }
}
