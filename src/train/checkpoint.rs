//! Checkpoints: everything needed to resume a run and end with the same weights as an uninterrupted
//! one. Written at the end of every epoch and when Ctrl-C stops a run, into `<out>/checkpoint/`:
//! the model files (`model.json`, `weights.bin`), the optimizer's state (`optimizer.bin`, the flat
//! padded state vectors as little-endian f32) and `progress.json` (epoch, batch, step, the settings
//! that fix the data order, the history so far and the partial epoch's metric sums).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::io::{ModelFileError, SavedModel, write_atomic};
use crate::optimizer::Optimizer;
use crate::train::{EpochLog, FitConfig, Progress};

pub const CHECKPOINT_DIR: &str = "checkpoint";
const PROGRESS_FILE: &str = "progress.json";
const OPTIMIZER_FILE: &str = "optimizer.bin";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub progress: Progress,
    pub fit: FitConfig,
    pub optimizer: Optimizer,
    pub validation_split: f64,
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

#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub model: SavedModel,
    pub optimizer_state: Vec<Vec<f32>>,
    pub state: RunState,
}

fn malformed(path: &Path, message: impl Into<String>) -> ModelFileError {
    ModelFileError::Malformed {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl Checkpoint {
    pub fn save(&self, dir: &Path) -> Result<(), ModelFileError> {
        self.model.save(dir)?;
        let mut bytes = Vec::new();
        for state in &self.optimizer_state {
            for v in state {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
        write_atomic(&dir.join(OPTIMIZER_FILE), &bytes)?;
        // Written last: a checkpoint folder is complete exactly when it has a progress.json whose
        // files all match it.
        let json = serde_json::to_vec_pretty(&self.state).expect("run state serialises");
        write_atomic(&dir.join(PROGRESS_FILE), &json)
    }

    pub fn load(dir: &Path) -> Result<Checkpoint, ModelFileError> {
        let progress_path = dir.join(PROGRESS_FILE);
        let json = std::fs::read(&progress_path).map_err(|source| ModelFileError::Io {
            path: progress_path.clone(),
            source,
        })?;
        let state: RunState =
            serde_json::from_slice(&json).map_err(|e| malformed(&progress_path, e.to_string()))?;
        state
            .check()
            .map_err(|message| malformed(&progress_path, message))?;
        let model = SavedModel::load(dir)?;
        let opt_path = dir.join(OPTIMIZER_FILE);
        let bytes = std::fs::read(&opt_path).map_err(|source| ModelFileError::Io {
            path: opt_path.clone(),
            source,
        })?;
        let words = model.params.len();
        let buffers = state.optimizer.state_buffers();
        if bytes.len() != words * buffers * 4 {
            return Err(malformed(
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
