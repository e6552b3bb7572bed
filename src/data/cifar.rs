//! CIFAR-10 in its two official layouts, read from the `.tar.gz` as a stream (nothing is extracted)
//! or from an extracted folder.
//!
//! Binary layout (`cifar-10-batches-bin/`): `data_batch_1.bin` … `data_batch_5.bin`,
//! `test_batch.bin`, each a sequence of 3,073-byte records (1 label byte, then 1,024 red, 1,024
//! green and 1,024 blue bytes, each plane row-major), and `batches.meta.txt`, one class name a line.
//! Python layout (`cifar-10-batches-py/`): `data_batch_1` … `data_batch_5`, `test_batch` (pickled
//! dicts, see [`super::pickle`]) and `batches.meta`. Other members (`readme.html`) are skipped.
//!
//! Strictness: every required member must be present exactly once, the five training batches must
//! hold the same number of records (10,000 in the real archives; small archives built by tests may
//! hold fewer), no batch may hold more than the real 10,000, a binary batch must be a whole number of
//! records, labels must be 0..=9 and the meta file must name 10 classes. Tar members must sit directly
//! in the one data folder; absolute names and `..` are refused. Sizes declared by the archive are
//! checked against the real members' sizes before anything is allocated, the file itself may not
//! exceed [`MAX_ARCHIVE_FILE`] bytes and its decompressed stream may not exceed
//! [`MAX_DECOMPRESSED`] bytes (the real ones decompress to about 185 MB). GNU long names are read
//! up to 4 KiB and pax headers up to 64 KiB; a Python batch is read by the bounded reader of
//! [`super::pickle`].

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use super::stream::{Watched, explain, maybe_gzip};
use super::{DataError, Dataset, Split, pickle};

/// Records per batch in the real archives.
pub const RECORDS_PER_BATCH: usize = 10_000;
/// Pixel bytes of one image (32 × 32 × 3).
pub const IMAGE_BYTES: usize = 32 * 32 * 3;
/// One binary record: a label byte and the pixels.
pub const RECORD_BYTES: usize = 1 + IMAGE_BYTES;
/// Largest `.tar.gz` (or `.tar`) file we will open: a little over twice the real archive.
pub const MAX_ARCHIVE_FILE: u64 = 400_000_000;
/// Largest decompressed stream we will read: about twice the real one (~185 MB).
pub const MAX_DECOMPRESSED: u64 = 400_000_000;
/// Number of classes.
pub const CLASSES: usize = 10;

const MAX_BIN_BATCH: u64 = (RECORDS_PER_BATCH * RECORD_BYTES) as u64;
/// A real batch pickle is ~31.0 MB: 30,720,000 pixel bytes plus labels, file names and opcodes.
const MAX_PICKLE_BATCH: u64 = (RECORDS_PER_BATCH * IMAGE_BYTES) as u64 + (2 << 20);
const MAX_META: u64 = 64 << 10;
const MAX_OTHER: u64 = 1 << 20;

/// The two official layouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Binary,
    Python,
}

impl Flavor {
    /// The folder the archive holds.
    pub fn folder(self) -> &'static str {
        match self {
            Flavor::Binary => "cifar-10-batches-bin",
            Flavor::Python => "cifar-10-batches-py",
        }
    }
    fn train(self, i: usize) -> String {
        match self {
            Flavor::Binary => format!("data_batch_{i}.bin"),
            Flavor::Python => format!("data_batch_{i}"),
        }
    }
    fn test(self) -> &'static str {
        match self {
            Flavor::Binary => "test_batch.bin",
            Flavor::Python => "test_batch",
        }
    }
    fn meta(self) -> &'static str {
        match self {
            Flavor::Binary => "batches.meta.txt",
            Flavor::Python => "batches.meta",
        }
    }
    fn from_folder(name: &str) -> Option<Flavor> {
        [Flavor::Binary, Flavor::Python]
            .into_iter()
            .find(|f| f.folder() == name)
    }
    /// The flavor of an extracted folder, judged by its files.
    pub(crate) fn of_dir(dir: &Path) -> Option<Flavor> {
        [Flavor::Binary, Flavor::Python]
            .into_iter()
            .find(|f| dir.join(f.train(1)).is_file() || dir.join(f.meta()).is_file())
    }
    fn all_members(self) -> Vec<String> {
        let mut v: Vec<String> = (1..=5).map(|i| self.train(i)).collect();
        v.push(self.test().to_string());
        v.push(self.meta().to_string());
        v
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Train(usize),
    Test,
    Meta,
    Other,
}

