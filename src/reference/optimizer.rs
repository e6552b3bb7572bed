//! CPU twin of `shaders/optimizer.wgsl`: Keras 3's update rules (keras/src/optimizers/{sgd,rmsprop,adam}.py)
//! in f64, with the hyperparameters read as the Python floats a Keras user writes.

use crate::optimizer::{Optimizer, python_float};

/// One step of `opt` at `step` (counted from 0) on `params`, in place. `state` holds
/// `opt.state_buffers()` vectors as long as `params`, in `Optimizer::state_buffers` order, zero before
/// the first step. The learning rate is the optimizer's own (a schedule would pass another).
pub fn update(
    opt: &Optimizer,
    params: &mut [f64],
    grads: &[f64],
    state: &mut [Vec<f64>],
    step: u32,
) {
    assert_eq!(
        params.len(),
        grads.len(),
        "optimizer: gradients and parameters differ in length"
    );
    assert_eq!(
        state.len(),
        opt.state_buffers(),
        "optimizer: {opt:?} keeps {} state vectors",
        opt.state_buffers()
    );
    assert!(
        state.iter().all(|s| s.len() == params.len()),
        "optimizer: a state vector has the wrong length"
    );
    let lr = python_float(opt.lr());
    match *opt {
        Optimizer::Sgd {
            momentum, nesterov, ..
        } => {
            let momentum = python_float(momentum);
            for (i, w) in params.iter_mut().enumerate() {
                let g = grads[i];
                if momentum != 0.0 {
                    let m = &mut state[0][i];
                    *m = *m * momentum - g * lr;
                    *w += if nesterov { *m * momentum - g * lr } else { *m };
                } else {
                    *w -= g * lr;
                }
            }
        }
        Optimizer::RmsProp {
            rho,
            momentum,
            epsilon,
            centered,
            legacy_epsilon,
            ..
        } => {
            let (rho, momentum, eps) = (
                python_float(rho),
                python_float(momentum),
                python_float(epsilon),
            );
            let has_momentum = momentum > 0.0;
            // State order: velocity, momentum (if any), average gradient (if centered).
            let avg_index = if has_momentum { 2 } else { 1 };
            for (i, w) in params.iter_mut().enumerate() {
                let g = grads[i];
                let v = rho * state[0][i] + (1.0 - rho) * g * g;
                state[0][i] = v;
                let second = if centered {
                    let a = rho * state[avg_index][i] + (1.0 - rho) * g;
                    state[avg_index][i] = a;
                    v - a * a
                } else {
                    v
                };
                let increment = if legacy_epsilon {
                    lr * g / (second.sqrt() + eps)
                } else {
                    lr * g / (second + eps).sqrt()
                };
                if has_momentum {
                    let m = momentum * state[1][i] + increment;
                    state[1][i] = m;
                    *w -= m;
                } else {
                    *w -= increment;
                }
            }
        }
        Optimizer::Adam {
            beta1,
            beta2,
            epsilon,
            amsgrad,
            ..
        } => {
            let (b1, b2, eps) = (
                python_float(beta1),
                python_float(beta2),
                python_float(epsilon),
            );
            let t = step as f64 + 1.0;
            let alpha = lr * (1.0 - b2.powf(t)).sqrt() / (1.0 - b1.powf(t));
            for (i, w) in params.iter_mut().enumerate() {
                let g = grads[i];
                let m = state[0][i] + (g - state[0][i]) * (1.0 - b1);
                let v = state[1][i] + (g * g - state[1][i]) * (1.0 - b2);
                state[0][i] = m;
                state[1][i] = v;
                let v = if amsgrad {
                    state[2][i] = state[2][i].max(v);
                    state[2][i]
                } else {
                    v
                };
                *w -= m * alpha / (v.sqrt() + eps);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keras' own docstring example (keras/src/optimizers/rmsprop.py): RMSprop(learning_rate=0.1),
    /// var = 10, loss = var^2 / 2 so the gradient is 10; after one step var == 9.683772.
    #[test]
    fn rmsprop_reproduces_the_keras_docstring_example() {
        let opt = Optimizer::RmsProp {
            lr: 0.1,
            rho: 0.9,
            momentum: 0.0,
            epsilon: 1e-7,
            centered: false,
            legacy_epsilon: false,
        };
        let (mut w, mut state) = (vec![10.0], vec![vec![0.0]]);
        update(&opt, &mut w, &[10.0], &mut state, 0);
        // v = 0.1 * 100 = 10; w = 10 - 0.1 * 10 / sqrt(10 + 1e-7) = 10 - 0.31622776...
        assert!((state[0][0] - 10.0).abs() < 1e-6);
        assert!((w[0] - 9.683772).abs() < 5e-7, "{}", w[0]);
    }

    /// Keras 3 SGD docstring: velocity = momentum * velocity - lr * g; w = w + velocity (Nesterov:
    /// w + momentum * velocity - lr * g), checked over two steps by hand.
    #[test]
    fn sgd_momentum_and_nesterov_by_hand() {
        let opt = Optimizer::Sgd {
            lr: 0.5,
            momentum: 0.5,
            nesterov: false,
        };
        let (mut w, mut s) = (vec![1.0], vec![vec![0.0]]);
        update(&opt, &mut w, &[1.0], &mut s, 0); // m = -0.5, w = 0.5
        update(&opt, &mut w, &[1.0], &mut s, 1); // m = -0.25 - 0.5 = -0.75, w = -0.25
        assert_eq!((w[0], s[0][0]), (-0.25, -0.75));
        let nesterov = Optimizer::Sgd {
            lr: 0.5,
            momentum: 0.5,
            nesterov: true,
        };
        let (mut w, mut s) = (vec![1.0], vec![vec![0.0]]);
        update(&nesterov, &mut w, &[1.0], &mut s, 0); // m = -0.5, w = 1 - 0.25 - 0.5 = 0.25
        assert_eq!((w[0], s[0][0]), (0.25, -0.5));
    }

    /// Adam's first step moves every weight by about lr * sign(g) (m / sqrt(v) = g / |g| after bias
    /// correction), the property that makes its first steps scale-free.
    #[test]
    fn adam_first_step_is_lr_times_sign() {
        let opt = Optimizer::adam_default();
        let mut w = vec![0.0, 0.0];
        let mut s = vec![vec![0.0; 2], vec![0.0; 2]];
        update(&opt, &mut w, &[3.0, -0.02], &mut s, 0);
        // Epsilon shrinks the step of a small gradient a little: 0.02 * sqrt(0.001) = 6.3e-4 against 1e-7.
        assert!(
            (w[0] + 0.001).abs() < 1e-8 && (w[1] - 0.001).abs() < 2e-7,
            "{w:?}"
        );
    }
}
