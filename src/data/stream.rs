//! A reader wrapper that counts decompressed bytes, enforces a cap and remembers the first error of
//! the stream below it, so that errors surfacing later through `tar` or a record reader can be traced
//! back to their cause (a truncated or corrupt gzip stream, or a size bomb).

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::rc::Rc;

use flate2::read::GzDecoder;

use super::DataError;

/// What the watched stream saw.
#[derive(Debug, Default)]
pub(crate) struct WatchState {
    /// Bytes delivered so far.
    pub bytes: u64,
    /// The first error of the inner stream (kind and message).
    pub failure: Option<(io::ErrorKind, String)>,
    /// Set once more than the cap was delivered.
    pub over_cap: bool,
}

/// Wraps the decompressed (or raw) stream of a file.
pub(crate) struct Watched<R> {
    inner: R,
    cap: u64,
    state: Rc<RefCell<WatchState>>,
}

impl<R: Read> Watched<R> {
    pub(crate) fn new(inner: R, cap: u64) -> (Self, Rc<RefCell<WatchState>>) {
        let state = Rc::new(RefCell::new(WatchState::default()));
        (
            Watched {
                inner,
                cap,
                state: state.clone(),
            },
            state,
        )
    }
}

fn over_cap_error() -> io::Error {
    io::Error::other("size limit exceeded")
}

impl<R: Read> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut st = self.state.borrow_mut();
        if st.over_cap {
            return Err(over_cap_error());
        }
        match self.inner.read(buf) {
            Ok(n) => {
                st.bytes += n as u64;
                if st.bytes > self.cap {
                    st.over_cap = true;
                    return Err(over_cap_error());
                }
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                if st.failure.is_none() {
                    st.failure = Some((e.kind(), e.to_string()));
                }
                Err(e)
            }
        }
    }
}

/// The error the watched stream explains, if it saw one. `gzip` says whether the inner stream was a
/// gzip decoder (else it was the file itself).
pub(crate) fn explain(path: &Path, state: &WatchState, gzip: bool, cap: u64) -> Option<DataError> {
    if state.over_cap {
        return Some(DataError::ArchiveTooLarge {
            path: path.to_path_buf(),
            what: if gzip {
                "decompressed content"
            } else {
                "content"
            },
            size: state.bytes,
            max: cap,
        });
    }
    let (kind, message) = state.failure.as_ref()?;
    Some(match (gzip, kind) {
        (true, io::ErrorKind::UnexpectedEof) => DataError::TruncatedGzip {
            path: path.to_path_buf(),
            decompressed: state.bytes,
        },
        (true, _) => DataError::CorruptGzip {
            path: path.to_path_buf(),
            decompressed: state.bytes,
            detail: message.clone(),
        },
        (false, kind) => DataError::io(path, io::Error::new(*kind, message.clone())),
    })
}

/// True when the file starts with the gzip magic bytes.
pub(crate) fn is_gzip(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
}

/// `file` (opened from `path`) through a 64 KiB buffer, inflated when it starts as gzip does; and
/// whether it does.
pub(crate) fn maybe_gzip(path: &Path, file: File) -> Result<(Box<dyn Read>, bool), DataError> {
    let mut buffered = BufReader::with_capacity(1 << 16, file);
    let gzip = is_gzip(buffered.fill_buf().map_err(|e| DataError::io(path, e))?);
    let inner: Box<dyn Read> = if gzip {
        Box::new(GzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    Ok((inner, gzip))
}
