//! What each layer is, one module per layer: its settings and Keras config (read and written), its
//! output shape and parameter tensors with their initialisers, its lowering to GPU ops (each a forward
//! and a backward dispatch list) and its CPU twin (a forward and a backward on f64), side by side.
//!
//! The model, the GPU network, the reference step, the Keras config and the summary see a layer only
//! through [`LayerKind`]. This file is the registry: [`Layer`] (the value models are built from and
//! `model.json` stores), [`Layer::kind`] and the Keras readers are the only places that list the kinds.

mod activation;
mod average_pooling2d;
mod batch_normalization;
mod conv2d;
mod dense;
mod dropout;
mod flatten;
mod global_average_pooling2d;
mod global_max_pooling2d;
mod init;
pub(crate) mod keras;
mod kernel_bias;
mod max_pooling2d;
mod pooling;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use activation::{Activation, ActivationLayer, LeakyReLU};
pub use average_pooling2d::AveragePooling2D;
pub use batch_normalization::BatchNormalization;
pub use conv2d::Conv2D;
pub use dense::Dense;
pub use dropout::Dropout;
pub use flatten::Flatten;
pub use global_average_pooling2d::GlobalAveragePooling2D;
pub use global_max_pooling2d::GlobalMaxPooling2D;
pub use init::{Distribution, FanMode, Init, compute_fans};
pub(crate) use keras::KerasEntry;
pub use kernel_bias::KernelBias;
pub use max_pooling2d::MaxPooling2D;

use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::keras::ConfigError;
use crate::model::Shape;

/// A layer's settings, tagged with Keras' class name in `model.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "class_name")]
pub enum Layer {
    Conv2D(Conv2D),
    Activation(ActivationLayer),
    LeakyReLU(LeakyReLU),
    MaxPooling2D(MaxPooling2D),
    Dropout(Dropout),
    Flatten(Flatten),
    Dense(Dense),
    AveragePooling2D(AveragePooling2D),
    GlobalAveragePooling2D(GlobalAveragePooling2D),
    GlobalMaxPooling2D(GlobalMaxPooling2D),
    BatchNormalization(BatchNormalization),
}

impl Layer {
    /// What the layer is and does.
    pub fn kind(&self) -> &dyn LayerKind {
        match self {
            Layer::Conv2D(l) => l,
            Layer::Activation(l) => l,
            Layer::LeakyReLU(l) => l,
            Layer::MaxPooling2D(l) => l,
            Layer::Dropout(l) => l,
            Layer::Flatten(l) => l,
            Layer::Dense(l) => l,
            Layer::AveragePooling2D(l) => l,
            Layer::GlobalAveragePooling2D(l) => l,
            Layer::GlobalMaxPooling2D(l) => l,
            Layer::BatchNormalization(l) => l,
        }
    }

    /// The stem Keras names instances after.
    pub fn keras_base_name(&self) -> &'static str {
        self.kind().base_name()
    }
}

/// `From` each kind's settings, so models are written as Keras writes them:
/// `Conv2D::new(32, [3, 3], Padding::Same).into()`.
macro_rules! layer_from {
    ($($kind:ident => $variant:ident),* $(,)?) => {
        $(impl From<$kind> for Layer {
            fn from(layer: $kind) -> Layer {
                Layer::$variant(layer)
            }
        })*
    };
}

layer_from!(
    Conv2D => Conv2D,
    ActivationLayer => Activation,
    LeakyReLU => LeakyReLU,
    MaxPooling2D => MaxPooling2D,
    Dropout => Dropout,
    Flatten => Flatten,
    Dense => Dense,
    AveragePooling2D => AveragePooling2D,
    GlobalAveragePooling2D => GlobalAveragePooling2D,
    GlobalMaxPooling2D => GlobalMaxPooling2D,
    BatchNormalization => BatchNormalization,
);

type KerasReader = fn(&KerasEntry) -> Result<Layer, ConfigError>;

