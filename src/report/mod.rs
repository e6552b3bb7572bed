//! What the model learned, as pictures and a table: training curves, the test set's confusion
//! matrix, per-class precision/recall/F1/accuracy with the worst classes called out, sample
//! predictions with the most confident mistakes, and one self-contained HTML page with all of it.
//!
//! Everything is computed on the host from the history and the test logits
//! (`Trainer::evaluate_with_logits`), so nothing here needs a GPU. [`write_report`] is the entry point.

mod charts;
mod html;
pub mod metrics;
mod samples;

use std::path::{Path, PathBuf};
use std::sync::Once;

use image::{ImageEncoder, RgbImage};
use plotters::prelude::*;

use crate::data::Split;
use crate::model::io::{ModelFileError, write_atomic};
use crate::train::fit::EpochLog;

pub use charts::{CURVES_SIZE, ConfusionLayout, confusion_layout};
pub use metrics::{ClassStats, Confusion, Prediction};
pub use samples::{
    AUGMENTATIONS, AUGMENTED_IMAGES, AugmentedLayout, COLUMNS, PER_SECTION, SamplesLayout,
    augmented_layout, augmented_tiles, samples_layout,
};

/// The family every chart asks for. The bundled font is registered under this name so the SVG,
/// which names the family instead of embedding glyphs, falls back to the viewer's sans-serif.
pub(crate) const FONT: &str = "sans-serif";

/// DejaVu Sans cut down to Latin-1, Latin Extended-A and a few symbols (30 kB; see
/// `FONT-LICENSE.md`). Bundled because plotters' system-font path needs fontconfig and freetype,
/// which headless machines and CI lack.
static FONT_BYTES: &[u8] = include_bytes!("DejaVuSans-subset.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a known-good TrueType file, so failure here is a build defect.
        if plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_err() {
            panic!("the bundled font does not parse");
        }
    });
}

pub const CURVES_PNG: &str = "curves.png";
pub const CURVES_SVG: &str = "curves.svg";
pub const CONFUSION_PNG: &str = "confusion.png";
pub const PER_CLASS_CSV: &str = "per_class.csv";
pub const SAMPLES_PNG: &str = "samples.png";
pub const AUGMENTED_PNG: &str = "augmented.png";
pub const REPORT_HTML: &str = "report.html";

/// What the report is made from.
#[derive(Clone, Debug)]
pub struct ReportInputs<'a> {
    /// Keras' History, one line per epoch; may be empty (a model without a history) and may lack
    /// validation metrics (validation_split 0).
    pub history: &'a [EpochLog],
    pub class_names: &'a [String],
    /// The split the logits were computed on (normally the test set), images HWC.
    pub test: &'a Split,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    /// [test.len(), class_names.len()], in the split's order.
    pub logits: &'a [f32],
    /// Shown on the page as given, e.g. ("epochs", "20"), ("batch size", "128"), ("data", "cifar10").
    pub settings: Vec<(String, String)>,
    /// The GPU the run used, as the CLI prints it.
    pub adapter: String,
    /// Wall time of the run.
    pub seconds: f64,
    /// The run's augmentation and seed: adds augmented.png, test images as training saw them.
    pub augment: Option<(&'a crate::data::augment::Augment, u64)>,
}

/// What was written and what it says.
#[derive(Clone, Debug)]
pub struct ReportSummary {
    /// Every file written, in the order above (curves.png, curves.svg, confusion.png,
    /// per_class.csv, samples.png, augmented.png when the run augmented, report.html).
    pub files: Vec<PathBuf>,
    /// The per-class table, worst classes called out, ready to print.
    pub table: String,
    pub stats: Vec<ClassStats>,
    pub confusion: Confusion,
    /// Classes called out as the worst, worst first.
    pub worst: Vec<usize>,
    /// Overall test accuracy from the logits.
    pub accuracy: f64,
    /// Images shown in samples.png's two sections: (most confident mistakes, first images).
    pub samples: (Vec<usize>, Vec<usize>),
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write the report: {0}")]
    Invalid(String),
    #[error(transparent)]
    Write(#[from] ModelFileError),
    #[error("cannot encode {file}: {source}")]
    Encode {
        file: String,
        source: image::ImageError,
    },
    #[error("drawing failed: {0}")]
    Plot(String),
}

fn check(inputs: &ReportInputs) -> Result<usize, ReportError> {
    let classes = inputs.class_names.len();
    let bad = |m: String| Err(ReportError::Invalid(m));
    if classes == 0 {
        return bad("no class names".into());
    }
    if classes > 256 {
        return bad(format!(
            "{classes} classes; labels are bytes, so at most 256"
        ));
    }
    let n = inputs.test.len();
    if n == 0 {
        return bad("the test set is empty".into());
    }
    let image_bytes = inputs.height * inputs.width * inputs.channels;
    if image_bytes == 0 || inputs.test.images.len() != n * image_bytes {
        return bad(format!(
            "{} bytes of images for {n} images of {}x{}x{}",
            inputs.test.images.len(),
            inputs.height,
            inputs.width,
            inputs.channels
        ));
    }
    if inputs.logits.len() != n * classes {
        return bad(format!(
            "{} logits for {n} images and {classes} classes (expected {})",
            inputs.logits.len(),
            n * classes
        ));
    }
    if let Some(l) = inputs.test.labels.iter().find(|&&l| l as usize >= classes) {
        return bad(format!("label {l} out of range for {classes} classes"));
    }
    Ok(classes)
}

fn png(file: &str, img: &RgbImage) -> Result<Vec<u8>, ReportError> {
    let mut out = Vec::new();
    // Charts are mostly flat colour: the best compression halves them for a moment's extra work.
    image::codecs::png::PngEncoder::new_with_quality(
        &mut out,
        image::codecs::png::CompressionType::Best,
        image::codecs::png::FilterType::Adaptive,
    )
    .write_image(
        img.as_raw(),
        img.width(),
        img.height(),
        image::ExtendedColorType::Rgb8,
    )
    .map_err(|source| ReportError::Encode {
        file: file.to_string(),
        source,
    })?;
    Ok(out)
}

/// Draws into a white RGB picture of `size` with plotters and returns it.
fn bitmap(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<(), ReportError>,
) -> Result<RgbImage, ReportError> {
    let mut img = RgbImage::new(size.0, size.1);
    {
        let root = BitMapBackend::with_buffer(&mut img, size).into_drawing_area();
        draw(&root)?;
    }
    Ok(img)
}

/// The curves as SVG text (the same drawing as curves.png, scalable for slides and papers).
pub fn curves_svg(history: &[EpochLog]) -> Result<String, ReportError> {
    register_font();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CURVES_SIZE).into_drawing_area();
        charts::draw_curves(&root, history)?;
    }
    Ok(svg)
}

