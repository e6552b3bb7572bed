//! The end-of-train save replaces the model files of `--out` as one set (`train::output`,
//! `model::folder`): fresh folders, folders holding a checkpoint and the user's files, leftovers of
//! a crashed save (removed only once their process is gone), parents we cannot write to, and the
//! lock a run holds on its folder. No GPU needed. The exchange-versus-fallback
//! choice and a crash between the fallback's two renames are unit tests in `src/model/folder.rs`
//! (the fallback is private).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use cifar_wgpu::keras::{self, SavedModel};
use cifar_wgpu::model::Sequential;
use cifar_wgpu::model::folder::{self, Swap};
use cifar_wgpu::train::output::save_model_folder;
use cifar_wgpu::train::{EpochLog, history};

/// The eight files the save writes; anything else in the folder must survive untouched.
const MODEL_SET: [&str; 8] = [
    "model.json",
    "weights.bin",
    "cifar10_architecture.json",
    "cifar10_weights.h5",
    "model.weights.h5",
    "model.keras",
    "history.json",
    "history.csv",
];

fn small(seed: u64) -> SavedModel {
    let model = Sequential::notebook([6, 6, 2], 3);
    let params = model.init_params(seed).unwrap();
    SavedModel {
        class_names: vec!["a".into(), "b".into(), "c".into()],
        model,
        params,
    }
}

fn epochs(n: usize) -> Vec<EpochLog> {
    (1..=n)
        .map(|epoch| EpochLog {
            epoch,
            loss: 1.0 / epoch as f64,
            accuracy: 0.1 * epoch as f64,
            val_loss: Some(1.5 / epoch as f64),
            val_accuracy: Some(0.05 * epoch as f64),
            seconds: 2.0,
            train_seconds: 0.0,
        })
        .collect()
}

/// Every file under `dir`, by relative path, with its bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let bytes = fs::read(&path).unwrap();
                out.insert(path.strip_prefix(root).unwrap().to_path_buf(), bytes);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The whole model set in `dir` is `saved` and `history`: ours, Keras' and the history files.
fn assert_model_set(dir: &Path, saved: &SavedModel, hist: &[EpochLog]) {
    assert_eq!(
        &SavedModel::load(dir).unwrap(),
        saved,
        "model.json + weights.bin"
    );
    for file in [keras::ARCHIVE_FILE, keras::ARCHITECTURE_FILE] {
        let loaded = keras::load(&dir.join(file)).unwrap();
        assert_eq!(loaded.params, saved.params, "{file}");
    }
    assert_eq!(history::load(dir).unwrap(), hist, "history.json");
    let csv = fs::read_to_string(dir.join(history::HISTORY_CSV)).unwrap();
    assert_eq!(csv.lines().count(), hist.len() + 1, "history.csv");
}

/// Nothing but `keep` beside the folder: no staging or moved-aside folder left behind.
fn assert_no_leftovers(parent: &Path, keep: &[&str]) {
    let mut names: Vec<String> = fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want: Vec<String> = keep.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(names, want, "entries beside the output folder");
}

#[test]
fn saving_into_a_fresh_folder_creates_it_with_the_whole_set() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("runs").join("cifar10-model");
    let (m, h) = (small(1), epochs(3));
    assert_eq!(save_model_folder(&out, &m, &h).unwrap(), Swap::Created);
    assert_model_set(&out, &m, &h);
    let mut names: Vec<String> = tree(&out).keys().map(|p| p.display().to_string()).collect();
    names.sort();
    let mut want: Vec<String> = MODEL_SET.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(names, want);
    assert_no_leftovers(out.parent().unwrap(), &["cifar10-model"]);
}

#[test]
fn saving_over_a_folder_replaces_the_set_and_keeps_checkpoint_and_other_files() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    save_model_folder(&out, &small(1), &epochs(2)).unwrap();
    // What a run and its user add between saves.
    fs::create_dir_all(out.join("checkpoint/nested")).unwrap();
    fs::write(out.join("checkpoint/progress.json"), b"{\"epoch\": 2}").unwrap();
    fs::write(out.join("checkpoint/weights.bin"), [1u8, 2, 3, 4]).unwrap();
    fs::write(out.join("checkpoint/nested/deep.txt"), b"deep").unwrap();
    fs::write(out.join("notes.txt"), b"the user's own file").unwrap();
    let others: BTreeMap<_, _> = tree(&out)
        .into_iter()
        .filter(|(p, _)| !MODEL_SET.iter().any(|m| Path::new(m) == p))
        .collect();
    assert_eq!(others.len(), 4, "{others:?}");

    let (m, h) = (small(2), epochs(5));
    assert_ne!(small(1).params, m.params, "the two models must differ");
    let swap = save_model_folder(&out, &m, &h).unwrap();
    assert!(
        matches!(swap, Swap::Exchanged | Swap::MovedAside),
        "{swap:?}"
    );
    assert_model_set(&out, &m, &h);
    let after = tree(&out);
    for (path, bytes) in &others {
        assert_eq!(after.get(path), Some(bytes), "{} changed", path.display());
    }
    assert_eq!(after.len(), others.len() + MODEL_SET.len(), "{after:?}");
    assert_no_leftovers(tmp.path(), &["out"]);
}

