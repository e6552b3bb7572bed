//! A `Sequential` model placed on the GPU: its buffers, allocated once, and the dispatch lists
//! ("programs") that one training or evaluation step replays.
//!
//! The model's layers are lowered to a short list of ops (a Dense layer with a ReLU becomes Dense then
//! ReLU; Flatten and evaluation-time Dropout become aliases, no dispatch). Every op writes a fresh
//! tensor, because WebGPU forbids binding one buffer as both input and output of a dispatch. The final
//! softmax is fused into the loss kernel, which reads the logits.

use crate::gpu::{Dispatch, Gpu, GpuError, Tensor};
use crate::kernels::gather::{DeviceImages, gather_batch};
use crate::kernels::{
    StepState, activation, conv2d, dropout, matmul, maxpool2d, optimizer, reduce,
    softmax_cross_entropy,
};
use crate::model::{Activation, Layer, ModelError, Sequential, Shape};
use crate::optimizer::Optimizer;
use crate::shape::{Conv2dShape, MatmulShape, Pool2dShape};

/// Index of a parameter tensor in `Sequential::param_tensors()`.
type ParamIndex = usize;

#[derive(Clone, Debug)]
enum Op {
    /// `s.n` is a placeholder; programs set the batch size.
    Conv {
        s: Conv2dShape,
        w: ParamIndex,
        b: ParamIndex,
    },
    Relu,
    Pool {
        s: Pool2dShape,
    },
    Dropout {
        rate: f32,
        salt: u32,
    },
    Flatten,
    Dense {
        inp: usize,
        out: usize,
        w: ParamIndex,
        b: ParamIndex,
    },
}

impl Op {
    /// Ops that pass their input through unchanged in training too: their output aliases their input.
    fn is_identity(&self) -> bool {
        match self {
            Op::Flatten => true,
            Op::Dropout { rate, .. } => *rate == 0.0,
            _ => false,
        }
    }
}

/// Whether a program trains (dropout on, gradients, update) or only evaluates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    Train,
    Eval,
}

/// Lowers layers to ops, with the per-example length of every op's output.
fn lower(model: &Sequential) -> Result<(Vec<Op>, Vec<usize>), ModelError> {
    model.validate()?;
    let shapes = model.output_shapes()?;
    let tensors = model.param_tensors()?;
    let find = |name: String| tensors.iter().position(|t| t.name == name).unwrap();
    let mut ops = Vec::new();
    let mut lens = Vec::new();
    let mut input = model.input();
    for (index, (l, shape)) in model.layers.iter().zip(&shapes).enumerate() {
        let mut push = |op: Op, len: usize| {
            ops.push(op);
            lens.push(len);
        };
        let activation = match (&l.layer, &input) {
            (Layer::Conv2D { activation, .. }, _) => {
                let s = l.layer.conv_shape(&input, 0).expect("validated model");
                let (w, b) = (
                    find(format!("{}/kernel", l.name)),
                    find(format!("{}/bias", l.name)),
                );
                push(Op::Conv { s, w, b }, shape.len());
                *activation
            }
            (Layer::MaxPooling2D { .. }, _) => {
                let s = l.layer.pool_shape(&input, 0).expect("validated model");
                push(Op::Pool { s }, shape.len());
                Activation::Linear
            }
            (Layer::Dropout { rate }, _) => {
                push(
                    Op::Dropout {
                        rate: *rate,
                        salt: index as u32,
                    },
                    shape.len(),
                );
                Activation::Linear
            }
            (Layer::Flatten, _) => {
                push(Op::Flatten, shape.len());
                Activation::Linear
            }
            (Layer::Dense { units, activation }, Shape::Flat(n)) => {
                let (w, b) = (
                    find(format!("{}/kernel", l.name)),
                    find(format!("{}/bias", l.name)),
                );
                push(
                    Op::Dense {
                        inp: *n,
                        out: *units,
                        w,
                        b,
                    },
                    shape.len(),
                );
                *activation
            }
            (Layer::Activation { activation }, _) => *activation,
            (layer, input) => unreachable!("{layer:?} on {input:?} passed validation"),
        };
        // Linear needs nothing, and the only softmax allowed is the last layer's, fused into the loss.
        if activation == Activation::Relu {
            ops.push(Op::Relu);
            lens.push(shape.len());
        }
        input = shape.clone();
    }
    Ok((ops, lens))
}

