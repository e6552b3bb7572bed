//! A `Sequential` model placed on the GPU: its buffers, allocated once, and the dispatch lists
//! ("programs") that one training or evaluation step replays.
//!
//! Each layer lowers itself to a short list of ops ([`crate::layers::LayerKind::lower`]): a Dense layer
//! with a ReLU becomes Dense then ReLU; Flatten, a linear activation and dropout of rate 0 become no
//! op at all. A ReLU op between an op that can end in it and an op that can mask its dx by it (Conv2D
//! before; Conv2D, MaxPooling2D or Dropout after), or before an op that can take it whole (Dropout),
//! is then fused away ([`fuse_relus`]), and so is each Dropout op whose neighbour can apply its mask
//! in passing (max pooling before it, the loss-fused last Dense after it: [`fuse_dropouts`]). Every
//! op writes a fresh tensor, because WebGPU forbids binding one buffer as both input and output of a
//! dispatch; an op that is the identity when evaluating (dropout) is skipped then. The final softmax
//! is fused into the loss kernel, which reads the logits; a last op that can take the loss in (a
//! narrow Dense, `Fusion::Loss`) computes it itself, with its gradients, in two dispatches.

use crate::data::augment::Augment;
use crate::gpu::{Dispatch, Gpu, GpuError, MAX_STEPS_PER_SUBMISSION, Tensor, WORD};
use crate::kernels::gather::{Augmentation, DeviceImages, gather_batch, gather_batch_augmented};
use crate::kernels::{StepState, optimizer, softmax_cross_entropy};
use crate::layers::{Fusion, GpuOp, GpuStep, LossTensors, Lowering};
use crate::model::{ModelError, Sequential};
use crate::optimizer::Optimizer;

/// Why a model could not be placed on the device.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Gpu(#[from] GpuError),
}

/// Checks, before anything is allocated, that each of the model's buffers fits one binding of this
/// adapter for batches of `max_batch`, so an impossible batch size is refused at once instead of
/// after gigabytes were allocated, or by wgpu's panic. The error names the largest buffer, the
/// limit, the estimate of the whole model's memory and the largest batch that would fit.
pub fn check_memory(
    gpu: &Gpu,
    model: &Sequential,
    optimizer: &Optimizer,
    max_batch: usize,
) -> Result<(), PlaceError> {
    let (limit, limit_name) = binding_limit(gpu);
    let bytes = |words: usize, batch: usize| {
        (words as u64)
            .checked_mul(batch as u64)
            .and_then(|w| w.checked_mul(WORD))
            .unwrap_or(u64::MAX)
    };
    // Per example: the input and each layer's output (values and their gradients). Reversed below
    // so that the first of equally large outputs is named.
    let mut per_example = vec![("the input".to_string(), model.input().len())];
    let mut inputs = vec![model.input()];
    for (l, shape) in model.layers.iter().zip(model.output_shapes()?) {
        per_example.push((format!("layer '{}'", l.name), shape.len()));
        inputs.push(shape);
    }
    // The layers' scratch buffers for batches of `batch`, which are not proportional to it.
    let scratch = |batch: usize| -> Vec<(String, usize)> {
        let mut all = Vec::new();
        for (l, input) in model.layers.iter().zip(&inputs) {
            for (what, words) in l.layer.kind().scratch_words(input, batch) {
                all.push((format!("the {what} of layer '{}'", l.name), words));
            }
        }
        all
    };
    let params = model.param_words()?;
    let param_buffers = 2 + optimizer.state_buffers();
    let total = per_example
        .iter()
        .fold(bytes(params, param_buffers), |sum, (_, len)| {
            sum.saturating_add(bytes(*len, max_batch).saturating_mul(2))
        });
    let total = scratch(max_batch).iter().fold(total, |sum, (_, words)| {
        sum.saturating_add(bytes(*words, 1))
    });
    if bytes(params, 1) > limit {
        return Err(GpuError::TooLarge {
            what: format!("the model's {params} parameters"),
            needed: bytes(params, 1),
            limit,
            limit_name,
            remedy: "this model is too large for this adapter; use a GPU with a higher limit"
                .into(),
        }
        .into());
    }
    let (name, len) = per_example
        .iter()
        .rev()
        .max_by_key(|(_, len)| *len)
        .expect("the input is always there");
    if bytes(*len, max_batch) > limit {
        let fits = limit / bytes(*len, 1).max(1);
        return Err(GpuError::TooLarge {
            what: format!(
                "a batch of {max_batch} at {name} (about {} for the whole model)",
                crate::gpu::human_bytes(total)
            ),
            needed: bytes(*len, max_batch),
            limit,
            limit_name,
            remedy: format!("use a --batch-size of at most {fits}"),
        }
        .into());
    }
    let too_large = |batch: usize| {
        scratch(batch)
            .into_iter()
            .filter(|(_, words)| bytes(*words, 1) > limit)
            .max_by_key(|(_, words)| *words)
    };
    if let Some((name, words)) = too_large(max_batch) {
        // The largest batch whose scratch fits: `fits` does, `beyond` does not.
        let (mut fits, mut beyond) = (0, max_batch);
        while beyond - fits > 1 {
            let mid = fits + (beyond - fits) / 2;
            if too_large(mid).is_none() {
                fits = mid;
            } else {
                beyond = mid;
            }
        }
        return Err(GpuError::TooLarge {
            what: format!(
                "a batch of {max_batch} at {name} (about {} for the whole model)",
                crate::gpu::human_bytes(total)
            ),
            needed: bytes(words, 1),
            limit,
            limit_name,
            remedy: format!("use a --batch-size of at most {}", fits.max(1)),
        }
        .into());
    }
    Ok(())
}

