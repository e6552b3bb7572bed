//! `report::write_report`: every file is written and decodes; the numbers in per_class.csv and
//! report.html equal those recomputed here from the logits; 1 and 3 channels, 2 and 10 classes, with
//! and without validation metrics. Synthetic images and made-up logits: no GPU.

use std::path::Path;

use cifar_wgpu::data::augment::Augment;
use cifar_wgpu::data::synthetic::learnable;
use cifar_wgpu::data::{Dataset, Split};
use cifar_wgpu::reference::gather::{Affine, augment_image};
use cifar_wgpu::report::{
    self, AUGMENTATIONS, AUGMENTED_IMAGES, AUGMENTED_PNG, CONFUSION_PNG, CURVES_PNG, CURVES_SIZE,
    CURVES_SVG, PER_CLASS_CSV, PER_SECTION, REPORT_HTML, ReportInputs, ReportSummary, SAMPLES_PNG,
    augmented_layout, augmented_tiles, confusion_layout, samples_layout,
};
use cifar_wgpu::train::fit::EpochLog;

/// Logits that are right three times in four, with a confidence that varies per image, and wrong
/// otherwise in a pattern that depends on the class, so classes differ in accuracy.
fn made_up_logits(labels: &[u8], classes: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(labels.len() * classes);
    for (i, &l) in labels.iter().enumerate() {
        let l = l as usize;
        let wrong = (i + l).is_multiple_of(4) || (l == 0 && i.is_multiple_of(3));
        let p = if wrong { (l + 1 + i % 2) % classes } else { l };
        for c in 0..classes {
            // A little spread everywhere, plus a margin for the chosen class that varies with i.
            let mut v = ((i * 7 + c * 13) % 11) as f32 * 0.1 - 0.5;
            if c == p {
                v += 1.0 + (i % 9) as f32 * 0.6;
            }
            out.push(v);
        }
    }
    out
}

fn history(epochs: usize, validation: bool) -> Vec<EpochLog> {
    (1..=epochs)
        .map(|e| {
            let t = e as f64;
            EpochLog {
                epoch: e,
                loss: 2.0 / t + 0.3,
                accuracy: 0.9 - 0.6 / t,
                val_loss: validation.then(|| 2.1 / t + 0.45),
                val_accuracy: validation.then(|| 0.85 - 0.6 / t),
                seconds: 1.0,
                train_seconds: 0.9,
            }
        })
        .collect()
}

/// The report's inputs for `ds`'s test split and `logits`, with no settings, adapter, time or
/// augmentation: each test overrides what it checks.
fn inputs<'a>(ds: &'a Dataset, logits: &'a [f32], history: &'a [EpochLog]) -> ReportInputs<'a> {
    ReportInputs {
        history,
        class_names: &ds.class_names,
        test: &ds.test,
        height: ds.height,
        width: ds.width,
        channels: ds.channels,
        logits,
        settings: Vec::new(),
        adapter: String::new(),
        seconds: 0.0,
        augment: None,
    }
}

/// `write_report` of `inputs` into a fresh temporary folder: the folder and the summary.
fn write(inputs: &ReportInputs) -> (tempfile::TempDir, ReportSummary) {
    let dir = tempfile::tempdir().unwrap();
    let summary = report::write_report(dir.path(), inputs).unwrap();
    (dir, summary)
}

struct Run {
    ds: Dataset,
    logits: Vec<f32>,
    summary: ReportSummary,
    dir: tempfile::TempDir,
}

fn run(n_test: usize, h: usize, w: usize, c: usize, classes: usize, hist: &[EpochLog]) -> Run {
    let ds = learnable(8, n_test, h, w, c, classes, 7);
    let logits = made_up_logits(&ds.test.labels, classes);
    let (dir, summary) = write(&ReportInputs {
        settings: vec![
            ("epochs".into(), hist.len().to_string()),
            ("data".into(), "<synthetic> & co".into()),
        ],
        adapter: "Test Adapter (Vulkan)".into(),
        seconds: 12.5,
        ..inputs(&ds, &logits, hist)
    });
    Run {
        ds,
        logits,
        summary,
        dir,
    }
}

