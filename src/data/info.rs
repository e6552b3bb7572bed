//! `cifar-wgpu data info`: what is cached, where, and what the data set holds.

use std::fmt;
use std::path::PathBuf;

use super::verify::{self, Verified};
use super::{DataError, DataOptions, Dataset, cache_candidates, cache_dir, keras_copy, read};

/// The checksum state of a cached archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChecksumState {
    /// Matches the published size, MD5 and SHA-256.
    Verified(Verified),
    /// Does not match; the message says how.
    Mismatch(String),
}

/// One archive in the cache folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedArchive {
    pub path: PathBuf,
    pub size: u64,
    pub state: ChecksumState,
}

/// Counts and names of a data set, without its pixels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetSummary {
    pub name: String,
    pub source: PathBuf,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub class_names: Vec<String>,
    pub train: usize,
    pub test: usize,
    pub train_per_class: Vec<usize>,
    pub test_per_class: Vec<usize>,
}

impl DatasetSummary {
    pub fn of(ds: &Dataset) -> Self {
        DatasetSummary {
            name: ds.name.clone(),
            source: ds.source.clone(),
            height: ds.height,
            width: ds.width,
            channels: ds.channels,
            class_names: ds.class_names.clone(),
            train: ds.train.len(),
            test: ds.test.len(),
            train_per_class: ds.train.class_counts(ds.num_classes()),
            test_per_class: ds.test.class_counts(ds.num_classes()),
        }
    }
}

/// What `data info` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataInfo {
    pub cache_dir: PathBuf,
    /// Official archives present in the cache folder.
    pub cached: Vec<CachedArchive>,
    /// Leftovers of interrupted downloads (`.NAME.part-PID`), never used.
    pub partial: Vec<PathBuf>,
    /// Keras' copy of the Python version, if found.
    pub keras: Option<PathBuf>,
    /// The data set `load` would use (without downloading), if there is one.
    pub dataset: Option<DatasetSummary>,
}

pub(crate) fn gather(opts: &DataOptions) -> Result<DataInfo, DataError> {
    let dir = cache_dir(opts);
    let mut cached = Vec::new();
    let mut usable = None;
    for (path, expected) in cache_candidates(opts) {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let state = match verify::verify_file(&path, &expected) {
            Ok(v) => {
                usable.get_or_insert_with(|| path.clone());
                ChecksumState::Verified(v)
            }
            Err(e @ (DataError::ChecksumMismatch { .. } | DataError::SizeMismatch { .. })) => {
                ChecksumState::Mismatch(e.to_string())
            }
            Err(e) => return Err(e),
        };
        cached.push(CachedArchive {
            path,
            size: meta.len(),
            state,
        });
    }
    let mut partial: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with('.') && n.contains(".part-"))
                })
                .collect()
        })
        .unwrap_or_default();
    partial.sort();
    let keras = keras_copy(opts);
    let source = opts.data.clone().or(usable).or_else(|| keras.clone());
    let dataset = match source {
        Some(path) => Some(DatasetSummary::of(&read(&path, opts.image_size)?)),
        None => None,
    };
    Ok(DataInfo {
        cache_dir: dir,
        cached,
        partial,
        keras,
        dataset,
    })
}

impl fmt::Display for DataInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "cache folder: {}", self.cache_dir.display())?;
        if self.cached.is_empty() {
            writeln!(
                f,
                "  no archive cached (`cifar-wgpu data fetch` downloads {})",
                verify::CIFAR10_BINARY.file_name
            )?;
        }
        for a in &self.cached {
            let state = match &a.state {
                ChecksumState::Verified(Verified::Stamp) => {
                    "size, MD5 and SHA-256 OK (recorded in its stamp)".to_string()
                }
                ChecksumState::Verified(Verified::Hashed) => {
                    "size, MD5 and SHA-256 OK (hashed now)".to_string()
                }
                ChecksumState::Mismatch(why) => format!("BAD: {why}"),
            };
            writeln!(f, "  {}  {} bytes  {state}", a.path.display(), a.size)?;
        }
        for p in &self.partial {
            writeln!(
                f,
                "  {}  leftover of an interrupted download (unused; safe to delete)",
                p.display()
            )?;
        }
        match &self.keras {
            Some(p) => writeln!(f, "Keras copy: {}", p.display())?,
            None => writeln!(f, "Keras copy: none")?,
        }
        match &self.dataset {
            None => writeln!(f, "data set: none available without downloading")?,
            Some(d) => {
                writeln!(f, "data set: {} from {}", d.name, d.source.display())?;
                writeln!(
                    f,
                    "  images: {}x{}x{} (height x width x channels), {} classes",
                    d.height,
                    d.width,
                    d.channels,
                    d.class_names.len()
                )?;
                writeln!(f, "  train: {} images, test: {} images", d.train, d.test)?;
                writeln!(
                    f,
                    "  {:>4}  {:<16} {:>7} {:>7}",
                    "label", "class", "train", "test"
                )?;
                for (i, name) in d.class_names.iter().enumerate() {
                    writeln!(
                        f,
                        "  {i:>5}  {name:<16} {:>7} {:>7}",
                        d.train_per_class[i], d.test_per_class[i]
                    )?;
                }
            }
        }
        Ok(())
    }
}
