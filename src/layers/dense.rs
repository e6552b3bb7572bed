//! Dense: y[batch, out] = x[batch, in] * kernel[in, out] + bias[out], then its activation.
//! Kernel in Keras' [in, out] order, bias [out] (none when `use_bias` is false), each drawn by its
//! Keras initialiser (by default glorot_uniform and zeros); the input must be flat.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::kernel_bias::{KernelBias, kernel_bias_setters};
use super::{
    Activation, CpuStep, DropoutMask, Fusion, GpuOp, GpuStep, KerasEntry, Layer, LayerKind,
    LossTensors, Lowering, ParamSpec,
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
    /// `use_bias` and the initialisers, beside the settings above in `model.json`.
    #[serde(flatten)]
    pub kernel_bias: KernelBias,
}

/// Keras' constructor: `Dense::new(512)` is `Dense(512)`, Keras' defaults for the rest (a bias,
/// linear, glorot_uniform and zeros), each changed by the setter of its name.
impl Dense {
    pub fn new(units: usize) -> Dense {
        Dense {
            units,
            activation: Activation::Linear,
            kernel_bias: KernelBias::default(),
        }
    }

    pub fn activation(self, activation: Activation) -> Dense {
        Dense { activation, ..self }
    }
}

kernel_bias_setters!(Dense);