/// The Keras class names each kind is read from (Keras 2's aliases too), with its reader.
const KERAS_READERS: [(&[&str], KerasReader); 11] = [
    (&["Conv2D", "Convolution2D"], Conv2D::from_keras),
    (&["Activation"], ActivationLayer::from_keras),
    (&["LeakyReLU"], LeakyReLU::from_keras),
    (&["MaxPooling2D", "MaxPool2D"], MaxPooling2D::from_keras),
    (&["Dropout"], Dropout::from_keras),
    (&["Flatten"], Flatten::from_keras),
    (&["Dense"], Dense::from_keras),
    (
        &["AveragePooling2D", "AvgPool2D"],
        AveragePooling2D::from_keras,
    ),
    (
        &["GlobalAveragePooling2D", "GlobalAvgPool2D"],
        GlobalAveragePooling2D::from_keras,
    ),
    (
        &["GlobalMaxPooling2D", "GlobalMaxPool2D"],
        GlobalMaxPooling2D::from_keras,
    ),
    (&["BatchNormalization"], BatchNormalization::from_keras),
];

/// Reads a layer of Keras class `entry.class`; `None` for a class we do not know.
pub(crate) fn from_keras(entry: &KerasEntry) -> Option<Result<Layer, ConfigError>> {
    KERAS_READERS
        .iter()
        .find(|(classes, _)| classes.contains(&entry.class))
        .map(|(_, read)| read(entry))
}

/// What a layer is: everything the model, the GPU network, the CPU reference and Keras' files ask of it.
pub trait LayerKind {
    /// Keras' class name, as the summary and `model.to_json()` show it.
    fn class_name(&self) -> &'static str;

    /// The stem Keras names instances after (`conv2d`, `conv2d_1`, …).
    fn base_name(&self) -> &'static str;

    /// The output shape for `input`, or why the layer cannot take it. Sizes that overflow are errors
    /// here or in `Sequential::output_shapes`, which checks every shape's length.
    fn output_shape(&self, input: &Shape) -> Result<Shape, String>;

    /// The parameter tensors for a valid `input`, in Keras' order.
    fn params(&self, _input: &Shape) -> Vec<ParamSpec> {
        Vec::new()
    }

    /// The activation the layer ends in: the model must end in a softmax, and only there.
    fn activation(&self) -> Activation {
        Activation::Linear
    }

    /// The layer's own settings in Keras 3's config (name, dtype and trainable are added around them).
    fn keras_config(&self) -> Value;

    /// Whether Keras 3 writes a `build_config` (the input shape) for this layer.
    fn keras_builds(&self) -> bool {
        false
    }

    /// The GPU ops that run the layer, in forward order, each writing a tensor of the layer's output
    /// shape; none for a layer that is the identity on our channels-last tensors (Flatten).
    fn lower(&self, l: &Lowering) -> Vec<Box<dyn GpuOp>>;

    /// The scratch buffers `lower` allocates besides its output's size, named, in words, for a valid
    /// `input` and batches of `max_batch`: `check_memory` checks them against the adapter's limits
    /// before anything is allocated.
    fn scratch_words(&self, _input: &Shape, _max_batch: usize) -> Vec<(&'static str, usize)> {
        Vec::new()
    }

    /// The most loop iterations one invocation of the layer's kernels takes, over all its loops, for
    /// a valid `input` and batches of `max_batch`, where that grows with the shape: `check_loops`
    /// refuses the model where it passes the adapter's `Gpu::loop_limit` (llvmpipe). 0 for layers
    /// whose kernels loop a fixed number of times, or plan to stay within it (Dense).
    fn loop_steps(&self, _input: &Shape, _max_batch: usize) -> usize {
        0
    }

    /// The CPU twin's forward: y for x (`[batch, input]`), in f64.
    fn cpu_forward(&self, s: &CpuStep, input: &Shape, x: &[f64], params: &[&[f64]]) -> Vec<f64>;

    /// The CPU twin's backward: dx for dy (`[batch, output]`) and the gradient of each parameter
    /// tensor (as `params()` lists them). It recomputes from x what it needs of the forward: a
    /// reference favours plain over fast.
    fn cpu_backward(
        &self,
        s: &CpuStep,
        input: &Shape,
        x: &[f64],
        dy: &[f64],
        params: &[&[f64]],
    ) -> (Vec<f64>, Vec<Vec<f64>>);

