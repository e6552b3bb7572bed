//! Conv2D: a strided 2-D convolution with or without bias, channels-last, then its activation.
//! Kernel [kh, kw, in, out] (Keras' layout), bias [out] unless `use_bias` is false, when the kernel
//! is the layer's only tensor; each drawn by its Keras initialiser (by default glorot_uniform and
//! zeros).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::keras::{malformed, padding_name};
use super::kernel_bias::{KernelBias, kernel_bias_setters};
use super::{
    Activation, CpuStep, Fusion, GpuOp, GpuStep, KerasEntry, Layer, LayerKind, Lowering, ParamSpec,
    image_input,
};
use crate::gpu::{Dispatch, Tensor};
use crate::keras::ConfigError;
use crate::model::{PARAM_ALIGN, Shape};
use crate::shape::{Conv2dShape, Padding};
use crate::{kernels, reference};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conv2D {
    pub filters: usize,
    pub kernel_size: [usize; 2],
    pub padding: Padding,
    pub activation: Activation,
    /// (rows, columns); `model.json` files from before strides hold none: 1. Like the defaults
    /// below, not written when 1, so those files save again byte for byte.
    #[serde(default = "unit_strides", skip_serializing_if = "is_unit")]
    pub strides: [usize; 2],
    /// `use_bias` and the initialisers, beside the settings above in `model.json`.
    #[serde(flatten)]
    pub kernel_bias: KernelBias,
}

fn unit_strides() -> [usize; 2] {
    [1, 1]
}

fn is_unit(strides: &[usize; 2]) -> bool {
    *strides == unit_strides()
}

/// Keras' constructor: `Conv2D::new(32, [3, 3], Padding::Same)` is `Conv2D(32, (3, 3),
/// padding="same")`, Keras' defaults for the rest (unit strides, a bias, linear, glorot_uniform and
/// zeros), each changed by the setter of its name.
impl Conv2D {
    pub fn new(filters: usize, kernel_size: [usize; 2], padding: Padding) -> Conv2D {
        Conv2D {
            filters,
            kernel_size,
            padding,
            activation: Activation::Linear,
            strides: unit_strides(),
            kernel_bias: KernelBias::default(),
        }
    }

    pub fn activation(self, activation: Activation) -> Conv2D {
        Conv2D { activation, ..self }
    }

    pub fn strides(self, strides: [usize; 2]) -> Conv2D {
        Conv2D { strides, ..self }
    }
}

