//! Shared by the GPU tests: one device per test binary, small models, and every program built.
// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::sync::OnceLock;

use cifar_wgpu::gpu::{Gpu, GpuOptions};
use cifar_wgpu::kernels::gather::upload_images;
use cifar_wgpu::layers::{
    Activation, ActivationLayer, Conv2D, Dense, Dropout, Flatten, Layer, MaxPooling2D,
};
use cifar_wgpu::model::Sequential;
use cifar_wgpu::optimizer::Optimizer;
use cifar_wgpu::shape::Padding;
use cifar_wgpu::train::{Mode, Network};

/// The test device. A machine without an adapter fails loudly here: a skipped GPU test would hide
/// that nothing was checked.
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        Gpu::new(&GpuOptions::default())
            .unwrap_or_else(|e| panic!("these tests need a GPU adapter (lavapipe is enough): {e}"))
    })
}

/// The notebook's layers at a small size: Conv2D(filters, 3x3, same, relu), MaxPool 2x2, Dropout
/// 0.25, Flatten, Dense(units, relu), Dense(classes, softmax).
pub fn small_cnn(input: [usize; 3], filters: usize, units: usize, classes: usize) -> Sequential {
    Sequential::from_layers(
        "small_cnn",
        input,
        vec![
            Layer::Conv2D(Conv2D {
                filters,
                kernel_size: [3, 3],
                padding: Padding::Same,
                activation: Activation::Relu,
            }),
            Layer::MaxPooling2D(MaxPooling2D {
                pool_size: [2, 2],
                strides: [2, 2],
                padding: Padding::Valid,
            }),
            Layer::Dropout(Dropout { rate: 0.25 }),
            Layer::Flatten(Flatten),
            Layer::Dense(Dense {
                units,
                activation: Activation::Relu,
            }),
            Layer::Dense(Dense {
                units: classes,
                activation: Activation::Softmax,
            }),
        ],
    )
}

/// Every layer kind, two dropouts, two convolutions (so the first conv's input gradient is exercised
/// by the second), and shapes that are multiples of nothing in particular.
pub fn every_layer_model(input: [usize; 3], classes: usize) -> Sequential {
    Sequential::from_layers(
        "every_layer",
        input,
        vec![
            Layer::Conv2D(Conv2D {
                filters: 5,
                kernel_size: [3, 3],
                padding: Padding::Same,
                activation: Activation::Linear,
            }),
            Layer::Activation(ActivationLayer {
                activation: Activation::Relu,
            }),
            Layer::MaxPooling2D(MaxPooling2D {
                pool_size: [2, 2],
                strides: [2, 2],
                padding: Padding::Valid,
            }),
            Layer::Dropout(Dropout { rate: 0.25 }),
            Layer::Conv2D(Conv2D {
                filters: 6,
                kernel_size: [2, 2],
                padding: Padding::Valid,
                activation: Activation::Relu,
            }),
            Layer::Flatten(Flatten),
            Layer::Dense(Dense {
                units: 13,
                activation: Activation::Relu,
            }),
            Layer::Dropout(Dropout { rate: 0.5 }),
            Layer::Dense(Dense {
                units: classes,
                activation: Activation::Linear,
            }),
            Layer::Activation(ActivationLayer {
                activation: Activation::Softmax,
            }),
        ],
    )
}

/// Builds, without running them, every program of training and evaluation: the every-layer model and
/// the notebook's at batch 128, with every optimizer, the gather included. Each pipeline is compiled
/// (and validated against the device's limits) on the way.
pub fn build_programs(g: &Gpu) {
    let models = [
        (every_layer_model([9, 7, 3], 4), 5),
        (Sequential::notebook([32, 32, 3], 10), 128),
        // More classes than the fused last layer takes (64): the standalone loss kernel.
        (every_layer_model([9, 7, 3], 65), 5),
    ];
    for (model, batch) in &models {
        let bytes = model.input().len();
        let labels: Vec<u8> = (0..*batch).map(|i| (i % 4) as u8).collect();
        let images = upload_images(
            g,
            &vec![7u8; batch * bytes],
            &labels,
            bytes,
            g.max_binding_bytes(),
        )
        .unwrap();
        for opt in [
            Optimizer::rmsprop_default(),
            Optimizer::adam_default(),
            Optimizer::Sgd {
                lr: 0.01,
                momentum: 0.9,
                nesterov: true,
            },
            Optimizer::Sgd {
                lr: 0.01,
                momentum: 0.0,
                nesterov: false,
            },
        ] {
            let params = model.init_params(1).unwrap();
            let net = Network::new(g, model, opt, &params, *batch, 1).unwrap();
            net.gather(g, &images, *batch);
            net.step(g, *batch, Mode::Train);
            net.step(g, *batch, Mode::Eval);
        }
    }
}