/// Writes curves.png, curves.svg, confusion.png, per_class.csv, samples.png, augmented.png (when
/// `inputs.augment` is set) and report.html into
/// `dir` (created if missing), each atomically (a temporary name, then a rename), and returns the
/// table to print. Fails before writing anything if the inputs do not fit together.
pub fn write_report(dir: &Path, inputs: &ReportInputs) -> Result<ReportSummary, ReportError> {
    let classes = check(inputs)?;
    register_font();
    let labels = &inputs.test.labels;
    let names = inputs.class_names;
    let preds = metrics::predictions(inputs.logits, labels, classes);
    let predicted: Vec<usize> = preds.iter().map(|p| p.predicted).collect();
    let confusion = Confusion::new(&predicted, labels, classes);
    let stats = metrics::class_stats(&confusion, &predicted, labels, names);
    let worst = metrics::worst_classes(&stats);
    let table = metrics::table(&stats, &confusion, &worst);
    let csv = metrics::csv(&stats, &confusion);

    let curves = bitmap(CURVES_SIZE, |root| {
        charts::draw_curves(root, inputs.history)
    })?;
    let curves_png = png(CURVES_PNG, &curves)?;
    let curves_svg = curves_svg(inputs.history)?;

    let longest = names.iter().map(|s| s.chars().count()).max().unwrap_or(1);
    let layout = confusion_layout(classes, longest);
    let matrix = bitmap((layout.width, layout.height), |root| {
        charts::draw_confusion(root, &confusion, names)
    })?;
    let confusion_png = png(CONFUSION_PNG, &matrix)?;

    let mistakes = metrics::confident_mistakes(&preds);
    let (worst_shown, first_shown) = samples::pick(&preds, &mistakes);
    let grid = samples::draw_samples(
        inputs.test,
        inputs.height,
        inputs.width,
        inputs.channels,
        names,
        &worst_shown,
        &first_shown,
        mistakes.len(),
    )?;
    let samples_png = png(SAMPLES_PNG, &grid)?;
    let augmented_png = match inputs.augment {
        Some((aug, seed)) => {
            let shape = [inputs.height, inputs.width, inputs.channels];
            let tiles = samples::augmented_tiles(inputs.test, shape, aug, seed)?;
            Some(png(
                AUGMENTED_PNG,
                &samples::draw_augmented(&tiles, shape, aug)?,
            )?)
        }
        None => None,
    };

    let mut pictures: Vec<(&str, &str, &[u8])> = vec![
        (
            CURVES_SVG,
            "Training curves: loss and accuracy per epoch",
            curves_svg.as_bytes(),
        ),
        (
            CONFUSION_PNG,
            "Confusion matrix on the test set",
            &confusion_png,
        ),
        (
            SAMPLES_PNG,
            "Sample predictions, most confident mistakes first",
            &samples_png,
        ),
    ];
    if let Some(bytes) = &augmented_png {
        pictures.push((
            AUGMENTED_PNG,
            "Augmentation: test images as training batches saw them",
            bytes,
        ));
    }
    let page = html::page(&html::Page {
        settings: &inputs.settings,
        adapter: &inputs.adapter,
        seconds: inputs.seconds,
        stats: &stats,
        confusion: &confusion,
        worst: &worst,
        table: &table,
        pictures,
    });

    let mut outputs: Vec<(&str, &[u8])> = vec![
        (CURVES_PNG, &curves_png),
        (CURVES_SVG, curves_svg.as_bytes()),
        (CONFUSION_PNG, &confusion_png),
        (PER_CLASS_CSV, csv.as_bytes()),
        (SAMPLES_PNG, &samples_png),
    ];
    outputs.extend(augmented_png.as_deref().map(|b| (AUGMENTED_PNG, b)));
    outputs.push((REPORT_HTML, page.as_bytes()));
    let mut files = Vec::new();
    for (name, bytes) in outputs {
        let path = dir.join(name);
        write_atomic(&path, bytes)?;
        files.push(path);
    }
    Ok(ReportSummary {
        files,
        table,
        accuracy: metrics::overall_accuracy(&confusion),
        stats,
        confusion,
        worst,
        samples: (
            worst_shown.iter().map(|p| p.index).collect(),
            first_shown.iter().map(|p| p.index).collect(),
        ),
    })
}
