//! Replacing a set of files in a folder as one step, so that a reader (or a crash) sees either the
//! old set or the new one, never a mix.
//!
//! Each file written by [`super::io::write_atomic`] is atomic, but `train` ends by writing eight of
//! them (our model, Keras' four, the history): a crash between two renames would leave an old
//! `model.keras` next to a new `model.json`, each complete and both wrong together. So the new set
//! is staged in a sibling folder and the two folders are swapped:
//!
//! 1. `<parent>/.<name>.saving-<pid>` is created on the same filesystem (a rename cannot cross
//!    filesystems). Everything in the existing folder that the save does not replace (the
//!    `checkpoint/` folder, reports, unrelated files) is carried over by hard links, subfolders
//!    recreated; where a hard link is refused the file is copied. Hard links cost no space or time
//!    and keep the files' contents byte for byte, and nothing in this crate rewrites a file in place
//!    (every writer renames a new file over the old name), so sharing inodes is safe.
//! 2. The new files are written there and everything staged is flushed to disk (`fsync`), so the
//!    swap never publishes data that a power cut could still lose.
//! 3. The staging folder and the folder are exchanged in one atomic step: `renameat2` with
//!    `RENAME_EXCHANGE` on Linux, `renameatx_np` with `RENAME_SWAP` on macOS. The old contents are
//!    then at the staging name and are removed.
//! 4. Where exchanging is not supported (Windows, other Unixes, kernels before 3.15, filesystems
//!    that answer `EINVAL`/`ENOSYS`/`EOPNOTSUPP`), the old folder is renamed to
//!    `<parent>/.<name>.old-<pid>`, the staging folder to the folder, and the old one removed: the
//!    folder is then briefly absent, but never half-written. A folder that does not exist yet is
//!    created by a single rename of the staging folder, which is atomic everywhere.
//!
//! A crash leaves at most a stale `.<name>.saving-<pid>` or `.<name>.old-<pid>` beside the folder.
//! The next save removes them once process `<pid>` is gone (a live one is still saving), and if a
//! crash in step 4 left the folder absent, puts `.<name>.old-<pid>` (the complete previous folder)
//! back first, so that nothing it held is lost. Whether a process lives is read from `/proc`; where
//! there is none, leftovers are kept (and logged) rather than risk another run's folder.
//!
//! Two runs writing one folder would drop each other's files, so `train` holds the folder with a
//! [`FolderLock`] (`.<name>.lock` beside it, see [`lock`]) from start to end.
//!
//! Limits, by design: a process writing into the folder *during* the swap without the lock (an
//! `export` into a training run's `--out`) may have its files dropped with the old folder. A shell whose working directory is
//! the folder keeps seeing the old (removed) one until it changes directory again; when *our*
//! working directory is inside the folder, the files are written one by one in place instead (each
//! still atomic), because relative paths used after the save would otherwise point into the
//! removed folder.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::io::{ModelFileError, write_atomic};

/// How [`replace_files`] published the new files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Swap {
    /// The folder did not exist: the staging folder was renamed into place.
    Created,
    /// The staging folder and the folder were exchanged atomically (`RENAME_EXCHANGE`/`RENAME_SWAP`).
    Exchanged,
    /// Exchange is unsupported here: the old folder was moved aside, then the staged one moved in.
    MovedAside,
    /// Our working directory is inside the folder: each file was replaced on its own, in place.
    InPlace,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ModelFileError + '_ {
    move |source| ModelFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `files` (plain file names and their contents) into the folder `dir`, replacing files of
/// the same names, keeping everything else the folder holds, and publishing the whole set at once
/// (see the module's documentation for how and where that guarantee weakens). `dir` and its parent
/// are created if needed; a symbolic link to a folder is followed and the link kept.
pub fn replace_files<B: AsRef<[u8]>>(
    dir: &Path,
    files: &[(&str, B)],
) -> Result<Swap, ModelFileError> {
    let cwd = std::env::current_dir().ok();
    replace_files_with(dir, files, true, cwd.as_deref())
}

