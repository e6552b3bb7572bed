//! BatchNormalization over the last axis (channels, or the features of a flat input), as Keras 3
//! defines it. Training normalises with the batch's mean and biased variance per channel (over
//! batch × height × width) and moves the moving statistics, moving = moving * momentum + batch_stat *
//! (1 - momentum), once per step; evaluation and prediction normalise with the moving statistics.
//! Parameters in Keras' order: gamma (if `scale`), beta (if `center`), both trainable, then
//! moving_mean and moving_variance, which the forward op updates and the optimizer never touches.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::keras::malformed;
use super::{CpuStep, GpuOp, GpuStep, Init, KerasEntry, Layer, LayerKind, Lowering, ParamSpec};
use crate::gpu::{Dispatch, Tensor};
use crate::keras::ConfigError;
use crate::kernels::batch_norm::{self as kernel, BatchNormDims};
use crate::model::{PARAM_ALIGN, Shape};
use crate::reference::batch_norm as twin;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchNormalization {
    /// -1, or the last axis counted with the batch axis (Keras 2 writes `[3]` for images once
    /// built); `output_shape` refuses any other.
    #[serde(default = "last_axis")]
    pub axis: i64,
    pub momentum: f64,
    pub epsilon: f64,
    /// Whether beta is added (and learnt).
    pub center: bool,
    /// Whether gamma multiplies (and is learnt).
    pub scale: bool,
    /// The constant each tensor starts at (Keras' Ones, Zeros or Constant initialisers).
    pub gamma_initializer: f32,
    pub beta_initializer: f32,
    pub moving_mean_initializer: f32,
    pub moving_variance_initializer: f32,
}

impl Default for BatchNormalization {
    /// Keras' defaults.
    fn default() -> Self {
        BatchNormalization {
            axis: -1,
            momentum: 0.99,
            epsilon: 1e-3,
            center: true,
            scale: true,
            gamma_initializer: 1.0,
            beta_initializer: 0.0,
            moving_mean_initializer: 0.0,
            moving_variance_initializer: 1.0,
        }
    }
}

fn last_axis() -> i64 {
    -1
}

/// An initialiser we can honour here: Ones, Zeros or Constant(value), as a class name string or
/// Keras' `{"class_name": …, "config": {…}}`.
fn constant_initializer(e: &KerasEntry, key: &str, default: f32) -> Result<f32, ConfigError> {
    let Some(v) = e.get(key) else {
        return Ok(default);
    };
    let class = match v {
        Value::String(s) => Some(s.as_str()),
        Value::Object(o) => o.get("class_name").and_then(Value::as_str),
        _ => None,
    };
    match class.map(str::to_ascii_lowercase).as_deref() {
        Some("ones") => Ok(1.0),
        Some("zeros") => Ok(0.0),
        Some("constant") => v
            .get("config")
            .and_then(|c| c.get("value"))
            .and_then(Value::as_f64)
            .map(|x| x as f32)
            .ok_or_else(|| malformed(format!("{}: {key} Constant needs a value", e.what()))),
        _ => Err(e.refuse(key)),
    }
}

/// Keras 3's serialisation of a constant initialiser.
fn initializer_config(value: f32) -> Value {
    let (class, config) = match value {
        1.0 => ("Ones", json!({})),
        0.0 => ("Zeros", json!({})),
        v => ("Constant", json!({ "value": shortest(v) })),
    };
    json!({
        "module": "keras.initializers",
        "class_name": class,
        "config": config,
        "registered_name": null
    })
}

/// f32 → f64 through the shortest decimal, so 0.1 stays 0.1 in the config.
fn shortest(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(v as f64)
}

fn number(e: &KerasEntry, key: &str, default: f64) -> Result<f64, ConfigError> {
    match e.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_f64()
            .ok_or_else(|| malformed(format!("{}: '{key}' must be a number, got {v}", e.what()))),
    }
}

