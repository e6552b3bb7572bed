//! The commands' work, from arguments to results, for the CLI, the benchmark and tests alike:
//! [`train`] runs a whole training session (load the data, place the model, fit with checkpoints,
//! save the model folder, evaluate on the test set, write the report), [`run`] the same once data
//! and device are in hand (the benchmark, tests); [`evaluate`] and [`predict`] run a saved model,
//! [`profile()`] times a training step. Nothing here prints: what happens is told to an [`Observer`],
//! and the CLI's observer draws the progress bar or the JSON log.
//!
//! The flow is one-way: `main.rs` calls `session`, which calls `data`, `train`, `report` and `gpu`;
//! nothing below calls back up.

pub mod bench;
pub mod resume;

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::ValueEnum;

use crate::data::{self, DataOptions, Dataset};
use crate::gpu::timing::StepTiming;
use crate::gpu::{FlavourChoice, Gpu, GpuOptions, Tiling};
use crate::keras;
use crate::kernels::gather::{DeviceImages, upload_images};
use crate::metrics::{argmax_rows, per_class_accuracy, top_k};
use crate::model::folder;
use crate::model::io::SavedModel;
use crate::model::{Preset, Sequential};
use crate::optimizer::Optimizer;
use crate::report::{self, ReportInputs, ReportSummary};
use crate::train::checkpoint::{Checkpoint, DataRecord, RunRecord, checkpoint_dir};
use crate::train::network::{check_data_buffers, check_memory};
use crate::train::profile::{self, ProfileReport};
use crate::train::{
    DeviceSplit, EpochLog, Event, FitConfig, Metrics, Network, Progress, Trainer, history, output,
};

/// Any failure of a session, with the message the CLI prints.
pub type SessionError = Box<dyn std::error::Error + Send + Sync>;

/// What a session reports as it goes. Every method does nothing unless implemented.
pub trait Observer {
    /// The data set is in memory.
    fn data_loaded(&mut self, _ds: &Dataset, _seconds: f64) {}
    /// The device is open.
    fn gpu_opened(&mut self, _gpu: &Gpu) {}
    /// Something the user should know that does not stop the session (a stale lock taken over).
    fn warning(&mut self, _message: &str) {}
    /// Training continues from a checkpoint at `progress`.
    fn resumed(&mut self, _progress: &Progress) {}
    /// The model is on the device and the first batch is next. An error here ends the session.
    fn training_starts(&mut self, _start: &TrainingStart) -> Result<(), SessionError> {
        Ok(())
    }
    /// Progress within and at the end of epochs.
    fn event(&mut self, _event: Event) {}
    /// The model folder is written.
    fn model_saved(&mut self, _out: &Path) {}
    /// The test set is evaluated.
    fn tested(&mut self, _metrics: &Metrics, _seconds: f64) {}
    /// The report is written to `dir`.
    fn report_written(&mut self, _summary: &ReportSummary, _dir: &Path) {}
    /// Kernel timings of a few training steps after the run.
    fn profiled(&mut self, _report: &ProfileReport) {}
}

/// An observer that wants to know nothing.
pub struct Silent;

impl Observer for Silent {}

/// What `training_starts` is told.
pub struct TrainingStart<'a> {
    pub model: &'a Sequential,
    pub train_images: usize,
    pub val_images: usize,
    pub fit: &'a FitConfig,
    pub optimizer: &'a Optimizer,
}

/// Where training starts from.
#[derive(Clone, Debug)]
pub enum Start {
    /// A preset (the notebook's model, or the book's deeper one) sized to the data, with fresh
    /// weights from the seed.
    Preset(Preset),
    /// A saved model (ours or Keras files), to fine-tune.
    Model(PathBuf),
    /// An architecture read from a file ([`load_architecture`]), with fresh weights from the seed
    /// drawn by each tensor's initialiser.
    Config(Sequential),
    /// A checkpoint folder: its model, optimizer, progress and every setting it records (data, out,
    /// fit, optimizer, validation split, tiling), whatever `SessionOptions` says of them, except that
    /// a larger `fit.epochs` extends the run, and `out` naming the folder that holds the checkpoint
    /// now (moved or copied since) continues the run there. [`resume::resume_options`] refuses
    /// flags that contradict the record.
    Resume(PathBuf),
}

