//! `model.summary()` in Keras 3's layout.

use super::{ModelError, Sequential};

const WIDTHS: [usize; 3] = [33, 24, 15];

fn rule(left: char, fill: char, mid: char, right: char) -> String {
    let cells: Vec<String> = WIDTHS.iter().map(|&w| fill.to_string().repeat(w)).collect();
    format!("{left}{}{right}", cells.join(&mid.to_string()))
}

fn row(sep: char, cells: [&str; 3]) -> String {
    format!(
        "{sep} {:<a$} {sep} {:<b$} {sep} {:>c$} {sep}",
        cells[0],
        cells[1],
        cells[2],
        a = WIDTHS[0] - 2,
        b = WIDTHS[1] - 2,
        c = WIDTHS[2] - 2,
    )
}

/// A cell's text in lines of at most `width` characters, as Keras' table (rich) wraps a long layer
/// name: at spaces, cutting only a word longer than a line.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split(' ') {
        let chars: Vec<char> = word.chars().collect();
        for piece in chars.chunks(width) {
            let line = lines.last_mut().expect("never empty");
            let used = line.chars().count();
            if used == 0 {
                line.extend(piece);
            } else if used + 1 + piece.len() <= width {
                line.push(' ');
                line.extend(piece);
            } else {
                lines.push(piece.iter().collect());
            }
        }
    }
    lines
}

/// 4200842 -> "4,200,842".
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Keras' `readable_memory_size`: powers of 1024, two decimals.
fn memory(bytes: usize) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit + 1 < units.len() {
        size /= 1024.0;
        unit += 1;
    }
    format!("{size:.2} {}", units[unit])
}

pub fn render(model: &Sequential) -> Result<String, ModelError> {
    let shapes = model.output_shapes()?;
    let tensors = model.param_tensors()?;
    let mut lines = vec![
        format!("Model: \"{}\"", model.name),
        rule('┏', '━', '┳', '┓'),
        row('┃', ["Layer (type)", "Output Shape", "Param #"]),
        rule('┡', '━', '╇', '┩'),
    ];
    for (i, (l, shape)) in model.layers.iter().zip(&shapes).enumerate() {
        let params: usize = tensors.iter().filter(|t| t.layer == i).map(|t| t.len).sum();
        let name = format!("{} ({})", l.name, l.layer.kind().class_name());
        let name = wrap(&name, WIDTHS[0] - 2);
        lines.push(row('│', [&name[0], &shape.to_string(), &thousands(params)]));
        for more in &name[1..] {
            lines.push(row('│', [more, "", ""]));
        }
        if i + 1 < shapes.len() {
            lines.push(rule('├', '─', '┼', '┤'));
        }
    }
    lines.push(rule('└', '─', '┴', '┘'));
    let count = |trainable: bool| -> usize {
        tensors
            .iter()
            .filter(|t| trainable == t.trainable)
            .map(|t| t.len)
            .sum()
    };
    let (trainable, frozen) = (count(true), count(false));
    for (label, n) in [
        ("Total", trainable + frozen),
        ("Trainable", trainable),
        ("Non-trainable", frozen),
    ] {
        lines.push(format!(
            " {label} params: {} ({})",
            thousands(n),
            memory(n * 4)
        ));
    }
    Ok(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each (layer, output shape, parameters) row appears in the summary `s` as Keras prints it.
    fn assert_rows(s: &str, rows: &[(&str, &str, &str)]) {
        for (name, shape, params) in rows {
            let line = s
                .lines()
                .find(|l| l.contains(name))
                .unwrap_or_else(|| panic!("no {name}"));
            assert!(
                line.contains(shape) && line.trim_end_matches(" │").ends_with(params),
                "{line}"
            );
        }
    }

    #[test]
    fn notebook_summary_lists_ten_layers_and_keras_totals() {
        let s = Sequential::notebook([32, 32, 3], 10).summary().unwrap();
        println!("{s}");
        assert_rows(
            &s,
            &[
                ("conv2d (Conv2D)", "(None, 32, 32, 32)", "896"),
                ("activation (Activation)", "(None, 32, 32, 32)", "0"),
                ("max_pooling2d (MaxPooling2D)", "(None, 16, 16, 32)", "0"),
                ("dropout (Dropout)", "(None, 16, 16, 32)", "0"),
                ("flatten (Flatten)", "(None, 8192)", "0"),
                ("dense (Dense)", "(None, 512)", "4,194,816"),
                ("activation_1 (Activation)", "(None, 512)", "0"),
                ("dropout_1 (Dropout)", "(None, 512)", "0"),
                ("dense_1 (Dense)", "(None, 10)", "5,130"),
                ("activation_2 (Activation)", "(None, 10)", "0"),
            ],
        );
        assert!(s.contains(" Total params: 4,200,842 (16.02 MB)"));
        assert!(s.contains(" Non-trainable params: 0 (0.00 B)"));
    }

    #[test]
    fn the_deeper_preset_has_the_books_shapes_and_totals() {
        let s = Sequential::deeper([32, 32, 3], 10).summary().unwrap();
        println!("{s}");
        assert_rows(
            &s,
            &[
                ("conv2d (Conv2D)", "(None, 32, 32, 32)", "896"),
                ("conv2d_1 (Conv2D)", "(None, 32, 32, 32)", "9,248"),
                ("max_pooling2d (MaxPooling2D)", "(None, 16, 16, 32)", "0"),
                ("conv2d_2 (Conv2D)", "(None, 16, 16, 64)", "18,496"),
                ("conv2d_3 (Conv2D)", "(None, 14, 14, 64)", "36,928"),
                ("max_pooling2d_1 (MaxPooling2D)", "(None, 7, 7, 64)", "0"),
                ("flatten (Flatten)", "(None, 3136)", "0"),
                ("dense (Dense)", "(None, 512)", "1,606,144"),
                ("dense_1 (Dense)", "(None, 10)", "5,130"),
                ("activation_5 (Activation)", "(None, 10)", "0"),
            ],
        );
        assert!(s.contains(" Total params: 1,676,842"), "{s}");
    }

    #[test]
    fn long_layer_names_wrap_as_keras_wraps_them() {
        assert_eq!(
            wrap("global_average_pooling2d (GlobalAveragePooling2D)", 31),
            ["global_average_pooling2d", "(GlobalAveragePooling2D)"]
        );
        assert_eq!(wrap("conv2d (Conv2D)", 31), ["conv2d (Conv2D)"]);
        assert_eq!(wrap("abcdefgh (X)", 4), ["abcd", "efgh", "(X)"]);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(4200842), "4,200,842");
    }
}
