//! Keras' own model files: what the notebook saves, what `keras.models.load_model` opens, and
//! the files a model trained in Keras comes in.
//!
//! Written by [`save_keras_files`] into a folder, each atomically (temporary name, then rename), or
//! by `train` together with our own files in one folder swap ([`crate::train::output`]):
//!
//! - `cifar10_architecture.json` — what Keras 3's `model.to_json()` writes for the Sequential
//!   model (`module`, `class_name`, `config`, `registered_name`, `build_config`, an `InputLayer`
//!   with `batch_shape`, `DTypePolicy` objects), so `keras.models.model_from_json` rebuilds it;
//! - `cifar10_weights.h5` — the legacy HDF5 weights layout `model.load_weights` reads in Keras 2
//!   and 3: root attributes `layer_names`, `backend`, `keras_version` (fixed-length byte strings),
//!   a group per layer with a `weight_names` attribute, datasets `<layer>/<layer>/kernel:0` and
//!   `…/bias:0`;
//! - `model.weights.h5` — Keras 3's layout: `layers/<layer>/vars/0` (kernel), `…/1` (bias);
//! - `model.keras` — the zip `keras.models.load_model` opens: `metadata.json`, `config.json`,
//!   `model.weights.h5`.
//!
//! Read by [`load`]: a `.keras` archive, a Keras JSON with its weights (legacy `.h5` or Keras 3
//! `.weights.h5`), a whole model saved by `model.save("x.h5")`, or a folder holding any of these.
//!
//! Shapes are Keras' own and need no conversion, because our activations are channels-last:
//! Conv2D kernel `[kh, kw, in, out]`, Dense kernel `[in, out]`, and Flatten reads
//! (height, width, channel) with channel fastest — the first Dense kernel's row `(y * w + x) * c + ch`
//! belongs to pixel (y, x), channel ch, as in Keras with `data_format="channels_last"`.
//!
//! Class names are not in Keras' files. We write ours as an extra `class_names` root attribute of
//! both HDF5 files (Keras ignores attributes it does not know) and read it back when present;
//! otherwise a model with 10 outputs gets CIFAR-10's names and any other `class0`, `class1`, ….

mod archive;
mod config;
mod h5;

use std::path::{Path, PathBuf};

pub use crate::model::io::SavedModel;
pub use config::{Architecture, SUPPORTED, load_architecture, model_from_json, model_to_json};

/// The architecture, as the notebook names it (`model.to_json()`).
pub const ARCHITECTURE_FILE: &str = "cifar10_architecture.json";
/// Legacy HDF5 weights, as the notebook names them (`model.save_weights`).
pub const LEGACY_WEIGHTS_FILE: &str = "cifar10_weights.h5";
/// Keras 3's weights file.
pub const WEIGHTS_FILE: &str = "model.weights.h5";
/// Keras 3's archive (`model.save("model.keras")`).
pub const ARCHIVE_FILE: &str = "model.keras";

/// Largest architecture JSON (`config.json`, `*.json`) we read: 16 MiB. Keras writes about 5 KB
/// for a CIFAR model; even very deep models stay far below.
pub const MAX_JSON_FILE: u64 = 16 << 20;
/// Largest weights file (`.h5`, the `.keras` weights member) we read: 512 MiB, room for
/// [`MAX_PARAMS`] float64 values.
pub const MAX_WEIGHTS_FILE: u64 = 512 << 20;
/// Most parameters a model read from Keras files may have: 64 Mi (256 MiB as float32), checked
/// from the architecture before the parameter vector is allocated.
pub const MAX_PARAMS: u64 = 64 << 20;

/// The Keras version whose files ours copy (the golden files in `assets/keras/` come from it).
pub const KERAS_VERSION: &str = "3.15.1";

/// Everything that can go wrong reading or writing Keras files. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum KerasError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not what its name or place says (not HDF5, not JSON, not a zip, missing parts).
    #[error("{path}: {message}")]
    Malformed { path: PathBuf, message: String },
    /// A layer or setting we cannot run.
    #[error("{path}: {message}\nSupported: {SUPPORTED}")]
    Unsupported { path: PathBuf, message: String },
    /// The weights do not fit the architecture: a missing tensor, a wrong shape, a wrong count.
    #[error("{path}: the weights do not fit the architecture: {message}")]
    Mismatch { path: PathBuf, message: String },
}