fn flag(e: &KerasEntry, key: &str) -> Result<bool, ConfigError> {
    match e.get(key) {
        None => Ok(true),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| malformed(format!("{}: '{key}' must be true or false", e.what()))),
    }
}

impl BatchNormalization {
    pub(super) fn from_keras(e: &KerasEntry) -> Result<Layer, ConfigError> {
        e.float32()?;
        // One axis (Keras 2 writes a one-element list); `output_shape` checks it is the last.
        let axis = match e.get("axis") {
            None => -1,
            Some(v) => v
                .as_i64()
                .or_else(|| match v.as_array().map(Vec::as_slice) {
                    Some([one]) => one.as_i64(),
                    _ => None,
                })
                .ok_or_else(|| e.refuse("axis"))?,
        };
        e.no_extras(&[
            "beta_regularizer",
            "gamma_regularizer",
            "beta_constraint",
            "gamma_constraint",
            "renorm_clipping",
            "virtual_batch_size",
            "adjustment",
        ])?;
        e.only("synchronized", &[json!(false)])?;
        e.only("renorm", &[json!(false)])?;
        // A frozen BatchNormalization normalises with its moving statistics even in training.
        e.only("trainable", &[json!(true)])?;
        let d = BatchNormalization::default();
        Ok(Layer::BatchNormalization(BatchNormalization {
            axis,
            momentum: number(e, "momentum", d.momentum)?,
            epsilon: number(e, "epsilon", d.epsilon)?,
            center: flag(e, "center")?,
            scale: flag(e, "scale")?,
            gamma_initializer: constant_initializer(e, "gamma_initializer", 1.0)?,
            beta_initializer: constant_initializer(e, "beta_initializer", 0.0)?,
            moving_mean_initializer: constant_initializer(e, "moving_mean_initializer", 0.0)?,
            moving_variance_initializer: constant_initializer(
                e,
                "moving_variance_initializer",
                1.0,
            )?,
        }))
    }

    /// (rows per example, channels) of the `[rows, channels]` matrix the kernels see.
    fn layout(input: &Shape) -> (usize, usize) {
        match *input {
            Shape::Image { h, w, c } => (h * w, c),
            Shape::Flat(n) => (1, n),
        }
    }

    /// How many of the parameter tensors are trainable: gamma and beta as configured.
    fn trainable(&self) -> usize {
        self.scale as usize + self.center as usize
    }

    /// gamma, beta (ones and zeros where absent), moving mean and variance from `params()`'s list.
    fn split<'a>(&self, p: &[&'a [f64]], ones: &'a [f64], zeros: &'a [f64]) -> [&'a [f64]; 4] {
        let mut p = p.iter().copied();
        let gamma = if self.scale { p.next().unwrap() } else { ones };
        let beta = if self.center {
            p.next().unwrap()
        } else {
            zeros
        };
        [gamma, beta, p.next().unwrap(), p.next().unwrap()]
    }
}

