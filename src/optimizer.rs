//! Optimizer configuration: which update rule, its hyperparameters (Keras' defaults), how many state
//! tensors it keeps per parameter, and the per-step values the host writes into `StepState`. Pure
//! configuration, no GPU: the update itself is `kernels::optimizer::update`, its CPU twin
//! `reference::optimizer::update`.
//!
//! Every rule is Keras 3's (`keras/src/optimizers/{sgd,rmsprop,adam}.py`); RMSprop can also put epsilon
//! outside the square root as standalone Keras 2.3 did, the form the original notebook trained with.
//! Hyperparameters are f32 like the variables Keras updates. Where Keras computes with the Python float
//! (`1 - rho`, `1 - beta_1`, in f64, then cast to f32) we recover that float as the shortest decimal
//! that round-trips the f32 (0.9f32 -> 0.9), so the constants the kernel uses are Keras' to the bit.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::kernels::StepState;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Optimizer {
    /// Keras 3 SGD: without momentum w -= lr * g; with momentum m = momentum * m - lr * g, then
    /// w += m, or with Nesterov w += momentum * m - lr * g.
    Sgd {
        lr: f32,
        momentum: f32,
        nesterov: bool,
    },
    /// Keras 3 RMSprop: v = rho * v + (1 - rho) * g^2; w -= lr * g / sqrt(v + epsilon).
    /// `centered` subtracts the squared moving average of g from v inside the root; `momentum` > 0 keeps
    /// m = momentum * m + increment and subtracts m. `legacy_epsilon` uses Keras 2.3's
    /// lr * g / (sqrt(v) + epsilon) instead (Keras 2.3 had neither momentum nor centering; combined with
    /// them, only the placement of epsilon changes).
    #[serde(rename = "rmsprop")]
    RmsProp {
        lr: f32,
        rho: f32,
        momentum: f32,
        epsilon: f32,
        centered: bool,
        legacy_epsilon: bool,
    },
    /// Keras 3 Adam: m += (g - m)(1 - beta1); v += (g^2 - v)(1 - beta2); w -= m * alpha / (sqrt(v) + epsilon)
    /// with alpha = lr * sqrt(1 - beta2^t) / (1 - beta1^t), t = step + 1 (see `adam_alpha`). `amsgrad`
    /// divides by the running maximum of v instead.
    Adam {
        lr: f32,
        beta1: f32,
        beta2: f32,
        epsilon: f32,
        amsgrad: bool,
    },
}

impl Optimizer {
    /// keras.optimizers.SGD(): learning_rate 0.01, momentum 0, nesterov False.
    pub fn sgd_default() -> Optimizer {
        Optimizer::Sgd {
            lr: 0.01,
            momentum: 0.0,
            nesterov: false,
        }
    }

    /// keras.optimizers.RMSprop(): learning_rate 0.001, rho 0.9, momentum 0, epsilon 1e-7, centered False.
    pub fn rmsprop_default() -> Optimizer {
        Optimizer::RmsProp {
            lr: 0.001,
            rho: 0.9,
            momentum: 0.0,
            epsilon: 1e-7,
            centered: false,
            legacy_epsilon: false,
        }
    }

    /// keras.optimizers.Adam(): learning_rate 0.001, beta_1 0.9, beta_2 0.999, epsilon 1e-7, amsgrad False.
    pub fn adam_default() -> Optimizer {
        Optimizer::Adam {
            lr: 0.001,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-7,
            amsgrad: false,
        }
    }

    /// The learning rate.
    pub fn lr(&self) -> f32 {
        match *self {
            Optimizer::Sgd { lr, .. }
            | Optimizer::RmsProp { lr, .. }
            | Optimizer::Adam { lr, .. } => lr,
        }
    }

    /// Per-parameter state tensors the update needs, each as long as the parameters, zero at the start.
    /// In order: SGD [momentum if momentum != 0]; RMSprop [velocity, momentum if momentum > 0,
    /// average gradient if centered]; Adam [momentum, velocity, velocity_hat if amsgrad] (Keras' order).
    pub fn state_buffers(&self) -> usize {
        match *self {
            Optimizer::Sgd { momentum, .. } => (momentum != 0.0) as usize,
            Optimizer::RmsProp {
                momentum, centered, ..
            } => 1 + (momentum > 0.0) as usize + centered as usize,
            Optimizer::Adam { amsgrad, .. } => 2 + amsgrad as usize,
        }
    }