    /// The CPU twin's state update in a training step: the new values of the layer's non-trainable
    /// tensors (as `params()` lists them) for the input x, e.g. BatchNormalization's moving
    /// statistics; none for a layer without state.
    fn cpu_update_state(
        &self,
        _s: &CpuStep,
        _input: &Shape,
        _x: &[f64],
        _params: &[&[f64]],
    ) -> Vec<Vec<f64>> {
        Vec::new()
    }
}

/// One parameter tensor of a layer.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// Keras' name within the layer, e.g. `kernel`.
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub init: Init,
    /// False for state the optimizer must not touch (e.g. BatchNormalization's moving statistics,
    /// which its forward op updates): it still lives in the flat parameter vector, is saved with the
    /// weights and counted by the summary as non-trainable, but is placed after every trainable
    /// tensor, outside the prefix the optimizer updates.
    pub trainable: bool,
}

impl ParamSpec {
    /// A trainable tensor (Keras' `add_weight` default).
    pub fn new(name: &'static str, shape: Vec<usize>, init: Init) -> ParamSpec {
        ParamSpec {
            name,
            shape,
            init,
            trainable: true,
        }
    }
}

/// The (height, width, channels) of an image input, or the error a layer that needs one gives.
fn image_input(class: &str, input: &Shape) -> Result<(usize, usize, usize), String> {
    match *input {
        Shape::Image { h, w, c } => Ok((h, w, c)),
        Shape::Flat(_) => Err(format!(
            "{class} needs an image input (height, width, channels), got {input}"
        )),
    }
}

/// What lowering a layer to GPU ops needs.
pub struct Lowering<'a> {
    pub gpu: &'a Gpu,
    /// The layer's position in the model (dropout salts its mask with it).
    pub index: usize,
    pub input: &'a Shape,
    pub output: &'a Shape,
    /// Per-batch buffers (argmax, scratch) are sized for this many examples.
    pub max_batch: usize,
    /// The layer's parameter tensors and their gradients, as `params()` lists them.
    pub params: &'a [Tensor],
    pub grads: &'a [Tensor],
}

/// What every dispatch of one step shares.
pub struct GpuStep<'a> {
    pub gpu: &'a Gpu,
    pub batch: usize,
    /// The step number (and optimizer scalars) the host writes before each step.
    pub step_state: &'a Tensor,
    pub seed: u64,
}

/// A fusion the network's peephole pass (`Network::new`) may ask of an op. The ReLU and dropout ones
/// are exact and remove the ReLU or Dropout op around which they are asked: two dispatches fewer per
/// training step, the same bits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fusion {
    /// End the forward in the ReLU that follows the op (max(y, 0), an exact select). The op's backward
    /// then receives dy already masked, by the op after the ReLU.
    ReluAfter,
    /// Zero dx where x <= 0: the backward of the ReLU that produced x (x > 0 exactly where the ReLU's
    /// input was > 0), applied in the op's own dx pass.
    ReluBefore,
    /// Take the ReLU before the op whole, for an op that commutes with it (dropout): its forward
    /// applies the ReLU's select to x first, its backward zeroes dx where x <= 0, and when evaluating
    /// it is that ReLU (`evaluate`) rather than the identity. x is then the ReLU's input.
    ReluInput,
    /// The op is the model's last and takes the loss in: `forward_loss` and `backward_loss` replace
    /// `forward` and `backward`, and the network dispatches no loss kernel of its own.
    Loss,
    /// Take the Dropout op after this one in: the training forward ends in its mask and scale on y's
    /// elements, the backward begins with them on dy; evaluating is the plain forward.
    DropoutAfter(DropoutMask),
    /// Take the Dropout op before this one in (with the ReLU it took in, if any): x is the dropout's
    /// input, masked and scaled (after the ReLU) where the op loads it, and dx is masked and scaled
    /// (and ReLU-masked) as the dropout's backward would; evaluating applies only the ReLU.
    DropoutBefore(DropoutMask),
}

