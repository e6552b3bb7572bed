//! Keras 3's initialisers (`keras/src/initializers/`): what each draws, read from the three forms
//! Keras configs name them in and written back in Keras 3's. Every tensor of a model draws from one
//! seeded stream in model order (`Sequential::init_params`), so `--seed` fixes the initial weights;
//! Keras' per-initialiser `seed` is accepted and not reproduced (its generator is not ours).

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::optimizer::python_float;

/// The standard deviation of a standard normal truncated to (-2, 2): Keras divides a variance-scaling
/// stddev by it so that the truncated values keep the variance asked for.
const TRUNCATED_STDDEV: f64 = 0.879_625_661_034_239_8;

/// Which fan a variance-scaling initialiser divides its scale by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FanMode {
    FanIn,
    FanOut,
    FanAvg,
}

/// What a variance-scaling initialiser draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    /// A normal truncated at 2 standard deviations, widened so its variance is the scale.
    TruncatedNormal,
    UntruncatedNormal,
    Uniform,
}

/// A parameter tensor's initialiser, as Keras 3 defines it. `model.json` stores it under its Keras
/// name: `"he_normal"`, `{"constant": 0.5}`, `{"random_normal": {"mean": 0.0, "stddev": 0.02}}`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// U(±sqrt(6 / (fan_in + fan_out))): a kernel's default.
    GlorotUniform,
    /// Truncated normal, variance 2 / (fan_in + fan_out).
    GlorotNormal,
    /// Truncated normal, variance 2 / fan_in.
    HeNormal,
    /// U(±sqrt(6 / fan_in)).
    HeUniform,
    /// Truncated normal, variance 1 / fan_in.
    LecunNormal,
    /// U(±sqrt(3 / fan_in)).
    LecunUniform,
    /// Keras' `VarianceScaling` with its settings (Keras 2 wrote he_normal and the like as this).
    VarianceScaling {
        scale: f32,
        mode: FanMode,
        distribution: Distribution,
    },
    /// A bias's default. Zeros, Ones and Constant draw nothing from the stream.
    Zeros,
    Ones,
    Constant(f32),
    /// N(mean, stddev).
    RandomNormal {
        mean: f32,
        stddev: f32,
    },
    /// U(minval, maxval).
    RandomUniform {
        minval: f32,
        maxval: f32,
    },
    /// N(mean, stddev) redrawn outside mean ± 2 stddev (no widening, unlike the variance-scaling ones).
    TruncatedNormal {
        mean: f32,
        stddev: f32,
    },
}

/// Keras' `compute_fans`: a kernel's last two axes are its input and output units, and every axis
/// before them (a convolution's receptive field) multiplies both; a vector is its own fan.
pub fn compute_fans(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (*n, *n),
        [receptive @ .., fan_in, fan_out] => {
            let receptive: usize = receptive.iter().product();
            (receptive * fan_in, receptive * fan_out)
        }
    }
}

/// One standard normal draw (Box–Muller on two uniforms of the stream; 1 - u keeps ln away from 0).
fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A standard normal draw inside (-2, 2), redrawn until it is.
fn truncated_standard_normal(rng: &mut impl Rng) -> f64 {
    loop {
        let z = standard_normal(rng);
        if z.abs() < 2.0 {
            return z;
        }
    }
}

impl Init {
    /// A kernel's default, glorot_uniform.
    pub fn kernel_default() -> Init {
        Init::GlorotUniform
    }

    /// A bias's default, zeros.
    pub fn bias_default() -> Init {
        Init::Zeros
    }

    pub fn is_kernel_default(&self) -> bool {
        *self == Init::kernel_default()
    }

    pub fn is_bias_default(&self) -> bool {
        *self == Init::bias_default()
    }

    /// The scale, fan mode and distribution of the variance-scaling initialisers.
    pub fn variance_scaling(self) -> Option<(f32, FanMode, Distribution)> {
        use Distribution::{TruncatedNormal, Uniform};
        use FanMode::{FanAvg, FanIn};
        Some(match self {
            Init::GlorotUniform => (1.0, FanAvg, Uniform),
            Init::GlorotNormal => (1.0, FanAvg, TruncatedNormal),
            Init::HeNormal => (2.0, FanIn, TruncatedNormal),
            Init::HeUniform => (2.0, FanIn, Uniform),
            Init::LecunNormal => (1.0, FanIn, TruncatedNormal),
            Init::LecunUniform => (1.0, FanIn, Uniform),
            Init::VarianceScaling {
                scale,
                mode,
                distribution,
            } => (scale, mode, distribution),
            _ => return None,
        })
    }