/// Per-dispatch buffers that a layer needs besides its activations.
#[derive(Default)]
struct OpBuffers {
    argmax: Option<Tensor>,
    weight_scratch: Option<Tensor>,
    bias_scratch: Option<Tensor>,
}

/// The model on the GPU, for a maximum batch size.
pub struct Network {
    pub model: Sequential,
    pub optimizer: Optimizer,
    pub seed: u64,
    pub max_batch: usize,
    pub classes: usize,
    ops: Vec<Op>,
    /// Per-example length of `values[i]`.
    lens: Vec<usize>,
    /// Flat parameters, gradients and optimizer state, laid out as `Sequential::param_tensors()`.
    pub params: Tensor,
    pub grads: Tensor,
    pub opt_state: Vec<Tensor>,
    param_views: Vec<Tensor>,
    grad_views: Vec<Tensor>,
    /// values[0] is the input batch; values[i + 1] the output of op i (Flatten aliases its input).
    values: Vec<Tensor>,
    /// Gradients with respect to values[i], for i >= 1.
    dvalues: Vec<Option<Tensor>>,
    buffers: Vec<OpBuffers>,
    pub labels: Tensor,
    pub batch_indices: Tensor,
    pub step_state: Tensor,
    /// Summed loss, correct count, sample count and first bad step of the current epoch's training.
    pub train_metrics: Tensor,
    /// The same for evaluation passes.
    pub eval_metrics: Tensor,
    pub probs: Tensor,
}

impl Network {
    /// Places `model` on the GPU with initial parameters `params` (as `Sequential::init_params`).
    pub fn new(
        gpu: &Gpu,
        model: &Sequential,
        optimizer: Optimizer,
        params: &[f32],
        max_batch: usize,
        seed: u64,
    ) -> Result<Network, ModelError> {
        let (ops, op_lens) = lower(model)?;
        let classes = model.classes()?;
        let tensors = model.param_tensors()?;
        assert_eq!(
            params.len(),
            model.param_words()?,
            "parameter vector of the wrong length"
        );
        let p = gpu.upload("params", params);
        let g = gpu.zeros("grads", params.len());
        let opt_state = (0..optimizer.state_buffers())
            .map(|_| gpu.zeros("optimizer state", params.len()))
            .collect();
        let param_views = tensors.iter().map(|t| p.slice(t.offset, t.len)).collect();
        let grad_views = tensors.iter().map(|t| g.slice(t.offset, t.len)).collect();

        let mut lens = vec![model.input().len()];
        lens.extend(&op_lens);
        let mut values = vec![gpu.zeros("input", max_batch * lens[0])];
        for (i, op) in ops.iter().enumerate() {
            let t = if op.is_identity() {
                values[i].clone()
            } else {
                gpu.zeros("activation", max_batch * lens[i + 1])
            };
            values.push(t);
        }
        // Gradients from the logits back; the input needs none. An identity op's input gradient is its
        // output gradient.
        let mut dvalues: Vec<Option<Tensor>> = vec![None; values.len()];
        for i in (1..values.len()).rev() {
            dvalues[i] = Some(match ops.get(i) {
                Some(op) if op.is_identity() => dvalues[i + 1].clone().unwrap(),
                _ => gpu.zeros("gradient", max_batch * lens[i]),
            });
        }
        let buffers = ops
            .iter()
            .enumerate()
            .map(|(i, op)| match op {
                Op::Pool { .. } => OpBuffers {
                    argmax: Some(gpu.zeros("argmax", max_batch * lens[i + 1])),
                    ..Default::default()
                },
                Op::Conv { s, .. } => {
                    let s = Conv2dShape { n: max_batch, ..*s };
                    OpBuffers {
                        weight_scratch: Some(gpu.zeros(
                            "conv weight scratch",
                            conv2d::conv2d_weight_scratch(s).max(1),
                        )),
                        bias_scratch: Some(
                            gpu.zeros("bias scratch", conv2d::conv2d_bias_scratch(s).max(1)),
                        ),
                        ..Default::default()
                    }
                }
                Op::Dense { out, .. } => OpBuffers {
                    bias_scratch: Some(gpu.zeros(
                        "bias scratch",
                        reduce::column_sum_scratch(max_batch, *out).max(1),
                    )),
                    ..Default::default()
                },
                _ => OpBuffers::default(),
            })
            .collect();
        Ok(Network {
            model: model.clone(),
            optimizer,
            seed,
            max_batch,
            classes,
            ops,
            lens,
            params: p,
            grads: g,
            opt_state,
            param_views,
            grad_views,
            values,
            dvalues,
            buffers,
            labels: gpu.zeros("labels", max_batch),
            batch_indices: gpu.zeros("batch indices", max_batch),
            step_state: gpu.zeros("step state", StepState::WORDS),
            train_metrics: gpu.zeros("train metrics", 4),
            eval_metrics: gpu.zeros("eval metrics", 4),
            probs: gpu.zeros("probabilities", max_batch * classes),
        })
    }