impl LayerKind for BatchNormalization {
    fn class_name(&self) -> &'static str {
        "BatchNormalization"
    }

    fn base_name(&self) -> &'static str {
        "batch_normalization"
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, String> {
        // The last axis of (batch, h, w, c) or (batch, n).
        let last = match input {
            Shape::Image { .. } => 3,
            Shape::Flat(_) => 1,
        };
        if self.axis != -1 && self.axis != last {
            return Err(format!(
                "only the last axis (-1, or {last} for an input {input}) can be normalised, got \
                 axis {}",
                self.axis
            ));
        }
        if !(self.epsilon > 0.0 && self.epsilon.is_finite()) {
            return Err(format!("epsilon must be positive, got {}", self.epsilon));
        }
        if !(0.0..=1.0).contains(&self.momentum) {
            return Err(format!("momentum must be in [0, 1], got {}", self.momentum));
        }
        if input.is_empty() {
            return Err(format!(
                "BatchNormalization needs a non-empty input, got {input}"
            ));
        }
        Ok(input.clone())
    }

    fn params(&self, input: &Shape) -> Vec<ParamSpec> {
        let c = vec![Self::layout(input).1];
        let mut out = Vec::new();
        if self.scale {
            out.push(ParamSpec::new(
                "gamma",
                c.clone(),
                Init::Constant(self.gamma_initializer),
            ));
        }
        if self.center {
            out.push(ParamSpec::new(
                "beta",
                c.clone(),
                Init::Constant(self.beta_initializer),
            ));
        }
        for (name, value) in [
            ("moving_mean", self.moving_mean_initializer),
            ("moving_variance", self.moving_variance_initializer),
        ] {
            out.push(ParamSpec {
                trainable: false,
                ..ParamSpec::new(name, c.clone(), Init::Constant(value))
            });
        }
        out
    }

    fn keras_config(&self) -> Value {
        json!({
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializer_config(self.beta_initializer),
            "gamma_initializer": initializer_config(self.gamma_initializer),
            "moving_mean_initializer": initializer_config(self.moving_mean_initializer),
            "moving_variance_initializer": initializer_config(self.moving_variance_initializer),
            "beta_regularizer": null,
            "gamma_regularizer": null,
            "beta_constraint": null,
            "gamma_constraint": null,
            "synchronized": false,
            "renorm": false,
            "renorm_clipping": null,
            "renorm_momentum": 0.99
        })
    }

    fn keras_builds(&self) -> bool {
        true
    }

    fn loop_steps(&self, input: &Shape, max_batch: usize) -> usize {
        kernel::loop_steps(max_batch * Self::layout(input).0)
    }

    fn scratch_words(&self, input: &Shape, max_batch: usize) -> Vec<(&'static str, usize)> {
        let (rows_per_example, channels) = Self::layout(input);
        vec![(
            "batch norm scratch",
            kernel::batch_norm_scratch(max_batch * rows_per_example, channels),
        )]
    }

    fn lower(&self, l: &Lowering) -> Vec<Box<dyn GpuOp>> {
        let (rows_per_example, channels) = Self::layout(l.input);
        let own = |label, value: f32| l.gpu.upload(label, &vec![value; channels]);
        let (mut p, mut g) = (l.params.iter(), l.grads.iter());
        let (gamma, dgamma) = if self.scale {
            (p.next().unwrap().clone(), g.next().unwrap().clone())
        } else {
            (
                own("batch norm gamma (ones)", 1.0),
                own("batch norm dgamma", 0.0),
            )
        };
        let (beta, dbeta) = if self.center {
            (p.next().unwrap().clone(), g.next().unwrap().clone())
        } else {
            (
                own("batch norm beta (zeros)", 0.0),
                own("batch norm dbeta", 0.0),
            )
        };
        // The batch's mean at 0 and variance at the next aligned offset, so each binds alone.
        let var_at = channels.next_multiple_of(PARAM_ALIGN);
        let stats = l.gpu.zeros("batch norm statistics", var_at + channels);
        vec![Box::new(BatchNormOp {
            rows_per_example,
            channels,
            momentum: self.momentum,
            epsilon: self.epsilon,
            gamma,
            beta,
            dgamma,
            dbeta,
            moving_mean: p.next().unwrap().clone(),
            moving_var: p.next().unwrap().clone(),
            batch_mean: stats.slice(0, channels),
            batch_var: stats.slice(var_at, channels),
            updated: l.gpu.zeros("batch norm updated at step", channels),
            scratch: l.gpu.zeros(
                "batch norm scratch",
                kernel::batch_norm_scratch(l.max_batch * rows_per_example, channels),
            ),
        })]
    }

    fn cpu_forward(&self, s: &CpuStep, input: &Shape, x: &[f64], p: &[&[f64]]) -> Vec<f64> {
        let (rpe, c) = Self::layout(input);
        let (ones, zeros) = (vec![1.0; c], vec![0.0; c]);
        let [gamma, beta, moving_mean, moving_var] = self.split(p, &ones, &zeros);
        if s.train {
            twin::batch_norm_train_forward(x, gamma, beta, s.batch * rpe, self.epsilon)
        } else {
            twin::batch_norm_normalize(x, moving_mean, moving_var, gamma, beta, self.epsilon)
        }
    }

    fn cpu_backward(
        &self,
        s: &CpuStep,
        input: &Shape,
        x: &[f64],
        dy: &[f64],
        p: &[&[f64]],
    ) -> (Vec<f64>, Vec<Vec<f64>>) {
        let (rpe, c) = Self::layout(input);
        let (ones, zeros) = (vec![1.0; c], vec![0.0; c]);
        let [gamma, ..] = self.split(p, &ones, &zeros);
        let (dx, dgamma, dbeta) =
            twin::batch_norm_backward(x, dy, gamma, s.batch * rpe, self.epsilon);
        let mut grads = Vec::new();
        if self.scale {
            grads.push(dgamma);
        }
        if self.center {
            grads.push(dbeta);
        }
        // The moving statistics get no gradient.
        grads.extend([vec![0.0; c], vec![0.0; c]]);
        (dx, grads)
    }

    fn cpu_update_state(
        &self,
        s: &CpuStep,
        input: &Shape,
        x: &[f64],
        p: &[&[f64]],
    ) -> Vec<Vec<f64>> {
        let (rpe, c) = Self::layout(input);
        let (mean, var) = twin::batch_norm_stats(x, s.batch * rpe, c);
        let moving = &p[self.trainable()..];
        vec![
            twin::moving_update(moving[0], &mean, self.momentum),
            twin::moving_update(moving[1], &var, self.momentum),
        ]
    }
}

