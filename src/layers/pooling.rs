//! What the pooling layers share. MaxPooling2D and AveragePooling2D: a window (`pool_size`,
//! `strides`, `padding`), its settings struct and constructor, read from and written to Keras'
//! config, its output size and the kernels' shape. GlobalMaxPooling2D and GlobalAveragePooling2D:
//! `keepdims` in Keras' config, the output shape and the one window the size of the image. Each
//! layer's module keeps what differs: its kernels and its CPU twin.

use serde_json::{Value, json};

use super::KerasEntry;
use super::image_input;
use super::keras::{malformed, padding_name};
use crate::keras::ConfigError;
use crate::model::Shape;
use crate::shape::{Padding, Pool2dShape};

/// A pooling window as a layer stores it.
pub(super) type Window = ([usize; 2], [usize; 2], Padding);

/// A windowed pooling layer `$name`'s settings struct, Keras' constructor and setters, its window,
/// its kernels' shape and its Keras reader: all but its `LayerKind`, which says how it pools.
macro_rules! windowed_layer {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        pub struct $name {
            pub pool_size: [usize; 2],
            pub strides: [usize; 2],
            pub padding: $crate::shape::Padding,
        }

        #[doc = concat!("Keras' constructor: `", stringify!($name), "::new([2, 2])` is `",
            stringify!($name), "((2, 2))`: strides the pool size,")]
        /// 'valid' padding, each changed by the setter of its name.
        impl $name {
            pub fn new(pool_size: [usize; 2]) -> $name {
                $name {
                    pool_size,
                    strides: pool_size,
                    padding: $crate::shape::Padding::Valid,
                }
            }

            pub fn strides(self, strides: [usize; 2]) -> $name {
                $name { strides, ..self }
            }

            pub fn padding(self, padding: $crate::shape::Padding) -> $name {
                $name { padding, ..self }
            }
        }

        impl $name {
            fn window(&self) -> $crate::layers::pooling::Window {
                (self.pool_size, self.strides, self.padding)
            }

            /// The kernels' shape on a valid image `input` for a batch of `n`.
            fn shape(
                &self,
                input: &$crate::model::Shape,
                n: usize,
            ) -> $crate::shape::Pool2dShape {
                let class = $crate::layers::LayerKind::class_name(self);
                $crate::layers::pooling::kernel_shape(class, self.window(), input, n)
            }

            pub(super) fn from_keras(
                e: &$crate::layers::KerasEntry,
            ) -> Result<$crate::layers::Layer, $crate::keras::ConfigError> {
                let (pool_size, strides, padding) = $crate::layers::pooling::from_keras(e)?;
                Ok($crate::layers::Layer::$name($name {
                    pool_size,
                    strides,
                    padding,
                }))
            }
        }
    };
}
pub(super) use windowed_layer;

/// Reads the window from a Keras config: `pool_size` (default 2x2), `strides` (default the pool
/// size) and `padding`; channels-last float32 only.
pub(super) fn from_keras(e: &KerasEntry) -> Result<Window, ConfigError> {
    e.float32()?;
    e.channels_last()?;
    let pool_size = e.pair("pool_size")?.unwrap_or([2, 2]);
    Ok((
        pool_size,
        e.pair("strides")?.unwrap_or(pool_size),
        e.padding()?,
    ))
}

/// The window's settings in Keras 3's config.
pub(super) fn keras_config((pool_size, strides, padding): Window) -> Value {
    json!({
        "pool_size": pool_size,
        "padding": padding_name(padding),
        "strides": strides,
        "data_format": "channels_last"
    })
}

/// The output shape of the window over `input`, or why `class` cannot take it.
pub(super) fn output_shape(class: &str, window: Window, input: &Shape) -> Result<Shape, String> {
    let (h, w, c) = image_input(class, input)?;
    let ([ph, pw], [sh, sw], padding) = window;
    if ph == 0 || pw == 0 || sh == 0 || sw == 0 {
        return Err("pool_size and strides must be positive".into());
    }
    match padding {
        Padding::Same => Ok(Shape::Image {
            h: h.div_ceil(sh),
            w: w.div_ceil(sw),
            c,
        }),
        Padding::Valid if h >= ph && w >= pw => Ok(Shape::Image {
            h: (h - ph) / sh + 1,
            w: (w - pw) / sw + 1,
            c,
        }),
        Padding::Valid => Err(format!("pool {ph}x{pw} is larger than the input {h}x{w}")),
    }
}

/// The kernels' shape on a valid image `input` (one `output_shape` accepted) for a batch of `n`.
pub(super) fn kernel_shape(class: &str, window: Window, input: &Shape, n: usize) -> Pool2dShape {
    let Shape::Image { h, w, c } = *input else {
        unreachable!("{class} on a flat input passed output_shape");
    };
    let ([pool_h, pool_w], [stride_h, stride_w], padding) = window;
    Pool2dShape {
        n,
        h,
        w,
        c,
        pool_h,
        pool_w,
        stride_h,
        stride_w,
        padding,
    }
}

/// What both global poolings read from Keras: float32, channels_last, and `keepdims` (absent in
/// Keras 2 before 2.6, where it meant false).
pub(super) fn global_settings(e: &KerasEntry) -> Result<bool, ConfigError> {
    e.float32()?;
    e.channels_last()?;
    match e.get("keepdims") {
        None => Ok(false),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| malformed(format!("{}: 'keepdims' must be true or false", e.what()))),
    }
}

/// A global pooling's settings in Keras 3's config.
pub(super) fn global_keras_config(keepdims: bool) -> Value {
    json!({"data_format": "channels_last", "keepdims": keepdims})
}

/// The output of a global pooling of `input`: [c], or [1, 1, c] with `keepdims`.
pub(super) fn global_output(class: &str, input: &Shape, keepdims: bool) -> Result<Shape, String> {
    let (_, _, c) = image_input(class, input)?;
    Ok(if keepdims {
        Shape::Image { h: 1, w: 1, c }
    } else {
        Shape::Flat(c)
    })
}

/// The pooling with one window covering a valid image `input`, for a batch of `n`.
pub(super) fn global_window(class: &str, input: &Shape, n: usize) -> Pool2dShape {
    let Shape::Image { h, w, c } = *input else {
        unreachable!("{class} on a flat input passed output_shape");
    };
    Pool2dShape {
        n,
        h,
        w,
        c,
        pool_h: h,
        pool_w: w,
        stride_h: h,
        stride_w: w,
        padding: Padding::Valid,
    }
}
