//! Published checksums of the official archives, hashing, and the "verified" stamp file.
//!
//! Verifying a 170 MB archive (MD5 + SHA-256) takes about a second here, which would be paid on
//! every run. So after a successful verification we write `NAME.verified.json` next to the archive,
//! recording its size, modification time and digests. A later run trusts the archive without
//! rehashing when the stamp exists, its size and mtime (to the nanosecond) still match the file, and
//! its digests equal the expected ones. Any change to the file (a new mtime or size) makes us rehash.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::DataError;

/// The official CIFAR-10 binary archive (the default download).
pub const CIFAR10_BINARY_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
/// The official CIFAR-10 Python archive (what Keras downloads).
pub const CIFAR10_PYTHON_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz";

/// What a file must be: its size and digests (lower-case hex). At least one digest must be given.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Checksums {
    pub size: Option<u64>,
    pub md5: Option<String>,
    pub sha256: Option<String>,
}

/// One of the official archives, with its published size and digests.
#[derive(Clone, Copy, Debug)]
pub struct KnownArchive {
    pub file_name: &'static str,
    pub url: &'static str,
    pub size: u64,
    pub md5: &'static str,
    pub sha256: &'static str,
}

impl KnownArchive {
    pub fn checksums(&self) -> Checksums {
        Checksums {
            size: Some(self.size),
            md5: Some(self.md5.to_string()),
            sha256: Some(self.sha256.to_string()),
        }
    }
}

/// The binary archive: size and MD5 from the CIFAR page, SHA-256 from issue 3.
pub const CIFAR10_BINARY: KnownArchive = KnownArchive {
    file_name: "cifar-10-binary.tar.gz",
    url: CIFAR10_BINARY_URL,
    size: 170_052_171,
    md5: "c32a1d4ab5d03f1284b67883e8d87530",
    sha256: "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
};

/// The Python archive: MD5 from the CIFAR page, SHA-256 as pinned by Keras' `cifar10.load_data`
/// (keras/src/datasets/cifar10.py, `file_hash=`).
pub const CIFAR10_PYTHON: KnownArchive = KnownArchive {
    file_name: "cifar-10-python.tar.gz",
    url: CIFAR10_PYTHON_URL,
    size: 170_498_071,
    md5: "c58f30108f718f92721af3b95e74349a",
    sha256: "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
};

/// Both official archives.
pub const KNOWN_ARCHIVES: [KnownArchive; 2] = [CIFAR10_BINARY, CIFAR10_PYTHON];

/// The published checksums of an official archive, looked up by file name.
pub fn known_checksums(file_name: &str) -> Option<Checksums> {
    KNOWN_ARCHIVES
        .iter()
        .find(|a| a.file_name == file_name)
        .map(KnownArchive::checksums)
}

/// The file name a URL downloads to: its last path segment, without query or fragment.
pub fn url_file_name(url: &str) -> Result<String, DataError> {
    let bad = |why: &str| DataError::InvalidArgument {
        detail: format!("data URL {url:?}: {why}"),
    };
    let rest = url
        .split_once("://")
        .map(|(_, r)| r)
        .ok_or_else(|| bad("has no scheme (https://...)"))?;
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (_, path) = rest
        .split_once('/')
        .ok_or_else(|| bad("has no file name"))?;
    let name = path.rsplit('/').next().unwrap_or_default();
    if name.is_empty() || name == "." || name == ".." || name.contains('\\') {
        return Err(bad("does not end in a file name"));
    }
    Ok(name.to_string())
}

/// Digests of some bytes, filled incrementally.
pub(crate) struct Hasher {
    md5: Md5,
    sha256: Sha256,
    len: u64,
}

/// Finished digests (lower-case hex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digests {
    pub size: u64,
    pub md5: String,
    pub sha256: String,
}

impl From<Digests> for Checksums {
    fn from(d: Digests) -> Self {
        Checksums {
            size: Some(d.size),
            md5: Some(d.md5),
            sha256: Some(d.sha256),
        }
    }
}

impl Hasher {
    pub(crate) fn new() -> Self {
        Hasher {
            md5: Md5::new(),
            sha256: Sha256::new(),
            len: 0,
        }
    }
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.md5.update(bytes);
        self.sha256.update(bytes);
        self.len += bytes.len() as u64;
    }
    pub(crate) fn finish(self) -> Digests {
        Digests {
            size: self.len,
            md5: hex(&self.md5.finalize()),
            sha256: hex(&self.sha256.finalize()),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Size, MD5 and SHA-256 of a whole file (read in 1 MiB pieces).
pub fn hash_file(path: &Path) -> Result<Digests, DataError> {
    let mut file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(DataError::io(path, e)),
        };
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finish())
}

