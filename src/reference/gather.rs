//! CPU twin of `shaders/gather.wgsl`.

/// Images `indices` of `data` (records of `image_bytes` bytes) as f32 / 255, with their labels.
pub fn gather_batch(
    data: &[u8],
    labels: &[u8],
    image_bytes: usize,
    indices: &[u32],
) -> (Vec<f32>, Vec<u32>) {
    let mut images = Vec::with_capacity(indices.len() * image_bytes);
    let mut out_labels = Vec::with_capacity(indices.len());
    for &i in indices {
        let i = i as usize;
        images.extend(
            data[i * image_bytes..(i + 1) * image_bytes]
                .iter()
                .map(|&b| b as f32 / 255.0),
        );
        out_labels.push(labels[i] as u32);
    }
    (images, out_labels)
}

use crate::kernels::gather::{AUGMENT_SALT, AUGMENT_UNIT, AugmentConsts};
use crate::reference::dropout::pcg;

/// One image's affine as the augmented gather applies it: Keras' parameters in fixed point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Affine {
    /// cos and sin of the angle, Q15.
    pub cos: i32,
    pub sin: i32,
    /// Zoom along columns and rows, Q15.
    pub zx: i32,
    pub zy: i32,
    /// Keras' tx (along columns) and ty (along rows), pixels in Q16.
    pub tx: i32,
    pub ty: i32,
    pub flip: bool,
}

impl Affine {
    /// Keras' `apply_affine_transform(x, theta, tx, ty, zx=zx, zy=zy)` (degrees, pixels), then a
    /// horizontal flip if `flip`, rounded to the kernel's fixed point.
    pub fn keras(theta: f64, tx: f64, ty: f64, zx: f64, zy: f64, flip: bool) -> Affine {
        let [cos, sin] = crate::data::augment::rotation_q15(theta);
        let q = |v: f64, bits: i32| (v * 2f64.powi(bits)).round() as i32;
        Affine {
            cos,
            sin,
            zx: q(zx, 15),
            zy: q(zy, 15),
            tx: q(tx, 16),
            ty: q(ty, 16),
            flip,
        }
    }

    /// The affine the kernel draws for batch slot `slot` at `step`: the shader's draws, word for word.
    pub fn draw(
        consts: &AugmentConsts,
        rotations: &[i32],
        seed: u64,
        step: u32,
        slot: u32,
    ) -> Affine {
        let key = pcg(pcg(pcg(pcg(seed as u32) ^ (seed >> 32) as u32) ^ AUGMENT_SALT) ^ step);
        let r = |j: u32| pcg(key ^ pcg(slot * 8 + j));
        let bits16 = |j: u32| r(j) >> 16;
        let mul_u16 = |a: u32, u: u32| (a >> 16) * u + (((a & 0xffff) * u) >> 16);
        let angle = (r(0) >> 20) as usize;
        let shift = |s: u32, u: u32| mul_u16(2 * s, u) as i32 - s as i32;
        let zoom = |u: u32| (consts.zoom_lo + ((consts.zoom_span * u) >> 16)) as i32;
        Affine {
            cos: rotations[2 * angle],
            sin: rotations[2 * angle + 1],
            zx: zoom(bits16(3)),
            zy: zoom(bits16(4)),
            tx: shift(consts.shift_x, bits16(1)),
            ty: shift(consts.shift_y, bits16(2)),
            flip: consts.flip == 1 && r(5) < 0x8000_0000,
        }
    }
}

/// floor(a * b / 2^15), as the shader computes it without overflow.
fn mul_q15(a: i32, b: i32) -> i32 {
    (a >> 15) * b + (((a & 0x7fff) * b) >> 15)
}

