//! Several training steps per submission change nothing but the host's work: weights, optimizer
//! state and history after two epochs are the same bit for bit with one, four or seven steps per
//! submission (ten batches an epoch, so four and seven leave a shorter last group), and a run
//! stopped inside a group and resumed from its checkpoint with other group sizes ends the same too;
//! evaluation in groups gives the same logits.

#[path = "common/gpu.rs"]
mod common_gpu;
use common_gpu::{gpu, small_cnn};

use std::num::NonZeroUsize;

use cifar_wgpu::data::{self, Dataset};
use cifar_wgpu::gpu::{StepsPerSubmission, SubmitStats};
use cifar_wgpu::kernels::gather::{DeviceImages, upload_images};
use cifar_wgpu::optimizer::Optimizer;
use cifar_wgpu::train::checkpoint::{Checkpoint, RunRecord};
use cifar_wgpu::train::{DeviceSplit, Event, FitConfig, Network, Progress, Trainer};

const EPOCHS: usize = 2;
const BATCH: usize = 16;
const SEED: u64 = 6;

/// 190 images, 152 of them for training: ten batches of 16 an epoch, the last one of 8.
fn data() -> (Dataset, DeviceImages) {
    let g = gpu();
    let ds = data::synthetic::learnable(190, 0, 10, 10, 3, 4, 11);
    let images = upload_images(
        g,
        &ds.train.images,
        &ds.train.labels,
        ds.image_bytes(),
        g.max_binding_bytes(),
    )
    .unwrap();
    (ds, images)
}

fn fit() -> FitConfig {
    FitConfig {
        epochs: EPOCHS,
        batch_size: BATCH,
        seed: SEED,
        ..FitConfig::default()
    }
}

fn fixed(k: usize) -> StepsPerSubmission {
    StepsPerSubmission::Fixed(NonZeroUsize::new(k).unwrap())
}

/// Everything a run ends with, as bits: parameters, optimizer state, and per epoch the loss,
/// accuracy and validation figures.
#[derive(Debug, PartialEq)]
struct Outcome {
    params: Vec<u32>,
    optimizer_state: Vec<Vec<u32>>,
    history: Vec<[u64; 4]>,
}

fn outcome(trainer: &Trainer) -> Outcome {
    let g = gpu();
    let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
    Outcome {
        params: bits(trainer.net.read_params(g).unwrap()),
        optimizer_state: trainer
            .net
            .opt_state
            .iter()
            .map(|t| bits(g.read_f32(t).unwrap()))
            .collect(),
        history: trainer
            .history
            .iter()
            .map(|e| {
                [
                    e.loss.to_bits(),
                    e.accuracy.to_bits(),
                    e.val_loss.unwrap().to_bits(),
                    e.val_accuracy.unwrap().to_bits(),
                ]
            })
            .collect(),
    }
}

/// Trains until `stop` says so or the epochs are done, with `k` steps per submission. Returns
/// each finished epoch's submission costs as the trainer reported them.
fn train(
    trainer: &mut Trainer,
    images: &DeviceImages,
    split: usize,
    stop: &dyn Fn(&Progress) -> bool,
) -> Vec<SubmitStats> {
    let (train, val) = DeviceSplit::train_and_validation(images, split);
    let mut costs = Vec::new();
    while trainer.progress.epoch < EPOCHS {
        let done = trainer
            .train_epoch(&fit(), &train, Some(&val), stop, &mut |e| {
                if let Event::Submitted(s) = e {
                    costs.push(s);
                }
            })
            .unwrap();
        if done.is_none() {
            break;
        }
    }
    costs
}

fn fresh_trainer(ds: &Dataset) -> Trainer<'static> {
    let g = gpu();
    let model = small_cnn([10, 10, 3], 5, 12, ds.num_classes());
    let params = model.init_params(SEED).unwrap();
    let net = Network::new(
        g,
        &model,
        Optimizer::rmsprop_default(),
        &params,
        BATCH,
        SEED,
    )
    .unwrap();
    Trainer::new(g, net)
}

