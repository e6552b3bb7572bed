//! Training and evaluation on the GPU: the model's buffers and dispatch programs (`network`), the
//! epoch loop that feeds them (`fit`), checkpoints, the files a finished run leaves (`output`), and
//! the profiler. `crate::session` strings them into whole runs.

pub mod checkpoint;
pub mod fit;
pub mod history;
pub mod network;
pub mod output;
pub mod profile;

pub use fit::{DeviceSplit, EpochLog, Event, FitConfig, Metrics, Progress, TrainError, Trainer};
pub use network::{Mode, Network};
