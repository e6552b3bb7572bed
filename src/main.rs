//! The `cifar-wgpu` command: argument parsing and presentation over the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use cifar_wgpu::data::augment::{Augment, FillMode};
use cifar_wgpu::data::{self, DataOptions, Dataset};
use cifar_wgpu::gpu::{
    self, BackendChoice, FlavourChoice, Gpu, GpuOptions, LimitsChoice, StepsPerSubmission,
};
use cifar_wgpu::model::io::write_atomic;
use cifar_wgpu::model::{Preset, folder};
use cifar_wgpu::optimizer::Optimizer;
use cifar_wgpu::report::ReportSummary;
use cifar_wgpu::session::{
    self, EvaluateOptions, Observer, SessionError, SessionOptions, SessionOutcome, Start,
    TrainingStart, bench, resume,
};
use cifar_wgpu::train::profile::{self, ProfileReport};
use cifar_wgpu::train::{Event, FitConfig, Metrics, Progress, output};

/// Any failure, printed as `error: ...`.
type Error = SessionError;

#[derive(Parser)]
#[command(
    name = "cifar-wgpu",
    version,
    about = "Train convolutional networks on any GPU through WebGPU",
    long_about = "Train convolutional networks on any GPU through WebGPU.\n\n\
                  `cifar-wgpu train` reproduces the Keras notebook \"Recognizing CIFAR-10 Images\": \
                  the same model, RMSprop, batch 128, 20 epochs, a validation split of 0.2."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct GpuArgs {
    /// Graphics API (`auto` honours WGPU_BACKEND).
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    /// Use the adapter whose name contains this (default: WGPU_ADAPTER_NAME, else the best GPU).
    #[arg(long)]
    adapter: Option<String>,
    /// Keep naga's run-time bounds checks in the shaders (slower; for debugging kernels).
    #[arg(long)]
    shader_bounds_checks: bool,
    /// Kernel flavours for every operation that has several (dense products, convolution tiles,
    /// column sums): `registers` (big register tiles, one invocation per column sum: for software
    /// adapters), `subgroups` (the same with the dense products sharing A through subgroups; an
    /// error where the adapter has no subgroups of 8 or more lanes), `shared` (shared-memory matmul
    /// with split-K, small convolution tiles, a workgroup per column sum: for GPUs); `auto` picks by
    /// the adapter: `shared` on GPUs, else `subgroups` where subgroups are exactly 8 wide
    /// (lavapipe), else `registers`.
    #[arg(long, value_enum, default_value_t = FlavourChoice::Auto)]
    tiling: FlavourChoice,
    /// Device limits to request: `adapter` (all it offers) or `webgpu` (WebGPU's defaults, the floor
    /// of every conformant adapter: proves a run fits any GPU). Default: CIFAR_WGPU_LIMITS, else
    /// `adapter`.
    #[arg(long, value_enum)]
    limits: Option<LimitsChoice>,
    /// Training steps recorded into one submission: `auto` (about 25 ms of GPU work each, measured
    /// as training runs: one step on a software adapter, dozens on a fast GPU) or a number from 1
    /// to 256. Results are the same bit for bit whatever it is.
    #[arg(long, default_value = "auto", value_parser = StepsPerSubmission::parse)]
    steps_per_submission: StepsPerSubmission,
}

impl GpuArgs {
    fn options(&self) -> GpuOptions {
        GpuOptions {
            backend: self.backend,
            adapter: self.adapter.clone(),
            shader_bounds_checks: self.shader_bounds_checks,
            tiling: self.tiling.forced(),
            matmul_subgroups: self.tiling.subgroups(),
            limits: self.limits,
            steps_per_submission: self.steps_per_submission,
            ..GpuOptions::default()
        }
    }

    fn open(&self) -> Result<Gpu, Error> {
        let gpu = Gpu::new(&self.options())?;
        print_adapter(&gpu);
        Ok(gpu)
    }
}

fn print_adapter(gpu: &Gpu) {
    eprintln!(
        "adapter: {} ({:?}, {:?}), kernels: {}",
        gpu.info.name, gpu.info.backend, gpu.info.device_type, gpu.flavours
    );
}

