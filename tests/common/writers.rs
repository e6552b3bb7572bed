//! Test fixture code (included with `#[path]` by the tests that build data on disk).
//!
//! Writers of small data sets in the real on-disk formats, for tests: the CIFAR-10 binary and Python
//! archives (`.tar.gz`, or the extracted folders), MNIST-style IDX files (gzipped or not) and image
//! folders. The number of records per batch is whatever the given [`Dataset`] holds (its training set
//! is cut into five equal batches), so tests stay tiny.
//!
//! Lower-level pieces (member lists, single batches, pickles, raw tar writing that does not
//! sanitise names) let tests build broken inputs on purpose.
//!
//! The Python batches are pickled the way the real ones were (Python 2 `cPickle`, protocol 2): a dict
//! whose `'data'` is a numpy uint8 array (`numpy.core.multiarray._reconstruct` + `BUILD` with the
//! state `(1, (N, 3072), dtype('uint8'), False, raw)`), written opcode by opcode since no Rust crate
//! pickles numpy arrays. [`Keys::Str`] writes what Python 3 (protocol 3) writes instead.
#![allow(dead_code)]

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;

use cifar_wgpu::data::{Dataset, IMAGE_FOLDER_ORDER_SEED, Split, epoch_order};

/// A member: its name (relative to the archive root, or to the data folder) and its bytes.
pub type Member = (String, Vec<u8>);

/// How pickle keys and strings are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keys {
    /// Python 2 `str` (SHORT_BINSTRING / BINSTRING), protocol 2: what the real archive holds.
    Bytes,
    /// Python 3 `str` (BINUNICODE) keys and `bytes` (BINBYTES) data, protocol 3.
    Str,
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.into())
}

/// Channels-last image → planar (CHW), as CIFAR stores it.
pub fn hwc_to_planar(image: &[u8], channels: usize) -> Vec<u8> {
    let hw = image.len() / channels;
    let mut out = vec![0u8; image.len()];
    for p in 0..hw {
        for c in 0..channels {
            out[c * hw + p] = image[p * channels + c];
        }
    }
    out
}

fn check_cifar(ds: &Dataset) -> io::Result<usize> {
    if (ds.height, ds.width, ds.channels) != (32, 32, 3) {
        return Err(invalid("CIFAR-10 writers need 32x32x3 images"));
    }
    if ds.train.is_empty() || !ds.train.len().is_multiple_of(5) {
        return Err(invalid(
            "the training set must split into 5 equal, non-empty batches",
        ));
    }
    Ok(ds.train.len() / 5)
}

/// Records `range` of `split` as a binary batch: per record a label byte and the R, G, B planes.
pub fn binary_batch(split: &Split, range: std::ops::Range<usize>) -> Vec<u8> {
    let mut out = Vec::with_capacity(range.len() * 3073);
    for i in range {
        out.push(split.labels[i]);
        out.extend_from_slice(&hwc_to_planar(split.image(i), 3));
    }
    out
}

/// Class names one a line, as `batches.meta.txt` (which ends with blank lines).
pub fn meta_txt(names: &[String]) -> Vec<u8> {
    let mut s = names.join("\n");
    s.push_str("\n\n");
    s.into_bytes()
}

/// The members of `cifar-10-batches-bin/` (names without the folder), in the real archive's order,
/// with a `readme.html` as the real one has.
pub fn cifar_binary_members(ds: &Dataset) -> io::Result<Vec<Member>> {
    let per = check_cifar(ds)?;
    let mut members = vec![("batches.meta.txt".to_string(), meta_txt(&ds.class_names))];
    for b in 0..5 {
        members.push((
            format!("data_batch_{}.bin", b + 1),
            binary_batch(&ds.train, b * per..(b + 1) * per),
        ));
    }
    members.push((
        "test_batch.bin".to_string(),
        binary_batch(&ds.test, 0..ds.test.len()),
    ));
    members.push((
        "readme.html".to_string(),
        b"<html>test fixture</html>\n".to_vec(),
    ));
    Ok(members)
}

/// A pickle being written opcode by opcode.
struct Pickler {
    out: Vec<u8>,
    memo: u32,
    keys: Keys,
}

