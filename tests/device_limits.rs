//! The device never panics: a model whose buffers exceed the adapter's limits is refused before
//! anything is allocated, with the limit and the flag to change, and whatever wgpu rejects (inside
//! error scopes or not) comes back as an error instead of wgpu's panicking default handler. And a
//! run over no training images is an error, not a loss of 0 and a saved untrained model.

use std::time::Instant;

use cifar_wgpu::data::synthetic;
use cifar_wgpu::gpu::{Gpu, GpuOptions};
use cifar_wgpu::model::Sequential;
use cifar_wgpu::optimizer::Optimizer;
use cifar_wgpu::session::{self, Plan, Silent};
use cifar_wgpu::train::{FitConfig, Network};

/// A device of its own: the tests below leave errors recorded on it.
fn fresh_gpu() -> Gpu {
    Gpu::new(&GpuOptions::default()).expect("these tests need a GPU adapter (lavapipe is enough)")
}

#[test]
fn a_batch_past_the_binding_limit_is_refused_before_allocating() {
    let gpu = fresh_gpu();
    let model = Sequential::notebook([32, 32, 3], 10);
    let params = model.init_params(0).unwrap();
    // 32x32x32 floats per example at the first convolution: far past any binding limit.
    let err = Network::new(
        &gpu,
        &model,
        Optimizer::rmsprop_default(),
        &params,
        100_000_000,
        0,
    )
    .err()
    .expect("a batch of 10^8 cannot fit")
    .to_string();
    for want in [
        "a batch of 100000000",
        "layer 'conv2d'",
        "--batch-size",
        "max_",
    ] {
        assert!(err.contains(want), "'{want}' missing from: {err}");
    }
    // The device is untouched: nothing was created, so nothing failed.
    gpu.wait().unwrap();
    // The batch the message suggests does fit.
    let at_most: usize = err
        .rsplit("at most ")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .expect("the message names the largest batch");
    let small = at_most.min(4);
    Network::new(
        &gpu,
        &model,
        Optimizer::rmsprop_default(),
        &params,
        small,
        0,
    )
    .unwrap();
    gpu.wait().unwrap();
}

#[test]
fn device_errors_are_errors_not_panics() {
    let gpu = fresh_gpu();
    let too_many_words = (gpu.limits.max_buffer_size / 4 + 1) as usize;
    // Inside error scopes: the error names what was being done.
    let err = gpu
        .catching("making a huge buffer", || gpu.zeros("huge", too_many_words))
        .expect_err("a buffer past max_buffer_size is refused");
    assert!(err.to_string().contains("making a huge buffer"), "{err}");
    gpu.wait().unwrap();
    // Outside any scope: recorded by the handler, returned by the next wait.
    let _ = gpu.zeros("huge", too_many_words);
    let err = gpu.wait().expect_err("the next wait reports it");
    assert!(err.to_string().starts_with("GPU error"), "{err}");
}

#[test]
fn no_training_images_is_an_error_not_a_loss_of_zero() {
    let gpu = fresh_gpu();
    let ds = synthetic::learnable(0, 20, 8, 8, 3, 2, 1);
    let model = Sequential::notebook([8, 8, 3], 2);
    let out = tempfile::tempdir().unwrap();
    let plan = Plan {
        params: model.init_params(0).unwrap(),
        model,
        optimizer: Optimizer::rmsprop_default(),
        fit: FitConfig::default(),
        validation_split: 0.0,
        resume: None,
        out: Some(out.path().join("model")),
        profile: false,
        started: Instant::now(),
    };
    let err = session::run(&gpu, &ds, plan, &|_| false, &mut Silent)
        .expect_err("nothing to train on")
        .to_string();
    assert!(err.contains("no training images"), "{err}");
    assert!(!out.path().join("model").exists());
}