#[derive(Args, Clone)]
struct DataArgs {
    /// A CIFAR-10 archive (binary or Python, .tar.gz or extracted), a folder of IDX files
    /// (MNIST, Fashion-MNIST) or a folder with one subfolder of images per class.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Where downloads are cached (default: $CIFAR_WGPU_CACHE, else the user's cache folder).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Never download; fail with instructions if no local copy is found.
    #[arg(long)]
    offline: bool,
    /// Resize images of an image folder to HEIGHTxWIDTH (default: the first image's size).
    #[arg(long, value_parser = parse_size)]
    image_size: Option<(usize, usize)>,
}

impl DataArgs {
    fn options(&self) -> DataOptions {
        DataOptions {
            data: self.data.clone(),
            cache_dir: self.cache_dir.clone(),
            image_size: self.image_size,
            offline: self.offline,
            progress: true,
            ..DataOptions::default()
        }
    }
}

fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let (h, w) = s
        .split_once(['x', 'X', ','])
        .ok_or("expected HEIGHTxWIDTH, e.g. 32x32")?;
    let parse = |v: &str| v.trim().parse::<usize>().map_err(|e| format!("{v}: {e}"));
    let (h, w) = (parse(h)?, parse(w)?);
    if h == 0 || w == 0 {
        return Err("sizes must be positive".into());
    }
    Ok((h, w))
}

/// Counts (batch size, epochs, steps): at least 1, since 0 would divide by zero or do nothing.
fn positive(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>().map_err(|e| format!("{s}: {e}"))? {
        0 => Err("must be at least 1".into()),
        n => Ok(n),
    }
}

/// Learning rates and epsilons: finite and above 0 (a negative rate climbs the loss, NaN poisons it).
fn positive_finite(s: &str) -> Result<f32, String> {
    let v = s.trim().parse::<f32>().map_err(|e| format!("{s}: {e}"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("{s} must be a finite number above 0"))
    }
}

/// Fractions and decay rates: in [0, 1), as Keras requires of validation_split, rho and the betas.
fn fraction<T: std::str::FromStr + Into<f64> + Copy>(s: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    let v = s.trim().parse::<T>().map_err(|e| format!("{s}: {e}"))?;
    if (0.0..1.0).contains(&v.into()) {
        Ok(v)
    } else {
        Err(format!("{s} must be at least 0 and below 1"))
    }
}

/// Serialized with `OptimizerArgs` by the names `model.json` gives the kinds, for `--resume`.
#[derive(Clone, Copy, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum OptimizerName {
    Rmsprop,
    Sgd,
    Adam,
}

/// Serialized (each setting by its flag's id, null or false where not given) for `--resume`, which
/// compares the settings given with the run's.
#[derive(Args, Serialize)]
struct OptimizerArgs {
    /// The optimizer (default: rmsprop, or the one a --config file's compile settings name); each
    /// takes Keras' defaults, or the file's settings, unless a flag below overrides them.
    #[arg(long, value_enum)]
    optimizer: Option<OptimizerName>,
    /// Learning rate (Keras: 0.001 for RMSprop and Adam, 0.01 for SGD).
    #[arg(long, value_parser = positive_finite)]
    lr: Option<f32>,
    /// RMSprop: decay of the moving average of squared gradients.
    #[arg(long, value_parser = fraction::<f32>)]
    rho: Option<f32>,
    /// SGD and RMSprop: momentum.
    #[arg(long, value_parser = fraction::<f32>)]
    momentum: Option<f32>,
    /// SGD: Nesterov momentum.
    #[arg(long)]
    nesterov: bool,
    /// RMSprop: normalise by the centred second moment.
    #[arg(long)]
    centered: bool,
    /// RMSprop: epsilon outside the square root, as standalone Keras 2.3 computed it.
    #[arg(long)]
    legacy_epsilon: bool,
    /// Adam: decay of the first moment.
    #[arg(long, value_parser = fraction::<f32>)]
    beta1: Option<f32>,
    /// Adam: decay of the second moment.
    #[arg(long, value_parser = fraction::<f32>)]
    beta2: Option<f32>,
    /// Adam: AMSGrad variant.
    #[arg(long)]
    amsgrad: bool,
    /// RMSprop and Adam: epsilon (Keras: 1e-7).
    #[arg(long, value_parser = positive_finite)]
    epsilon: Option<f32>,
}

