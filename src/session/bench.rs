//! `cifar-wgpu bench`: the notebook's recipe timed the way `shared/bench/torch_seed.py` times PyTorch,
//! so the two figures compare directly: 40,000 training images in batches of 128 plus 10,000
//! validation images per epoch, one warm-up epoch not counted, the best epoch reported.

use std::time::Instant;

use serde::Serialize;

use crate::data::{self, Dataset};
use crate::gpu::{Gpu, SubmitStats};
use crate::kernels::gather::upload_images;
use crate::model::Sequential;
use crate::optimizer::Optimizer;
use crate::session::{self, Observer, Plan, SessionError, SessionOutcome};
use crate::train::{Event, FitConfig, Mode, Network};

/// Keras' `validation_split` in the notebook.
const VALIDATION_SPLIT: f64 = 0.2;

#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    pub peer: &'static str,
    pub adapter: String,
    pub backend: String,
    pub device_type: String,
    pub data: String,
    pub batch_size: usize,
    pub train_images: usize,
    pub val_images: usize,
    pub epochs_timed: usize,
    /// Best epoch, training plus validation, in seconds.
    pub best_epoch_s: f64,
    /// Training images per second in the best epoch's training part.
    pub train_images_per_s: f64,
    pub epoch_s: Vec<f64>,
    pub train_s: Vec<f64>,
    /// Pipelines compiled for the whole run (a measure of start-up cost).
    pub pipelines: usize,
    /// Dispatches in one training step, the batch's gather included (gather, forward, loss, backward,
    /// update), as `profile` counts them: on a GPU each costs several microseconds whatever it
    /// computes (issue 14).
    pub dispatches_per_step: usize,
    /// Wall time the host spent per training step writing step states and recording and submitting
    /// command buffers (waits for the GPU excluded), over the timed epochs, in microseconds: the
    /// sum of the next two.
    pub host_us_per_step: f64,
    /// Of which writing step states and recording command buffers.
    pub record_us_per_step: f64,
    /// Of which inside `queue.submit`: on lavapipe that call runs the work, so there this is GPU
    /// time and `record_us_per_step` is the host's.
    pub submit_us_per_step: f64,
    /// Training steps per submission over the timed epochs (mean), and the setting that chose them
    /// (`auto` or a count: `--steps-per-submission`).
    pub steps_per_submission: f64,
    pub steps_per_submission_setting: String,
}

/// Keeps each epoch's submission costs.
struct Costs(Vec<SubmitStats>);

impl Observer for Costs {
    fn event(&mut self, event: Event) {
        if let Event::Submitted(stats) = event {
            self.0.push(stats);
        }
    }
}

/// Trains the notebook's model on `ds` (validation split 0.2) for one warm-up epoch plus `epochs`
/// timed ones: a training session that keeps everything in memory.
pub fn bench(
    gpu: &Gpu,
    ds: &Dataset,
    epochs: usize,
    batch_size: usize,
) -> Result<BenchResult, SessionError> {
    let model = Sequential::notebook([ds.height, ds.width, ds.channels], ds.num_classes());
    let optimizer = Optimizer::rmsprop_default();
    let net = Network::new(
        gpu,
        &model,
        optimizer.clone(),
        &model.init_params(0)?,
        batch_size,
        0,
    )?;
    // Counted as the profiler counts them: the batch's gather (from one stand-in image) and the step.
    let image = vec![0u8; ds.image_bytes()];
    let one = upload_images(gpu, &image, &[0], ds.image_bytes(), gpu.max_binding_bytes())?;
    let dispatches_per_step = net.gather_training(gpu, &one, batch_size).len()
        + net.step(gpu, batch_size, Mode::Train).len();
    drop(net);
    let plan = Plan {
        params: model.init_params(0)?,
        model,
        optimizer,
        fit: FitConfig {
            epochs: epochs + 1,
            batch_size,
            shuffle: true,
            seed: 0,
            augment: None,
        },
        validation_split: VALIDATION_SPLIT,
        resume: None,
        out: None,
        profile: false,
        started: Instant::now(),
    };
    let mut costs = Costs(Vec::new());
    let history = match session::run(gpu, ds, plan, &|_| false, &mut costs)? {
        SessionOutcome::Finished { history, .. } => history,
        SessionOutcome::Interrupted { .. } => unreachable!("nothing asks the benchmark to stop"),
    };
    let train_images = data::validation_split_index(ds.train.len(), VALIDATION_SPLIT)?;
    let timed = &history[1..];
    let epoch_s: Vec<f64> = timed.iter().map(|l| l.seconds).collect();
    let train_s: Vec<f64> = timed.iter().map(|l| l.train_seconds).collect();
    let mut spent = SubmitStats::default();
    costs.0.iter().skip(1).for_each(|c| spent.add(c));
    let per_step = |d: std::time::Duration| d.as_secs_f64() * 1e6 / spent.steps.max(1) as f64;
    Ok(BenchResult {
        peer: "cifar-wgpu",
        adapter: gpu.info.name.clone(),
        backend: format!("{:?}", gpu.info.backend),
        device_type: format!("{:?}", gpu.info.device_type),
        data: ds.name.clone(),
        batch_size,
        train_images,
        val_images: ds.train.len() - train_images,
        epochs_timed: timed.len(),
        best_epoch_s: epoch_s.iter().cloned().fold(f64::INFINITY, f64::min),
        train_images_per_s: train_images as f64
            / train_s.iter().cloned().fold(f64::INFINITY, f64::min),
        epoch_s,
        train_s,
        pipelines: gpu.kernels.pipeline_count(),
        dispatches_per_step,
        host_us_per_step: per_step(spent.recording + spent.submitting),
        record_us_per_step: per_step(spent.recording),
        submit_us_per_step: per_step(spent.submitting),
        steps_per_submission: spent.steps as f64 / spent.submissions.max(1) as f64,
        steps_per_submission_setting: gpu.steps_per_submission.to_string(),
    })
}
