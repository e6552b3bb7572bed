//! Training on the GPU: one step against the CPU reference step, learning a learnable data set,
//! reproducibility from the seed, and interrupt-and-resume.

#[path = "common/gpu.rs"]
mod common_gpu;
#[path = "common/writers.rs"]
mod writers;
use common_gpu::{
    batchnorm_model, every_layer_model, fixed_batch, gpu, pooling_models, small_cnn, write_batch,
};

use std::path::Path;
use std::time::Instant;

use cifar_wgpu::data::{self, DataOptions, Dataset};
use cifar_wgpu::gpu::{Gpu, GpuOptions, Tiling, run_dispatches};
use cifar_wgpu::kernels::gather::{DeviceImages, upload_images};
use cifar_wgpu::model::io::SavedModel;
use cifar_wgpu::model::{Preset, Sequential, reference};
use cifar_wgpu::optimizer::Optimizer;
use cifar_wgpu::report::ReportSummary;
use cifar_wgpu::session::{
    self, EvaluateOptions, Observer, Plan, SessionError, SessionOptions, SessionOutcome, Silent,
    Start, TrainingStart,
};
use cifar_wgpu::train::checkpoint::Checkpoint;
use cifar_wgpu::train::{DeviceSplit, Event, FitConfig, Metrics, Mode, Network, Progress, Trainer};

fn rel_err(name: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    let mut d2 = 0.0;
    let mut n2 = 0.0;
    let mut worst = 0.0f64;
    for (&g, &w) in got.iter().zip(want) {
        assert!(g.is_finite(), "{name}: {g}");
        let d = g as f64 - w;
        d2 += d * d;
        n2 += w * w;
        worst = worst.max(d.abs());
    }
    let rel = (d2 / n2.max(1e-30)).sqrt();
    println!("{name}: rel {rel:.2e} (tol {tol:.0e}), max diff {worst:.2e}");
    assert!(
        rel <= tol,
        "{name}: relative error {rel:.2e} exceeds {tol:.0e}"
    );
}

#[test]
fn one_gpu_training_step_equals_the_cpu_reference_step() {
    one_step_against_the_reference(gpu());
}

#[test]
fn one_gpu_training_step_with_the_other_matmul_tiling_equals_the_cpu_reference_step() {
    // The other flavour of matmul kernels than the adapter's default (on lavapipe: the GPU one), on a
    // device of its own since a `Gpu`'s tiling is fixed when it is opened.
    let default = gpu().flavours.tiling();
    let other = match default {
        Tiling::Registers => Tiling::Shared,
        Tiling::Shared => Tiling::Registers,
    };
    let g = Gpu::new(&GpuOptions {
        tiling: Some(other),
        ..GpuOptions::default()
    })
    .expect("a second device on the test adapter");
    assert_eq!(g.flavours.tiling(), other);
    one_step_against_the_reference(&g);
}

#[test]
fn one_gpu_training_step_of_the_pooling_models_equals_the_cpu_reference_step() {
    let models = pooling_models([9, 7, 3], 4);
    // The max model's ReLU layer is fused into the Conv2D before it and the GlobalMaxPooling2D
    // after it (its dx masked), so the step below checks that path too.
    let max = &models[1];
    let params = max.init_params(1).unwrap();
    let net = Network::new(gpu(), max, Optimizer::rmsprop_default(), &params, 5, 1).unwrap();
    let names: Vec<&str> = net
        .step(gpu(), 5, Mode::Train)
        .iter()
        .map(|d| d.name)
        .collect();
    assert!(!names.iter().any(|n| n.starts_with("relu")), "{names:?}");
    for model in &models {
        println!("{}", model.name);
        one_step_of(gpu(), model, 4);
    }
}

#[test]
fn a_dense_layer_with_more_inputs_than_llvmpipes_loop_limit_trains_as_the_reference() {
    use cifar_wgpu::layers::{Activation, ActivationLayer, Dense, Flatten};
    // After Flatten of a 32x32x64 image a Dense layer has K = 65536, past the 65535 loop iterations
    // llvmpipe lets an invocation take: there its products split K (matmul_split_sum) and the last
    // one does not take the loss in (its kernels loop over the inputs).
    let model = |name, hidden: &[usize]| {
        let mut layers = vec![Flatten.into()];
        for &units in hidden {
            layers.push(Dense::new(units).activation(Activation::Relu).into());
        }
        layers.push(Dense::new(3).into());
        layers.push(ActivationLayer::new(Activation::Softmax).into());
        Sequential::from_layers(name, [32, 32, 64], layers)
    };
    let g = gpu();
    for model in [model("wide_last", &[]), model("wide_hidden", &[4])] {
        println!("{}", model.name);
        let params = model.init_params(1).unwrap();
        let net = Network::new(g, &model, Optimizer::rmsprop_default(), &params, 5, 1).unwrap();
        let names: Vec<&str> = net.step(g, 5, Mode::Train).iter().map(|d| d.name).collect();
        if g.loop_limit().is_some() {
            assert!(names.contains(&"matmul_split_sum"), "{names:?}");
            let fused = names.contains(&"dense_loss_forward");
            assert_eq!(fused, model.name == "wide_hidden", "{names:?}");
        }
        one_step_of(g, &model, 3);
    }
}