/// [`run`], then [`check_all`] on it.
fn checked_run(
    n_test: usize,
    h: usize,
    w: usize,
    c: usize,
    classes: usize,
    hist: &[EpochLog],
) -> Run {
    let r = run(n_test, h, w, c, classes, hist);
    check_all(&r, hist);
    r
}

fn dims(path: &Path) -> (u32, u32) {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (img.width(), img.height())
}

/// argmax (first maximum) and the confusion matrix, written independently of the library.
fn expected_confusion(logits: &[f32], labels: &[u8], classes: usize) -> Vec<Vec<usize>> {
    let mut m = vec![vec![0; classes]; classes];
    for (row, &l) in logits.chunks(classes).zip(labels) {
        let mut best = 0;
        for c in 1..classes {
            if row[c] > row[best] {
                best = c;
            }
        }
        m[l as usize][best] += 1;
    }
    m
}

/// (precision, recall, f1, accuracy) per class from a confusion matrix.
fn expected_stats(m: &[Vec<usize>]) -> Vec<[f64; 4]> {
    let n = m.len();
    (0..n)
        .map(|c| {
            let tp = m[c][c] as f64;
            let support: usize = m[c].iter().sum();
            let predicted: usize = (0..n).map(|t| m[t][c]).sum();
            let p = if predicted == 0 {
                0.0
            } else {
                tp / predicted as f64
            };
            let r = if support == 0 {
                0.0
            } else {
                tp / support as f64
            };
            let f1 = if p + r == 0.0 {
                0.0
            } else {
                2.0 * p * r / (p + r)
            };
            [p, r, f1, r]
        })
        .collect()
}

fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() <= 1e-6, "{what}: {a} vs {b}");
}