/// One BatchNormalization on the GPU. gamma and beta are the layer's parameters, or constant
/// buffers of its own (with scratch gradients) when `scale` or `center` is off.
struct BatchNormOp {
    rows_per_example: usize,
    channels: usize,
    momentum: f64,
    epsilon: f64,
    gamma: Tensor,
    beta: Tensor,
    dgamma: Tensor,
    dbeta: Tensor,
    moving_mean: Tensor,
    moving_var: Tensor,
    /// The last training forward's statistics, which the backward reuses.
    batch_mean: Tensor,
    batch_var: Tensor,
    /// Per channel, the step whose moving update was applied, plus one.
    updated: Tensor,
    /// The reductions' partial sums: the statistics' in the forward, dgamma's and dbeta's in the
    /// backward (each consumed by the dispatch after the one that writes it).
    scratch: Tensor,
}

impl BatchNormOp {
    fn dims(&self, batch: usize) -> BatchNormDims {
        BatchNormDims {
            rows: batch * self.rows_per_example,
            channels: self.channels,
            momentum: self.momentum,
            epsilon: self.epsilon,
        }
    }
}

impl GpuOp for BatchNormOp {
    fn forward(&self, s: &GpuStep, x: &Tensor, y: &Tensor) -> Vec<Dispatch> {
        let d = self.dims(s.batch);
        let mut out = kernel::batch_norm_stats(
            s.gpu,
            &d,
            x,
            &self.scratch,
            &self.batch_mean,
            &self.batch_var,
            &self.moving_mean,
            &self.moving_var,
            &self.updated,
            s.step_state,
        );
        out.push(kernel::batch_norm_normalize(
            s.gpu,
            &d,
            x,
            &self.batch_mean,
            &self.batch_var,
            &self.gamma,
            &self.beta,
            y,
        ));
        out
    }

    fn evaluate(&self, s: &GpuStep, x: &Tensor, y: &Tensor) -> Vec<Dispatch> {
        vec![kernel::batch_norm_normalize(
            s.gpu,
            &self.dims(s.batch),
            x,
            &self.moving_mean,
            &self.moving_var,
            &self.gamma,
            &self.beta,
            y,
        )]
    }

