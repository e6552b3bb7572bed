//! `samples.png`: test images with their predicted and true labels. The first section holds the most
//! confident mistakes (what the model is surest about and still gets wrong); the second the first
//! test images in order, right and wrong alike, for an unbiased look.
//!
//! `augmented.png`: when the run augmented its training batches, the first test images each as
//! stored and as eight draws of the augmentation made them, drawn by the gather kernel's CPU twin.

use image::{Rgb, RgbImage};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::metrics::Prediction;
use super::{FONT, ReportError};
use crate::data::Split;
use crate::data::augment::Augment;
use crate::reference::gather::{Affine, augment_image};

/// Tiles per row.
pub const COLUMNS: usize = 8;
/// At most this many of each section (two rows each).
pub const PER_SECTION: usize = 16;
/// Thumbnails are scaled by a whole factor to about this many pixels on their longer side.
const THUMB: usize = 96;
const TITLE_H: u32 = 44;
const SECTION_H: u32 = 34;
const TEXT_H: u32 = 44;
const PAD: u32 = 10;

const RIGHT: RGBColor = RGBColor(30, 130, 50);
const WRONG: RGBColor = RGBColor(200, 30, 30);

/// Where things go in `samples.png`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SamplesLayout {
    pub scale: u32,
    pub tile_w: u32,
    pub tile_h: u32,
    pub width: u32,
    pub height: u32,
}

fn rows(n: usize) -> u32 {
    n.div_ceil(COLUMNS) as u32
}

/// The picture's size for images of `height`×`width` and sections of `mistakes` and `first` tiles.
pub fn samples_layout(height: usize, width: usize, mistakes: usize, first: usize) -> SamplesLayout {
    let scale = (THUMB / height.max(width).max(1)).max(1) as u32;
    let tile_w = (width as u32 * scale).max(128) + PAD;
    let tile_h = height as u32 * scale + TEXT_H + PAD;
    let sections = [mistakes, first];
    let body: u32 = sections.iter().map(|&n| SECTION_H + rows(n) * tile_h).sum();
    SamplesLayout {
        scale,
        tile_w,
        tile_h,
        width: tile_w * COLUMNS as u32 + 2 * PAD,
        height: TITLE_H + body + PAD,
    }
}

/// The two sections' tiles: (most confident mistakes, first test images).
pub fn pick(preds: &[Prediction], mistakes: &[Prediction]) -> (Vec<Prediction>, Vec<Prediction>) {
    let worst: Vec<Prediction> = mistakes.iter().take(PER_SECTION).copied().collect();
    let first: Vec<Prediction> = preds.iter().take(PER_SECTION).copied().collect();
    (worst, first)
}

/// One image as RGB: one or two channels are shown as grey (the first channel), three or more as
/// their first three.
fn pixel(img: &[u8], channels: usize, i: usize) -> Rgb<u8> {
    let p = &img[i * channels..(i + 1) * channels];
    if channels >= 3 {
        Rgb([p[0], p[1], p[2]])
    } else {
        Rgb([p[0]; 3])
    }
}

/// Draws `img` (`width` pixels a row, `channels` bytes a pixel) into `canvas` at `(x0, y0)` as a
/// `th` x `tw` thumbnail, each pixel a `scale` x `scale` block: nearest-neighbour upscaling keeps
/// the pixels crisp (32 px images are meant to look blocky).
fn put_scaled(
    canvas: &mut RgbImage,
    img: &[u8],
    [th, tw, scale]: [u32; 3],
    width: usize,
    channels: usize,
    (x0, y0): (u32, u32),
) {
    for y in 0..th {
        for x in 0..tw {
            let src = (y / scale) as usize * width + (x / scale) as usize;
            canvas.put_pixel(x0 + x, y0 + y, pixel(img, channels, src));
        }
    }
}

/// A picture's title, at its top left.
fn title(text: &str) -> Text<'_, (i32, i32), &str> {
    Text::new(
        text,
        (PAD as i32, 12),
        TextStyle::from((FONT, 20).into_font()).pos(Pos::new(HPos::Left, VPos::Top)),
    )
}