/// Every check that holds for any run.
fn check_all(r: &Run, hist: &[EpochLog]) {
    let classes = r.ds.num_classes();
    let (h, w) = (r.ds.height, r.ds.width);
    let dir = r.dir.path();

    // Files: all six, no temporary leftovers.
    for f in [
        CURVES_PNG,
        CURVES_SVG,
        CONFUSION_PNG,
        PER_CLASS_CSV,
        SAMPLES_PNG,
        REPORT_HTML,
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    assert_eq!(r.summary.files.len(), 6);
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // Pictures decode at the expected sizes.
    assert_eq!(dims(&dir.join(CURVES_PNG)), CURVES_SIZE);
    let longest =
        r.ds.class_names
            .iter()
            .map(|s| s.chars().count())
            .max()
            .unwrap();
    let cl = confusion_layout(classes, longest);
    assert_eq!(dims(&dir.join(CONFUSION_PNG)), (cl.width, cl.height));
    let expected = expected_confusion(&r.logits, &r.ds.test.labels, classes);
    let mistakes: usize = (0..classes)
        .map(|t| expected[t].iter().sum::<usize>() - expected[t][t])
        .sum();
    let sl = samples_layout(
        h,
        w,
        mistakes.min(PER_SECTION),
        r.ds.test.len().min(PER_SECTION),
    );
    assert_eq!(dims(&dir.join(SAMPLES_PNG)), (sl.width, sl.height));
    let svg = std::fs::read_to_string(dir.join(CURVES_SVG)).unwrap();
    assert!(svg.contains("<svg"), "curves.svg is not SVG");
    assert!(svg.contains("epoch"), "curves.svg lacks the x axis label");
    let has_val = hist.iter().any(|e| e.val_loss.is_some());
    assert_eq!(svg.contains("val_loss"), has_val, "val_loss legend");
    assert_eq!(svg.contains("val_accuracy"), has_val, "val_accuracy legend");

    // Confusion matrix: as recomputed, rows sum to the class counts.
    assert_eq!(r.summary.confusion.counts, expected);
    let counts = r.ds.test.class_counts(classes);
    for (t, &count) in counts.iter().enumerate() {
        assert_eq!(
            r.summary.confusion.row_sum(t),
            count,
            "row {t} of the confusion matrix"
        );
    }

    // per_class.csv equals the recomputed statistics.
    let stats = expected_stats(&expected);
    let csv = std::fs::read_to_string(dir.join(PER_CLASS_CSV)).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "class,name,images,predicted,correct,precision,recall,f1,accuracy"
    );
    for c in 0..classes {
        let f: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!(f[0].parse::<usize>().unwrap(), c);
        assert_eq!(f[1], r.ds.class_names[c]);
        assert_eq!(f[2].parse::<usize>().unwrap(), counts[c]);
        assert_eq!(f[4].parse::<usize>().unwrap(), expected[c][c]);
        for (k, what) in ["precision", "recall", "f1", "accuracy"].iter().enumerate() {
            close(f[5 + k].parse().unwrap(), stats[c][k], what);
        }
    }
    let all: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(all[1], "all");
    let correct: usize = (0..classes).map(|c| expected[c][c]).sum();
    let accuracy = correct as f64 / r.ds.test.len() as f64;
    close(all[8].parse().unwrap(), accuracy, "overall accuracy");
    close(r.summary.accuracy, accuracy, "summary accuracy");

    // report.html: the same numbers, the pictures inline, the settings escaped.
    let html = std::fs::read_to_string(dir.join(REPORT_HTML)).unwrap();
    for c in 0..classes {
        let start = html
            .find(&format!("data-class=\"{c}\""))
            .unwrap_or_else(|| panic!("no row for class {c}"));
        let row = &html[start..start + html[start..].find('>').unwrap()];
        let attr = |name: &str| -> f64 {
            let key = format!("data-{name}=\"");
            let at = row.find(&key).unwrap() + key.len();
            row[at..at + row[at..].find('"').unwrap()].parse().unwrap()
        };
        close(attr("images"), counts[c] as f64, "html images");
        close(attr("correct"), expected[c][c] as f64, "html correct");
        for (k, what) in ["precision", "recall", "f1", "accuracy"].iter().enumerate() {
            close(attr(what), stats[c][k], what);
        }
    }
    assert!(html.contains(&format!("<b id=\"test-accuracy\">{accuracy:.4}</b>")));
    assert_eq!(html.matches("src=\"data:image/png;base64,").count(), 2);
    assert_eq!(html.matches("src=\"data:image/svg+xml;base64,").count(), 1);
    assert!(html.contains("Test Adapter (Vulkan)"));
    assert!(html.contains("12.5 s"));
    assert!(
        html.contains("&lt;synthetic&gt; &amp; co"),
        "settings not escaped"
    );
    assert!(!html.contains("<synthetic>"));

    // The worst classes: the lowest accuracies, named in the table and the page.
    let mut order: Vec<usize> = (0..classes).collect();
    order.sort_by(|&a, &b| stats[a][3].total_cmp(&stats[b][3]));
    let worst = r.summary.worst[0];
    close(stats[worst][3], stats[order[0]][3], "worst accuracy");
    assert!(r.summary.worst.len() == 3.min(classes - 1));
    assert!(r.summary.table.contains("worst classes:"));
    assert!(r.summary.table.contains(&r.ds.class_names[worst]));
    assert!(html.contains("class=\"worst\""));

    // Samples: the most confident mistakes first, recomputed from a softmax here.
    let conf = |i: usize| -> (f64, bool) {
        let row = &r.logits[i * classes..(i + 1) * classes];
        let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
        let top = row.iter().position(|&v| v as f64 == max).unwrap();
        (1.0 / sum, top != r.ds.test.labels[i] as usize)
    };
    let (shown_wrong, shown_first) = &r.summary.samples;
    assert_eq!(shown_wrong.len(), mistakes.min(PER_SECTION));
    let mut prev = f64::INFINITY;
    for &i in shown_wrong {
        let (p, wrong) = conf(i);
        assert!(wrong, "image {i} shown as a mistake is right");
        assert!(p <= prev + 1e-12, "mistakes not sorted by confidence");
        prev = p;
    }
    // No mistake left out is more confident than the least confident one shown.
    let least = prev;
    for i in 0..r.ds.test.len() {
        let (p, wrong) = conf(i);
        if wrong && !shown_wrong.contains(&i) {
            assert!(
                p <= least + 1e-12,
                "mistake {i} ({p}) should have been shown"
            );
        }
    }
    assert_eq!(
        shown_first,
        &(0..r.ds.test.len().min(PER_SECTION)).collect::<Vec<_>>()
    );
}

#[test]
fn cifar_shaped_ten_classes_with_validation() {
    let r = checked_run(200, 32, 32, 3, 10, &history(6, true));
    // CIFAR-sized thumbnails are scaled 3×.
    assert_eq!(r.summary.confusion.classes(), 10);
    assert_eq!(samples_layout(32, 32, 16, 16).scale, 3);
}

