//! The model as Keras describes it: a `Sequential` list of named layers, their output shapes and
//! parameters, Keras' initialisation, and `model.summary()`.
//!
//! Parameters live in one flat f32 vector (and one flat GPU buffer), each tensor starting at a
//! 64-word boundary so that any adapter's storage offset alignment (at most 256 bytes) is met when a
//! kernel binds one tensor of it. Tensors keep Keras' own shapes and order: Conv2D kernel
//! [kh, kw, in, out], Dense kernel [in, out], then each bias.

pub mod folder;
pub mod io;
mod layer;
pub mod reference;
mod summary;

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

pub use layer::{Activation, Layer};

/// Words between the starts of parameter tensors: 256 bytes, the largest storage offset alignment
/// WebGPU allows an adapter to demand.
pub const PARAM_ALIGN: usize = 64;

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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamTensor {
    /// Keras' name, e.g. `conv2d/kernel`.
    pub name: String,
    pub shape: Vec<usize>,
    pub offset: usize,
    pub len: usize,
}

/// The output shape of a layer, without the batch dimension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shape {
    Image { h: usize, w: usize, c: usize },
    Flat(usize),
}

impl Shape {
    pub fn len(&self) -> usize {
        match *self {
            Shape::Image { h, w, c } => h * w * c,
            Shape::Flat(n) => n,
        }
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
        let layers = vec![
            Layer::Conv2D {
                filters: 32,
                kernel_size: [3, 3],
                padding: crate::shape::Padding::Same,
                activation: Activation::Linear,
            },
            Layer::Activation {
                activation: Activation::Relu,
            },
            Layer::MaxPooling2D {
                pool_size: [2, 2],
                strides: [2, 2],
                padding: crate::shape::Padding::Valid,
            },
            Layer::Dropout { rate: 0.25 },
            Layer::Flatten,
            Layer::Dense {
                units: 512,
                activation: Activation::Linear,
            },
            Layer::Activation {
                activation: Activation::Relu,
            },
            Layer::Dropout { rate: 0.5 },
            Layer::Dense {
                units: classes,
                activation: Activation::Linear,
            },
            Layer::Activation {
                activation: Activation::Softmax,
            },
        ];
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
        let mut shape = self.input();
        let mut out = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            shape = l.layer.output_shape(&shape).map_err(|message| ModelError {
                layer: l.name.clone(),
                message,
            })?;
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
        let ends_in_softmax = match self.layers.last().map(|l| &l.layer) {
            Some(Layer::Activation {
                activation: Activation::Softmax,
            }) => true,
            Some(Layer::Dense { activation, .. }) => *activation == Activation::Softmax,
            _ => false,
        };
        if !ends_in_softmax {
            return Err(ModelError {
                layer: self
                    .layers
                    .last()
                    .map_or("input".into(), |l| l.name.clone()),
                message: "the model must end in a softmax (categorical cross-entropy is computed \
                          from its logits)"
                    .into(),
            });
        }
        for (i, l) in self.layers.iter().enumerate() {
            let softmax_inside = matches!(
                l.layer,
                Layer::Activation {
                    activation: Activation::Softmax
                }
            ) || matches!(
                l.layer,
                Layer::Dense {
                    activation: Activation::Softmax,
                    ..
                }
            );
            if softmax_inside && i + 1 != self.layers.len() {
                return Err(ModelError {
                    layer: l.name.clone(),
                    message: "softmax is supported only as the last layer".into(),
                });
            }
        }
        Ok(())
    }

    /// Every parameter tensor with its place in the flat vector.
    pub fn param_tensors(&self) -> Result<Vec<ParamTensor>, ModelError> {
        let shapes = self.output_shapes()?;
        let mut input = self.input();
        let mut offset = 0;
        let mut out = Vec::new();
        for (l, shape) in self.layers.iter().zip(shapes) {
            for (suffix, tshape) in l.layer.param_shapes(&input) {
                let len = tshape.iter().product();
                out.push(ParamTensor {
                    name: format!("{}/{}", l.name, suffix),
                    shape: tshape,
                    offset,
                    len,
                });
                offset += len.next_multiple_of(PARAM_ALIGN);
            }
            input = shape;
        }
        Ok(out)
    }

    /// Words in the flat parameter vector, alignment padding included.
    pub fn param_words(&self) -> Result<usize, ModelError> {
        Ok(self
            .param_tensors()?
            .last()
            .map_or(0, |t| t.offset + t.len.next_multiple_of(PARAM_ALIGN)))
    }

    /// Trainable parameters, as Keras counts them.
    pub fn param_count(&self) -> Result<usize, ModelError> {
        Ok(self.param_tensors()?.iter().map(|t| t.len).sum())
    }

    /// Initial parameters as Keras draws them by default: glorot_uniform kernels
    /// (U(±sqrt(6 / (fan_in + fan_out))), fans counting the receptive field) and zero biases.
    /// The stream depends only on `seed`, so a seed fixes the initial weights.
    pub fn init_params(&self, seed: u64) -> Result<Vec<f32>, ModelError> {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(seed ^ 0x1417_0001);
        let mut params = vec![0.0f32; self.param_words()?];
        for t in self.param_tensors()? {
            if t.shape.len() < 2 {
                continue; // biases start at zero
            }
            let receptive: usize = t.shape[..t.shape.len() - 2].iter().product();
            let fan_in = receptive * t.shape[t.shape.len() - 2];
            let fan_out = receptive * t.shape[t.shape.len() - 1];
            let limit = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
            for p in &mut params[t.offset..t.offset + t.len] {
                *p = rng.random_range(-limit..limit);
            }
        }
        Ok(params)
    }

    /// `model.summary()`, as Keras prints it.
    pub fn summary(&self) -> Result<String, ModelError> {
        summary::render(self)
    }
}
