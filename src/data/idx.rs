//! MNIST-family IDX files: a folder with `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
//! `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`, each optionally gzipped (`.gz`).
//!
//! Format (big-endian): magic `00 00 08 NDIM` (0x08 = unsigned byte), NDIM u32 sizes, then the data.
//! Images have NDIM = 3 (count, rows, cols) and become H×W×1; labels have NDIM = 1.
//!
//! Naming: a folder whose name contains "fashion" is Fashion-MNIST ("fashion-mnist", its 10 class
//! names, labels must be 0..=9); one whose name contains "mnist" is MNIST ("mnist", classes "0".."9");
//! any other folder keeps its own name, with classes "0".."k-1", k being the first label value the
//! training labels lack (so every class has images, and a stray label is refused, not a new class).
//!
//! Sizes from the headers are checked (count ≤ [`MAX_COUNT`], side ≤ [`MAX_SIDE`], total ≤
//! [`MAX_BYTES`]) before anything is allocated, and the data must be exactly as long as the header says.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::stream::{Watched, explain, maybe_gzip};
use super::{DataError, Dataset, Split};

/// Most images (or labels) in one IDX file.
pub const MAX_COUNT: usize = 10_000_000;
/// Largest image side.
pub const MAX_SIDE: usize = 4096;
/// Largest data part of one IDX file.
pub const MAX_BYTES: u64 = 1 << 30;

/// Fashion-MNIST's class names, in label order (from zalandoresearch/fashion-mnist's README).
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// The four files, by stem.
pub const IDX_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// Whether `dir` holds (at least the first of) the IDX files.
pub(crate) fn is_idx_dir(dir: &Path) -> bool {
    find(dir, IDX_FILES[0]).is_some()
}