#[test]
fn leftovers_of_a_crashed_save_do_not_break_the_next_one() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    save_model_folder(&out, &small(1), &epochs(1)).unwrap();
    fs::write(out.join("notes.txt"), b"keep me").unwrap();
    // A run killed while staging (half a folder), and one killed before removing the old folder.
    let (dead, other_dead) = (dead_pid(), dead_pid());
    let saving = tmp.path().join(format!(".out.saving-{dead}"));
    fs::create_dir_all(saving.join("checkpoint")).unwrap();
    fs::write(saving.join("model.json"), b"{ half").unwrap();
    let old = tmp.path().join(format!(".out.old-{other_dead}"));
    fs::create_dir(&old).unwrap();
    fs::write(old.join("model.json"), b"older").unwrap();
    // Not ours to touch: another folder's name that merely starts alike.
    let unrelated = tmp.path().join(".out.saving-notes");
    fs::write(&unrelated, b"unrelated").unwrap();

    let (m, h) = (small(3), epochs(2));
    save_model_folder(&out, &m, &h).unwrap();
    assert_model_set(&out, &m, &h);
    assert_eq!(fs::read(out.join("notes.txt")).unwrap(), b"keep me");
    assert_no_leftovers(tmp.path(), &["out", ".out.saving-notes"]);
    assert_eq!(fs::read(&unrelated).unwrap(), b"unrelated");
}

#[test]
fn a_parent_that_is_a_file_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-folder");
    fs::write(&file, b"x").unwrap();
    let out = file.join("out");
    let e = save_model_folder(&out, &small(1), &epochs(1))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not-a-folder"), "{e}");
    assert_eq!(fs::read(&file).unwrap(), b"x");
}

#[test]
fn an_output_path_that_is_a_file_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    fs::write(&out, b"x").unwrap();
    let e = save_model_folder(&out, &small(1), &epochs(1))
        .unwrap_err()
        .to_string();
    assert!(e.contains("out") && e.contains("not a folder"), "{e}");
    assert_eq!(fs::read(&out).unwrap(), b"x");
    assert_no_leftovers(tmp.path(), &["out"]);
}

/// Permission bits do not stop root, so this one skips (loudly) when the tests run as root.
#[cfg(unix)]
#[test]
fn a_read_only_parent_is_a_clear_error_and_leaves_the_folder_alone() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let parent = tmp.path().join("locked");
    let out = parent.join("out");
    let (m, h) = (small(1), epochs(1));
    save_model_folder(&out, &m, &h).unwrap();
    fs::set_permissions(&parent, fs::Permissions::from_mode(0o555)).unwrap();
    if fs::write(parent.join("probe"), b"").is_ok() {
        fs::set_permissions(&parent, fs::Permissions::from_mode(0o755)).unwrap();
        eprintln!("SKIPPED: permissions are not enforced here (running as root?)");
        return;
    }
    let e = save_model_folder(&out, &small(2), &epochs(4))
        .unwrap_err()
        .to_string();
    fs::set_permissions(&parent, fs::Permissions::from_mode(0o755)).unwrap();
    assert!(e.contains("locked"), "{e}");
    assert_model_set(&out, &m, &h);
    assert_no_leftovers(&parent, &["out"]);
}

/// `--out` may be a link to a folder elsewhere: the folder it points to is replaced, the link kept.
#[cfg(unix)]
#[test]
fn a_symlinked_output_folder_keeps_its_link() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    save_model_folder(&real, &small(1), &epochs(1)).unwrap();
    fs::write(real.join("notes.txt"), b"mine").unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let (m, h) = (small(2), epochs(2));
    save_model_folder(&link, &m, &h).unwrap();
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link was replaced by a folder"
    );
    assert_model_set(&real, &m, &h);
    assert_eq!(fs::read(real.join("notes.txt")).unwrap(), b"mine");
    assert_no_leftovers(tmp.path(), &["link", "real"]);
}