/// A decoded batch, images already channels-last.
struct Batch {
    images: Vec<u8>,
    labels: Vec<u8>,
}

/// Error while reading a member: content errors are final, I/O errors get explained by the stream.
enum Fail {
    Data(DataError),
    Io(io::Error),
}

impl From<DataError> for Fail {
    fn from(e: DataError) -> Self {
        Fail::Data(e)
    }
}
impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Self {
        Fail::Io(e)
    }
}

/// Gathers members in any order and checks the whole at the end.
struct Collector {
    flavor: Flavor,
    /// The archive file, or the extracted folder.
    origin: PathBuf,
    in_archive: bool,
    train: [Option<Batch>; 5],
    test: Option<Batch>,
    classes: Option<Vec<String>>,
}

impl Collector {
    fn new(flavor: Flavor, origin: &Path, in_archive: bool) -> Self {
        Collector {
            flavor,
            origin: origin.to_path_buf(),
            in_archive,
            train: Default::default(),
            test: None,
            classes: None,
        }
    }

    /// How an error names a member.
    fn describe(&self, member: &str) -> String {
        if self.in_archive {
            format!(
                "{} (member {}/{member})",
                self.origin.display(),
                self.flavor.folder()
            )
        } else {
            self.origin.join(member).display().to_string()
        }
    }

    fn member_path(&self, member: &str) -> String {
        if self.in_archive {
            format!("{}/{member}", self.flavor.folder())
        } else {
            member.to_string()
        }
    }

    fn kind(&self, name: &str) -> Kind {
        if let Some(i) = (1..=5).find(|&i| self.flavor.train(i) == name) {
            Kind::Train(i - 1)
        } else if name == self.flavor.test() {
            Kind::Test
        } else if name == self.flavor.meta() {
            Kind::Meta
        } else {
            Kind::Other
        }
    }