    /// Why the settings cannot be drawn from, if they cannot (a range that is empty, a spread that
    /// is negative or not finite).
    pub fn check(self) -> Result<(), String> {
        let finite = |name: &str, v: f32| {
            if v.is_finite() {
                Ok(())
            } else {
                Err(format!(
                    "{}: {name} must be finite, got {v}",
                    self.keras_class()
                ))
            }
        };
        match self {
            Init::Constant(v) => finite("value", v),
            Init::RandomNormal { mean, stddev } | Init::TruncatedNormal { mean, stddev } => {
                finite("mean", mean)?;
                finite("stddev", stddev)?;
                if stddev < 0.0 {
                    return Err(format!(
                        "{}: stddev must not be negative, got {stddev}",
                        self.keras_class()
                    ));
                }
                Ok(())
            }
            Init::RandomUniform { minval, maxval } => {
                finite("minval", minval)?;
                finite("maxval", maxval)?;
                if minval >= maxval {
                    return Err(format!(
                        "RandomUniform: minval ({minval}) must be below maxval ({maxval})"
                    ));
                }
                if !(maxval - minval).is_finite() {
                    return Err(format!(
                        "RandomUniform: the range {minval}..{maxval} is wider than float32 holds"
                    ));
                }
                Ok(())
            }
            Init::VarianceScaling { scale, .. } if !(scale.is_finite() && scale > 0.0) => Err(
                format!("VarianceScaling: scale must be a finite number above 0, got {scale}"),
            ),
            _ => Ok(()),
        }
    }

    /// Fills `out` (a tensor of `shape`) from `rng`, which all tensors of a model share in order.
    /// The settings must have passed [`Init::check`] (every layer checks its own in `output_shape`).
    pub fn fill(self, shape: &[usize], rng: &mut impl Rng, out: &mut [f32]) {
        if let Some((scale, mode, distribution)) = self.variance_scaling() {
            let (fan_in, fan_out) = compute_fans(shape);
            let fan = match mode {
                FanMode::FanIn => fan_in as f64,
                FanMode::FanOut => fan_out as f64,
                FanMode::FanAvg => (fan_in + fan_out) as f64 / 2.0,
            };
            // scale / max(1, fan) as Keras; for glorot_uniform 3 / (fan_avg) rounds once to exactly
            // 6 / (fan_in + fan_out), the limit this crate has always drawn from.
            let variance = f64::from(scale) / fan.max(1.0);
            match distribution {
                Distribution::Uniform => {
                    let limit = (3.0 * f64::from(scale) / fan.max(1.0)).sqrt() as f32;
                    for p in out {
                        *p = rng.random_range(-limit..limit);
                    }
                }
                Distribution::TruncatedNormal => {
                    let stddev = variance.sqrt() / TRUNCATED_STDDEV;
                    for p in out {
                        *p = (stddev * truncated_standard_normal(rng)) as f32;
                    }
                }
                Distribution::UntruncatedNormal => {
                    let stddev = variance.sqrt();
                    for p in out {
                        *p = (stddev * standard_normal(rng)) as f32;
                    }
                }
            }
            return;
        }
        match self {
            Init::Zeros => out.fill(0.0),
            Init::Ones => out.fill(1.0),
            Init::Constant(value) => out.fill(value),
            Init::RandomNormal { mean, stddev } => {
                for p in out {
                    *p = (f64::from(mean) + f64::from(stddev) * standard_normal(rng)) as f32;
                }
            }
            Init::TruncatedNormal { mean, stddev } => {
                for p in out {
                    *p = (f64::from(mean) + f64::from(stddev) * truncated_standard_normal(rng))
                        as f32;
                }
            }
            Init::RandomUniform { minval, maxval } => {
                for p in out {
                    *p = rng.random_range(minval..maxval);
                }
            }
            _ => unreachable!("the variance-scaling initialisers returned above"),
        }
    }