kernel_bias_setters!(Conv2D);

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
            kernel_bias: KernelBias::from_keras(e)?,
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
        self.kernel_bias.check()?;
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
        self.kernel_bias
            .params(vec![s.kh, s.kw, s.cin, s.cout], s.cout)
    }

    fn activation(&self) -> Activation {
        self.activation
    }

    fn keras_config(&self) -> Value {
        self.kernel_bias.keras_config(json!({
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
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

    fn loop_steps(&self, input: &Shape, max_batch: usize) -> usize {
        kernels::conv2d::loop_steps(self.shape(input, max_batch))
    }

    fn scratch_words(&self, input: &Shape, max_batch: usize) -> Vec<(&'static str, usize)> {
        let full = Conv2dShape {
            n: max_batch,
            ..self.shape(input, 0)
        };
        // The flat parameter layout puts the bias at the kernel's first 64-word boundary after its
        // end, so the weight gradient's kernel sums its partials with the bias's (`lower`).
        let bias_at = self
            .kernel_bias
            .use_bias
            .then(|| full.kernel_len().next_multiple_of(PARAM_ALIGN));
        vec![(
            "weight scratch",
            kernels::conv2d::conv2d_weight_scratch(full, bias_at),
        )]
    }

    fn lower(&self, l: &Lowering) -> Vec<Box<dyn GpuOp>> {
        let s = self.shape(l.input, 0);
        let full = Conv2dShape {
            n: l.max_batch,
            ..s
        };
        let (dw, db) = (l.grads[0].clone(), l.grads.get(1).cloned());
        // Where db lies after dw in one buffer (always in the flat gradient buffer), the weight
        // gradient's kernel sums both; otherwise db is a column sum of its own.
        let bias_at = db.as_ref().and_then(|db| dw.span_to(db)).map(|(_, at)| at);
        let conv = Conv {
            s,
            w: l.params[0].clone(),
            b: l.params.get(1).cloned(),
            weight_scratch: l.gpu.zeros(
                "conv weight scratch",
                kernels::conv2d::conv2d_weight_scratch(full, bias_at).max(1),
            ),
            bias_scratch: db.as_ref().filter(|_| bias_at.is_none()).map(|_| {
                l.gpu.zeros(
                    "bias scratch",
                    kernels::conv2d::conv2d_bias_scratch(full).max(1),
                )
            }),
            dw,
            db,
            relu_after: false,
            relu_before: false,
        };
        self.activation.lower_after(Box::new(conv))
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
        let grads = self.kernel_bias.grads(
            reference::conv2d::conv2d_backward_weight(x, &dz, shape),
            || reference::conv2d::conv2d_backward_bias(&dz, shape),
        );
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
    /// Partial sums of the weight gradient over chunks of rows, before its last pass, with the bias
    /// gradient's when db lies after dw in one buffer (`Tensor::span_to`).
    weight_scratch: Tensor,
    /// Only where db lies elsewhere: the partial sums of its own column sum.
    bias_scratch: Option<Tensor>,
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
            _ => unreachable!("{fusion:?} is not accepted"),
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
        // dw and, unless it has a column sum of its own, db in one kernel.
        let separate_db = self.db.as_ref().zip(self.bias_scratch.as_ref());
        let mut out = kernels::conv2d::conv2d_backward_weight(
            s.gpu,
            x,
            dy,
            &self.weight_scratch,
            &self.dw,
            self.db.as_ref().filter(|_| separate_db.is_none()),
            shape,
        );
        if let Some((db, scratch)) = separate_db {
            out.extend(kernels::conv2d::conv2d_backward_bias(
                s.gpu, dy, scratch, db, shape,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_json_from_before_strides_has_unit_strides_and_a_bias() {
        let old = json!({
            "class_name": "Conv2D",
            "filters": 2,
            "kernel_size": [3, 3],
            "padding": "same",
            "activation": "relu"
        });
        let Layer::Conv2D(conv) = serde_json::from_value(old).unwrap() else {
            panic!("not a Conv2D");
        };
        assert_eq!((conv.strides, conv.kernel_bias.use_bias), ([1, 1], true));
    }

    #[test]
    fn strides_and_bias_are_read_and_dilation_refused_by_name() {
        let read = |config: Value| {
            Conv2D::from_keras(&KerasEntry {
                class: "Conv2D",
                name: "conv2d".into(),
                config: config.as_object().unwrap(),
            })
        };
        let base = json!({"filters": 2, "kernel_size": 3});
        let with = |key: &str, v: Value| {
            let mut c = base.clone();
            c[key] = v;
            c
        };
        let Ok(Layer::Conv2D(conv)) = read(with("strides", json!(3))) else {
            panic!("strides 3 refused");
        };
        assert_eq!((conv.strides, conv.kernel_bias.use_bias), ([3, 3], true));
        let Ok(Layer::Conv2D(conv)) = read(with("use_bias", json!(false))) else {
            panic!("use_bias false refused");
        };
        assert!(!conv.kernel_bias.use_bias);
        for (key, v, words) in [
            ("dilation_rate", json!([2, 2]), "dilation_rate"),
            ("groups", json!(2), "groups"),
            ("strides", json!([0, 1]), "strides must be positive"),
            ("use_bias", json!("no"), "use_bias"),
        ] {
            let e = read(with(key, v)).unwrap_err();
            assert!(e.message.contains(words), "{key}: {}", e.message);
        }
    }

    #[test]
    fn strided_output_shapes_are_tensorflows() {
        let conv = |kernel_size, strides, padding| {
            Conv2D::new(4, kernel_size, padding)
                .strides(strides)
                .use_bias(false)
        };
        let input = Shape::Image { h: 9, w: 8, c: 3 };
        let out = |c: Conv2D| c.output_shape(&input).unwrap();
        assert_eq!(
            out(conv([3, 3], [2, 2], Padding::Same)),
            Shape::Image { h: 5, w: 4, c: 4 }
        );
        assert_eq!(
            out(conv([4, 3], [2, 3], Padding::Valid)),
            Shape::Image { h: 3, w: 2, c: 4 }
        );
        assert!(
            conv([10, 3], [2, 2], Padding::Valid)
                .output_shape(&input)
                .is_err()
        );
        assert_eq!(conv([3, 3], [1, 1], Padding::Same).params(&input).len(), 1);
    }

    #[test]
    fn weight_scratch_counts_the_bias_sums_where_the_flat_layout_puts_the_bias() {
        // A 3x3x3x5 kernel is 135 words: the flat layout puts the bias at word 192 after the
        // kernel's start (the next layer's 3x3x5x5, 225 words, at 256), where `lower` finds it
        // (`span_to`); `scratch_words` must count that span.
        let layer = |use_bias| {
            Conv2D::new(5, [3, 3], Padding::Same)
                .activation(Activation::Relu)
                .strides([1, 2])
                .use_bias(use_bias)
        };
        let input = Shape::Image { h: 7, w: 6, c: 3 };
        let model = crate::model::Sequential::from_layers(
            "m",
            [7, 6, 3],
            vec![Layer::Conv2D(layer(true)), Layer::Conv2D(layer(true))],
        );
        let tensors = model.param_tensors().unwrap();
        let bias_at = tensors[1].offset - tensors[0].offset;
        assert_eq!(bias_at, 192);
        assert_eq!(tensors[3].offset - tensors[2].offset, 256);
        let full = Conv2dShape {
            n: 300,
            ..layer(true).shape(&input, 0)
        };
        let words = |c: Conv2D| {
            let all = c.scratch_words(&input, 300);
            assert_eq!(all.len(), 1, "{all:?}");
            all[0].1
        };
        assert_eq!(
            words(layer(true)),
            kernels::conv2d::conv2d_weight_scratch(full, Some(bias_at))
        );
        assert_eq!(
            words(layer(false)),
            kernels::conv2d::conv2d_weight_scratch(full, None)
        );
        assert!(words(layer(true)) > words(layer(false)));
    }
}