/// [`replace_files`] with its environment made explicit for tests: `try_exchange = false` forces
/// the fallback used where the OS cannot exchange two folders, and `cwd` is the working directory
/// (`None` if unknown).
fn replace_files_with<B: AsRef<[u8]>>(
    dir: &Path,
    files: &[(&str, B)],
    try_exchange: bool,
    cwd: Option<&Path>,
) -> Result<Swap, ModelFileError> {
    for (name, _) in files {
        let plain = Path::new(name).file_name() == Some(std::ffi::OsStr::new(name));
        if !plain {
            return Err(ModelFileError::Io {
                path: dir.join(name),
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "only plain file names can be saved into a model folder",
                ),
            });
        }
    }
    let target = resolve(dir)?;
    let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
        return Err(ModelFileError::Io {
            path: target.clone(),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                "a filesystem root cannot be replaced as a model folder",
            ),
        });
    };
    let name = name.to_string_lossy().into_owned();
    clean_stale(parent, &name, &target);

    let existing = match fs::metadata(&target) {
        Ok(m) if m.is_dir() => true,
        Ok(_) => {
            return Err(ModelFileError::Io {
                path: target,
                source: io::Error::new(io::ErrorKind::NotADirectory, "exists and is not a folder"),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(io_err(&target)(e)),
    };

    if existing
        && let Some(cwd) = cwd.and_then(|c| fs::canonicalize(c).ok())
        && cwd.starts_with(&target)
    {
        for (file, bytes) in files {
            write_atomic(&target.join(file), bytes.as_ref())?;
        }
        return Ok(Swap::InPlace);
    }

    let pid = std::process::id();
    let staging = parent.join(format!(".{name}.saving-{pid}"));
    if let Err(e) = stage(&staging, existing.then_some(target.as_path()), files) {
        let _ = fs::remove_dir_all(&staging);
        return Err(e);
    }

    let swap = if !existing {
        fs::rename(&staging, &target).map_err(|e| {
            let _ = fs::remove_dir_all(&staging);
            io_err(&target)(e)
        })?;
        Swap::Created
    } else {
        match try_exchange.then(|| exchange(&staging, &target)) {
            Some(Ok(())) => {
                remove_old(&staging);
                Swap::Exchanged
            }
            Some(Err(e)) if !exchange_unsupported(&e) => {
                let _ = fs::remove_dir_all(&staging);
                return Err(io_err(&target)(e));
            }
            _ => {
                let old = parent.join(format!(".{name}.old-{pid}"));
                if let Err(e) = fs::rename(&target, &old) {
                    let _ = fs::remove_dir_all(&staging);
                    return Err(io_err(&target)(e));
                }
                if let Err(e) = fs::rename(&staging, &target) {
                    // Put the old folder back: better the previous model than none.
                    let _ = fs::rename(&old, &target);
                    let _ = fs::remove_dir_all(&staging);
                    return Err(io_err(&target)(e));
                }
                remove_old(&old);
                Swap::MovedAside
            }
        }
    };
    // The renames live in the parent's entries: flush them too, or a power cut could undo the swap.
    sync_dir(parent).map_err(io_err(parent))?;
    Ok(swap)
}

/// The folder's absolute path with symbolic links resolved, its parent created. Absolute, so that
/// `.` or `..` have a name and a parent to stage beside; resolved, so that swapping replaces the
/// folder a link points to rather than the link.
fn resolve(dir: &Path) -> Result<PathBuf, ModelFileError> {
    if fs::symlink_metadata(dir).is_ok() {
        return fs::canonicalize(dir).map_err(io_err(dir));
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = dir.file_name().ok_or_else(|| ModelFileError::Io {
        path: dir.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "not a folder name"),
    })?;
    fs::create_dir_all(parent).map_err(io_err(parent))?;
    Ok(fs::canonicalize(parent).map_err(io_err(parent))?.join(name))
}

/// Removes what crashed earlier saves of `<parent>/<name>` left behind. If the folder is missing
/// and a `.old-` copy exists, a crash hit between the two renames of the fallback: the copy is the
/// complete previous folder, so it is put back rather than removed. Failures are only logged: a
/// leftover must not stop a save (ours uses a fresh name).
fn clean_stale(parent: &Path, name: &str, target: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    let saving = format!(".{name}.saving-");
    let old = format!(".{name}.old-");
    let pid_suffix = |file: &str, prefix: &str| {
        file.strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
    };
    let mut stale: Vec<PathBuf> = Vec::new();
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        let path = entry.path();
        let owner = [&saving, &old]
            .iter()
            .find_map(|prefix| file.strip_prefix(prefix.as_str()))
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = owner
            && pid != std::process::id()
            && process_alive(pid)
        {
            log::info!(
                "{}: kept: process {pid}, which is saving there, is running",
                path.display()
            );
            continue;
        }
        if pid_suffix(file, &old) && fs::symlink_metadata(target).is_err() {
            match fs::rename(&path, target) {
                Ok(()) => log::warn!(
                    "{}: restored from {} (an earlier save was interrupted)",
                    target.display(),
                    path.display()
                ),
                Err(e) => log::warn!("{}: could not restore it: {e}", path.display()),
            }
        } else if pid_suffix(file, &saving) || pid_suffix(file, &old) {
            stale.push(path);
        }
    }
    for path in stale {
        if let Err(e) = fs::remove_dir_all(&path) {
            log::warn!("{}: left from an interrupted save: {e}", path.display());
        }
    }
}

/// Builds the staging folder: `existing`'s other contents carried over, then the new files, all
/// flushed to disk.
fn stage<B: AsRef<[u8]>>(
    staging: &Path,
    existing: Option<&Path>,
    files: &[(&str, B)],
) -> Result<(), ModelFileError> {
    fs::create_dir(staging).map_err(io_err(staging))?;
    if let Some(existing) = existing {
        for entry in fs::read_dir(existing).map_err(io_err(existing))? {
            let entry = entry.map_err(io_err(existing))?;
            let file = entry.file_name();
            if files.iter().any(|(name, _)| file == **name) {
                continue;
            }
            carry(&entry.path(), &staging.join(&file))?;
        }
    }
    for (name, bytes) in files {
        let path = staging.join(name);
        let mut f = fs::File::create(&path).map_err(io_err(&path))?;
        f.write_all(bytes.as_ref()).map_err(io_err(&path))?;
        f.sync_all().map_err(io_err(&path))?;
    }
    if let Some(existing) = existing {
        // Keep the folder's own permissions, as it replaces the folder rather than adding one;
        // set last, since a read-only folder's bits would forbid filling it.
        let perms = fs::metadata(existing)
            .map_err(io_err(existing))?
            .permissions();
        fs::set_permissions(staging, perms).map_err(io_err(staging))?;
    }
    sync_dir(staging).map_err(io_err(staging))
}

/// Recreates `from` at `to`: folders entry by entry, files as hard links (copies where links are
/// refused), symbolic links as links.
fn carry(from: &Path, to: &Path) -> Result<(), ModelFileError> {
    let meta = fs::symlink_metadata(from).map_err(io_err(from))?;
    if meta.is_dir() {
        fs::create_dir(to).map_err(io_err(to))?;
        for entry in fs::read_dir(from).map_err(io_err(from))? {
            let entry = entry.map_err(io_err(from))?;
            carry(&entry.path(), &to.join(entry.file_name()))?;
        }
        // After filling it: a read-only subfolder's bits would forbid that.
        fs::set_permissions(to, meta.permissions()).map_err(io_err(to))?;
        return sync_dir(to).map_err(io_err(to));
    }
    #[cfg(unix)]
    if meta.file_type().is_symlink() {
        let link = fs::read_link(from).map_err(io_err(from))?;
        return std::os::unix::fs::symlink(link, to).map_err(io_err(to));
    }
    if fs::hard_link(from, to).is_err() {
        fs::copy(from, to).map_err(io_err(from))?;
        fs::File::open(to)
            .and_then(|f| f.sync_all())
            .map_err(io_err(to))?;
    }
    Ok(())
}

/// Removes the previous contents after a successful swap; a failure leaves a stale folder that the
/// next save removes, so it is reported but not an error.
fn remove_old(old: &Path) {
    if let Err(e) = fs::remove_dir_all(old) {
        log::warn!(
            "{}: could not remove the previous folder: {e}",
            old.display()
        );
    }
}

/// Whether process `pid` runs on this machine: `/proc/<pid>` exists. Without `/proc` (not Linux)
/// nothing can be told, so every process counts as running: a leftover is kept, a lock honoured.
fn process_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

/// This machine's name, for lock files: a PID only means something on the host that wrote it.
fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| fs::read_to_string(p).ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// What a lock file holds: who writes the folder, from where, since when (seconds since 1970).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockOwner {
    pub pid: u32,
    pub host: String,
    pub started: u64,
}