    /// The values the kernels read for `step` (counted from 0): the step, the learning rate, and for
    /// Adam its bias-corrected step size.
    pub fn step_state(&self, step: u32) -> StepState {
        let adam_alpha = match *self {
            Optimizer::Adam {
                lr, beta1, beta2, ..
            } => adam_alpha(lr, beta1, beta2, step),
            _ => 0.0,
        };
        StepState {
            step,
            lr: self.lr(),
            adam_alpha,
            _pad: 0,
        }
    }
}

/// Keras optimizer settings we do not run: accepted only when off (null, false or 0), else refused
/// by name. `decay` is Keras 2's per-step learning-rate decay.
const KERAS_OFF: [&str; 10] = [
    "weight_decay",
    "clipnorm",
    "global_clipnorm",
    "clipvalue",
    "use_ema",
    "ema_overwrite_frequency",
    "loss_scale_factor",
    "gradient_accumulation_steps",
    "is_legacy_optimizer",
    "decay",
];

impl Optimizer {
    /// Reads a Keras optimizer config as `compile_config` holds it: a name (`"adam"`) or an object
    /// with `class_name` and `config` (Keras 3's also has `module`, Keras 2's may say `lr`). SGD,
    /// RMSprop and Adam with Keras' settings are read, missing ones taking Keras' defaults; other
    /// optimizers, learning-rate schedules and settings we do not run are refused by name.
    pub fn from_keras(v: &Value) -> Result<Optimizer, String> {
        let empty = Map::new();
        let (class, config) = match v {
            Value::String(s) => (s.as_str(), &empty),
            Value::Object(o) => (
                o.get("class_name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("optimizer {v} has no class_name"))?,
                match o.get("config") {
                    None | Some(Value::Null) => &empty,
                    Some(Value::Object(c)) => c,
                    Some(c) => return Err(format!("optimizer config {c} is not an object")),
                },
            ),
            _ => return Err(format!("optimizer {v} is neither a name nor an object")),
        };
        let mut known: Vec<&str> =
            vec!["name", "learning_rate", "lr", "ema_momentum", "jit_compile"];
        let number = |key: &str, default: f32| -> Result<f32, String> {
            match config.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::Number(n)) => Ok(n.as_f64().unwrap_or(f64::NAN) as f32),
                Some(Value::Object(_)) if key == "learning_rate" => Err(format!(
                    "optimizer {class}: learning-rate schedules are not supported (a number is)"
                )),
                Some(other) => Err(format!(
                    "optimizer {class}: {key} = {other} is not a number"
                )),
            }
        };
        let flag = |key: &str| -> Result<bool, String> {
            match config.get(key) {
                None | Some(Value::Null) => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(other) => Err(format!(
                    "optimizer {class}: {key} = {other} is not a boolean"
                )),
            }
        };
        let lr = |default: f32| match config.get("learning_rate") {
            Some(v) if !v.is_null() => number("learning_rate", default),
            _ => number("lr", default),
        };
        let optimizer = match class.to_ascii_lowercase().as_str() {
            "sgd" => {
                known.extend(["momentum", "nesterov"]);
                Optimizer::Sgd {
                    lr: lr(0.01)?,
                    momentum: number("momentum", 0.0)?,
                    nesterov: flag("nesterov")?,
                }
            }
            "rmsprop" => {
                known.extend(["rho", "momentum", "epsilon", "centered"]);
                Optimizer::RmsProp {
                    lr: lr(0.001)?,
                    rho: number("rho", 0.9)?,
                    momentum: number("momentum", 0.0)?,
                    epsilon: number("epsilon", 1e-7)?,
                    centered: flag("centered")?,
                    legacy_epsilon: false,
                }
            }
            "adam" => {
                known.extend(["beta_1", "beta_2", "epsilon", "amsgrad"]);
                Optimizer::Adam {
                    lr: lr(0.001)?,
                    beta1: number("beta_1", 0.9)?,
                    beta2: number("beta_2", 0.999)?,
                    epsilon: number("epsilon", 1e-7)?,
                    amsgrad: flag("amsgrad")?,
                }
            }
            _ => {
                return Err(format!(
                    "optimizer {class} is not supported (SGD, RMSprop and Adam are)"
                ));
            }
        };
        // `name`, `ema_momentum` (read only with EMA on) and `jit_compile` say how Keras runs or
        // names the optimizer, not what it computes.
        for (key, value) in config {
            let off =
                value.is_null() || *value == Value::Bool(false) || value.as_f64() == Some(0.0);
            let fine = if KERAS_OFF.contains(&key.as_str()) {
                off
            } else {
                known.contains(&key.as_str())
            };
            if !fine {
                return Err(format!(
                    "optimizer {class}: {key} = {value} is not supported"
                ));
            }
        }
        optimizer.check()?;
        Ok(optimizer)
    }

    /// Why the settings cannot train, as the CLI's flags are checked: a learning rate and epsilon
    /// finite and above 0, decay rates and momentum in [0, 1).
    fn check(&self) -> Result<(), String> {
        let positive = |name: &str, v: f32| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!(
                    "optimizer: {name} = {v} must be a finite number above 0"
                ))
            }
        };
        let fraction = |name: &str, v: f32| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!(
                    "optimizer: {name} = {v} must be at least 0 and below 1"
                ))
            }
        };
        positive("learning_rate", self.lr())?;
        match *self {
            Optimizer::Sgd { momentum, .. } => fraction("momentum", momentum),
            Optimizer::RmsProp {
                rho,
                momentum,
                epsilon,
                ..
            } => {
                fraction("rho", rho)?;
                fraction("momentum", momentum)?;
                positive("epsilon", epsilon)
            }
            Optimizer::Adam {
                beta1,
                beta2,
                epsilon,
                ..
            } => {
                fraction("beta_1", beta1)?;
                fraction("beta_2", beta2)?;
                positive("epsilon", epsilon)
            }
        }
    }
}