impl KerasError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KerasError + '_ {
        move |source| KerasError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn malformed(path: &Path, message: impl Into<String>) -> KerasError {
        KerasError::Malformed {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    fn mismatch(path: &Path, message: impl Into<String>) -> KerasError {
        KerasError::Mismatch {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// Our own files' errors, where they happen while writing Keras' (same folder, same save).
impl From<crate::model::io::ModelFileError> for KerasError {
    fn from(e: crate::model::io::ModelFileError) -> KerasError {
        match e {
            crate::model::io::ModelFileError::Io { path, source } => {
                KerasError::Io { path, source }
            }
            crate::model::io::ModelFileError::Malformed { ref path, .. } => {
                KerasError::malformed(path, e.to_string())
            }
        }
    }
}

/// Class names when the files do not say: CIFAR-10's for 10 classes, else `class0`, `class1`, ….
pub fn default_class_names(classes: usize) -> Vec<String> {
    if classes == crate::data::CIFAR10_CLASSES.len() {
        crate::data::CIFAR10_CLASSES
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        (0..classes).map(|i| format!("class{i}")).collect()
    }
}

/// The four Keras files, as bytes, in the order [`save_keras_files`] writes them.
pub fn keras_files(saved: &SavedModel) -> Result<Vec<(&'static str, Vec<u8>)>, KerasError> {
    let here = Path::new(ARCHITECTURE_FILE);
    check_params(saved, here)?;
    let json = model_to_json(&saved.model).map_err(|e| KerasError::malformed(here, e))?;
    let legacy = h5::legacy_weights(saved).map_err(|e| KerasError::malformed(here, e))?;
    let weights = h5::keras3_weights(saved).map_err(|e| KerasError::malformed(here, e))?;
    let archive =
        archive::keras_archive(saved, &weights).map_err(|e| KerasError::malformed(here, e))?;
    Ok(vec![
        (LEGACY_WEIGHTS_FILE, legacy),
        (ARCHITECTURE_FILE, json.into_bytes()),
        (WEIGHTS_FILE, weights),
        (ARCHIVE_FILE, archive),
    ])
}

/// Writes `cifar10_architecture.json`, `cifar10_weights.h5`, `model.weights.h5` and `model.keras`
/// into `dir` (created if needed), each through a temporary file and a rename, weights before the
/// architecture that refers to them.
pub fn save_keras_files(dir: &Path, saved: &SavedModel) -> Result<(), KerasError> {
    for (name, bytes) in keras_files(saved)? {
        crate::model::io::write_atomic(&dir.join(name), &bytes)?;
    }
    Ok(())
}

fn check_params(saved: &SavedModel, path: &Path) -> Result<(), KerasError> {
    let words = saved
        .model
        .param_words()
        .map_err(|e| KerasError::malformed(path, e.to_string()))?;
    if saved.params.len() != words {
        return Err(KerasError::malformed(
            path,
            format!(
                "{} parameters in memory, the architecture lays out {words}",
                saved.params.len()
            ),
        ));
    }
    Ok(())
}

/// Opens a Keras model: a `.keras` archive, a `.json` architecture (its weights found next to it:
/// `<stem>.weights.h5`, `<stem>.h5`, `<x>_weights.h5` for `<x>_architecture.json`,
/// `cifar10_weights.h5`, `model.weights.h5`), an `.h5` file (a whole model from `model.save`, or
/// weights with an architecture next to them, looked up the same way), or a folder holding
/// `model.keras` or `cifar10_architecture.json` + weights.
pub fn load(path: &Path) -> Result<SavedModel, KerasError> {
    if path.is_dir() {
        if path.join(ARCHIVE_FILE).is_file() {
            return archive::load_archive(&path.join(ARCHIVE_FILE));
        }
        if path.join(ARCHITECTURE_FILE).is_file() {
            return load(&path.join(ARCHITECTURE_FILE));
        }
        return Err(KerasError::malformed(
            path,
            format!("no Keras model here: looked for {ARCHIVE_FILE} and {ARCHITECTURE_FILE}"),
        ));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if name.ends_with(".keras") {
        return archive::load_archive(path);
    }
    if name.ends_with(".json") {
        let weights = weights_next_to(path).ok_or_else(|| {
            KerasError::malformed(
                path,
                "no weights file next to this architecture (looked for <name>.weights.h5, \
                 <name>.h5, <name>_weights.h5, cifar10_weights.h5, model.weights.h5); \
                 name the weights file too",
            )
        })?;
        return load_pair(path, &weights);
    }
    if name.ends_with(".h5") || name.ends_with(".hdf5") {
        let bytes = read_capped(path, MAX_WEIGHTS_FILE)?;
        let file = h5::open(path, bytes)?;
        if let Some(json) = h5::model_config(path, &file)? {
            let model = model_from_json(&json).map_err(|m| m.at(path))?;
            check_model(path, &model)?;
            return h5::load_weights(path, &file, model);
        }
        let json = architecture_next_to(path).ok_or_else(|| {
            KerasError::malformed(
                path,
                "weights only, and no architecture next to them (looked for <name>.json, \
                 <name>_architecture.json, cifar10_architecture.json); name the JSON too",
            )
        })?;
        return load_pair(&json, path);
    }
    Err(KerasError::malformed(
        path,
        "not a Keras file: expected a folder, .keras, .json (+ weights) or .h5",
    ))
}

/// Opens an architecture (`model.to_json()`, Keras 2 or 3) with its weights (legacy `.h5` or
/// Keras 3 `.weights.h5`; which one is found from the file's content).
pub fn load_pair(json: &Path, weights: &Path) -> Result<SavedModel, KerasError> {
    let text = String::from_utf8(read_capped(json, MAX_JSON_FILE)?)
        .map_err(|_| KerasError::malformed(json, "not UTF-8 text"))?;
    let model = model_from_json(&text).map_err(|m| m.at(json))?;
    check_model(json, &model)?;
    let bytes = read_capped(weights, MAX_WEIGHTS_FILE)?;
    let file = h5::open(weights, bytes)?;
    h5::load_weights(weights, &file, model)
}

/// Refuses an architecture read from `path` before anything is sized from it: an input shape no
/// image can fill (a side of 0, or 2^32), or more than [`MAX_PARAMS`] parameters (counted with
/// checked arithmetic, so `units` 10^12 is an error, not an allocation).
fn check_model(path: &Path, model: &crate::model::Sequential) -> Result<(), KerasError> {
    crate::data::check_input_shape(model.input_shape)
        .map_err(|m| KerasError::malformed(path, m))?;
    let tensors = model
        .param_tensors()
        .map_err(|e| KerasError::malformed(path, e.to_string()))?;
    let total = tensors.iter().try_fold(0u64, |sum, t| {
        let n = t
            .shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64))?;
        sum.checked_add(n)
    });
    match total {
        Some(n) if n <= MAX_PARAMS => Ok(()),
        _ => Err(KerasError::malformed(
            path,
            format!(
                "the architecture has {} parameters; models of at most {MAX_PARAMS} are read",
                total.map_or("more than 2^64".to_string(), |n| n.to_string())
            ),
        )),
    }
}

/// The whole file, refused without reading it when it is over `max` bytes (and read with `max` as
/// a bound, should it grow meanwhile).
fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>, KerasError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(KerasError::io(path))?;
    let size = file.metadata().map_err(KerasError::io(path))?.len();
    let too_large = |size: u64| {
        KerasError::malformed(
            path,
            format!("{size} bytes or more; files of this kind are read up to {max} bytes"),
        )
    };
    if size > max {
        return Err(too_large(size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(KerasError::io(path))?;
    if bytes.len() as u64 > max {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Whether `path` looks like a Keras model rather than our own folder (`model.json` +
/// `weights.bin`): a `.keras`, `.json` other than `model.json`, `.h5`, or a folder with Keras files
/// and no `model.json`.
pub fn is_keras_path(path: &Path) -> bool {
    if path.is_dir() {
        return !path.join(crate::model::io::MODEL_FILE).is_file()
            && (path.join(ARCHIVE_FILE).is_file() || path.join(ARCHITECTURE_FILE).is_file());
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    name.ends_with(".keras")
        || name.ends_with(".h5")
        || name.ends_with(".hdf5")
        || (name.ends_with(".json") && name != crate::model::io::MODEL_FILE)
}

fn first_file(candidates: impl IntoIterator<Item = PathBuf>) -> Option<PathBuf> {
    candidates.into_iter().find(|p| p.is_file())
}

fn weights_next_to(json: &Path) -> Option<PathBuf> {
    let dir = json.parent().unwrap_or(Path::new("."));
    let name = json.file_name()?.to_string_lossy().to_string();
    let stem = name.strip_suffix(".json").unwrap_or(&name);
    let mut c = vec![
        dir.join(format!("{stem}.weights.h5")),
        dir.join(format!("{stem}.h5")),
    ];
    if let Some(base) = stem.strip_suffix("_architecture") {
        c.push(dir.join(format!("{base}_weights.h5")));
        c.push(dir.join(format!("{base}.weights.h5")));
    }
    c.push(dir.join(LEGACY_WEIGHTS_FILE));
    c.push(dir.join(WEIGHTS_FILE));
    first_file(c)
}

fn architecture_next_to(weights: &Path) -> Option<PathBuf> {
    let dir = weights.parent().unwrap_or(Path::new("."));
    let name = weights.file_name()?.to_string_lossy().to_string();
    let stem = name
        .strip_suffix(".weights.h5")
        .or_else(|| name.strip_suffix(".h5"))
        .or_else(|| name.strip_suffix(".hdf5"))
        .unwrap_or(&name);
    let mut c = vec![dir.join(format!("{stem}.json"))];
    if let Some(base) = stem.strip_suffix("_weights") {
        c.push(dir.join(format!("{base}_architecture.json")));
        c.push(dir.join(format!("{base}.json")));
    }
    c.push(dir.join(format!("{stem}_architecture.json")));
    c.push(dir.join(ARCHITECTURE_FILE));
    first_file(c)
}

/// A problem found in a JSON architecture, before we know which file it came from.
#[derive(Debug)]
pub struct ConfigError {
    pub unsupported: bool,
    pub message: String,
}

impl ConfigError {
    fn at(self, path: &Path) -> KerasError {
        if self.unsupported {
            KerasError::Unsupported {
                path: path.to_path_buf(),
                message: self.message,
            }
        } else {
            KerasError::malformed(path, self.message)
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.unsupported {
            write!(f, "{}\nSupported: {SUPPORTED}", self.message)
        } else {
            f.write_str(&self.message)
        }
    }
}