/// Everything `train` needs.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    pub data: DataOptions,
    pub gpu: GpuOptions,
    pub start: Start,
    pub fit: FitConfig,
    pub optimizer: Optimizer,
    /// Fraction of the training set, taken from its end before shuffling, used for validation.
    pub validation_split: f64,
    /// The output folder: model, history, checkpoint and report.
    pub out: PathBuf,
    /// After the run, time each kernel of a few training steps.
    pub profile: bool,
}

/// How a session ended.
#[derive(Debug)]
pub enum SessionOutcome {
    /// Every epoch ran.
    Finished {
        history: Vec<EpochLog>,
        /// On the test set; `None` when the data set has none (or no output folder was asked for).
        test: Option<Metrics>,
    },
    /// Stopped on request after a batch; the checkpoint to resume from, when there is an output folder.
    Interrupted {
        progress: Progress,
        checkpoint: Option<PathBuf>,
    },
}

/// The session with its data and device in hand: what `train` runs once both are there, and what the
/// benchmark runs on its own data.
pub struct Plan {
    pub model: Sequential,
    pub params: Vec<f32>,
    pub optimizer: Optimizer,
    pub fit: FitConfig,
    pub validation_split: f64,
    /// State to continue from.
    pub resume: Option<Checkpoint>,
    /// Where checkpoints, the model folder and the report go; `None` keeps everything in memory and
    /// skips the test set.
    pub out: Option<PathBuf>,
    pub profile: bool,
    /// When the session started, for the report's wall time.
    pub started: Instant,
}

/// Asked after every batch whether to stop there (Ctrl-C in the CLI).
pub type Stop<'a> = &'a dyn Fn(&Progress) -> bool;

/// `cifar-wgpu train`: the whole session. The output folder is locked for the whole session
/// ([`folder::lock`]): a second run into it is refused, naming this one.
pub fn train(
    opts: &SessionOptions,
    stop: Stop,
    observer: &mut dyn Observer,
) -> Result<SessionOutcome, SessionError> {
    let started = Instant::now();
    if opts.fit.batch_size == 0 || opts.fit.epochs == 0 {
        return Err("--epochs and --batch-size must be positive".into());
    }
    let resume = match &opts.start {
        Start::Resume(dir) => Some(Checkpoint::load(dir)?),
        _ => None,
    };
    // A resumed run reads the data, writes the folder and runs the kernels it recorded.
    let (data_opts, out, gpu_opts) = match &resume {
        Some(c) => {
            let r = &c.state.run;
            let tiling = FlavourChoice::from_str(&r.tiling, false).map_err(|_| {
                format!(
                    "{}: tiling '{}' is not one this version knows",
                    resumed_dir(opts).display(),
                    r.tiling
                )
            })?;
            let data = DataOptions {
                data: r.data.clone(),
                image_size: r.image_size,
                ..opts.data.clone()
            };
            let gpu = GpuOptions {
                tiling: tiling.forced(),
                matmul_subgroups: tiling.subgroups(),
                ..opts.gpu.clone()
            };
            // The recorded folder, or the one now holding the checkpoint when `opts.out` names it.
            let holder = checkpoint_holder(resumed_dir(opts))?;
            let out = if same_folder(&opts.out, &holder) {
                holder
            } else {
                r.out.clone()
            };
            (data, out, gpu)
        }
        None => (opts.data.clone(), absolute(&opts.out)?, opts.gpu.clone()),
    };
    let ds = load_data(&data_opts, observer)?;
    check_writable(&out)?;
    let (_lock, note) = folder::lock(&out)?;
    if let Some(note) = note {
        observer.warning(&note);
    }
    let record = match &resume {
        Some(c) => {
            let r = &c.state.run;
            let seen = DataRecord::of(&ds);
            if seen != r.dataset {
                return Err(format!(
                    "--data {}: not the data run {} trained on ({} with {} training images, \
                     SHA-256 {}; now {} with {}, SHA-256 {}); a resumed run must read the same data",
                    ds.source.display(),
                    r.run_id,
                    r.dataset.name,
                    r.dataset.train_images,
                    r.dataset.train_sha256,
                    seen.name,
                    seen.train_images,
                    seen.train_sha256
                )
                .into());
            }
            RunRecord {
                out: out.clone(),
                ..r.clone()
            }
        }
        None => RunRecord {
            run_id: new_run_id(),
            data: opts.data.data.as_deref().map(absolute).transpose()?,
            image_size: opts.data.image_size,
            dataset: DataRecord::of(&ds),
            out: out.clone(),
            preset: match &opts.start {
                Start::Preset(p) => Some(flag_value(p)),
                _ => None,
            },
            model: match &opts.start {
                Start::Model(m) => Some(absolute(m)?),
                _ => None,
            },
            tiling: flag_value(&flavour_choice(&opts.gpu)),
        },
    };
    let plan = match resume {
        Some(c) => Plan {
            model: c.model.model.clone(),
            params: c.model.params.clone(),
            optimizer: c.state.optimizer.clone(),
            fit: FitConfig {
                epochs: opts.fit.epochs.max(c.state.fit.epochs),
                ..c.state.fit.clone()
            },
            validation_split: c.state.validation_split,
            resume: Some(c),
            out: Some(out.clone()),
            profile: opts.profile,
            started,
        },
        None => {
            let (model, params) = match &opts.start {
                Start::Model(dir) => {
                    let saved = load_model(dir)?;
                    (saved.model, saved.params)
                }
                Start::Preset(preset) => {
                    let model = preset.build([ds.height, ds.width, ds.channels], ds.num_classes());
                    let params = model.init_params(opts.fit.seed)?;
                    (model, params)
                }
                Start::Config(model) => {
                    let params = model.init_params(opts.fit.seed)?;
                    (model.clone(), params)
                }
                Start::Resume(_) => unreachable!("a resumed run starts from its checkpoint"),
            };
            Plan {
                model,
                params,
                optimizer: opts.optimizer.clone(),
                fit: opts.fit.clone(),
                validation_split: opts.validation_split,
                resume: None,
                out: Some(out.clone()),
                profile: opts.profile,
                started,
            }
        }
    };
    check_fits(&plan.model, &ds)?;
    training_split(&ds, plan.validation_split)?;
    let gpu = open_gpu(&gpu_opts, observer)?;
    run_recorded(&gpu, &ds, plan, Some(record), stop, observer)
}