impl OptimizerArgs {
    fn build(&self) -> Optimizer {
        self.over(Optimizer::rmsprop_default())
    }

    /// The flags over `base` (Keras' RMSprop, or a --config file's optimizer): an --optimizer of
    /// another kind starts from that kind's Keras defaults, each setting given replaces the base's
    /// and each switch given turns its option on.
    fn over(&self, base: Optimizer) -> Optimizer {
        let base = match (self.optimizer, &base) {
            (None, _)
            | (Some(OptimizerName::Rmsprop), Optimizer::RmsProp { .. })
            | (Some(OptimizerName::Sgd), Optimizer::Sgd { .. })
            | (Some(OptimizerName::Adam), Optimizer::Adam { .. }) => base,
            (Some(OptimizerName::Rmsprop), _) => Optimizer::rmsprop_default(),
            (Some(OptimizerName::Sgd), _) => Optimizer::sgd_default(),
            (Some(OptimizerName::Adam), _) => Optimizer::adam_default(),
        };
        match base {
            Optimizer::RmsProp {
                lr,
                rho,
                momentum,
                epsilon,
                centered,
                legacy_epsilon,
            } => Optimizer::RmsProp {
                lr: self.lr.unwrap_or(lr),
                rho: self.rho.unwrap_or(rho),
                momentum: self.momentum.unwrap_or(momentum),
                epsilon: self.epsilon.unwrap_or(epsilon),
                centered: centered || self.centered,
                legacy_epsilon: legacy_epsilon || self.legacy_epsilon,
            },
            Optimizer::Sgd {
                lr,
                momentum,
                nesterov,
            } => Optimizer::Sgd {
                lr: self.lr.unwrap_or(lr),
                momentum: self.momentum.unwrap_or(momentum),
                nesterov: nesterov || self.nesterov,
            },
            Optimizer::Adam {
                lr,
                beta1,
                beta2,
                epsilon,
                amsgrad,
            } => Optimizer::Adam {
                lr: self.lr.unwrap_or(lr),
                beta1: self.beta1.unwrap_or(beta1),
                beta2: self.beta2.unwrap_or(beta2),
                epsilon: self.epsilon.unwrap_or(epsilon),
                amsgrad: amsgrad || self.amsgrad,
            },
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// List every GPU adapter wgpu can see, with the limits that matter for training.
    Adapters {
        #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
        backend: BackendChoice,
    },
    /// Download and verify CIFAR-10, or show what is cached.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Print the model's layers, output shapes and parameter counts, as Keras' model.summary().
    Summary {
        /// Take the input shape and classes from this data set (default: CIFAR-10's 32x32x3, 10).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Summarise a saved model instead of a preset.
        #[arg(long, conflicts_with = "preset")]
        model: Option<PathBuf>,
        /// Summarise an architecture file (as `train --config` takes it) instead of a preset.
        #[arg(long, conflicts_with_all = ["model", "preset"])]
        config: Option<PathBuf>,
        /// The architecture to summarise: the notebook's model or the book's deeper network.
        #[arg(long, value_enum, default_value_t = Preset::Notebook)]
        preset: Preset,
    },
    /// Train the notebook's model (model.fit), save it and evaluate it on the test set.
    Train(Box<TrainArgs>),
    /// Time the notebook's recipe (one warm-up epoch, then the best of EPOCHS) on synthetic
    /// CIFAR-shaped data, or on --data; prints and optionally writes the result as JSON.
    Bench {
        #[arg(long, default_value_t = 2, value_parser = positive)]
        epochs: usize,
        #[arg(long, default_value_t = 128, value_parser = positive)]
        batch_size: usize,
        /// Benchmark on this data set instead of 50,000 random 32x32x3 images.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Also write the result to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        #[command(flatten)]
        gpu: GpuArgs,
    },
    /// Time each kernel of a training step of the notebook's recipe (GPU timestamps when the adapter
    /// has them), on synthetic data of the right shape unless --data is given.
    Profile(Box<ProfileArgs>),
    /// Write curves, the confusion matrix, per-class metrics, sample predictions and an HTML page for
    /// a saved model (the same files `train` writes at its end).
    Report {
        /// A folder written by `train`.
        #[arg(long)]
        model: PathBuf,
        /// Where to write (default: the model's folder).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, default_value_t = 128, value_parser = positive)]
        batch_size: usize,
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        gpu: GpuArgs,
    },
    /// The top-3 classes of each image (PNG/JPEG of any size, resized to the model's input; folders are
    /// searched), as a table or JSON.
    Predict {
        /// Our model folder or Keras files.
        #[arg(long)]
        model: PathBuf,
        /// Images or folders of images.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// One JSON object per image instead of a table.
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 128, value_parser = positive)]
        batch_size: usize,
        #[command(flatten)]
        gpu: GpuArgs,
    },
    /// Write a model (our folder, a training checkpoint, or Keras files) as a complete model folder:
    /// our model.json and weights.bin, and Keras' four files, published together.
    Export {
        /// Our model folder, a checkpoint folder, or Keras files.
        #[arg(long)]
        model: PathBuf,
        /// The folder to write (created if needed; other files in it are kept).
        #[arg(long)]
        out: PathBuf,
    },
    /// Evaluate a saved model on the test set (model.evaluate), with per-class accuracy.
    Evaluate {
        /// Our model folder or Keras files.
        #[arg(long)]
        model: PathBuf,
        #[arg(long, default_value_t = 128, value_parser = positive)]
        batch_size: usize,
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        gpu: GpuArgs,
    },
}

