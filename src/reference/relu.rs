//! CPU twin of `shaders/relu.wgsl`.

/// y = max(x, 0). NaN stays NaN, as in the shader.
pub fn relu_forward(x: &[f64]) -> Vec<f64> {
    x.iter().map(|&v| if v <= 0.0 { 0.0 } else { v }).collect()
}

/// dx = dy where x > 0, else 0: the gradient at exactly x = 0 is 0, as TensorFlow's ReluGrad.
pub fn relu_backward(x: &[f64], dy: &[f64]) -> Vec<f64> {
    assert_eq!(
        x.len(),
        dy.len(),
        "relu_backward: x and dy differ in length"
    );
    x.iter()
        .zip(dy)
        .map(|(&v, &g)| if v > 0.0 { g } else { 0.0 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::gradcheck::{check_gradient, seeded};

    #[test]
    fn relu_backward_matches_finite_differences_away_from_zero() {
        // ReLU has a kink at 0: keep every input at least 0.05 away so the central difference (step
        // 1e-6) never straddles it.
        let x: Vec<f64> = seeded(40, 7)
            .iter()
            .map(|&v| {
                if v.abs() < 0.05 {
                    v.signum() * 0.05 + v
                } else {
                    v
                }
            })
            .collect();
        assert!(x.iter().any(|&v| v < 0.0) && x.iter().any(|&v| v > 0.0));
        let dy = seeded(40, 8);
        let loss = |x: &[f64]| -> f64 { relu_forward(x).iter().zip(&dy).map(|(y, g)| y * g).sum() };
        check_gradient("relu dx", &x, &relu_backward(&x, &dy), loss);
    }

    #[test]
    fn relu_gradient_is_zero_at_exactly_zero() {
        let x = [0.0, -0.0, 1e-30, -1e-30];
        let dy = [3.0, 3.0, 3.0, 3.0];
        assert_eq!(relu_forward(&x), vec![0.0, 0.0, 1e-30, 0.0]);
        assert_eq!(relu_backward(&x, &dy), vec![0.0, 0.0, 3.0, 0.0]);
        assert!(relu_forward(&[f64::NAN])[0].is_nan());
    }
}
