//! The model as Keras describes it: a `Sequential` list of named layers, their output shapes and
//! parameters, Keras' initialisation, and `model.summary()`.
//!
//! Parameters live in one flat f32 vector (and one flat GPU buffer), each tensor starting at a
//! 64-word boundary so that any adapter's storage offset alignment (at most 256 bytes) is met when a
//! kernel binds one tensor of it. Tensors keep Keras' own shapes and order (Conv2D kernel
//! [kh, kw, in, out], Dense kernel [in, out], then each bias); tensors the optimizer must not touch
//! (BatchNormalization's moving statistics) follow all trainable ones. What each layer is lives in
//! [`crate::layers`].

pub mod folder;
pub mod io;
pub mod reference;
mod summary;

use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::layers::{Activation, Init, Layer};

/// Words between the starts of parameter tensors: 256 bytes, the largest storage offset alignment
/// WebGPU allows an adapter to demand.
pub const PARAM_ALIGN: usize = 64;

/// The most values one activation (per example) or all parameters together may hold: kernels index
/// their tensors with u32. Shapes and sizes are computed with checked arithmetic up to it, so a
/// model file asking for more is an error, not an overflow.
pub const MAX_WORDS: usize = u32::MAX as usize;

/// Height, width, channels of one example.
pub type InputShape = [usize; 3];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NamedLayer {
    pub name: String,
    #[serde(flatten)]
    pub layer: Layer,
}

/// A Keras `Sequential` model over images of `input_shape`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sequential {
    pub name: String,
    pub input_shape: InputShape,
    pub layers: Vec<NamedLayer>,
}

/// Where one parameter tensor lives in the flat parameter vector.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamTensor {
    /// Keras' name, e.g. `conv2d/kernel`.
    pub name: String,
    pub shape: Vec<usize>,
    pub offset: usize,
    pub len: usize,
    /// Index of the layer it belongs to.
    pub layer: usize,
    pub init: Init,
    /// As its layer says ([`crate::layers::ParamSpec`]); trainable tensors have the lower offsets.
    pub trainable: bool,
}

/// Words from the vector's start to the end of the last of `tensors`, alignment padding included.
fn words<'a>(tensors: impl Iterator<Item = &'a ParamTensor>) -> usize {
    tensors
        .map(|t| t.offset + t.len.next_multiple_of(PARAM_ALIGN))
        .max()
        .unwrap_or(0)
}

/// The output shape of a layer, without the batch dimension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shape {
    Image { h: usize, w: usize, c: usize },
    Flat(usize),
}

impl Shape {
    /// Values per example; the model checks every shape's with [`Shape::checked_len`] first.
    pub fn len(&self) -> usize {
        match *self {
            Shape::Image { h, w, c } => h * w * c,
            Shape::Flat(n) => n,
        }
    }

    /// Values per example, if at most [`MAX_WORDS`].
    pub fn checked_len(&self) -> Option<usize> {
        match *self {
            Shape::Image { h, w, c } => h.checked_mul(w)?.checked_mul(c),
            Shape::Flat(n) => Some(n),
        }
        .filter(|&n| n <= MAX_WORDS)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shape::Image { h, w, c } => write!(f, "(None, {h}, {w}, {c})"),
            Shape::Flat(n) => write!(f, "(None, {n})"),
        }
    }
}

/// The architectures `train` can build with fresh weights (`--preset`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// The notebook's model: one convolution, the dense head ([`Sequential::notebook`]).
    #[default]
    Notebook,
    /// The book's deeper network: four convolutions in two blocks ([`Sequential::deeper`]).
    Deeper,
}

impl Preset {
    /// The preset for images of `input_shape` and `classes` classes.
    pub fn build(self, input_shape: InputShape, classes: usize) -> Sequential {
        match self {
            Preset::Notebook => Sequential::notebook(input_shape, classes),
            Preset::Deeper => Sequential::deeper(input_shape, classes),
        }
    }
}

/// A model that does not fit together: a layer that needs an image after a Flatten, a pooling window
/// larger than its input, and the like.
#[derive(Debug, thiserror::Error)]
#[error("layer '{layer}': {message}")]
pub struct ModelError {
    pub layer: String,
    pub message: String,
}