/// The checkpoint folder a resumed session names in its errors.
fn resumed_dir(opts: &SessionOptions) -> &Path {
    match &opts.start {
        Start::Resume(dir) => dir,
        _ => &opts.out,
    }
}

/// The `--tiling` choice that `gpu`'s tiling fields came from (`FlavourChoice::forced` and
/// `subgroups`), to record it.
fn flavour_choice(gpu: &GpuOptions) -> FlavourChoice {
    match (gpu.tiling, gpu.matmul_subgroups) {
        (Some(Tiling::Shared), _) => FlavourChoice::Shared,
        (Some(Tiling::Registers), Some(true)) => FlavourChoice::Subgroups,
        (Some(Tiling::Registers), _) => FlavourChoice::Registers,
        (None, _) => FlavourChoice::Auto,
    }
}

/// Whether two paths name one folder: the same after resolving links, or, where either does not
/// exist, the same absolute path.
pub fn same_folder(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => std::path::absolute(a).ok() == std::path::absolute(b).ok(),
    }
}

/// The folder holding the checkpoint folder `dir`, absolute: the run's --out unless it was moved.
pub fn checkpoint_holder(dir: &Path) -> Result<PathBuf, SessionError> {
    let dir = absolute(dir)?;
    Ok(dir.parent().map_or(dir.clone(), Path::to_path_buf))
}

/// A run's id: 128 random bits in hex, recorded in every checkpoint's manifest and progress.
fn new_run_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A flag's value as the user types it (`--tiling shared`, `--preset notebook`).
pub fn flag_value(v: &impl ValueEnum) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
}

/// `path` made absolute against the working folder, so a resume from elsewhere finds it.
fn absolute(path: &Path) -> Result<PathBuf, SessionError> {
    std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()).into())
}

/// Trains `plan` on `ds`: places the model, fits (checkpointing after every epoch and on a stop
/// when there is an output folder), then saves the model, evaluates and reports on the test set and
/// profiles as the plan asks.
pub fn run(
    gpu: &Gpu,
    ds: &Dataset,
    plan: Plan,
    stop: Stop,
    observer: &mut dyn Observer,
) -> Result<SessionOutcome, SessionError> {
    run_recorded(gpu, ds, plan, None, stop, observer)
}