/// Checks, before anything is allocated, that no invocation of the model's kernels would loop past the
/// adapter's `Gpu::loop_limit` (llvmpipe's loop limiter, which would end it silently and train
/// wrong) for batches of `max_batch`: each layer's `LayerKind::loop_steps`, and the loss's over
/// the classes. The error names the first layer past it. Dense products and the fused loss plan
/// around the limit instead (`kernels::matmul::Plan::auto`, `dense_loss::loop_steps`).
pub fn check_loops(gpu: &Gpu, model: &Sequential, max_batch: usize) -> Result<(), PlaceError> {
    let Some(limit) = gpu.loop_limit() else {
        return Ok(());
    };
    let mut input = model.input();
    let mut steps = Vec::new();
    for (l, output) in model.layers.iter().zip(model.output_shapes()?) {
        let what = format!("layer '{}'", l.name);
        steps.push((what, l.layer.kind().loop_steps(&input, max_batch)));
        input = output;
    }
    let classes = model.classes()?;
    steps.push((
        format!("the loss over {classes} classes"),
        crate::kernels::softmax_cross_entropy::loop_steps(max_batch, classes),
    ));
    match steps.into_iter().find(|(_, steps)| *steps > limit) {
        Some((what, steps)) => Err(GpuError::LoopLimit {
            what: format!("{what} at a batch of {max_batch}"),
            steps,
            limit,
            adapter: gpu.info.name.clone(),
            remedy: "make the layer smaller (channels, kernel, pool window) or the batch, or \
                     train on a real GPU"
                .into(),
        }
        .into()),
        None => Ok(()),
    }
}

/// The largest buffer one binding may hold on this adapter, and the name of the limit that says so.
fn binding_limit(gpu: &Gpu) -> (u64, &'static str) {
    let limits = &gpu.limits;
    if limits.max_storage_buffer_binding_size <= limits.max_buffer_size {
        (
            limits.max_storage_buffer_binding_size,
            "max_storage_buffer_binding_size",
        )
    } else {
        (limits.max_buffer_size, "max_buffer_size")
    }
}

/// [`check_memory`] for the buffers whose size follows the data rather than the batch: an epoch's
/// order (a word per training image) and an evaluation's logits (`classes` words per image), checked
/// before the data is uploaded, with the same kind of error.
pub fn check_data_buffers(
    gpu: &Gpu,
    train_images: usize,
    eval_images: usize,
    classes: usize,
) -> Result<(), PlaceError> {
    let (limit, limit_name) = binding_limit(gpu);
    let buffers = [
        ("the epoch's order of", train_images, 1, "train on"),
        ("the logits of", eval_images, classes, "evaluate on"),
    ];
    for (what, images, words, verb) in buffers {
        let needed = (images as u64)
            .saturating_mul(words as u64)
            .saturating_mul(WORD);
        if needed > limit {
            return Err(GpuError::TooLarge {
                what: format!("{what} {images} images"),
                needed,
                limit,
                limit_name,
                remedy: format!(
                    "{verb} at most {} images at a time",
                    limit / (words as u64 * WORD).max(1)
                ),
            }
            .into());
        }
    }
    Ok(())
}