/// `image` (h x w x c bytes, channels-last) through `a`: bilinear, edges repeated, as the shader.
pub fn augment_image(image: &[u8], shape: [usize; 3], a: &Affine) -> Vec<f32> {
    let [h, w, c] = shape;
    assert_eq!(image.len(), h * w * c, "augment_image: image size");
    let (hi, wi) = (h as i32, w as i32);
    let mut out = Vec::with_capacity(image.len());
    for row in 0..hi {
        for col in 0..wi {
            let x = if a.flip { wi - 1 - col } else { col };
            // Keras' centre: (h - 1) / 2 on the column axis, (w - 1) / 2 on the row axis.
            let sx = mul_q15((2 * x - (hi - 1)) << 15, a.zx) + a.tx;
            let sy = mul_q15((2 * row - (wi - 1)) << 15, a.zy) + a.ty;
            let src_x = mul_q15(sx, a.cos) - mul_q15(sy, a.sin) + ((hi - 1) << 15);
            let src_y = mul_q15(sx, a.sin) + mul_q15(sy, a.cos) + ((wi - 1) << 15);
            let (x0, y0) = (src_x >> 16, src_y >> 16);
            let fx = (src_x & 0xffff) as u32 >> 4;
            let fy = (src_y & 0xffff) as u32 >> 4;
            let cx = [x0.clamp(0, wi - 1), (x0 + 1).clamp(0, wi - 1)].map(|v| v as usize);
            let cy = [y0.clamp(0, hi - 1), (y0 + 1).clamp(0, hi - 1)].map(|v| v as usize);
            for ch in 0..c {
                let px = |y: usize, x: usize| image[(y * w + x) * c + ch] as u32;
                let top = px(cy[0], cx[0]) * (4096 - fx) + px(cy[0], cx[1]) * fx;
                let bottom = px(cy[1], cx[0]) * (4096 - fx) + px(cy[1], cx[1]) * fx;
                let sum = top * (4096 - fy) + bottom * fy;
                out.push(((sum + 128) >> 8) as f32 * AUGMENT_UNIT);
            }
        }
    }
    out
}

