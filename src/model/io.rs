//! Our own model files (Keras' are in `crate::keras`): `model.json` (architecture, class names,
//! tensor names and shapes) and `weights.bin` (every parameter tensor as little-endian f32, in the
//! order and shape `model.json` lists, Keras' own layouts). Files are written to a temporary name and
//! renamed, so a crash never leaves a half-written model that looks complete; `train` replaces them
//! together with the Keras and history files in one folder swap ([`super::folder`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Sequential;

pub const MODEL_FILE: &str = "model.json";
pub const WEIGHTS_FILE: &str = "weights.bin";
const FORMAT: &str = "cifar-wgpu-model/1";

#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a cifar-wgpu model file: {message}")]
    Malformed { path: PathBuf, message: String },
}

#[derive(Serialize, Deserialize)]
struct ModelFile {
    format: String,
    model: Sequential,
    class_names: Vec<String>,
    tensors: Vec<TensorEntry>,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct TensorEntry {
    name: String,
    shape: Vec<usize>,
}

/// A trained model in memory: architecture, class names and the flat (padded) parameter vector.
#[derive(Clone, Debug, PartialEq)]
pub struct SavedModel {
    pub model: Sequential,
    pub class_names: Vec<String>,
    pub params: Vec<f32>,
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ModelFileError> {
    let io = |source| ModelFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// The architecture alone of a `model.json` (`train --config` starts it from fresh weights): its
/// format checked and the model validated; class names, tensors and weights are not needed.
pub fn architecture_from_json(text: &str) -> Result<Sequential, String> {
    #[derive(Deserialize)]
    struct Architecture {
        format: String,
        model: Sequential,
    }
    let file: Architecture = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if file.format != FORMAT {
        return Err(format!("format '{}', expected '{FORMAT}'", file.format));
    }
    file.model.validate().map_err(|e| e.to_string())?;
    Ok(file.model)
}

/// Whether a JSON document is one of our `model.json` files (by its `format`).
pub fn is_model_file(root: &serde_json::Value) -> bool {
    root.get("format")
        .and_then(serde_json::Value::as_str)
        .is_some_and(|f| f.starts_with("cifar-wgpu-model"))
}

impl SavedModel {
    /// `weights.bin` and `model.json` as bytes, in the order [`SavedModel::save`] writes them.
    pub fn files(&self) -> Result<Vec<(&'static str, Vec<u8>)>, ModelFileError> {
        let malformed = |message: String| ModelFileError::Malformed {
            path: PathBuf::from(MODEL_FILE),
            message,
        };
        let tensors = self
            .model
            .param_tensors()
            .map_err(|e| malformed(e.to_string()))?;
        let mut weights = Vec::new();
        for t in &tensors {
            for v in &self.params[t.offset..t.offset + t.len] {
                weights.extend_from_slice(&v.to_le_bytes());
            }
        }
        let file = ModelFile {
            format: FORMAT.into(),
            model: self.model.clone(),
            class_names: self.class_names.clone(),
            tensors: tensors
                .iter()
                .map(|t| TensorEntry {
                    name: t.name.clone(),
                    shape: t.shape.clone(),
                })
                .collect(),
        };
        let json = serde_json::to_vec_pretty(&file).expect("model serialises");
        Ok(vec![(WEIGHTS_FILE, weights), (MODEL_FILE, json)])
    }

    /// Writes `model.json` and `weights.bin` into `dir`, each atomically but not as a pair in one
    /// step: weights first, so a `model.json` is only ever next to complete weights. To replace
    /// them together with other files, pass [`SavedModel::files`] to [`super::folder::replace_files`].
    pub fn save(&self, dir: &Path) -> Result<(), ModelFileError> {
        for (name, bytes) in self.files().map_err(|e| match e {
            ModelFileError::Malformed { message, .. } => ModelFileError::Malformed {
                path: dir.join(MODEL_FILE),
                message,
            },
            other => other,
        })? {
            write_atomic(&dir.join(name), &bytes)?;
        }
        Ok(())
    }

    pub fn load(dir: &Path) -> Result<SavedModel, ModelFileError> {
        let model_path = dir.join(MODEL_FILE);
        let weights_path = dir.join(WEIGHTS_FILE);
        let malformed = |message: String| ModelFileError::Malformed {
            path: model_path.clone(),
            message,
        };
        let json = std::fs::read(&model_path).map_err(|source| ModelFileError::Io {
            path: model_path.clone(),
            source,
        })?;
        let file: ModelFile =
            serde_json::from_slice(&json).map_err(|e| malformed(e.to_string()))?;
        if file.format != FORMAT {
            return Err(malformed(format!(
                "format '{}', expected '{FORMAT}'",
                file.format
            )));
        }
        file.model
            .validate()
            .map_err(|e| malformed(e.to_string()))?;
        let tensors = file
            .model
            .param_tensors()
            .map_err(|e| malformed(e.to_string()))?;
        let listed: Vec<TensorEntry> = tensors
            .iter()
            .map(|t| TensorEntry {
                name: t.name.clone(),
                shape: t.shape.clone(),
            })
            .collect();
        if listed != file.tensors {
            return Err(malformed(
                "the listed tensors do not match the architecture's".into(),
            ));
        }
        let classes = file.model.classes().map_err(|e| malformed(e.to_string()))?;
        if file.class_names.len() != classes {
            return Err(malformed(format!(
                "{} class names for a model with {classes} outputs",
                file.class_names.len()
            )));
        }
        let bytes = std::fs::read(&weights_path).map_err(|source| ModelFileError::Io {
            path: weights_path.clone(),
            source,
        })?;
        let want: usize = tensors.iter().map(|t| t.len * 4).sum();
        if bytes.len() != want {
            return Err(ModelFileError::Malformed {
                path: weights_path,
                message: format!("{} bytes, the architecture needs {want}", bytes.len()),
            });
        }
        let mut params = vec![
            0.0f32;
            file.model
                .param_words()
                .map_err(|e| malformed(e.to_string()))?
        ];
        let mut values = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        for t in &tensors {
            for p in &mut params[t.offset..t.offset + t.len] {
                *p = values.next().unwrap();
            }
        }
        Ok(SavedModel {
            model: file.model,
            class_names: file.class_names,
            params,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SavedModel {
        let model = Sequential::notebook([6, 6, 2], 3);
        let params = model.init_params(7).unwrap();
        SavedModel {
            model,
            class_names: vec!["a".into(), "b".into(), "c".into()],
            params,
        }
    }

    #[test]
    fn round_trip_keeps_every_weight() {
        let dir = tempfile::tempdir().unwrap();
        let m = small();
        m.save(dir.path()).unwrap();
        assert_eq!(SavedModel::load(dir.path()).unwrap(), m);
    }

    #[test]
    fn truncated_weights_and_bad_json_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        small().save(dir.path()).unwrap();
        let w = dir.path().join(WEIGHTS_FILE);
        let bytes = std::fs::read(&w).unwrap();
        std::fs::write(&w, &bytes[..bytes.len() - 4]).unwrap();
        let e = SavedModel::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("weights.bin") && e.contains("bytes"), "{e}");

        std::fs::write(dir.path().join(MODEL_FILE), b"{\"format\": 3").unwrap();
        let e = SavedModel::load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("model.json") && e.contains("not a cifar-wgpu model"),
            "{e}"
        );

        let e = SavedModel::load(&dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing"), "{e}");
    }

    /// Issue 11: sizes a file asks for are checked before anything is allocated; `units` 2^62 used
    /// to wrap the parameter count and panic. 2^31 units fit an output but not the kernel.
    #[test]
    fn sizes_that_overflow_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        small().save(dir.path()).unwrap();
        let path = dir.path().join(MODEL_FILE);
        let json = std::fs::read_to_string(&path).unwrap();
        for units in [1u64 << 62, u64::MAX, 1 << 33, 1 << 31] {
            let huge = json.replace("\"units\": 512", &format!("\"units\": {units}"));
            assert_ne!(huge, json);
            std::fs::write(&path, huge).unwrap();
            let e = SavedModel::load(dir.path()).unwrap_err().to_string();
            assert!(
                e.contains("model.json") && e.contains("'dense'") && e.contains("more than"),
                "{e}"
            );
        }
        let e = Sequential::notebook([1 << 40, 1 << 40, 3], 10)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("'input'") && e.contains("more than"), "{e}");
    }
}