/// A Dropout op's mask and the ReLU parts it took, as the op that takes it in must reproduce them
/// (`GpuOp::dropout`, `Fusion::DropoutAfter`, `Fusion::DropoutBefore`). The step and seed come with
/// each step (`GpuStep`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutMask {
    pub rate: f32,
    /// The Dropout layer's position in the model.
    pub salt: u32,
    /// `Fusion::ReluInput` taken: the ReLU is applied to x first (and is all that is left when
    /// evaluating).
    pub relu_input: bool,
    /// dx is zeroed where x <= 0 (`Fusion::ReluBefore` or `Fusion::ReluInput` taken).
    pub relu_mask: bool,
}

impl DropoutMask {
    /// The kernels' form of the mask, with the run's seed in `s` (the kernels read the step from
    /// `s.step_state`).
    pub fn mask(&self, s: &GpuStep) -> crate::kernels::dropout::Mask {
        crate::kernels::dropout::Mask {
            seed: s.seed,
            salt: self.salt,
            rate: self.rate,
        }
    }

    /// Whether it is only the dropout, with no ReLU part.
    pub fn is_plain(&self) -> bool {
        !self.relu_input && !self.relu_mask
    }
}

/// What the loss needs, for an op that took `Fusion::Loss`.
pub struct LossTensors<'a> {
    pub labels: &'a Tensor,
    /// The gradient of the batch's mean loss with respect to the logits (the op's y).
    pub dlogits: &'a Tensor,
    /// The metrics the loss adds into (`kernels::softmax_cross_entropy::Metrics`).
    pub metrics: &'a Tensor,
    /// The op's dx, which it may write with the forward: `None` when evaluating, or when x is the
    /// model's input.
    pub dx: Option<&'a Tensor>,
    pub train: bool,
}

/// One op of a lowered layer on the GPU: its forward and backward dispatches. Its tensors (x, y and
/// the gradients) are the network's; its own buffers (parameter views, argmax, scratch) it holds.
pub trait GpuOp {
    /// Whether the op is a ReLU, which the network fuses into its neighbours when both accept.
    fn is_relu(&self) -> bool {
        false
    }

    /// The op's mask when it is a Dropout, which the network fuses into a neighbour that accepts it.
    fn dropout(&self) -> Option<DropoutMask> {
        None
    }

    /// Whether the op can take its part of `fusion`.
    fn accepts(&self, _fusion: Fusion) -> bool {
        false
    }

    /// Takes its part of `fusion`; called only when `accepts` said yes.
    fn fuse(&mut self, fusion: Fusion) {
        unreachable!("{fusion:?} asked of an op that does not accept it")
    }

    /// Whether the op is the identity when evaluating (dropout): evaluation then skips it and reads
    /// its input instead of its output.
    fn evaluates_as_identity(&self) -> bool {
        false
    }

    /// y = op(x), for `s.batch` examples, in a training step.
    fn forward(&self, s: &GpuStep, x: &Tensor, y: &Tensor) -> Vec<Dispatch>;

    /// y = op(x) when evaluating (validation, evaluate, predict), for an op that computes
    /// something else then (BatchNormalization normalises with its moving statistics and updates
    /// nothing; a Dropout that took in the ReLU before it is that ReLU); the training forward
    /// otherwise. Not asked of an op that evaluates as the identity.
    fn evaluate(&self, s: &GpuStep, x: &Tensor, y: &Tensor) -> Vec<Dispatch> {
        self.forward(s, x, y)
    }

    /// The op's parameter gradients from dy, and dx unless x is the model's input (`dx` is `None`).
    fn backward(&self, s: &GpuStep, x: &Tensor, dy: &Tensor, dx: Option<&Tensor>) -> Vec<Dispatch>;

    /// After `Fusion::Loss`: y = op(x), the logits, then the loss: `loss.dlogits`, the metrics (added
    /// by now when evaluating, by `backward_loss` when training) and, when given, `loss.dx`.
    fn forward_loss(
        &self,
        _s: &GpuStep,
        _x: &Tensor,
        _y: &Tensor,
        _loss: &LossTensors,
    ) -> Vec<Dispatch> {
        unreachable!("forward_loss asked of an op that did not take Fusion::Loss")
    }