impl LockOwner {
    fn me() -> LockOwner {
        LockOwner {
            pid: std::process::id(),
            host: host_name(),
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }

    /// Whether the owner has certainly ended: same host, another PID, and no such process.
    fn gone(&self) -> bool {
        self.host == host_name() && self.pid != std::process::id() && !process_alive(self.pid)
    }
}

impl std::fmt::Display for LockOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let now = LockOwner::me().started;
        write!(
            f,
            "process {} on {}, started {} s ago",
            self.pid,
            self.host,
            now.saturating_sub(self.started)
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{dir} is being written by another run: {owner}; its lock is {lock}. Wait for that run to \
         end or choose another --out (if no such run exists, delete {lock})"
    )]
    Held {
        dir: PathBuf,
        lock: PathBuf,
        owner: String,
    },
    #[error(transparent)]
    File(#[from] ModelFileError),
}

/// A folder held by this process until dropped: `<parent>/.<name>.lock`, naming our PID, host and
/// start time.
#[derive(Debug)]
pub struct FolderLock {
    path: PathBuf,
    owner: LockOwner,
}

impl FolderLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FolderLock {
    /// Removes the lock, unless it no longer holds our own record (a run took over after mistaking
    /// us for gone): that lock is the other run's.
    fn drop(&mut self) {
        if read_owner(&self.path).as_ref() == Some(&self.owner)
            && let Err(e) = fs::remove_file(&self.path)
        {
            log::warn!("{}: could not remove the lock: {e}", self.path.display());
        }
    }
}

