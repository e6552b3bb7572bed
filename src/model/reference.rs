//! A whole training step on the CPU, composed from the kernels' CPU twins in f64: the reference the
//! GPU's step is tested against, layer for layer, with the same dropout masks (same seed, step and
//! per-layer salt).

use super::{Activation, Layer, Sequential, Shape};
use crate::reference::{activation, conv2d, dropout, matmul, maxpool2d, softmax_cross_entropy};
use crate::shape::{Conv2dShape, Pool2dShape};

/// What one forward and backward pass produces.
#[derive(Clone, Debug)]
pub struct StepResult {
    pub logits: Vec<f64>,
    /// Summed over the batch (the mean loss is `loss_sum / batch`).
    pub loss_sum: f64,
    pub correct: u32,
    /// Gradients of the mean loss, laid out like the flat parameter vector (padding is zero).
    pub grads: Vec<f64>,
}

/// What a layer's backward needs from its forward.
struct Cache {
    input: Vec<f64>,
    input_shape: Shape,
    /// Before the layer's own activation, when it has one.
    pre_activation: Option<Vec<f64>>,
    argmax: Option<Vec<u32>>,
}

fn conv_shape(layer: &Layer, input: &Shape, n: usize) -> Conv2dShape {
    layer.conv_shape(input, n).expect("validated model")
}

fn pool_shape(layer: &Layer, input: &Shape, n: usize) -> Pool2dShape {
    layer.pool_shape(input, n).expect("validated model")
}