#[test]
fn layers_that_would_loop_past_llvmpipes_limit_are_refused_there_by_name() {
    use cifar_wgpu::layers::{
        Activation, ActivationLayer, Conv2D, Dense, GlobalAveragePooling2D, Layer,
    };
    use cifar_wgpu::shape::Padding;
    // A global pooling of 256x256 walks 65536 cells in one invocation, a 3x3 convolution of 6000
    // channels 54012 taps and channels; one of 128x128, and of 5000 channels (45012), stay within
    // the limit and are placed.
    let g = gpu();
    let model = |input, first: Layer| {
        let head = Dense::new(3).activation(Activation::Softmax).into();
        let layers = vec![
            first,
            GlobalAveragePooling2D { keepdims: false }.into(),
            head,
        ];
        Sequential::from_layers("loops", input, layers)
    };
    let conv = || Conv2D::new(1, [3, 3], Padding::Valid).into();
    let identity = || ActivationLayer::new(Activation::Linear).into();
    for (input, first, past) in [
        (
            [256, 256, 1],
            identity(),
            Some("layer 'global_average_pooling2d'"),
        ),
        ([128, 128, 1], identity(), None),
        ([3, 3, 6000], conv(), Some("layer 'conv2d'")),
        ([3, 3, 5000], conv(), None),
    ] {
        let model = model(input, first);
        let params = model.init_params(1).unwrap();
        let placed = Network::new(g, &model, Optimizer::rmsprop_default(), &params, 2, 1);
        match (past, g.loop_limit()) {
            (Some(name), Some(_)) => {
                let err = placed.err().expect("refused").to_string();
                println!("{err}");
                assert!(err.contains(name) && err.contains("65535"), "{err}");
            }
            _ => {
                placed.unwrap();
            }
        }
    }
}

#[test]
fn the_pooling_models_train_three_steps_as_the_cpu_reference_does() {
    // Three RMSprop steps on the same batch, the CPU reference carrying its own weights and state:
    // the weights stay together and the loss goes down.
    let (g, batch, classes) = (gpu(), 6, 4);
    for model in pooling_models([9, 7, 3], classes) {
        let opt = Optimizer::rmsprop_default();
        let params = model.init_params(5).unwrap();
        let net = Network::new(g, &model, opt.clone(), &params, batch, 1).unwrap();
        let (x, labels) = fixed_batch(&model, batch, classes, 1);
        write_batch(g, &net, &x, &labels);
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let mut want: Vec<f64> = params.iter().map(|&v| v as f64).collect();
        let mut state = vec![vec![0.0; want.len()]; opt.state_buffers()];
        let mut losses = Vec::new();
        for step in 0..3 {
            net.set_step(g, step);
            let dispatches = net.step(g, batch, Mode::Train);
            run_dispatches(g, &dispatches.iter().collect::<Vec<_>>()).unwrap();
            let r = reference::forward_backward(&model, &want, &x64, &labels, batch, 1, step, true);
            cifar_wgpu::reference::optimizer::update(&opt, &mut want, &r.grads, &mut state, step);
            losses.push(r.loss_sum);
        }
        // The moves, not the weights, so the tolerance means something (as in one_step_of).
        let moved_got: Vec<f32> = net
            .read_params(g)
            .unwrap()
            .iter()
            .zip(&params)
            .map(|(a, b)| a - b)
            .collect();
        let moved_want: Vec<f64> = want
            .iter()
            .zip(&params)
            .map(|(a, &b)| a - b as f64)
            .collect();
        rel_err(
            &format!("{} moves after 3 steps", model.name),
            &moved_got,
            &moved_want,
            1e-3,
        );
        println!("{}: losses {losses:?}", model.name);
        assert!(losses[2] < losses[0], "{}: {losses:?}", model.name);
    }
}

fn one_step_against_the_reference(g: &Gpu) {
    one_step_of(g, &every_layer_model([9, 7, 3], 4), 4);
}

