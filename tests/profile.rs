//! The profiler: every kernel of a step appears with a positive time, the times add up to no more than
//! the step, the trace is valid Chrome trace JSON, the host fallback works, and each kernel's stated
//! FLOPs and bytes equal hand-computed values for the notebook's shapes. Each timing level runs on a
//! device that lacks the features of the levels above it, as Metal and other adapters may.

#[path = "common/gpu.rs"]
mod common_gpu;
use common_gpu::{gpu, small_cnn};

use cifar_wgpu::data::synthetic;
use cifar_wgpu::gpu::timing::TimingMode;
use cifar_wgpu::gpu::{Dispatch, Gpu, GpuOptions, OptionalFeature, Tiling};
use cifar_wgpu::kernels::gather::upload_images;
use cifar_wgpu::model::Sequential;
use cifar_wgpu::optimizer::Optimizer;
use cifar_wgpu::train::profile::{chrome_trace, profile_steps};
use cifar_wgpu::train::{Mode, Network};

fn profile(
    allow_timestamps: bool,
) -> (
    cifar_wgpu::train::profile::ProfileReport,
    Vec<cifar_wgpu::gpu::timing::StepTiming>,
    Vec<&'static str>,
) {
    profile_on(gpu(), allow_timestamps)
}

fn profile_on(
    g: &Gpu,
    allow_timestamps: bool,
) -> (
    cifar_wgpu::train::profile::ProfileReport,
    Vec<cifar_wgpu::gpu::timing::StepTiming>,
    Vec<&'static str>,
) {
    let model = small_cnn([10, 10, 3], 4, 8, 3);
    let ds = synthetic::learnable(40, 0, 10, 10, 3, 3, 1);
    let images = upload_images(
        g,
        &ds.train.images,
        &ds.train.labels,
        300,
        g.max_binding_bytes(),
    )
    .unwrap();
    let net = Network::new(
        g,
        &model,
        Optimizer::adam_default(),
        &model.init_params(0).unwrap(),
        16,
        0,
    )
    .unwrap();
    let mut names: Vec<&'static str> = net.gather(g, &images, 16).iter().map(|d| d.name).collect();
    names.extend(net.step(g, 16, Mode::Train).iter().map(|d| d.name));
    let (report, timings) = profile_steps(g, &net, &images, 16, 1, 3, allow_timestamps).unwrap();
    (report, timings, names)
}