impl Pickler {
    fn new(keys: Keys) -> Self {
        let proto = match keys {
            Keys::Bytes => 2,
            Keys::Str => 3,
        };
        Pickler {
            out: vec![0x80, proto],
            memo: 0,
            keys,
        }
    }
    fn put(&mut self) {
        // BINPUT / LONG_BINPUT, as cPickle memoises every container and string.
        self.memo += 1;
        if self.memo < 256 {
            self.out.extend_from_slice(&[b'q', self.memo as u8]);
        } else {
            self.out.push(b'r');
            self.out.extend_from_slice(&self.memo.to_le_bytes());
        }
    }
    fn int(&mut self, v: i64) {
        match v {
            0..=255 => self.out.extend_from_slice(&[b'K', v as u8]),
            256..=65535 => {
                self.out.push(b'M');
                self.out.extend_from_slice(&(v as u16).to_le_bytes());
            }
            _ => {
                self.out.push(b'J');
                self.out.extend_from_slice(&(v as i32).to_le_bytes());
            }
        }
    }
    /// A Python 2 `str` (byte string).
    fn bytes_str(&mut self, b: &[u8]) {
        if b.len() < 256 {
            self.out.extend_from_slice(&[b'U', b.len() as u8]);
        } else {
            self.out.push(b'T');
            self.out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        }
        self.out.extend_from_slice(b);
        self.put();
    }
    /// A Python 3 `bytes`.
    fn py3_bytes(&mut self, b: &[u8]) {
        if b.len() < 256 {
            self.out.extend_from_slice(&[b'C', b.len() as u8]);
        } else {
            self.out.push(b'B');
            self.out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        }
        self.out.extend_from_slice(b);
        self.put();
    }
    /// A text string: Python 2 `str` or Python 3 `str`, per `keys`.
    fn text(&mut self, s: &str) {
        match self.keys {
            Keys::Bytes => self.bytes_str(s.as_bytes()),
            Keys::Str => {
                self.out.push(b'X');
                self.out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                self.out.extend_from_slice(s.as_bytes());
                self.put();
            }
        }
    }
    /// Raw array data: a Python 2 str, or Python 3 bytes.
    fn raw(&mut self, b: &[u8]) {
        match self.keys {
            Keys::Bytes => self.bytes_str(b),
            Keys::Str => self.py3_bytes(b),
        }
    }
    fn global(&mut self, module: &str, name: &str) {
        self.out.push(b'c');
        self.out.extend_from_slice(module.as_bytes());
        self.out.push(b'\n');
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'\n');
        self.put();
    }
    /// A list, items appended in batches of 1000 (MARK … APPENDS) as cPickle does.
    fn list<T>(&mut self, items: &[T], mut each: impl FnMut(&mut Self, &T)) {
        self.out.push(b']');
        self.put();
        for chunk in items.chunks(1000) {
            self.out.push(b'(');
            for item in chunk {
                each(self, item);
            }
            self.out.push(b'e');
        }
    }
    /// A uint8 numpy array of `shape` holding `data`.
    fn numpy_u8(&mut self, shape: &[usize], data: &[u8]) {
        self.global("numpy.core.multiarray", "_reconstruct");
        self.global("numpy", "ndarray");
        self.int(0);
        self.out.push(0x85); // TUPLE1: (0,)
        self.put();
        self.bytes_str(b"b");
        self.out.push(0x87); // TUPLE3: (ndarray, (0,), 'b')
        self.put();
        self.out.push(b'R');
        self.put();
        // BUILD state: (1, shape, dtype('uint8'), False, raw)
        self.out.push(b'(');
        self.int(1);
        for &d in shape {
            self.int(d as i64);
        }
        self.out.push(match shape.len() {
            1 => 0x85,
            2 => 0x86,
            _ => 0x87,
        });
        self.put();
        self.global("numpy", "dtype");
        self.bytes_str(b"u1");
        self.int(0);
        self.int(1);
        self.out.push(0x87);
        self.put();
        self.out.push(b'R');
        self.put();
        self.out.push(b'(');
        self.int(3);
        self.bytes_str(b"|");
        self.out.extend_from_slice(b"NNN");
        self.int(-1);
        self.int(-1);
        self.int(0);
        self.out.push(b't');
        self.put();
        self.out.push(b'b'); // BUILD the dtype
        self.out.push(0x89); // NEWFALSE: not Fortran order
        self.raw(data);
        self.out.push(b't');
        self.put();
        self.out.push(b'b'); // BUILD the array
    }
    fn dict_start(&mut self) {
        self.out.push(b'}');
        self.put();
        self.out.push(b'(');
    }
    fn finish(mut self) -> Vec<u8> {
        self.out.extend_from_slice(b"u."); // SETITEMS, STOP
        self.out
    }
}

/// A `data_batch_N` / `test_batch` pickle: `{'data': uint8 array (rows, 3072) of planar images,
/// 'labels': [...], 'batch_label': ..., 'filenames': [...]}`. `planar` holds `labels.len()` rows of
/// `cols` bytes; any `cols` may be given (tests write wrong ones on purpose).
pub fn batch_pickle(
    planar: &[u8],
    cols: usize,
    labels: &[i64],
    batch_label: &str,
    keys: Keys,
) -> Vec<u8> {
    let rows = labels.len();
    let mut p = Pickler::new(keys);
    p.dict_start();
    p.text("data");
    p.numpy_u8(&[rows, cols], planar);
    p.text("labels");
    p.list(labels, |p, &l| p.int(l));
    p.text("batch_label");
    p.text(batch_label);
    p.text("filenames");
    let names: Vec<String> = (0..rows).map(|i| format!("image_{i:05}.png")).collect();
    p.list(&names, |p, n| p.text(n));
    p.finish()
}