    /// The input batch tensor for `batch` examples (tests fill it directly).
    pub fn input(&self, batch: usize) -> Tensor {
        self.values[0].slice(0, batch * self.lens[0])
    }

    /// Which tensor holds each value in `mode`: `values[holders[i]]` holds value i. An op that passes
    /// its input through (Flatten, dropout of rate 0, any dropout when evaluating) holds nothing of
    /// its own.
    fn holders(&self, mode: Mode) -> Vec<usize> {
        let mut h = vec![0];
        for (i, op) in self.ops.iter().enumerate() {
            let passes =
                op.is_identity() || (mode == Mode::Eval && matches!(op, Op::Dropout { .. }));
            h.push(if passes { h[i] } else { i + 1 });
        }
        h
    }

    /// The logits of the last forward pass in `mode`.
    pub fn logits(&self, batch: usize, mode: Mode) -> Tensor {
        let i = self.holders(mode)[self.ops.len()];
        self.values[i].slice(0, batch * self.classes)
    }

    /// Gradient of the mean loss with respect to the logits, from the last training step.
    pub fn dlogits(&self, batch: usize) -> Tensor {
        self.dvalues
            .last()
            .unwrap()
            .clone()
            .unwrap()
            .slice(0, batch * self.classes)
    }

    /// The dispatches that gather a batch from `data` through `batch_indices`.
    pub fn gather(&self, gpu: &Gpu, data: &DeviceImages, batch: usize) -> Vec<Dispatch> {
        gather_batch(
            gpu,
            data,
            &self.batch_indices.slice(0, batch),
            &self.input(batch),
            &self.labels.slice(0, batch),
        )
    }