impl Sequential {
    /// The notebook's model, layer by layer as the notebook adds them (so the summary lists ten layers,
    /// named as Keras names them).
    pub fn notebook(input_shape: InputShape, classes: usize) -> Sequential {
        use recipe::*;
        let mut layers = vec![
            conv(32, crate::shape::Padding::Same),
            relu(),
            pool(),
            dropout(0.25),
        ];
        layers.extend(dense_head(classes));
        Sequential::from_layers("sequential", input_shape, layers)
    }

    /// The book's deeper network (Gulli & Pal, "Deep Learning with Keras", the CIFAR-10 chapter): two
    /// blocks of two 3x3 convolutions, max pooling and dropout, then the notebook's dense head.
    pub fn deeper(input_shape: InputShape, classes: usize) -> Sequential {
        use recipe::*;
        let mut layers = vec![
            conv(32, crate::shape::Padding::Same),
            relu(),
            conv(32, crate::shape::Padding::Same),
            relu(),
            pool(),
            dropout(0.25),
            conv(64, crate::shape::Padding::Same),
            relu(),
            conv(64, crate::shape::Padding::Valid),
            relu(),
            pool(),
            dropout(0.25),
        ];
        layers.extend(dense_head(classes));
        Sequential::from_layers("sequential", input_shape, layers)
    }

    /// Names the layers as Keras does: the snake-case class name, then `_1`, `_2` … for repeats.
    pub fn from_layers(name: &str, input_shape: InputShape, layers: Vec<Layer>) -> Sequential {
        let mut counts = std::collections::HashMap::new();
        let layers = layers
            .into_iter()
            .map(|layer| {
                let base = layer.keras_base_name();
                let n = counts.entry(base).or_insert(0usize);
                let name = if *n == 0 {
                    base.to_string()
                } else {
                    format!("{base}_{n}")
                };
                *n += 1;
                NamedLayer { name, layer }
            })
            .collect();
        Sequential {
            name: name.to_string(),
            input_shape,
            layers,
        }
    }

    pub fn input(&self) -> Shape {
        let [h, w, c] = self.input_shape;
        Shape::Image { h, w, c }
    }

