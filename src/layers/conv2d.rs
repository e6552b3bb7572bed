//! Conv2D: a strided 2-D convolution with or without bias, channels-last, then its activation.
//! Kernel [kh, kw, in, out] (Keras' layout, glorot_uniform), bias [out] (zeros) unless `use_bias` is
//! false, when the kernel is the layer's only tensor.

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
    /// (rows, columns); `model.json` files from before strides hold none: 1.
    #[serde(default = "unit_strides")]
    pub strides: [usize; 2],
    /// `model.json` files from before `use_bias` hold none: true.
    #[serde(default = "super::keras::yes")]
    pub use_bias: bool,
}

fn unit_strides() -> [usize; 2] {
    [1, 1]
}

impl Conv2D {
    /// The kernels' shape on a valid image `input` for a batch of `n`.
    fn shape(&self, input: &Shape, n: usize) -> Conv2dShape {
        let Shape::Image { h, w, c } = *input else {
            unreachable!("Conv2D on a flat input passed output_shape");
        };
        let [kh, kw] = self.kernel_size;
        let [stride_h, stride_w] = self.strides;
        Conv2dShape {
            n,
            h,
            w,
            cin: c,
            cout: self.filters,
            kh,
            kw,
            stride_h,
            stride_w,
            padding: self.padding,
        }
    }

    pub(super) fn from_keras(e: &KerasEntry) -> Result<Layer, ConfigError> {
        e.float32()?;
        e.channels_last()?;
        e.no_regularizers()?;
        e.only("dilation_rate", &[json!([1, 1]), json!(1)])?;
        e.only("groups", &[json!(1)])?;
        let filters = e.usize("filters")?;
        let kernel_size = e
            .pair("kernel_size")?
            .ok_or_else(|| malformed(format!("{}: no 'kernel_size'", e.what())))?;
        let strides = e.pair("strides")?.unwrap_or([1, 1]);
        if strides.contains(&0) {
            return Err(malformed(format!("{}: strides must be positive", e.what())));
        }
        Ok(Layer::Conv2D(Conv2D {
            filters,
            kernel_size,
            padding: e.padding()?,
            activation: e.activation()?,
            strides,
            use_bias: e.use_bias()?,
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
        if self.filters == 0 || kh == 0 || kw == 0 || self.strides.contains(&0) {
            return Err("filters, kernel_size and strides must be positive".into());
        }
        if self.padding == Padding::Valid && (h < kh || w < kw) {
            return Err(format!("kernel {kh}x{kw} is larger than the input {h}x{w}"));
        }
        let s = self.shape(input, 1);
        Ok(Shape::Image {
            h: s.out_h(),
            w: s.out_w(),
            c: self.filters,
        })
    }

    fn params(&self, input: &Shape) -> Vec<ParamSpec> {
        let s = self.shape(input, 0);
        let mut params = vec![ParamSpec::new(
            "kernel",
            vec![s.kh, s.kw, s.cin, s.cout],
            Init::GlorotUniform,
        )];
        if self.use_bias {
            params.push(ParamSpec::new("bias", vec![s.cout], Init::Constant(0.0)));
        }
        params
    }

    fn activation(&self) -> Activation {
        self.activation
    }

    fn keras_config(&self) -> Value {
        let mut config = with_kernel_and_bias(json!({
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": padding_name(self.padding),
            "data_format": "channels_last",
            "dilation_rate": [1, 1],
            "groups": 1,
            "activation": self.activation.keras_name(),
            "activity_regularizer": null
        }));
        // Keras writes the bias initializer and friends whether or not there is a bias.
        config["use_bias"] = json!(self.use_bias);
        config
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
            b: l.params.get(1).cloned(),
            dw: l.grads[0].clone(),
            db: l.grads.get(1).cloned(),
            weight_scratch: l.gpu.zeros(
                "conv weight scratch",
                kernels::conv2d::conv2d_weight_scratch(full).max(1),
            ),
            bias_scratch: l.gpu.zeros(
                "bias scratch",
                match self.use_bias {
                    true => kernels::conv2d::conv2d_bias_scratch(full).max(1),
                    false => 1,
                },
            ),
            relu_after: false,
            relu_before: false,
        };
        let mut ops: Vec<Box<dyn GpuOp>> = vec![Box::new(conv)];
        ops.extend(self.activation.lower());
        ops
    }

    fn cpu_forward(&self, s: &CpuStep, input: &Shape, x: &[f64], p: &[&[f64]]) -> Vec<f64> {
        let z = reference::conv2d::conv2d_forward(
            x,
            p[0],
            p.get(1).copied(),
            self.shape(input, s.batch),
        );
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
        let z = reference::conv2d::conv2d_forward(x, p[0], p.get(1).copied(), shape);
        let dz = self.activation.cpu_backward(&z, dy.to_vec());
        let dx = reference::conv2d::conv2d_backward_input(&dz, p[0], shape);
        let mut grads = vec![reference::conv2d::conv2d_backward_weight(x, &dz, shape)];
        if self.use_bias {
            grads.push(reference::conv2d::conv2d_backward_bias(&dz, shape));
        }
        (dx, grads)
    }
}

/// The convolution itself, bias fused (when it has one), and the ReLUs around it when the network
/// fuses them; `s.n` is set per step.
struct Conv {
    s: Conv2dShape,
    w: Tensor,
    b: Option<Tensor>,
    dw: Tensor,
    db: Option<Tensor>,
    /// Partial sums of the weight and bias gradients over chunks of rows, before their last pass.
    weight_scratch: Tensor,
    bias_scratch: Tensor,
    /// `Fusion::ReluAfter`: the forward ends in a ReLU.
    relu_after: bool,
    /// `Fusion::ReluBefore`: dx is masked by x > 0.
    relu_before: bool,
}

impl GpuOp for Conv {
    fn accepts(&self, _: Fusion) -> bool {
        true
    }

    fn fuse(&mut self, fusion: Fusion) {
        match fusion {
            Fusion::ReluAfter => self.relu_after = true,
            Fusion::ReluBefore => self.relu_before = true,
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
            self.b.as_ref(),
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
        if let Some(db) = &self.db {
            out.extend(kernels::conv2d::conv2d_backward_bias(
                s.gpu,
                dy,
                &self.bias_scratch,
                db,
                shape,
            ));
        }
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