    /// After `Fusion::Loss`, when training: the op's parameter gradients from the dlogits its forward
    /// wrote, and the batch's metrics (dx came with the forward).
    fn backward_loss(&self, _s: &GpuStep, _x: &Tensor, _loss: &LossTensors) -> Vec<Dispatch> {
        unreachable!("backward_loss asked of an op that did not take Fusion::Loss")
    }
}

/// What the CPU twin of one layer's step needs besides its tensors.
#[derive(Clone, Copy, Debug)]
pub struct CpuStep {
    pub batch: usize,
    /// Dropout on (and gradients wanted).
    pub train: bool,
    /// Dropout's mask: the run's seed, the step and the layer's position, as on the GPU.
    pub seed: u64,
    pub step: u32,
    pub index: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::Padding;

    /// One layer of each kind. The match fails to compile when a kind is added without a sample here.
    fn one_of_each() -> Vec<Layer> {
        let all = vec![
            Conv2D::new(3, [3, 2], Padding::Valid)
                .activation(Activation::Relu)
                .strides([2, 1])
                .use_bias(false)
                .kernel_initializer(Init::HeNormal)
                .bias_initializer(Init::Constant(0.1))
                .into(),
            ActivationLayer::new(Activation::Softmax).into(),
            Layer::LeakyReLU(LeakyReLU {
                negative_slope: 0.1,
            }),
            MaxPooling2D::new([3, 3])
                .strides([2, 1])
                .padding(Padding::Same)
                .into(),
            Dropout::new(0.1).into(),
            Flatten.into(),
            Dense::new(7)
                .activation(Activation::Tanh)
                .use_bias(false)
                .kernel_initializer(Init::RandomNormal {
                    mean: 0.0,
                    stddev: 0.02,
                })
                .bias_initializer(Init::Ones)
                .into(),
            AveragePooling2D::new([3, 2])
                .strides([1, 2])
                .padding(Padding::Same)
                .into(),
            Layer::GlobalAveragePooling2D(GlobalAveragePooling2D { keepdims: false }),
            Layer::GlobalMaxPooling2D(GlobalMaxPooling2D { keepdims: true }),
            Layer::BatchNormalization(BatchNormalization {
                momentum: 0.9,
                epsilon: 1e-5,
                center: false,
                scale: true,
                gamma_initializer: 0.5,
                ..BatchNormalization::default()
            }),
        ];
        for l in &all {
            match l {
                Layer::Conv2D(_)
                | Layer::Activation(_)
                | Layer::LeakyReLU(_)
                | Layer::MaxPooling2D(_)
                | Layer::Dropout(_)
                | Layer::Flatten(_)
                | Layer::Dense(_)
                | Layer::AveragePooling2D(_)
                | Layer::GlobalAveragePooling2D(_)
                | Layer::GlobalMaxPooling2D(_)
                | Layer::BatchNormalization(_) => {}
            }
        }
        all
    }

    /// The registry agrees with itself: `model.json`'s tag is the Keras class name, the Keras reader
    /// of that class reads back what `keras_config` writes, and no two kinds share a base name.
    #[test]
    fn every_kind_reads_back_what_it_writes() {
        let mut base_names = Vec::new();
        for layer in one_of_each() {
            let kind = layer.kind();
            let tagged = serde_json::to_value(&layer).unwrap();
            assert_eq!(tagged["class_name"], kind.class_name());
            let config = kind.keras_config();
            let entry = KerasEntry {
                class: kind.class_name(),
                name: kind.base_name().into(),
                config: config.as_object().unwrap(),
            };
            let read = from_keras(&entry)
                .expect("a reader for every kind")
                .unwrap();
            assert_eq!(read, layer, "{}", kind.class_name());
            base_names.push(kind.base_name());
        }
        let count = base_names.len();
        base_names.sort();
        base_names.dedup();
        assert_eq!(base_names.len(), count, "{base_names:?}");
    }
}