/// A `batches.meta` pickle: `{'num_cases_per_batch': n, 'label_names': [...], 'num_vis': 3072}`.
pub fn meta_pickle(names: &[String], per_batch: usize, keys: Keys) -> Vec<u8> {
    let mut p = Pickler::new(keys);
    p.dict_start();
    p.text("num_cases_per_batch");
    p.int(per_batch as i64);
    p.text("label_names");
    p.list(names, |p, n| p.text(n));
    p.text("num_vis");
    p.int(3072);
    p.finish()
}

fn planar_rows(split: &Split, range: std::ops::Range<usize>) -> (Vec<u8>, Vec<i64>) {
    let mut planar = Vec::with_capacity(range.len() * 3072);
    let mut labels = Vec::with_capacity(range.len());
    for i in range {
        planar.extend_from_slice(&hwc_to_planar(split.image(i), 3));
        labels.push(split.labels[i] as i64);
    }
    (planar, labels)
}

/// The members of `cifar-10-batches-py/` (names without the folder), as in the real archive.
pub fn cifar_python_members(ds: &Dataset, keys: Keys) -> io::Result<Vec<Member>> {
    let per = check_cifar(ds)?;
    let mut members = vec![(
        "batches.meta".to_string(),
        meta_pickle(&ds.class_names, per, keys),
    )];
    for b in 0..5 {
        let (planar, labels) = planar_rows(&ds.train, b * per..(b + 1) * per);
        let label = format!("training batch {} of 5", b + 1);
        members.push((
            format!("data_batch_{}", b + 1),
            batch_pickle(&planar, 3072, &labels, &label, keys),
        ));
    }
    let (planar, labels) = planar_rows(&ds.test, 0..ds.test.len());
    members.push((
        "test_batch".to_string(),
        batch_pickle(&planar, 3072, &labels, "testing batch 1 of 1", keys),
    ));
    members.push((
        "readme.html".to_string(),
        b"<html>test fixture</html>\n".to_vec(),
    ));
    Ok(members)
}

/// Prefix every member name with `folder/`, and put the folder's own entry first (as `tar` does).
pub fn in_folder(folder: &str, members: Vec<Member>) -> Vec<Member> {
    let mut out = vec![(format!("{folder}/"), Vec::new())];
    out.extend(
        members
            .into_iter()
            .map(|(n, b)| (format!("{folder}/{n}"), b)),
    );
    out
}

/// A tar stream of `members`, names written verbatim (no sanitising, so tests can write `../x`).
/// A name ending in '/' becomes a directory entry. Names must fit the 100-byte ustar field.
pub fn tar_bytes(members: &[Member]) -> io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in members {
        if name.len() > 100 {
            return Err(invalid(format!(
                "tar member name {name:?} is over 100 bytes"
            )));
        }
        let mut header = tar::Header::new_ustar();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        let dir = name.ends_with('/');
        header.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        header.set_mode(if dir { 0o755 } else { 0o644 });
        header.set_size(data.len() as u64);
        header.set_mtime(1_244_000_000);
        header.set_cksum();
        builder.append(&header, data.as_slice())?;
    }
    builder.into_inner()
}

/// Gzip `bytes` into `path`.
pub fn write_gz(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut enc = GzEncoder::new(File::create(path)?, Compression::fast());
    enc.write_all(bytes)?;
    enc.finish()?.sync_all()
}

/// `members` as a `.tar.gz` at `path`.
pub fn write_tar_gz(path: &Path, members: &[Member]) -> io::Result<()> {
    write_gz(path, &tar_bytes(members)?)
}

/// `ds` as a CIFAR-10 binary archive (`cifar-10-batches-bin/...`) at `path`.
pub fn write_cifar_binary_tar_gz(ds: &Dataset, path: &Path) -> io::Result<()> {
    write_tar_gz(
        path,
        &in_folder("cifar-10-batches-bin", cifar_binary_members(ds)?),
    )
}

/// `ds` as a CIFAR-10 Python archive (`cifar-10-batches-py/...`) at `path`.
pub fn write_cifar_python_tar_gz(ds: &Dataset, path: &Path, keys: Keys) -> io::Result<()> {
    write_tar_gz(
        path,
        &in_folder("cifar-10-batches-py", cifar_python_members(ds, keys)?),
    )
}