/// The peephole pass: each ReLU op whose neighbours both accept their half goes, the op before ending
/// its forward in the ReLU and the op after masking its dx by its input, the ReLU's output (positive
/// exactly where the ReLU's input was). Both halves are the ReLU kernels' own selects, so every value
/// and gradient keeps its bits (tests/pinned_weights.rs) and a step has two dispatches fewer per ReLU.
/// `lens[i + 1]` is op i's output length, so the ReLU's entry goes with it.
/// A ReLU whose op before cannot end in it goes whole into an op after that commutes with it
/// (`Fusion::ReluInput`: dropout), the same selects again.
fn fuse_relus(ops: &mut Vec<Box<dyn GpuOp>>, lens: &mut Vec<usize>) {
    let mut i = 0;
    while i + 1 < ops.len() {
        if !ops[i].is_relu() {
            i += 1;
        } else if i > 0
            && ops[i - 1].accepts(Fusion::ReluAfter)
            && ops[i + 1].accepts(Fusion::ReluBefore)
        {
            ops[i - 1].fuse(Fusion::ReluAfter);
            ops[i + 1].fuse(Fusion::ReluBefore);
            ops.remove(i);
            lens.remove(i + 1);
        } else if ops[i + 1].accepts(Fusion::ReluInput) {
            ops[i + 1].fuse(Fusion::ReluInput);
            ops.remove(i);
            lens.remove(i + 1);
        } else {
            i += 1;
        }
    }
}

/// The second peephole pass, after `fuse_relus` and the loss's fusion: each Dropout op goes into the
/// op before it when that op can end its forward in the dropout and begin its backward with it
/// (`Fusion::DropoutAfter`: max pooling), else into the op after it when that op can apply it to its
/// x where it loads it (`Fusion::DropoutBefore`: the loss-fused last Dense). The kernels redraw the
/// dropout kernel's mask and apply its own select and multiply, so every bit stays; two dispatches
/// fewer per Dropout. `lens[i + 1]` is op i's output length, so the Dropout's entry goes with it.
fn fuse_dropouts(ops: &mut Vec<Box<dyn GpuOp>>, lens: &mut Vec<usize>) {
    let mut i = 0;
    while i < ops.len() {
        let Some(mask) = ops[i].dropout() else {
            i += 1;
            continue;
        };
        let (after, before) = (Fusion::DropoutAfter(mask), Fusion::DropoutBefore(mask));
        if i > 0 && ops[i - 1].accepts(after) {
            ops[i - 1].fuse(after);
        } else if i + 1 < ops.len() && ops[i + 1].accepts(before) {
            ops[i + 1].fuse(before);
        } else {
            i += 1;
            continue;
        }
        ops.remove(i);
        lens.remove(i + 1);
    }
}

/// Whether a program trains (dropout on, gradients, update) or only evaluates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    Train,
    Eval,
}