fn run(ds: &Dataset, images: &DeviceImages, k: usize) -> (Outcome, Vec<SubmitStats>) {
    let mut trainer = fresh_trainer(ds);
    trainer.set_steps_per_submission(fixed(k));
    let split = data::validation_split_index(ds.train.len(), 0.2).unwrap();
    let costs = train(&mut trainer, images, split, &|_| false);
    (outcome(&trainer), costs)
}

#[test]
fn one_four_and_seven_steps_per_submission_give_the_same_bits() {
    let (ds, images) = data();
    let (one, costs) = run(&ds, &images, 1);
    assert_eq!(one.history.len(), EPOCHS);
    for c in &costs {
        assert_eq!((c.steps, c.submissions), (10, 10), "{c:?}");
    }
    for (k, submissions) in [(4, 3), (7, 2)] {
        let (other, costs) = run(&ds, &images, k);
        for c in &costs {
            assert_eq!(
                (c.steps, c.submissions),
                (10, submissions),
                "k = {k}: {c:?}"
            );
        }
        assert!(
            one == other,
            "{k} steps per submission changed the results: {one:?} against {other:?}"
        );
    }
}

#[test]
fn a_run_stopped_inside_a_group_resumes_bit_for_bit_with_other_group_sizes() {
    let (ds, images) = data();
    let split = data::validation_split_index(ds.train.len(), 0.2).unwrap();
    let (straight, _) = run(&ds, &images, 1);

    // Four steps a group: steps 1-4, then 5-8, but the stop after step 6 ends the second early.
    let mut first = fresh_trainer(&ds);
    first.set_steps_per_submission(fixed(4));
    let costs = train(&mut first, &images, split, &|p| p.step == 6);
    assert_eq!(
        first.progress,
        Progress {
            epoch: 0,
            batch: 6,
            step: 6
        }
    );
    assert_eq!((costs[0].steps, costs[0].submissions), (6, 2));
    let ckpt: Checkpoint =
        (first.checkpoint(&ds.class_names, &fit(), 0.2, &RunRecord::default())).unwrap();

    // Resumed from the checkpoint with seven steps a group, which no longer line up with epochs.
    let g = gpu();
    let net = Network::new(
        g,
        &ckpt.model.model,
        ckpt.state.optimizer.clone(),
        &ckpt.model.params,
        BATCH,
        SEED,
    )
    .unwrap();
    let mut resumed = Trainer::new(g, net);
    resumed.restore(&ckpt).unwrap();
    resumed.set_steps_per_submission(fixed(7));
    train(&mut resumed, &images, split, &|_| false);
    assert!(
        outcome(&resumed) == straight,
        "the resumed run ended elsewhere: {:?} against {straight:?}",
        outcome(&resumed)
    );
}

/// Evaluation batches go in groups too: the metrics and every image's logits are the same bits with
/// one or five batches per submission (twelve batches, so five leaves a group of two), which they
/// would not be if a batch's logits were copied out after a later batch had overwritten them.
#[test]
fn evaluation_in_groups_gives_the_same_logits_and_metrics() {
    let (ds, images) = data();
    let all = DeviceSplit::all(&images);
    let evaluate = |k: usize| {
        let mut trainer = fresh_trainer(&ds);
        trainer.set_steps_per_submission(fixed(k));
        let (m, logits) = trainer.evaluate_with_logits(&all, BATCH).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        (m.loss().to_bits(), m.accuracy().to_bits(), bits(&logits))
    };
    let one = evaluate(1);
    assert_eq!(one.2.len(), 190 * ds.num_classes());
    assert!(
        one.2
            .chunks(ds.num_classes())
            .collect::<std::collections::HashSet<_>>()
            .len()
            > 100,
        "the images' logits should differ from one another"
    );
    assert_eq!(
        evaluate(5),
        one,
        "five batches per submission changed the results"
    );
}
