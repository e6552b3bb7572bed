//! A folder of images, one subfolder per class, like Keras' `image_dataset_from_directory`.
//!
//! Layout: `ROOT/CLASS/…/*.png|*.jpg|*.jpeg` (files may sit in nested folders under a class, as
//! Keras walks them too). Class names are the subfolder names sorted (byte order, as Python sorts
//! them), and the label is the index in that list. Hidden entries (starting with '.') and files with
//! other extensions are ignored; a class folder without any image is an error.
//!
//! Test split: if ROOT holds exactly the two folders `train/` and `test/` (other files are
//! ignored), each is a class tree; the classes come from `train/`, and every class under `test/` must
//! also exist under `train/`. Otherwise the whole tree is the training set and the test set is empty.
//!
//! Size and channels: every image is resized (bilinear, Keras' default `interpolation`) to
//! `image_size` = (height, width) when given, else to the size of the first image (first class,
//! first file in sorted order) — Keras would use 256×256, which for small images only wastes memory.
//! Images are converted to RGB (alpha dropped); if every image of the folder is grayscale, the data
//! set has 1 channel instead of 3.
//!
//! Order: Keras shuffles the file list (seeded) before taking `validation_split`, otherwise the
//! validation part would hold only the last classes. We do the same with a fixed seed: within each
//! split, the files (listed class by class, each class sorted) are put in the order
//! `epoch_order(n, IMAGE_FOLDER_ORDER_SEED, 0, true)`, so `validation_split` (last fraction) sees
//! every class and the order is reproducible.
//!
//! Bounds: symbolic links are followed, and one leading back to its own ancestor is an error (not
//! an endless walk); at most [`MAX_FILES`] files are listed; an image's size is read from its header
//! and checked ([`MAX_SIDE`], [`MAX_DECODED_BYTES`]) before it is decoded; the whole data set may
//! take at most [`MAX_TOTAL_BYTES`] after resizing.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{ImageReader, Limits};
use walkdir::WalkDir;

use super::{DataError, Dataset, Split, epoch_order};

/// Seed of the fixed permutation applied to an image folder's file list (see module docs).
pub const IMAGE_FOLDER_ORDER_SEED: u64 = 1337;
/// Image file extensions read (lower case).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];
/// Largest image side, decoded or asked for with `--image-size`.
pub const MAX_SIDE: u32 = 16_384;
/// Largest decoded image, in bytes at 4 bytes a pixel (checked from the header before decoding;
/// also the decoder's allocation limit): 128 MiB, e.g. a 5,792 x 5,792 RGBA photo.
pub const MAX_DECODED_BYTES: u64 = 128 << 20;
/// Largest data set an image folder may make, in bytes after resizing (3 channels), both splits
/// together: 1 GiB, about 20 times CIFAR-10.
pub const MAX_TOTAL_BYTES: u64 = 1 << 30;
/// Most image files one walk may list (a split, or `predict`'s inputs).
pub const MAX_FILES: usize = 1_000_000;