/// One training step of `model` (input 9x7x3, `classes` classes) at batch 5 with each optimizer,
/// against the CPU reference step.
fn one_step_of(g: &Gpu, model: &Sequential, classes: usize) {
    let batch = 5;
    for opt in [
        Optimizer::rmsprop_default(),
        Optimizer::adam_default(),
        Optimizer::Sgd {
            lr: 0.05,
            momentum: 0.9,
            nesterov: true,
        },
    ] {
        let params = model.init_params(11).unwrap();
        let seed = 1234;
        let step = 7;
        let net = Network::new(g, model, opt.clone(), &params, batch, seed).unwrap();
        let (x, labels) = fixed_batch(model, batch, classes, 3);
        write_batch(g, &net, &x, &labels);
        net.set_step(g, step);
        let dispatches = net.step(g, batch, Mode::Train);
        run_dispatches(g, &dispatches.iter().collect::<Vec<_>>()).unwrap();

        let p64: Vec<f64> = params.iter().map(|&v| v as f64).collect();
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let want = reference::forward_backward(model, &p64, &x64, &labels, batch, seed, step, true);
        let metrics = Metrics::from_words(&g.read_u32(&net.train_metrics).unwrap());
        println!("{opt:?}");
        rel_err(
            "logits",
            &g.read_f32(&net.logits(batch, Mode::Train)).unwrap(),
            &want.logits,
            1e-4,
        );
        rel_err("loss", &[metrics.loss_sum], &[want.loss_sum], 1e-5);
        assert_eq!(metrics.correct, want.correct, "correct count");
        assert_eq!(metrics.samples, batch as u32);
        // Per tensor, so a failure names the layer.
        let grads = net.read_grads(g).unwrap();
        for t in model.param_tensors().unwrap() {
            rel_err(
                &format!("d {}", t.name),
                &grads[t.offset..t.offset + t.len],
                &want.grads[t.offset..t.offset + t.len],
                1e-4,
            );
        }
        let mut updated = p64.clone();
        let mut state = vec![vec![0.0; p64.len()]; opt.state_buffers()];
        cifar_wgpu::reference::optimizer::update(&opt, &mut updated, &want.grads, &mut state, step);
        let got = net.read_params(g).unwrap();
        // The update moves weights by about lr; compare the moves, not the weights, so the tolerance
        // means something.
        let moved_got: Vec<f32> = got.iter().zip(&params).map(|(a, b)| a - b).collect();
        let moved_want: Vec<f64> = updated.iter().zip(&p64).map(|(a, b)| a - b).collect();
        rel_err("parameter update", &moved_got, &moved_want, 1e-3);
    }
}

fn device_data(g: &Gpu, ds: &Dataset) -> (DeviceImages, DeviceImages) {
    let bytes = ds.image_bytes();
    let limit = g.max_binding_bytes();
    (
        upload_images(g, &ds.train.images, &ds.train.labels, bytes, limit).unwrap(),
        upload_images(g, &ds.test.images, &ds.test.labels, bytes, limit).unwrap(),
    )
}

/// A training session of `epochs` epochs of a small CNN on `ds` (stopped after `stop_after` steps
/// of the run and resumed from the checkpoint, if given). Returns the saved weights, the history's
/// losses and the last epoch's validation accuracy.
fn train_run(
    ds: &Dataset,
    seed: u64,
    epochs: usize,
    stop_after: Option<usize>,
) -> (Vec<f32>, Vec<f64>, Option<f64>) {
    let g = gpu();
    let out = tempfile::tempdir().unwrap();
    let model = small_cnn([12, 12, 3], 8, 32, ds.num_classes());
    let plan = Plan {
        params: model.init_params(seed).unwrap(),
        model,
        optimizer: Optimizer::rmsprop_default(),
        fit: FitConfig {
            epochs,
            batch_size: 32,
            shuffle: true,
            seed,
            augment: None,
        },
        validation_split: 0.2,
        resume: None,
        out: Some(out.path().to_path_buf()),
        profile: false,
        started: Instant::now(),
    };
    let stop = |p: &Progress| stop_after.is_some_and(|n| p.step as usize == n);
    let mut outcome = session::run(g, ds, plan, &stop, &mut Silent).unwrap();
    if let SessionOutcome::Interrupted {
        progress,
        checkpoint,
    } = outcome
    {
        // Rebuild everything from the checkpoint on disk and continue.
        assert_eq!(Some(progress.step as usize), stop_after);
        let ckpt = Checkpoint::load(&checkpoint.unwrap()).unwrap();
        let plan = Plan {
            model: ckpt.model.model.clone(),
            params: ckpt.model.params.clone(),
            optimizer: ckpt.state.optimizer.clone(),
            fit: ckpt.state.fit.clone(),
            validation_split: ckpt.state.validation_split,
            resume: Some(ckpt),
            out: Some(out.path().to_path_buf()),
            profile: false,
            started: Instant::now(),
        };
        outcome = session::run(g, ds, plan, &|_| false, &mut Silent).unwrap();
    } else {
        assert_eq!(stop_after, None, "the run was not interrupted");
    }
    let SessionOutcome::Finished { history, .. } = outcome else {
        panic!("interrupted twice");
    };
    let params = SavedModel::load(out.path()).unwrap().params;
    let losses = history.iter().map(|e| e.loss).collect();
    (params, losses, history.last().and_then(|e| e.val_accuracy))
}

