//! Data augmentation settings: Keras' `ImageDataGenerator` recipe from the book (rotation, shifts,
//! zoom, horizontal flips, nearest fill), and their quantization into the integers the gather kernel
//! (`shaders/gather.wgsl`, `gather_augmented`) and its twin (`reference::gather`) compute with.
//!
//! Each training image gets a random affine drawn on the GPU from the run's seed, the step and its
//! slot in the batch. The geometry is Keras' `apply_affine_transform` (see the shader's header for its
//! two quirks on non-square images); the arithmetic is fixed point so every device and the twin
//! agree bit for bit: angles come from a table of 4096 (cos, sin) pairs spread over the range, zooms
//! and shifts from 16 random bits each.

use serde::{Deserialize, Serialize};

use crate::kernels::gather::{ANGLES, AugmentConsts, MAX_AUGMENT_SIDE};

/// `ImageDataGenerator`'s augmentation arguments that we support.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    /// Degrees: each image turns by a uniform angle in [-range, range].
    pub rotation_range: f64,
    /// Fraction of the width: shift by a uniform fraction in [-range, range) of it.
    pub width_shift_range: f64,
    /// Fraction of the height.
    pub height_shift_range: f64,
    /// Zoom factors are drawn in [1 - range, 1 + range), independently along each axis.
    pub zoom_range: f64,
    /// Flip half of the images left to right.
    pub horizontal_flip: bool,
    /// Points outside the image take the nearest edge pixel: the only mode we implement.
    pub fill_mode: FillMode,
}

/// Keras' `fill_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FillMode {
    Nearest,
}

impl Default for Augment {
    /// The book's recipe.
    fn default() -> Self {
        Augment {
            rotation_range: 40.0,
            width_shift_range: 0.2,
            height_shift_range: 0.2,
            zoom_range: 0.2,
            horizontal_flip: true,
            fill_mode: FillMode::Nearest,
        }
    }
}

impl Augment {
    /// Refuses values the fixed-point arithmetic cannot hold, naming the setting. Keras reads shift
    /// ranges of 1 and more as pixels; we take only fractions, and zooms below 2.
    pub fn check(&self) -> Result<(), String> {
        let degrees = self.rotation_range;
        if !(degrees.is_finite() && (0.0..=180.0).contains(&degrees)) {
            return Err(format!(
                "--rotation-range {degrees}: must be at least 0 and at most 180 (degrees)"
            ));
        }
        for (name, v) in [
            ("--width-shift-range", self.width_shift_range),
            ("--height-shift-range", self.height_shift_range),
            ("--zoom-range", self.zoom_range),
        ] {
            if !(v.is_finite() && (0.0..1.0).contains(&v)) {
                return Err(format!(
                    "{name} {v}: must be at least 0 and below 1 (a fraction)"
                ));
            }
        }
        Ok(())
    }

    /// The integers the kernel draws with, for images of `height` x `width`. Keras scales the height
    /// shift by the height and the width shift by the width.
    pub fn consts(&self, height: usize, width: usize) -> Result<AugmentConsts, String> {
        self.check()?;
        if height == 0 || width == 0 || height > MAX_AUGMENT_SIDE || width > MAX_AUGMENT_SIDE {
            return Err(format!(
                "augmenting {height}x{width} images: each side must be 1 to {MAX_AUGMENT_SIDE} pixels"
            ));
        }
        let q = |v: f64, bits: i32| (v * 2f64.powi(bits)).round() as u32;
        Ok(AugmentConsts {
            zoom_lo: q(1.0 - self.zoom_range, 15),
            zoom_span: q(2.0 * self.zoom_range, 15),
            shift_x: q(self.height_shift_range * height as f64, 16),
            shift_y: q(self.width_shift_range * width as f64, 16),
            flip: self.horizontal_flip as u32,
        })
    }

    /// The angles the kernel picks from: `ANGLES` (cos, sin) pairs in Q15, at the midpoints of
    /// `ANGLES` equal steps over [-range, range] degrees, flattened.
    pub fn rotation_table(&self) -> Vec<i32> {
        (0..ANGLES)
            .flat_map(|k| {
                let t = self.rotation_range * ((2 * k + 1) as f64 / ANGLES as f64 - 1.0);
                rotation_q15(t)
            })
            .collect()
    }

    /// One line per setting, for the report and the summary of a run.
    pub fn describe(&self) -> String {
        format!(
            "rotation_range={}, width_shift_range={}, height_shift_range={}, zoom_range={}, \
             horizontal_flip={}, fill_mode=nearest",
            self.rotation_range,
            self.width_shift_range,
            self.height_shift_range,
            self.zoom_range,
            self.horizontal_flip
        )
    }
}

/// cos and sin of `degrees` in Q15, rounded.
pub fn rotation_q15(degrees: f64) -> [i32; 2] {
    let r = degrees.to_radians();
    let q = |v: f64| (v * 32768.0).round() as i32;
    [q(r.cos()), q(r.sin())]
}

impl std::str::FromStr for FillMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "nearest" => Ok(FillMode::Nearest),
            "constant" | "reflect" | "wrap" => Err(format!(
                "--fill-mode {s}: only 'nearest' is implemented (the book's choice)"
            )),
            _ => Err(format!(
                "--fill-mode {s}: Keras' modes are constant, nearest, reflect and wrap; only \
                 'nearest' is implemented"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_book_recipe_passes_and_out_of_range_values_are_named() {
        assert!(Augment::default().check().is_ok());
        for (a, name) in [
            (
                Augment {
                    zoom_range: 1.0,
                    ..Augment::default()
                },
                "--zoom-range",
            ),
            (
                Augment {
                    width_shift_range: -0.1,
                    ..Augment::default()
                },
                "--width-shift-range",
            ),
            (
                Augment {
                    height_shift_range: 3.0,
                    ..Augment::default()
                },
                "--height-shift-range",
            ),
            (
                Augment {
                    rotation_range: f64::NAN,
                    ..Augment::default()
                },
                "--rotation-range",
            ),
        ] {
            let e = a.check().unwrap_err();
            assert!(e.starts_with(name), "{e}");
        }
        let e = Augment::default().consts(2049, 32).unwrap_err();
        assert!(e.contains("2049x32"), "{e}");
        assert!("wrap".parse::<FillMode>().unwrap_err().contains("nearest"));
        assert_eq!("nearest".parse::<FillMode>(), Ok(FillMode::Nearest));
    }

    #[test]
    fn consts_quantize_the_book_recipe() {
        let c = Augment::default().consts(32, 28).unwrap();
        // 0.8 and 0.4 in Q15; 0.2 * 32 and 0.2 * 28 pixels in Q16.
        assert_eq!((c.zoom_lo, c.zoom_span), (26214, 13107));
        assert_eq!((c.shift_x, c.shift_y), (419430, 367002));
        assert_eq!(c.flip, 1);
        let t = Augment::default().rotation_table();
        assert_eq!(t.len(), 2 * ANGLES as usize);
        // The first angle is -40 + 80 / 8192 degrees; the table is symmetric about 0.
        assert_eq!(&t[..2], &rotation_q15(-40.0 + 40.0 / ANGLES as f64));
        let n = t.len();
        assert_eq!((t[0], -t[1]), (t[n - 2], t[n - 1]));
    }
}
