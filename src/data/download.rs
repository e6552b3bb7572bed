//! Download over HTTP(S) with ureq into the cache: to a temporary name, hashed on the way, renamed
//! only when size and checksums match. An interrupted or wrong download leaves nothing behind.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::verify::{self, Checksums, Hasher};
use super::{DataError, cifar};

/// Removes the temporary file unless disarmed.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn is_loopback(url: &str) -> bool {
    let host = url.split_once("://").map_or("", |(_, r)| r);
    ["127.0.0.1", "localhost", "[::1]"].iter().any(|h| {
        host.strip_prefix(h)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
    })
}

fn describe(e: ureq::Error) -> String {
    match e {
        ureq::Error::StatusCode(code) => format!("the server answered HTTP {code}"),
        ureq::Error::HostNotFound => "host not found (no network, or no DNS?)".to_string(),
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::Io(io) => format!("connection failed: {io}"),
        other => other.to_string(),
    }
}

/// Download `url` to `dest`, verifying against `expected`. `hint` (how to use a local copy instead)
/// ends every download error.
pub(crate) fn download(
    url: &str,
    dest: &Path,
    expected: &Checksums,
    progress: bool,
    hint: &str,
) -> Result<(), DataError> {
    let fail = |detail: String| DataError::Download {
        url: url.to_string(),
        detail,
        hint: hint.to_string(),
    };
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let name = dest
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let tmp = TempFile {
        path: dir.join(format!(".{name}.part-{}", std::process::id())),
        keep: false,
    };

    let mut config = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        // The archive is already gzip; a transparently decoded body would fail the checksum.
        .accept_encoding("identity")
        .user_agent(concat!("cifar-wgpu/", env!("CARGO_PKG_VERSION")));
    if is_loopback(url) {
        config = config.proxy(None);
    }
    let agent: ureq::Agent = config.build().into();
    log::info!("downloading {url} to {}", dest.display());
    let mut response = agent.get(url).call().map_err(|e| fail(describe(e)))?;
    let announced = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let (Some(len), Some(size)) = (announced, expected.size)
        && len != size
    {
        return Err(fail(format!(
            "the server announces {len} bytes but the expected file has {size} bytes"
        )));
    }
    // Never accept more than the expected size (or, without one, a far-larger-than-real file).
    let cap = expected.size.unwrap_or(cifar::MAX_ARCHIVE_FILE);
    let total = announced.or(expected.size);
    let mut reader = response.body_mut().with_config().limit(cap).reader();
    let mut file = File::create(&tmp.path).map_err(|e| DataError::io(&tmp.path, e))?;

    let bar = progress.then(|| {
        let bar = ProgressBar::new(total.unwrap_or(0));
        let style = ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style.progress_chars("=> "));
        bar.set_message(name.clone());
        bar
    });
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut got: u64 = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let of = total.map_or(String::new(), |t| format!(" of {t}"));
                return Err(fail(format!(
                    "the transfer broke off after {got}{of} bytes: {e}; nothing was kept"
                )));
            }
        };
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .map_err(|e| DataError::io(&tmp.path, e))?;
        got += n as u64;
        if let Some(bar) = &bar {
            bar.inc(n as u64);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Some(len) = announced.filter(|&len| len != got) {
        return Err(fail(format!(
            "the connection closed after {got} of {len} bytes; nothing was kept"
        )));
    }
    file.sync_all().map_err(|e| DataError::io(&tmp.path, e))?;
    drop(file);
    let digests = hasher.finish();
    if let Err(e) = verify::check(&tmp.path, &digests, expected) {
        let why = match e {
            DataError::SizeMismatch {
                expected, actual, ..
            } => {
                format!("received {actual} bytes, the expected file has {expected}")
            }
            DataError::ChecksumMismatch {
                algorithm,
                expected,
                actual,
                ..
            } => {
                format!("the data has {algorithm} {actual}, expected {expected}")
            }
            other => other.to_string(),
        };
        return Err(fail(format!(
            "checksum mismatch: {why}; the download was discarded"
        )));
    }
    std::fs::rename(&tmp.path, dest).map_err(|e| DataError::io(dest, e))?;
    let mut tmp = tmp;
    tmp.keep = true;
    verify::write_stamp(dest, &digests);
    log::info!("saved {} ({got} bytes, checksums OK)", dest.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_hosts() {
        assert!(super::is_loopback("http://127.0.0.1:8080/x"));
        assert!(super::is_loopback("http://localhost/x"));
        assert!(!super::is_loopback("https://www.cs.toronto.edu/~kriz/x"));
        assert!(!super::is_loopback("http://localhost.example.com/x"));
    }
}