#[test]
fn a_learnable_data_set_reaches_90_percent_validation_accuracy() {
    let ds = data::synthetic::learnable(1500, 0, 12, 12, 3, 8, 5);
    let t = std::time::Instant::now();
    let (_, losses, val) = train_run(&ds, 3, 3, None);
    let val = val.unwrap();
    println!(
        "losses per epoch {losses:?}; validation accuracy {val:.4}; {:.1}s",
        t.elapsed().as_secs_f64()
    );
    assert!(
        losses.windows(2).all(|w| w[1] < w[0]),
        "loss must fall every epoch: {losses:?}"
    );
    assert!(val >= 0.9, "validation accuracy {val:.4} < 0.9");
}

#[test]
fn the_same_seed_gives_bit_identical_weights_and_another_seed_does_not() {
    let ds = data::synthetic::learnable(300, 0, 12, 12, 3, 5, 8);
    let (a, la, _) = train_run(&ds, 21, 1, None);
    let (b, lb, _) = train_run(&ds, 21, 1, None);
    let (c, _, _) = train_run(&ds, 22, 1, None);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a), bits(&b), "same seed, different weights");
    assert_eq!(la, lb, "same seed, different losses");
    assert_ne!(bits(&a), bits(&c), "a different seed gave the same weights");
}

#[test]
fn interrupt_and_resume_ends_with_the_same_weights_as_a_straight_run() {
    let ds = data::synthetic::learnable(300, 0, 12, 12, 3, 5, 9);
    let (straight, ls, _) = train_run(&ds, 4, 2, None);
    // 240 training images in batches of 32: 8 per epoch; stop in the middle of the second epoch.
    let (resumed, lr, _) = train_run(&ds, 4, 2, Some(11));
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&straight),
        bits(&resumed),
        "resumed run ended with other weights"
    );
    assert_eq!(ls, lr, "resumed run reported other losses");
}

/// Writes down which stages a session reports, in order.
#[derive(Default)]
struct Stages(Vec<String>);

impl Observer for Stages {
    fn data_loaded(&mut self, ds: &Dataset, _: f64) {
        self.0.push(format!("data {}", ds.train.len()));
    }
    fn gpu_opened(&mut self, _: &Gpu) {
        self.0.push("gpu".into());
    }
    fn training_starts(&mut self, s: &TrainingStart) -> Result<(), SessionError> {
        self.0
            .push(format!("start {}+{}", s.train_images, s.val_images));
        Ok(())
    }
    fn event(&mut self, e: Event) {
        if let Event::EpochEnd(log) = e {
            self.0.push(format!("epoch {}", log.epoch));
        }
    }
    fn model_saved(&mut self, _: &Path) {
        self.0.push("saved".into());
    }
    fn tested(&mut self, m: &Metrics, _: f64) {
        self.0.push(format!("tested {}", m.samples));
    }
    fn report_written(&mut self, _: &ReportSummary, _: &Path) {
        self.0.push("report".into());
    }
}

