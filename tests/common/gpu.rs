//! Shared by the GPU tests: one device per test binary, small models, and every program built.
// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::sync::OnceLock;

use cifar_wgpu::gpu::{Gpu, GpuOptions};
use cifar_wgpu::kernels::gather::upload_images;
use cifar_wgpu::layers::{
    Activation, ActivationLayer, AveragePooling2D, BatchNormalization, Conv2D, Dense, Dropout,
    Flatten, GlobalAveragePooling2D, GlobalMaxPooling2D, LeakyReLU, MaxPooling2D,
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
            Conv2D::new(filters, [3, 3], Padding::Same)
                .activation(Activation::Relu)
                .into(),
            MaxPooling2D::new([2, 2]).into(),
            Dropout::new(0.25).into(),
            Flatten.into(),
            Dense::new(units).activation(Activation::Relu).into(),
            Dense::new(classes).activation(Activation::Softmax).into(),
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
            Conv2D::new(5, [3, 3], Padding::Same).into(),
            ActivationLayer::new(Activation::Relu).into(),
            MaxPooling2D::new([2, 2]).into(),
            Dropout::new(0.25).into(),
            Conv2D::new(6, [2, 2], Padding::Valid)
                .activation(Activation::Relu)
                .into(),
            Flatten.into(),
            Dense::new(13).activation(Activation::Relu).into(),
            Dropout::new(0.5).into(),
            Dense::new(classes).into(),
            ActivationLayer::new(Activation::Softmax).into(),
        ],
    )
}

/// The layers of issue 15 beyond the notebook's, as `assets/keras/make_golden.py::more_layers`
/// builds them (9x9x3 in, 3 classes): strided convolutions with asymmetric 'same' padding, a
/// convolution and a Dense without bias, every elementwise activation as an argument and as a
/// layer, and a LeakyReLU layer.
pub fn more_layers_model() -> Sequential {
    let activation = |activation| ActivationLayer::new(activation).into();
    Sequential::from_layers(
        "more_layers",
        [9, 9, 3],
        vec![
            Conv2D::new(4, [4, 3], Padding::Same)
                .strides([2, 2])
                .activation(Activation::Elu)
                .into(),
            Conv2D::new(5, [2, 3], Padding::Valid)
                .strides([1, 2])
                .activation(Activation::LeakyRelu)
                .use_bias(false)
                .into(),
            activation(Activation::Sigmoid),
            Conv2D::new(3, [3, 3], Padding::Same)
                .strides([2, 2])
                .activation(Activation::Tanh)
                .into(),
            Flatten.into(),
            Dense::new(6).activation(Activation::Tanh).into(),
            LeakyReLU {
                negative_slope: 0.1,
            }
            .into(),
            Dense::new(5).use_bias(false).into(),
            activation(Activation::Elu),
            activation(Activation::LeakyRelu),
            Dense::new(3).activation(Activation::Softmax).into(),
        ],
    )
}

/// BatchNormalization after a convolution (Keras' defaults) and after a dense layer (no gamma, no
/// beta, other momentum and epsilon), with a dropout between them and the classifier.
pub fn batchnorm_model(input: [usize; 3], classes: usize) -> Sequential {
    Sequential::from_layers(
        "batchnorm",
        input,
        vec![
            Conv2D::new(5, [3, 3], Padding::Same).into(),
            BatchNormalization::default().into(),
            ActivationLayer::new(Activation::Relu).into(),
            MaxPooling2D::new([2, 2]).into(),
            Flatten.into(),
            Dense::new(7).into(),
            BatchNormalization {
                momentum: 0.9,
                epsilon: 1e-2,
                center: false,
                scale: false,
                ..BatchNormalization::default()
            }
            .into(),
            Dropout::new(0.25).into(),
            Dense::new(classes).activation(Activation::Softmax).into(),
        ],
    )
}

/// The pooling layers in two small models. The first: Conv2D(relu) → AveragePooling2D 3x3, stride
/// 2, 'same' (clipped border windows) → Conv2D → GlobalAveragePooling2D → Dense(softmax). The
/// second: Conv2D → AveragePooling2D 2x3, strides 1x2, 'valid' (overlapping rows, an uncovered
/// column) → Conv2D → ReLU (fused into the global maximum's backward) → GlobalMaxPooling2D
/// (keepdims) → Flatten → Dense(softmax).
pub fn pooling_models(input: [usize; 3], classes: usize) -> [Sequential; 2] {
    let conv = |filters, size, padding| Conv2D::new(filters, [size, size], padding);
    let head = || Dense::new(classes).activation(Activation::Softmax).into();
    let average = Sequential::from_layers(
        "pooling_average",
        input,
        vec![
            conv(4, 3, Padding::Same)
                .activation(Activation::Relu)
                .into(),
            AveragePooling2D::new([3, 3])
                .strides([2, 2])
                .padding(Padding::Same)
                .into(),
            conv(5, 2, Padding::Valid).into(),
            GlobalAveragePooling2D { keepdims: false }.into(),
            head(),
        ],
    );
    let max = Sequential::from_layers(
        "pooling_max",
        input,
        vec![
            conv(4, 3, Padding::Same).into(),
            AveragePooling2D::new([2, 3]).strides([1, 2]).into(),
            conv(6, 2, Padding::Same).into(),
            ActivationLayer::new(Activation::Relu).into(),
            GlobalMaxPooling2D { keepdims: true }.into(),
            Flatten.into(),
            head(),
        ],
    );
    [average, max]
}

/// A fixed batch for `model`: `batch` inputs in [0, 1] (a stride through the byte values) and
/// labels cycling through `classes` in steps of `label_step`.
pub fn fixed_batch(
    model: &Sequential,
    batch: usize,
    classes: usize,
    label_step: u32,
) -> (Vec<f32>, Vec<u32>) {
    let x = (0..batch * model.input().len())
        .map(|i| ((i * 7919) % 256) as f32 / 255.0)
        .collect();
    let labels = (0..batch as u32)
        .map(|i| (i * label_step) % classes as u32)
        .collect();
    (x, labels)
}

/// Writes a batch of `labels.len()` into `net`'s input and labels.
pub fn write_batch(g: &Gpu, net: &Network, x: &[f32], labels: &[u32]) {
    let batch = labels.len();
    g.write(&net.input(batch), x);
    g.write(&net.labels.slice(0, batch), labels);
}

/// Builds, without running them, every program of training and evaluation: the every-layer model,
/// the more-layers model (batch 3, its 3 classes), the pooling models, the batch-normalised one and
/// the notebook's at batch 128, with every optimizer, the gather included. Each pipeline is compiled
/// (and validated against the device's limits) on the way.
pub fn build_programs(g: &Gpu) {
    let [average, max] = pooling_models([9, 7, 3], 4);
    let models = [
        (every_layer_model([9, 7, 3], 4), 5),
        (Sequential::notebook([32, 32, 3], 10), 128),
        (more_layers_model(), 3),
        (average, 5),
        (max, 5),
        (batchnorm_model([9, 7, 3], 4), 5),
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
            let mut net = Network::new(g, model, opt, &params, *batch, 1).unwrap();
            net.gather(g, &images, *batch);
            // Training batches through the augmentation's gather.
            net.set_augment(g, Some(&cifar_wgpu::data::augment::Augment::default()))
                .unwrap();
            net.gather_training(g, &images, *batch);
            net.step(g, *batch, Mode::Train);
            net.step(g, *batch, Mode::Eval);
        }
    }
}