    /// Keras 3's class name.
    pub fn keras_class(self) -> &'static str {
        match self {
            Init::GlorotUniform => "GlorotUniform",
            Init::GlorotNormal => "GlorotNormal",
            Init::HeNormal => "HeNormal",
            Init::HeUniform => "HeUniform",
            Init::LecunNormal => "LecunNormal",
            Init::LecunUniform => "LecunUniform",
            Init::VarianceScaling { .. } => "VarianceScaling",
            Init::Zeros => "Zeros",
            Init::Ones => "Ones",
            Init::Constant(_) => "Constant",
            Init::RandomNormal { .. } => "RandomNormal",
            Init::RandomUniform { .. } => "RandomUniform",
            Init::TruncatedNormal { .. } => "TruncatedNormal",
        }
    }

    /// The initialiser as Keras 3 writes it in a layer's config. Settings are written as the Python
    /// floats they were read from (0.02, not 0.019999999552965164).
    pub fn to_keras(self) -> Value {
        let f = python_float;
        let config = match self {
            Init::VarianceScaling {
                scale,
                mode,
                distribution,
            } => json!({
                "seed": null, "scale": f(scale), "mode": mode, "distribution": distribution,
                "input_axes": null, "output_axes": null
            }),
            _ if self.variance_scaling().is_some() => {
                json!({"seed": null, "input_axes": null, "output_axes": null})
            }
            Init::Zeros | Init::Ones => json!({}),
            Init::Constant(value) => json!({ "value": f(value) }),
            Init::RandomNormal { mean, stddev } | Init::TruncatedNormal { mean, stddev } => {
                json!({"seed": null, "mean": f(mean), "stddev": f(stddev)})
            }
            Init::RandomUniform { minval, maxval } => {
                json!({"seed": null, "minval": f(minval), "maxval": f(maxval)})
            }
            _ => unreachable!("every initialiser is listed"),
        };
        json!({
            "module": "keras.initializers",
            "class_name": self.keras_class(),
            "config": config,
            "registered_name": null
        })
    }

    /// Reads an initialiser in any form Keras writes: a name (`"he_normal"`, `"HeNormal"`, Keras'
    /// aliases `"normal"`, `"uniform"`, `"zero"`, `"one"`), Keras 2's `{"class_name", "config"}` or
    /// Keras 3's object with `module` and `registered_name`. Unknown initialisers and settings are
    /// refused by name; the error is the message only (the caller names the layer and setting).
    pub fn from_keras(v: &Value) -> Result<Init, String> {
        let empty = Map::new();
        let (class, config) = match v {
            Value::String(s) => (s.as_str(), &empty),
            Value::Object(o) => {
                let class = o
                    .get("class_name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("initializer {v} has no class_name"))?;
                if let Some(module) = o.get("module").and_then(Value::as_str)
                    && module != "keras.initializers"
                {
                    return Err(format!(
                        "initializer {class} from module {module} is not supported"
                    ));
                }
                if o.get("registered_name")
                    .and_then(Value::as_str)
                    .is_some_and(|r| r != class)
                {
                    return Err(format!(
                        "custom (registered) initializer {class} is not supported"
                    ));
                }
                let config = match o.get("config") {
                    None | Some(Value::Null) => &empty,
                    Some(Value::Object(c)) => c,
                    Some(c) => {
                        return Err(format!("initializer {class}: config {c} is not an object"));
                    }
                };
                (class, config)
            }
            _ => return Err(format!("initializer {v} is neither a name nor an object")),
        };
        let key: String = class
            .chars()
            .filter(|&c| c != '_')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let settings = Settings { class, config };
        let init = match key.as_str() {
            "glorotuniform" => Init::GlorotUniform,
            "glorotnormal" => Init::GlorotNormal,
            "henormal" => Init::HeNormal,
            "heuniform" => Init::HeUniform,
            "lecunnormal" => Init::LecunNormal,
            "lecununiform" => Init::LecunUniform,
            "variancescaling" => Init::VarianceScaling {
                scale: settings.number("scale", 1.0)?,
                mode: settings.mode()?,
                distribution: settings.distribution()?,
            },
            "zeros" | "zero" => Init::Zeros,
            "ones" | "one" => Init::Ones,
            "constant" => Init::Constant(settings.number("value", 0.0)?),
            "randomnormal" | "normal" => Init::RandomNormal {
                mean: settings.number("mean", 0.0)?,
                stddev: settings.number("stddev", 0.05)?,
            },
            "randomuniform" | "uniform" => Init::RandomUniform {
                minval: settings.number("minval", -0.05)?,
                maxval: settings.number("maxval", 0.05)?,
            },
            "truncatednormal" => Init::TruncatedNormal {
                mean: settings.number("mean", 0.0)?,
                stddev: settings.number("stddev", 0.05)?,
            },
            _ => {
                return Err(format!(
                    "initializer {class} is not supported (glorot_uniform, glorot_normal, \
                     he_normal, he_uniform, lecun_normal, lecun_uniform, variance_scaling, zeros, \
                     ones, constant, random_normal, random_uniform and truncated_normal are)"
                ));
            }
        };
        settings.only_known(init)?;
        init.check()?;
        Ok(init)
    }
}

