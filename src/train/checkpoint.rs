//! Checkpoints: everything needed to resume a run and end with the same weights as an uninterrupted
//! one. Written at the end of every epoch and when Ctrl-C stops a run, into `<out>/checkpoint/`:
//! the model files (`model.json`, `weights.bin`), the optimizer's state (`optimizer.bin`, the flat
//! padded state vectors as little-endian f32), `progress.json` (epoch, batch, step, every setting of
//! the run, the history so far and the partial epoch's metric sums) and `manifest.json`.
//!
//! The manifest holds the run's id (made when the run started, kept by every resume), its progress
//! and the size and SHA-256 of each other file. The five files are published as one set by a folder
//! swap ([`crate::model::folder`]), the manifest last, so a crash leaves the previous checkpoint or
//! this one; loading checks every file against the manifest and the progress against its id, so a
//! file from another run or from a half-written set is refused by name rather than resumed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::folder;
use crate::model::io::{MODEL_FILE, ModelFileError, SavedModel, WEIGHTS_FILE};
use crate::optimizer::Optimizer;
use crate::train::{EpochLog, FitConfig, Progress};

pub const CHECKPOINT_DIR: &str = "checkpoint";
const PROGRESS_FILE: &str = "progress.json";
const OPTIMIZER_FILE: &str = "optimizer.bin";
pub const MANIFEST_FILE: &str = "manifest.json";
const MANIFEST_FORMAT: &str = "cifar-wgpu-checkpoint/1";

/// What `train` was asked for beyond the fit, optimizer and validation settings: with them, every
/// setting that decides the run's result, so that `--resume DIR` alone continues the same run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Made when the run started (128 random bits, hex); every resume keeps it.
    pub run_id: String,
    /// `--data`, absolute; `None` for CIFAR-10 from the cache or a download.
    pub data: Option<PathBuf>,
    /// `--image-size` (height, width).
    pub image_size: Option<(usize, usize)>,
    /// The data set the run read, checked again when it resumes.
    pub dataset: DataRecord,
    /// `--out`, absolute.
    pub out: PathBuf,
    /// `--preset` (its flag value) when the run started from fresh weights.
    pub preset: Option<String>,
    /// `--model` when the run started from a saved model.
    pub model: Option<PathBuf>,
    /// `--tiling` (its flag value): the kernel flavours, which decide the arithmetic's order.
    pub tiling: String,
}

/// A data set as a run saw it: enough to tell that a resumed run reads the same images.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataRecord {
    pub name: String,
    pub train_images: usize,
    pub test_images: usize,
    /// SHA-256 of the training images followed by their labels.
    pub train_sha256: String,
}

