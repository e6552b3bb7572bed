//! `model.fit` and `model.evaluate` on the GPU.
//!
//! The host records training steps in groups, one submission per group (`Gpu::submit`): it writes
//! the group's step states (step number, learning rate) into the network's slots, then per step
//! copies its slot into the step state and its slice of the epoch's shuffled index buffer into the
//! batch indices, followed by the step's dispatches. How many steps a group holds is the `Pacer`'s
//! choice (`--steps-per-submission`); results do not depend on it. Evaluation batches go in groups
//! too, paced on their own (each copies its logits out after its pass). At most two submissions are
//! in flight; the progress bar is fed from a non-blocking `Readback` of metrics summed on the GPU.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::gpu::{
    Dispatch, Gpu, GpuError, InFlight, Op, Pacer, Readback, StepsPerSubmission, Submission,
    SubmitStats, Tensor,
};
use crate::kernels::gather::DeviceImages;
use crate::train::network::{Mode, Network};

/// Submissions allowed in flight before the host waits for the oldest. Two keep the GPU fed while the
/// host records the next batch, without queueing seconds of work behind a Ctrl-C.
const IN_FLIGHT: usize = 2;
/// How often the progress bar asks for the running metrics.
const REFRESH: Duration = Duration::from_millis(250);

/// Metrics summed on the GPU, as the loss kernels declare them (`shaders/common/metrics.wgsl`).
pub use crate::kernels::softmax_cross_entropy::Metrics;

/// One epoch's line of Keras' `History`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub loss: f64,
    pub accuracy: f64,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    /// Wall time of the epoch, validation included.
    pub seconds: f64,
    /// Wall time of the training part alone.
    #[serde(default)]
    pub train_seconds: f64,
}

/// What `fit` reports as it goes, for the CLI's progress bar and JSON log.
pub enum Event<'a> {
    EpochStart {
        epoch: usize,
        epochs: usize,
        batches: usize,
    },
    Batch {
        batch: usize,
        metrics: Metrics,
    },
    /// The epoch's training steps are all done; what submitting them cost the host.
    Submitted(SubmitStats),
    EpochEnd(&'a EpochLog),
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Gpu(#[from] GpuError),
    #[error(
        "the loss became NaN or infinite at epoch {epoch}, batch {batch} (step {step}); \
         try a lower learning rate"
    )]
    NonFinite {
        epoch: usize,
        batch: usize,
        step: u64,
    },
    #[error("{0}")]
    Invalid(String),
}

/// `fit` settings; defaults are the notebook's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub shuffle: bool,
    pub seed: u64,
    /// Random affines on every training batch (ImageDataGenerator's recipe); `None`: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub augment: Option<crate::data::augment::Augment>,
}

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig {
            epochs: 20,
            batch_size: 128,
            shuffle: true,
            seed: 0,
            augment: None,
        }
    }
}

/// Where training stands: enough to resume and end with the same weights as an uninterrupted run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Epochs finished.
    pub epoch: usize,
    /// Batches finished in the current epoch.
    pub batch: usize,
    /// Optimizer steps taken over the whole run.
    pub step: u64,
}

/// Images on the GPU and which of them to use, in Keras' order: records `indices` of `images`.
pub struct DeviceSplit<'a> {
    pub images: &'a DeviceImages,
    /// Record numbers of this split (the training part is `0..split`, validation `split..n`).
    pub records: std::ops::Range<usize>,
}

