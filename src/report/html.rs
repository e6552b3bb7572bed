//! `report.html`: one self-contained page (pictures as base64 data URIs, no scripts, no external
//! files) that can be mailed or attached to an issue and still show everything.

use base64::Engine;

use super::metrics::{ClassStats, Confusion, macro_average, overall_accuracy};

/// HTML-escapes text (class names and settings come from folder names and the command line).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn data_uri(mime: &str, bytes: &[u8]) -> String {
    format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

pub struct Page<'a> {
    pub settings: &'a [(String, String)],
    pub adapter: &'a str,
    pub seconds: f64,
    pub stats: &'a [ClassStats],
    pub confusion: &'a Confusion,
    pub worst: &'a [usize],
    pub table: &'a str,
    /// (file name, alt text, SVG or PNG bytes).
    pub pictures: Vec<(&'a str, &'a str, &'a [u8])>,
}

/// Numbers in the page's table use four decimals, as in the printed table; tests parse them back
/// from the `data-*` attributes, which hold the full six-decimal values written to the CSV.
pub fn page(p: &Page) -> String {
    let mut h = String::new();
    h.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>cifar-wgpu training report</title>\n<style>\n\
         body{font-family:system-ui,sans-serif;max-width:1160px;margin:2em auto;padding:0 1em;color:#222}\n\
         table{border-collapse:collapse;margin:0.5em 0 1.5em}\n\
         th,td{padding:0.25em 0.8em;border-bottom:1px solid #ddd;text-align:right}\n\
         th:first-child,td:first-child{text-align:left}\n\
         tr.worst td{background:#fde8e8;font-weight:600}\n\
         tr.all td{border-top:2px solid #999}\n\
         img{max-width:100%;height:auto;display:block;margin:0.5em 0 1.5em}\n\
         dl{display:grid;grid-template-columns:max-content auto;gap:0.2em 1.2em}\n\
         dt{font-weight:600}dd{margin:0;font-family:ui-monospace,monospace}\n\
         pre{background:#f6f6f6;padding:0.8em;overflow-x:auto}\n\
         </style>\n</head>\n<body>\n<h1>Training report</h1>\n",
    );
    h.push_str(&format!(
        "<p>Test accuracy <b id=\"test-accuracy\">{:.4}</b> on <span id=\"test-images\">{}</span> images.</p>\n",
        overall_accuracy(p.confusion),
        p.confusion.total()
    ));
    h.push_str("<h2>Run</h2>\n<dl>\n");
    let mut run: Vec<(String, String)> = vec![
        ("adapter".into(), p.adapter.to_string()),
        ("time".into(), format!("{:.1} s", p.seconds)),
    ];
    run.extend(p.settings.iter().cloned());
    for (k, v) in &run {
        h.push_str(&format!("<dt>{}</dt><dd>{}</dd>\n", escape(k), escape(v)));
    }
    h.push_str("</dl>\n");
    if !p.worst.is_empty() {
        let names: Vec<String> = p
            .worst
            .iter()
            .map(|&c| {
                format!(
                    "<b>{}</b> ({:.1} %)",
                    escape(&p.stats[c].name),
                    100.0 * p.stats[c].accuracy
                )
            })
            .collect();
        h.push_str(&format!(
            "<p id=\"worst\">Worst classes: {}. One accuracy figure hides how unevenly a classifier \
             fails; these are the classes it fails most.</p>\n",
            names.join(", ")
        ));
    }
    h.push_str(
        "<h2>Per class</h2>\n<table id=\"per-class\">\n<thead><tr><th>class</th><th>images</th>\
                <th>predicted</th><th>correct</th><th>precision</th><th>recall</th><th>F1</th>\
                <th>accuracy</th></tr></thead>\n<tbody>\n",
    );
    for s in p.stats {
        let class = if p.worst.contains(&s.class) {
            " class=\"worst\""
        } else {
            ""
        };
        h.push_str(&format!(
            "<tr{class} data-class=\"{}\" data-images=\"{}\" data-predicted=\"{}\" data-correct=\"{}\" \
             data-precision=\"{:.6}\" data-recall=\"{:.6}\" data-f1=\"{:.6}\" data-accuracy=\"{:.6}\">\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td>\
             <td>{:.4}</td></tr>\n",
            s.class,
            s.images,
            s.predicted,
            s.correct,
            s.precision,
            s.recall,
            s.f1,
            s.accuracy,
            escape(&s.name),
            s.images,
            s.predicted,
            s.correct,
            s.precision,
            s.recall,
            s.f1,
            s.accuracy
        ));
    }
    let m = macro_average(p.stats);
    h.push_str(&format!(
        "<tr class=\"all\"><td>all (macro average; overall accuracy)</td><td>{}</td><td>{}</td>\
         <td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td></tr>\n</tbody>\n</table>\n",
        p.confusion.total(),
        p.confusion.total(),
        p.confusion.correct(),
        m.0,
        m.1,
        m.2,
        overall_accuracy(p.confusion)
    ));
    h.push_str(
        "<p>accuracy: the share of the class's test images predicted correctly (it equals recall); \
         precision: the share of the images predicted as the class that are of it.</p>\n",
    );
    for (file, alt, bytes) in &p.pictures {
        let mime = if file.ends_with(".svg") {
            "image/svg+xml"
        } else {
            "image/png"
        };
        h.push_str(&format!(
            "<h2>{}</h2>\n<img alt=\"{}\" data-file=\"{}\" src=\"{}\">\n",
            escape(alt),
            escape(alt),
            escape(file),
            data_uri(mime, bytes)
        ));
    }
    h.push_str(&format!(
        "<h2>As printed</h2>\n<pre>{}</pre>\n</body>\n</html>\n",
        escape(p.table)
    ));
    h
}