/// As a Keras user would write it: `RMSprop(learning_rate=0.001, rho=0.9, …)`.
impl std::fmt::Display for Optimizer {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let py = |b: bool| if b { "True" } else { "False" };
        match *self {
            Optimizer::Sgd {
                lr,
                momentum,
                nesterov,
            } => write!(
                f,
                "SGD(learning_rate={}, momentum={}, nesterov={})",
                py_float(lr),
                py_float(momentum),
                py(nesterov)
            ),
            Optimizer::RmsProp {
                lr,
                rho,
                momentum,
                epsilon,
                centered,
                legacy_epsilon,
            } => {
                write!(
                    f,
                    "RMSprop(learning_rate={}, rho={}, momentum={}, epsilon={}, centered={})",
                    py_float(lr),
                    py_float(rho),
                    py_float(momentum),
                    py_float(epsilon),
                    py(centered)
                )?;
                if legacy_epsilon {
                    write!(f, " with Keras 2.3's epsilon outside the square root")?;
                }
                Ok(())
            }
            Optimizer::Adam {
                lr,
                beta1,
                beta2,
                epsilon,
                amsgrad,
            } => write!(
                f,
                "Adam(learning_rate={}, beta_1={}, beta_2={}, epsilon={}, amsgrad={})",
                py_float(lr),
                py_float(beta1),
                py_float(beta2),
                py_float(epsilon),
                py(amsgrad)
            ),
        }
    }
}

/// Adam's step size lr * sqrt(1 - beta2^t) / (1 - beta1^t) with t = step + 1, in f32 as Keras 3
/// computes it (`local_step = iterations + 1`, `ops.power` of the f32-cast betas).
pub fn adam_alpha(lr: f32, beta1: f32, beta2: f32, step: u32) -> f32 {
    let t = (step as f32) + 1.0;
    lr * (1.0 - beta2.powf(t)).sqrt() / (1.0 - beta1.powf(t))
}

/// The Python float a user wrote to get this f32: the shortest decimal that round-trips it, read as f64.
pub(crate) fn python_float(x: f32) -> f64 {
    x.to_string()
        .parse()
        .expect("an f32 prints as a valid number")
}