#[derive(Subcommand)]
enum DataCommand {
    /// Download the CIFAR-10 archive into the cache (verified by SHA-256 and MD5).
    Fetch {
        #[command(flatten)]
        data: DataArgs,
    },
    /// What is cached, where, how many images, the class names and the checksum state.
    Info {
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Args)]
struct ProfileArgs {
    /// Timed steps.
    #[arg(long, default_value_t = 10, value_parser = positive)]
    steps: usize,
    /// Untimed steps first (pipeline creation, caches).
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    #[arg(long, default_value_t = 128, value_parser = positive)]
    batch_size: usize,
    #[command(flatten)]
    optimizer: OptimizerArgs,
    /// Profile on this data set's shape and first images instead of random CIFAR-shaped ones.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Write a Chrome trace (chrome://tracing, Perfetto) of the timed steps.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Ignore the adapter's timestamp queries and time on the host.
    #[arg(long)]
    no_timestamps: bool,
    #[command(flatten)]
    gpu: GpuArgs,
}

/// Degrees of rotation for augmentation: 0 to 180.
fn degrees(s: &str) -> Result<f64, String> {
    let v = s.trim().parse::<f64>().map_err(|e| format!("{s}: {e}"))?;
    if v.is_finite() && (0.0..=180.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{s} must be at least 0 and at most 180 (degrees)"))
    }
}

/// Keras' ImageDataGenerator recipe, applied on the GPU inside the batch gather.
#[derive(Args)]
struct AugmentArgs {
    /// Augment training batches (never validation or test): the book's rotation 40, shifts 0.2,
    /// zoom 0.2, horizontal flips and nearest fill, each changeable below.
    #[arg(long)]
    augment: bool,
    /// Rotate each image by a uniform angle in [-DEG, DEG] degrees.
    #[arg(long, requires = "augment", value_parser = degrees)]
    rotation_range: Option<f64>,
    /// Shift by a uniform fraction of the width in [-F, F).
    #[arg(long, requires = "augment", value_parser = fraction::<f64>)]
    width_shift_range: Option<f64>,
    /// Shift by a uniform fraction of the height in [-F, F).
    #[arg(long, requires = "augment", value_parser = fraction::<f64>)]
    height_shift_range: Option<f64>,
    /// Zoom each axis by a uniform factor in [1 - F, 1 + F).
    #[arg(long, requires = "augment", value_parser = fraction::<f64>)]
    zoom_range: Option<f64>,
    /// Flip half of the images left to right (the default with --augment).
    #[arg(long, requires = "augment", overrides_with = "no_horizontal_flip")]
    horizontal_flip: bool,
    #[arg(long, requires = "augment", overrides_with = "horizontal_flip")]
    no_horizontal_flip: bool,
    /// Points outside the image: `nearest` (the edge pixel), the only mode implemented.
    #[arg(long, requires = "augment", value_parser = |s: &str| s.parse::<FillMode>())]
    fill_mode: Option<FillMode>,
}

