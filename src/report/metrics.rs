//! The numbers behind the report, computed from the test set's logits on the host: softmax
//! confidences and per-class precision, recall, F1 and accuracy, over `crate::metrics`' predictions
//! and confusion matrix.
//! Everything here is plain arithmetic so that tests can recompute it independently.

pub use crate::metrics::Confusion;
use crate::metrics::{argmax_rows, per_class_accuracy, softmax};

/// One class's line of the table and of `per_class.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassStats {
    pub class: usize,
    pub name: String,
    /// Test images of this class ("support").
    pub images: usize,
    /// Of those, predicted correctly (true positives).
    pub correct: usize,
    /// Test images predicted as this class.
    pub predicted: usize,
    /// correct / predicted; 0 when the class was never predicted (as scikit-learn's zero_division=0).
    pub precision: f64,
    /// correct / images; 0 for a class without test images.
    pub recall: f64,
    /// Harmonic mean of precision and recall; 0 when both are 0.
    pub f1: f64,
    /// The class's accuracy as the CLI has always printed it (`per_class_accuracy`): the share of the
    /// class's images predicted correctly. It equals recall; it is kept under its familiar name.
    pub accuracy: f64,
}

/// Per-class statistics in class order. `accuracy` comes from `metrics::per_class_accuracy` so
/// the report and the CLI's evaluation print the same figure.
pub fn class_stats(
    confusion: &Confusion,
    predicted: &[usize],
    labels: &[u8],
    names: &[String],
) -> Vec<ClassStats> {
    let classes = confusion.classes();
    let acc = per_class_accuracy(predicted, labels, classes);
    (0..classes)
        .map(|c| {
            let correct = confusion.counts[c][c];
            let images = confusion.row_sum(c);
            let predicted = confusion.column_sum(c);
            let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
            let precision = ratio(correct, predicted);
            let recall = ratio(correct, images);
            let f1 = if precision + recall == 0.0 {
                0.0
            } else {
                2.0 * precision * recall / (precision + recall)
            };
            ClassStats {
                class: c,
                name: names[c].clone(),
                images,
                correct,
                predicted,
                precision,
                recall,
                f1,
                accuracy: ratio(acc[c].0, acc[c].1),
            }
        })
        .collect()
}

/// The classes to call out: the lowest accuracy first (ties: lower F1, then class order), at most
/// three and never all of them, so that a two-class report names one.
pub fn worst_classes(stats: &[ClassStats]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..stats.len()).collect();
    order.sort_by(|&a, &b| {
        let (sa, sb) = (&stats[a], &stats[b]);
        sa.accuracy
            .total_cmp(&sb.accuracy)
            .then(sa.f1.total_cmp(&sb.f1))
            .then(a.cmp(&b))
    });
    order.truncate(3.min(stats.len().saturating_sub(1)));
    order
}

/// One test image's prediction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prediction {
    pub index: usize,
    pub predicted: usize,
    pub label: usize,
    /// Softmax probability of the predicted class.
    pub confidence: f64,
}

impl Prediction {
    pub fn correct(&self) -> bool {
        self.predicted == self.label
    }
}

/// Every test image's prediction (the first maximum, as `argmax_rows` and tf.argmax) with its
/// softmax confidence.
pub fn predictions(logits: &[f32], labels: &[u8], classes: usize) -> Vec<Prediction> {
    let predicted = argmax_rows(logits, classes);
    logits
        .chunks(classes)
        .zip(predicted)
        .zip(labels)
        .enumerate()
        .map(|(index, ((row, p), &l))| Prediction {
            index,
            predicted: p,
            label: l as usize,
            confidence: softmax(row)[p],
        })
        .collect()
}

/// Mistakes, the most confident first (ties: lower index first, so the choice is deterministic).
pub fn confident_mistakes(preds: &[Prediction]) -> Vec<Prediction> {
    let mut wrong: Vec<Prediction> = preds.iter().filter(|p| !p.correct()).copied().collect();
    wrong.sort_by(|a, b| {
        b.confidence
            .total_cmp(&a.confidence)
            .then(a.index.cmp(&b.index))
    });
    wrong
}

/// `per_class.csv`: one line per class, then one `all` line with the overall accuracy and the
/// macro averages. Ratios are written with six decimals; tests parse them back.
pub fn csv(stats: &[ClassStats], confusion: &Confusion) -> String {
    let mut out =
        String::from("class,name,images,predicted,correct,precision,recall,f1,accuracy\n");
    for s in stats {
        out.push_str(&format!(
            "{},{},{},{},{},{:.6},{:.6},{:.6},{:.6}\n",
            s.class,
            csv_field(&s.name),
            s.images,
            s.predicted,
            s.correct,
            s.precision,
            s.recall,
            s.f1,
            s.accuracy
        ));
    }
    let m = macro_average(stats);
    out.push_str(&format!(
        ",all,{},{},{},{:.6},{:.6},{:.6},{:.6}\n",
        confusion.total(),
        confusion.total(),
        confusion.correct(),
        m.0,
        m.1,
        m.2,
        overall_accuracy(confusion)
    ));
    out
}

/// Quotes a CSV field when it holds a comma, quote or line break (image-folder class names can).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Unweighted means of precision, recall and F1 over the classes.
pub fn macro_average(stats: &[ClassStats]) -> (f64, f64, f64) {
    let n = stats.len().max(1) as f64;
    (
        stats.iter().map(|s| s.precision).sum::<f64>() / n,
        stats.iter().map(|s| s.recall).sum::<f64>() / n,
        stats.iter().map(|s| s.f1).sum::<f64>() / n,
    )
}

pub fn overall_accuracy(confusion: &Confusion) -> f64 {
    confusion.correct() as f64 / confusion.total().max(1) as f64
}

/// The table the CLI prints: one line per class, the worst ones marked, then who they are.
pub fn table(stats: &[ClassStats], confusion: &Confusion, worst: &[usize]) -> String {
    let width = stats
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    let mut out = format!(
        "{:<width$}  {:>7}  {:>9}  {:>6}  {:>6}  {:>8}\n",
        "class", "images", "precision", "recall", "f1", "accuracy"
    );
    for s in stats {
        let mark = if worst.contains(&s.class) {
            "  <- worst"
        } else {
            ""
        };
        out.push_str(&format!(
            "{:<width$}  {:>7}  {:>9.4}  {:>6.4}  {:>6.4}  {:>8.4}{mark}\n",
            s.name, s.images, s.precision, s.recall, s.f1, s.accuracy
        ));
    }
    let m = macro_average(stats);
    out.push_str(&format!(
        "{:<width$}  {:>7}  {:>9.4}  {:>6.4}  {:>6.4}  {:>8.4}\n",
        "all",
        confusion.total(),
        m.0,
        m.1,
        m.2,
        overall_accuracy(confusion)
    ));
    if !worst.is_empty() {
        let names: Vec<String> = worst
            .iter()
            .map(|&c| format!("{} ({:.1} %)", stats[c].name, 100.0 * stats[c].accuracy))
            .collect();
        out.push_str(&format!("worst classes: {}\n", names.join(", ")));
    }
    out.push_str(
        "(accuracy: share of the class's test images predicted correctly, i.e. recall; \
         the 'all' line has macro averages and the overall accuracy)\n",
    );
    out
}