    /// Read one member of declared `size` from `r` (which yields exactly that many bytes or fewer).
    fn accept(&mut self, name: &str, size: u64, r: &mut dyn Read) -> Result<(), Fail> {
        let kind = self.kind(name);
        let max = match (kind, self.flavor) {
            (Kind::Train(_) | Kind::Test, Flavor::Binary) => MAX_BIN_BATCH,
            (Kind::Train(_) | Kind::Test, Flavor::Python) => MAX_PICKLE_BATCH,
            (Kind::Meta, _) => MAX_META,
            (Kind::Other, _) => MAX_OTHER,
        };
        if size > max {
            return Err(DataError::MemberTooLarge {
                path: self.origin.clone(),
                member: self.member_path(name),
                size,
                max,
            }
            .into());
        }
        let duplicate = match kind {
            Kind::Train(i) => self.train[i].is_some(),
            Kind::Test => self.test.is_some(),
            Kind::Meta => self.classes.is_some(),
            Kind::Other => false,
        };
        if duplicate {
            return Err(DataError::DuplicateMember {
                path: self.origin.clone(),
                member: self.member_path(name),
            }
            .into());
        }
        let file = self.describe(name);
        match kind {
            Kind::Other => {
                io::copy(&mut r.take(size), &mut io::sink())?;
            }
            Kind::Meta => {
                let bytes = read_member(r, size)?;
                self.classes = Some(match self.flavor {
                    Flavor::Binary => meta_txt(&bytes, &file)?,
                    Flavor::Python => check_classes(pickle::read_meta(&bytes, &file)?, &file)?,
                });
            }
            Kind::Train(_) | Kind::Test => {
                let batch = match self.flavor {
                    Flavor::Binary => binary_batch(r, size, &file)?,
                    Flavor::Python => python_batch(read_member(r, size)?, &file)?,
                };
                match kind {
                    Kind::Train(i) => self.train[i] = Some(batch),
                    _ => self.test = Some(batch),
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<Dataset, DataError> {
        let missing = |c: &Collector, member: &str| DataError::MissingMember {
            path: c.origin.clone(),
            member: c.member_path(member),
        };
        for (i, b) in self.train.iter().enumerate() {
            if b.is_none() {
                return Err(missing(&self, &self.flavor.train(i + 1)));
            }
        }
        if self.test.is_none() {
            return Err(missing(&self, self.flavor.test()));
        }
        if self.classes.is_none() {
            return Err(missing(&self, self.flavor.meta()));
        }
        let first = self.train[0].as_ref().map_or(0, |b| b.labels.len());
        for (i, b) in self.train.iter().enumerate().skip(1) {
            let n = b.as_ref().map_or(0, |b| b.labels.len());
            if n != first {
                return Err(DataError::BatchSize {
                    file: self.describe(&self.flavor.train(i + 1)),
                    records: n,
                    expected: format!(
                        "{first}, as {} (all training batches hold the same number)",
                        self.flavor.train(1)
                    ),
                });
            }
        }
        let mut train = Split {
            images: Vec::with_capacity(5 * first * IMAGE_BYTES),
            labels: Vec::with_capacity(5 * first),
        };
        for b in self.train.into_iter().flatten() {
            train.images.extend_from_slice(&b.images);
            train.labels.extend_from_slice(&b.labels);
        }
        let test = self
            .test
            .map(|b| Split {
                images: b.images,
                labels: b.labels,
            })
            .unwrap_or_default();
        Ok(Dataset {
            name: "cifar10".to_string(),
            height: 32,
            width: 32,
            channels: 3,
            class_names: self.classes.unwrap_or_default(),
            train,
            test,
            source: self.origin,
        })
    }
}

/// Read a whole (size-checked) member.
fn read_member(r: &mut dyn Read, size: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(size as usize);
    r.take(size).read_to_end(&mut buf)?;
    if (buf.len() as u64) < size {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("member ends after {} of {size} bytes", buf.len()),
        ));
    }
    Ok(buf)
}

fn check_classes(names: Vec<String>, file: &str) -> Result<Vec<String>, DataError> {
    if names.len() != CLASSES {
        return Err(DataError::BadMeta {
            file: file.to_string(),
            detail: format!("{} class names, expected {CLASSES}", names.len()),
        });
    }
    if let Some(i) = names.iter().position(|n| n.trim().is_empty()) {
        return Err(DataError::BadMeta {
            file: file.to_string(),
            detail: format!("class name {i} is empty"),
        });
    }
    Ok(names)
}

/// `batches.meta.txt`: one class name a line; blank lines (the real file ends with some) are ignored.
fn meta_txt(bytes: &[u8], file: &str) -> Result<Vec<String>, DataError> {
    let text = std::str::from_utf8(bytes).map_err(|_| DataError::BadMeta {
        file: file.to_string(),
        detail: "not UTF-8 text".into(),
    })?;
    check_classes(
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
        file,
    )
}

/// Planar RGB (CHW) → channels-last (HWC), appended to `out`.
pub(crate) fn planar_to_hwc(planes: &[u8], channels: usize, out: &mut Vec<u8>) {
    let hw = planes.len() / channels;
    out.reserve(planes.len());
    for p in 0..hw {
        for c in 0..channels {
            out.push(planes[c * hw + p]);
        }
    }
}

fn label_check(label: i64, index: usize, file: &str) -> Result<u8, DataError> {
    if (0..CLASSES as i64).contains(&label) {
        Ok(label as u8)
    } else {
        Err(DataError::LabelOutOfRange {
            file: file.to_string(),
            index,
            label,
            classes: CLASSES,
        })
    }
}

fn records_check(records: usize, file: &str) -> Result<(), DataError> {
    if records == 0 || records > RECORDS_PER_BATCH {
        return Err(DataError::BatchSize {
            file: file.to_string(),
            records,
            expected: format!("1..={RECORDS_PER_BATCH}"),
        });
    }
    Ok(())
}

fn binary_batch(r: &mut dyn Read, size: u64, file: &str) -> Result<Batch, Fail> {
    if !size.is_multiple_of(RECORD_BYTES as u64) {
        return Err(DataError::RecordLength {
            file: file.to_string(),
            detail: format!(
                "{size} bytes is not a whole number of {RECORD_BYTES}-byte records (1 label byte + {IMAGE_BYTES} pixel bytes); {} bytes left over",
                size % RECORD_BYTES as u64
            ),
        }
        .into());
    }
    let records = (size / RECORD_BYTES as u64) as usize;
    records_check(records, file)?;
    let mut batch = Batch {
        images: Vec::with_capacity(records * IMAGE_BYTES),
        labels: Vec::with_capacity(records),
    };
    let mut record = [0u8; RECORD_BYTES];
    for index in 0..records {
        r.read_exact(&mut record).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                io::Error::new(
                    e.kind(),
                    format!("member ends inside record {index} of {records}"),
                )
            } else {
                e
            }
        })?;
        batch
            .labels
            .push(label_check(record[0] as i64, index, file)?);
        planar_to_hwc(&record[1..], 3, &mut batch.images);
    }
    Ok(batch)
}

