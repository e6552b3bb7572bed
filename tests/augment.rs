//! Augmentation in training: `train --preset deeper --augment` end to end, the flags' refusals, only
//! training batches augmented, a resumed augmented run equal to a straight one, and the report's grid.

#[path = "common/cli.rs"]
mod common_cli;
use common_cli::{cli, succeeded, text, train};

#[path = "common/gpu.rs"]
mod common_gpu;
#[path = "common/writers.rs"]
mod writers;
use common_gpu::{gpu, small_cnn};

use std::time::Instant;

use cifar_wgpu::data::augment::Augment;
use cifar_wgpu::data::{self, Dataset};
use cifar_wgpu::kernels::gather::upload_images;
use cifar_wgpu::model::io::SavedModel;
use cifar_wgpu::optimizer::Optimizer;
use cifar_wgpu::reference;
use cifar_wgpu::session::{self, Plan, SessionOutcome, Silent};
use cifar_wgpu::train::checkpoint::Checkpoint;
use cifar_wgpu::train::{FitConfig, Network, Progress};

#[test]
fn train_preset_deeper_with_augment_runs_end_to_end_and_records_the_settings() {
    let dir = tempfile::tempdir().unwrap();
    let idx = writers::learnable_idx(dir.path(), 120, 30);
    let out = dir.path().join("run");
    let o = train(
        &idx,
        &out,
        &[
            "--preset",
            "deeper",
            "--augment",
            "--zoom-range",
            "0.1",
            "--epochs",
            "1",
            "--batch-size",
            "32",
            "--quiet",
        ],
    );
    let t = succeeded(&o);
    assert!(t.contains("Epoch 1/1") && t.contains("test: loss"), "{t}");
    // The settings travel with the checkpoint (so --resume augments alike) and show in the report.
    let ckpt = Checkpoint::load(&out.join("checkpoint")).unwrap();
    let want = Augment {
        zoom_range: 0.1,
        ..Augment::default()
    };
    assert_eq!(ckpt.state.fit.augment, Some(want));
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        page.contains("rotation_range=40, width_shift_range=0.2"),
        "report settings"
    );
    let grid = std::fs::read(out.join("augmented.png")).unwrap();
    // `report` on the folder finds the augmentation in its checkpoint and draws the same grid.
    let again = dir.path().join("report");
    let o = cli(&[
        "report",
        "--model",
        out.to_str().unwrap(),
        "--data",
        idx.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    succeeded(&o);
    assert_eq!(std::fs::read(again.join("augmented.png")).unwrap(), grid);
}

#[test]
fn augmentation_flags_are_checked_when_parsed() {
    for (args, mention) in [
        (&["--augment", "--fill-mode", "wrap"][..], "only 'nearest'"),
        (&["--augment", "--zoom-range", "1.5"][..], "below 1"),
        (&["--augment", "--rotation-range", "200"][..], "at most 180"),
        (&["--augment", "--width-shift-range=-0.1"][..], "at least 0"),
        (&["--rotation-range", "10"][..], "--augment"),
    ] {
        let mut all = vec!["train", "--epochs", "1"];
        all.extend_from_slice(args);
        let o = cli(&all);
        let t = text(&o);
        assert!(!o.status.success(), "{args:?} should fail:\n{t}");
        assert!(!t.contains("panicked"), "{t}");
        assert!(
            t.contains(mention),
            "{args:?}: message should mention '{mention}':\n{t}"
        );
    }
}

/// With augmentation set, a training program's gather draws the twin's affines at the step in the
/// step state, while an evaluation program's gather stays the plain one, bit for bit.
#[test]
fn only_training_batches_are_augmented() {
    let g = gpu();
    let ds = data::synthetic::learnable(20, 0, 10, 7, 3, 4, 2);
    let model = small_cnn([10, 7, 3], 4, 8, 4);
    let params = model.init_params(1).unwrap();
    let seed = 77;
    let mut net = Network::new(g, &model, Optimizer::rmsprop_default(), &params, 8, seed).unwrap();
    let aug = Augment::default();
    net.set_augment(g, Some(&aug)).unwrap();
    let bytes = ds.image_bytes();
    let images = upload_images(
        g,
        &ds.train.images,
        &ds.train.labels,
        bytes,
        7 * bytes as u64,
    )
    .unwrap();
    let indices: Vec<u32> = vec![3, 19, 0, 8, 8, 12];
    g.write(&net.batch_indices.slice(0, indices.len()), &indices);
    let step = 41;
    net.set_step(g, step);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let input = net.input(indices.len());

    let train = net.gather_training(g, &images, indices.len());
    cifar_wgpu::gpu::run_dispatches(g, &train.iter().collect::<Vec<_>>()).unwrap();
    let consts = aug.consts(10, 7).unwrap();
    let (want, _) = reference::gather::gather_batch_augmented(
        &ds.train.images,
        &ds.train.labels,
        [10, 7, 3],
        &indices,
        &consts,
        &aug.rotation_table(),
        seed,
        step,
    );
    assert_eq!(
        bits(&g.read_f32(&input).unwrap()),
        bits(&want),
        "training gather"
    );

    let eval = net.gather(g, &images, indices.len());
    cifar_wgpu::gpu::run_dispatches(g, &eval.iter().collect::<Vec<_>>()).unwrap();
    let (plain, _) =
        reference::gather::gather_batch(&ds.train.images, &ds.train.labels, bytes, &indices);
    assert_eq!(
        bits(&g.read_f32(&input).unwrap()),
        bits(&plain),
        "evaluation gather"
    );
}

/// A small CNN trained with augmentation for `epochs`, stopped after `stop_after` steps and resumed
/// from the checkpoint on disk if given: the saved weights and the losses.
fn augmented_run(
    ds: &Dataset,
    augment: Option<Augment>,
    stop_after: Option<usize>,
) -> (Vec<f32>, Vec<f64>) {
    let g = gpu();
    let out = tempfile::tempdir().unwrap();
    let model = small_cnn([12, 12, 3], 8, 32, ds.num_classes());
    let plan = |fit: FitConfig, params: Vec<f32>, resume: Option<Checkpoint>| Plan {
        model: model.clone(),
        params,
        optimizer: Optimizer::rmsprop_default(),
        fit,
        validation_split: 0.2,
        resume,
        out: Some(out.path().to_path_buf()),
        profile: false,
        started: Instant::now(),
    };
    let fit = FitConfig {
        epochs: 2,
        batch_size: 32,
        shuffle: true,
        seed: 6,
        augment,
    };
    let stop = |p: &Progress| stop_after.is_some_and(|n| p.step as usize == n);
    let first = plan(fit, model.init_params(6).unwrap(), None);
    let mut outcome = session::run(g, ds, first, &stop, &mut Silent).unwrap();
    if let SessionOutcome::Interrupted { checkpoint, .. } = outcome {
        // Everything from the checkpoint on disk, augmentation settings included.
        let ckpt = Checkpoint::load(&checkpoint.unwrap()).unwrap();
        let again = plan(
            ckpt.state.fit.clone(),
            ckpt.model.params.clone(),
            Some(ckpt),
        );
        outcome = session::run(g, ds, again, &|_| false, &mut Silent).unwrap();
    }
    let SessionOutcome::Finished { history, .. } = outcome else {
        panic!("interrupted twice");
    };
    let params = SavedModel::load(out.path()).unwrap().params;
    (params, history.iter().map(|e| e.loss).collect())
}

#[test]
fn a_resumed_augmented_run_equals_a_straight_one_and_augmenting_changes_training() {
    let ds = data::synthetic::learnable(300, 0, 12, 12, 3, 5, 9);
    let (straight, ls) = augmented_run(&ds, Some(Augment::default()), None);
    // 240 training images in batches of 32: 8 per epoch; stop in the middle of the second epoch.
    let (resumed, lr) = augmented_run(&ds, Some(Augment::default()), Some(11));
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&straight),
        bits(&resumed),
        "resumed augmented run ended elsewhere"
    );
    assert_eq!(ls, lr);
    let (plain, _) = augmented_run(&ds, None, None);
    assert_ne!(
        bits(&straight),
        bits(&plain),
        "augmentation changed nothing"
    );
}