    /// One step on the batch already in `values[0]` and `labels`: forward, loss and metrics, and in
    /// `Mode::Train` the backward pass and the optimizer update.
    pub fn step(&self, gpu: &Gpu, batch: usize, mode: Mode) -> Vec<Dispatch> {
        assert!(
            batch >= 1 && batch <= self.max_batch,
            "batch {batch} outside 1..={}",
            self.max_batch
        );
        let train = mode == Mode::Train;
        let v = |i: usize| self.values[i].slice(0, batch * self.lens[i]);
        let dv = |i: usize| {
            self.dvalues[i]
                .as_ref()
                .unwrap()
                .slice(0, batch * self.lens[i])
        };
        let mut out = Vec::new();
        // Forward. Ops that pass values through (Flatten, evaluation-time dropout) dispatch nothing;
        // `holder` says which tensor holds each value.
        let holder = self.holders(mode);
        let mut inputs = Vec::with_capacity(self.ops.len());
        for (i, op) in self.ops.iter().enumerate() {
            let x = v(holder[i]);
            let y = v(i + 1);
            inputs.push(x.clone());
            if holder[i + 1] != i + 1 {
                continue;
            }
            match *op {
                Op::Conv { s, w, b } => out.push(conv2d::conv2d_forward(
                    gpu,
                    &x,
                    &self.param_views[w],
                    &self.param_views[b],
                    &y,
                    Conv2dShape { n: batch, ..s },
                )),
                Op::Relu => out.push(activation::relu_forward(gpu, &x, &y)),
                Op::Pool { s } => {
                    let argmax = self.buffers[i].argmax.as_ref().unwrap();
                    out.push(maxpool2d::maxpool2d_forward(
                        gpu,
                        &x,
                        &y,
                        &argmax.slice(0, y.len),
                        Pool2dShape { n: batch, ..s },
                    ))
                }
                Op::Dropout { rate, salt } => out.push(dropout::dropout_forward(
                    gpu,
                    &x,
                    &y,
                    &self.step_state,
                    self.seed,
                    salt,
                    rate,
                )),
                Op::Flatten => unreachable!("Flatten dispatches nothing"),
                Op::Dense {
                    inp,
                    out: units,
                    w,
                    b,
                } => out.extend(matmul::matmul(
                    gpu,
                    &x,
                    &self.param_views[w],
                    Some(&self.param_views[b]),
                    &y,
                    MatmulShape::new(batch, units, inp),
                )),
            }
        }
        let cur = v(holder[self.ops.len()]);
        let last = self.ops.len();
        let metrics = if train {
            &self.train_metrics
        } else {
            &self.eval_metrics
        };
        out.push(softmax_cross_entropy::softmax_cross_entropy(
            gpu,
            &cur,
            &self.labels.slice(0, batch),
            &dv(last),
            metrics,
            &self.step_state,
            batch,
            self.classes,
        ));
        if !train {
            return out;
        }
        // Backward, from the logits' gradient to the first op's parameters.
        for (i, op) in self.ops.iter().enumerate().rev() {
            let dy = dv(i + 1);
            let x = &inputs[i];
            let needs_dx = i > 0;
            match *op {
                Op::Conv { s, w, b } => {
                    let s = Conv2dShape { n: batch, ..s };
                    let bufs = &self.buffers[i];
                    out.extend(conv2d::conv2d_backward_weight(
                        gpu,
                        x,
                        &dy,
                        bufs.weight_scratch.as_ref().unwrap(),
                        &self.grad_views[w],
                        s,
                    ));
                    out.extend(conv2d::conv2d_backward_bias(
                        gpu,
                        &dy,
                        bufs.bias_scratch.as_ref().unwrap(),
                        &self.grad_views[b],
                        s,
                    ));
                    if needs_dx {
                        out.push(conv2d::conv2d_backward_input(
                            gpu,
                            &dy,
                            &self.param_views[w],
                            &dv(i),
                            s,
                        ));
                    }
                }
                Op::Relu if needs_dx => out.push(activation::relu_backward(gpu, x, &dy, &dv(i))),
                Op::Pool { s } if needs_dx => {
                    let argmax = self.buffers[i].argmax.as_ref().unwrap();
                    out.push(maxpool2d::maxpool2d_backward(
                        gpu,
                        &dy,
                        &argmax.slice(0, dy.len),
                        &dv(i),
                        Pool2dShape { n: batch, ..s },
                    ))
                }
                Op::Dropout { rate, salt } if needs_dx && rate > 0.0 => {
                    out.push(dropout::dropout_backward(
                        gpu,
                        &dy,
                        &dv(i),
                        &self.step_state,
                        self.seed,
                        salt,
                        rate,
                    ))
                }
                Op::Dense {
                    inp,
                    out: units,
                    w,
                    b,
                } => {
                    out.extend(matmul::matmul(
                        gpu,
                        x,
                        &dy,
                        None,
                        &self.grad_views[w],
                        MatmulShape {
                            trans_a: true,
                            ..MatmulShape::new(inp, units, batch)
                        },
                    ));
                    out.extend(reduce::column_sum(
                        gpu,
                        &dy,
                        self.buffers[i].bias_scratch.as_ref().unwrap(),
                        &self.grad_views[b],
                        batch,
                        units,
                    ));
                    if needs_dx {
                        out.extend(matmul::matmul(
                            gpu,
                            &dy,
                            &self.param_views[w],
                            None,
                            &dv(i),
                            MatmulShape {
                                trans_b: true,
                                ..MatmulShape::new(batch, inp, units)
                            },
                        ));
                    }
                }
                // Identity ops' gradients alias their outputs'; nothing flows below the first op.
                _ => {}
            }
        }
        let state: Vec<&Tensor> = self.opt_state.iter().collect();
        out.push(optimizer::update(
            gpu,
            &self.optimizer,
            &self.params,
            &self.grads,
            &state,
            &self.step_state,
        ));
        out
    }

    /// Forward pass then softmax into `probs`, for predictions.
    pub fn predict_step(&self, gpu: &Gpu, batch: usize) -> Vec<Dispatch> {
        let mut out = self.step(gpu, batch, Mode::Eval);
        out.push(softmax_cross_entropy::softmax(
            gpu,
            &self.logits(batch, Mode::Eval),
            &self.probs.slice(0, batch * self.classes),
            batch,
            self.classes,
        ));
        out
    }

    /// Writes the step state for `step` (queued before the next submission).
    pub fn set_step(&self, gpu: &Gpu, step: u32) {
        gpu.write(&self.step_state, &self.optimizer.step_state(step).words());
    }

    pub fn read_params(&self, gpu: &Gpu) -> Result<Vec<f32>, GpuError> {
        gpu.read_f32(&self.params)
    }

    pub fn read_grads(&self, gpu: &Gpu) -> Result<Vec<f32>, GpuError> {
        gpu.read_f32(&self.grads)
    }
}