/// Forward pass (dropout on when `train`), loss and, when `train`, gradients.
#[allow(clippy::too_many_arguments)]
pub fn forward_backward(
    model: &Sequential,
    params: &[f64],
    x: &[f64],
    labels: &[u32],
    batch: usize,
    seed: u64,
    step: u32,
    train: bool,
) -> StepResult {
    model.validate().expect("reference needs a valid model");
    let tensors = model.param_tensors().unwrap();
    let param = |name: String| {
        let t = tensors.iter().find(|t| t.name == name).unwrap();
        (t.offset, t.len)
    };
    let slice = |(o, l): (usize, usize)| &params[o..o + l];
    let shapes = model.output_shapes().unwrap();
    let classes = model.classes().unwrap();
    let mut caches = Vec::new();
    let mut cur = x.to_vec();
    let mut input_shape = model.input();
    for (index, (l, shape)) in model.layers.iter().zip(&shapes).enumerate() {
        let input = cur.clone();
        let mut pre_activation = None;
        let mut argmax = None;
        let (mut y, act) = match &l.layer {
            Layer::Conv2D { activation, .. } => {
                let s = conv_shape(&l.layer, &input_shape, batch);
                let w = slice(param(format!("{}/kernel", l.name)));
                let b = slice(param(format!("{}/bias", l.name)));
                (conv2d::conv2d_forward(&input, w, b, s), *activation)
            }
            Layer::Dense { units, activation } => {
                let w = slice(param(format!("{}/kernel", l.name)));
                let b = slice(param(format!("{}/bias", l.name)));
                (
                    matmul::dense_forward(&input, w, b, batch, input_shape.len(), *units),
                    *activation,
                )
            }
            Layer::MaxPooling2D { .. } => {
                let (y, am) =
                    maxpool2d::maxpool2d_forward(&input, pool_shape(&l.layer, &input_shape, batch));
                argmax = Some(am);
                (y, Activation::Linear)
            }
            Layer::Dropout { rate } if train && *rate > 0.0 => (
                dropout::dropout_forward(&input, seed, step, index as u32, *rate),
                Activation::Linear,
            ),
            Layer::Dropout { .. } | Layer::Flatten => (input.clone(), Activation::Linear),
            Layer::Activation { activation } => (input.clone(), *activation),
        };
        if act == Activation::Relu {
            let z = y;
            y = activation::relu_forward(&z);
            pre_activation = Some(z);
        }
        // Softmax is the last layer's and belongs to the loss: `y` stays the logits.
        caches.push(Cache {
            input,
            input_shape: input_shape.clone(),
            pre_activation,
            argmax,
        });
        cur = y;
        input_shape = shape.clone();
    }
    let logits = cur;
    let (loss_sum, correct, dlogits) =
        softmax_cross_entropy::softmax_cross_entropy(&logits, labels, batch, classes);
    let mut grads = vec![0.0; params.len()];
    if !train {
        return StepResult {
            logits,
            loss_sum,
            correct,
            grads,
        };
    }
    let mut dy = dlogits;
    for (index, (l, cache)) in model.layers.iter().zip(&caches).enumerate().rev() {
        if let Some(z) = &cache.pre_activation {
            dy = activation::relu_backward(z, &dy);
        }
        let mut put = |name: String, g: &[f64]| {
            let (o, len) = param(name);
            grads[o..o + len].copy_from_slice(g);
        };
        dy = match &l.layer {
            Layer::Conv2D { .. } => {
                let s = conv_shape(&l.layer, &cache.input_shape, batch);
                let w = slice(param(format!("{}/kernel", l.name)));
                let (dx, dw, db) = conv2d::conv2d_backward(&cache.input, w, &dy, s);
                put(format!("{}/kernel", l.name), &dw);
                put(format!("{}/bias", l.name), &db);
                dx
            }
            Layer::Dense { units, .. } => {
                let w = slice(param(format!("{}/kernel", l.name)));
                let (dx, dw, db) = matmul::dense_backward(
                    &cache.input,
                    w,
                    &dy,
                    batch,
                    cache.input_shape.len(),
                    *units,
                );
                put(format!("{}/kernel", l.name), &dw);
                put(format!("{}/bias", l.name), &db);
                dx
            }
            Layer::MaxPooling2D { .. } => maxpool2d::maxpool2d_backward(
                &dy,
                cache.argmax.as_ref().unwrap(),
                pool_shape(&l.layer, &cache.input_shape, batch),
            ),
            Layer::Dropout { rate } if *rate > 0.0 => {
                dropout::dropout_backward(&dy, seed, step, index as u32, *rate)
            }
            Layer::Activation {
                activation: Activation::Relu,
            } => activation::relu_backward(&cache.input, &dy),
            _ => dy,
        };
    }
    StepResult {
        logits,
        loss_sum,
        correct,
        grads,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::gradcheck::{check_gradient, seeded};
    use crate::shape::Padding;

    /// A small model with every layer kind, dropout off (finite differences need a fixed function).
    fn small_model() -> Sequential {
        Sequential::from_layers(
            "small",
            [5, 6, 2],
            vec![
                Layer::Conv2D {
                    filters: 3,
                    kernel_size: [3, 3],
                    padding: Padding::Same,
                    activation: Activation::Linear,
                },
                Layer::Activation {
                    activation: Activation::Relu,
                },
                Layer::MaxPooling2D {
                    pool_size: [2, 2],
                    strides: [2, 2],
                    padding: Padding::Valid,
                },
                Layer::Conv2D {
                    filters: 2,
                    kernel_size: [2, 2],
                    padding: Padding::Valid,
                    activation: Activation::Relu,
                },
                Layer::Flatten,
                Layer::Dense {
                    units: 4,
                    activation: Activation::Relu,
                },
                Layer::Dense {
                    units: 3,
                    activation: Activation::Softmax,
                },
            ],
        )
    }

    #[test]
    fn whole_model_gradient_matches_finite_differences() {
        let model = small_model();
        let batch = 2;
        let params: Vec<f64> = model
            .init_params(3)
            .unwrap()
            .iter()
            .zip(seeded(model.param_words().unwrap(), 9))
            // Non-zero biases too, so ReLUs sit away from their kink.
            .map(|(&p, r)| p as f64 + 0.05 * r)
            .collect();
        let x: Vec<f64> = seeded(batch * 5 * 6 * 2, 4);
        let labels = [2u32, 0];
        let r = forward_backward(&model, &params, &x, &labels, batch, 1, 0, true);
        let loss = |p: &[f64]| {
            forward_backward(&model, p, &x, &labels, batch, 1, 0, true).loss_sum / batch as f64
        };
        check_gradient("small model, all parameters", &params, &r.grads, loss);
    }
}
