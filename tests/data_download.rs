//! Download, verification and caching against a local HTTP server on 127.0.0.1 (the URL is a
//! setting; the expected checksums are injected for the tiny archive the server serves).

#[path = "common/data_fixtures.rs"]
mod fixtures;
#[path = "common/writers.rs"]
mod writers;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cifar_wgpu::data::verify::{hash_file, stamp_path};
use cifar_wgpu::data::{self, Checksums, DataError, DataOptions};
use fixtures::{assert_same_data, files_in, tiny_cifar};

/// What the server does with each request.
#[derive(Clone)]
enum Reply {
    /// 200 with the whole body.
    Full(Vec<u8>),
    /// 200 announcing the whole body, then the connection drops after `send` bytes.
    Drop { body: Vec<u8>, send: usize },
    /// An error status.
    Status(u16),
}

/// A one-thread HTTP/1.1 server. It stops when dropped, and after 60 s in any case.
struct Server {
    port: u16,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn handle(mut stream: TcpStream, reply: &Reply) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    // Read the request head (bounded).
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 << 10 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let (status, body, send) = match reply {
        Reply::Full(body) => (200, body.as_slice(), body.len()),
        Reply::Drop { body, send } => (200, body.as_slice(), *send),
        Reply::Status(code) => (*code, &b"nope"[..], 4),
    };
    let header = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes())?;
    stream.write_all(&body[..send])?;
    stream.flush()?;
    stream.shutdown(Shutdown::Both)
}

impl Server {
    fn start(reply: Reply) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (hits.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !s.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        h.fetch_add(1, Ordering::SeqCst);
                        let _ = handle(stream, &reply);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => break,
                }
            }
        });
        Server {
            port,
            hits,
            stop,
            thread: Some(thread),
        }
    }
    fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/files/{name}", self.port)
    }
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A tiny binary archive: its bytes, its checksums, and the data set it holds.
fn tiny_archive(dir: &Path) -> (Vec<u8>, Checksums, data::Dataset) {
    let ds = tiny_cifar(2, 2, 11);
    let path = dir.join("source.tar.gz");
    writers::write_cifar_binary_tar_gz(&ds, &path).unwrap();
    let checksums = hash_file(&path).unwrap().into();
    (std::fs::read(&path).unwrap(), checksums, ds)
}

fn opts(cache: &Path, url: String, expected: Checksums) -> DataOptions {
    DataOptions {
        cache_dir: Some(cache.to_path_buf()),
        url,
        expected: Some(expected),
        keras_datasets: None,
        ..DataOptions::default()
    }
}

/// Nothing in the cache folder may look like a usable archive.
fn assert_nothing_kept(cache: &Path, dest: &Path) {
    assert!(!dest.exists(), "{} was kept", dest.display());
    let left = files_in(cache);
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn downloads_verifies_caches_and_never_downloads_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (bytes, checksums, ds) = tiny_archive(tmp.path());
    let server = Server::start(Reply::Full(bytes.clone()));
    let cache = tmp.path().join("cache");
    let o = opts(&cache, server.url("tiny.tar.gz"), checksums);

    let got = data::load(&o).unwrap();
    assert_same_data(&got, &ds);
    assert_eq!(server.hits(), 1);
    let dest = cache.join("tiny.tar.gz");
    assert_eq!(std::fs::read(&dest).unwrap(), bytes);
    assert!(stamp_path(&dest).is_file());
    assert_eq!(
        files_in(&cache),
        vec!["tiny.tar.gz", "tiny.tar.gz.verified.json"]
    );

    // Second load, fetch and info: no request.
    assert_same_data(&data::load(&o).unwrap(), &ds);
    assert_eq!(data::fetch(&o).unwrap(), dest);
    assert!(data::info(&o).unwrap().dataset.is_some());
    assert_eq!(
        server.hits(),
        1,
        "downloaded again although a valid copy is cached"
    );

    // A cached copy that changed is re-verified, reported, and not silently replaced.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&dest)
        .unwrap()
        .write_all(b"x")
        .unwrap();
    let err = data::load(&o).unwrap_err();
    assert!(matches!(err, DataError::SizeMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains(dest.to_str().unwrap()), "{err}");
    assert_eq!(server.hits(), 1);
}

#[test]
fn checksum_mismatch_keeps_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (bytes, checksums, _) = tiny_archive(tmp.path());
    let server = Server::start(Reply::Full(bytes));
    let cache = tmp.path().join("cache");
    let wrong = Checksums {
        sha256: Some("ab".repeat(32)),
        ..checksums
    };
    let o = opts(&cache, server.url("tiny.tar.gz"), wrong);
    let err = data::fetch(&o).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::Download { .. }), "{err:?}");
    assert!(
        msg.contains("checksum mismatch")
            && msg.contains("SHA-256")
            && msg.contains(&"ab".repeat(32)),
        "{msg}"
    );
    assert!(msg.contains("--data"), "no hint at a local copy: {msg}");
    assert_nothing_kept(&cache, &cache.join("tiny.tar.gz"));
}