#[test]
fn fashion_shaped_one_channel_two_classes() {
    let r = checked_run(50, 28, 28, 1, 2, &history(3, true));
    assert_eq!(r.summary.worst.len(), 1);
}

#[test]
fn no_validation_metrics() {
    checked_run(40, 28, 28, 1, 10, &history(4, false));
}

#[test]
fn one_epoch_and_no_history() {
    for hist in [history(1, true), Vec::new()] {
        checked_run(30, 32, 32, 3, 10, &hist);
    }
}

/// Image folders can have many classes with long or non-ASCII names: the picture stays bounded
/// and the CSV keeps every name intact (quoted where it has a comma).
#[test]
fn many_classes_and_long_names() {
    let classes = 40;
    let mut ds = learnable(4, 120, 16, 12, 3, classes, 5);
    ds.class_names = (0..classes)
        .map(|c| format!("a rather long class name, número {c} of many"))
        .collect();
    let logits = made_up_logits(&ds.test.labels, classes);
    let (dir, s) = write(&inputs(&ds, &logits, &history(2, true)));
    let (w, h) = dims(&dir.path().join(CONFUSION_PNG));
    assert!(w <= 1400 && h <= 1400, "confusion.png is {w}x{h}");
    let longest = ds
        .class_names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap();
    let l = confusion_layout(classes, longest);
    assert_eq!((w, h), (l.width, l.height));
    let csv = std::fs::read_to_string(dir.path().join(PER_CLASS_CSV)).unwrap();
    assert!(csv.contains("\"a rather long class name, número 7 of many\""));
    assert_eq!(csv.lines().count(), classes + 2);
    assert_eq!(s.worst.len(), 3);
}

#[test]
fn all_right_means_no_mistakes_section() {
    let ds = learnable(4, 20, 8, 8, 3, 2, 1);
    let logits: Vec<f32> = ds
        .test
        .labels
        .iter()
        .flat_map(|&l| {
            [
                if l == 0 { 3.0 } else { -3.0 },
                if l == 1 { 3.0 } else { -3.0 },
            ]
        })
        .collect();
    let (dir, s) = write(&ReportInputs {
        adapter: "cpu".into(),
        ..inputs(&ds, &logits, &history(2, false))
    });
    assert!(s.samples.0.is_empty());
    assert_eq!(s.accuracy, 1.0);
    let l = samples_layout(8, 8, 0, 16);
    assert_eq!(dims(&dir.path().join(SAMPLES_PNG)), (l.width, l.height));
}

#[test]
fn inputs_that_do_not_fit_are_refused_before_writing() {
    let ds = learnable(4, 10, 8, 8, 1, 10, 3);
    let logits = made_up_logits(&ds.test.labels, 10);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let base = inputs(&ds, &logits, &[]);
    let short = &logits[..logits.len() - 1];
    let empty = Split::default();
    let cases = [
        ReportInputs {
            logits: short,
            ..base.clone()
        },
        ReportInputs {
            channels: 3,
            ..base.clone()
        },
        ReportInputs {
            test: &empty,
            logits: &[],
            ..base.clone()
        },
        ReportInputs {
            class_names: &ds.class_names[..5],
            logits: &logits[..50],
            ..base.clone()
        },
    ];
    for (k, inputs) in cases.iter().enumerate() {
        let err = report::write_report(&out, inputs).expect_err(&format!("case {k} accepted"));
        assert!(err.to_string().contains("cannot write the report"), "{err}");
        assert!(!out.exists(), "case {k} wrote files before failing");
    }
}