#[test]
fn a_training_session_runs_every_stage_in_order_and_evaluate_agrees_with_its_test() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("cifar-10-binary.tar.gz");
    let ds = data::synthetic::learnable(100, 30, 32, 32, 3, 10, 6);
    writers::write_cifar_binary_tar_gz(&ds, &archive).unwrap();
    let data = DataOptions {
        data: Some(archive),
        offline: true,
        keras_datasets: None,
        ..DataOptions::default()
    };
    let out = dir.path().join("run");
    let opts = SessionOptions {
        data: data.clone(),
        gpu: GpuOptions::default(),
        start: Start::Preset(Preset::Notebook),
        fit: FitConfig {
            epochs: 2,
            batch_size: 25,
            ..FitConfig::default()
        },
        optimizer: Optimizer::rmsprop_default(),
        validation_split: 0.2,
        out: out.clone(),
        profile: false,
    };
    let mut stages = Stages::default();
    let outcome = session::train(&opts, &|_| false, &mut stages).unwrap();
    assert_eq!(
        stages.0,
        [
            "data 100",
            "gpu",
            "start 80+20",
            "epoch 1",
            "epoch 2",
            "saved",
            "tested 30",
            "report"
        ]
    );
    let SessionOutcome::Finished { history, test } = outcome else {
        panic!("the session was not asked to stop");
    };
    assert_eq!(history.len(), 2);
    assert!(out.join("report.html").is_file() && out.join("checkpoint").is_dir());
    let evaluation = session::evaluate(
        &EvaluateOptions {
            model: out,
            data,
            gpu: GpuOptions::default(),
            batch_size: 25,
            report: None,
        },
        &mut Silent,
    )
    .unwrap();
    assert_eq!(Some(evaluation.metrics), test);
    let correct: usize = evaluation.per_class.iter().map(|c| c.0).sum();
    assert_eq!(correct as u32, evaluation.metrics.correct);
}

/// Regression: the trainer cached each data set's programs under the address of its uploaded
/// images, so images uploaded where dropped ones had lived were served the old bindings, and
/// evaluating them silently evaluated the old data.
#[test]
fn images_uploaded_where_dropped_ones_lived_are_not_served_old_programs() {
    let g = gpu();
    let first = data::synthetic::learnable(0, 48, 12, 12, 3, 4, 1);
    let second = data::synthetic::learnable(0, 48, 12, 12, 3, 4, 2);
    let model = small_cnn([12, 12, 3], 8, 32, 4);
    let params = model.init_params(1).unwrap();
    let trainer = || {
        let net = Network::new(g, &model, Optimizer::rmsprop_default(), &params, 16, 1).unwrap();
        Trainer::new(g, net)
    };
    let mut cached = trainer();
    let mut images = device_data(g, &first).1;
    let address = &images as *const DeviceImages;
    let (_, old) = cached
        .evaluate_with_logits(&DeviceSplit::all(&images), 16)
        .unwrap();
    // Assigning drops the first upload and puts the second in the same place.
    images = device_data(g, &second).1;
    assert_eq!(address, &images as *const DeviceImages);
    let (_, got) = cached
        .evaluate_with_logits(&DeviceSplit::all(&images), 16)
        .unwrap();
    let (_, want) = trainer()
        .evaluate_with_logits(&DeviceSplit::all(&images), 16)
        .unwrap();
    assert_ne!(old, want, "the two data sets should give different logits");
    assert_eq!(got, want);
}

#[test]
fn evaluation_uses_no_dropout_and_is_repeatable() {
    let g = gpu();
    let ds = data::synthetic::learnable(100, 40, 12, 12, 3, 4, 2);
    let (_, test_images) = device_data(g, &ds);
    let model = small_cnn([12, 12, 3], 8, 32, 4);
    let net = Network::new(
        g,
        &model,
        Optimizer::rmsprop_default(),
        &model.init_params(1).unwrap(),
        16,
        1,
    )
    .unwrap();
    let mut trainer = Trainer::new(g, net);
    let split = DeviceSplit {
        images: &test_images,
        records: 0..40,
    };
    let (m1, logits1) = trainer.evaluate_with_logits(&split, 16).unwrap();
    let (m2, logits2) = trainer.evaluate_with_logits(&split, 7).unwrap();
    assert_eq!(m1.samples, 40);
    assert_eq!(m1.correct, m2.correct);
    // Batch size changes nothing per example: same logits bit for bit, whatever the batching.
    assert_eq!(logits1, logits2);
    // And the CPU reference (dropout off) agrees.
    let params: Vec<f64> = trainer
        .net
        .read_params(g)
        .unwrap()
        .iter()
        .map(|&v| v as f64)
        .collect();
    let x: Vec<f64> = ds
        .test
        .images
        .iter()
        .map(|&b| (b as f32 / 255.0) as f64)
        .collect();
    let labels: Vec<u32> = ds.test.labels.iter().map(|&l| l as u32).collect();
    let want = reference::forward_backward(&model, &params, &x, &labels, 40, 1, 0, false);
    rel_err("evaluation logits", &logits1, &want.logits, 1e-4);
    assert!((m1.loss() - want.loss_sum / 40.0).abs() < 1e-4);
}