/// [`run`], its checkpoints recording `record` (`None`: a fresh run id and what the plan and data
/// tell, or the resumed checkpoint's record).
fn run_recorded(
    gpu: &Gpu,
    ds: &Dataset,
    plan: Plan,
    record: Option<RunRecord>,
    stop: Stop,
    observer: &mut dyn Observer,
) -> Result<SessionOutcome, SessionError> {
    let record = match (record, &plan.resume, &plan.out) {
        (Some(r), _, _) => r,
        (None, Some(c), _) => c.state.run.clone(),
        (None, None, Some(out)) => RunRecord {
            run_id: new_run_id(),
            data: Some(ds.source.clone()),
            dataset: DataRecord::of(ds),
            out: out.clone(),
            tiling: flag_value(&FlavourChoice::Auto),
            ..RunRecord::default()
        },
        (None, None, None) => RunRecord::default(),
    };
    let fit = &plan.fit;
    let split = training_split(ds, plan.validation_split)?;
    let evaluated = ds.test.len().max(ds.train.len() - split);
    check_data_buffers(gpu, split, evaluated, ds.num_classes())?;
    let train_images = upload(gpu, &ds.train.images, &ds.train.labels, ds)?;
    let test_images = match &plan.out {
        Some(_) if !ds.test.is_empty() => Some(upload(gpu, &ds.test.images, &ds.test.labels, ds)?),
        _ => None,
    };
    let mut net = place(
        gpu,
        &plan.model,
        plan.optimizer.clone(),
        &plan.params,
        fit.batch_size,
        fit.seed,
    )?;
    net.set_augment(gpu, fit.augment.as_ref())?;
    let mut trainer = Trainer::new(gpu, net);
    if let Some(c) = &plan.resume {
        trainer.restore(c)?;
        observer.resumed(&c.state.progress);
    }
    let (train_split, val_split) = DeviceSplit::train_and_validation(&train_images, split);
    observer.training_starts(&TrainingStart {
        model: &plan.model,
        train_images: train_split.len(),
        val_images: val_split.len(),
        fit,
        optimizer: &trainer.net.optimizer,
    })?;
    let checkpoint = plan.out.as_deref().map(checkpoint_dir);
    while trainer.progress.epoch < fit.epochs {
        let done = trainer.train_epoch(fit, &train_split, Some(&val_split), stop, &mut |e| {
            observer.event(e)
        })?;
        if let Some(dir) = &checkpoint {
            trainer
                .checkpoint(&ds.class_names, fit, plan.validation_split, &record)?
                .save(dir)?;
        }
        if done.is_none() {
            return Ok(SessionOutcome::Interrupted {
                progress: trainer.progress.clone(),
                checkpoint,
            });
        }
    }
    let mut test = None;
    if let Some(out) = &plan.out {
        let saved = SavedModel {
            model: plan.model.clone(),
            class_names: ds.class_names.clone(),
            params: trainer.net.read_params(gpu)?,
        };
        // One folder swap: a crash leaves the previous model files or these, never a mix.
        output::save_model_folder(out, &saved, &trainer.history)?;
        observer.model_saved(out);
        if let Some(images) = &test_images {
            let settings = vec![
                (
                    "data".to_string(),
                    format!("{} ({})", ds.name, ds.source.display()),
                ),
                ("epochs".to_string(), fit.epochs.to_string()),
                ("batch size".to_string(), fit.batch_size.to_string()),
                (
                    "optimizer".to_string(),
                    format!("{:?}", trainer.net.optimizer),
                ),
                (
                    "validation split".to_string(),
                    plan.validation_split.to_string(),
                ),
                ("shuffle".to_string(), fit.shuffle.to_string()),
                ("seed".to_string(), fit.seed.to_string()),
                (
                    "augmentation".to_string(),
                    fit.augment
                        .as_ref()
                        .map_or("none".to_string(), |a| a.describe()),
                ),
            ];
            let history = trainer.history.clone();
            let request = ReportRequest {
                dir: out,
                history: &history,
                settings,
                seconds: plan.started.elapsed().as_secs_f64(),
                augment: fit.augment.as_ref().map(|a| (a, fit.seed)),
            };
            let (m, _) = test_and_report(
                &mut trainer,
                images,
                ds,
                fit.batch_size,
                Some(request),
                observer,
            )?;
            test = Some(m);
        }
    }
    if plan.profile {
        // Last, because profiled steps train: the saved model and its evaluation come first.
        let (report, _) =
            profile::profile_steps(gpu, &trainer.net, &train_images, fit.batch_size, 2, 5, true)?;
        observer.profiled(&report);
    }
    Ok(SessionOutcome::Finished {
        history: trainer.history,
        test,
    })
}

