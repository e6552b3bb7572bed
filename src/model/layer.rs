//! The layers we support, with Keras' names and settings.

use serde::{Deserialize, Serialize};

use super::Shape;
use crate::shape::{Conv2dShape, Padding, Pool2dShape};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Linear,
    Relu,
    Softmax,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "class_name")]
pub enum Layer {
    /// Stride 1, with bias.
    Conv2D {
        filters: usize,
        kernel_size: [usize; 2],
        padding: Padding,
        activation: Activation,
    },
    Activation {
        activation: Activation,
    },
    MaxPooling2D {
        pool_size: [usize; 2],
        strides: [usize; 2],
        padding: Padding,
    },
    Dropout {
        rate: f32,
    },
    Flatten,
    /// With bias.
    Dense {
        units: usize,
        activation: Activation,
    },
}

impl Layer {
    /// Keras' class name, as the summary shows it.
    pub fn class_name(&self) -> &'static str {
        match self {
            Layer::Conv2D { .. } => "Conv2D",
            Layer::Activation { .. } => "Activation",
            Layer::MaxPooling2D { .. } => "MaxPooling2D",
            Layer::Dropout { .. } => "Dropout",
            Layer::Flatten => "Flatten",
            Layer::Dense { .. } => "Dense",
        }
    }

    /// The stem Keras names instances after.
    pub fn keras_base_name(&self) -> &'static str {
        match self {
            Layer::Conv2D { .. } => "conv2d",
            Layer::Activation { .. } => "activation",
            Layer::MaxPooling2D { .. } => "max_pooling2d",
            Layer::Dropout { .. } => "dropout",
            Layer::Flatten => "flatten",
            Layer::Dense { .. } => "dense",
        }
    }

    pub fn output_shape(&self, input: &Shape) -> Result<Shape, String> {
        let image = || match *input {
            Shape::Image { h, w, c } => Ok((h, w, c)),
            Shape::Flat(_) => Err(format!(
                "{} needs an image input (height, width, channels), got {input}",
                self.class_name()
            )),
        };
        match self {
            Layer::Conv2D {
                filters,
                kernel_size: [kh, kw],
                padding,
                ..
            } => {
                let (h, w, _) = image()?;
                if *filters == 0 || *kh == 0 || *kw == 0 {
                    return Err("filters and kernel_size must be positive".into());
                }
                match padding {
                    Padding::Same => Ok(Shape::Image { h, w, c: *filters }),
                    Padding::Valid if h >= *kh && w >= *kw => Ok(Shape::Image {
                        h: h - kh + 1,
                        w: w - kw + 1,
                        c: *filters,
                    }),
                    Padding::Valid => {
                        Err(format!("kernel {kh}x{kw} is larger than the input {h}x{w}"))
                    }
                }
            }
            Layer::MaxPooling2D {
                pool_size: [ph, pw],
                strides: [sh, sw],
                padding,
            } => {
                let (h, w, c) = image()?;
                if *ph == 0 || *pw == 0 || *sh == 0 || *sw == 0 {
                    return Err("pool_size and strides must be positive".into());
                }
                match padding {
                    Padding::Same => Ok(Shape::Image {
                        h: h.div_ceil(*sh),
                        w: w.div_ceil(*sw),
                        c,
                    }),
                    Padding::Valid if h >= *ph && w >= *pw => Ok(Shape::Image {
                        h: (h - ph) / sh + 1,
                        w: (w - pw) / sw + 1,
                        c,
                    }),
                    Padding::Valid => {
                        Err(format!("pool {ph}x{pw} is larger than the input {h}x{w}"))
                    }
                }
            }
            Layer::Dropout { rate } => {
                if !(0.0..1.0).contains(rate) {
                    return Err(format!("dropout rate must be in [0, 1), got {rate}"));
                }
                Ok(input.clone())
            }
            Layer::Activation { .. } => Ok(input.clone()),
            Layer::Flatten => Ok(Shape::Flat(input.len())),
            Layer::Dense { units, .. } => match input {
                Shape::Flat(_) if *units > 0 => Ok(Shape::Flat(*units)),
                Shape::Flat(_) => Err("units must be positive".into()),
                // Keras would apply Dense to the last axis of an image; our kernels take a flat input.
                Shape::Image { .. } => Err(format!(
                    "Dense needs a flat input; add a Flatten before it (got {input})"
                )),
            },
        }
    }

    /// Keras' parameter tensors for this layer, given its input: (name, shape).
    pub fn param_shapes(&self, input: &Shape) -> Vec<(&'static str, Vec<usize>)> {
        match (self, input) {
            (
                Layer::Conv2D {
                    filters,
                    kernel_size: [kh, kw],
                    ..
                },
                Shape::Image { c, .. },
            ) => vec![
                ("kernel", vec![*kh, *kw, *c, *filters]),
                ("bias", vec![*filters]),
            ],
            (Layer::Dense { units, .. }, Shape::Flat(n)) => {
                vec![("kernel", vec![*n, *units]), ("bias", vec![*units])]
            }
            _ => Vec::new(),
        }
    }

    /// The kernel shape of a Conv2D layer on `input` for a batch of `n`; `None` for other layers or a
    /// flat input.
    pub fn conv_shape(&self, input: &Shape, n: usize) -> Option<Conv2dShape> {
        match (self, input) {
            (
                Layer::Conv2D {
                    filters,
                    kernel_size: [kh, kw],
                    padding,
                    ..
                },
                Shape::Image { h, w, c },
            ) => Some(Conv2dShape {
                n,
                h: *h,
                w: *w,
                cin: *c,
                cout: *filters,
                kh: *kh,
                kw: *kw,
                padding: *padding,
            }),
            _ => None,
        }
    }

    /// The kernel shape of a MaxPooling2D layer on `input` for a batch of `n`.
    pub fn pool_shape(&self, input: &Shape, n: usize) -> Option<Pool2dShape> {
        match (self, input) {
            (
                Layer::MaxPooling2D {
                    pool_size: [ph, pw],
                    strides: [sh, sw],
                    padding,
                },
                Shape::Image { h, w, c },
            ) => Some(Pool2dShape {
                n,
                h: *h,
                w: *w,
                c: *c,
                pool_h: *ph,
                pool_w: *pw,
                stride_h: *sh,
                stride_w: *sw,
                padding: *padding,
            }),
            _ => None,
        }
    }
}