fn hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with('.'))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        if !hidden(&path) {
            entries.push(path);
        }
    }
    entries.sort();
    Ok(entries)
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    Ok(sorted_entries(dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .collect())
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Whether `dir` looks like an image folder: some non-hidden subfolder.
pub(crate) fn is_image_folder(dir: &Path) -> bool {
    subdirs(dir).is_ok_and(|d| !d.is_empty())
}

/// Image files under `dir`, recursively, each folder in sorted order, adding to `out` (at most
/// [`MAX_FILES`] in all). Symbolic links are followed, and a link back to one of its own ancestor
/// folders is an error (walkdir detects it) rather than an endless walk.
fn images_under(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DataError> {
    let walk = WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !hidden(e.path()));
    for entry in walk {
        let entry = entry.map_err(|e| walk_error(dir, e))?;
        if entry.file_type().is_dir() {
            continue;
        }
        if !is_image(entry.path()) {
            log::debug!(
                "{}: not a PNG/JPEG file name, ignored",
                entry.path().display()
            );
            continue;
        }
        if out.len() >= MAX_FILES {
            return Err(DataError::BadImageFolder {
                path: dir.to_path_buf(),
                detail: format!("more than {MAX_FILES} image files"),
            });
        }
        out.push(entry.into_path());
    }
    Ok(())
}

fn walk_error(dir: &Path, e: walkdir::Error) -> DataError {
    let path = e.path().unwrap_or(dir).to_path_buf();
    if let Some(ancestor) = e.loop_ancestor() {
        return DataError::BadImageFolder {
            detail: format!(
                "symbolic link loop: this link leads back to its own ancestor folder {}",
                ancestor.display()
            ),
            path,
        };
    }
    match e.into_io_error() {
        Some(io) => DataError::io(path, io),
        None => DataError::BadImageFolder {
            path,
            detail: "cannot walk this folder".into(),
        },
    }
}

/// (file, label) for a class tree, listed class by class, then put in the fixed order.
fn list(root: &Path, classes: &[String]) -> Result<Vec<(PathBuf, u8)>, DataError> {
    let mut files = Vec::new();
    for class_dir in subdirs(root)? {
        let name = class_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let label =
            classes
                .iter()
                .position(|c| *c == name)
                .ok_or_else(|| DataError::BadImageFolder {
                    path: class_dir.clone(),
                    detail: format!("class {name:?} does not exist in the training folder"),
                })?;
        let mut images = Vec::new();
        images_under(&class_dir, &mut images)?;
        if images.is_empty() {
            return Err(DataError::EmptyClassFolder { path: class_dir });
        }
        files.extend(images.into_iter().map(|p| (p, label as u8)));
    }
    let order = epoch_order(files.len(), IMAGE_FOLDER_ORDER_SEED, 0, true);
    let mut slots: Vec<Option<(PathBuf, u8)>> = files.into_iter().map(Some).collect();
    Ok(order
        .iter()
        .filter_map(|&i| slots[i as usize].take())
        .collect())
}

fn class_names(root: &Path) -> Result<Vec<String>, DataError> {
    let names: Vec<String> = subdirs(root)?
        .iter()
        .map(|d| {
            d.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    if names.is_empty() {
        return Err(DataError::BadImageFolder {
            path: root.to_path_buf(),
            detail: "no class subfolders".into(),
        });
    }
    if names.len() > 256 {
        return Err(DataError::BadImageFolder {
            path: root.to_path_buf(),
            detail: format!(
                "{} class folders; at most 256 are supported (labels are bytes)",
                names.len()
            ),
        });
    }
    Ok(names)
}

fn decode(path: &Path) -> Result<image::DynamicImage, DataError> {
    let unreadable = |detail: String| DataError::UnreadableImage {
        path: path.to_path_buf(),
        detail,
    };
    let open = || -> Result<ImageReader<std::io::BufReader<std::fs::File>>, DataError> {
        let reader = ImageReader::open(path)
            .map_err(|e| DataError::io(path, e))?
            .with_guessed_format()
            .map_err(|e| DataError::io(path, e))?;
        if reader.format().is_none() {
            return Err(unreadable("not a PNG or JPEG file".into()));
        }
        Ok(reader)
    };
    // The header's size is checked before anything is decoded: a small file can claim 16384².
    let (w, h) = open()?
        .into_dimensions()
        .map_err(|e| unreadable(e.to_string()))?;
    let bytes = u64::from(w) * u64::from(h) * 4;
    if w.max(h) > MAX_SIDE || bytes > MAX_DECODED_BYTES {
        return Err(unreadable(format!(
            "{w}x{h} pixels; images may have sides up to {MAX_SIDE} and {MAX_DECODED_BYTES} \
             bytes decoded (at 4 bytes a pixel), this one needs {bytes}"
        )));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    let mut reader = open()?;
    reader.limits(limits);
    reader.decode().map_err(|e| unreadable(e.to_string()))
}

/// Decodes, resizes and appends images, keeping the whole data set under [`MAX_TOTAL_BYTES`].
struct Loader {
    size: Option<(usize, usize)>,
    all_gray: bool,
    /// Bytes the splits loaded so far take.
    used: u64,
}

impl Loader {
    fn load(&mut self, files: &[(PathBuf, u8)], split: &mut Split) -> Result<(), DataError> {
        for (path, label) in files {
            let img = decode(path)?;
            let gray = !img.color().has_color();
            let (h, w) = *self
                .size
                .get_or_insert((img.height() as usize, img.width() as usize));
            if split.images.is_empty() {
                let total = (files.len() as u64)
                    .checked_mul(h as u64 * w as u64 * 3)
                    .and_then(|t| t.checked_add(self.used))
                    .filter(|&t| t <= MAX_TOTAL_BYTES)
                    .ok_or_else(|| DataError::BadImageFolder {
                        path: path.parent().unwrap_or(path).to_path_buf(),
                        detail: format!(
                            "{} images of {h}x{w}x3 would take more than the {MAX_TOTAL_BYTES} \
                             bytes an image folder may hold (with the other split); pass a \
                             smaller --image-size",
                            files.len()
                        ),
                    })?;
                split.images.reserve_exact((total - self.used) as usize);
                self.used = total;
            }
            let mut rgb = img.into_rgb8();
            if (rgb.height() as usize, rgb.width() as usize) != (h, w) {
                rgb = image::imageops::resize(&rgb, w as u32, h as u32, FilterType::Triangle);
            }
            split.images.extend_from_slice(rgb.as_raw());
            split.labels.push(*label);
            self.all_gray &= gray;
        }
        Ok(())
    }
}

/// Read an image folder (see module docs).
pub(crate) fn read_dir(
    root: &Path,
    image_size: Option<(usize, usize)>,
) -> Result<Dataset, DataError> {
    if let Some((h, w)) =
        image_size.filter(|&(h, w)| h == 0 || w == 0 || h.max(w) > MAX_SIDE as usize)
    {
        return Err(DataError::InvalidArgument {
            detail: format!("image size {h}x{w} must be 1..={MAX_SIDE} per side"),
        });
    }
    let top = subdirs(root)?;
    let names: Vec<String> = top
        .iter()
        .filter_map(|d| d.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    let split_layout = names == ["test", "train"];
    let train_root = if split_layout {
        root.join("train")
    } else {
        root.to_path_buf()
    };
    let classes = class_names(&train_root)?;
    let train_files = list(&train_root, &classes)?;
    let test_files = if split_layout {
        list(&root.join("test"), &classes)?
    } else {
        Vec::new()
    };

    let mut loader = Loader {
        size: image_size,
        all_gray: true,
        used: 0,
    };
    let mut train = Split::default();
    let mut test = Split::default();
    loader.load(&train_files, &mut train)?;
    loader.load(&test_files, &mut test)?;
    let (height, width) = loader.size.unwrap_or((0, 0));
    let channels = if loader.all_gray {
        for split in [&mut train, &mut test] {
            split.images = split.images.chunks_exact(3).map(|px| px[0]).collect();
        }
        1
    } else {
        3
    };
    let canonical = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let name = canonical
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "images".into());
    Ok(Dataset {
        name,
        height,
        width,
        channels,
        class_names: classes,
        train,
        test,
        source: root.to_path_buf(),
    })
}

/// Refuses an input shape (height, width, channels) that no image can fill: a side of 0 or over
/// 16,384, or no channel or more than 4. Models read from files are checked with it before any
/// buffer is sized from their shape.
pub fn check_input_shape(shape: [usize; 3]) -> Result<(), String> {
    let [h, w, c] = shape;
    if [h, w].iter().any(|&s| s == 0 || s > MAX_SIDE as usize) || !(1..=4).contains(&c) {
        return Err(format!(
            "input shape {shape:?} is not one images can have: sides 1..={MAX_SIDE}, 1 to 4 channels"
        ));
    }
    Ok(())
}

/// One PNG or JPEG file as a model's input: decoded, resized (bilinear) to `height` x `width`, and
/// converted to `channels` (1: luminance, 3: RGB), as HWC bytes. For `cifar-wgpu predict`.
pub fn read_image(
    path: &Path,
    height: usize,
    width: usize,
    channels: usize,
) -> Result<Vec<u8>, DataError> {
    check_input_shape([height, width, channels]).map_err(|detail| DataError::UnreadableImage {
        path: path.to_path_buf(),
        detail,
    })?;
    let img = decode(path)?;
    let (w, h) = (width as u32, height as u32);
    match channels {
        1 => {
            let mut g = img.into_luma8();
            if (g.width(), g.height()) != (w, h) {
                g = image::imageops::resize(&g, w, h, FilterType::Triangle);
            }
            Ok(g.into_raw())
        }
        3 => {
            let mut rgb = img.into_rgb8();
            if (rgb.width(), rgb.height()) != (w, h) {
                rgb = image::imageops::resize(&rgb, w, h, FilterType::Triangle);
            }
            Ok(rgb.into_raw())
        }
        c => Err(DataError::UnreadableImage {
            path: path.to_path_buf(),
            detail: format!("models with {c} input channels cannot take images (1 or 3 only)"),
        }),
    }
}

/// The PNG and JPEG files named by `paths`: files as given, folders searched recursively, sorted.
pub fn image_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found = Vec::new();
            images_under(p, &mut found)?;
            found.sort();
            out.extend(found);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(DataError::io(
                p,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
    }
    Ok(out)
}