impl Dense {
    pub(super) fn from_keras(e: &KerasEntry) -> Result<Layer, ConfigError> {
        e.float32()?;
        e.no_regularizers()?;
        Ok(Layer::Dense(Dense {
            units: e.usize("units")?,
            activation: e.activation()?,
            kernel_bias: KernelBias::from_keras(e)?,
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
        self.kernel_bias.check()?;
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
        self.kernel_bias
            .params(vec![input.len(), self.units], self.units)
    }

    fn activation(&self) -> Activation {
        self.activation
    }

    fn keras_config(&self) -> Value {
        self.kernel_bias.keras_config(json!({
            "units": self.units,
            "activation": self.activation.keras_name(),
            "quantization_config": null
        }))
    }

    fn keras_builds(&self) -> bool {
        true
    }

    /// No column-sum scratch: the network places a layer's gradients in one buffer, kernel before
    /// bias, so the dW product writes the bias gradient too (`DenseOp::dw_db`). Only gradients placed
    /// otherwise (not by `Network`) make `lower` allocate `column_sum`'s scratch.
    fn scratch_words(&self, _input: &Shape, max_batch: usize) -> Vec<(&'static str, usize)> {
        if self.units <= dense_loss::MAX_UNITS && self.kernel_bias.use_bias {
            vec![("loss rows", max_batch * dense_loss::ROW_WORDS)]
        } else {
            Vec::new()
        }
    }

    fn lower(&self, l: &Lowering) -> Vec<Box<dyn GpuOp>> {
        let (dw, db) = (&l.grads[0], l.grads.get(1));
        let dw_db = db.and_then(|db| dw.span_to(db));
        let dense = DenseOp {
            inp: l.input.len(),
            units: self.units,
            w: l.params[0].clone(),
            b: l.params.get(1).cloned(),
            dw: dw.clone(),
            db: db.cloned(),
            bias_scratch: (db.is_some() && dw_db.is_none()).then(|| {
                l.gpu.zeros(
                    "bias scratch",
                    kernels::column_sum::column_sum_scratch(l.max_batch, self.units),
                )
            }),
            dw_db,
            loss_rows: (self.units <= dense_loss::MAX_UNITS
                && self.kernel_bias.use_bias
                && l.gpu.loop_limit().is_none_or(|limit| {
                    dense_loss::loop_steps(l.max_batch, l.input.len(), self.units) <= limit
                }))
            .then(|| {
                l.gpu
                    .zeros("loss rows", l.max_batch * dense_loss::ROW_WORDS)
            }),
            loss: false,
            dropout_before: None,
        };
        self.activation.lower_after(Box::new(dense))
    }

    fn cpu_forward(&self, s: &CpuStep, input: &Shape, x: &[f64], p: &[&[f64]]) -> Vec<f64> {
        let z = reference::matmul::matmul(
            x,
            p[0],
            p.get(1).copied(),
            MatmulShape::new(s.batch, self.units, input.len()),
        );
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
        let z = reference::matmul::matmul(
            x,
            p[0],
            p.get(1).copied(),
            MatmulShape::new(s.batch, units, inp),
        );
        let dz = self.activation.cpu_backward(&z, dy.to_vec());
        let (dx, dw, db) = reference::matmul::dense_backward(x, p[0], &dz, s.batch, inp, units);
        (dx, self.kernel_bias.grads(dw, || db))
    }
}

/// The matrix product with its bias (when it has one), before the activation. It takes no ReLU into its epilogue: on
/// llvmpipe that made the register-tiled forward 2.5x slower (docs/PERFORMANCE.md, 2026-12-02). As
/// the model's last op, with at most `dense_loss::MAX_UNITS` units (and loops within the adapter's
/// `Gpu::loop_limit`: `dense_loss::loop_steps`), it takes the loss in (`Fusion::Loss`): two dispatches per training step for the product, the loss and the gradients;
/// then it also takes in the Dropout before it (`Fusion::DropoutBefore`).
struct DenseOp {
    inp: usize,
    units: usize,
    w: Tensor,
    b: Option<Tensor>,
    dw: Tensor,
    db: Option<Tensor>,
    /// One view from dW to the end of db, and db's first word in it (`Tensor::span_to`): the dW
    /// product then writes db as the column sums of dy. `None` without a bias, or where the two are
    /// not in one buffer in that order.
    dw_db: Option<(Tensor, usize)>,
    /// Where there is a bias but no `dw_db`: `column_sum`'s first pass over tall batches.
    bias_scratch: Option<Tensor>,
    /// Each row's loss and flags, between the fused loss kernels; `None` for layers too wide for them
    /// or without a bias.
    loss_rows: Option<Tensor>,
    /// `Fusion::Loss` taken.
    loss: bool,
    /// `Fusion::DropoutBefore` taken (after `Fusion::Loss`): x is the Dropout's input.
    dropout_before: Option<DropoutMask>,
}

impl DenseOp {
    fn loss_rows(&self, batch: usize) -> Tensor {
        self.loss_rows
            .as_ref()
            .expect("Fusion::Loss is accepted only with its scratch")
            .slice(0, batch * dense_loss::ROW_WORDS)
    }

    /// What the fused loss kernels apply to x where they load it: the Dropout taken in (its mask
    /// when training) and the ReLU it took in.
    fn loss_input(&self, s: &GpuStep, train: bool) -> dense_loss::Input {
        self.dropout_before
            .map_or_else(dense_loss::Input::default, |d| dense_loss::Input {
                relu: d.relu_input,
                dropout: train.then(|| d.mask(s)),
                relu_mask: d.relu_mask,
            })
    }
}

impl GpuOp for DenseOp {
    /// The loss, when it has the kernels' scratch; then the Dropout before it.
    fn accepts(&self, fusion: Fusion) -> bool {
        match fusion {
            Fusion::Loss => self.loss_rows.is_some(),
            Fusion::DropoutBefore(_) => self.loss && self.dropout_before.is_none(),
            _ => false,
        }
    }

    fn fuse(&mut self, fusion: Fusion) {
        assert!(self.accepts(fusion), "{fusion:?}");
        match fusion {
            Fusion::DropoutBefore(d) => self.dropout_before = Some(d),
            _ => self.loss = true,
        }
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
            input: self.loss_input(s, loss.train),
            step_state: s.step_state,
            w: &self.w,
            b: self
                .b
                .as_ref()
                .expect("Fusion::Loss is accepted only with a bias"),
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
            &self.loss_input(s, true),
            loss.dlogits,
            &self.loss_rows(s.batch),
            &self.dw,
            self.db
                .as_ref()
                .expect("Fusion::Loss is accepted only with a bias"),
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
            self.b.as_ref(),
            y,
            MatmulShape::new(s.batch, self.units, self.inp),
        )
    }

    /// dw = xᵀ dy and db = the column sums of dy (in one product where `dw_db` allows), dx = dy wᵀ.
    fn backward(&self, s: &GpuStep, x: &Tensor, dy: &Tensor, dx: Option<&Tensor>) -> Vec<Dispatch> {
        let (batch, inp, units) = (s.batch, self.inp, self.units);
        let dw_shape = MatmulShape {
            trans_a: true,
            ..MatmulShape::new(inp, units, batch)
        };
        let mut out = match (&self.dw_db, &self.db) {
            (Some((span, at)), _) => {
                kernels::matmul::matmul_with_sums(s.gpu, x, dy, span, *at, dw_shape)
            }
            (None, db) => {
                let mut out = kernels::matmul::matmul(s.gpu, x, dy, None, &self.dw, dw_shape);
                if let Some(db) = db {
                    out.extend(kernels::column_sum::column_sum(
                        s.gpu,
                        dy,
                        self.bias_scratch.as_ref().expect("allocated without dw_db"),
                        db,
                        batch,
                        units,
                    ));
                }
                out
            }
        };
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
