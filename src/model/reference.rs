//! A whole training step on the CPU in f64: each layer's CPU twin (see [`crate::layers`]) in turn,
//! then the loss and, backwards, each layer's gradients. It is the reference the GPU's step is tested
//! against, layer for layer, with the same dropout masks (same seed, step and per-layer salt).

use super::Sequential;
use crate::layers::CpuStep;
use crate::reference::softmax_cross_entropy;

/// What one forward and backward pass produces.
#[derive(Clone, Debug)]
pub struct StepResult {
    pub logits: Vec<f64>,
    /// Summed over the batch (the mean loss is `loss_sum / batch`).
    pub loss_sum: f64,
    pub correct: u32,
    /// Gradients of the mean loss, laid out like the flat parameter vector (padding is zero).
    pub grads: Vec<f64>,
    /// The parameter vector after the step's state updates (BatchNormalization's moving
    /// statistics, when `train`); the optimizer's update of the trainable tensors is not applied.
    pub params: Vec<f64>,
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
    let shapes = model.output_shapes().unwrap();
    let classes = model.classes().unwrap();
    // Each layer's parameter tensors, as its `params()` lists them.
    let layer_params = |i: usize| -> Vec<&[f64]> {
        tensors
            .iter()
            .filter(|t| t.layer == i)
            .map(|t| &params[t.offset..t.offset + t.len])
            .collect()
    };
    let step_of = |index| CpuStep {
        batch,
        train,
        seed,
        step,
        index,
    };
    let mut input_shapes = vec![model.input()];
    input_shapes.extend(shapes.iter().cloned());
    // inputs[i] is layer i's input; the last entry is the logits (softmax belongs to the loss).
    let mut inputs = vec![x.to_vec()];
    let mut updated = params.to_vec();
    for (i, l) in model.layers.iter().enumerate() {
        let kind = l.layer.kind();
        let (input, x) = (&input_shapes[i], &inputs[i]);
        if train {
            let state = kind.cpu_update_state(&step_of(i), input, x, &layer_params(i));
            let frozen = tensors.iter().filter(|t| t.layer == i && !t.trainable);
            for (t, v) in frozen.zip(state) {
                updated[t.offset..t.offset + t.len].copy_from_slice(&v);
            }
        }
        let y = kind.cpu_forward(&step_of(i), input, x, &layer_params(i));
        inputs.push(y);
    }
    let logits = inputs.pop().unwrap();
    let (loss_sum, correct, dlogits) =
        softmax_cross_entropy::softmax_cross_entropy(&logits, labels, batch, classes);
    let mut grads = vec![0.0; params.len()];
    if train {
        let mut dy = dlogits;
        for (i, l) in model.layers.iter().enumerate().rev() {
            let (dx, layer_grads) = l.layer.kind().cpu_backward(
                &step_of(i),
                &input_shapes[i],
                &inputs[i],
                &dy,
                &layer_params(i),
            );
            for (t, g) in tensors.iter().filter(|t| t.layer == i).zip(layer_grads) {
                grads[t.offset..t.offset + t.len].copy_from_slice(&g);
            }
            dy = dx;
        }
    }
    StepResult {
        logits,
        loss_sum,
        correct,
        grads,
        params: updated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{Activation, ActivationLayer, Conv2D, Dense, Flatten, Layer, MaxPooling2D};
    use crate::reference::gradcheck::{check_gradient, seeded};
    use crate::shape::Padding;

    /// A small model with every layer kind, dropout off (finite differences need a fixed function).
    fn small_model() -> Sequential {
        Sequential::from_layers(
            "small",
            [5, 6, 2],
            vec![
                Conv2D::new(3, [3, 3], Padding::Same).into(),
                ActivationLayer::new(Activation::Relu).into(),
                MaxPooling2D::new([2, 2]).into(),
                Conv2D::new(2, [2, 2], Padding::Valid)
                    .activation(Activation::Relu)
                    .into(),
                Flatten.into(),
                Dense::new(4).activation(Activation::Relu).into(),
                Dense::new(3).activation(Activation::Softmax).into(),
            ],
        )
    }

    /// BatchNormalization after a convolution and after a dense layer (one without gamma and beta),
    /// training: its gradients flow through the batch's statistics, and its moving statistics move.
    #[test]
    fn whole_model_with_batchnorm_gradient_matches_finite_differences() {
        use crate::layers::BatchNormalization;
        let mut model = small_model();
        model.layers.insert(
            1,
            crate::model::NamedLayer {
                name: "batch_normalization".into(),
                layer: Layer::BatchNormalization(BatchNormalization::default()),
            },
        );
        model.layers.insert(
            7,
            crate::model::NamedLayer {
                name: "batch_normalization_1".into(),
                layer: Layer::BatchNormalization(BatchNormalization {
                    center: false,
                    scale: false,
                    ..BatchNormalization::default()
                }),
            },
        );
        let batch = 3;
        let params: Vec<f64> = model
            .init_params(5)
            .unwrap()
            .iter()
            .zip(seeded(model.param_words().unwrap(), 6))
            .map(|(&p, r)| p as f64 + 0.05 * r)
            .collect();
        let x: Vec<f64> = seeded(batch * 5 * 6 * 2, 7);
        let labels = [2u32, 0, 1];
        let r = forward_backward(&model, &params, &x, &labels, batch, 1, 0, true);
        let loss = |p: &[f64]| {
            forward_backward(&model, p, &x, &labels, batch, 1, 0, true).loss_sum / batch as f64
        };
        check_gradient(
            "model with batch norm, all parameters",
            &params,
            &r.grads,
            loss,
        );
        let moved = model
            .param_tensors()
            .unwrap()
            .iter()
            .filter(|t| !t.trainable)
            .all(|t| (t.offset..t.offset + t.len).all(|i| r.params[i] != params[i]));
        assert!(moved, "every moving statistic moves in a training step");
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