/// Compare digests with what is expected; the first difference is the error.
pub(crate) fn check(path: &Path, got: &Digests, expected: &Checksums) -> Result<(), DataError> {
    if let Some(size) = expected.size.filter(|&s| s != got.size) {
        return Err(DataError::SizeMismatch {
            path: path.to_path_buf(),
            expected: size,
            actual: got.size,
        });
    }
    if let Some(md5) = expected
        .md5
        .as_ref()
        .filter(|m| !m.eq_ignore_ascii_case(&got.md5))
    {
        return Err(DataError::ChecksumMismatch {
            path: path.to_path_buf(),
            algorithm: "MD5",
            expected: md5.to_ascii_lowercase(),
            actual: got.md5.clone(),
        });
    }
    if let Some(sha) = expected
        .sha256
        .as_ref()
        .filter(|s| !s.eq_ignore_ascii_case(&got.sha256))
    {
        return Err(DataError::ChecksumMismatch {
            path: path.to_path_buf(),
            algorithm: "SHA-256",
            expected: sha.to_ascii_lowercase(),
            actual: got.sha256.clone(),
        });
    }
    Ok(())
}

/// What the stamp file records.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime_ns: u128,
    md5: String,
    sha256: String,
}

/// `ARCHIVE.verified.json`, next to the archive.
pub fn stamp_path(archive: &Path) -> PathBuf {
    let mut name = archive.file_name().unwrap_or_default().to_os_string();
    name.push(".verified.json");
    archive.with_file_name(name)
}

fn mtime_ns(meta: &std::fs::Metadata) -> u128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// How an archive's checksum was established.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verified {
    /// A valid stamp said so; nothing was rehashed.
    Stamp,
    /// The file was hashed now (and a stamp written).
    Hashed,
}

/// Verify `path` against `expected`, trusting a matching stamp, else hashing the file and, when it
/// matches, writing a stamp. A failed stamp write is only logged: it costs a rehash next time.
pub(crate) fn verify_file(path: &Path, expected: &Checksums) -> Result<Verified, DataError> {
    let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
    if let Some(size) = expected.size.filter(|&s| s != meta.len()) {
        return Err(DataError::SizeMismatch {
            path: path.to_path_buf(),
            expected: size,
            actual: meta.len(),
        });
    }
    let stamp = std::fs::read_to_string(stamp_path(path))
        .ok()
        .and_then(|text| serde_json::from_str::<Stamp>(&text).ok())
        .filter(|stamp| stamp.size == meta.len() && stamp.mtime_ns == mtime_ns(&meta));
    if let Some(stamp) = stamp {
        let recorded = Digests {
            size: stamp.size,
            md5: stamp.md5,
            sha256: stamp.sha256,
        };
        if check(path, &recorded, expected).is_ok() {
            return Ok(Verified::Stamp);
        }
    }
    let digests = hash_file(path)?;
    check(path, &digests, expected)?;
    write_stamp(path, &digests);
    Ok(Verified::Hashed)
}

/// Record that `path` (as it is now on disk) has `digests`.
pub(crate) fn write_stamp(path: &Path, digests: &Digests) {
    let result = (|| -> io::Result<()> {
        let meta = std::fs::metadata(path)?;
        let stamp = Stamp {
            size: meta.len(),
            mtime_ns: mtime_ns(&meta),
            md5: digests.md5.clone(),
            sha256: digests.sha256.clone(),
        };
        let target = stamp_path(path);
        let tmp = target.with_extension(format!("json.tmp-{}", std::process::id()));
        std::fs::write(
            &tmp,
            serde_json::to_string_pretty(&stamp).map_err(io::Error::other)?,
        )?;
        std::fs::rename(&tmp, &target)
    })();
    if let Err(e) = result {
        log::warn!(
            "{}: could not write the verification stamp: {e}",
            path.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_names() {
        assert_eq!(
            url_file_name(CIFAR10_BINARY_URL).unwrap(),
            "cifar-10-binary.tar.gz"
        );
        assert_eq!(
            url_file_name("http://127.0.0.1:80/a/b.tgz?x=1#y").unwrap(),
            "b.tgz"
        );
        assert!(url_file_name("http://host/").is_err());
        assert!(url_file_name("no-scheme").is_err());
    }

    #[test]
    fn known_digest_of_abc() {
        let mut h = Hasher::new();
        h.update(b"abc");
        let d = h.finish();
        assert_eq!(d.md5, "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            d.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