/// `cifar-wgpu profile`: the notebook's model sized to the data set at `data` (default: `batch`
/// random CIFAR-shaped images, made only once the batch is known to fit the adapter), with fresh
/// weights (seed 0), profiled on the first `batch` training images.
pub fn profile(
    gpu: &Gpu,
    data: Option<&Path>,
    optimizer: Optimizer,
    batch: usize,
    warmup: usize,
    steps: usize,
    allow_timestamps: bool,
) -> Result<(ProfileReport, Vec<StepTiming>), SessionError> {
    let ds = match data {
        Some(path) => data::read(path, None)?,
        None => {
            let model = Sequential::notebook([32, 32, 3], 10);
            check_memory(gpu, &model, &optimizer, batch)?;
            data::synthetic::random_like_cifar(batch, 0, 0)
        }
    };
    let ds = &ds;
    let model = Sequential::notebook([ds.height, ds.width, ds.channels], ds.num_classes());
    let images = upload(gpu, &ds.train.images, &ds.train.labels, ds)?;
    let net = place(gpu, &model, optimizer, &model.init_params(0)?, batch, 0)?;
    Ok(profile::profile_steps(
        gpu,
        &net,
        &images,
        batch,
        warmup,
        steps,
        allow_timestamps,
    )?)
}

/// `evaluate` and `report`: a saved model on a data set's test images.
#[derive(Clone, Debug)]
pub struct EvaluateOptions {
    /// Our model folder or Keras files.
    pub model: PathBuf,
    pub data: DataOptions,
    pub gpu: GpuOptions,
    pub batch_size: usize,
    /// Write the report (with the model folder's history) here.
    pub report: Option<PathBuf>,
}

/// The test set's results of a saved model.
#[derive(Clone, Debug)]
pub struct Evaluation {
    pub metrics: Metrics,
    pub class_names: Vec<String>,
    /// (correct, images) per true class.
    pub per_class: Vec<(usize, usize)>,
}

pub fn evaluate(
    opts: &EvaluateOptions,
    observer: &mut dyn Observer,
) -> Result<Evaluation, SessionError> {
    let started = Instant::now();
    let saved = load_model(&opts.model)?;
    let ds = load_data(&opts.data, observer)?;
    check_fits(&saved.model, &ds)?;
    if ds.test.is_empty() {
        return Err(format!("{} has no test images to evaluate on", ds.name).into());
    }
    let gpu = open_gpu(&opts.gpu, observer)?;
    check_data_buffers(&gpu, 0, ds.test.len(), ds.num_classes())?;
    let test = upload(&gpu, &ds.test.images, &ds.test.labels, &ds)?;
    let mut trainer = inference(&gpu, &saved, opts.batch_size.min(ds.test.len()))?;
    let history = match &opts.report {
        Some(_) => history::load(&opts.model)?,
        None => Vec::new(),
    };
    // A training folder's checkpoint says whether the run augmented: the report then shows how.
    let run = match &opts.report {
        Some(_) if checkpoint_dir(&opts.model).is_dir() => {
            Some(Checkpoint::load(&checkpoint_dir(&opts.model))?.state.fit)
        }
        _ => None,
    };
    let request = opts.report.as_deref().map(|dir| ReportRequest {
        dir,
        history: &history,
        settings: vec![
            ("model".to_string(), opts.model.display().to_string()),
            (
                "data".to_string(),
                format!("{} ({})", ds.name, ds.source.display()),
            ),
        ],
        seconds: started.elapsed().as_secs_f64(),
        augment: run
            .as_ref()
            .and_then(|fit| fit.augment.as_ref().map(|a| (a, fit.seed))),
    });
    let (metrics, logits) =
        test_and_report(&mut trainer, &test, &ds, opts.batch_size, request, observer)?;
    let predicted = argmax_rows(&logits, ds.num_classes());
    Ok(Evaluation {
        metrics,
        per_class: per_class_accuracy(&predicted, &ds.test.labels, ds.num_classes()),
        class_names: ds.class_names,
    })
}