fn read_owner(path: &Path) -> Option<LockOwner> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

/// Takes the folder `dir` for this process: creates `.<name>.lock` beside it (its path resolved as
/// [`replace_files`] resolves it, so two spellings of one folder meet the same lock) atomically,
/// failing with [`LockError::Held`] if another live run holds it. A lock whose process is gone
/// (same host, no such PID) is taken over, and the second value says so, for the user.
pub fn lock(dir: &Path) -> Result<(FolderLock, Option<String>), LockError> {
    let target = resolve(dir)?;
    let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
        return Err(ModelFileError::Io {
            path: target.clone(),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                "a filesystem root cannot be an output folder",
            ),
        }
        .into());
    };
    let path = parent.join(format!(".{}.lock", name.to_string_lossy()));
    let me = LockOwner::me();
    let held = |owner: Option<LockOwner>| LockError::Held {
        dir: target.clone(),
        lock: path.clone(),
        owner: owner.map_or("a run whose lock file cannot be read".into(), |o| {
            o.to_string()
        }),
    };
    if create_lock(&path, &me)? {
        return Ok((FolderLock { path, owner: me }, None));
    }
    let Some(stale) = read_owner(&path).filter(LockOwner::gone) else {
        return Err(held(read_owner(&path)));
    };
    // Moved aside before removal, and checked there: if another run replaced the stale lock in the
    // meantime, the file moved is theirs, and it goes back.
    let aside = parent.join(format!(".{}.lock.stale-{}", name.to_string_lossy(), me.pid));
    fs::rename(&path, &aside).map_err(io_err(&path))?;
    let moved = read_owner(&aside);
    if moved.as_ref() != Some(&stale) {
        let _ = fs::hard_link(&aside, &path);
        let _ = fs::remove_file(&aside);
        return Err(held(moved));
    }
    fs::remove_file(&aside).map_err(io_err(&aside))?;
    if !create_lock(&path, &me)? {
        return Err(held(read_owner(&path)));
    }
    let note = format!(
        "{}: took over the lock of {stale}, which has ended without removing it",
        path.display()
    );
    Ok((FolderLock { path, owner: me }, Some(note)))
}

/// Creates the lock file holding `owner`, complete or not at all: written under a name of our own,
/// then hard-linked to `path`, which fails if `path` exists. `Ok(false)`: it exists.
fn create_lock(path: &Path, owner: &LockOwner) -> Result<bool, ModelFileError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", owner.pid));
    let tmp = PathBuf::from(tmp);
    let json = serde_json::to_vec(owner).expect("a lock owner serialises");
    fs::write(&tmp, &json).map_err(io_err(&tmp))?;
    let linked = match fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        // No hard links here (some network or FAT filesystems): an exclusive create instead, whose
        // content another run could briefly see empty (and then refuses, naming the file).
        Err(_) => match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(mut f) => f.write_all(&json).map(|()| true).map_err(io_err(path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io_err(path)(e)),
        },
    };
    let _ = fs::remove_file(&tmp);
    linked
}

