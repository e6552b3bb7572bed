//! Host-side data: finding, downloading, verifying and reading data sets into memory.
//!
//! # Where the data comes from ([`load`])
//! 1. `--data PATH` ([`DataOptions::data`]), any supported format, detected from its content:
//!    the CIFAR-10 binary or Python `.tar.gz` (read as a stream, nothing extracted), either one
//!    extracted (`cifar-10-batches-bin/`, `cifar-10-batches-py/`, or a folder holding one of them),
//!    a folder of MNIST-family IDX files (gzipped or not), or an image folder (one subfolder per class).
//! 2. An archive in the cache folder ([`cache_dir`]): the one named by the URL's file name
//!    (`cifar-10-binary.tar.gz` by default), then the other official archive. It is verified
//!    against the published size, MD5 and SHA-256 (once; see [`verify`] for the stamp file).
//! 3. A Keras copy in `$KERAS_HOME/datasets` or `~/.keras/datasets` (the Python version).
//! 4. Otherwise the archive is downloaded into the cache ([`fetch`]), unless offline.
//!
//! Everything is held in memory as bytes, channels-last (HWC), labels as bytes.

pub mod augment;
mod cifar;
mod download;
mod error;
mod idx;
mod images;
mod info;
mod pickle;
mod split;
mod stream;
pub mod synthetic;
pub mod verify;

use std::path::{Path, PathBuf};

pub use cifar::{Flavor, MAX_ARCHIVE_FILE, MAX_DECOMPRESSED, RECORDS_PER_BATCH};
pub use error::DataError;
pub use idx::{FASHION_MNIST_CLASSES, IDX_FILES};
pub use images::{
    IMAGE_EXTENSIONS, IMAGE_FOLDER_ORDER_SEED, check_input_shape, image_files, read_image,
};
pub use info::{CachedArchive, ChecksumState, DataInfo, DatasetSummary};
pub use split::{epoch_order, validation_split, validation_split_index};
pub use verify::{
    CIFAR10_BINARY, CIFAR10_BINARY_URL, CIFAR10_PYTHON, CIFAR10_PYTHON_URL, Checksums, KnownArchive,
};

/// CIFAR-10's class names, in label order (as in `batches.meta.txt`).
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Environment variable overriding the cache folder (below `--cache-dir`).
pub const CACHE_ENV: &str = "CIFAR_WGPU_CACHE";

/// Where Keras keeps the Python archive, relative to its `datasets` folder, in the order we look:
/// Keras ≥ 3.5 (`get_file(fname="cifar-10-batches-py-target", extract=True)`), then older Keras.
pub const KERAS_CANDIDATES: [&str; 4] = [
    "cifar-10-batches-py-target/cifar-10-batches-py",
    "cifar-10-batches-py",
    "cifar-10-batches-py-target_archive",
    "cifar-10-batches-py.tar.gz",
];

/// Images and labels of one split.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Split {
    /// `len() * H * W * C` bytes: image after image, each channels-last (HWC), row-major.
    pub images: Vec<u8>,
    /// One label per image, `0..classes`.
    pub labels: Vec<u8>,
}

impl Split {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Bytes of one image (H·W·C), derived from the buffer sizes; 0 for an empty split.
    pub fn image_bytes(&self) -> usize {
        self.images
            .len()
            .checked_div(self.labels.len())
            .unwrap_or(0)
    }
    /// The HWC bytes of image `i`. Panics if `i >= len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        let b = self.image_bytes();
        &self.images[i * b..(i + 1) * b]
    }
    /// Images per class (`classes` counters).
    pub fn class_counts(&self, classes: usize) -> Vec<usize> {
        let mut counts = vec![0; classes];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        counts
    }
}

/// A data set in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    /// "cifar10", "fashion-mnist", "mnist", or the folder's name.
    pub name: String,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub class_names: Vec<String>,
    pub train: Split,
    /// Empty for an image folder without a `test/` subfolder.
    pub test: Split,
    /// Where it was read from.
    pub source: PathBuf,
}

impl Dataset {
    /// Bytes of one image: H·W·C.
    pub fn image_bytes(&self) -> usize {
        self.height * self.width * self.channels
    }
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }
}