impl DataRecord {
    pub fn of(ds: &crate::data::Dataset) -> DataRecord {
        let mut h = Sha256::new();
        h.update(&ds.train.images);
        h.update(&ds.train.labels);
        DataRecord {
            name: ds.name.clone(),
            train_images: ds.train.len(),
            test_images: ds.test.len(),
            train_sha256: hex(&h.finalize()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub progress: Progress,
    pub fit: FitConfig,
    pub optimizer: Optimizer,
    pub validation_split: f64,
    pub run: RunRecord,
    pub history: Vec<EpochLog>,
    /// The training metric sums of the unfinished epoch (words of the GPU's metrics tensor).
    pub partial_metrics: [u32; 4],
}

impl RunState {
    /// The settings a resumed run divides by or loops over must be usable: a hand-edited or corrupt
    /// progress.json is refused here rather than dividing by zero mid-run.
    fn check(&self) -> Result<(), String> {
        let fit = &self.fit;
        if fit.batch_size == 0 || fit.epochs == 0 {
            return Err(format!(
                "batch size {} and epochs {} must both be at least 1",
                fit.batch_size, fit.epochs
            ));
        }
        if !(0.0..1.0).contains(&self.validation_split) {
            return Err(format!(
                "validation split {} must be at least 0 and below 1",
                self.validation_split
            ));
        }
        if self.progress.epoch > fit.epochs {
            return Err(format!(
                "{} epochs done of a run of {}",
                self.progress.epoch, fit.epochs
            ));
        }
        Ok(())
    }
}

/// `manifest.json`: the run, its progress and each other file's size and digest.
#[derive(Serialize, Deserialize)]
struct Manifest {
    format: String,
    run_id: String,
    epoch: usize,
    batch: usize,
    step: u64,
    files: BTreeMap<String, FileDigest>,
}

#[derive(Serialize, Deserialize, PartialEq)]
struct FileDigest {
    bytes: u64,
    sha256: String,
}

impl FileDigest {
    fn of(bytes: &[u8]) -> FileDigest {
        FileDigest {
            bytes: bytes.len() as u64,
            sha256: sha256_hex(bytes),
        }
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a checkpoint cannot be loaded or written; every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    File(#[from] ModelFileError),
    #[error("{path}: {message}")]
    Refused { path: PathBuf, message: String },
}

fn refused(path: &Path, message: impl Into<String>) -> CheckpointError {
    CheckpointError::Refused {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    std::fs::read(path).map_err(|source| {
        ModelFileError::Io {
            path: path.to_path_buf(),
            source,
        }
        .into()
    })
}

#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub model: SavedModel,
    pub optimizer_state: Vec<Vec<f32>>,
    pub state: RunState,
}

impl Checkpoint {
    /// The checkpoint's files, the manifest last.
    pub fn files(&self) -> Result<Vec<(&'static str, Vec<u8>)>, ModelFileError> {
        let mut files = self.model.files()?;
        let mut optimizer = Vec::new();
        for state in &self.optimizer_state {
            for v in state {
                optimizer.extend_from_slice(&v.to_le_bytes());
            }
        }
        files.push((OPTIMIZER_FILE, optimizer));
        let json = serde_json::to_vec_pretty(&self.state).expect("run state serialises");
        files.push((PROGRESS_FILE, json));
        let p = &self.state.progress;
        let manifest = Manifest {
            format: MANIFEST_FORMAT.into(),
            run_id: self.state.run.run_id.clone(),
            epoch: p.epoch,
            batch: p.batch,
            step: p.step,
            files: files
                .iter()
                .map(|(name, bytes)| (name.to_string(), FileDigest::of(bytes)))
                .collect(),
        };
        let json = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
        files.push((MANIFEST_FILE, json));
        Ok(files)
    }

    /// Publishes the checkpoint's files in `dir` as one set (a folder swap), replacing the previous
    /// checkpoint's.
    pub fn save(&self, dir: &Path) -> Result<(), ModelFileError> {
        folder::replace_files(dir, &self.files()?)?;
        Ok(())
    }

    /// Reads the checkpoint in `dir`, refusing any file that its manifest does not vouch for.
    pub fn load(dir: &Path) -> Result<Checkpoint, CheckpointError> {
        let manifest_path = dir.join(MANIFEST_FILE);
        if !manifest_path.is_file() && dir.join(PROGRESS_FILE).is_file() {
            return Err(refused(
                &manifest_path,
                "missing: the checkpoint's files cannot be checked against each other (a save \
                 that never finished, or a checkpoint from a version without manifests); start a \
                 new run",
            ));
        }
        let manifest: Manifest = serde_json::from_slice(&read(&manifest_path)?)
            .map_err(|e| refused(&manifest_path, format!("not a checkpoint manifest: {e}")))?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(refused(
                &manifest_path,
                format!("format '{}', expected '{MANIFEST_FORMAT}'", manifest.format),
            ));
        }
        let names = [WEIGHTS_FILE, MODEL_FILE, OPTIMIZER_FILE, PROGRESS_FILE];
        let listed: Vec<&str> = manifest.files.keys().map(String::as_str).collect();
        let mut expected = names.to_vec();
        expected.sort_unstable();
        if listed != expected {
            return Err(refused(
                &manifest_path,
                format!("lists {listed:?}, a checkpoint has {expected:?}"),
            ));
        }
        let mut contents = BTreeMap::new();
        for name in names {
            let path = dir.join(name);
            let bytes = read(&path)?;
            if FileDigest::of(&bytes) != manifest.files[name] {
                return Err(refused(
                    &path,
                    format!(
                        "does not match the checkpoint's {MANIFEST_FILE} (size or SHA-256): a file \
                         from another run or from a save that never finished; this checkpoint \
                         cannot be resumed"
                    ),
                ));
            }
            contents.insert(name, bytes);
        }
        let progress_path = dir.join(PROGRESS_FILE);
        let state: RunState = serde_json::from_slice(&contents[PROGRESS_FILE])
            .map_err(|e| refused(&progress_path, e.to_string()))?;
        let p = &state.progress;
        if state.run.run_id != manifest.run_id
            || (p.epoch, p.batch, p.step) != (manifest.epoch, manifest.batch, manifest.step)
        {
            return Err(refused(
                &progress_path,
                format!(
                    "run {} at epoch {}, batch {}, step {}, but {MANIFEST_FILE} says run {} at \
                     epoch {}, batch {}, step {}: the files come from different checkpoints",
                    state.run.run_id,
                    p.epoch,
                    p.batch,
                    p.step,
                    manifest.run_id,
                    manifest.epoch,
                    manifest.batch,
                    manifest.step
                ),
            ));
        }
        state
            .check()
            .map_err(|message| refused(&progress_path, message))?;
        let model = SavedModel::load(dir)?;
        let opt_path = dir.join(OPTIMIZER_FILE);
        let bytes = &contents[OPTIMIZER_FILE];
        let words = model.params.len();
        let buffers = state.optimizer.state_buffers();
        if bytes.len() != words * buffers * 4 {
            return Err(refused(
                &opt_path,
                format!(
                    "{} bytes; {buffers} state vectors of {words} values need {}",
                    bytes.len(),
                    words * buffers * 4
                ),
            ));
        }
        let values: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let optimizer_state = values
            .chunks(words.max(1))
            .take(buffers)
            .map(<[f32]>::to_vec)
            .collect();
        Ok(Checkpoint {
            model,
            optimizer_state,
            state,
        })
    }
}

/// `<out>/checkpoint`.
pub fn checkpoint_dir(out: &Path) -> PathBuf {
    out.join(CHECKPOINT_DIR)
}