/// The notebook's two Dropout layers leave the program (max pooling ends in the first, the fused
/// last Dense takes the second in with its ReLU), in training and evaluation alike; evaluation is
/// the plain pool and the ReLU alone, training the masks, both as the CPU reference computes them.
#[test]
fn the_notebooks_dropouts_fuse_away_and_evaluation_is_the_plain_pool_and_relu() {
    let (g, batch, classes, seed, step) = (gpu(), 5, 10, 9, 4);
    let model = Sequential::notebook([8, 8, 3], classes);
    let params = model.init_params(3).unwrap();
    let net = Network::new(
        g,
        &model,
        Optimizer::rmsprop_default(),
        &params,
        batch,
        seed,
    )
    .unwrap();
    let x: Vec<f32> = (0..batch * model.input().len())
        .map(|i| ((i * 7919) % 256) as f32 / 255.0)
        .collect();
    let labels: Vec<u32> = (0..batch as u32)
        .map(|i| (i * 3) % classes as u32)
        .collect();
    g.write(&net.input(batch), &x);
    g.write(&net.labels.slice(0, batch), &labels);
    net.set_step(g, step);
    let p64: Vec<f64> = params.iter().map(|&v| v as f64).collect();
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    for mode in [Mode::Eval, Mode::Train] {
        let dispatches = net.step(g, batch, mode);
        let names: Vec<&str> = dispatches.iter().map(|d| d.name).collect();
        println!("{mode:?}: {} dispatches {names:?}", names.len());
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with("dropout") || n.starts_with("relu")),
            "{mode:?}: {names:?}"
        );
        run_dispatches(g, &dispatches.iter().collect::<Vec<_>>()).unwrap();
        let train = mode == Mode::Train;
        let want =
            reference::forward_backward(&model, &p64, &x64, &labels, batch, seed, step, train);
        rel_err(
            &format!("{mode:?} logits"),
            &g.read_f32(&net.logits(batch, mode)).unwrap(),
            &want.logits,
            1e-4,
        );
        if train {
            let grads = net.read_grads(g).unwrap();
            for t in model.param_tensors().unwrap() {
                rel_err(
                    &format!("d {}", t.name),
                    &grads[t.offset..t.offset + t.len],
                    &want.grads[t.offset..t.offset + t.len],
                    1e-4,
                );
            }
        }
    }
}

#[test]
fn a_non_finite_loss_stops_training_naming_the_epoch_and_batch() {
    let g = gpu();
    let ds = data::synthetic::learnable(200, 0, 12, 12, 3, 4, 6);
    let (train_images, _) = device_data(g, &ds);
    let model = small_cnn([12, 12, 3], 8, 32, 4);
    // One infinite weight in the last layer's bias makes the first step's logits, and loss, non-finite.
    let mut params = model.init_params(1).unwrap();
    let bias = model.param_tensors().unwrap().last().unwrap().clone();
    params[bias.offset] = f32::INFINITY;
    let net = Network::new(g, &model, Optimizer::rmsprop_default(), &params, 32, 1).unwrap();
    let mut trainer = Trainer::new(g, net);
    let fit = FitConfig {
        epochs: 1,
        batch_size: 32,
        shuffle: true,
        seed: 1,
        augment: None,
    };
    let train = DeviceSplit {
        images: &train_images,
        records: 0..160,
    };
    let err = trainer
        .train_epoch(&fit, &train, None, &|_| false, &mut |_| {})
        .unwrap_err();
    let msg = err.to_string();
    println!("{msg}");
    assert!(msg.contains("epoch 1, batch 1"), "{msg}");
}