/// Twin of `gather_batch_augmented`: images `indices` of `data`, each through the affine drawn for
/// its slot at `step`, with their labels.
#[allow(clippy::too_many_arguments)]
pub fn gather_batch_augmented(
    data: &[u8],
    labels: &[u8],
    shape: [usize; 3],
    indices: &[u32],
    consts: &AugmentConsts,
    rotations: &[i32],
    seed: u64,
    step: u32,
) -> (Vec<f32>, Vec<u32>) {
    let image_bytes = shape.iter().product::<usize>();
    let mut images = Vec::with_capacity(indices.len() * image_bytes);
    for (slot, &i) in indices.iter().enumerate() {
        let a = Affine::draw(consts, rotations, seed, step, slot as u32);
        let i = i as usize;
        images.extend(augment_image(
            &data[i * image_bytes..(i + 1) * image_bytes],
            shape,
            &a,
        ));
    }
    let out_labels = indices.iter().map(|&i| labels[i as usize] as u32).collect();
    (images, out_labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pixel the twin makes of `sum16` / 2^16 grey levels (a byte times 2^16 when exact).
    fn px(sum16: u32) -> f32 {
        sum16 as f32 * AUGMENT_UNIT
    }

    /// A 3 x 4 one-channel image, bytes 10 * (its row-major index + 1).
    fn image() -> Vec<u8> {
        (1..=12).map(|v| v * 10).collect()
    }

    fn expect(bytes: &[u8]) -> Vec<f32> {
        bytes.iter().map(|&b| px(b as u32 * 65536)).collect()
    }

    const IDENTITY: (f64, f64, f64, f64, f64) = (0.0, 0.0, 0.0, 1.0, 1.0);

    #[test]
    fn the_identity_and_a_pure_flip() {
        let (t, tx, ty, zx, zy) = IDENTITY;
        let x = image();
        let same = augment_image(&x, [3, 4, 1], &Affine::keras(t, tx, ty, zx, zy, false));
        assert_eq!(same, expect(&x));
        // Every pixel within 1 ulp of Keras' byte / 255.
        for (v, b) in same.iter().zip(&x) {
            assert!((v.to_bits() as i64 - (*b as f32 / 255.0).to_bits() as i64).abs() <= 1);
        }
        let flipped = augment_image(&x, [3, 4, 1], &Affine::keras(t, tx, ty, zx, zy, true));
        assert_eq!(
            flipped,
            expect(&[40, 30, 20, 10, 80, 70, 60, 50, 120, 110, 100, 90])
        );
    }

    #[test]
    fn a_quarter_turn_is_counterclockwise() {
        // 3 x 3, two channels: out[r][c] = in[c][2 - r] (the top row is the right column).
        let x: Vec<u8> = (0..18).map(|v| v * 7).collect();
        let got = augment_image(
            &x,
            [3, 3, 2],
            &Affine::keras(90.0, 0.0, 0.0, 1.0, 1.0, false),
        );
        let mut want = Vec::new();
        for r in 0..3 {
            for c in 0..3 {
                for ch in 0..2 {
                    want.push(x[(c * 3 + (2 - r)) * 2 + ch]);
                }
            }
        }
        assert_eq!(got, expect(&want));
    }

    #[test]
    fn shifts_move_tx_along_columns_and_ty_along_rows_repeating_the_edge() {
        let x = image();
        // tx = 1: each pixel takes its right neighbour; the last column repeats.
        let got = augment_image(
            &x,
            [3, 4, 1],
            &Affine::keras(0.0, 1.0, 0.0, 1.0, 1.0, false),
        );
        assert_eq!(
            got,
            expect(&[20, 30, 40, 40, 60, 70, 80, 80, 100, 110, 120, 120])
        );
        // ty = -1: each pixel takes the one above; the first row repeats.
        let got = augment_image(
            &x,
            [3, 4, 1],
            &Affine::keras(0.0, 0.0, -1.0, 1.0, 1.0, false),
        );
        assert_eq!(
            got,
            expect(&[10, 20, 30, 40, 10, 20, 30, 40, 50, 60, 70, 80])
        );
        // Half a pixel: the mean of two neighbours, exactly.
        let got = augment_image(
            &x,
            [3, 4, 1],
            &Affine::keras(0.0, 0.5, 0.0, 1.0, 1.0, false),
        );
        assert_eq!(got[0], px(15 * 65536));
        assert_eq!(got[3], px(40 * 65536));
    }

    #[test]
    fn a_zoom_samples_around_keras_centre() {
        // 4 x 4: column c samples 2 (c - 1.5) + 1.5 = 2c - 1.5, clamped into [0, 3].
        let x: Vec<u8> = (0..16).map(|v| v * 10).collect();
        let got = augment_image(
            &x,
            [4, 4, 1],
            &Affine::keras(0.0, 0.0, 0.0, 2.0, 1.0, false),
        );
        for r in 0..4 {
            let row = &x[r * 4..r * 4 + 4];
            let half = |a: u8, b: u8| px((a as u32 + b as u32) * 32768);
            let want = [
                px(row[0] as u32 * 65536),
                half(row[0], row[1]),
                half(row[2], row[3]),
                px(row[3] as u32 * 65536),
            ];
            assert_eq!(&got[r * 4..r * 4 + 4], &want, "row {r}");
        }
    }

    #[test]
    fn draws_follow_the_settings() {
        let aug = crate::data::augment::Augment::default();
        let consts = aug.consts(32, 32).unwrap();
        let table = aug.rotation_table();
        let draws: Vec<Affine> = (0..2000)
            .map(|slot| Affine::draw(&consts, &table, 7, 3, slot))
            .collect();
        let max_shift = (0.2 * 32.0 * 65536.0) as i32;
        let max_sin = (40f64.to_radians().sin() * 32768.0).round() as i32;
        for a in &draws {
            assert!(
                (-max_shift..max_shift).contains(&a.tx) && (-max_shift..max_shift).contains(&a.ty)
            );
            assert!((26214..39322).contains(&a.zx) && (26214..39322).contains(&a.zy));
            assert!(a.sin.abs() <= max_sin && a.cos >= (40f64.to_radians().cos() * 32768.0) as i32);
        }
        let flips = draws.iter().filter(|a| a.flip).count();
        assert!((900..1100).contains(&flips), "{flips} flips of 2000");
        let positive = draws.iter().filter(|a| a.sin > 0).count();
        assert!(
            (900..1100).contains(&positive),
            "{positive} positive angles of 2000"
        );
        // Another step or seed draws anew; the same ones draw the same.
        assert_ne!(draws[0], Affine::draw(&consts, &table, 7, 4, 0));
        assert_ne!(draws[0], Affine::draw(&consts, &table, 8, 3, 0));
        assert_eq!(draws[5], Affine::draw(&consts, &table, 7, 3, 5));
    }
}