/// Exchanges two folders atomically where the OS can.
#[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).map_err(io::Error::from)
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
fn exchange(_: &Path, _: &Path) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Whether `exchange` failed because the OS or filesystem cannot exchange (so the fallback is
/// right), as opposed to a real error such as a permission refused (which the fallback would meet
/// as well).
fn exchange_unsupported(e: &io::Error) -> bool {
    if e.kind() == io::ErrorKind::Unsupported {
        return true;
    }
    #[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
    if let Some(errno) = rustix::io::Errno::from_io_error(e) {
        use rustix::io::Errno;
        return [Errno::INVAL, Errno::NOSYS, Errno::OPNOTSUPP, Errno::NOTSUP].contains(&errno);
    }
    false
}

/// Flushes a folder's entries (new names, renames) to disk. Only Unix can open a folder for that;
/// elsewhere the filesystem's own journaling is all there is.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> Vec<u8> {
        fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// A folder as a previous run leaves it: model files, a checkpoint folder and a user's file.
    fn previous(dir: &Path) {
        fs::create_dir_all(dir.join("checkpoint")).unwrap();
        fs::write(dir.join("model.json"), b"old model").unwrap();
        fs::write(dir.join("weights.bin"), b"old weights").unwrap();
        fs::write(dir.join("checkpoint/progress.json"), b"progress").unwrap();
        fs::write(dir.join("notes.txt"), b"mine").unwrap();
    }

    fn assert_replaced(dir: &Path) {
        assert_eq!(read(&dir.join("model.json")), b"new model");
        assert_eq!(read(&dir.join("weights.bin")), b"new weights");
        assert_eq!(read(&dir.join("checkpoint/progress.json")), b"progress");
        assert_eq!(read(&dir.join("notes.txt")), b"mine");
        let parent = dir.parent().unwrap();
        let left: Vec<_> = fs::read_dir(parent)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(left.is_empty(), "staging left behind: {left:?}");
    }

    const NEW: &[(&str, &[u8])] = &[
        ("model.json", b"new model"),
        ("weights.bin", b"new weights"),
    ];

    #[test]
    fn fallback_moves_the_old_folder_aside_and_keeps_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        previous(&dir);
        let swap = replace_files_with(&dir, NEW, false, None).unwrap();
        assert_eq!(swap, Swap::MovedAside);
        assert_replaced(&dir);
    }

    #[test]
    fn exchange_swaps_in_one_step_where_supported() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        fs::create_dir(&a).unwrap();
        fs::create_dir(&b).unwrap();
        if let Err(e) = exchange(&a, &b) {
            assert!(exchange_unsupported(&e), "{e}");
            eprintln!("SKIPPED: this OS or filesystem cannot exchange folders ({e})");
            return;
        }
        let dir = tmp.path().join("out");
        previous(&dir);
        let swap = replace_files_with(&dir, NEW, true, None).unwrap();
        assert_eq!(swap, Swap::Exchanged);
        fs::remove_dir(&a).unwrap();
        fs::remove_dir(&b).unwrap();
        assert_replaced(&dir);
    }

    #[test]
    fn a_crash_between_the_fallbacks_renames_loses_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        previous(&dir);
        // The crashed run had moved the folder aside and staged a complete new one.
        fs::rename(&dir, tmp.path().join(".out.old-999999")).unwrap();
        fs::create_dir(tmp.path().join(".out.saving-999999")).unwrap();
        replace_files_with(&dir, NEW, false, None).unwrap();
        assert_replaced(&dir);
    }

    #[test]
    fn working_inside_the_folder_replaces_files_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        previous(&dir);
        let before = fs::canonicalize(&dir).unwrap();
        let cwd = dir.join("checkpoint");
        let swap = replace_files_with(&dir, NEW, true, Some(&cwd)).unwrap();
        assert_eq!(swap, Swap::InPlace);
        assert_replaced(&dir);
        // Same folder, not a swapped one: the working directory still exists.
        assert!(cwd.is_dir() && fs::canonicalize(&dir).unwrap() == before);
    }

    #[test]
    fn separators_in_names_and_a_root_folder_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let e = replace_files_with(&tmp.path().join("out"), &[("a/b", b"x")], true, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("plain file names"), "{e}");
        assert!(!tmp.path().join("out").exists());
        let root = Path::new("/");
        let e = replace_files_with(root, NEW, true, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("filesystem root"), "{e}");
    }
}
