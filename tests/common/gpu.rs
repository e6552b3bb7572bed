//! Shared by the GPU tests: one device per test binary, small models, and every program built.
// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::sync::OnceLock;

use cifar_wgpu::gpu::{Gpu, GpuOptions};
use cifar_wgpu::kernels::gather::upload_images;
use cifar_wgpu::layers::{
    Activation, ActivationLayer, AveragePooling2D, BatchNormalization, Conv2D, Dense, Dropout,
    Flatten, GlobalAveragePooling2D, GlobalMaxPooling2D, Init, Layer, LeakyReLU, MaxPooling2D,
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
                strides: [1, 1],
                use_bias: true,
                kernel_initializer: Init::GlorotUniform,
                bias_initializer: Init::Zeros,
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
                use_bias: true,
                kernel_initializer: Init::GlorotUniform,
                bias_initializer: Init::Zeros,
            }),
            Layer::Dense(Dense {
                units: classes,
                activation: Activation::Softmax,
                use_bias: true,
                kernel_initializer: Init::GlorotUniform,
                bias_initializer: Init::Zeros,
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
                strides: [1, 1],
                use_bias: true,
                kernel_initializer: Init::GlorotUniform,
                bias_initializer: Init::Zeros,
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
                strides: [1, 1],
                use_bias: true,
                kernel_initializer: Init::GlorotUniform,
                bias_initializer: Init::Zeros,
            }),
            Layer::Flatten(Flatten),
            Layer::Dense(Dense {
                units: 13,
                activation: Activation::Relu,
                use_bias: true,
                kernel_initializer: Init::GlorotUniform,
                bias_initializer: Init::Zeros,
            }),
            Layer::Dropout(Dropout { rate: 0.5 }),
            Layer::Dense(Dense {
                units: classes,
                activation: Activation::Linear,
                use_bias: true,
                kernel_initializer: Init::GlorotUniform,
                bias_initializer: Init::Zeros,
            }),
            Layer::Activation(ActivationLayer {
                activation: Activation::Softmax,
            }),
        ],
    )
}

/// The layers of issue 15 beyond the notebook's, as `assets/keras/make_golden.py::more_layers`
/// builds them (9x9x3 in, 3 classes): strided convolutions with asymmetric 'same' padding, a
/// convolution and a Dense without bias, every elementwise activation as an argument and as a
/// layer, and a LeakyReLU layer.
pub fn more_layers_model() -> Sequential {
    let conv = |filters, kernel_size, strides, padding, activation, use_bias| {
        Layer::Conv2D(Conv2D {
            filters,
            kernel_size,
            padding,
            activation,
            strides,
            use_bias,
            kernel_initializer: Init::GlorotUniform,
            bias_initializer: Init::Zeros,
        })
    };
    let dense = |units, activation, use_bias| {
        Layer::Dense(Dense {
            units,
            activation,
            use_bias,
            kernel_initializer: Init::GlorotUniform,
            bias_initializer: Init::Zeros,
        })
    };
    let activation = |activation| Layer::Activation(ActivationLayer { activation });
    Sequential::from_layers(
        "more_layers",
        [9, 9, 3],
        vec![
            conv(4, [4, 3], [2, 2], Padding::Same, Activation::Elu, true),
            conv(
                5,
                [2, 3],
                [1, 2],
                Padding::Valid,
                Activation::LeakyRelu,
                false,
            ),
            activation(Activation::Sigmoid),
            conv(3, [3, 3], [2, 2], Padding::Same, Activation::Tanh, true),
            Layer::Flatten(Flatten),
            dense(6, Activation::Tanh, true),
            Layer::LeakyReLU(LeakyReLU {
                negative_slope: 0.1,
            }),
            dense(5, Activation::Linear, false),
            activation(Activation::Elu),
            activation(Activation::LeakyRelu),
            dense(3, Activation::Softmax, true),
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
            Layer::Conv2D(Conv2D {
                filters: 5,
                kernel_size: [3, 3],
                padding: Padding::Same,
                activation: Activation::Linear,
                strides: [1, 1],
                use_bias: true,
                kernel_initializer: Init::GlorotUniform,
                bias_initializer: Init::Zeros,
            }),
            Layer::BatchNormalization(BatchNormalization::default()),
            Layer::Activation(ActivationLayer {
                activation: Activation::Relu,
            }),
            Layer::MaxPooling2D(MaxPooling2D {
                pool_size: [2, 2],
                strides: [2, 2],
                padding: Padding::Valid,
            }),
            Layer::Flatten(Flatten),
            Layer::Dense(Dense {
                units: 7,
                activation: Activation::Linear,
                use_bias: true,
                kernel_initializer: Init::GlorotUniform,
                bias_initializer: Init::Zeros,
            }),
            Layer::BatchNormalization(BatchNormalization {
                momentum: 0.9,
                epsilon: 1e-2,
                center: false,
                scale: false,
                ..BatchNormalization::default()
            }),
            Layer::Dropout(Dropout { rate: 0.25 }),
            Layer::Dense(Dense {
                units: classes,
                activation: Activation::Softmax,
                use_bias: true,
                kernel_initializer: Init::GlorotUniform,
                bias_initializer: Init::Zeros,
            }),
        ],
    )
}

/// The pooling layers in two small models. The first: Conv2D(relu) → AveragePooling2D 3x3, stride
/// 2, 'same' (clipped border windows) → Conv2D → GlobalAveragePooling2D → Dense(softmax). The
/// second: Conv2D → AveragePooling2D 2x3, strides 1x2, 'valid' (overlapping rows, an uncovered
/// column) → Conv2D → ReLU (fused into the global maximum's backward) → GlobalMaxPooling2D
/// (keepdims) → Flatten → Dense(softmax).
pub fn pooling_models(input: [usize; 3], classes: usize) -> [Sequential; 2] {
    let conv = |filters, size, padding, activation| {
        Layer::Conv2D(Conv2D {
            filters,
            kernel_size: [size, size],
            padding,
            activation,
            strides: [1, 1],
            use_bias: true,
            kernel_initializer: Init::GlorotUniform,
            bias_initializer: Init::Zeros,
        })
    };
    let head = || {
        Layer::Dense(Dense {
            units: classes,
            activation: Activation::Softmax,
            use_bias: true,
            kernel_initializer: Init::GlorotUniform,
            bias_initializer: Init::Zeros,
        })
    };
    let average = Sequential::from_layers(
        "pooling_average",
        input,
        vec![
            conv(4, 3, Padding::Same, Activation::Relu),
            Layer::AveragePooling2D(AveragePooling2D {
                pool_size: [3, 3],
                strides: [2, 2],
                padding: Padding::Same,
            }),
            conv(5, 2, Padding::Valid, Activation::Linear),
            Layer::GlobalAveragePooling2D(GlobalAveragePooling2D { keepdims: false }),
            head(),
        ],
    );
    let max = Sequential::from_layers(
        "pooling_max",
        input,
        vec![
            conv(4, 3, Padding::Same, Activation::Linear),
            Layer::AveragePooling2D(AveragePooling2D {
                pool_size: [2, 3],
                strides: [1, 2],
                padding: Padding::Valid,
            }),
            conv(6, 2, Padding::Same, Activation::Linear),
            Layer::Activation(ActivationLayer {
                activation: Activation::Relu,
            }),
            Layer::GlobalMaxPooling2D(GlobalMaxPooling2D { keepdims: true }),
            Layer::Flatten(Flatten),
            head(),
        ],
    );
    [average, max]
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