/// BatchNormalization in training: three GPU steps (batch statistics, moving update, gradients,
/// SGD with momentum) land where three CPU reference steps do, and evaluation then normalises with
/// the moving statistics as the reference does.
#[test]
fn batchnorm_trains_like_the_reference_and_evaluates_with_its_moving_statistics() {
    let g = gpu();
    let (input, classes, batch) = ([9, 7, 3], 4, 5);
    let model = batchnorm_model(input, classes);
    // Not RMSprop: the biases before each BatchNormalization get no gradient (the batch mean is
    // taken out), only rounding noise, which RMSprop would scale up to steps of lr.
    let opt = Optimizer::Sgd {
        lr: 0.05,
        momentum: 0.9,
        nesterov: false,
    };
    let params = model.init_params(3).unwrap();
    let seed = 99;
    let net = Network::new(g, &model, opt.clone(), &params, batch, seed).unwrap();
    let (x, labels) = fixed_batch(&model, batch, classes, 3);
    write_batch(g, &net, &x, &labels);
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let mut want: Vec<f64> = params.iter().map(|&v| v as f64).collect();
    let mut state = vec![vec![0.0; want.len()]; opt.state_buffers()];
    for step in 0..3 {
        net.set_step(g, step);
        let dispatches = net.step(g, batch, Mode::Train);
        run_dispatches(g, &dispatches.iter().collect::<Vec<_>>()).unwrap();
        let r = reference::forward_backward(&model, &want, &x64, &labels, batch, seed, step, true);
        want = r.params;
        cifar_wgpu::reference::optimizer::update(&opt, &mut want, &r.grads, &mut state, step);
    }
    let got = net.read_params(g).unwrap();
    for t in model.param_tensors().unwrap() {
        let range = t.offset..t.offset + t.len;
        let moved_got: Vec<f32> = got[range.clone()]
            .iter()
            .zip(&params[range.clone()])
            .map(|(a, b)| a - b)
            .collect();
        let moved_want: Vec<f64> = want[range.clone()]
            .iter()
            .zip(&params[range])
            .map(|(a, &b)| a - b as f64)
            .collect();
        let name = format!("{} after 3 steps, moved", t.name);
        if ["conv2d/bias", "dense/bias"].contains(&t.name.as_str()) {
            let worst = moved_got.iter().map(|m| m.abs()).fold(0.0, f32::max);
            println!("{name}: at most {worst:.2e} (no gradient)");
            assert!(worst < 1e-6, "{name}: {worst}");
        } else {
            rel_err(&name, &moved_got, &moved_want, 1e-4);
        }
    }
    let dispatches = net.step(g, batch, Mode::Eval);
    run_dispatches(g, &dispatches.iter().collect::<Vec<_>>()).unwrap();
    let got64: Vec<f64> = got.iter().map(|&v| v as f64).collect();
    let eval = reference::forward_backward(&model, &got64, &x64, &labels, batch, seed, 3, false);
    rel_err(
        "evaluation logits (moving statistics)",
        &g.read_f32(&net.logits(batch, Mode::Eval)).unwrap(),
        &eval.logits,
        1e-4,
    );
    // Evaluating moved no statistic.
    assert_eq!(net.read_params(g).unwrap(), got);
}

/// The layers' scratch buffers are checked against the adapter's limits with the activations: a
/// convolution whose weight-gradient partials (961 chunks of its 3x3x64x64 kernel, 142 MB at batch
/// 128) pass WebGPU's 128 MiB binding while every activation fits is refused before anything is
/// allocated, and the batch the message suggests fits.
#[test]
fn scratch_buffers_past_the_binding_limit_are_refused_before_allocating() {
    use cifar_wgpu::gpu::LimitsChoice;
    use cifar_wgpu::layers::{Activation, Conv2D, Dense, Flatten};
    use cifar_wgpu::shape::Padding;
    use cifar_wgpu::train::network::check_memory;
    let g = Gpu::new(&GpuOptions {
        limits: Some(LimitsChoice::Webgpu),
        ..GpuOptions::default()
    })
    .unwrap();
    let model = cifar_wgpu::model::Sequential::from_layers(
        "wide_conv",
        [64, 64, 64],
        vec![
            Conv2D::new(64, [3, 3], Padding::Valid)
                .activation(Activation::Relu)
                .into(),
            Flatten.into(),
            Dense::new(2).activation(Activation::Softmax).into(),
        ],
    );
    let optimizer = Optimizer::rmsprop_default();
    let err = check_memory(&g, &model, &optimizer, 128)
        .expect_err("the weight scratch is past the binding limit")
        .to_string();
    for want in [
        "weight scratch of layer 'conv2d'",
        "--batch-size of at most",
    ] {
        assert!(err.contains(want), "'{want}' missing from: {err}");
    }
    let at_most: usize = err
        .rsplit("at most ")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .expect("the message names a batch that fits");
    check_memory(&g, &model, &optimizer, at_most).unwrap();
}

