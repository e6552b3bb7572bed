//! AveragePooling2D: the mean over each window, channels-last. With 'same' padding a border window
//! divides by its in-bounds cells, as Keras does; the backward pass spreads each output's gradient
//! evenly over the cells its window averaged.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::keras::padding_name;
use super::{CpuStep, GpuOp, GpuStep, KerasEntry, Layer, LayerKind, Lowering, image_input};
use crate::gpu::{Dispatch, Tensor};
use crate::keras::ConfigError;
use crate::model::Shape;
use crate::shape::{Padding, Pool2dShape};
use crate::{kernels, reference};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AveragePooling2D {
    pub pool_size: [usize; 2],
    pub strides: [usize; 2],
    pub padding: Padding,
}

impl AveragePooling2D {
    /// The kernels' shape on a valid image `input` for a batch of `n`.
    fn shape(&self, input: &Shape, n: usize) -> Pool2dShape {
        let Shape::Image { h, w, c } = *input else {
            unreachable!("AveragePooling2D on a flat input passed output_shape");
        };
        let ([pool_h, pool_w], [stride_h, stride_w]) = (self.pool_size, self.strides);
        Pool2dShape {
            n,
            h,
            w,
            c,
            pool_h,
            pool_w,
            stride_h,
            stride_w,
            padding: self.padding,
        }
    }

    pub(super) fn from_keras(e: &KerasEntry) -> Result<Layer, ConfigError> {
        e.float32()?;
        e.channels_last()?;
        let pool_size = e.pair("pool_size")?.unwrap_or([2, 2]);
        Ok(Layer::AveragePooling2D(AveragePooling2D {
            pool_size,
            strides: e.pair("strides")?.unwrap_or(pool_size),
            padding: e.padding()?,
        }))
    }
}

impl LayerKind for AveragePooling2D {
    fn class_name(&self) -> &'static str {
        "AveragePooling2D"
    }

    fn base_name(&self) -> &'static str {
        "average_pooling2d"
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, String> {
        let (h, w, c) = image_input(self.class_name(), input)?;
        let ([ph, pw], [sh, sw]) = (self.pool_size, self.strides);
        if ph == 0 || pw == 0 || sh == 0 || sw == 0 {
            return Err("pool_size and strides must be positive".into());
        }
        match self.padding {
            Padding::Same => Ok(Shape::Image {
                h: h.div_ceil(sh),
                w: w.div_ceil(sw),
                c,
            }),
            Padding::Valid if h >= ph && w >= pw => Ok(Shape::Image {
                h: (h - ph) / sh + 1,
                w: (w - pw) / sw + 1,
                c,
            }),
            Padding::Valid => Err(format!("pool {ph}x{pw} is larger than the input {h}x{w}")),
        }
    }

    fn keras_config(&self) -> Value {
        json!({
            "pool_size": self.pool_size,
            "padding": padding_name(self.padding),
            "strides": self.strides,
            "data_format": "channels_last"
        })
    }

    fn lower(&self, l: &Lowering) -> Vec<Box<dyn GpuOp>> {
        vec![Box::new(AvgPool {
            s: self.shape(l.input, 0),
        })]
    }

    fn cpu_forward(&self, s: &CpuStep, input: &Shape, x: &[f64], _: &[&[f64]]) -> Vec<f64> {
        reference::avgpool2d::avgpool2d_forward(x, self.shape(input, s.batch))
    }

    fn cpu_backward(
        &self,
        s: &CpuStep,
        input: &Shape,
        _: &[f64],
        dy: &[f64],
        _: &[&[f64]],
    ) -> (Vec<f64>, Vec<Vec<f64>>) {
        let dx = reference::avgpool2d::avgpool2d_backward(dy, self.shape(input, s.batch));
        (dx, Vec::new())
    }
}

/// Average pooling on the GPU (also GlobalAveragePooling2D's op); `s.n` is set per step.
pub(super) struct AvgPool {
    pub(super) s: Pool2dShape,
}

impl GpuOp for AvgPool {
    fn forward(&self, s: &GpuStep, x: &Tensor, y: &Tensor) -> Vec<Dispatch> {
        vec![kernels::avgpool2d::avgpool2d_forward(
            s.gpu,
            x,
            y,
            Pool2dShape {
                n: s.batch,
                ..self.s
            },
        )]
    }

    fn backward(&self, s: &GpuStep, _: &Tensor, dy: &Tensor, dx: Option<&Tensor>) -> Vec<Dispatch> {
        dx.map(|dx| {
            kernels::avgpool2d::avgpool2d_backward(
                s.gpu,
                dy,
                dx,
                Pool2dShape {
                    n: s.batch,
                    ..self.s
                },
            )
        })
        .into_iter()
        .collect()
    }
}
