//! What a finished `train` leaves in its output folder: our model files, Keras' four files and the
//! history, published together by one folder swap ([`crate::model::folder`]), so that a crash or a
//! reader never meets a `model.keras` from one run next to a `model.json` from another. The
//! folder's other contents (`checkpoint/`, reports, the user's own files) are kept as they are.

use std::path::Path;

use crate::keras::{self, KerasError};
use crate::model::folder::{self, Swap};
use crate::model::io::SavedModel;
use crate::train::{EpochLog, history};

/// Writes `model.json`, `weights.bin`, `cifar10_architecture.json`, `cifar10_weights.h5`,
/// `model.weights.h5`, `model.keras`, `history.json` and `history.csv` into `out` in one step.
/// Every file is encoded before the folder is touched, so an encoding error changes nothing.
pub fn save_model_folder(
    out: &Path,
    saved: &SavedModel,
    history: &[EpochLog],
) -> Result<Swap, KerasError> {
    let mut files = model_files(saved)?;
    files.extend(history::files(history));
    Ok(folder::replace_files(out, &files)?)
}

/// `cifar-wgpu export`: a model loaded from anywhere (our folder, a checkpoint, Keras files) written
/// as our two files and Keras' four, in one swap like [`save_model_folder`].
pub fn export_model_folder(out: &Path, saved: &SavedModel) -> Result<Swap, KerasError> {
    Ok(folder::replace_files(out, &model_files(saved)?)?)
}

fn model_files(saved: &SavedModel) -> Result<Vec<(&'static str, Vec<u8>)>, KerasError> {
    let mut files = saved.files()?;
    files.extend(keras::keras_files(saved)?);
    Ok(files)
}