/// One image's most probable classes.
#[derive(Clone, Debug)]
pub struct Prediction {
    pub image: PathBuf,
    /// (class, softmax probability), most probable first.
    pub top: Vec<(usize, f32)>,
}

/// `predict`: the `k` most probable classes of every PNG or JPEG in `images` (folders searched),
/// resized to the model's input, with the model's class names.
pub fn predict(
    model: &Path,
    images: &[PathBuf],
    k: usize,
    batch_size: usize,
    gpu: &GpuOptions,
    observer: &mut dyn Observer,
) -> Result<(Vec<String>, Vec<Prediction>), SessionError> {
    let saved = load_model(model)?;
    let [h, w, c] = saved.model.input_shape;
    let files = data::image_files(images)?;
    if files.is_empty() {
        return Err("no PNG or JPEG images found in the given paths".into());
    }
    let mut bytes = Vec::with_capacity(files.len() * h * w * c);
    for f in &files {
        bytes.extend(data::read_image(f, h, w, c)?);
    }
    let gpu = open_gpu(gpu, observer)?;
    check_data_buffers(&gpu, 0, files.len(), saved.model.classes()?)?;
    let labels = vec![0u8; files.len()];
    let device = upload_images(&gpu, &bytes, &labels, h * w * c, gpu.max_binding_bytes())?;
    let mut trainer = inference(&gpu, &saved, batch_size.min(files.len()))?;
    let (_, logits) = trainer.evaluate_with_logits(&DeviceSplit::all(&device), batch_size)?;
    check_outputs(&logits, &format!("the model {}", model.display()))?;
    let classes = saved.class_names.len();
    let predictions = files
        .into_iter()
        .zip(logits.chunks(classes))
        .map(|(image, row)| Prediction {
            image,
            top: top_k(row, k),
        })
        .collect();
    Ok((saved.class_names, predictions))
}

/// `--model PATH`: our own folder, or Keras files (a `.keras` archive, a JSON + weights pair, a
/// legacy `.h5`, or a folder holding them).
pub fn load_model(path: &Path) -> Result<SavedModel, SessionError> {
    Ok(if keras::is_keras_path(path) {
        keras::load(path)?
    } else {
        SavedModel::load(path)?
    })
}

/// `--config FILE`: an architecture to train from fresh weights (Keras' `model.to_json()`, a
/// `.keras` archive or our `model.json`), with the optimizer its compile settings name, if any.
pub fn load_architecture(path: &Path) -> Result<keras::Architecture, SessionError> {
    Ok(keras::load_architecture(path)?)
}

fn load_data(opts: &DataOptions, observer: &mut dyn Observer) -> Result<Dataset, SessionError> {
    let t = Instant::now();
    let ds = data::load(opts)?;
    observer.data_loaded(&ds, t.elapsed().as_secs_f64());
    Ok(ds)
}

fn open_gpu(opts: &GpuOptions, observer: &mut dyn Observer) -> Result<Gpu, SessionError> {
    let gpu = Gpu::new(opts)?;
    observer.gpu_opened(&gpu);
    Ok(gpu)
}

/// A saved model placed on the GPU to evaluate or predict: no training step runs, so the optimizer
/// (and its state) and the dropout seed play no part.
fn inference<'g>(
    gpu: &'g Gpu,
    saved: &SavedModel,
    batch_size: usize,
) -> Result<Trainer<'g>, SessionError> {
    let net = place(
        gpu,
        &saved.model,
        Optimizer::rmsprop_default(),
        &saved.params,
        batch_size,
        0,
    )?;
    Ok(Trainer::new(gpu, net))
}

/// `Network::new` with the device's errors caught: besides its own up-front check of the adapter's
/// limits, anything the device refuses while the buffers and pipelines are made is our error.
fn place(
    gpu: &Gpu,
    model: &Sequential,
    optimizer: Optimizer,
    params: &[f32],
    max_batch: usize,
    seed: u64,
) -> Result<Network, SessionError> {
    let net = gpu.catching("placing the model on the GPU", || {
        Network::new(gpu, model, optimizer, params, max_batch, seed)
    })??;
    Ok(net)
}

