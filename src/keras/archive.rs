//! The `.keras` archive: a zip of `metadata.json`, `config.json` (the architecture, as in
//! `to_json`) and `model.weights.h5` (Keras 3's layout). Keras stores the members uncompressed;
//! we write them the same way and read stored or deflated members.

use std::io::{Read, Write};
use std::path::Path;

use serde_json::Value;
use zip::write::SimpleFileOptions;

use super::{ConfigError, KERAS_VERSION, KerasError, SavedModel, h5, model_to_json};
use crate::layers::keras::{malformed, unsupported};
use crate::optimizer::Optimizer;

const METADATA: &str = "metadata.json";
const CONFIG: &str = "config.json";
const WEIGHTS: &str = "model.weights.h5";

/// The archive's bytes, `weights` being Keras 3's `.weights.h5` for `saved`.
pub fn keras_archive(saved: &SavedModel, weights: &[u8]) -> Result<Vec<u8>, String> {
    let config = model_to_json(&saved.model)?;
    let metadata = serde_json::json!({
        "keras_version": KERAS_VERSION,
        // Keras writes "%Y-%m-%d@%H:%M:%S" and never reads it back; ours is UTC.
        "date_saved": date_saved(std::time::SystemTime::now()),
        "saved_by": concat!("cifar-wgpu ", env!("CARGO_PKG_VERSION")),
    })
    .to_string();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in [
        (METADATA, metadata.as_bytes()),
        (CONFIG, config.as_bytes()),
        (WEIGHTS, weights),
    ] {
        zip.start_file(name, options).map_err(|e| e.to_string())?;
        zip.write_all(bytes).map_err(|e| e.to_string())?;
    }
    Ok(zip.finish().map_err(|e| e.to_string())?.into_inner())
}

/// Opens a `.keras` archive. The file may be at most [`super::MAX_WEIGHTS_FILE`] plus
/// [`super::MAX_JSON_FILE`] bytes; each member is read within its cap, checked against what the zip
/// declares and against what it really inflates to (a deflate bomb stops at the cap).
pub fn load_archive(path: &Path) -> Result<SavedModel, KerasError> {
    let mut zip = open_zip(path)?;
    let config = member(&mut zip, path, CONFIG, super::MAX_JSON_FILE)?;
    let weights = member(&mut zip, path, WEIGHTS, super::MAX_WEIGHTS_FILE)?;
    let inner = path.join(CONFIG);
    let text =
        String::from_utf8(config).map_err(|_| KerasError::malformed(&inner, "not UTF-8 text"))?;
    let model = super::model_from_json(&text).map_err(|e| e.at(&inner))?;
    super::check_model(&inner, &model)?;
    let inner = path.join(WEIGHTS);
    let file = h5::open(&inner, weights)?;
    h5::load_weights(&inner, &file, model)
}

/// The text of a `.keras` archive's `config.json` (the architecture and compile settings), its
/// weights left unread: `train --config` starts from fresh ones.
pub fn archive_config(path: &Path) -> Result<String, KerasError> {
    let mut zip = open_zip(path)?;
    let config = member(&mut zip, path, CONFIG, super::MAX_JSON_FILE)?;
    String::from_utf8(config)
        .map_err(|_| KerasError::malformed(&path.join(CONFIG), "not UTF-8 text"))
}

type Zip = zip::ZipArchive<std::io::Cursor<Vec<u8>>>;

fn open_zip(path: &Path) -> Result<Zip, KerasError> {
    let max_file = super::MAX_WEIGHTS_FILE + super::MAX_JSON_FILE;
    let bytes = super::read_capped(path, max_file)?;
    zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| {
        KerasError::malformed(path, format!("not a .keras archive (unreadable zip): {e}"))
    })
}

/// The member `name`, read within `max` bytes.
fn member(zip: &mut Zip, path: &Path, name: &str, max: u64) -> Result<Vec<u8>, KerasError> {
    let f = zip.by_name(name).map_err(|e| {
        KerasError::malformed(
            path,
            format!("not a .keras archive: no {name} inside ({e})"),
        )
    })?;
    let too_large = |size: u64| {
        KerasError::malformed(
            path,
            format!("{name} inside is {size} bytes or more; at most {max} are read"),
        )
    };
    if f.size() > max {
        return Err(too_large(f.size()));
    }
    let mut out = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| KerasError::malformed(path, format!("{name} inside: {e}")))?;
    if out.len() as u64 > max {
        return Err(too_large(out.len() as u64));
    }
    Ok(out)
}

/// The optimizer a model's `compile_config` names (Keras 3 writes it at the root of a compiled
/// model's `config.json` and `to_json()`), after checking that its loss is the one we train: the
/// categorical cross-entropy of a softmax output, on one-hot or integer labels alike. `None` when
/// the model was not compiled. The metrics are not read: loss and accuracy are always reported.
pub fn compile_optimizer(root: &Value) -> Result<Option<Optimizer>, ConfigError> {
    let config = match root.get("compile_config") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(c)) if c.is_empty() => return Ok(None),
        Some(Value::Object(c)) => c,
        Some(other) => {
            return Err(malformed(format!(
                "compile_config {other} is not an object"
            )));
        }
    };
    let refuse =
        |key: &str, v: &Value| unsupported(format!("compile_config: {key} = {v} is not supported"));
    for (key, v) in config {
        match key.as_str() {
            "optimizer" | "loss" | "metrics" | "weighted_metrics" => {}
            // How Keras runs the step, not what it computes.
            "run_eagerly" | "steps_per_execution" | "jit_compile" | "auto_scale_loss" => {}
            "loss_weights" if v.is_null() => {}
            _ => return Err(refuse(key, v)),
        }
    }
    if let Some(loss) = config.get("loss").filter(|v| !v.is_null()) {
        check_loss(loss).map_err(|()| refuse("loss", loss))?;
    }
    match config.get("optimizer").filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(v) => Optimizer::from_keras(v)
            .map(Some)
            .map_err(|e| unsupported(format!("compile_config: {e}"))),
    }
}

/// Whether `loss` (a name or a Keras loss object) is the categorical cross-entropy we train, with
/// Keras' defaults for everything that would change it.
fn check_loss(loss: &Value) -> Result<(), ()> {
    let (class, config) = match loss {
        Value::String(s) => (s.as_str(), None),
        Value::Object(o) => (
            o.get("class_name").and_then(Value::as_str).ok_or(())?,
            o.get("config").and_then(Value::as_object),
        ),
        _ => return Err(()),
    };
    let key: String = class
        .chars()
        .filter(|&c| c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if !matches!(
        key.as_str(),
        "categoricalcrossentropy" | "sparsecategoricalcrossentropy"
    ) {
        return Err(());
    }
    for (k, v) in config.into_iter().flatten() {
        let fine = match k.as_str() {
            "name" | "dtype" => true,
            "from_logits" => *v == Value::Bool(false),
            "label_smoothing" => v.as_f64() == Some(0.0),
            "axis" => v.as_i64() == Some(-1),
            "reduction" => v.is_null() || v == "sum_over_batch_size" || v == "auto",
            "ignore_class" => v.is_null(),
            _ => false,
        };
        if !fine {
            return Err(());
        }
    }
    Ok(())
}

/// `%Y-%m-%d@%H:%M:%S` in UTC, as Keras formats `date_saved`.
fn date_saved(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}@{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn date_saved_is_keras_format_in_utc() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_885_261);
        assert_eq!(super::date_saved(t), "2026-11-28@17:01:01");
        assert_eq!(
            super::date_saved(std::time::UNIX_EPOCH),
            "1970-01-01@00:00:00"
        );
    }
}