/// A Dense layer's bias gradient: written by its weight-gradient product where the network places
/// the two gradients (one buffer, the bias at the kernel's next 64-word boundary), leaving the words
/// between untouched, and by `column_sum` (two passes over a batch past 1024 rows) where they lie in
/// buffers of their own. Both against the CPU twin.
#[test]
fn a_dense_layers_bias_gradient_comes_with_its_kernel_gradient_or_from_a_column_sum() {
    use cifar_wgpu::layers::{Dense, GpuStep, LayerKind, Lowering};
    use cifar_wgpu::model::{PARAM_ALIGN, Shape};
    let g = gpu();
    let (batch, inp, units) = (1030, 7, 12);
    let dense = Dense::new(units);
    let values = |n: usize, salt: usize| -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 + salt) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    };
    let (x, w, dy) = (
        values(batch * inp, 1),
        values(inp * units, 2),
        values(batch * units, 3),
    );
    let f64s = |v: &[f32]| v.iter().map(|&v| v as f64).collect::<Vec<_>>();
    let (want_dx, want_dw, want_db) = cifar_wgpu::reference::matmul::dense_backward(
        &f64s(&x),
        &f64s(&w),
        &f64s(&dy),
        batch,
        inp,
        units,
    );
    let params = [g.upload("w", &w), g.zeros("b", units)];
    let (tx, tdy) = (g.upload("x", &x), g.upload("dy", &dy));
    let gap = 99.0f32;
    let at = (inp * units).next_multiple_of(PARAM_ALIGN);
    let mut flat = vec![f32::NAN; at + units];
    flat[inp * units..at].fill(gap);
    let flat = g.upload("grads", &flat);
    let together = [flat.slice(0, inp * units), flat.slice(at, units)];
    let apart = [g.zeros("dw", inp * units), g.zeros("db", units)];
    for (what, grads, column_sums) in [("together", &together, 0), ("apart", &apart, 2)] {
        let ops = dense.lower(&Lowering {
            gpu: g,
            index: 0,
            input: &Shape::Flat(inp),
            output: &Shape::Flat(units),
            max_batch: batch,
            params: &params,
            grads,
        });
        let step = GpuStep {
            gpu: g,
            batch,
            step_state: &g.zeros("step state", 4),
            seed: 0,
        };
        let dx = g.zeros("dx", batch * inp);
        let ds = ops[0].backward(&step, &tx, &tdy, Some(&dx));
        let sums = ds.iter().filter(|d| d.name == "column_sum").count();
        assert_eq!(sums, column_sums, "{what}: column_sum dispatches");
        run_dispatches(g, &ds.iter().collect::<Vec<_>>()).unwrap();
        rel_err(
            &format!("{what} dw"),
            &g.read_f32(&grads[0]).unwrap(),
            &want_dw,
            1e-4,
        );
        rel_err(
            &format!("{what} db"),
            &g.read_f32(&grads[1]).unwrap(),
            &want_db,
            1e-4,
        );
        rel_err(
            &format!("{what} dx"),
            &g.read_f32(&dx).unwrap(),
            &want_dx,
            1e-4,
        );
    }
    let between = g.read_f32(&flat).unwrap()[inp * units..at].to_vec();
    assert!(between.iter().all(|&v| v == gap), "the padding was written");
}

/// Issue 14's budget: the notebook's training step at batch 128 on CIFAR's shapes is at most 14
/// dispatches in every matmul flavour, and these exactly (the step is built, not run). The shared
/// flavour splits K where its 128x128 tiles are few (the forward product, and dx) and adds the splits
/// in a dispatch of its own each.
#[test]
fn the_notebooks_training_step_is_at_most_14_dispatches_in_every_flavour() {
    let model = Sequential::notebook([32, 32, 3], 10);
    let params = model.init_params(1).unwrap();
    let base = [
        "gather_batch",
        "conv2d_forward",
        "maxpool2d_forward",
        "matmul_nn",
        "dense_loss_forward",
        "dense_loss_backward",
        "matmul_tn",
        "matmul_nt",
        "maxpool2d_backward",
        "conv2d_backward_weight",
        "column_sum",
        "rmsprop",
    ];
    for tiling in [Tiling::Registers, Tiling::Shared] {
        let g = Gpu::new(&GpuOptions {
            tiling: Some(tiling),
            ..GpuOptions::default()
        })
        .unwrap();
        let net = Network::new(&g, &model, Optimizer::rmsprop_default(), &params, 128, 1).unwrap();
        let images = upload_images(&g, &[0; 3072], &[0], 3072, g.max_binding_bytes()).unwrap();
        let mut step = net.gather_training(&g, &images, 128);
        step.extend(net.step(&g, 128, Mode::Train));
        let names: Vec<&str> = step.iter().map(|d| d.name).collect();
        let mut want = base.to_vec();
        if tiling == Tiling::Shared {
            want.insert(
                want.iter().position(|&n| n == "matmul_nn").unwrap() + 1,
                "matmul_split_sum",
            );
            want.insert(
                want.iter().position(|&n| n == "matmul_nt").unwrap() + 1,
                "matmul_split_sum",
            );
        }
        assert_eq!(names, want, "{tiling:?}");
        assert!(names.len() <= 14, "{tiling:?}: {} dispatches", names.len());
    }
}