/// An initialiser's config while it is read.
struct Settings<'a> {
    class: &'a str,
    config: &'a Map<String, Value>,
}

impl Settings<'_> {
    fn number(&self, key: &str, default: f32) -> Result<f32, String> {
        match self.config.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v.as_f64().map(|x| x as f32).ok_or_else(|| {
                format!(
                    "initializer {}: {key} = {v} is not supported (a number is)",
                    self.class
                )
            }),
        }
    }

    fn text(&self, key: &str) -> Option<&str> {
        self.config.get(key).and_then(Value::as_str)
    }

    fn mode(&self) -> Result<FanMode, String> {
        match self.text("mode").unwrap_or("fan_in") {
            "fan_in" => Ok(FanMode::FanIn),
            "fan_out" => Ok(FanMode::FanOut),
            "fan_avg" => Ok(FanMode::FanAvg),
            other => Err(format!(
                "initializer {}: mode = {other} is not supported",
                self.class
            )),
        }
    }

    fn distribution(&self) -> Result<Distribution, String> {
        // Keras 2 named the truncated normal "normal".
        match self.text("distribution").unwrap_or("truncated_normal") {
            "truncated_normal" | "normal" => Ok(Distribution::TruncatedNormal),
            "untruncated_normal" => Ok(Distribution::UntruncatedNormal),
            "uniform" => Ok(Distribution::Uniform),
            other => Err(format!(
                "initializer {}: distribution = {other} is not supported",
                self.class
            )),
        }
    }

    /// Refuses every setting `init` does not read. `seed` is accepted (see the module's note), as
    /// are the fan axes when null and Keras 2's float32 `dtype`.
    fn only_known(&self, init: Init) -> Result<(), String> {
        let own: &[&str] = match init {
            Init::VarianceScaling { .. } => &["scale", "mode", "distribution"],
            Init::Constant(_) => &["value"],
            Init::RandomNormal { .. } | Init::TruncatedNormal { .. } => &["mean", "stddev"],
            Init::RandomUniform { .. } => &["minval", "maxval"],
            _ => &[],
        };
        for (key, v) in self.config {
            let fine = own.contains(&key.as_str())
                || key == "seed"
                || (matches!(key.as_str(), "input_axes" | "output_axes") && v.is_null())
                || (key == "dtype" && (v.is_null() || v == "float32"));
            if !fine {
                return Err(format!(
                    "initializer {}: {key} = {v} is not supported",
                    self.class
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const N: usize = 1 << 20;

    /// `init` drawn over a tensor of `shape` with N values (the leading axis is sized to reach N).
    fn draw(init: Init, shape: &[usize]) -> Vec<f32> {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(7);
        let mut out = vec![0.0f32; N];
        init.fill(shape, &mut rng, &mut out);
        out
    }

    /// Mean, variance and largest |x - center| of `xs`.
    fn moments(xs: &[f32], center: f64) -> (f64, f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = xs
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n;
        let spread = xs
            .iter()
            .map(|&x| (f64::from(x) - center).abs())
            .fold(0.0, f64::max);
        (mean, var, spread)
    }

    /// The draws have the mean and variance asked for, within 6 standard errors of N samples (the
    /// sample variance's relative error is at most sqrt(2 / N) = 0.14%, so the check is 0.83%:
    /// dropping Keras' 0.8796 widening, a 29% change in variance, fails it). With a `bound`, they
    /// stay within it of the mean and reach within 2% of it; without (a normal), their largest
    /// distance from the mean is 4 to 6.5 standard deviations, as for 2^20 normal draws.
    fn check(init: Init, shape: &[usize], mean: f64, var: f64, bound: Option<f64>) {
        let (m, v, spread) = moments(&draw(init, shape), mean);
        let se_mean = (var / N as f64).sqrt();
        assert!(
            (m - mean).abs() < 6.0 * se_mean,
            "{init:?}: mean {m}, want {mean}"
        );
        let rel = (v / var - 1.0).abs();
        assert!(
            rel < 6.0 * (2.0 / N as f64).sqrt(),
            "{init:?}: variance {v}, want {var}"
        );
        let (low, high) = match bound {
            Some(b) => (0.98 * b, b * (1.0 + 1e-6)),
            None => (4.0 * var.sqrt(), 6.5 * var.sqrt()),
        };
        assert!(
            (low..=high).contains(&spread),
            "{init:?}: largest |x - mean| {spread}, want {low}..={high}"
        );
    }

    /// Variance of a standard normal truncated to (-2, 2): 0.8796^2.
    const TRUNC_VAR: f64 = TRUNCATED_STDDEV * TRUNCATED_STDDEV;

    #[test]
    fn fans_count_the_receptive_field_as_keras() {
        assert_eq!(compute_fans(&[3, 3, 16, 32]), (144, 288));
        assert_eq!(compute_fans(&[5, 7]), (5, 7));
        assert_eq!(compute_fans(&[10]), (10, 10));
        assert_eq!(compute_fans(&[]), (1, 1));
        assert_eq!(compute_fans(&[2, 3, 4, 5, 6]), (120, 144));
    }

    #[test]
    fn variance_scaling_initialisers_have_keras_variances_and_bounds() {
        // A conv kernel: fan_in 144, fan_out 288, fan_avg 216.
        let conv = [3, 3, 16, 32];
        let (fan_in, fan_avg) = (144.0, 216.0);
        let uniform = |var: f64| (var, (3.0 * var).sqrt());
        let truncated = |var: f64| (var, 2.0 * var.sqrt() / TRUNCATED_STDDEV);
        for (init, (var, bound)) in [
            (Init::GlorotUniform, uniform(1.0 / fan_avg)),
            (Init::HeUniform, uniform(2.0 / fan_in)),
            (Init::LecunUniform, uniform(1.0 / fan_in)),
            (Init::GlorotNormal, truncated(1.0 / fan_avg)),
            (Init::HeNormal, truncated(2.0 / fan_in)),
            (Init::LecunNormal, truncated(1.0 / fan_in)),
        ] {
            check(init, &conv, 0.0, var, Some(bound));
        }
        // fan_out, and the untruncated normal.
        let vs = Init::VarianceScaling {
            scale: 3.0,
            mode: FanMode::FanOut,
            distribution: Distribution::Uniform,
        };
        check(vs, &conv, 0.0, 3.0 / 288.0, Some((9.0f64 / 288.0).sqrt()));
        let normal = Init::VarianceScaling {
            scale: 0.5,
            mode: FanMode::FanIn,
            distribution: Distribution::UntruncatedNormal,
        };
        check(normal, &[64, 10], 0.0, 0.5 / 64.0, None);
    }

    #[test]
    fn plain_random_initialisers_have_their_settings() {
        check(
            Init::RandomNormal {
                mean: 0.5,
                stddev: 0.02,
            },
            &[N],
            0.5,
            0.0004,
            None,
        );
        check(
            Init::TruncatedNormal {
                mean: -1.0,
                stddev: 0.1,
            },
            &[N],
            -1.0,
            0.01 * TRUNC_VAR,
            Some(0.2),
        );
        check(
            Init::RandomUniform {
                minval: -0.5,
                maxval: 1.5,
            },
            &[N],
            0.5,
            4.0 / 12.0,
            Some(1.0),
        );
    }

    #[test]
    fn constants_fill_and_draw_nothing() {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(1);
        let before = rng.clone();
        let mut out = [9.0f32; 4];
        Init::Zeros.fill(&[4], &mut rng, &mut out);
        assert_eq!(out, [0.0; 4]);
        Init::Ones.fill(&[4], &mut rng, &mut out);
        assert_eq!(out, [1.0; 4]);
        Init::Constant(-2.5).fill(&[2, 2], &mut rng, &mut out);
        assert_eq!(out, [-2.5; 4]);
        assert_eq!(rng, before);
    }

    #[test]
    fn every_form_keras_writes_reads() {
        for (v, want) in [
            (json!("he_normal"), Init::HeNormal),
            (json!("glorot_uniform"), Init::GlorotUniform),
            (json!("zeros"), Init::Zeros),
            (json!("one"), Init::Ones),
            (
                json!({"class_name": "GlorotUniform", "config": {"seed": null}}),
                Init::GlorotUniform,
            ),
            (
                json!({"class_name": "VarianceScaling", "config": {"scale": 2.0, "mode": "fan_in",
                    "distribution": "normal", "seed": null}}),
                Init::VarianceScaling {
                    scale: 2.0,
                    mode: FanMode::FanIn,
                    distribution: Distribution::TruncatedNormal,
                },
            ),
            (
                json!({"module": "keras.initializers", "class_name": "HeNormal",
                    "config": {"seed": 3, "input_axes": null, "output_axes": null},
                    "registered_name": null}),
                Init::HeNormal,
            ),
            (
                json!({"module": "keras.initializers", "class_name": "RandomNormal",
                    "config": {"seed": null, "mean": 0.0, "stddev": 0.02}, "registered_name": null}),
                Init::RandomNormal {
                    mean: 0.0,
                    stddev: 0.02,
                },
            ),
            (
                json!({"class_name": "Constant", "config": {"value": 0.1}}),
                Init::Constant(0.1),
            ),
            (
                json!({"class_name": "RandomUniform", "config": {"dtype": "float32"}}),
                Init::RandomUniform {
                    minval: -0.05,
                    maxval: 0.05,
                },
            ),
        ] {
            assert_eq!(Init::from_keras(&v), Ok(want), "{v}");
        }
    }

    #[test]
    fn what_we_write_reads_back() {
        for init in [
            Init::GlorotUniform,
            Init::GlorotNormal,
            Init::HeNormal,
            Init::HeUniform,
            Init::LecunNormal,
            Init::LecunUniform,
            Init::VarianceScaling {
                scale: 0.5,
                mode: FanMode::FanAvg,
                distribution: Distribution::UntruncatedNormal,
            },
            Init::Zeros,
            Init::Ones,
            Init::Constant(0.25),
            Init::RandomNormal {
                mean: 1.0,
                stddev: 0.5,
            },
            Init::RandomUniform {
                minval: 0.0,
                maxval: 2.0,
            },
            Init::TruncatedNormal {
                mean: 0.0,
                stddev: 0.125,
            },
        ] {
            assert_eq!(Init::from_keras(&init.to_keras()), Ok(init));
            let stored = serde_json::to_value(init).unwrap();
            assert_eq!(serde_json::from_value::<Init>(stored).unwrap(), init);
        }
    }

    #[test]
    fn unknown_initialisers_and_settings_are_refused_by_name() {
        for (v, says) in [
            (
                json!("orthogonal"),
                "initializer orthogonal is not supported",
            ),
            (
                json!({"class_name": "Identity", "config": {"gain": 1.0}}),
                "initializer Identity is not supported",
            ),
            (
                json!({"class_name": "HeNormal", "config": {"input_axes": [0]}}),
                "input_axes = [0] is not supported",
            ),
            (
                json!({"class_name": "RandomNormal", "config": {"mean": 0.0, "sigma": 1.0}}),
                "sigma = 1.0 is not supported",
            ),
            (
                json!({"class_name": "VarianceScaling", "config": {"mode": "fan_max"}}),
                "mode = fan_max is not supported",
            ),
            (
                json!({"class_name": "RandomUniform", "config": {"minval": 1.0, "maxval": 1.0}}),
                "minval (1) must be below maxval (1)",
            ),
            (
                json!({"class_name": "RandomUniform", "config": {"minval": -3e38, "maxval": 3e38}}),
                "wider than float32 holds",
            ),
            (
                json!({"class_name": "RandomNormal", "config": {"stddev": -1.0}}),
                "stddev must not be negative",
            ),
            (
                json!({"module": "my_package", "class_name": "HeNormal", "config": {}}),
                "from module my_package is not supported",
            ),
            (
                json!({"class_name": "MyInit", "config": {}, "registered_name": "Custom>MyInit"}),
                "custom (registered) initializer MyInit",
            ),
        ] {
            let e = Init::from_keras(&v).unwrap_err();
            assert!(e.contains(says), "{v}: {e}");
        }
    }
}