/// A model folder written before each layer had a module of its own (`export` of
/// `assets/keras/tiny.keras` at that time) loads, and saves again byte for byte: `model.json` keeps
/// its format, so old models stay readable.
#[test]
fn a_model_folder_from_before_the_layer_modules_loads_and_saves_byte_for_byte() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pinned/model_v1");
    let saved = cifar_wgpu::model::io::SavedModel::load(&dir).unwrap();
    assert_eq!(saved.model.layers.len(), 10);
    for (name, bytes) in saved.files().unwrap() {
        assert!(bytes == fs::read(dir.join(name)).unwrap(), "{name} differs");
    }
}

/// The PID of a process that has ended (a child, reaped): nothing runs under it now, short of the
/// system reusing it within the test.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// A process that runs until killed, to stand for another live run.
fn live_process() -> std::process::Child {
    std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap()
}

/// Another run's staging folder is removed only once that run is gone: while its process lives,
/// a save beside it leaves it alone.
#[cfg(target_os = "linux")]
#[test]
fn a_live_runs_staging_folder_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut other = live_process();
    let staging = format!(".out.saving-{}", other.id());
    fs::create_dir(tmp.path().join(&staging)).unwrap();
    fs::write(tmp.path().join(&staging).join("model.json"), b"theirs").unwrap();
    let (m, h) = (small(1), epochs(1));
    save_model_folder(&out, &m, &h).unwrap();
    let kept = fs::read(tmp.path().join(&staging).join("model.json"));
    other.kill().unwrap();
    other.wait().unwrap();
    assert_eq!(kept.unwrap(), b"theirs", "a live run's staging was removed");
    assert_model_set(&out, &m, &h);
    // Once it is gone, the next save removes it.
    save_model_folder(&out, &m, &h).unwrap();
    assert_no_leftovers(tmp.path(), &["out"]);
}

fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

fn write_lock(path: &Path, pid: u32, host: &str) {
    let json = serde_json::json!({"pid": pid, "host": host, "started": 1});
    fs::write(path, json.to_string()).unwrap();
}

/// One run holds a folder: a second lock, through another spelling of the same folder too, is
/// refused naming the holder's PID and the lock file; dropping the first frees it.
#[cfg(target_os = "linux")]
#[test]
fn a_locked_folder_is_refused_to_a_second_run_until_released() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (first, note) = folder::lock(&out).unwrap();
    assert_eq!(note, None);
    assert_eq!(
        first.path(),
        fs::canonicalize(tmp.path()).unwrap().join(".out.lock")
    );
    fs::create_dir(&out).unwrap();
    let other_spelling = out.join("..").join("out");
    let e = folder::lock(&other_spelling).unwrap_err().to_string();
    let pid = std::process::id().to_string();
    assert!(
        e.contains(&pid) && e.contains(".out.lock") && e.contains("--out"),
        "{e}"
    );
    drop(first);
    assert!(
        !tmp.path().join(".out.lock").exists(),
        "the lock was left behind"
    );
    let (again, note) = folder::lock(&out).unwrap();
    assert_eq!(note, None);
    drop(again);
}

/// A lock left by a process that has ended (killed before it could remove it) is taken over, with
/// a note naming it; one from a live process, or from another host (whose processes we cannot
/// see), is honoured.
#[cfg(target_os = "linux")]
#[test]
fn stale_locks_are_taken_over_and_live_or_foreign_ones_honoured() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let lock = tmp.path().join(".out.lock");
    let dead = dead_pid();
    write_lock(&lock, dead, &host_name());
    let (held, note) = folder::lock(&out).unwrap();
    let note = note.expect("a note on the stale lock");
    assert!(note.contains(&format!("process {dead}")), "{note}");
    drop(held);
    assert_no_leftovers(tmp.path(), &[]);

    let mut other = live_process();
    write_lock(&lock, other.id(), &host_name());
    let e = folder::lock(&out).map(drop).unwrap_err().to_string();
    other.kill().unwrap();
    other.wait().unwrap();
    assert!(e.contains(&format!("process {}", other.id())), "{e}");
    assert!(lock.exists(), "a live run's lock was removed");

    write_lock(&lock, dead, "another-machine");
    let e = folder::lock(&out).map(drop).unwrap_err().to_string();
    assert!(e.contains("another-machine"), "{e}");
    assert!(lock.exists(), "another host's lock was removed");
}