#[test]
fn dropped_connection_keeps_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (bytes, checksums, _) = tiny_archive(tmp.path());
    let send = bytes.len() / 3;
    let server = Server::start(Reply::Drop { body: bytes, send });
    let cache = tmp.path().join("cache");
    let o = opts(&cache, server.url("tiny.tar.gz"), checksums);
    let err = data::load(&o).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::Download { .. }), "{err:?}");
    assert!(
        msg.contains(&o.url) && msg.contains("nothing was kept") && msg.contains("--data"),
        "{msg}"
    );
    assert_nothing_kept(&cache, &cache.join("tiny.tar.gz"));
}

#[test]
fn http_error_status_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, checksums, _) = tiny_archive(tmp.path());
    let server = Server::start(Reply::Status(404));
    let cache = tmp.path().join("cache");
    let err = data::fetch(&opts(&cache, server.url("tiny.tar.gz"), checksums))
        .unwrap_err()
        .to_string();
    assert!(err.contains("HTTP 404"), "{err}");
    assert_nothing_kept(&cache, &cache.join("tiny.tar.gz"));
}

#[test]
fn unreachable_server_says_how_to_use_a_local_copy() {
    let tmp = tempfile::tempdir().unwrap();
    // A port nobody listens on: bind, note it, close.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cache = tmp.path().join("cache");
    let o = opts(
        &cache,
        format!("http://127.0.0.1:{port}/cifar-10-binary.tar.gz"),
        data::CIFAR10_BINARY.checksums(),
    );
    let err = data::load(&o).unwrap_err().to_string();
    assert!(
        err.contains("could not download") && err.contains("--data PATH"),
        "{err}"
    );
    assert!(
        err.contains(cache.to_str().unwrap()),
        "the hint should name the cache folder: {err}"
    );
}

#[test]
fn offline_without_a_copy_says_where_it_looked() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let o = DataOptions {
        offline: true,
        ..opts(
            &cache,
            data::CIFAR10_BINARY_URL.into(),
            data::CIFAR10_BINARY.checksums(),
        )
    };
    let err = data::load(&o).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::Offline { .. }), "{err:?}");
    assert!(
        msg.contains(cache.join("cifar-10-binary.tar.gz").to_str().unwrap())
            && msg.contains("--data PATH"),
        "{msg}"
    );
    assert!(matches!(data::fetch(&o), Err(DataError::Offline { .. })));
}

#[test]
fn unknown_file_name_without_checksums_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let o = DataOptions {
        cache_dir: Some(tmp.path().to_path_buf()),
        url: "http://127.0.0.1:9/whatever.tar.gz".into(),
        keras_datasets: None,
        ..DataOptions::default()
    };
    assert!(matches!(data::fetch(&o), Err(DataError::NoChecksum { .. })));
}

#[test]
fn official_checksums_are_the_published_ones() {
    let b = data::CIFAR10_BINARY.checksums();
    assert_eq!(b.size, Some(170_052_171));
    assert_eq!(b.md5.as_deref(), Some("c32a1d4ab5d03f1284b67883e8d87530"));
    assert_eq!(
        b.sha256.as_deref(),
        Some("c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd")
    );
    let p = data::CIFAR10_PYTHON.checksums();
    assert_eq!(
        (p.size, p.md5.as_deref()),
        (Some(170_498_071), Some("c58f30108f718f92721af3b95e74349a"))
    );
    assert_eq!(
        DataOptions::default().url,
        "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    );
}
