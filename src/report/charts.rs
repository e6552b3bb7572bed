//! Training curves and the confusion matrix, drawn with plotters. Bitmaps are drawn into an RGB
//! buffer and encoded by `image`, so plotters' own encoder (and its older `image`) is not needed.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::metrics::Confusion;
use super::{FONT, ReportError};
use crate::train::fit::EpochLog;

pub const CURVES_SIZE: (u32, u32) = (1100, 420);

/// Keras' and matplotlib's first two colours, so the curves look like the notebook's.
const TRAIN: RGBColor = RGBColor(31, 119, 180);
const VAL: RGBColor = RGBColor(255, 127, 14);

fn plot_err<E: std::fmt::Debug>(e: E) -> ReportError {
    ReportError::Plot(format!("{e:?}"))
}

/// Values beyond this magnitude are left out of a chart, like NaN: no real loss comes near, and a
/// range that wide leaves plotters no room between its ticks (it would never finish drawing).
const MAX_PLOTTED: f64 = 1e12;

/// Most points a series is drawn with markers (a circle each).
const MAX_MARKERS: usize = 200;

/// The y range for `values` (finite, within [`MAX_PLOTTED`]): always finite with `lo < hi`.
/// Accuracy is read against its whole scale's top, the bottom follows the data; a loss range is
/// padded by 8 % (at least 1e-3 of its magnitude) and does not go below 0 unless the data does.
fn y_range(values: impl Iterator<Item = f64>, accuracy: bool) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo > hi {
        return (0.0, 1.0);
    }
    let (a, b) = if accuracy {
        ((lo - 0.05).max(0.0), (hi + 0.05).min(1.0))
    } else {
        let pad = ((hi - lo) * 0.08).max(1e-3 * hi.abs().max(lo.abs()).max(1.0));
        let bottom = if lo >= 0.0 {
            (lo - pad).max(0.0)
        } else {
            lo - pad
        };
        (bottom, hi + pad)
    };
    // Accuracies outside [0, 1] would invert the clamped range: show them as they are.
    if a < b {
        (a, b)
    } else {
        (lo - 0.05, hi + 0.05)
    }
}

/// Loss (left) and accuracy (right) per epoch; validation series only where the history has them.
pub fn draw_curves<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    history: &[EpochLog],
) -> Result<(), ReportError> {
    root.fill(&WHITE).map_err(plot_err)?;
    let (left, right) = root.split_horizontally(CURVES_SIZE.0 / 2);
    type Pick = fn(&EpochLog) -> Option<f64>;
    let panels: [(&DrawingArea<DB, Shift>, &str, Pick, Pick); 2] = [
        (&left, "loss", |e| Some(e.loss), |e| e.val_loss),
        (&right, "accuracy", |e| Some(e.accuracy), |e| e.val_accuracy),
    ];
    for (area, name, train, val) in panels {
        draw_panel(area, history, name, train, val)?;
    }
    root.present().map_err(plot_err)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    history: &[EpochLog],
    name: &str,
    train: fn(&EpochLog) -> Option<f64>,
    val: fn(&EpochLog) -> Option<f64>,
) -> Result<(), ReportError> {
    // A diverged run can log NaN, infinity or absurd values; such points are left out rather than
    // breaking the axes.
    let series = |f: fn(&EpochLog) -> Option<f64>| -> Vec<(f64, f64)> {
        history
            .iter()
            .filter_map(|e| {
                f(e).filter(|v| v.abs() <= MAX_PLOTTED)
                    .map(|v| (e.epoch as f64, v))
            })
            .collect()
    };
    let (t, v) = (series(train), series(val));
    let (lo, hi) = y_range(t.iter().chain(&v).map(|p| p.1), name == "accuracy");
    let last = history.iter().map(|e| e.epoch).max().unwrap_or(1).max(1) as f64;
    let first = history.iter().map(|e| e.epoch).min().unwrap_or(1) as f64;
    // One epoch would give an empty x range; widen it by half an epoch either side.
    let (x0, x1) = if last > first {
        (first, last)
    } else {
        (first - 0.5, last + 0.5)
    };
    let title = if v.is_empty() {
        format!("{name} (no validation split)")
    } else {
        name.to_string()
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 22))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, lo..hi)
        .map_err(plot_err)?;
    let epochs = history.len().max(1);
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(name)
        .x_labels(epochs.min(10) + 1)
        .x_label_formatter(&|x| {
            // Only whole epochs get a label.
            if (x - x.round()).abs() < 1e-9 {
                format!("{}", x.round() as i64)
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| format!("{y:.2}"))
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(plot_err)?;
    for (points, label, color) in [
        (&t, name.to_string(), TRAIN),
        (&v, format!("val_{name}"), VAL),
    ] {
        if points.is_empty() {
            continue;
        }
        let style = color.stroke_width(3);
        chart
            .draw_series(LineSeries::new(points.iter().copied(), style))
            .map_err(plot_err)?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], color.stroke_width(3)));
        // Markers only while they can be told apart; the line alone carries long histories.
        if points.len() <= MAX_MARKERS {
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(plot_err)?;
        }
    }
    // Loss falls and accuracy rises, so the legend goes where the curves usually are not.
    let position = if name == "loss" {
        SeriesLabelPosition::UpperRight
    } else {
        SeriesLabelPosition::LowerRight
    };
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

