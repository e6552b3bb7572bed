//! GlobalAveragePooling2D: the mean of each channel over the whole image, [h, w, c] to [c] (or
//! [1, 1, c] with `keepdims`, the same memory). It is average pooling with one window the size of
//! the input, so it runs the AveragePooling2D kernels and twin with that window.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::average_pooling2d::AvgPool;
use super::pooling::{global_keras_config, global_output, global_settings, global_window};
use super::{CpuStep, GpuOp, KerasEntry, Layer, LayerKind, Lowering};
use crate::keras::ConfigError;
use crate::model::Shape;
use crate::reference;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GlobalAveragePooling2D {
    /// Keras' `keepdims`: the output is [1, 1, c] instead of [c].
    pub keepdims: bool,
}

impl GlobalAveragePooling2D {
    pub(super) fn from_keras(e: &KerasEntry) -> Result<Layer, ConfigError> {
        Ok(Layer::GlobalAveragePooling2D(GlobalAveragePooling2D {
            keepdims: global_settings(e)?,
        }))
    }
}

impl LayerKind for GlobalAveragePooling2D {
    fn class_name(&self) -> &'static str {
        "GlobalAveragePooling2D"
    }

    fn base_name(&self) -> &'static str {
        "global_average_pooling2d"
    }

    fn output_shape(&self, input: &Shape) -> Result<Shape, String> {
        global_output(self.class_name(), input, self.keepdims)
    }

    fn keras_config(&self) -> Value {
        global_keras_config(self.keepdims)
    }

    fn loop_steps(&self, input: &Shape, max_batch: usize) -> usize {
        global_window(self.class_name(), input, max_batch).window_loop_steps()
    }

    fn lower(&self, l: &Lowering) -> Vec<Box<dyn GpuOp>> {
        vec![Box::new(AvgPool {
            s: global_window(self.class_name(), l.input, 0),
        })]
    }

    fn cpu_forward(&self, s: &CpuStep, input: &Shape, x: &[f64], _: &[&[f64]]) -> Vec<f64> {
        let shape = global_window(self.class_name(), input, s.batch);
        reference::avgpool2d::avgpool2d_forward(x, shape)
    }

    fn cpu_backward(
        &self,
        s: &CpuStep,
        input: &Shape,
        _: &[f64],
        dy: &[f64],
        _: &[&[f64]],
    ) -> (Vec<f64>, Vec<Vec<f64>>) {
        let shape = global_window(self.class_name(), input, s.batch);
        (
            reference::avgpool2d::avgpool2d_backward(dy, shape),
            Vec::new(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::GlobalMaxPooling2D;
    use super::*;
    use crate::reference::gradcheck::{check_gradient, seeded};

    /// Both global poolings' twins as the model calls them: output shapes, the values, and dx
    /// against finite differences of the forward.
    #[test]
    fn global_twins_pool_whole_images_and_their_backward_matches_finite_differences() {
        let (input, batch) = (Shape::Image { h: 3, w: 5, c: 4 }, 2);
        let step = CpuStep {
            batch,
            train: true,
            seed: 0,
            step: 0,
            index: 0,
        };
        let x = seeded(batch * input.len(), 7);
        let dy = seeded(batch * 4, 8);
        // Each kind with the reduction it applies to one channel of one image.
        type Reduce = fn(&[f64]) -> f64;
        let kinds: [(&dyn LayerKind, Reduce); 2] = [
            (&GlobalAveragePooling2D { keepdims: false }, |v| {
                v.iter().sum::<f64>() / v.len() as f64
            }),
            (&GlobalMaxPooling2D { keepdims: true }, |v| {
                v.iter().cloned().fold(f64::MIN, f64::max)
            }),
        ];
        for (kind, reduce) in kinds {
            let y = kind.cpu_forward(&step, &input, &x, &[]);
            // Channel c of image n reduces x[n, .., .., c].
            for n in 0..batch {
                for c in 0..4 {
                    let cells: Vec<f64> = (0..15).map(|p| x[(n * 15 + p) * 4 + c]).collect();
                    assert_eq!(y[n * 4 + c], reduce(&cells), "{}", kind.class_name());
                }
            }
            let (dx, grads) = kind.cpu_backward(&step, &input, &x, &dy, &[]);
            assert!(grads.is_empty());
            let loss = |x: &[f64]| -> f64 {
                let y = kind.cpu_forward(&step, &input, x, &[]);
                y.iter().zip(&dy).map(|(y, g)| y * g).sum()
            };
            check_gradient(kind.class_name(), &x, &dx, loss);
        }
        let keep = GlobalMaxPooling2D { keepdims: true }.output_shape(&input);
        assert_eq!(keep, Ok(Shape::Image { h: 1, w: 1, c: 4 }));
        let flat = GlobalAveragePooling2D { keepdims: false }.output_shape(&input);
        assert_eq!(flat, Ok(Shape::Flat(4)));
        let e = GlobalAveragePooling2D { keepdims: false }.output_shape(&Shape::Flat(4));
        assert!(e.unwrap_err().contains("needs an image input"));
    }
}
