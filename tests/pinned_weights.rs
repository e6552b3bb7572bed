//! Results pinned bit for bit: the weights after a few seeded training steps, in every kernel flavour,
//! and after a short `fit`, compared with values recorded on lavapipe before the code around them was
//! reorganised. A refactor must leave them unchanged; a change of arithmetic (a fusion, another
//! summation order) re-records them on purpose, with the kernel tests against the CPU twins still
//! passing:
//!
//!     CIFAR_WGPU_RECORD_PINNED=1 cargo test --test pinned_weights
//!
//! The files under `tests/pinned/` are little-endian f32 parameter vectors. Other adapters round
//! differently, so off lavapipe the weights are compared within a tolerance instead.

#[path = "common/gpu.rs"]
mod common_gpu;
use common_gpu::{every_layer_model, gpu, small_cnn};

use std::path::PathBuf;

use cifar_wgpu::data;
use cifar_wgpu::gpu::{Gpu, GpuOptions, MatmulFlavour, Tiling, run_dispatches};
use cifar_wgpu::kernels::gather::upload_images;
use cifar_wgpu::optimizer::Optimizer;
use cifar_wgpu::train::{DeviceSplit, FitConfig, Mode, Network, Trainer};

/// The adapter the pinned files were recorded on: lavapipe (llvmpipe through Vulkan; llvmpipe through
/// GL compiles the same kernels with other rounding).
const PINNED_ADAPTER: &str = "llvmpipe";

fn is_pinned_adapter(g: &Gpu) -> bool {
    g.info.name.contains(PINNED_ADAPTER) && format!("{:?}", g.info.backend) == "Vulkan"
}

fn pinned_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/pinned")
        .join(format!("{name}.f32"))
}

/// Compares `got` with the pinned file `name` (or records it when asked to).
fn check_pinned(g: &Gpu, name: &str, got: &[f32]) {
    let path = pinned_path(name);
    let bytes: Vec<u8> = got.iter().flat_map(|v| v.to_le_bytes()).collect();
    if std::env::var_os("CIFAR_WGPU_RECORD_PINNED").is_some() {
        assert!(
            is_pinned_adapter(g),
            "record pinned weights on {PINNED_ADAPTER} through Vulkan, not {}",
            g.info.name
        );
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        println!("{name}: recorded {} words", got.len());
        return;
    }
    let want: Vec<f32> = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(got.len(), want.len(), "{name}: parameter count");
    let differing = got
        .iter()
        .zip(&want)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!(
        "{name}: {differing} of {} words differ, max diff {worst:.2e}",
        got.len()
    );
    if is_pinned_adapter(g) {
        assert_eq!(
            differing, 0,
            "{name}: weights changed (max diff {worst:.2e})"
        );
    } else {
        assert!(
            worst <= 1e-4,
            "{name}: max diff {worst:.2e} on {}",
            g.info.name
        );
    }
}

/// Three RMSprop steps of the every-layer model on fixed batches, straight through `Network::step`.
fn three_steps(g: &Gpu) -> Vec<f32> {
    let (input, classes, batch) = ([9, 7, 3], 4, 5);
    let model = every_layer_model(input, classes);
    let params = model.init_params(11).unwrap();
    let net = Network::new(
        g,
        &model,
        Optimizer::rmsprop_default(),
        &params,
        batch,
        1234,
    )
    .unwrap();
    for step in 1..=3u32 {
        let x: Vec<f32> = (0..batch * 9 * 7 * 3)
            .map(|i| ((i * 7919 + step as usize * 104_729) % 256) as f32 / 255.0)
            .collect();
        let labels: Vec<u32> = (0..batch as u32)
            .map(|i| (i * 3 + step) % classes as u32)
            .collect();
        g.write(&net.input(batch), &x);
        g.write(&net.labels.slice(0, batch), &labels);
        net.set_step(g, step);
        let dispatches = net.step(g, batch, Mode::Train);
        run_dispatches(g, &dispatches.iter().collect::<Vec<_>>()).unwrap();
    }
    net.read_params(g).unwrap()
}

fn device(tiling: Tiling, subgroups: bool) -> Gpu {
    Gpu::new(&GpuOptions {
        tiling: Some(tiling),
        matmul_subgroups: Some(subgroups),
        ..GpuOptions::default()
    })
    .expect("a device on the test adapter")
}

#[test]
fn three_steps_with_register_tiles_are_pinned() {
    check_pinned(
        gpu(),
        "three_steps_registers",
        &three_steps(&device(Tiling::Registers, false)),
    );
}

#[test]
fn three_steps_with_subgroup_tiles_are_pinned() {
    let g = gpu();
    // Only adapters with 8-lane subgroups run these kernels (lavapipe does).
    if g.flavours.matmul != MatmulFlavour::Subgroups {
        assert!(
            !is_pinned_adapter(g),
            "lavapipe should choose the subgroup kernels"
        );
        println!("{}: no 8-lane subgroups, nothing to compare", g.info.name);
        return;
    }
    check_pinned(
        g,
        "three_steps_subgroups",
        &three_steps(&device(Tiling::Registers, true)),
    );
}

#[test]
fn three_steps_with_shared_memory_tiles_are_pinned() {
    check_pinned(
        gpu(),
        "three_steps_shared",
        &three_steps(&device(Tiling::Shared, false)),
    );
}

/// One epoch of `fit` with validation (gather, shuffle, dropout, metrics), default kernels.
#[test]
fn one_fit_epoch_is_pinned() {
    let g = gpu();
    let ds = data::synthetic::learnable(80, 0, 12, 12, 3, 5, 17);
    let train_images = upload_images(
        g,
        &ds.train.images,
        &ds.train.labels,
        ds.image_bytes(),
        g.max_binding_bytes(),
    )
    .unwrap();
    let model = small_cnn([12, 12, 3], 6, 24, ds.num_classes());
    let fit = FitConfig {
        epochs: 1,
        batch_size: 16,
        shuffle: true,
        seed: 5,
        augment: None,
    };
    let split = data::validation_split_index(ds.train.len(), 0.2).unwrap();
    let (train, val) = DeviceSplit::train_and_validation(&train_images, split);
    let params = model.init_params(5).unwrap();
    let net = Network::new(g, &model, Optimizer::rmsprop_default(), &params, 16, 5).unwrap();
    let mut trainer = Trainer::new(g, net);
    let log = trainer
        .train_epoch(&fit, &train, Some(&val), &|_| false, &mut |_| {})
        .unwrap()
        .expect("an uninterrupted epoch");
    println!("{log:?}");
    check_pinned(g, "one_fit_epoch", &trainer.net.read_params(g).unwrap());
}
