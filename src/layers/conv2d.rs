//! Conv2D: a stride-1 2-D convolution with bias, channels-last, then its activation.
//! Kernel [kh, kw, in, out] (Keras' layout, glorot_uniform), bias [out] (zeros).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::keras::{malformed, padding_name, with_kernel_and_bias};
use super::{
    Activation, CpuStep, Fusion, GpuOp, GpuStep, Init, KerasEntry, Layer, LayerKind, Lowering,
    ParamSpec, image_input,
};
use crate::gpu::{Dispatch, Tensor};
use crate::keras::ConfigError;
use crate::model::Shape;
use crate::shape::{Conv2dShape, Padding};
use crate::{kernels, reference};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conv2D {
    pub filters: usize,
    pub kernel_size: [usize; 2],
    pub padding: Padding,
    pub activation: Activation,
}

impl Conv2D {
    /// The kernels' shape on a valid image `input` for a batch of `n`.
    fn shape(&self, input: &Shape, n: usize) -> Conv2dShape {
        let Shape::Image { h, w, c } = *input else {
            unreachable!("Conv2D on a flat input passed output_shape");
        };
        let [kh, kw] = self.kernel_size;
        Conv2dShape {
            n,
            h,
            w,
            cin: c,
            cout: self.filters,
            kh,
            kw,
            padding: self.padding,
        }
    }

    pub(super) fn from_keras(e: &KerasEntry) -> Result<Layer, ConfigError> {
        e.float32()?;
        e.channels_last()?;
        e.no_regularizers()?;
        e.only("strides", &[json!([1, 1]), json!(1)])?;
        e.only("dilation_rate", &[json!([1, 1]), json!(1)])?;
        e.only("groups", &[json!(1)])?;
        e.only("use_bias", &[json!(true)])?;
        let filters = e.usize("filters")?;
        let kernel_size = e
            .pair("kernel_size")?
            .ok_or_else(|| malformed(format!("{}: no 'kernel_size'", e.what())))?;
        Ok(Layer::Conv2D(Conv2D {
            filters,
            kernel_size,
            padding: e.padding()?,
            activation: e.activation()?,
        }))
    }
}

impl LayerKind for Conv2D {
    fn class_name(&self) -> &'static str {
        "Conv2D"
    }

    fn base_name(&self) -> &'static str {
        "conv2d"
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, String> {
        let (h, w, _) = image_input(self.class_name(), input)?;
        let [kh, kw] = self.kernel_size;
        if self.filters == 0 || kh == 0 || kw == 0 {
            return Err("filters and kernel_size must be positive".into());
        }
        let c = self.filters;
        match self.padding {
            Padding::Same => Ok(Shape::Image { h, w, c }),
            Padding::Valid if h >= kh && w >= kw => Ok(Shape::Image {
                h: h - kh + 1,
                w: w - kw + 1,
                c,
            }),
            Padding::Valid => Err(format!("kernel {kh}x{kw} is larger than the input {h}x{w}")),
        }
    }

    fn params(&self, input: &Shape) -> Vec<ParamSpec> {
        let s = self.shape(input, 0);
        vec![
            ParamSpec::new(
                "kernel",
                vec![s.kh, s.kw, s.cin, s.cout],
                Init::GlorotUniform,
            ),
            ParamSpec::new("bias", vec![s.cout], Init::Constant(0.0)),
        ]
    }

    fn activation(&self) -> Activation {
        self.activation
    }

    fn keras_config(&self) -> Value {
        with_kernel_and_bias(json!({
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": [1, 1],
            "padding": padding_name(self.padding),
            "data_format": "channels_last",
            "dilation_rate": [1, 1],
            "groups": 1,
            "activation": self.activation.keras_name(),
            "activity_regularizer": null
        }))
    }

    fn keras_builds(&self) -> bool {
        true
    }

    fn lower(&self, l: &Lowering) -> Vec<Box<dyn GpuOp>> {
        let s = self.shape(l.input, 0);
        let full = Conv2dShape {
            n: l.max_batch,
            ..s
        };
        let conv = Conv {
            s,
            w: l.params[0].clone(),
            b: l.params[1].clone(),
            dw: l.grads[0].clone(),
            db: l.grads[1].clone(),
            weight_scratch: l.gpu.zeros(
                "conv weight scratch",
                kernels::conv2d::conv2d_weight_scratch(full).max(1),
            ),
            bias_scratch: l.gpu.zeros(
                "bias scratch",
                kernels::conv2d::conv2d_bias_scratch(full).max(1),
            ),
            relu_after: false,
            relu_before: false,
        };
        let mut ops: Vec<Box<dyn GpuOp>> = vec![Box::new(conv)];
        ops.extend(self.activation.lower());
        ops
    }

    fn cpu_forward(&self, s: &CpuStep, input: &Shape, x: &[f64], p: &[&[f64]]) -> Vec<f64> {
        let z = reference::conv2d::conv2d_forward(x, p[0], p[1], self.shape(input, s.batch));
        self.activation.cpu_forward(z)
    }

    fn cpu_backward(
        &self,
        s: &CpuStep,
        input: &Shape,
        x: &[f64],
        dy: &[f64],
        p: &[&[f64]],
    ) -> (Vec<f64>, Vec<Vec<f64>>) {
        let shape = self.shape(input, s.batch);
        let z = reference::conv2d::conv2d_forward(x, p[0], p[1], shape);
        let dz = self.activation.cpu_backward(&z, dy.to_vec());
        let dx = reference::conv2d::conv2d_backward_input(&dz, p[0], shape);
        let dw = reference::conv2d::conv2d_backward_weight(x, &dz, shape);
        let db = reference::conv2d::conv2d_backward_bias(&dz, shape);
        (dx, vec![dw, db])
    }
}