/// `stem` or `stem.gz` in `dir`.
fn find(dir: &Path, stem: &str) -> Option<PathBuf> {
    [stem.to_string(), format!("{stem}.gz")]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// One parsed IDX file: its sizes and data.
struct Idx {
    dims: Vec<usize>,
    data: Vec<u8>,
}

fn read_idx(path: &Path, ndim: usize) -> Result<Idx, DataError> {
    let bad = |d: String| DataError::BadIdx {
        path: path.to_path_buf(),
        detail: d,
    };
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let file_len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    let (inner, gzip) = maybe_gzip(path, file)?;
    let cap = MAX_BYTES + 64;
    let (mut reader, state) = Watched::new(inner, cap);
    let result = parse(&mut reader, ndim, gzip, file_len, &bad);
    // A stream error (truncated or corrupt gzip) explains whatever went wrong above.
    if let Some(e) = explain(path, &state.borrow(), gzip, cap) {
        return Err(e);
    }
    match result {
        Ok(idx) => Ok(idx),
        Err(Ok(e)) => Err(e),
        Err(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
            Err(bad(format!("truncated: {e}")))
        }
        Err(Err(e)) => Err(DataError::io(path, e)),
    }
}

type ParseResult = Result<Idx, Result<DataError, io::Error>>;

fn parse(
    r: &mut dyn Read,
    ndim: usize,
    gzip: bool,
    file_len: u64,
    bad: &dyn Fn(String) -> DataError,
) -> ParseResult {
    let mut head = [0u8; 4];
    r.read_exact(&mut head).map_err(|e| {
        Err(io::Error::new(
            e.kind(),
            "file is shorter than the 4-byte magic",
        ))
    })?;
    if head[0] != 0 || head[1] != 0 {
        return Err(Ok(bad(format!(
            "magic {head:02x?} does not start with two zero bytes"
        ))));
    }
    if head[2] != 0x08 {
        return Err(Ok(bad(format!(
            "element type 0x{:02x}, only unsigned bytes (0x08) are supported",
            head[2]
        ))));
    }
    if head[3] as usize != ndim {
        return Err(Ok(bad(format!("{} dimensions, expected {ndim}", head[3]))));
    }
    let mut dims = Vec::with_capacity(ndim);
    for _ in 0..ndim {
        let mut d = [0u8; 4];
        r.read_exact(&mut d)
            .map_err(|e| Err(io::Error::new(e.kind(), "header ends inside the sizes")))?;
        dims.push(u32::from_be_bytes(d) as usize);
    }
    if dims[0] > MAX_COUNT {
        return Err(Ok(bad(format!(
            "header claims {} items, more than the {MAX_COUNT} we accept",
            dims[0]
        ))));
    }
    if let Some(&side) = dims[1..].iter().find(|&&s| s == 0 || s > MAX_SIDE) {
        return Err(Ok(bad(format!(
            "header claims an image side of {side}, outside 1..={MAX_SIDE}"
        ))));
    }
    let total = dims
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
        .filter(|&t| t <= MAX_BYTES)
        .ok_or_else(|| {
            Ok(bad(format!(
                "header ({dims:?}) claims more than the {MAX_BYTES} data bytes we accept"
            )))
        })?;
    let header = 4 + 4 * ndim as u64;
    if !gzip && file_len != header + total {
        return Err(Ok(bad(format!(
            "file is {file_len} bytes but its header ({dims:?}) needs {} bytes",
            header + total
        ))));
    }
    let mut data = Vec::with_capacity(total as usize);
    r.take(total + 1).read_to_end(&mut data).map_err(Err)?;
    if (data.len() as u64) < total {
        return Err(Ok(bad(format!(
            "truncated: {} data bytes, the header ({dims:?}) needs {total}",
            data.len()
        ))));
    }
    if data.len() as u64 > total {
        return Err(Ok(bad(format!(
            "more data than the header ({dims:?}) describes"
        ))));
    }
    // Reach the end of the gzip stream so its CRC is checked.
    io::copy(r, &mut io::sink()).map_err(Err)?;
    Ok(Idx { dims, data })
}

fn split(
    dir: &Path,
    images: &str,
    labels: &str,
) -> Result<(Split, usize, usize, PathBuf), DataError> {
    let missing = |stem: &str| DataError::MissingMember {
        path: dir.to_path_buf(),
        member: format!("{stem}[.gz]"),
    };
    let ipath = find(dir, images).ok_or_else(|| missing(images))?;
    let lpath = find(dir, labels).ok_or_else(|| missing(labels))?;
    let img = read_idx(&ipath, 3)?;
    let lab = read_idx(&lpath, 1)?;
    if img.dims[0] != lab.dims[0] {
        return Err(DataError::BadIdx {
            path: lpath,
            detail: format!(
                "{} labels but {} has {} images",
                lab.dims[0],
                ipath.display(),
                img.dims[0]
            ),
        });
    }
    Ok((
        Split {
            images: img.data,
            labels: lab.data,
        },
        img.dims[1],
        img.dims[2],
        lpath,
    ))
}

/// Read the four IDX files of `dir`.
pub(crate) fn read_dir(dir: &Path) -> Result<Dataset, DataError> {
    let (train, h, w, train_labels) = split(dir, IDX_FILES[0], IDX_FILES[1])?;
    // Said here, naming the file: otherwise the class count below would be 0 and the first error
    // a label "out of range" of no classes.
    if train.is_empty() {
        let images = find(dir, IDX_FILES[0]).unwrap_or_else(|| dir.join(IDX_FILES[0]));
        return Err(DataError::InvalidArgument {
            detail: format!(
                "no training images in {} (its header counts 0 records)",
                images.display()
            ),
        });
    }
    let (test, th, tw, test_labels) = split(dir, IDX_FILES[2], IDX_FILES[3])?;
    if (th, tw) != (h, w) {
        return Err(DataError::BadIdx {
            path: dir.join(IDX_FILES[2]),
            detail: format!("test images are {th}x{tw} but training images are {h}x{w}"),
        });
    }
    let folder = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let folder = folder
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "idx".into());
    let lower = folder.to_ascii_lowercase();
    let (name, class_names): (String, Vec<String>) = if lower.contains("fashion") {
        (
            "fashion-mnist".into(),
            FASHION_MNIST_CLASSES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        )
    } else if lower.contains("mnist") {
        ("mnist".into(), (0..10).map(|i| i.to_string()).collect())
    } else {
        // No declared class count: the classes are 0..k where k is the first label value the
        // training set lacks, so one stray byte (255, say) is refused rather than making 256 classes.
        let mut seen = [false; 256];
        for &l in &train.labels {
            seen[l as usize] = true;
        }
        let classes = seen.iter().position(|&s| !s).unwrap_or(256);
        (folder, (0..classes).map(|i| i.to_string()).collect())
    };
    for (split, path) in [(&train, &train_labels), (&test, &test_labels)] {
        if let Some(index) = split
            .labels
            .iter()
            .position(|&l| l as usize >= class_names.len())
        {
            return Err(DataError::LabelOutOfRange {
                file: path.display().to_string(),
                index,
                label: split.labels[index] as i64,
                classes: class_names.len(),
            });
        }
    }
    Ok(Dataset {
        name,
        height: h,
        width: w,
        channels: 1,
        class_names,
        train,
        test,
        source: dir.to_path_buf(),
    })
}