    /// Output shape of every layer, in order; an error names the first layer that does not fit.
    pub fn output_shapes(&self) -> Result<Vec<Shape>, ModelError> {
        let too_large = |layer: &str, shape: &Shape| ModelError {
            layer: layer.into(),
            message: format!("the shape {shape} holds more than {MAX_WORDS} values"),
        };
        let mut shape = self.input();
        shape
            .checked_len()
            .ok_or_else(|| too_large("input", &shape))?;
        let mut out = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            shape = l
                .layer
                .kind()
                .output_shape(&shape)
                .map_err(|message| ModelError {
                    layer: l.name.clone(),
                    message,
                })?;
            shape
                .checked_len()
                .ok_or_else(|| too_large(&l.name, &shape))?;
            out.push(shape.clone());
        }
        Ok(out)
    }

    /// The number of classes the model predicts (the last layer's width).
    pub fn classes(&self) -> Result<usize, ModelError> {
        match self.output_shapes()?.last() {
            Some(Shape::Flat(n)) => Ok(*n),
            _ => Err(ModelError {
                layer: self
                    .layers
                    .last()
                    .map_or("input".into(), |l| l.name.clone()),
                message: "the model must end in a flat vector of class scores".into(),
            }),
        }
    }

    /// Checks that the model can be trained here: shapes fit, and it ends in a softmax over classes
    /// (the loss is categorical cross-entropy on its logits).
    pub fn validate(&self) -> Result<(), ModelError> {
        self.classes()?;
        let softmax = |l: &NamedLayer| l.layer.kind().activation() == Activation::Softmax;
        let last = self.layers.last().expect("a model with classes has layers");
        if !softmax(last) {
            return Err(ModelError {
                layer: last.name.clone(),
                message: "the model must end in a softmax (categorical cross-entropy is computed \
                          from its logits)"
                    .into(),
            });
        }
        if let Some(l) = self.layers[..self.layers.len() - 1]
            .iter()
            .find(|l| softmax(l))
        {
            return Err(ModelError {
                layer: l.name.clone(),
                message: "softmax is supported only as the last layer".into(),
            });
        }
        Ok(())
    }

    /// Every parameter tensor with its place in the flat vector, listed in model order (each layer's
    /// as its `params()` gives them, Keras' order). Trainable tensors are placed first, in that
    /// order, and the others (BatchNormalization's moving statistics) after them, so that the
    /// optimizer updates one prefix of the vector.
    pub fn param_tensors(&self) -> Result<Vec<ParamTensor>, ModelError> {
        let shapes = self.output_shapes()?;
        let mut out = Vec::new();
        let mut input = self.input();
        for (layer, (l, shape)) in self.layers.iter().zip(shapes).enumerate() {
            for p in l.layer.kind().params(&input) {
                let name = format!("{}/{}", l.name, p.name);
                let len = p
                    .shape
                    .iter()
                    .try_fold(1usize, |n, &d| n.checked_mul(d))
                    .filter(|&n| n <= MAX_WORDS)
                    .ok_or_else(|| ModelError {
                        layer: l.name.clone(),
                        message: format!(
                            "the tensor {name} {:?} holds more than {MAX_WORDS} values",
                            p.shape
                        ),
                    })?;
                out.push(ParamTensor {
                    name,
                    shape: p.shape,
                    offset: 0,
                    len,
                    layer,
                    init: p.init,
                    trainable: p.trainable,
                });
            }
            input = shape;
        }
        let mut end = 0usize;
        for trainable in [true, false] {
            for t in out.iter_mut().filter(|t| t.trainable == trainable) {
                t.offset = end;
                end = t
                    .len
                    .checked_next_multiple_of(PARAM_ALIGN)
                    .and_then(|padded| end.checked_add(padded))
                    .filter(|&end| end <= MAX_WORDS)
                    .ok_or_else(|| ModelError {
                        layer: self.layers[t.layer].name.clone(),
                        message: format!(
                            "all parameters together hold more than {MAX_WORDS} values"
                        ),
                    })?;
            }
        }
        Ok(out)
    }

    /// Words in the flat parameter vector, alignment padding included.
    pub fn param_words(&self) -> Result<usize, ModelError> {
        Ok(words(self.param_tensors()?.iter()))
    }

    /// Words of the vector's trainable prefix, which the optimizer updates.
    pub fn trainable_words(&self) -> Result<usize, ModelError> {
        Ok(words(self.param_tensors()?.iter().filter(|t| t.trainable)))
    }

    /// Parameters, trainable and not, as Keras counts them.
    pub fn param_count(&self) -> Result<usize, ModelError> {
        Ok(self.param_tensors()?.iter().map(|t| t.len).sum())
    }

    /// Initial parameters, each tensor drawn by its layer's initialiser (Keras' defaults:
    /// glorot_uniform kernels and zero biases) in model order. The stream depends only on
    /// `seed`, so a seed fixes the initial weights.
    pub fn init_params(&self, seed: u64) -> Result<Vec<f32>, ModelError> {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(seed ^ 0x1417_0001);
        let mut params = vec![0.0f32; self.param_words()?];
        for t in self.param_tensors()? {
            t.init
                .fill(&t.shape, &mut rng, &mut params[t.offset..t.offset + t.len]);
        }
        Ok(params)
    }

    /// `model.summary()`, as Keras prints it.
    pub fn summary(&self) -> Result<String, ModelError> {
        summary::render(self)
    }
}

/// The layers the presets are written in, with the settings the book uses.
mod recipe {
    use crate::layers::{
        Activation, ActivationLayer, Conv2D, Dense, Dropout, Flatten, Layer, MaxPooling2D,
    };
    use crate::shape::Padding;

    /// 3x3 convolution, linear (a ReLU layer follows, as the book writes it).
    pub fn conv(filters: usize, padding: Padding) -> Layer {
        Conv2D::new(filters, [3, 3], padding).into()
    }

    pub fn relu() -> Layer {
        ActivationLayer::new(Activation::Relu).into()
    }

    pub fn softmax() -> Layer {
        ActivationLayer::new(Activation::Softmax).into()
    }

    /// 2x2 max pooling, stride 2.
    pub fn pool() -> Layer {
        MaxPooling2D::new([2, 2]).into()
    }

    pub fn dropout(rate: f32) -> Layer {
        Dropout::new(rate).into()
    }

    pub fn flatten() -> Layer {
        Flatten.into()
    }

    /// Dense, linear (a ReLU or softmax layer follows).
    pub fn dense(units: usize) -> Layer {
        Dense::new(units).into()
    }

    /// The notebook's classifier, which the deeper network keeps: Flatten, Dense 512, ReLU,
    /// Dropout 0.5, Dense `classes`, softmax.
    pub fn dense_head(classes: usize) -> [Layer; 6] {
        [
            flatten(),
            dense(512),
            relu(),
            dropout(0.5),
            dense(classes),
            softmax(),
        ]
    }
}