/// Longer class names (image folders can have any) are cut to this many characters.
pub const NAME_CHARS: usize = 22;

/// Layout of the confusion-matrix picture for `classes` classes and the longest name.
pub struct ConfusionLayout {
    pub cell: u32,
    /// Font size of the class names, in pixels.
    pub name_size: f64,
    pub left: u32,
    pub top: u32,
    pub width: u32,
    pub height: u32,
}

pub fn confusion_layout(classes: usize, longest_name: usize) -> ConfusionLayout {
    // Cells shrink with many classes so the picture stays under ~1200 px.
    let cell = (1000 / classes.max(1) as u32).clamp(12, 64);
    let name_size = (cell as f64 * 0.3).clamp(9.0, 16.0);
    // DejaVu Sans averages about 0.6 em a character.
    let name_px = ((longest_name.min(NAME_CHARS) as f64 * name_size * 0.6) as u32).max(40);
    let left = name_px + 60;
    let top = name_px + 70;
    let side = cell * classes as u32;
    ConfusionLayout {
        cell,
        name_size,
        left,
        top,
        width: left + side + 24,
        height: top + side + 56,
    }
}

/// Rows: true class; columns: predicted class. A cell's shade is its share of the row (so every
/// class's errors read on the same scale whatever its size); the number is the count.
pub fn draw_confusion<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    confusion: &Confusion,
    names: &[String],
) -> Result<(), ReportError> {
    let n = confusion.classes();
    let longest = names.iter().map(|s| s.chars().count()).max().unwrap_or(1);
    let l = confusion_layout(n, longest);
    let (cell, left, top) = (l.cell as i32, l.left as i32, l.top as i32);
    root.fill(&WHITE).map_err(plot_err)?;
    let name_size = l.name_size;
    let count_size = (cell as f64 * 0.3).clamp(8.0, 17.0);
    let total = confusion.total();
    let correct = confusion.correct();
    let title = format!(
        "confusion matrix on the test set: {correct} of {total} right ({:.1} %)",
        100.0 * correct as f64 / total.max(1) as f64
    );
    root.draw(&Text::new(
        title,
        (12, 10),
        TextStyle::from((FONT, 20).into_font()).pos(Pos::new(HPos::Left, VPos::Top)),
    ))
    .map_err(plot_err)?;
    let side = cell * n as i32;
    // Axis titles.
    root.draw(&Text::new(
        "predicted class",
        (left + side / 2, 40),
        TextStyle::from((FONT, 17).into_font()).pos(Pos::new(HPos::Center, VPos::Top)),
    ))
    .map_err(plot_err)?;
    root.draw(&Text::new(
        "true class",
        (14, top + side / 2),
        TextStyle::from((FONT, 17).into_font().transform(FontTransform::Rotate270))
            .pos(Pos::new(HPos::Center, VPos::Top)),
    ))
    .map_err(plot_err)?;
    for t in 0..n {
        let row = confusion.row_sum(t).max(1) as f64;
        for p in 0..n {
            let count = confusion.counts[t][p];
            let share = count as f64 / row;
            let (x, y) = (left + p as i32 * cell, top + t as i32 * cell);
            let fill = shade(share, t == p);
            root.draw(&Rectangle::new(
                [(x, y), (x + cell, y + cell)],
                fill.filled(),
            ))
            .map_err(plot_err)?;
            root.draw(&Rectangle::new(
                [(x, y), (x + cell, y + cell)],
                RGBColor(255, 255, 255).stroke_width(1),
            ))
            .map_err(plot_err)?;
            if cell >= 24 && count > 0 {
                // Dark cells get white numbers; the threshold is on perceived brightness.
                let lum = 0.299 * fill.0 as f64 + 0.587 * fill.1 as f64 + 0.114 * fill.2 as f64;
                let ink = if lum < 150.0 { WHITE } else { BLACK };
                root.draw(&Text::new(
                    count.to_string(),
                    (x + cell / 2, y + cell / 2),
                    TextStyle::from((FONT, count_size).into_font())
                        .color(&ink)
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                ))
                .map_err(plot_err)?;
            }
        }
    }
    // Class names: rows on the left, columns on top written upwards so long names fit.
    for (c, name) in names.iter().enumerate() {
        let name = super::samples::fit(name, NAME_CHARS);
        let mid = c as i32 * cell + cell / 2;
        root.draw(&Text::new(
            name.clone(),
            (left - 8, top + mid),
            TextStyle::from((FONT, name_size).into_font()).pos(Pos::new(HPos::Right, VPos::Center)),
        ))
        .map_err(plot_err)?;
        root.draw(&Text::new(
            name,
            (left + mid, top - 8),
            TextStyle::from(
                (FONT, name_size)
                    .into_font()
                    .transform(FontTransform::Rotate270),
            )
            .pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(plot_err)?;
    }
    root.draw(&Rectangle::new(
        [(left, top), (left + side, top + side)],
        RGBColor(90, 90, 90).stroke_width(1),
    ))
    .map_err(plot_err)?;
    root.draw(&Text::new(
        "numbers: image counts; shade: share of the true class's images (row)",
        (left, top + side + 14),
        TextStyle::from((FONT, 14).into_font())
            .color(&RGBColor(90, 90, 90))
            .pos(Pos::new(HPos::Left, VPos::Top)),
    ))
    .map_err(plot_err)?;
    root.present().map_err(plot_err)
}

/// White to blue on the diagonal (right answers), white to red elsewhere (mistakes), so the errors
/// stand out from the correct predictions at a glance.
fn shade(share: f64, diagonal: bool) -> RGBColor {
    let s = share.clamp(0.0, 1.0);
    // Mistakes are rarely above a third of a row: stretch their scale so they are visible.
    let s = if diagonal { s } else { (s * 2.5).min(1.0) };
    let target = if diagonal {
        (8.0, 69.0, 148.0)
    } else {
        (180.0, 30.0, 30.0)
    };
    let mix = |a: f64| (255.0 + (a - 255.0) * s).round() as u8;
    RGBColor(mix(target.0), mix(target.1), mix(target.2))
}

#[cfg(test)]
mod tests {
    use super::y_range;

    #[test]
    fn y_range_is_finite_and_ordered_for_any_data() {
        let cases: [(&[f64], bool); 7] = [
            (&[], false),
            (&[0.5, 0.7], true),
            (&[1e12, -1e12], false),
            (&[3.0, 3.0], false),
            (&[-5.0], false),
            (&[5.0, 7.0], true),
            (&[1e12], false),
        ];
        for (values, accuracy) in cases {
            let (lo, hi) = y_range(values.iter().copied(), accuracy);
            assert!(
                lo.is_finite() && hi.is_finite() && lo < hi,
                "{values:?}: {lo}..{hi}"
            );
            assert!(
                values.iter().all(|v| (lo..=hi).contains(v)),
                "{values:?}: {lo}..{hi}"
            );
        }
    }
}