/// `x` as Python's `repr` shows the float a user wrote: `0.0`, `0.001`, `1e-07`.
fn py_float(x: f32) -> String {
    let v = python_float(x);
    if v != 0.0 && !(1e-4..1e16).contains(&v.abs()) {
        let e = format!("{v:e}");
        let (mantissa, exp) = e.split_once('e').expect("{:e} has an exponent");
        let (sign, digits) = exp.strip_prefix('-').map_or(("+", exp), |d| ("-", d));
        format!("{mantissa}e{sign}{digits:0>2}")
    } else if v.fract() == 0.0 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

/// `1 - x` computed as Keras does with a Python float hyperparameter (in f64), then cast to f32.
pub fn one_minus(x: f32) -> f32 {
    (1.0 - python_float(x)) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_as_keras_code() {
        assert_eq!(
            Optimizer::rmsprop_default().to_string(),
            "RMSprop(learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-07, centered=False)"
        );
        assert_eq!(
            Optimizer::sgd_default().to_string(),
            "SGD(learning_rate=0.01, momentum=0.0, nesterov=False)"
        );
    }

    #[test]
    fn state_buffers_follow_the_options() {
        assert_eq!(Optimizer::sgd_default().state_buffers(), 0);
        assert_eq!(
            Optimizer::Sgd {
                lr: 0.01,
                momentum: 0.9,
                nesterov: true
            }
            .state_buffers(),
            1
        );
        assert_eq!(Optimizer::rmsprop_default().state_buffers(), 1);
        let both = Optimizer::RmsProp {
            lr: 0.001,
            rho: 0.9,
            momentum: 0.5,
            epsilon: 1e-7,
            centered: true,
            legacy_epsilon: false,
        };
        assert_eq!(both.state_buffers(), 3);
        assert_eq!(Optimizer::adam_default().state_buffers(), 2);
        assert_eq!(
            Optimizer::Adam {
                lr: 0.001,
                beta1: 0.9,
                beta2: 0.999,
                epsilon: 1e-7,
                amsgrad: true
            }
            .state_buffers(),
            3
        );
    }

    #[test]
    fn one_minus_matches_python_floats() {
        // Python: 1 - 0.9 == 0.09999999999999998, which float32 rounds to 0.1f32; 1.0f32 - 0.9f32 is
        // 0.100000024, one ulp and a bit away.
        assert_eq!(one_minus(0.9), 0.1f32);
        assert_ne!(1.0f32 - 0.9f32, 0.1f32);
        assert_eq!(one_minus(0.999), (1.0f64 - 0.999) as f32);
        assert_eq!(python_float(1e-7), 1e-7);
    }

    #[test]
    fn adam_alpha_is_the_bias_correction() {
        // t = 1: lr * sqrt(1 - 0.999) / (1 - 0.9) = 0.001 * 0.0316228 / 0.1 = 3.16228e-4.
        // In f32, 1 - 0.999f32 is 0.00099998713 (0.999 is not exact in binary), so alpha is 3.4e-6 below
        // the exact value; Keras computes the same f32 expression.
        let a = adam_alpha(0.001, 0.9, 0.999, 0);
        let exact = 0.001 * 0.001f64.sqrt() / 0.1;
        assert!((a as f64 / exact - 1.0).abs() < 1e-5, "{a} vs {exact}");
        // Large t: both corrections tend to 1.
        assert!((adam_alpha(0.001, 0.9, 0.999, 100_000) - 0.001).abs() < 1e-9);
        let st = Optimizer::adam_default().step_state(4);
        assert_eq!(
            (st.step, st.lr, st.adam_alpha),
            (4, 0.001, adam_alpha(0.001, 0.9, 0.999, 4))
        );
        assert_eq!(Optimizer::rmsprop_default().step_state(3).adam_alpha, 0.0);
    }

    #[test]
    fn serde_round_trip_keeps_every_field() {
        for opt in [
            Optimizer::sgd_default(),
            Optimizer::rmsprop_default(),
            Optimizer::RmsProp {
                lr: 0.0001,
                rho: 0.95,
                momentum: 0.1,
                epsilon: 1e-6,
                centered: true,
                legacy_epsilon: true,
            },
            Optimizer::Adam {
                lr: 0.002,
                beta1: 0.8,
                beta2: 0.99,
                epsilon: 1e-8,
                amsgrad: true,
            },
        ] {
            let json = serde_json::to_string(&opt).unwrap();
            assert_eq!(
                serde_json::from_str::<Optimizer>(&json).unwrap(),
                opt,
                "{json}"
            );
        }
        let json = serde_json::to_string(&Optimizer::rmsprop_default()).unwrap();
        assert!(
            json.contains("\"lr\":0.001") && json.contains("\"kind\":\"rmsprop\""),
            "{json}"
        );
    }
}