    fn backward(&self, s: &GpuStep, x: &Tensor, dy: &Tensor, dx: Option<&Tensor>) -> Vec<Dispatch> {
        let d = self.dims(s.batch);
        let mut out = kernel::batch_norm_reduce(
            s.gpu,
            &d,
            x,
            dy,
            &self.batch_mean,
            &self.batch_var,
            &self.scratch,
            &self.dgamma,
            &self.dbeta,
        );
        if let Some(dx) = dx {
            out.push(kernel::batch_norm_dx(
                s.gpu,
                &d,
                x,
                dy,
                &self.batch_mean,
                &self.batch_var,
                &self.gamma,
                &self.dgamma,
                &self.dbeta,
                dx,
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(config: Value) -> Result<Layer, ConfigError> {
        let entry = KerasEntry {
            class: "BatchNormalization",
            name: "bn".into(),
            config: config.as_object().unwrap(),
        };
        BatchNormalization::from_keras(&entry)
    }

    #[test]
    fn keras_settings_we_cannot_honour_are_refused_by_name() {
        let regularizer = json!({"class_name": "L2", "config": {"l2": 0.01}});
        for (key, value) in [
            ("axis", json!([1, 2])),
            ("beta_regularizer", regularizer.clone()),
            (
                "gamma_constraint",
                json!({"class_name": "NonNeg", "config": {}}),
            ),
            ("synchronized", json!(true)),
            ("renorm", json!(true)),
            ("trainable", json!(false)),
            (
                "gamma_initializer",
                json!({"class_name": "RandomNormal", "config": {}}),
            ),
            ("moving_variance_initializer", json!("glorot_uniform")),
        ] {
            let e = read(json!({ key: value })).unwrap_err();
            assert!(e.unsupported && e.message.contains(key), "{key}: {e}");
            println!("{key}: {e}");
        }
        // Malformed, not unsupported.
        let e = read(json!({"momentum": "high"})).unwrap_err();
        assert!(!e.unsupported && e.message.contains("momentum"), "{e}");
    }

    #[test]
    fn keras_2_and_3_spellings_read() {
        let keras2 = json!({
            "axis": [-1], "momentum": 0.9, "epsilon": 0.01, "center": false, "scale": true,
            "gamma_initializer": {"class_name": "Constant", "config": {"value": 0.5}},
            "moving_variance_initializer": "ones", "fused": null, "trainable": true,
        });
        let want = BatchNormalization {
            axis: -1,
            momentum: 0.9,
            epsilon: 0.01,
            center: false,
            gamma_initializer: 0.5,
            ..BatchNormalization::default()
        };
        assert_eq!(read(keras2).unwrap(), Layer::BatchNormalization(want));
        assert_eq!(
            read(json!({})).unwrap(),
            Layer::BatchNormalization(BatchNormalization::default())
        );
    }

    #[test]
    fn settings_that_cannot_normalise_are_model_errors() {
        let input = Shape::Flat(3);
        for bad in [
            BatchNormalization {
                epsilon: 0.0,
                ..BatchNormalization::default()
            },
            BatchNormalization {
                momentum: 1.5,
                ..BatchNormalization::default()
            },
            // Not the last axis of a flat input.
            BatchNormalization {
                axis: 3,
                ..BatchNormalization::default()
            },
        ] {
            assert!(bad.output_shape(&input).is_err(), "{bad:?}");
        }
        let shape = BatchNormalization::default().output_shape(&input);
        assert_eq!(shape, Ok(input));
        // Keras 2's built axis for images.
        let image = Shape::Image { h: 2, w: 2, c: 3 };
        let keras2 = read(json!({"axis": [3]})).unwrap();
        assert_eq!(keras2.kind().output_shape(&image), Ok(image));
    }
}
