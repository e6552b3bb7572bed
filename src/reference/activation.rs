//! CPU twin of `shaders/activation.wgsl`.

use crate::shape::ActivationFn;

/// y = max(x, 0). NaN stays NaN, as in the shader.
pub fn relu_forward(x: &[f64]) -> Vec<f64> {
    activation_forward(ActivationFn::Relu, x)
}

/// dx = dy where x > 0, else 0: the gradient at exactly x = 0 is 0, as TensorFlow's ReluGrad.
pub fn relu_backward(x: &[f64], dy: &[f64]) -> Vec<f64> {
    activation_backward(ActivationFn::Relu, x, dy)
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// y = f(x), elementwise.
pub fn activation_forward(f: ActivationFn, x: &[f64]) -> Vec<f64> {
    x.iter()
        .map(|&v| match f {
            ActivationFn::Relu => {
                if v <= 0.0 {
                    0.0
                } else {
                    v
                }
            }
            ActivationFn::Sigmoid => sigmoid(v),
            ActivationFn::Tanh => v.tanh(),
            ActivationFn::Elu { alpha } if v <= 0.0 => alpha as f64 * v.exp_m1(),
            ActivationFn::LeakyRelu { slope } if v <= 0.0 => slope as f64 * v,
            ActivationFn::Elu { .. } | ActivationFn::LeakyRelu { .. } => v,
        })
        .collect()
}

/// dx = f'(x) dy, elementwise, from the forward's input x. At exactly x = 0 the gradients are
/// TensorFlow's, the left limits: ReluGrad gives 0, ELU alpha * dy, LeakyReluGrad slope * dy.
pub fn activation_backward(f: ActivationFn, x: &[f64], dy: &[f64]) -> Vec<f64> {
    assert_eq!(
        x.len(),
        dy.len(),
        "activation_backward: x and dy differ in length"
    );
    x.iter()
        .zip(dy)
        .map(|(&v, &g)| match f {
            ActivationFn::Relu => {
                if v > 0.0 {
                    g
                } else {
                    0.0
                }
            }
            ActivationFn::Sigmoid => {
                let s = sigmoid(v);
                g * s * (1.0 - s)
            }
            ActivationFn::Tanh => g * (1.0 - v.tanh().powi(2)),
            ActivationFn::Elu { alpha } if v <= 0.0 => g * alpha as f64 * v.exp(),
            ActivationFn::LeakyRelu { slope } if v <= 0.0 => g * slope as f64,
            ActivationFn::Elu { .. } | ActivationFn::LeakyRelu { .. } => g,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::gradcheck::{check_gradient, seeded};

    /// Every function the shader has, with parameters other than the defaults.
    const ALL: [ActivationFn; 6] = [
        ActivationFn::Relu,
        ActivationFn::Sigmoid,
        ActivationFn::Tanh,
        ActivationFn::Elu { alpha: 1.0 },
        ActivationFn::Elu { alpha: 0.5 },
        ActivationFn::LeakyRelu { slope: 0.2 },
    ];

    #[test]
    fn backward_matches_finite_differences_away_from_zero() {
        // ReLU, ELU and leaky ReLU have a kink at 0: keep every input at least 0.05 away so the
        // central difference (step 1e-6) never straddles it. Inputs span [-3, 3], past the bends of
        // sigmoid and tanh.
        let x: Vec<f64> = seeded(40, 7)
            .iter()
            .map(|&v| {
                let v = 3.0 * v;
                if v.abs() < 0.05 {
                    v.signum() * 0.05 + v
                } else {
                    v
                }
            })
            .collect();
        assert!(x.iter().any(|&v| v < -1.0) && x.iter().any(|&v| v > 1.0));
        let dy = seeded(40, 8);
        for f in ALL {
            let loss = |x: &[f64]| -> f64 {
                activation_forward(f, x)
                    .iter()
                    .zip(&dy)
                    .map(|(y, g)| y * g)
                    .sum()
            };
            let dx = activation_backward(f, &x, &dy);
            check_gradient(&format!("{f:?} dx"), &x, &dx, loss);
        }
    }

    #[test]
    fn relu_gradient_is_zero_at_exactly_zero() {
        let x = [0.0, -0.0, 1e-30, -1e-30];
        let dy = [3.0, 3.0, 3.0, 3.0];
        assert_eq!(relu_forward(&x), vec![0.0, 0.0, 1e-30, 0.0]);
        assert_eq!(relu_backward(&x, &dy), vec![0.0, 0.0, 3.0, 0.0]);
        assert!(relu_forward(&[f64::NAN])[0].is_nan());
    }

    #[test]
    fn gradients_at_zero_are_tensorflows() {
        let at_zero = |f| activation_backward(f, &[0.0], &[3.0])[0];
        assert_eq!(at_zero(ActivationFn::Elu { alpha: 0.5 }), 1.5);
        assert_eq!(
            at_zero(ActivationFn::LeakyRelu { slope: 0.2 }),
            3.0 * 0.2f32 as f64
        );
        assert_eq!(at_zero(ActivationFn::Sigmoid), 0.75);
        assert_eq!(at_zero(ActivationFn::Tanh), 3.0);
    }
}