/// How to find the data (the CLI's `--data`, `--cache-dir`, `--image-size`, `--offline`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataOptions {
    /// `--data PATH`: read this and nothing else.
    pub data: Option<PathBuf>,
    /// `--cache-dir`; else [`CACHE_ENV`]; else the XDG cache folder (see [`cache_dir`]).
    pub cache_dir: Option<PathBuf>,
    /// Where to download from; its last path segment is the cache file name.
    pub url: String,
    /// The checksums of what `url` serves. `None`: the published ones, looked up by file name
    /// (`cifar-10-binary.tar.gz`, `cifar-10-python.tar.gz`); any other name is refused.
    pub expected: Option<Checksums>,
    /// Keras' `datasets` folder to look for a Python copy in; `None` disables the search. The
    /// default is `$KERAS_HOME/datasets`, else `~/.keras/datasets`.
    pub keras_datasets: Option<PathBuf>,
    /// (height, width) for image folders; `None` keeps the first image's size. Ignored for
    /// CIFAR-10 and IDX, whose size is fixed.
    pub image_size: Option<(usize, usize)>,
    /// Never touch the network.
    pub offline: bool,
    /// Show a progress bar while downloading (on stderr).
    pub progress: bool,
}

impl Default for DataOptions {
    fn default() -> Self {
        DataOptions {
            data: None,
            cache_dir: None,
            url: CIFAR10_BINARY_URL.to_string(),
            expected: None,
            keras_datasets: keras_datasets_dir(),
            image_size: None,
            offline: false,
            progress: false,
        }
    }
}

/// `$KERAS_HOME/datasets`, else `~/.keras/datasets` (as Keras' `get_file` picks it).
pub fn keras_datasets_dir() -> Option<PathBuf> {
    match std::env::var_os("KERAS_HOME").filter(|v| !v.is_empty()) {
        Some(home) => Some(PathBuf::from(home).join("datasets")),
        None => dirs::home_dir().map(|h| h.join(".keras").join("datasets")),
    }
}

/// The cache folder: `--cache-dir`, else `$CIFAR_WGPU_CACHE`, else the user's cache folder
/// (`$XDG_CACHE_HOME` or `~/.cache` on Linux, `~/Library/Caches` on macOS, `%LOCALAPPDATA%` on
/// Windows) + `cifar-wgpu`. It is created only when something is downloaded into it.
pub fn cache_dir(opts: &DataOptions) -> PathBuf {
    if let Some(dir) = &opts.cache_dir {
        return dir.clone();
    }
    if let Some(dir) = std::env::var_os(CACHE_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("cifar-wgpu")
}

/// What to say when no data can be had from the network.
pub(crate) fn local_copy_hint(opts: &DataOptions) -> String {
    let cache = cache_dir(opts);
    let name =
        verify::url_file_name(&opts.url).unwrap_or_else(|_| CIFAR10_BINARY.file_name.to_string());
    format!(
        "To use a local copy, pass --data PATH (the binary or Python CIFAR-10 .tar.gz, an extracted \
         cifar-10-batches-bin/ or cifar-10-batches-py/ folder, a folder of IDX files, or an image folder \
         with one subfolder per class), or place {name} in {}",
        cache.display()
    )
}

/// The cache files we may use, with what each must match, in the order we try them.
pub(crate) fn cache_candidates(opts: &DataOptions) -> Vec<(PathBuf, Checksums)> {
    let dir = cache_dir(opts);
    let mut out = Vec::new();
    if let Ok(name) = verify::url_file_name(&opts.url)
        && let Some(expected) = opts
            .expected
            .clone()
            .or_else(|| verify::known_checksums(&name))
    {
        out.push((dir.join(&name), expected));
    }
    for known in verify::KNOWN_ARCHIVES {
        let path = dir.join(known.file_name);
        if !out.iter().any(|(p, _)| *p == path) {
            out.push((path, known.checksums()));
        }
    }
    out
}

/// The Keras copy, if there is one.
pub(crate) fn keras_copy(opts: &DataOptions) -> Option<PathBuf> {
    let dir = opts.keras_datasets.as_ref()?;
    KERAS_CANDIDATES
        .iter()
        .map(|c| dir.join(c))
        .find(|p| p.exists())
}

/// A verified cache archive, or the Keras copy; `Err` when a cached archive fails verification.
fn locate(opts: &DataOptions) -> Result<Option<PathBuf>, DataError> {
    for (path, expected) in cache_candidates(opts) {
        if path.is_file() {
            verify::verify_file(&path, &expected)?;
            return Ok(Some(path));
        }
    }
    Ok(keras_copy(opts))
}

fn offline_error(opts: &DataOptions) -> DataError {
    let mut looked: Vec<String> = cache_candidates(opts)
        .into_iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    if let Some(dir) = &opts.keras_datasets {
        looked.extend(
            KERAS_CANDIDATES
                .iter()
                .map(|c| dir.join(c).display().to_string()),
        );
    }
    DataError::Offline {
        hint: format!(
            "Looked for {}. {}",
            looked.join(", "),
            local_copy_hint(opts)
        ),
    }
}

/// Read the data set at `path`, whatever supported format it is in (what `--data PATH` does).
/// `image_size` (height, width) applies to image folders only.
pub fn read(path: &Path, image_size: Option<(usize, usize)>) -> Result<Dataset, DataError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DataError::NotFound {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(DataError::io(path, e)),
    };
    if meta.is_file() {
        return read_file(path);
    }
    let ds = if let Some(flavor) = Flavor::of_dir(path) {
        cifar::read_dir(path, flavor)?
    } else if let Some(flavor) = [Flavor::Binary, Flavor::Python]
        .into_iter()
        .find(|f| path.join(f.folder()).is_dir())
    {
        cifar::read_dir(&path.join(flavor.folder()), flavor)?
    } else if idx::is_idx_dir(path) {
        idx::read_dir(path)?
    } else if let Some(archive) = verify::KNOWN_ARCHIVES
        .iter()
        .map(|a| path.join(a.file_name))
        .find(|p| p.is_file())
    {
        cifar::read_archive(&archive)?
    } else if images::is_image_folder(path) {
        return images::read_dir(path, image_size);
    } else {
        return Err(DataError::UnknownFormat {
            path: path.to_path_buf(),
            detail:
                "a folder without CIFAR-10 batches, IDX files (train-images-idx3-ubyte[.gz], ...), \
                     a CIFAR-10 archive or class subfolders"
                    .into(),
        });
    };
    if image_size.is_some_and(|s| s != (ds.height, ds.width)) {
        log::warn!(
            "{}: --image-size is ignored; {} images are {}x{}",
            path.display(),
            ds.name,
            ds.height,
            ds.width
        );
    }
    Ok(ds)
}

