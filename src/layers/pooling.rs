//! What MaxPooling2D and AveragePooling2D share: a window (`pool_size`, `strides`, `padding`), read
//! from and written to Keras' config, its output size and the kernels' shape.

use serde_json::{Value, json};

use super::KerasEntry;
use super::image_input;
use super::keras::padding_name;
use crate::keras::ConfigError;
use crate::model::Shape;
use crate::shape::{Padding, Pool2dShape};

/// A pooling window as a layer stores it.
pub(super) type Window = ([usize; 2], [usize; 2], Padding);

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