#[test]
fn the_table_lists_every_kernel_with_positive_times_within_the_step() {
    let (report, timings, names) = profile(true);
    println!("{report}");
    assert_ne!(
        report.mode,
        TimingMode::Host,
        "lavapipe offers timestamp queries"
    );
    assert_eq!(report.steps, 3);
    for t in &timings {
        assert_eq!(t.dispatches.len(), names.len());
        for d in &t.dispatches {
            assert!(d.ns > 0.0, "{} took no time", d.name);
        }
        let sum: f64 = t.dispatches.iter().map(|d| d.ns).sum();
        assert!(sum <= t.wall_ns, "kernels {sum} ns > step {} ns", t.wall_ns);
    }
    for name in &names {
        let row = report
            .rows
            .iter()
            .find(|r| r.name == *name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert!(row.ms > 0.0 && row.calls >= 1);
    }
    let calls: usize = report.rows.iter().map(|r| r.calls).sum();
    assert_eq!(calls, names.len());
    assert!(report.gpu_ms <= report.step_ms);
    let shares: f64 = report.rows.iter().map(|r| r.share).sum();
    assert!((shares - 1.0).abs() < 1e-9);
    let text = report.to_string();
    assert!(
        text.contains("GFLOP/s") && text.contains("adam") && text.contains("images/s"),
        "{text}"
    );
}

#[test]
fn the_trace_is_chrome_trace_json_with_gpu_and_host_events() {
    let (_, timings, names) = profile(true);
    let text = serde_json::to_string(&chrome_trace(&timings)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let events = v["traceEvents"].as_array().unwrap();
    let gpu_events: Vec<_> = events
        .iter()
        .filter(|e| e["ph"] == "X" && e["tid"] == 1)
        .collect();
    assert_eq!(gpu_events.len(), names.len() * timings.len());
    for e in &gpu_events {
        assert!(e["dur"].as_f64().unwrap() > 0.0 && e["ts"].as_f64().unwrap() >= 0.0);
        assert!(names.contains(&e["name"].as_str().unwrap()));
    }
    let host: Vec<&str> = events
        .iter()
        .filter(|e| e["ph"] == "X" && e["tid"] == 2)
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for expected in ["record", "submit", "wait + readback"] {
        assert!(
            host.contains(&expected),
            "no '{expected}' host event: {host:?}"
        );
    }
}

#[test]
fn without_timestamps_the_host_fallback_runs_and_says_so() {
    let (report, timings, names) = profile(false);
    assert_eq!(report.mode, TimingMode::Host);
    assert!(report.to_string().contains("host timing"));
    assert_eq!(timings[0].dispatches.len(), names.len());
    assert!(
        timings
            .iter()
            .all(|t| t.dispatches.iter().all(|d| d.ns > 0.0))
    );
}

#[test]
fn each_timing_level_runs_where_it_is_the_best_the_device_has() {
    // Lavapipe has every timestamp feature; withholding them in turn gives the devices of adapters
    // without timestamps inside passes (Metal's usual case) and without timestamps at all.
    for (without, mode) in [
        (None, TimingMode::InsidePasses),
        (
            Some(OptionalFeature::TimestampsInsidePasses),
            TimingMode::PassPerDispatch,
        ),
        (Some(OptionalFeature::Timestamps), TimingMode::Host),
    ] {
        let g = Gpu::new(&GpuOptions {
            without: without.into_iter().collect(),
            ..GpuOptions::default()
        })
        .unwrap();
        assert!(without.is_none_or(|f| !g.has(f)));
        let (report, timings, names) = profile_on(&g, true);
        assert_eq!(report.mode, mode, "without {without:?}");
        assert!(report.to_string().contains(mode.describe()));
        for t in &timings {
            assert_eq!(t.dispatches.len(), names.len(), "{mode:?}");
            assert!(t.dispatches.iter().all(|d| d.ns > 0.0), "{mode:?}");
            let sum: f64 = t.dispatches.iter().map(|d| d.ns).sum();
            assert!(
                sum <= t.wall_ns,
                "{mode:?}: kernels {sum} ns > step {} ns",
                t.wall_ns
            );
        }
    }
}

fn find<'a>(ds: &'a [Dispatch], name: &str, nth: usize) -> &'a Dispatch {
    ds.iter()
        .filter(|d| d.name == name)
        .nth(nth)
        .unwrap_or_else(|| panic!("no {name} #{nth}"))
}