impl AugmentArgs {
    fn build(&self) -> Option<Augment> {
        let book = Augment::default();
        self.augment.then(|| Augment {
            rotation_range: self.rotation_range.unwrap_or(book.rotation_range),
            width_shift_range: self.width_shift_range.unwrap_or(book.width_shift_range),
            height_shift_range: self.height_shift_range.unwrap_or(book.height_shift_range),
            zoom_range: self.zoom_range.unwrap_or(book.zoom_range),
            horizontal_flip: !self.no_horizontal_flip,
            fill_mode: self.fill_mode.unwrap_or(book.fill_mode),
        })
    }
}

#[derive(Args)]
struct TrainArgs {
    #[arg(long, default_value_t = 20, value_parser = positive)]
    epochs: usize,
    #[arg(long, default_value_t = 128, value_parser = positive)]
    batch_size: usize,
    #[command(flatten)]
    optimizer: OptimizerArgs,
    /// Fraction of the training set, taken from its end before shuffling, used for validation.
    #[arg(long, default_value_t = 0.2, value_parser = fraction::<f64>)]
    validation_split: f64,
    /// Keep the training set's order (Keras' shuffle=False).
    #[arg(long)]
    no_shuffle: bool,
    /// Fixes initialisation, shuffling and dropout masks.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder for the model, its history and checkpoints.
    #[arg(long, default_value = "cifar10-model")]
    out: PathBuf,
    /// The architecture trained from fresh weights: the notebook's model, or the book's deeper
    /// network (four convolutions in two blocks, the same dense head).
    #[arg(long, value_enum, default_value_t = Preset::Notebook)]
    preset: Preset,
    /// Start from a saved model instead of fresh weights (fine-tuning).
    #[arg(long, conflicts_with = "preset")]
    model: Option<PathBuf>,
    /// Train the architecture in this file from fresh weights, each tensor drawn by the
    /// initialiser the file names: Keras' model.to_json() (Keras 2 or 3), a .keras archive (its
    /// compile settings give the optimizer unless optimizer flags are given) or our model.json.
    #[arg(long, conflicts_with_all = ["resume", "preset", "model"])]
    config: Option<PathBuf>,
    /// Continue an interrupted run from its checkpoint folder (`<out>/checkpoint`) with the settings
    /// it records: data, --out, epochs, batch size, seed, shuffling, validation split, optimizer and
    /// its settings, preset or model, tiling. Those flags may be repeated with the same values; a
    /// different value is refused, except a larger --epochs, which extends the run, and --out naming
    /// the folder that holds the checkpoint when it was moved or copied. Only flags that change
    /// nothing trained may differ: --quiet, --log-json, --profile, --cache-dir, --offline,
    /// --backend, --adapter, --limits, --shader-bounds-checks, --steps-per-submission.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// No progress bar; only the epoch lines.
    #[arg(long)]
    quiet: bool,
    /// One JSON object per epoch on stdout instead of the progress display.
    #[arg(long)]
    log_json: bool,
    /// After training, time each kernel of a few training steps and print the table.
    #[arg(long)]
    profile: bool,
    #[command(flatten)]
    augment: AugmentArgs,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    gpu: GpuArgs,
}

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so printing into a closed pipe (`cifar-wgpu summary | head -1`) would
    // panic in `println!`; with the default action the process ends quietly, as Unix tools do.
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to SIG_DFL before any thread starts has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let given = matches
        .subcommand_matches("train")
        .map(given_flags)
        .unwrap_or_default();
    match run(cli, &given) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The ids of the `train` flags given on the command line (not defaulted), e.g. `batch_size`.
fn given_flags(m: &ArgMatches) -> Vec<String> {
    let cli = Cli::command();
    let train = cli
        .find_subcommand("train")
        .expect("the train subcommand exists");
    train
        .get_arguments()
        .map(|a| a.get_id().as_str())
        .filter(|id| m.value_source(id) == Some(ValueSource::CommandLine))
        .map(str::to_string)
        .collect()
}