/// Write `members` as files in `dir` (created), as an extracted archive would be.
pub fn write_members_dir(dir: &Path, members: &[Member]) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, data) in members {
        std::fs::write(dir.join(name), data)?;
    }
    Ok(())
}

/// IDX images file (magic 0x00000803, count, rows, cols, pixels) of a one-channel split.
pub fn idx_images(split: &Split, height: usize, width: usize) -> Vec<u8> {
    let mut out = vec![0, 0, 8, 3];
    for d in [split.len(), height, width] {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(&split.images);
    out
}

/// IDX labels file (magic 0x00000801, count, labels).
pub fn idx_labels(split: &Split) -> Vec<u8> {
    let mut out = vec![0, 0, 8, 1];
    out.extend_from_slice(&(split.len() as u32).to_be_bytes());
    out.extend_from_slice(&split.labels);
    out
}

/// A learnable set of 12x12 one-channel images of 10 classes (`n_train` training, `n_test` test,
/// seed 4) as IDX files in `dir/idx`, small enough for a command-line run: that folder.
pub fn learnable_idx(dir: &Path, n_train: usize, n_test: usize) -> PathBuf {
    let ds = cifar_wgpu::data::synthetic::learnable(n_train, n_test, 12, 12, 1, 10, 4);
    let idx = dir.join("idx");
    write_idx(&ds, &idx, false).unwrap();
    idx
}

/// `ds` (one channel) as the four MNIST IDX files in `dir`, gzipped (`.gz`) or not.
pub fn write_idx(ds: &Dataset, dir: &Path, gz: bool) -> io::Result<()> {
    if ds.channels != 1 {
        return Err(invalid("IDX files hold one-channel images"));
    }
    std::fs::create_dir_all(dir)?;
    let files = [
        (
            "train-images-idx3-ubyte",
            idx_images(&ds.train, ds.height, ds.width),
        ),
        ("train-labels-idx1-ubyte", idx_labels(&ds.train)),
        (
            "t10k-images-idx3-ubyte",
            idx_images(&ds.test, ds.height, ds.width),
        ),
        ("t10k-labels-idx1-ubyte", idx_labels(&ds.test)),
    ];
    for (name, bytes) in files {
        if gz {
            write_gz(&dir.join(format!("{name}.gz")), &bytes)?;
        } else {
            std::fs::write(dir.join(name), bytes)?;
        }
    }
    Ok(())
}

/// Image file format for [`write_image_folder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Jpeg,
}

fn write_split_images(
    split: &Split,
    ds: &Dataset,
    root: &Path,
    format: ImageFormat,
) -> io::Result<()> {
    for name in &ds.class_names {
        std::fs::create_dir_all(root.join(name))?;
    }
    let (ext, fmt) = match format {
        ImageFormat::Png => ("png", image::ImageFormat::Png),
        ImageFormat::Jpeg => ("jpg", image::ImageFormat::Jpeg),
    };
    let color = match ds.channels {
        1 => image::ExtendedColorType::L8,
        3 => image::ExtendedColorType::Rgb8,
        _ => return Err(invalid("image folders are written with 1 or 3 channels")),
    };
    for i in 0..split.len() {
        let path = root
            .join(&ds.class_names[split.labels[i] as usize])
            .join(format!("{i:05}.{ext}"));
        image::save_buffer_with_format(
            &path,
            split.image(i),
            ds.width as u32,
            ds.height as u32,
            color,
            fmt,
        )
        .map_err(io::Error::other)?;
    }
    Ok(())
}

/// `ds` as an image folder at `root`: `root/CLASS/NNNNN.png` (N = index in the split) or, with
/// `with_test`, `root/train/CLASS/...` and `root/test/CLASS/...`. Every class folder is created, so
/// a class without images gives an empty folder.
pub fn write_image_folder(
    ds: &Dataset,
    root: &Path,
    with_test: bool,
    format: ImageFormat,
) -> io::Result<()> {
    if with_test {
        write_split_images(&ds.train, ds, &root.join("train"), format)?;
        write_split_images(&ds.test, ds, &root.join("test"), format)
    } else {
        write_split_images(&ds.train, ds, root, format)
    }
}

/// For a split written by [`write_image_folder`], the index in `split` of each image the reader
/// returns, in order: files listed class by class (sorted names = index order), then permuted by
/// `epoch_order(n, IMAGE_FOLDER_ORDER_SEED, 0, true)` (see the image-folder docs).
pub fn image_folder_order(split: &Split, classes: usize) -> Vec<usize> {
    let listed: Vec<usize> = (0..classes)
        .flat_map(|c| (0..split.len()).filter(move |&i| split.labels[i] as usize == c))
        .collect();
    epoch_order(listed.len(), IMAGE_FOLDER_ORDER_SEED, 0, true)
        .iter()
        .map(|&j| listed[j as usize])
        .collect()
}