#[test]
fn stated_flops_and_bytes_equal_hand_computed_values_for_the_notebook() {
    let g = gpu();
    let model = Sequential::notebook([32, 32, 3], 10);
    let net = Network::new(
        g,
        &model,
        Optimizer::rmsprop_default(),
        &model.init_params(0).unwrap(),
        128,
        0,
    )
    .unwrap();
    let ds = net.step(g, 128, Mode::Train);
    let w = 4u64; // bytes per f32
    let conv_out = 128 * 32 * 32 * 32u64; // 4,194,304
    let pooled = 128 * 16 * 16 * 32u64; // 1,048,576
    let conv_macs = conv_out * 3 * 3 * 3;
    let check = |d: &Dispatch, flops: u64, bytes: u64| {
        println!("{}: {} FLOP, {} bytes", d.name, d.cost.flops, d.cost.bytes);
        assert_eq!((d.cost.flops, d.cost.bytes), (flops, bytes), "{}", d.name);
    };
    // Conv2D 32x32x3 -> 32 filters 3x3 same, bias and ReLU fused: a multiply-add per tap, an add and
    // a select per output. The convolution's ReLU is fused into it and the pooling's backward; the
    // dense layer's into the dropout after it (src/layers/dense.rs says why not into the product).
    check(
        find(&ds, "conv2d_forward", 0),
        2 * conv_macs + 2 * conv_out,
        (128 * 3072 + 864 + 32 + conv_out) * w,
    );
    let relus = ds.iter().filter(|d| d.name.starts_with("relu")).count();
    assert_eq!(relus, 0, "every ReLU fused");
    // 2x2 windows: 4 comparisons per output; reads the input, writes values and argmax. The
    // dropout after it is fused in: a multiply per output, and the step state read. Both dropouts
    // are fused away.
    check(
        find(&ds, "maxpool2d_forward", 0),
        4 * pooled + pooled,
        (conv_out + 2 * pooled + 4) * w,
    );
    let dropouts = ds.iter().filter(|d| d.name.starts_with("dropout")).count();
    assert_eq!(dropouts, 0, "every Dropout fused");
    // Dense 8192 -> 512 at batch 128.
    check(
        find(&ds, "matmul_nn", 0),
        2 * 128 * 512 * 8192 + 128 * 512,
        (128 * 8192 + 8192 * 512 + 512 + 128 * 512) * w,
    );
    // The last layer, 512 -> 10, fused with the loss and the ReLU-dropout before it: the product
    // and bias, 8 FLOPs of loss per logit, dx = dlogits W^T and the dropout's multiply of each x
    // and dx element; x, W, b, labels and the step state read, logits, dlogits, two words per row
    // and dx written. Its backward: dW and db (x through the dropout again), and the rows' metrics.
    check(
        find(&ds, "dense_loss_forward", 0),
        2 * 128 * 10 * 512 + 128 * 10 + 8 * 1280 + 2 * 128 * 512 * 10 + 2 * 128 * 512,
        (128 * 512 + 512 * 10 + 10 + 128 + 2 * 1280 + 2 * 128 + 128 * 512 + 4) * w,
    );
    check(
        find(&ds, "dense_loss_backward", 0),
        2 * 128 * 512 * 10 + 1280 + 128 + 128 * 512,
        (128 * 512 + 1280 + 2 * 128 + 512 * 10 + 10 + 2 * 4 + 4) * w,
    );
    // Backward of the big dense layer: dW = x^T dy with db = 1^T dy as its column sums (an add per
    // element of dy, db written), and dx = dy W^T, no bias.
    check(
        find(&ds, "matmul_tn", 0),
        2 * 8192 * 512 * 128 + 128 * 512,
        (128 * 8192 + 128 * 512 + 8192 * 512 + 512) * w,
    );
    // So no column sum runs for the dense layers (the convolution's bias, later, takes its own).
    let conv_backward = ds
        .iter()
        .position(|d| d.name == "conv2d_backward_weight")
        .expect("the convolution's backward");
    assert!(
        !ds[..conv_backward].iter().any(|d| d.name == "column_sum"),
        "a dense layer's bias gradient took a column_sum"
    );
    check(
        find(&ds, "matmul_nt", 0),
        2 * 128 * 8192 * 512,
        (128 * 512 + 8192 * 512 + 128 * 8192) * w,
    );
    // The dropout's multiply of dy, then the routing; dy, argmax, the ReLU's x and the step state
    // read, dx written.
    check(
        find(&ds, "maxpool2d_backward", 0),
        2 * pooled,
        (2 * pooled + 2 * conv_out + 4) * w,
    );
    // RMSprop over the padded flat parameter vector: params, grads, one state vector read and two
    // vectors written, plus the step state.
    let n = model.param_words().unwrap() as u64;
    let rms = find(&ds, "rmsprop", 0);
    assert_eq!(rms.cost.bytes, (5 * n + 4) * w, "rmsprop bytes");
    assert_eq!(
        rms.cost.flops % n,
        0,
        "rmsprop FLOPs are a whole number per parameter"
    );
    assert!(
        !ds.iter().any(|d| d.name == "softmax_cross_entropy"),
        "the loss is fused into the last layer"
    );
}

#[test]
fn bench_times_warm_epochs_and_reports_the_best() {
    let g = gpu();
    let ds = synthetic::learnable(150, 0, 8, 8, 3, 10, 2);
    let r = cifar_wgpu::session::bench::bench(g, &ds, 2, 32).unwrap();
    let json = serde_json::to_value(&r).unwrap();
    println!("{json}");
    assert_eq!(r.epochs_timed, 2);
    assert_eq!((r.train_images, r.val_images), (120, 30));
    assert_eq!(r.epoch_s.len(), 2);
    assert!(r.epoch_s.iter().all(|&s| s >= r.best_epoch_s && s > 0.0));
    assert!(
        r.train_s.iter().zip(&r.epoch_s).all(|(t, e)| t <= e),
        "training is part of the epoch"
    );
    let best_train = r.train_s.iter().cloned().fold(f64::INFINITY, f64::min);
    assert!((r.train_images_per_s - 120.0 / best_train).abs() < 1e-6 * r.train_images_per_s);
    assert!(json["adapter"].as_str().unwrap().contains(&g.info.name));
    // Counted as the profile counts them, the gather included: the notebook's 12 (tests/train.rs
    // lists them); the shared flavour may add a split-K sum per product.
    match g.flavours.tiling() {
        Tiling::Registers => assert_eq!(r.dispatches_per_step, 12),
        Tiling::Shared => assert!((12..=14).contains(&r.dispatches_per_step)),
    }
}
