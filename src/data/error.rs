//! The one error type of the data module.
//!
//! Every variant names the file (or URL) it is about and says what is wrong with it, so the CLI can
//! print it as is. Content errors inside an archive carry `file` as a display string of the form
//! `ARCHIVE (member FOLDER/NAME)`; errors about a whole file carry its path.

use std::path::PathBuf;

/// Everything that can go wrong while finding, downloading, verifying or reading a data set.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// `--data PATH` (or another path we were told to read) does not exist.
    #[error("{}: no such file or directory", .path.display())]
    NotFound { path: PathBuf },

    /// An operating-system error while opening, reading or writing `path`.
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The gzip stream stops before its end (an interrupted download or copy).
    #[error(
        "{}: truncated gzip stream: the data ends after {decompressed} decompressed bytes, before the \
         end of the compressed stream (an interrupted download or copy?); delete it and fetch it again",
        .path.display()
    )]
    TruncatedGzip { path: PathBuf, decompressed: u64 },

    /// The gzip stream is not gzip, or its deflate data or CRC is wrong.
    #[error("{}: corrupt gzip data after {decompressed} decompressed bytes: {detail}", .path.display())]
    CorruptGzip {
        path: PathBuf,
        decompressed: u64,
        detail: String,
    },

    /// The (decompressed) tar stream is malformed.
    #[error("{}: corrupt tar archive: {detail}", .path.display())]
    CorruptTar { path: PathBuf, detail: String },

    /// A file's MD5 or SHA-256 differs from the published one.
    #[error(
        "{}: {algorithm} checksum mismatch: expected {expected}, got {actual}; the file is corrupt or \
         not the official archive (delete it to download it again)",
        .path.display()
    )]
    ChecksumMismatch {
        path: PathBuf,
        algorithm: &'static str,
        expected: String,
        actual: String,
    },

    /// A file's size differs from the published one.
    #[error(
        "{}: size is {actual} bytes but the official archive has {expected} bytes; the file is \
         incomplete or not the official archive (delete it to download it again)",
        .path.display()
    )]
    SizeMismatch {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },

    /// A member that the format requires is absent.
    #[error("{}: missing member {member}", .path.display())]
    MissingMember { path: PathBuf, member: String },

    /// The same member appears twice.
    #[error("{}: member {member} appears more than once", .path.display())]
    DuplicateMember { path: PathBuf, member: String },

    /// A tar member whose name is absolute or contains `..`.
    #[error(
        "{}: member {member:?} tries to escape the archive's folder (absolute path or `..`); refusing the archive",
        .path.display()
    )]
    UnsafeMember { path: PathBuf, member: String },

    /// A member that has no place in the format (wrong folder, wrong kind of entry, ...).
    #[error("{}: unexpected member {member:?}: {why}", .path.display())]
    UnexpectedMember {
        path: PathBuf,
        member: String,
        why: String,
    },

    /// A member larger than the same member of the real data set.
    #[error(
        "{}: member {member} claims {size} bytes, more than the {max} bytes the real one has; refusing to read it",
        .path.display()
    )]
    MemberTooLarge {
        path: PathBuf,
        member: String,
        size: u64,
        max: u64,
    },

    /// A file (or its decompressed content) far larger than the real archive.
    #[error(
        "{}: {what} exceeds {max} bytes (at least {size} bytes), far more than the real archive; refusing to read it",
        .path.display()
    )]
    ArchiveTooLarge {
        path: PathBuf,
        what: &'static str,
        size: u64,
        max: u64,
    },

    /// A batch whose size is not a whole number of records, or whose rows have the wrong length.
    #[error("{file}: record of wrong length: {detail}")]
    RecordLength { file: String, detail: String },

    /// A label outside `0..classes`.
    #[error("{file}: label {label} of record {index} is out of range (the data set has {classes} classes, 0..={})", .classes.saturating_sub(1))]
    LabelOutOfRange {
        file: String,
        index: usize,
        label: i64,
        classes: usize,
    },

    /// Training batches that do not all hold the same number of records, or a batch over the real count.
    #[error("{file}: holds {records} records, expected {expected}")]
    BatchSize {
        file: String,
        records: usize,
        expected: String,
    },

    /// `batches.meta.txt` / `batches.meta` does not list the class names.
    #[error("{file}: bad class-name list: {detail}")]
    BadMeta { file: String, detail: String },

    /// A Python pickle that is not the expected dict of a numpy array and labels.
    #[error("{file}: not a CIFAR-10 batch pickle: {detail}")]
    BadPickle { file: String, detail: String },

    /// An IDX file with a bad header or content.
    #[error("{}: bad IDX file: {detail}", .path.display())]
    BadIdx { path: PathBuf, detail: String },

    /// A class folder with no PNG/JPEG images in it.
    #[error("{}: class folder contains no PNG or JPEG images", .path.display())]
    EmptyClassFolder { path: PathBuf },

    /// An image that cannot be opened or decoded.
    #[error("{}: unreadable image: {detail}", .path.display())]
    UnreadableImage { path: PathBuf, detail: String },

    /// An image folder whose layout is wrong (no class folders, train/test class sets differ, ...).
    #[error("{}: bad image folder: {detail}", .path.display())]
    BadImageFolder { path: PathBuf, detail: String },

    /// A path whose format we cannot recognise.
    #[error("{}: unrecognised data format: {detail}", .path.display())]
    UnknownFormat { path: PathBuf, detail: String },

    /// The download failed (connection, HTTP status, interrupted transfer).
    #[error("could not download {url}: {detail}. {hint}")]
    Download {
        url: String,
        detail: String,
        hint: String,
    },

    /// Offline (or asked to be), and no local copy was found.
    #[error(
        "no local copy of the data set was found and downloading is disabled (offline). {hint}"
    )]
    Offline { hint: String },

    /// We do not know the checksum of what `url` points at, so we will not download it.
    #[error(
        "no checksum is known for {url} (its file name is not one of the official CIFAR-10 archives); \
         refusing to download unverified data"
    )]
    NoChecksum { url: String },

    /// A bad argument (validation fraction outside [0, 1), too few samples, ...).
    #[error("{detail}")]
    InvalidArgument { detail: String },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}