fn upload(
    gpu: &Gpu,
    images: &[u8],
    labels: &[u8],
    ds: &Dataset,
) -> Result<DeviceImages, SessionError> {
    Ok(upload_images(
        gpu,
        images,
        labels,
        ds.image_bytes(),
        gpu.max_binding_bytes(),
    )?)
}

fn check_fits(model: &Sequential, ds: &Dataset) -> Result<(), SessionError> {
    let want = [ds.height, ds.width, ds.channels];
    if model.input_shape != want || model.classes()? != ds.num_classes() {
        return Err(format!(
            "the model takes {:?} images and predicts {} classes, but {} has {:?} images and {} classes",
            model.input_shape,
            model.classes()?,
            ds.name,
            want,
            ds.num_classes()
        )
        .into());
    }
    Ok(())
}

/// The number of training images after the validation split: at least one, since a run over none
/// would report a loss of 0 and save an untrained model as if it had learned.
fn training_split(ds: &Dataset, validation_split: f64) -> Result<usize, SessionError> {
    let split = data::validation_split_index(ds.train.len(), validation_split)?;
    if split == 0 {
        return Err(format!("{} has no training images to train on", ds.name).into());
    }
    Ok(split)
}

/// `--out` must be writable before the first epoch, not found unwritable after it: the checkpoint
/// goes inside the folder and the model is staged beside it, so both it (or, while it does not exist,
/// its nearest existing ancestor) and its parent are probed by creating and removing a folder.
fn check_writable(out: &Path) -> Result<(), SessionError> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut probes = vec![out, parent];
    probes.retain(|p| p.exists());
    if probes.is_empty() {
        probes.extend(out.ancestors().find(|a| a.exists()));
    }
    for dir in probes {
        let probe = dir.join(format!(".cifar-wgpu-write-probe-{}", std::process::id()));
        std::fs::create_dir(&probe)
            .and_then(|()| std::fs::remove_dir(&probe))
            .map_err(|e| {
                format!(
                    "--out {}: cannot write in {} ({e}); choose another --out",
                    out.display(),
                    dir.display()
                )
            })?;
    }
    Ok(())
}

/// NaN or infinite outputs are an error, not a result: argmax and softmax of them would print
/// "NaN%" or a class picked by comparison rules. They come from NaN or huge weights.
fn check_outputs(logits: &[f32], model: &str) -> Result<(), SessionError> {
    let bad = logits.iter().filter(|v| !v.is_finite()).count();
    if bad > 0 {
        return Err(format!(
            "{model} gives {bad} NaN or infinite outputs (of {}): its weights are NaN, \
             infinite or too large; retrain it or load another model",
            logits.len()
        )
        .into());
    }
    Ok(())
}

/// What the report page says about the run, beside the model's results.
struct ReportRequest<'a> {
    dir: &'a Path,
    history: &'a [EpochLog],
    settings: Vec<(String, String)>,
    /// Wall time of the session before the test set.
    seconds: f64,
    /// The run's augmentation and seed, for the report's grid of augmented samples.
    augment: Option<(&'a crate::data::augment::Augment, u64)>,
}

/// The test set's metrics and logits, and the report when asked for.
fn test_and_report(
    trainer: &mut Trainer,
    test: &DeviceImages,
    ds: &Dataset,
    batch_size: usize,
    report_to: Option<ReportRequest>,
    observer: &mut dyn Observer,
) -> Result<(Metrics, Vec<f32>), SessionError> {
    let t = Instant::now();
    let (m, logits) = trainer.evaluate_with_logits(&DeviceSplit::all(test), batch_size)?;
    check_outputs(&logits, "the model")?;
    observer.tested(&m, t.elapsed().as_secs_f64());
    if let Some(r) = report_to {
        let summary = report::write_report(
            r.dir,
            &ReportInputs {
                history: r.history,
                class_names: &ds.class_names,
                test: &ds.test,
                height: ds.height,
                width: ds.width,
                channels: ds.channels,
                logits: &logits,
                settings: r.settings,
                adapter: trainer.adapter_name(),
                seconds: r.seconds,
                augment: r.augment,
            },
        )?;
        observer.report_written(&summary, r.dir);
    }
    Ok((m, logits))
}