fn run(cli: Cli, given: &[String]) -> Result<ExitCode, Error> {
    match cli.command {
        Command::Adapters { backend } => {
            let adapters = gpu::list_adapters(backend)?;
            for (i, a) in adapters.iter().enumerate() {
                println!("[{i}] {}", a.details());
            }
        }
        Command::Data { command } => match command {
            DataCommand::Fetch { data } => {
                let path = data::fetch(&data.options())?;
                println!("{}", path.display());
            }
            DataCommand::Info { data } => println!("{}", data::info(&data.options())?),
        },
        Command::Summary {
            data,
            model,
            config,
            preset,
        } => {
            let model = match (config, model, data) {
                (Some(file), _, _) => session::load_architecture(&file)?.model,
                (None, Some(dir), _) => session::load_model(&dir)?.model,
                (None, None, Some(path)) => {
                    let ds = data::read(&path, None)?;
                    preset.build([ds.height, ds.width, ds.channels], ds.num_classes())
                }
                (None, None, None) => preset.build([32, 32, 3], 10),
            };
            println!("{}", model.summary()?);
        }
        Command::Train(args) => return train(*args, given),
        Command::Profile(args) => {
            let gpu = args.gpu.open()?;
            let (report, timings) = session::profile(
                &gpu,
                args.data.as_deref(),
                args.optimizer.build(),
                args.batch_size,
                args.warmup,
                args.steps,
                !args.no_timestamps,
            )?;
            print!("{report}");
            if let Some(path) = &args.trace {
                let trace = serde_json::to_vec(&profile::chrome_trace(&timings))?;
                write_atomic(path, &trace)?;
                eprintln!("trace written to {}", path.display());
            }
        }
        Command::Bench {
            epochs,
            batch_size,
            data,
            json,
            gpu,
        } => {
            let ds = match data {
                Some(path) => data::read(&path, None)?,
                None => data::synthetic::random_like_cifar(50_000, 0, 0),
            };
            let gpu = gpu.open()?;
            let r = bench::bench(&gpu, &ds, epochs, batch_size)?;
            eprintln!(
                "best epoch {:.3} s; per training step: {} dispatches, {:.0} µs of host time \
                 ({:.0} recording, {:.0} in queue.submit); {:.1} steps per submission ({})",
                r.best_epoch_s,
                r.dispatches_per_step,
                r.host_us_per_step,
                r.record_us_per_step,
                r.submit_us_per_step,
                r.steps_per_submission,
                r.steps_per_submission_setting
            );
            let line = serde_json::to_string(&r)?;
            println!("{line}");
            if let Some(path) = json {
                write_atomic(&path, line.as_bytes())?;
            }
        }
        Command::Report {
            model,
            out,
            batch_size,
            data,
            gpu,
        } => {
            let dir = out.unwrap_or(model.clone());
            let _lock = lock_folder(&dir)?;
            evaluate(model, &data, &gpu, batch_size, Some(dir))?
        }
        Command::Predict {
            model,
            images,
            json,
            batch_size,
            gpu,
        } => {
            let mut console = Console::new(false, false);
            let (names, predictions) =
                session::predict(&model, &images, 3, batch_size, &gpu.options(), &mut console)?;
            for p in &predictions {
                print_prediction(p, &names, json);
            }
        }
        Command::Export { model, out } => {
            let saved = session::load_model(&model)?;
            let _lock = lock_folder(&out)?;
            output::export_model_folder(&out, &saved)?;
            eprintln!(
                "{} ({} parameters) written to {}",
                model.display(),
                saved.model.param_count()?,
                out.display()
            );
        }
        Command::Evaluate {
            model,
            batch_size,
            data,
            gpu,
        } => evaluate(model, &data, &gpu, batch_size, None)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Holds `dir` while a command writes into it, as a training run holds its `--out`: a run writing
/// there is named rather than raced; a lock its dead owner left is taken over, with a warning.
fn lock_folder(dir: &Path) -> Result<folder::FolderLock, Error> {
    let (lock, note) = folder::lock(dir)?;
    if let Some(note) = note {
        eprintln!("warning: {note}");
    }
    Ok(lock)
}

fn train(args: TrainArgs, given: &[String]) -> Result<ExitCode, Error> {
    let opts = match &args.resume {
        Some(dir) => {
            let optimizer = serde_json::to_value(&args.optimizer)?;
            resume::resume_options(dir, given, &new_run(&args)?, &optimizer)?
        }
        None => new_run(&args)?,
    };
    let mut console = Console::new(args.quiet, args.log_json);
    let stop = console.stop.clone();
    let stop = |_: &Progress| stop.load(Ordering::SeqCst);
    match session::train(&opts, &stop, &mut console)? {
        SessionOutcome::Finished { .. } => Ok(ExitCode::SUCCESS),
        SessionOutcome::Interrupted {
            progress,
            checkpoint,
        } => {
            console.display.clear();
            let dir = checkpoint.expect("a training session always has an output folder");
            eprintln!(
                "interrupted at epoch {}, batch {}: checkpoint written to {}; continue with \
                 `{} train --resume {}`",
                progress.epoch + 1,
                progress.batch,
                dir.display(),
                resume::shell_quote(&program()),
                resume::shell_quote(&dir.display().to_string())
            );
            Ok(ExitCode::from(130))
        }
    }
}

/// The run the `train` flags start: from --model, --config or --preset, with the defaults of the
/// flags not given.
fn new_run(args: &TrainArgs) -> Result<SessionOptions, Error> {
    let mut optimizer = args.optimizer.build();
    let start = match (&args.model, &args.config) {
        (Some(path), _) => Start::Model(path.clone()),
        (None, Some(path)) => {
            let architecture = session::load_architecture(path)?;
            if let Some(compiled) = architecture.optimizer {
                optimizer = args.optimizer.over(compiled);
            }
            Start::Config(architecture.model)
        }
        (None, None) => Start::Preset(args.preset),
    };
    Ok(SessionOptions {
        data: args.data.options(),
        gpu: args.gpu.options(),
        start,
        fit: FitConfig {
            epochs: args.epochs,
            batch_size: args.batch_size,
            shuffle: !args.no_shuffle,
            seed: args.seed,
            augment: args.augment.build(),
        },
        optimizer,
        validation_split: args.validation_split,
        out: args.out.clone(),
        profile: args.profile,
    })
}

/// How to run this program again: its name when found through PATH, else its absolute path.
fn program() -> String {
    let arg0 = std::env::args().next().unwrap_or_default();
    if arg0.is_empty() || arg0.contains('/') {
        std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or(arg0)
    } else {
        arg0
    }
}

/// `evaluate`, and with `report` the `report` command: a saved model on the test set.
fn evaluate(
    model: PathBuf,
    data: &DataArgs,
    gpu: &GpuArgs,
    batch_size: usize,
    report: Option<PathBuf>,
) -> Result<(), Error> {
    let opts = EvaluateOptions {
        model,
        data: data.options(),
        gpu: gpu.options(),
        batch_size,
        report,
    };
    let e = session::evaluate(&opts, &mut Console::new(false, false))?;
    if opts.report.is_none() {
        println!(
            "per class:\n{:<14} {:>9} {:>7}",
            "class", "accuracy", "images"
        );
        for (name, (correct, total)) in e.class_names.iter().zip(&e.per_class) {
            println!(
                "{name:<14} {:>9.4} {total:>7}",
                *correct as f64 / (*total).max(1) as f64
            );
        }
    }
    Ok(())
}

fn print_prediction(p: &session::Prediction, names: &[String], json: bool) {
    if json {
        let top: Vec<_> = p
            .top
            .iter()
            .map(|&(i, prob)| serde_json::json!({"class": names[i], "index": i, "probability": prob}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"image": p.image.display().to_string(), "top": top})
        );
    } else {
        let cells: Vec<String> = p
            .top
            .iter()
            .map(|&(i, prob)| format!("{} {:.1}%", names[i], 100.0 * prob))
            .collect();
        println!("{}: {}", p.image.display(), cells.join(", "));
    }
}

/// The terminal side of a session: what it prints as the library reports progress.
struct Console {
    display: Display,
    /// Set by the first Ctrl-C once training runs.
    stop: Arc<AtomicBool>,
}

impl Console {
    fn new(quiet: bool, json: bool) -> Console {
        Console {
            display: Display::new(quiet, json),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl Observer for Console {
    fn data_loaded(&mut self, ds: &Dataset, seconds: f64) {
        eprintln!(
            "data: {} from {} ({} training and {} test images of {}x{}x{}, {} classes) in {:.1}s",
            ds.name,
            ds.source.display(),
            ds.train.len(),
            ds.test.len(),
            ds.height,
            ds.width,
            ds.channels,
            ds.num_classes(),
            seconds
        );
    }

    fn gpu_opened(&mut self, gpu: &Gpu) {
        print_adapter(gpu);
    }

    fn warning(&mut self, message: &str) {
        eprintln!("warning: {message}");
    }

    fn resumed(&mut self, p: &Progress) {
        eprintln!(
            "resuming at epoch {}, batch {} (step {})",
            p.epoch + 1,
            p.batch,
            p.step
        );
    }

    fn training_starts(&mut self, s: &TrainingStart) -> Result<(), SessionError> {
        if !self.display.quiet && !self.display.json {
            println!("{}", s.model.summary()?);
        }
        eprintln!(
            "training on {} images, validating on {}, batch {}, {} epochs, {}",
            s.train_images, s.val_images, s.fit.batch_size, s.fit.epochs, s.optimizer
        );
        let stop = self.stop.clone();
        ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                // A second Ctrl-C means "now".
                std::process::exit(130);
            }
        })?;
        Ok(())
    }

    fn event(&mut self, e: Event) {
        self.display.event(e);
    }

    fn model_saved(&mut self, out: &Path) {
        eprintln!("model saved to {}", out.display());
    }

    fn tested(&mut self, m: &Metrics, seconds: f64) {
        println!(
            "test: loss {:.4} - accuracy {:.4} ({} images, {:.1}s)",
            m.loss(),
            m.accuracy(),
            m.samples,
            seconds
        );
    }

    fn report_written(&mut self, summary: &ReportSummary, dir: &Path) {
        print!("{}", summary.table);
        eprintln!(
            "report written to {} (curves, confusion matrix, per-class table, samples)",
            dir.join("report.html").display()
        );
    }

    fn profiled(&mut self, report: &ProfileReport) {
        print!("{report}");
    }
}

/// Keras' `verbose=1` display: "Epoch 3/20", then a bar with batch n/N, ETA and the running loss and
/// accuracy, ending in the epoch's line with validation metrics and time.
struct Display {
    quiet: bool,
    json: bool,
    bar: Option<ProgressBar>,
    batches: usize,
}

impl Display {
    fn new(quiet: bool, json: bool) -> Display {
        Display {
            quiet,
            json,
            bar: None,
            batches: 0,
        }
    }

    fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }

    fn event(&mut self, e: Event) {
        match e {
            Event::EpochStart {
                epoch,
                epochs,
                batches,
            } => {
                self.batches = batches;
                if self.json {
                    return;
                }
                println!("Epoch {}/{}", epoch + 1, epochs);
                if !self.quiet {
                    let bar = ProgressBar::new(batches as u64);
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{pos:>5}/{len} {bar:20} {elapsed} ETA {eta} {msg}",
                        )
                        .unwrap()
                        .progress_chars("━━─"),
                    );
                    self.bar = Some(bar);
                }
            }
            Event::Batch { batch, metrics } => {
                if let Some(bar) = &self.bar {
                    bar.set_position(batch as u64);
                    bar.set_message(format_metrics(&metrics));
                }
            }
            Event::Submitted(_) => {}
            Event::EpochEnd(log) => {
                if self.json {
                    println!("{}", serde_json::to_string(log).unwrap());
                    return;
                }
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                let mut line = format!(
                    "{n}/{n} - {:.1}s {:.0}ms/step - accuracy: {:.4} - loss: {:.4}",
                    log.seconds,
                    log.seconds * 1000.0 / self.batches.max(1) as f64,
                    log.accuracy,
                    log.loss,
                    n = self.batches
                );
                if let (Some(vl), Some(va)) = (log.val_loss, log.val_accuracy) {
                    line.push_str(&format!(" - val_accuracy: {va:.4} - val_loss: {vl:.4}"));
                }
                println!("{line}");
            }
        }
    }
}

fn format_metrics(m: &Metrics) -> String {
    format!("- accuracy: {:.4} - loss: {:.4}", m.accuracy(), m.loss())
}