/// Writes an example report for a person to look at:
/// `REPORT_DIR=/tmp/r cargo test --test report -- --ignored example_report`.
#[test]
#[ignore = "writes into REPORT_DIR for inspection"]
fn example_report() {
    let Some(dir) = std::env::var_os("REPORT_DIR") else {
        return;
    };
    let hist = history(20, true);
    for (sub, h, w, c, classes) in [
        ("cifar", 32, 32, 3, 10),
        ("fashion", 28, 28, 1, 10),
        ("many", 16, 12, 3, 40),
    ] {
        let ds = learnable(8, 300, h, w, c, classes, 7);
        let mut ds = ds;
        if sub == "cifar" {
            ds.class_names = cifar_wgpu::data::CIFAR10_CLASSES
                .iter()
                .map(|s| s.to_string())
                .collect();
        } else if sub == "many" {
            ds.class_names = (0..classes)
                .map(|c| format!("a rather long class name, número {c} of many"))
                .collect();
        } else {
            ds.class_names = cifar_wgpu::data::FASHION_MNIST_CLASSES
                .iter()
                .map(|s| s.to_string())
                .collect();
        }
        let logits = made_up_logits(&ds.test.labels, classes);
        let s = report::write_report(
            &Path::new(&dir).join(sub),
            &ReportInputs {
                settings: vec![("epochs".into(), "20".into())],
                adapter: "example".into(),
                seconds: 1.0,
                ..inputs(&ds, &logits, &hist)
            },
        )
        .unwrap();
        print!("{}", s.table);
    }
}

/// An augmented run's report adds augmented.png: the first test images as stored, then as the
/// augmentation's CPU twin (bit for bit the GPU kernel) draws them in their batch slot at steps 0
/// to 7, every pixel in place; the page embeds it. A run without augmentation writes none.
#[test]
fn an_augmented_run_gets_a_grid_of_its_test_images_augmented() {
    for (h, w, c, n_test) in [(9, 13, 3, 6), (12, 12, 1, 3)] {
        let ds = learnable(8, n_test, h, w, c, 3, 7);
        let logits = made_up_logits(&ds.test.labels, 3);
        let aug = Augment::default();
        let (dir, summary) = write(&ReportInputs {
            adapter: "Test Adapter (Vulkan)".into(),
            seconds: 1.0,
            augment: Some((&aug, 11)),
            ..inputs(&ds, &logits, &history(2, true))
        });
        let path = dir.path().join(AUGMENTED_PNG);
        assert_eq!(summary.files.len(), 7);
        assert!(summary.files.contains(&path));
        let rows = AUGMENTED_IMAGES.min(n_test);
        let tiles = augmented_tiles(&ds.test, [h, w, c], &aug, 11).unwrap();
        assert_eq!(tiles.len(), rows * (1 + AUGMENTATIONS));
        let consts = aug.consts(h, w).unwrap();
        let table = aug.rotation_table();
        for row in 0..rows {
            let first = row * (1 + AUGMENTATIONS);
            assert_eq!(
                tiles[first],
                ds.test.image(row),
                "row {row} starts as stored"
            );
            for step in 0..AUGMENTATIONS {
                let a = Affine::draw(&consts, &table, 11, step as u32, row as u32);
                let want: Vec<u8> = augment_image(ds.test.image(row), [h, w, c], &a)
                    .iter()
                    .map(|v| (v * 255.0).round() as u8)
                    .collect();
                assert_eq!(tiles[first + 1 + step], want, "row {row}, step {step}");
            }
        }
        let distinct: std::collections::HashSet<&Vec<u8>> = tiles.iter().collect();
        assert!(
            distinct.len() > tiles.len() / 2,
            "augmentations barely differ"
        );
        let l = augmented_layout(h, w, rows);
        let png = image::open(&path).unwrap().to_rgb8();
        assert_eq!((png.width(), png.height()), (l.width, l.height));
        for (k, tile) in tiles.iter().enumerate() {
            let (x0, y0) = l.origin(k);
            for y in 0..h {
                for x in 0..w {
                    let p = &tile[(y * w + x) * c..][..c];
                    let want = if c == 3 {
                        [p[0], p[1], p[2]]
                    } else {
                        [p[0]; 3]
                    };
                    let got = png.get_pixel(x0 + x as u32 * l.scale, y0 + y as u32 * l.scale);
                    assert_eq!(got.0, want, "tile {k}, pixel ({y}, {x})");
                }
            }
        }
        let page = std::fs::read_to_string(dir.path().join(REPORT_HTML)).unwrap();
        assert!(page.contains("data-file=\"augmented.png\""));
    }
    let plain = run(6, 8, 8, 3, 3, &history(1, false));
    assert!(!plain.dir.path().join(AUGMENTED_PNG).exists());
    assert_eq!(plain.summary.files.len(), 6);
}