fn python_batch(bytes: Vec<u8>, file: &str) -> Result<Batch, DataError> {
    let b = pickle::read_batch(bytes, file)?;
    if b.cols != IMAGE_BYTES {
        return Err(DataError::RecordLength {
            file: file.to_string(),
            detail: format!(
                "b'data' rows are {} bytes, expected {IMAGE_BYTES} (3 planes of 32x32)",
                b.cols
            ),
        });
    }
    records_check(b.rows, file)?;
    if b.labels.len() != b.rows {
        return Err(DataError::BadPickle {
            file: file.to_string(),
            detail: format!("{} labels for {} images", b.labels.len(), b.rows),
        });
    }
    let mut batch = Batch {
        images: Vec::with_capacity(b.data.len()),
        labels: Vec::with_capacity(b.rows),
    };
    for (index, (&label, row)) in b
        .labels
        .iter()
        .zip(b.data.chunks_exact(IMAGE_BYTES))
        .enumerate()
    {
        batch.labels.push(label_check(label, index, file)?);
        planar_to_hwc(row, 3, &mut batch.images);
    }
    Ok(batch)
}

/// Split a raw tar member name into components, refusing absolute names and `..`.
fn components(path: &Path, raw: &[u8]) -> Result<Vec<String>, DataError> {
    let name = std::str::from_utf8(raw).map_err(|_| DataError::UnexpectedMember {
        path: path.to_path_buf(),
        member: String::from_utf8_lossy(raw).into_owned(),
        why: "name is not UTF-8".into(),
    })?;
    let unsafe_member = || DataError::UnsafeMember {
        path: path.to_path_buf(),
        member: name.to_string(),
    };
    let windows_drive =
        name.len() >= 2 && name.as_bytes()[1] == b':' && name.as_bytes()[0].is_ascii_alphabetic();
    if name.starts_with('/') || name.starts_with('\\') || windows_drive {
        return Err(unsafe_member());
    }
    let parts: Vec<String> = name
        .split(['/', '\\'])
        .filter(|c| !c.is_empty() && *c != ".")
        .map(String::from)
        .collect();
    if parts.iter().any(|c| c == "..") {
        return Err(unsafe_member());
    }
    Ok(parts)
}