impl<'a> DeviceSplit<'a> {
    /// Every record of `images`.
    pub fn all(images: &'a DeviceImages) -> DeviceSplit<'a> {
        DeviceSplit {
            images,
            records: 0..images.len,
        }
    }

    /// Records `0..split` for training and `split..` for validation, as Keras' `validation_split`
    /// takes them (see `data::validation_split_index`).
    pub fn train_and_validation(
        images: &'a DeviceImages,
        split: usize,
    ) -> (DeviceSplit<'a>, DeviceSplit<'a>) {
        assert!(
            split <= images.len,
            "split {split} past {} records",
            images.len
        );
        (
            DeviceSplit {
                images,
                records: 0..split,
            },
            DeviceSplit {
                images,
                records: split..images.len,
            },
        )
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// Drives a `Network` through epochs. Programs (dispatch lists) are built once per batch size.
pub struct Trainer<'g> {
    gpu: &'g Gpu,
    pub net: Network,
    programs: HashMap<(usize, Mode, u64), Vec<Dispatch>>,
    order: Option<Tensor>,
    /// Sizes the groups of training steps; from the device's `steps_per_submission` unless set
    /// with `set_steps_per_submission`.
    pacer: Pacer,
    /// The same for evaluation batches, which take less time each, so groups of their own.
    eval_pacer: Pacer,
    pub progress: Progress,
    pub history: Vec<EpochLog>,
}

impl<'g> Trainer<'g> {
    /// The adapter the trainer runs on, for reports.
    pub fn adapter_name(&self) -> String {
        format!(
            "{} ({:?}, {:?})",
            self.gpu.info.name, self.gpu.info.backend, self.gpu.info.device_type
        )
    }

    pub fn new(gpu: &'g Gpu, net: Network) -> Trainer<'g> {
        Trainer {
            gpu,
            net,
            programs: HashMap::new(),
            order: None,
            pacer: Pacer::new(gpu.steps_per_submission),
            eval_pacer: Pacer::new(gpu.steps_per_submission),
            progress: Progress::default(),
            history: Vec::new(),
        }
    }

    /// How many training steps go into one submission from now on.
    pub fn set_steps_per_submission(&mut self, choice: StepsPerSubmission) {
        self.pacer = Pacer::new(choice);
        self.eval_pacer = Pacer::new(choice);
    }

    /// Builds the program for `batch` examples of `data` in `mode` unless it exists, and returns
    /// its key in `programs`.
    fn program(&mut self, data: &DeviceImages, batch: usize, mode: Mode) -> (usize, Mode, u64) {
        // Keyed by the upload too: the gather dispatches bind that data set's buffers. Its id, not
        // its address: data dropped and replaced at the same address must not replay old bindings.
        let key = (batch, mode, data.id);
        let (gpu, net) = (self.gpu, &self.net);
        self.programs.entry(key).or_insert_with(|| {
            let mut d = match mode {
                Mode::Train => net.gather_training(gpu, data, batch),
                Mode::Eval => net.gather(gpu, data, batch),
            };
            d.extend(net.step(gpu, batch, mode));
            d
        });
        key
    }

    /// Submits `batches` (each a start in `indices` and a count) as one submission: per batch the
    /// copy of its indices, in `Mode::Train` first the copy of its step-state slot (slot i for the
    /// i-th batch, written by `Network::set_steps`), then its program and `after_each[i]` if given
    /// (a copy of that batch's logits); at the end, `after` (a snapshot of the running metrics).
    fn submit_batches(
        &mut self,
        data: &DeviceImages,
        indices: &Tensor,
        batches: &[(usize, usize)],
        mode: Mode,
        after_each: Vec<Op>,
        after: Option<Op>,
    ) -> Submission {
        assert!(after_each.is_empty() || after_each.len() == batches.len());
        let keys: Vec<_> = batches
            .iter()
            .map(|&(_, count)| self.program(data, count, mode))
            .collect();
        let net = &self.net;
        let slots: Vec<Tensor> = (0..batches.len()).map(|i| net.step_slot(i)).collect();
        let copies: Vec<(Tensor, Tensor)> = batches
            .iter()
            .map(|&(start, count)| {
                (
                    indices.slice(start, count),
                    net.batch_indices.slice(0, count),
                )
            })
            .collect();
        let mut ops = Vec::with_capacity(4 * batches.len() + 1);
        let mut after_each = after_each.into_iter();
        for (i, key) in keys.iter().enumerate() {
            if mode == Mode::Train {
                ops.push(Op::Copy {
                    from: &slots[i],
                    to: &net.step_state,
                });
            }
            ops.push(Op::Copy {
                from: &copies[i].0,
                to: &copies[i].1,
            });
            ops.push(Op::Pass(&self.programs[key]));
            ops.extend(after_each.next());
        }
        ops.extend(after);
        self.gpu.submit(&ops)
    }

    /// One epoch of training over `train` and, if it is not empty, evaluation on `val`.
    /// Stops early (returning `Ok(None)`) after any batch for which `stop(&progress)` is true
    /// (Ctrl-C in the CLI). `stop` is asked at every step boundary: at the end of each group of
    /// steps once it is submitted, and for the boundaries inside a group while the group is
    /// recorded, which ends the group there. A stop thus always falls between two steps and the
    /// checkpoint taken there resumes bit for bit, whatever the group sizes before and after.
    pub fn train_epoch(
        &mut self,
        cfg: &FitConfig,
        train: &DeviceSplit,
        val: Option<&DeviceSplit>,
        stop: &dyn Fn(&Progress) -> bool,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<Option<EpochLog>, TrainError> {
        let gpu = self.gpu;
        let n = train.len();
        let bs = cfg.batch_size;
        if bs == 0 || n == 0 {
            return Err(TrainError::Invalid(format!(
                "cannot train on {n} images in batches of {bs}: both must be at least 1"
            )));
        }
        let batches = n.div_ceil(bs);
        let epoch = self.progress.epoch;
        on_event(Event::EpochStart {
            epoch,
            epochs: cfg.epochs,
            batches,
        });
        // The epoch's order, in record numbers of the uploaded images.
        let order: Vec<u32> = crate::data::epoch_order(n, cfg.seed, epoch as u64, cfg.shuffle)
            .into_iter()
            .map(|i| i + train.records.start as u32)
            .collect();
        let order_tensor = match &self.order {
            Some(t) if t.len == n => t.clone(),
            _ => {
                let t = gpu.zeros("epoch order", n);
                self.order = Some(t.clone());
                t
            }
        };
        gpu.write(&order_tensor, &order);
        if self.progress.batch == 0 {
            gpu.write(&self.net.train_metrics, &[0u32; 4]);
        }
        let started = Instant::now();
        let readback = Readback::new(gpu, &self.net.train_metrics);
        let mut in_flight = InFlight::new(IN_FLIGHT);
        let mut last_refresh = Instant::now();
        let mut stats = SubmitStats::default();
        self.pacer.restart();
        while self.progress.batch < batches {
            let (first_batch, first_step) = (self.progress.batch, self.progress.step);
            let mut k = self.pacer.steps().min(batches - first_batch);
            if let Some(j) = (1..k).find(|&j| {
                stop(&Progress {
                    epoch,
                    batch: first_batch + j,
                    step: first_step + j as u64,
                })
            }) {
                k = j;
            }
            let group: Vec<(usize, usize)> = (first_batch..first_batch + k)
                .map(|b| (b * bs, bs.min(n - b * bs)))
                .collect();
            let refresh = first_batch + k == batches || last_refresh.elapsed() >= REFRESH;
            let want_read = refresh && readback.idle();
            let host = Instant::now();
            self.net.set_steps(gpu, first_step, k);
            let submission = self.submit_batches(
                train.images,
                &order_tensor,
                &group,
                Mode::Train,
                Vec::new(),
                want_read.then_some(Op::Snapshot(&readback)),
            );
            stats.add(&SubmitStats {
                steps: k,
                submissions: 1,
                recording: host.elapsed() - submission.submitting,
                submitting: submission.submitting,
            });
            if want_read {
                last_refresh = Instant::now();
            }
            self.progress.batch += k;
            self.progress.step += k as u64;
            let finished = in_flight.push(gpu, submission, k)?;
            self.pacer.finished(finished);
            if let Some(m) = readback.take().map(|w| Metrics::from_words(&w)) {
                self.check_finite(&m)?;
                on_event(Event::Batch {
                    batch: self.progress.batch,
                    metrics: m,
                });
            }
            if stop(&self.progress) {
                gpu.wait()?;
                on_event(Event::Submitted(stats));
                return Ok(None);
            }
        }
        on_event(Event::Submitted(stats));
        gpu.wait()?;
        let train_seconds = started.elapsed().as_secs_f64();
        let m = Metrics::from_words(&gpu.read_u32(&self.net.train_metrics)?);
        self.check_finite(&m)?;
        on_event(Event::Batch {
            batch: batches,
            metrics: m,
        });
        let (val_loss, val_accuracy) = match val {
            Some(v) if !v.is_empty() => {
                let vm = self.evaluate(v, bs)?;
                (Some(vm.loss()), Some(vm.accuracy()))
            }
            _ => (None, None),
        };
        self.progress.epoch += 1;
        self.progress.batch = 0;
        let log = EpochLog {
            epoch: self.progress.epoch,
            loss: m.loss(),
            accuracy: m.accuracy(),
            val_loss,
            val_accuracy,
            seconds: started.elapsed().as_secs_f64(),
            train_seconds,
        };
        on_event(Event::EpochEnd(&log));
        self.history.push(log.clone());
        Ok(Some(log))
    }

    /// Fails with the epoch and batch where the loss first stopped being finite.
    fn check_finite(&self, m: &Metrics) -> Result<(), TrainError> {
        if m.first_bad_step == 0 {
            return Ok(());
        }
        // Steps are counted over the run; this epoch began `batches done` steps ago.
        let step = m.first_bad_step as u64 - 1;
        let epoch_first_step = self.progress.step - self.progress.batch as u64;
        let batch = step.saturating_sub(epoch_first_step) as usize;
        Err(TrainError::NonFinite {
            epoch: self.progress.epoch + 1,
            batch: batch + 1,
            step: step + 1,
        })
    }

    /// `model.evaluate`: mean loss and accuracy over `split`, no dropout, in order.
    pub fn evaluate(
        &mut self,
        split: &DeviceSplit,
        batch_size: usize,
    ) -> Result<Metrics, TrainError> {
        self.run_eval(split, batch_size, None)
    }

    /// `evaluate` plus every example's logits ([n, classes], in the split's order), for predictions,
    /// per-class accuracy and confusion matrices. The logits are copied on the GPU after each batch
    /// and read back once at the end.
    pub fn evaluate_with_logits(
        &mut self,
        split: &DeviceSplit,
        batch_size: usize,
    ) -> Result<(Metrics, Vec<f32>), TrainError> {
        let all = self.gpu.zeros("all logits", split.len() * self.net.classes);
        let m = self.run_eval(split, batch_size, Some(&all))?;
        Ok((m, self.gpu.read_f32(&all)?))
    }

    fn run_eval(
        &mut self,
        split: &DeviceSplit,
        batch_size: usize,
        logits_out: Option<&Tensor>,
    ) -> Result<Metrics, TrainError> {
        if batch_size == 0 {
            return Err(TrainError::Invalid(
                "cannot evaluate in batches of 0 images: the batch size must be at least 1".into(),
            ));
        }
        let gpu = self.gpu;
        let n = split.len();
        let classes = self.net.classes;
        // Buffers exist for `max_batch` examples; results do not depend on the batching.
        let batch_size = batch_size.min(self.net.max_batch);
        let records: Vec<u32> = split.records.clone().map(|r| r as u32).collect();
        let indices = gpu.upload("evaluation order", &records);
        gpu.write(&self.net.eval_metrics, &[0u32; 4]);
        let mut in_flight = InFlight::new(IN_FLIGHT);
        let batches = n.div_ceil(batch_size);
        // Batches go in groups, one submission each, sized like the training steps' (`eval_pacer`).
        self.eval_pacer.restart();
        let mut b = 0;
        while b < batches {
            let k = self.eval_pacer.steps().min(batches - b);
            let group: Vec<(usize, usize)> = (b..b + k)
                .map(|i| (i * batch_size, batch_size.min(n - i * batch_size)))
                .collect();
            // Each batch's logits, copied out before the next batch overwrites them.
            let copies: Vec<(Tensor, Tensor)> = logits_out
                .map(|all| {
                    group
                        .iter()
                        .map(|&(start, count)| {
                            let from = self.net.logits(count, Mode::Eval);
                            (from, all.slice(start * classes, count * classes))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let after_each = copies
                .iter()
                .map(|(from, to)| Op::Copy { from, to })
                .collect();
            let submission =
                self.submit_batches(split.images, &indices, &group, Mode::Eval, after_each, None);
            let finished = in_flight.push(gpu, submission, k)?;
            self.eval_pacer.finished(finished);
            b += k;
        }
        Ok(Metrics::from_words(&gpu.read_u32(&self.net.eval_metrics)?))
    }
}

impl Trainer<'_> {
    /// Everything needed to resume from here.
    pub fn checkpoint(
        &self,
        class_names: &[String],
        fit: &FitConfig,
        validation_split: f64,
        run: &crate::train::checkpoint::RunRecord,
    ) -> Result<crate::train::checkpoint::Checkpoint, TrainError> {
        use crate::train::checkpoint::{Checkpoint, RunState};
        let gpu = self.gpu;
        let optimizer_state = self
            .net
            .opt_state
            .iter()
            .map(|t| gpu.read_f32(t))
            .collect::<Result<_, _>>()?;
        let metrics = gpu.read_u32(&self.net.train_metrics)?;
        Ok(Checkpoint {
            model: crate::model::io::SavedModel {
                model: self.net.model.clone(),
                class_names: class_names.to_vec(),
                params: self.net.read_params(gpu)?,
            },
            optimizer_state,
            state: RunState {
                progress: self.progress.clone(),
                fit: fit.clone(),
                optimizer: self.net.optimizer.clone(),
                validation_split,
                run: run.clone(),
                history: self.history.clone(),
                partial_metrics: [metrics[0], metrics[1], metrics[2], metrics[3]],
            },
        })
    }

    /// Continues from `ckpt`: its optimizer state, progress, history and partial metrics. The network
    /// must have been built from the checkpoint's model and weights.
    pub fn restore(
        &mut self,
        ckpt: &crate::train::checkpoint::Checkpoint,
    ) -> Result<(), TrainError> {
        if ckpt.optimizer_state.len() != self.net.opt_state.len() {
            return Err(TrainError::Invalid(
                "the checkpoint's optimizer state does not match the optimizer".into(),
            ));
        }
        for (t, v) in self.net.opt_state.iter().zip(&ckpt.optimizer_state) {
            self.gpu.write(t, v);
        }
        self.gpu
            .write(&self.net.train_metrics, &ckpt.state.partial_metrics);
        self.progress = ckpt.state.progress.clone();
        self.history = ckpt.state.history.clone();
        Ok(())
    }
}