/// Names are cut to fit a tile; about 8 pixels a character at the labels' size.
pub(crate) fn fit(name: &str, max_chars: usize) -> String {
    if name.chars().count() <= max_chars {
        name.to_string()
    } else {
        let mut s: String = name.chars().take(max_chars.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

#[allow(clippy::too_many_arguments)]
pub fn draw_samples(
    test: &Split,
    height: usize,
    width: usize,
    channels: usize,
    names: &[String],
    worst: &[Prediction],
    first: &[Prediction],
    mistakes_total: usize,
) -> Result<RgbImage, ReportError> {
    let l = samples_layout(height, width, worst.len(), first.len());
    let mut canvas = RgbImage::from_pixel(l.width, l.height, Rgb([255, 255, 255]));
    let (tw, th) = (width as u32 * l.scale, height as u32 * l.scale);
    // Where each tile's thumbnail starts, section after section; the text is drawn below later.
    let mut tiles: Vec<(Prediction, u32, u32)> = Vec::new();
    let mut headers: Vec<(String, u32)> = Vec::new();
    let mut y = TITLE_H;
    let sections = [
        (
            worst,
            if mistakes_total == 0 {
                "no mistakes on the test set".to_string()
            } else {
                format!(
                    "most confident mistakes ({} of {mistakes_total} mistakes)",
                    worst.len()
                )
            },
        ),
        (first, format!("the first {} test images", first.len())),
    ];
    for (section, header) in sections {
        headers.push((header, y));
        y += SECTION_H;
        for (k, p) in section.iter().enumerate() {
            let x = PAD + (k % COLUMNS) as u32 * l.tile_w + (l.tile_w - tw) / 2;
            let ty = y + (k / COLUMNS) as u32 * l.tile_h;
            tiles.push((*p, x, ty));
        }
        y += rows(section.len()) * l.tile_h;
    }
    for &(p, x0, y0) in &tiles {
        put_scaled(
            &mut canvas,
            test.image(p.index),
            [th, tw, l.scale],
            width,
            channels,
            (x0, y0),
        );
    }
    let (w, h) = (l.width, l.height);
    {
        let root = BitMapBackend::with_buffer(&mut canvas, (w, h)).into_drawing_area();
        let err = |e: DrawingAreaErrorKind<_>| ReportError::Plot(format!("{e:?}"));
        root.draw(&title(
            "test images: predicted class and confidence (softmax), true class below",
        ))
        .map_err(err)?;
        for (text, y) in &headers {
            root.draw(&Text::new(
                text.clone(),
                (PAD as i32, *y as i32 + 8),
                TextStyle::from((FONT, 17).into_font())
                    .color(&RGBColor(60, 60, 60))
                    .pos(Pos::new(HPos::Left, VPos::Top)),
            ))
            .map_err(err)?;
        }
        let max_chars = (l.tile_w as usize - 4) / 8;
        for &(p, x0, y0) in &tiles {
            let (x0, y0) = (x0 as i32, y0 as i32);
            let color = if p.correct() { RIGHT } else { WRONG };
            // A mistake gets a thick red frame; a right answer a thin green one.
            let stroke = if p.correct() { 1 } else { 4 };
            root.draw(&Rectangle::new(
                [(x0 - 2, y0 - 2), (x0 + tw as i32 + 1, y0 + th as i32 + 1)],
                color.stroke_width(stroke),
            ))
            .map_err(err)?;
            let cx = x0 + tw as i32 / 2;
            let mark = if p.correct() { "✓" } else { "✗" };
            let conf = format!(" {:.0}%", 100.0 * p.confidence);
            let label = fit(
                &names[p.predicted],
                max_chars.saturating_sub(conf.len() + 2),
            );
            root.draw(&Text::new(
                format!("{mark} {label}{conf}"),
                (cx, y0 + th as i32 + 9),
                TextStyle::from((FONT, 15).into_font())
                    .color(&color)
                    .pos(Pos::new(HPos::Center, VPos::Top)),
            ))
            .map_err(err)?;
            root.draw(&Text::new(
                format!("true: {}", fit(&names[p.label], max_chars - 6)),
                (cx, y0 + th as i32 + 28),
                TextStyle::from((FONT, 14).into_font())
                    .color(&RGBColor(70, 70, 70))
                    .pos(Pos::new(HPos::Center, VPos::Top)),
            ))
            .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(canvas)
}

/// Test images in `augmented.png`, one per row.
pub const AUGMENTED_IMAGES: usize = 4;
/// Augmentations of each, beside the image as stored.
pub const AUGMENTATIONS: usize = 8;

/// The first `AUGMENTED_IMAGES` test images (fewer if the set is smaller), each as stored and then
/// as the augmented gather makes it in batch slot `row` at steps 0 to `AUGMENTATIONS - 1`, drawn by
/// its CPU twin (bit for bit the GPU's) and rounded back to bytes: a row of 1 + `AUGMENTATIONS`
/// images of `shape` per test image.
pub fn augmented_tiles(
    test: &Split,
    shape: [usize; 3],
    aug: &Augment,
    seed: u64,
) -> Result<Vec<Vec<u8>>, ReportError> {
    let consts = aug
        .consts(shape[0], shape[1])
        .map_err(ReportError::Invalid)?;
    let table = aug.rotation_table();
    let mut tiles = Vec::new();
    for row in 0..AUGMENTED_IMAGES.min(test.len()) {
        let img = test.image(row);
        tiles.push(img.to_vec());
        for step in 0..AUGMENTATIONS as u32 {
            let a = Affine::draw(&consts, &table, seed, step, row as u32);
            let values = augment_image(img, shape, &a);
            tiles.push(values.iter().map(|v| (v * 255.0).round() as u8).collect());
        }
    }
    Ok(tiles)
}

/// Where things go in `augmented.png`: tiles scaled like samples.png's, a row of 1 +
/// `AUGMENTATIONS` per test image below the title and the settings line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AugmentedLayout {
    pub scale: u32,
    pub tile_w: u32,
    pub tile_h: u32,
    /// The first tile's top-left corner.
    pub left: u32,
    pub top: u32,
    pub width: u32,
    pub height: u32,
}

impl AugmentedLayout {
    /// The top-left corner of tile `k` (row-major, `augmented_tiles`' order).
    pub fn origin(&self, k: usize) -> (u32, u32) {
        let per_row = 1 + AUGMENTATIONS;
        (
            self.left + (k % per_row) as u32 * self.tile_w,
            self.top + (k / per_row) as u32 * self.tile_h,
        )
    }
}

/// `augmented.png`'s layout for images of `height`×`width` and `rows` test images.
pub fn augmented_layout(height: usize, width: usize, rows: usize) -> AugmentedLayout {
    let scale = (THUMB / height.max(width).max(1)).max(1) as u32;
    let tile_w = width as u32 * scale + PAD;
    let tile_h = height as u32 * scale + PAD;
    AugmentedLayout {
        scale,
        tile_w,
        tile_h,
        left: PAD,
        top: TITLE_H + SECTION_H,
        // At least wide enough for the settings line.
        width: (tile_w * (1 + AUGMENTATIONS as u32) + 2 * PAD).max(1000),
        height: TITLE_H + SECTION_H + rows as u32 * tile_h + PAD,
    }
}

/// The tiles of `augmented_tiles` as a grid: a row per test image, the stored image first (framed)
/// and its augmentations after it.
pub fn draw_augmented(
    tiles: &[Vec<u8>],
    shape: [usize; 3],
    aug: &Augment,
) -> Result<RgbImage, ReportError> {
    let [height, width, channels] = shape;
    let per_row = 1 + AUGMENTATIONS;
    let rows = tiles.len().div_ceil(per_row);
    let l = augmented_layout(height, width, rows);
    let mut canvas = RgbImage::from_pixel(l.width, l.height, Rgb([255, 255, 255]));
    let (tw, th) = (width as u32 * l.scale, height as u32 * l.scale);
    let origin = |k: usize| l.origin(k);
    for (k, img) in tiles.iter().enumerate() {
        put_scaled(
            &mut canvas,
            img,
            [th, tw, l.scale],
            width,
            channels,
            origin(k),
        );
    }
    let (w, h) = (l.width, l.height);
    {
        let root = BitMapBackend::with_buffer(&mut canvas, (w, h)).into_drawing_area();
        let err = |e: DrawingAreaErrorKind<_>| ReportError::Plot(format!("{e:?}"));
        root.draw(&title(
            "training augmentation: each test image as stored, then 8 random affines",
        ))
        .map_err(err)?;
        root.draw(&Text::new(
            fit(&aug.describe(), (w as usize - 2 * PAD as usize) / 7),
            (PAD as i32, TITLE_H as i32 + 6),
            TextStyle::from((FONT, 14).into_font())
                .color(&RGBColor(60, 60, 60))
                .pos(Pos::new(HPos::Left, VPos::Top)),
        ))
        .map_err(err)?;
        for k in (0..tiles.len()).step_by(per_row) {
            let (x0, y0) = origin(k);
            let (x0, y0) = (x0 as i32, y0 as i32);
            root.draw(&Rectangle::new(
                [(x0 - 2, y0 - 2), (x0 + tw as i32 + 1, y0 + th as i32 + 1)],
                RGBColor(60, 60, 60).stroke_width(2),
            ))
            .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(canvas)
}