/// Read a CIFAR-10 `.tar.gz` (or plain `.tar`) as a stream.
pub(crate) fn read_archive(path: &Path) -> Result<Dataset, DataError> {
    let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
    if meta.len() > MAX_ARCHIVE_FILE {
        return Err(DataError::ArchiveTooLarge {
            path: path.to_path_buf(),
            what: "file size",
            size: meta.len(),
            max: MAX_ARCHIVE_FILE,
        });
    }
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let (inner, gzip) = maybe_gzip(path, file)?;
    let (watched, state) = Watched::new(inner, MAX_DECOMPRESSED);
    let mut archive = tar::Archive::new(watched);
    let result = read_tar(path, &mut archive);
    // Read to the end of the stream, also after the tar end marker or a content error: this checks
    // the gzip CRC and length, notices an oversized tail, and tells whether a content error (a bad
    // label, say) is really a corrupt or truncated file, which is then what we report.
    let drained = io::copy(&mut archive.into_inner(), &mut io::sink());
    if let Some(e) = explain(path, &state.borrow(), gzip, MAX_DECOMPRESSED) {
        return Err(e);
    }
    let corrupt_tar = |e: io::Error| DataError::CorruptTar {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    match result {
        Ok(collector) => {
            drained.map_err(corrupt_tar)?;
            collector.finish()
        }
        Err(Fail::Data(e)) => Err(e),
        Err(Fail::Io(e)) => Err(corrupt_tar(e)),
    }
}

/// Longest GNU long name (or long link name) we read: PATH_MAX.
const MAX_LONG_NAME: u64 = 4096;
/// Largest pax extended header we read.
const MAX_PAX_HEADER: u64 = 64 << 10;

/// Reads the entries raw, so that GNU long names and pax headers (which `tar` would read whole,
/// whatever their size) are read here, within [`MAX_LONG_NAME`] and [`MAX_PAX_HEADER`].
fn read_tar<R: Read>(path: &Path, archive: &mut tar::Archive<R>) -> Result<Collector, Fail> {
    let mut collector: Option<Collector> = None;
    let mut long_name: Option<Vec<u8>> = None;
    let mut pax_path: Option<Vec<u8>> = None;
    for entry in archive.entries()?.raw(true) {
        let mut entry = entry?;
        let entry_type = entry.header().entry_type();
        let long = entry_type.is_gnu_longname() || entry_type.is_gnu_longlink();
        if long || entry_type.is_pax_local_extensions() || entry_type.is_pax_global_extensions() {
            let (what, max) = if long {
                ("GNU long name", MAX_LONG_NAME)
            } else {
                ("pax extended header", MAX_PAX_HEADER)
            };
            if entry.size() > max {
                return Err(DataError::UnexpectedMember {
                    path: path.to_path_buf(),
                    member: String::from_utf8_lossy(&entry.path_bytes()).into_owned(),
                    why: format!("a {what} of {} bytes; at most {max} are read", entry.size()),
                }
                .into());
            }
            let mut data = Vec::new();
            entry.read_to_end(&mut data)?;
            if entry_type.is_gnu_longname() {
                data.truncate(data.iter().position(|&b| b == 0).unwrap_or(data.len()));
                long_name = Some(data);
            } else if entry_type.is_pax_local_extensions() {
                pax_path = tar::PaxExtensions::new(&data)
                    .filter_map(Result::ok)
                    .find(|x| x.key_bytes() == b"path")
                    .map(|x| x.value_bytes().to_vec());
            }
            continue;
        }
        let name = long_name
            .take()
            .or(pax_path.take())
            .unwrap_or_else(|| entry.path_bytes().into_owned());
        let parts = components(path, &name)?;
        let member = parts.join("/");
        let unexpected = |why: &str| DataError::UnexpectedMember {
            path: path.to_path_buf(),
            member: member.clone(),
            why: why.to_string(),
        };
        let Some(top) = parts.first() else {
            if entry_type.is_dir() {
                continue; // "./"
            }
            return Err(unexpected("empty name").into());
        };
        let flavor = match &collector {
            Some(c) => c.flavor,
            None => {
                let flavor = Flavor::from_folder(top).ok_or_else(|| DataError::UnknownFormat {
                    path: path.to_path_buf(),
                    detail: format!("member {member:?} is not under cifar-10-batches-bin/ or cifar-10-batches-py/; not a CIFAR-10 archive"),
                })?;
                collector.insert(Collector::new(flavor, path, true)).flavor
            }
        };
        if top != flavor.folder() {
            return Err(unexpected(&format!(
                "outside {}/ (the archive holds one folder)",
                flavor.folder()
            ))
            .into());
        }
        if entry_type.is_dir() {
            if parts.len() == 1 {
                continue;
            }
            return Err(unexpected("nested folder").into());
        }
        if !(entry_type.is_file() || entry_type.is_contiguous()) {
            return Err(
                unexpected("not a regular file (links and devices are not allowed)").into(),
            );
        }
        if parts.len() != 2 {
            return Err(unexpected(&format!("not directly inside {}/", flavor.folder())).into());
        }
        let size = entry.size();
        if let Some(c) = collector.as_mut() {
            c.accept(&parts[1], size, &mut entry)?;
        }
    }
    collector.ok_or_else(|| {
        Fail::Data(DataError::UnknownFormat {
            path: path.to_path_buf(),
            detail: "empty tar archive".into(),
        })
    })
}

/// Read an extracted `cifar-10-batches-bin/` or `cifar-10-batches-py/` folder.
pub(crate) fn read_dir(dir: &Path, flavor: Flavor) -> Result<Dataset, DataError> {
    let mut collector = Collector::new(flavor, dir, false);
    for name in flavor.all_members() {
        let path = dir.join(&name);
        let meta = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => {
                return Err(DataError::UnexpectedMember {
                    path: dir.to_path_buf(),
                    member: name,
                    why: "not a regular file".into(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(DataError::MissingMember {
                    path: dir.to_path_buf(),
                    member: name,
                });
            }
            Err(e) => return Err(DataError::io(path, e)),
        };
        let file = File::open(&path).map_err(|e| DataError::io(&path, e))?;
        let mut reader = BufReader::with_capacity(1 << 16, file);
        match collector.accept(&name, meta.len(), &mut reader) {
            Ok(()) => {}
            Err(Fail::Data(e)) => return Err(e),
            Err(Fail::Io(e)) => return Err(DataError::io(&path, e)),
        }
    }
    collector.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planar_to_hwc_interleaves() {
        let mut out = Vec::new();
        planar_to_hwc(&[1, 2, 10, 20, 100, 200], 3, &mut out);
        assert_eq!(out, vec![1, 10, 100, 2, 20, 200]);
    }

    #[test]
    fn member_names() {
        let p = Path::new("a.tar.gz");
        assert_eq!(
            components(p, b"./cifar-10-batches-bin/x").unwrap(),
            vec!["cifar-10-batches-bin", "x"]
        );
        assert!(matches!(
            components(p, b"../x"),
            Err(DataError::UnsafeMember { .. })
        ));
        assert!(matches!(
            components(p, b"/etc/passwd"),
            Err(DataError::UnsafeMember { .. })
        ));
        assert!(matches!(
            components(p, b"a/../../x"),
            Err(DataError::UnsafeMember { .. })
        ));
        assert!(matches!(
            components(p, b"C:\\x"),
            Err(DataError::UnsafeMember { .. })
        ));
    }
}