/// The model on the GPU, for a maximum batch size.
pub struct Network {
    pub model: Sequential,
    pub optimizer: Optimizer,
    pub seed: u64,
    pub max_batch: usize,
    pub classes: usize,
    /// Every layer's ops in forward order; each holds its parameter views and own buffers.
    ops: Vec<Box<dyn GpuOp>>,
    /// The last op took the loss in (`Fusion::Loss`): no loss kernel of the network's own.
    loss_fused: bool,
    /// Per-example length of `values[i]`.
    lens: Vec<usize>,
    /// Flat parameters, gradients and optimizer state, laid out as `Sequential::param_tensors()`.
    pub params: Tensor,
    pub grads: Tensor,
    pub opt_state: Vec<Tensor>,
    /// The prefix of `params` the optimizer updates (its trainable tensors).
    trainable_words: usize,
    /// values[0] is the input batch; values[i + 1] the output of op i.
    values: Vec<Tensor>,
    /// Gradients with respect to values[i], for i >= 1 (nothing flows into the input).
    dvalues: Vec<Option<Tensor>>,
    pub labels: Tensor,
    pub batch_indices: Tensor,
    /// The current step's `StepState`, which every kernel that needs it binds.
    pub step_state: Tensor,
    /// One `StepState` slot per step of a submission, written up front (`set_steps`); each step
    /// begins by copying its slot into `step_state`, so the kernels' bindings stay as they are.
    step_slots: Tensor,
    /// Summed loss, correct count, sample count and first bad step of the current epoch's training.
    pub train_metrics: Tensor,
    /// The same for evaluation passes.
    pub eval_metrics: Tensor,
    /// Training batches go through random affines when set (`set_augment`).
    augment: Option<Augmentation>,
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
    ) -> Result<Network, PlaceError> {
        model.validate()?;
        let shapes = model.output_shapes()?;
        let classes = model.classes()?;
        let tensors = model.param_tensors()?;
        assert_eq!(
            params.len(),
            model.param_words()?,
            "parameter vector of the wrong length"
        );
        check_memory(gpu, model, &optimizer, max_batch)?;
        check_loops(gpu, model, max_batch)?;
        let p = gpu.upload("params", params);
        let g = gpu.zeros("grads", params.len());
        let opt_state = (0..optimizer.state_buffers())
            .map(|_| gpu.zeros("optimizer state", params.len()))
            .collect();

        let mut ops = Vec::new();
        let mut lens = vec![model.input().len()];
        let mut input = model.input();
        for (index, (l, output)) in model.layers.iter().zip(&shapes).enumerate() {
            let mine = || tensors.iter().filter(|t| t.layer == index);
            let lowering = Lowering {
                gpu,
                index,
                input: &input,
                output,
                max_batch,
                params: &mine().map(|t| p.slice(t.offset, t.len)).collect::<Vec<_>>(),
                grads: &mine().map(|t| g.slice(t.offset, t.len)).collect::<Vec<_>>(),
            };
            for op in l.layer.kind().lower(&lowering) {
                ops.push(op);
                lens.push(output.len());
            }
            input = output.clone();
        }
        fuse_relus(&mut ops, &mut lens);
        let loss_fused = ops.last().is_some_and(|op| op.accepts(Fusion::Loss));
        if let Some(last) = ops.last_mut().filter(|_| loss_fused) {
            last.fuse(Fusion::Loss);
        }
        fuse_dropouts(&mut ops, &mut lens);
        let values = lens
            .iter()
            .enumerate()
            .map(|(i, len)| gpu.zeros(if i == 0 { "input" } else { "activation" }, max_batch * len))
            .collect();
        // Gradients from the logits back. The input needs none, unless it is the logits themselves
        // (a model of no ops): the loss always writes their gradient.
        let dvalues = lens
            .iter()
            .enumerate()
            .map(|(i, len)| {
                (i > 0 || i + 1 == lens.len()).then(|| gpu.zeros("gradient", max_batch * len))
            })
            .collect();
        Ok(Network {
            model: model.clone(),
            optimizer,
            seed,
            max_batch,
            classes,
            ops,
            loss_fused,
            lens,
            params: p,
            grads: g,
            opt_state,
            trainable_words: model.trainable_words()?,
            values,
            dvalues,
            labels: gpu.zeros("labels", max_batch),
            batch_indices: gpu.zeros("batch indices", max_batch),
            step_state: gpu.zeros("step state", StepState::WORDS),
            step_slots: gpu.zeros(
                "step state slots",
                MAX_STEPS_PER_SUBMISSION * StepState::WORDS,
            ),
            train_metrics: gpu.zeros("train metrics", 4),
            eval_metrics: gpu.zeros("eval metrics", 4),
            augment: None,
        })
    }

    /// The input batch tensor for `batch` examples (tests fill it directly).
    pub fn input(&self, batch: usize) -> Tensor {
        self.values[0].slice(0, batch * self.lens[0])
    }

    /// Which tensor holds each value in `mode`: `values[holders[i]]` holds value i. An op that is
    /// the identity when evaluating holds nothing of its own then.
    fn holders(&self, mode: Mode) -> Vec<usize> {
        let mut h = vec![0];
        for (i, op) in self.ops.iter().enumerate() {
            let passes = mode == Mode::Eval && op.evaluates_as_identity();
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

    /// Augments the training batches of programs built from now on as `augment` says (`None`: not
    /// at all), drawing from the network's seed. Refuses settings or image sizes the kernel cannot
    /// take.
    pub fn set_augment(&mut self, gpu: &Gpu, augment: Option<&Augment>) -> Result<(), String> {
        let [h, w, _] = self.model.input_shape;
        self.augment = match augment {
            Some(a) => Some(Augmentation::new(
                gpu,
                a.consts(h, w)?,
                &a.rotation_table(),
                self.seed,
            )),
            None => None,
        };
        Ok(())
    }

    /// The dispatches that gather a batch from `data` through `batch_indices`, as evaluation takes
    /// it: never augmented.
    pub fn gather(&self, gpu: &Gpu, data: &DeviceImages, batch: usize) -> Vec<Dispatch> {
        gather_batch(
            gpu,
            data,
            &self.batch_indices.slice(0, batch),
            &self.input(batch),
            &self.labels.slice(0, batch),
        )
    }

    /// `gather` as a training step takes it: through the random affines of the step in
    /// `step_state` when augmentation is set.
    pub fn gather_training(&self, gpu: &Gpu, data: &DeviceImages, batch: usize) -> Vec<Dispatch> {
        let Some(aug) = &self.augment else {
            return self.gather(gpu, data, batch);
        };
        gather_batch_augmented(
            gpu,
            data,
            self.model.input_shape,
            aug,
            &self.batch_indices.slice(0, batch),
            &self.input(batch),
            &self.labels.slice(0, batch),
            &self.step_state,
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
                .map(|t| t.slice(0, batch * self.lens[i]))
        };
        let s = GpuStep {
            gpu,
            batch,
            step_state: &self.step_state,
            seed: self.seed,
        };
        let mut out = Vec::new();
        let last = self.ops.len();
        let metrics = if train {
            &self.train_metrics
        } else {
            &self.eval_metrics
        };
        let (labels, dlogits) = (self.labels.slice(0, batch), dv(last).unwrap());
        // The fused loss's dx is the last op's: written with the forward, when training.
        let loss_dx = last.checked_sub(1).and_then(&dv).filter(|_| train);
        let loss = LossTensors {
            labels: &labels,
            dlogits: &dlogits,
            metrics,
            dx: loss_dx.as_ref(),
            train,
        };
        // Forward. Ops that are the identity in `mode` dispatch nothing; `holder` says which tensor
        // holds each value.
        let holder = self.holders(mode);
        let mut inputs = Vec::with_capacity(self.ops.len());
        for (i, op) in self.ops.iter().enumerate() {
            let x = v(holder[i]);
            inputs.push(x.clone());
            if holder[i + 1] != i + 1 {
                continue;
            }
            out.extend(if self.loss_fused && i + 1 == last {
                op.forward_loss(&s, &x, &v(i + 1), &loss)
            } else if train {
                op.forward(&s, &x, &v(i + 1))
            } else {
                op.evaluate(&s, &x, &v(i + 1))
            });
        }
        if !self.loss_fused {
            out.push(softmax_cross_entropy::softmax_cross_entropy(
                gpu,
                &v(holder[last]),
                &labels,
                &dlogits,
                metrics,
                &self.step_state,
                batch,
                self.classes,
            ));
        }
        if !train {
            return out;
        }
        // Backward, from the logits' gradient to the first op's parameters. The input has no
        // gradient buffer (`dv(0)` is `None`), so the first op computes no dx.
        for (i, op) in self.ops.iter().enumerate().rev() {
            out.extend(if self.loss_fused && i + 1 == last {
                op.backward_loss(&s, &inputs[i], &loss)
            } else {
                op.backward(&s, &inputs[i], &dv(i + 1).unwrap(), dv(i).as_ref())
            });
        }
        let state: Vec<Tensor> = self
            .opt_state
            .iter()
            .map(|t| t.slice(0, self.trainable_words))
            .collect();
        out.push(optimizer::update(
            gpu,
            &self.optimizer,
            &self.params.slice(0, self.trainable_words),
            &self.grads.slice(0, self.trainable_words),
            &state.iter().collect::<Vec<_>>(),
            &self.step_state,
        ));
        out
    }

    /// Writes the step state for `step` (queued before the next submission).
    pub fn set_step(&self, gpu: &Gpu, step: u32) {
        gpu.write(&self.step_state, &self.optimizer.step_state(step).words());
    }

    /// Writes the step states of steps `first..first + count` into slots `0..count`, in one write
    /// queued before the next submission (the one whose steps copy them, `step_slot`).
    pub fn set_steps(&self, gpu: &Gpu, first: u64, count: usize) {
        assert!(
            count <= MAX_STEPS_PER_SUBMISSION,
            "{count} steps do not fit the slots"
        );
        let words: Vec<u32> = (first..first + count as u64)
            .flat_map(|s| self.optimizer.step_state(s as u32).words())
            .collect();
        gpu.write(&self.step_slots.slice(0, words.len()), &words);
    }

    /// Slot `i` of `set_steps`: the `i`-th step of a submission copies it into `step_state` first.
    pub fn step_slot(&self, i: usize) -> Tensor {
        self.step_slots
            .slice(i * StepState::WORDS, StepState::WORDS)
    }

    pub fn read_params(&self, gpu: &Gpu) -> Result<Vec<f32>, GpuError> {
        gpu.read_f32(&self.params)
    }

    pub fn read_grads(&self, gpu: &Gpu) -> Result<Vec<f32>, GpuError> {
        gpu.read_f32(&self.grads)
    }
}