/// The convolution itself, bias fused, and the ReLUs around it when the network fuses them;
/// `s.n` is set per step.
struct Conv {
    s: Conv2dShape,
    w: Tensor,
    b: Tensor,
    dw: Tensor,
    db: Tensor,
    /// Partial sums of the weight and bias gradients over chunks of rows, before their last pass.
    weight_scratch: Tensor,
    bias_scratch: Tensor,
    /// `Fusion::ReluAfter`: the forward ends in a ReLU.
    relu_after: bool,
    /// `Fusion::ReluBefore`: dx is masked by x > 0.
    relu_before: bool,
}

impl GpuOp for Conv {
    fn accepts(&self, fusion: Fusion) -> bool {
        matches!(fusion, Fusion::ReluAfter | Fusion::ReluBefore)
    }

    fn fuse(&mut self, fusion: Fusion) {
        match fusion {
            Fusion::ReluAfter => self.relu_after = true,
            Fusion::ReluBefore => self.relu_before = true,
            Fusion::ReluInput | Fusion::Loss => unreachable!("{fusion:?} is not accepted"),
        }
    }

    fn forward(&self, s: &GpuStep, x: &Tensor, y: &Tensor) -> Vec<Dispatch> {
        let shape = Conv2dShape {
            n: s.batch,
            ..self.s
        };
        vec![kernels::conv2d::conv2d_forward(
            s.gpu,
            x,
            &self.w,
            &self.b,
            self.relu_after,
            y,
            shape,
        )]
    }

    fn backward(&self, s: &GpuStep, x: &Tensor, dy: &Tensor, dx: Option<&Tensor>) -> Vec<Dispatch> {
        let shape = Conv2dShape {
            n: s.batch,
            ..self.s
        };
        let mut out = kernels::conv2d::conv2d_backward_weight(
            s.gpu,
            x,
            dy,
            &self.weight_scratch,
            &self.dw,
            shape,
        );
        out.extend(kernels::conv2d::conv2d_backward_bias(
            s.gpu,
            dy,
            &self.bias_scratch,
            &self.db,
            shape,
        ));
        if let Some(dx) = dx {
            out.push(kernels::conv2d::conv2d_backward_input(
                s.gpu,
                dy,
                &self.w,
                self.relu_before.then_some(x),
                dx,
                shape,
            ));
        }
        out
    }
}