fn read_file(path: &Path) -> Result<Dataset, DataError> {
    use std::io::Read;
    let mut head = [0u8; 512];
    let mut n = 0;
    {
        let mut f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
        while n < head.len() {
            match f.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(DataError::io(path, e)),
            }
        }
    }
    let head = &head[..n];
    if stream::is_gzip(head) || head.get(257..262) == Some(b"ustar") {
        return cifar::read_archive(path);
    }
    let detail = if head.starts_with(&[0, 0, 8]) {
        "an IDX file; pass the folder that holds the four IDX files".to_string()
    } else if head.starts_with(b"\x89PNG") || head.starts_with(&[0xff, 0xd8]) {
        "a single image; pass a folder with one subfolder of images per class".to_string()
    } else if head.is_empty() {
        "empty file".to_string()
    } else {
        "not a .tar.gz or .tar archive".to_string()
    };
    Err(DataError::UnknownFormat {
        path: path.to_path_buf(),
        detail,
    })
}

/// Load the data set the options point at (see the module docs for the order), downloading the
/// archive into the cache when there is no local copy and `!opts.offline`.
pub fn load(opts: &DataOptions) -> Result<Dataset, DataError> {
    if let Some(path) = &opts.data {
        return read(path, opts.image_size);
    }
    if let Some(path) = locate(opts)? {
        return read(&path, opts.image_size);
    }
    if opts.offline {
        return Err(offline_error(opts));
    }
    let path = fetch(opts)?;
    read(&path, opts.image_size)
}

/// Make sure the archive `opts.url` names is in the cache and verified; download it if it is not
/// (`cifar-wgpu data fetch`). Returns its path. Never downloads while a valid copy is there; a
/// cached copy that fails verification is an error (delete it to fetch again).
pub fn fetch(opts: &DataOptions) -> Result<PathBuf, DataError> {
    let name = verify::url_file_name(&opts.url)?;
    let expected = opts
        .expected
        .clone()
        .or_else(|| verify::known_checksums(&name))
        .ok_or_else(|| DataError::NoChecksum {
            url: opts.url.clone(),
        })?;
    if expected.md5.is_none() && expected.sha256.is_none() {
        return Err(DataError::InvalidArgument {
            detail: format!(
                "expected checksums for {} name neither an MD5 nor a SHA-256",
                opts.url
            ),
        });
    }
    let dest = cache_dir(opts).join(&name);
    if dest.is_file() {
        verify::verify_file(&dest, &expected)?;
        return Ok(dest);
    }
    if opts.offline {
        return Err(offline_error(opts));
    }
    download::download(
        &opts.url,
        &dest,
        &expected,
        opts.progress,
        &local_copy_hint(opts),
    )?;
    Ok(dest)
}

/// What is cached, where, and what the data set holds (`cifar-wgpu data info`). Never downloads;
/// verifies cached archives (using their stamps) and reads the data set that [`load`] would use.
pub fn info(opts: &DataOptions) -> Result<DataInfo, DataError> {
    info::gather(opts)
}
