//! The catalogue of issue 11: every family of bad input or flag the audit found, as a small
//! generated input given to the real binary. Each must end in exit code 1 or 2 with a message
//! naming the file or flag at fault; never a panic (exit 101, "panicked"), an abort (134), a hang
//! (the run is killed after [`TIME_LIMIT`]) or more memory than the issue allows: the binary runs
//! under `ulimit -v` ([`ADDRESS_SPACE_KB`]), and its peak resident memory (`ru_maxrss`, from
//! `wait4`) must stay under [`PEAK_RSS_KB`]. Linux carries the spawning process's own peak into
//! that figure (the child starts as a copy of it), so it is an upper bound: a case that generated
//! a 64 MiB input in this process shows at least that.

// Linux: `wait4`'s `struct rusage` is declared for 64-bit Linux, and the symlink and limit cases
// are Unix's.
#![cfg(target_os = "linux")]

#[path = "common/crafted.rs"]
mod crafted;
#[path = "common/data_fixtures.rs"]
mod fixtures;
#[path = "common/writers.rs"]
mod writers;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use cifar_wgpu::data::{self, synthetic};
use cifar_wgpu::keras;
use cifar_wgpu::layers::{Activation, Dense, Flatten};
use cifar_wgpu::model::Sequential;
use cifar_wgpu::model::io::SavedModel;
use cifar_wgpu::train::{EpochLog, history};
use crafted::{edit_json, gnu_long_name_tar_gz, huge_png_header, keras_files, python_archive_with};
use writers::Keys;

/// The binary's address-space limit (KiB): 2 GiB (the issue's ~1 GB of data, plus the address
/// space a Vulkan driver maps).
const ADDRESS_SPACE_KB: u64 = 2 << 20;
/// Its peak resident memory must stay under this (KiB): 1 GiB.
const PEAK_RSS_KB: u64 = 1 << 20;
const TIME_LIMIT: Duration = Duration::from_secs(120);

struct Run {
    status: ExitStatus,
    text: String,
    peak_kb: u64,
}

/// `struct rusage` of 64-bit Linux: two `timeval`s, then 14 `long`s, `ru_maxrss` (KiB) first.
#[repr(C)]
#[derive(Default)]
struct Rusage {
    utime: [i64; 2],
    stime: [i64; 2],
    maxrss: i64,
    rest: [i64; 13],
}

unsafe extern "C" {
    /// glibc's `wait4`: reaps a child and returns its own resource usage, peak memory included.
    fn wait4(pid: i32, status: *mut i32, options: i32, usage: *mut Rusage) -> i32;
}

const WNOHANG: i32 = 1;

/// The child's exit status and peak resident memory (KiB) once it has ended, `None` before.
fn reap(pid: u32) -> Option<(ExitStatus, u64)> {
    use std::os::unix::process::ExitStatusExt;
    let (mut raw, mut usage) = (0, Rusage::default());
    // SAFETY: both pointers are to live locals of the types wait4 writes.
    let reaped = unsafe { wait4(pid as i32, &mut raw, WNOHANG, &mut usage) };
    assert!(reaped >= 0, "wait4: {}", std::io::Error::last_os_error());
    (reaped == pid as i32).then(|| (ExitStatus::from_raw(raw), usage.maxrss as u64))
}

/// Runs the binary with `args` and `env` under the limits, in `dir` (its working folder; its cache
/// and Keras folders are inside, so nothing outside is read or written).
fn cli(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -v {ADDRESS_SPACE_KB} && exec \"$@\""))
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_cifar-wgpu"))
        .args(args)
        .env("CIFAR_WGPU_CACHE", dir.join("cache"))
        .env("KERAS_HOME", dir.join("keras"))
        .env_remove("WGPU_BACKEND")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let started = Instant::now();
    #[expect(
        clippy::zombie_processes,
        reason = "reaped by `reap` (wait4), or waited on if killed"
    )]
    let mut child = command.spawn().unwrap();
    let pid = child.id();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        stdout.read_to_end(&mut s).unwrap();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        stderr.read_to_end(&mut s).unwrap();
        s
    });
    let (status, peak_kb) = loop {
        if let Some(ended) = reap(pid) {
            break ended;
        }
        if started.elapsed() >= TIME_LIMIT {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("{args:?}: still running after {TIME_LIMIT:?}: a hang");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.join().unwrap()),
        String::from_utf8_lossy(&err.join().unwrap())
    );
    println!(
        "{args:?}: {status}, {:.1} s, peak RSS {} MiB\n{text}",
        started.elapsed().as_secs_f64(),
        peak_kb >> 10
    );
    Run {
        status,
        text,
        peak_kb,
    }
}

/// A clean refusal: exit code 1 or 2, no panic, within the memory bound, and every needle (the
/// file or flag at fault, what is wrong) in the output.
fn assert_refused(run: &Run, needles: &[&str]) {
    let t = &run.text;
    assert!(!t.contains("panicked"), "panicked:\n{t}");
    assert!(
        matches!(run.status.code(), Some(1 | 2)),
        "exit {} (wanted 1 or 2):\n{t}",
        run.status
    );
    assert!(run.peak_kb <= PEAK_RSS_KB, "peak RSS {} KiB", run.peak_kb);
    for needle in needles {
        assert!(t.contains(needle), "the message lacks {needle:?}:\n{t}");
    }
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Inputs

/// A one-channel 6x6 data set of 3 classes (12 training, 6 test images) as IDX files in `dir`.
fn tiny_idx(dir: &Path) -> PathBuf {
    let mut ds = synthetic::random_like_cifar(12, 6, 3);
    ds.channels = 1;
    ds.height = 6;
    ds.width = 6;
    for split in [&mut ds.train, &mut ds.test] {
        let n = split.len();
        split.images.truncate(n * 36);
        for (i, l) in split.labels.iter_mut().enumerate() {
            *l = (i % 3) as u8;
        }
    }
    let root = dir.join("digits");
    writers::write_idx(&ds, &root, false).unwrap();
    root
}

/// A model for [`tiny_idx`]: 6x6x1 → Flatten → Dense(3, softmax), saved as our folder `model`
/// with a history, as `train` leaves it.
fn tiny_model(dir: &Path, history: &[EpochLog]) -> PathBuf {
    let model = Sequential::from_layers(
        "tiny",
        [6, 6, 1],
        vec![
            Flatten.into(),
            Dense::new(3).activation(Activation::Softmax).into(),
        ],
    );
    let params = model.init_params(1).unwrap();
    let saved = SavedModel {
        class_names: (0..3).map(|i| format!("c{i}")).collect(),
        model,
        params,
    };
    let root = dir.join("model");
    std::fs::create_dir_all(&root).unwrap();
    saved.save(&root).unwrap();
    for (name, bytes) in history::files(history) {
        std::fs::write(root.join(name), bytes).unwrap();
    }
    root
}

fn one_epoch() -> Vec<EpochLog> {
    vec![EpochLog {
        epoch: 0,
        loss: 1.0,
        accuracy: 0.5,
        val_loss: None,
        val_accuracy: None,
        seconds: 1.0,
        train_seconds: 1.0,
    }]
}

/// A 4x4 RGB PNG at `path`.
fn small_png(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::save_buffer(path, &[7u8; 48], 4, 4, image::ExtendedColorType::Rgb8).unwrap();
}

/// `export` of the model at `model` must be refused, naming `model`.
fn export_refused(dir: &Path, model: &Path, needles: &[&str]) {
    let out = dir.join("exported");
    let run = cli(dir, &["export", "--model", s(model), "--out", s(&out)], &[]);
    assert_refused(&run, needles);
    assert_refused(&run, &[s(model)]);
}

/// `data info --data path` run in `dir`, refused with every needle in its message.
fn data_info_refused(dir: &Path, path: &Path, needles: &[&str]) -> Run {
    let run = cli(dir, &["data", "info", "--data", s(path)], &[]);
    assert_refused(&run, needles);
    run
}

/// `data info` of a CIFAR-10 Python archive whose first batch is `pickle`: refused, naming the
/// archive, the batch and every needle.
fn pickle_refused(pickle: Vec<u8>, needles: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("cifar-10-python.tar.gz");
    python_archive_with(&archive, pickle);
    let named = [&[s(&archive), "data_batch_1"][..], needles].concat();
    data_info_refused(dir.path(), &archive, &named)
}

/// An image folder `dir/name` of two classes, `a` and `b`, of one [`small_png`] each.
fn two_class_folder(dir: &Path, name: &str) -> PathBuf {
    let root = dir.join(name);
    small_png(&root.join("a/0.png"));
    small_png(&root.join("b/0.png"));
    root
}

/// A fresh working folder with [`tiny_idx`] in it: the folder and the data's path.
fn with_tiny_idx() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_idx(dir.path());
    (dir, data)
}

/// [`with_tiny_idx`], trained into `run` by [`train_ok`] with `extra` flags: the folder, the data's
/// path and the run's.
fn trained(extra: &[&str]) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let (dir, data) = with_tiny_idx();
    let out = dir.path().join("run");
    train_ok(dir.path(), &data, &out, extra);
    (dir, data, out)
}

// ---------------------------------------------------------------------------------------------
// Crashes

#[test]
fn pickle_nested_20000_deep() {
    let mut p = b"\x80\x02".to_vec();
    p.extend(std::iter::repeat_n(b']', 20_000));
    p.extend(std::iter::repeat_n(b'a', 19_999));
    p.push(b'.');
    pickle_refused(p, &["deep"]);
}

#[test]
fn pickle_of_a_million_marks() {
    let mut p = b"\x80\x02".to_vec();
    p.extend(std::iter::repeat_n(b'(', 1_000_000));
    pickle_refused(p, &["MARK"]);
}

/// The crafted archive planted where Keras keeps its copy (no checksum): a plain `data info`.
#[test]
fn pickle_planted_in_keras_datasets() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir
        .path()
        .join("keras/datasets")
        .join(data::KERAS_CANDIDATES[3]);
    let mut p = b"\x80\x02".to_vec();
    p.extend(std::iter::repeat_n(b']', 20_000));
    python_archive_with(&archive, p);
    let run = cli(dir.path(), &["data", "info", "--offline"], &[]);
    assert_refused(&run, &["data_batch_1"]);
}

#[test]
fn keras_json_with_units_10_to_the_12() {
    let dir = tempfile::tempdir().unwrap();
    let json = keras_files(dir.path());
    edit_json(&json, "\"units\": 3", "\"units\": 1000000000000");
    export_refused(dir.path(), &json, &[]);
}

#[test]
fn model_json_with_units_2_to_the_62() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), &[]);
    edit_json(
        &model.join("model.json"),
        "\"units\": 3",
        "\"units\": 4611686018427387904",
    );
    let run = cli(
        dir.path(),
        &[
            "export",
            "--model",
            s(&model),
            "--out",
            s(&dir.path().join("o")),
        ],
        &[],
    );
    assert_refused(&run, &["model.json"]);
}

#[test]
fn keras_json_with_input_sides_of_0_and_2_to_the_32() {
    for side in ["0", "4294967296"] {
        let dir = tempfile::tempdir().unwrap();
        let json = keras_files(dir.path());
        edit_json(&json, "[null, 6, 6, 2]", &format!("[null, {side}, 6, 2]"));
        export_refused(dir.path(), &json, &[side]);
    }
}

#[test]
fn batch_size_0_on_evaluate_predict_and_report() {
    let (dir, data) = with_tiny_idx();
    let model = tiny_model(dir.path(), &one_epoch());
    let image = dir.path().join("one.png");
    small_png(&image);
    let (model, data) = (s(&model), s(&data));
    let on_data = |command| {
        vec![
            command,
            "--model",
            model,
            "--data",
            data,
            "--batch-size",
            "0",
        ]
    };
    for args in [
        on_data("evaluate"),
        vec!["predict", "--model", model, "--batch-size", "0", s(&image)],
        on_data("report"),
    ] {
        assert_refused(&cli(dir.path(), &args, &[]), &["--batch-size"]);
    }
}

/// A checkpoint whose `progress.json` says batch size 0, resumed.
#[test]
fn checkpoint_with_batch_size_0() {
    let (dir, data, out) = trained(&[]);
    let progress = out.join("checkpoint/progress.json");
    let json = std::fs::read_to_string(&progress).unwrap();
    let edited = json.replace("\"batch_size\": 4", "\"batch_size\": 0");
    assert_ne!(json, edited, "{json}");
    std::fs::write(&progress, edited).unwrap();
    // Vouched for by the manifest, as a checkpoint written so would be: the settings' own check is
    // what refuses it.
    reseal(&out.join("checkpoint"));
    let run = resume(
        dir.path(),
        &out.join("checkpoint"),
        &["--data", s(&data), "--quiet"],
    );
    assert_refused(&run, &["progress.json", "batch"]);
}

#[test]
fn batch_size_past_the_adapter_limits() {
    let (dir, data) = with_tiny_idx();
    let out = dir.path().join("run");
    assert_refused(
        &train(dir.path(), &data, &out, &["--batch-size", "1000000"]),
        &["--batch-size"],
    );
    let profile = [
        "profile",
        "--batch-size",
        "1000000",
        "--steps",
        "1",
        "--warmup",
        "0",
    ];
    assert_refused(&cli(dir.path(), &profile, &[]), &["--batch-size"]);
}

// ---------------------------------------------------------------------------------------------
// Hangs

#[test]
fn image_folder_with_a_symlink_loop() {
    let dir = tempfile::tempdir().unwrap();
    let root = two_class_folder(dir.path(), "looped");
    std::os::unix::fs::symlink(root.join("a"), root.join("a/again")).unwrap();
    data_info_refused(dir.path(), &root, &["again", "symbolic link loop"]);
    let model = tiny_model(dir.path(), &[]);
    let run = cli(
        dir.path(),
        &["predict", "--model", s(&model), s(&root)],
        &[],
    );
    assert_refused(&run, &["again", "symbolic link loop"]);
}

/// Not a refusal: a history of ±1e308 must simply draw, and `report` return.
#[test]
fn report_of_a_history_with_1e308() {
    let (dir, data) = with_tiny_idx();
    let model = tiny_model(dir.path(), &[]);
    let json = r#"{"loss": [1e308, -1e308, 0.5], "accuracy": [0.5, 1e308, -1e308],
        "val_loss": [-1e308, 1e308, null], "val_accuracy": [1e308, 0.2, null]}"#;
    std::fs::write(model.join("history.json"), json).unwrap();
    let run = cli(
        dir.path(),
        &["report", "--model", s(&model), "--data", s(&data)],
        &[],
    );
    assert!(run.status.success(), "{}", run.text);
    assert!(run.peak_kb <= PEAK_RSS_KB, "peak RSS {} KiB", run.peak_kb);
}

// ---------------------------------------------------------------------------------------------
// Memory

#[test]
fn keras_zip_bomb_member() {
    let dir = tempfile::tempdir().unwrap();
    keras_files(dir.path());
    let mut bomb = std::fs::read(dir.path().join(keras::ARCHITECTURE_FILE)).unwrap();
    let weights = std::fs::read(dir.path().join(keras::WEIGHTS_FILE)).unwrap();
    // 64 MiB of spaces after the JSON, about 64 KB deflated: four times the cap.
    bomb.resize(64 << 20, b' ');
    let path = dir.path().join("bomb.keras");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in [("config.json", bomb), ("model.weights.h5", weights)] {
        zip.start_file(name, options).unwrap();
        zip.write_all(&bytes).unwrap();
    }
    zip.finish().unwrap();
    export_refused(dir.path(), &path, &["config.json"]);
}

#[test]
fn tar_with_a_huge_gnu_long_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long-name.tar.gz");
    gnu_long_name_tar_gz(&path, 8 << 20);
    data_info_refused(dir.path(), &path, &[s(&path), "GNU long name"]);
}

#[test]
fn image_folder_of_16384_square_pngs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("huge");
    std::fs::create_dir_all(root.join("a")).unwrap();
    for i in 0..3 {
        std::fs::write(root.join(format!("a/{i}.png")), huge_png_header(16_384)).unwrap();
    }
    data_info_refused(dir.path(), &root, &["0.png", "16384x16384"]);
}

#[test]
fn image_folder_resized_past_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let root = two_class_folder(dir.path(), "small");
    let run = cli(
        dir.path(),
        &[
            "data",
            "info",
            "--data",
            s(&root),
            "--image-size",
            "16384x16384",
        ],
        &[],
    );
    assert_refused(&run, &[s(&root), "16384x16384"]);
}

// ---------------------------------------------------------------------------------------------
// Silent wrong results

#[test]
fn idx_labels_with_one_stray_255() {
    let (dir, root) = with_tiny_idx();
    let labels = root.join("train-labels-idx1-ubyte");
    let mut bytes = std::fs::read(&labels).unwrap();
    bytes[8 + 5] = 255;
    std::fs::write(&labels, bytes).unwrap();
    data_info_refused(dir.path(), &root, &["train-labels-idx1-ubyte", "255"]);
}

#[test]
fn big_integer_label_is_named() {
    let ds = fixtures::tiny_cifar(2, 2, 7);
    let planar: Vec<u8> = (0..2)
        .flat_map(|i| writers::hwc_to_planar(ds.train.image(i), 3))
        .collect();
    // The first label written as 0x1234 (BININT2), then swapped for a LONG1 of 2^80.
    let mut p = writers::batch_pickle(&planar, 3072, &[0x1234, 1], "b", Keys::Bytes);
    let at = p.windows(3).position(|w| w == b"M\x34\x12").unwrap();
    p.splice(at..at + 3, *b"\x8a\x0b\0\0\0\0\0\0\0\0\0\0\x01");
    let run = pickle_refused(p, &["too large"]);
    assert!(!run.text.contains("is an int, not an int"), "{}", run.text);
}

#[test]
fn learning_rate_of_minus_1() {
    let (dir, data) = with_tiny_idx();
    let run = train(dir.path(), &data, &dir.path().join("run"), &["--lr=-1"]);
    assert_refused(&run, &["--lr"]);
}

#[test]
fn wgpu_backend_dx12_on_linux() {
    let dir = tempfile::tempdir().unwrap();
    let run = cli(dir.path(), &["adapters"], &[("WGPU_BACKEND", "dx12")]);
    assert_refused(&run, &["WGPU_BACKEND", "dx12"]);
}

#[test]
fn unwritable_out_before_training() {
    let (dir, data) = with_tiny_idx();
    // A folder under a regular file: unwritable even for root.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let out = file.join("run");
    let run = train(dir.path(), &data, &out, &[]);
    assert_refused(&run, &["--out", s(&out)]);
    assert!(
        !run.text.contains("Epoch 1/"),
        "trained first:\n{}",
        run.text
    );
}

/// No training images: training files without records, or a validation split that takes them all.
#[test]
fn zero_training_images() {
    let (dir, root) = with_tiny_idx();
    let out = dir.path().join("run");
    let run = |extra: &[&str]| train(dir.path(), &root, &out, extra);
    // Keras splits at int(12 * (1 - 0.99)) = 0: every image goes to validation.
    assert_refused(&run(&["--validation-split", "0.99"]), &["validation_split"]);
    assert!(!out.exists(), "a model was saved");
    // IDX training files that hold no records (headers of count 0).
    std::fs::write(
        root.join("train-images-idx3-ubyte"),
        [0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 6],
    )
    .unwrap();
    std::fs::write(
        root.join("train-labels-idx1-ubyte"),
        [0, 0, 8, 1, 0, 0, 0, 0],
    )
    .unwrap();
    assert_refused(&run(&[]), &[s(&root)]);
    assert!(!out.exists(), "a model was saved");
}

#[test]
fn predict_with_nan_weights() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), &[]);
    let weights = model.join("weights.bin");
    let n = std::fs::metadata(&weights).unwrap().len() as usize / 4;
    std::fs::write(&weights, f32::NAN.to_le_bytes().repeat(n)).unwrap();
    let image = dir.path().join("one.png");
    small_png(&image);
    let run = cli(
        dir.path(),
        &["predict", "--model", s(&model), s(&image)],
        &[],
    );
    assert_refused(&run, &["NaN"]);
    assert!(!run.text.contains("NaN%"), "{}", run.text);
}

// ---------------------------------------------------------------------------------------------
// Runs that cannot go astray

/// A checkpoint holding another run's weights (same model, another seed): a checkpoint's files
/// are checked against each other, so resuming it is refused.
#[test]
fn checkpoint_with_weights_from_another_run() {
    let (dir, data) = with_tiny_idx();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    train_ok(dir.path(), &data, &a, &["--seed", "1"]);
    train_ok(dir.path(), &data, &b, &["--seed", "2"]);
    let weights = a.join("checkpoint/weights.bin");
    std::fs::copy(b.join("checkpoint/weights.bin"), &weights).unwrap();
    let run = resume(
        dir.path(),
        &a.join("checkpoint"),
        &[
            "--data",
            s(&data),
            "--epochs",
            "2",
            "--out",
            s(&a),
            "--quiet",
        ],
    );
    assert_refused(&run, &["weights.bin"]);
}

/// One `train` of the tiny IDX set into `out` with `extra` flags (1 epoch, batch 4 unless given).
fn train(dir: &Path, data: &Path, out: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["train", "--data", s(data), "--out", s(out), "--quiet"];
    if !extra.contains(&"--epochs") {
        args.extend(["--epochs", "1"]);
    }
    if !extra.contains(&"--batch-size") {
        args.extend(["--batch-size", "4"]);
    }
    args.extend(extra);
    cli(dir, &args, &[])
}

/// [`train`], asserted to succeed.
fn train_ok(dir: &Path, data: &Path, out: &Path, extra: &[&str]) -> Run {
    let run = train(dir, data, out, extra);
    assert!(run.status.success(), "{}", run.text);
    run
}

/// `train --resume checkpoint` with `extra` flags, run in `dir`.
fn resume(dir: &Path, checkpoint: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["train", "--resume", s(checkpoint)];
    args.extend(extra);
    cli(dir, &args, &[])
}

/// Rewrites a checkpoint's manifest so that it vouches for its files as they are now: what a
/// checkpoint whose settings were wrong when written would look like.
fn reseal(checkpoint: &Path) {
    use sha2::Digest;
    let path = checkpoint.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let names: Vec<String> = manifest["files"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    for name in names {
        let bytes = std::fs::read(checkpoint.join(&name)).unwrap();
        let digest: String = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        manifest["files"][&name] = serde_json::json!({"bytes": bytes.len(), "sha256": digest});
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
}

/// A file of a checkpoint changed after it was written (one byte of the optimizer's state), or its
/// manifest missing: refused, naming the file, before anything trains.
#[test]
fn tampered_checkpoint_file() {
    let (dir, _, out) = trained(&[]);
    let checkpoint = out.join("checkpoint");
    let optimizer = checkpoint.join("optimizer.bin");
    let mut bytes = std::fs::read(&optimizer).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&optimizer, bytes).unwrap();
    let run = resume(dir.path(), &checkpoint, &[]);
    assert_refused(&run, &["optimizer.bin", "manifest.json"]);
    assert!(!run.text.contains("Epoch "), "trained:\n{}", run.text);
    std::fs::remove_file(checkpoint.join("manifest.json")).unwrap();
    assert_refused(
        &resume(dir.path(), &checkpoint, &[]),
        &["manifest.json", "missing"],
    );
}

/// `train --resume DIR` alone, from another working folder than the run's, continues that run:
/// its data (given as a relative path), its --out (relative too), batch size and epochs; nothing
/// is written to the default `cifar10-model`.
#[test]
fn resume_alone() {
    let dir = tempfile::tempdir().unwrap();
    tiny_idx(dir.path());
    let run = cli(
        dir.path(),
        &[
            "train",
            "--data",
            "digits",
            "--out",
            "run",
            "--epochs",
            "1",
            "--batch-size",
            "3",
            "--seed",
            "5",
            "--optimizer",
            "sgd",
            "--quiet",
        ],
        &[],
    );
    assert!(run.status.success(), "{}", run.text);
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let checkpoint = dir.path().join("run/checkpoint");
    let progress = || std::fs::read_to_string(checkpoint.join("progress.json")).unwrap();
    let before = progress();
    let run = resume(&elsewhere, &checkpoint, &[]);
    assert!(run.status.success(), "{}", run.text);
    assert!(
        run.text.contains("batch 3, 1 epochs") && run.text.to_lowercase().contains("sgd"),
        "not the recorded settings:\n{}",
        run.text
    );
    assert!(
        !run.text.contains("Epoch 1/"),
        "trained again:\n{}",
        run.text
    );
    assert!(
        !elsewhere.join("cifar10-model").exists(),
        "wrote the default --out"
    );
    assert_eq!(progress(), before, "the finished run's checkpoint changed");
    // Extending it with a larger --epochs continues the same run into the same folder.
    let run = resume(&elsewhere, &checkpoint, &["--epochs", "2", "--quiet"]);
    assert!(run.status.success(), "{}", run.text);
    assert!(
        run.text.contains("Epoch 2/2") && !run.text.contains("Epoch 1/"),
        "{}",
        run.text
    );
    let history = std::fs::read_to_string(dir.path().join("run/history.csv")).unwrap();
    assert_eq!(history.lines().count(), 3, "{history}");
    assert!(
        !elsewhere.join("cifar10-model").exists(),
        "wrote the default --out"
    );
}

/// A flag that contradicts the run being resumed is refused by name (each one given, and only
/// those: the same value repeated is fine), before anything trains.
#[test]
fn resume_with_contradicting_flag() {
    let (dir, _, out) = trained(&["--epochs", "2", "--seed", "1"]);
    let checkpoint = out.join("checkpoint");
    let other = dir.path().join("other");
    let run = resume(
        dir.path(),
        &checkpoint,
        &[
            "--batch-size",
            "4",
            "--seed",
            "2",
            "--out",
            s(&other),
            "--lr",
            "0.5",
            "--epochs",
            "1",
        ],
    );
    assert_refused(&run, &["--seed 2", "--out", "--lr 0.5", "--epochs 1"]);
    assert!(!run.text.contains("--batch-size"), "{}", run.text);
    assert!(!run.text.contains("Epoch "), "trained:\n{}", run.text);
    assert!(!other.exists(), "wrote the contradicting --out");
    // Another optimizer's setting, and another data set.
    let run = resume(dir.path(), &checkpoint, &["--beta1", "0.5"]);
    assert_refused(&run, &["--beta1"]);
    // Augmentation the run did not have.
    let run = resume(dir.path(), &checkpoint, &["--augment"]);
    assert_refused(&run, &["--augment", "no augmentation"]);
    let run = resume(dir.path(), &checkpoint, &["--data", s(dir.path())]);
    assert_refused(&run, &["--data"]);
}

/// Two trainings into one --out: while the first runs, the second is refused, naming the first's
/// PID; killed (so its lock stays), the first's lock is taken over by the next run, with a note.
#[test]
fn two_trainings_into_one_out() {
    let (dir, data) = with_tiny_idx();
    let out = dir.path().join("run");
    let lock = dir.path().join(".run.lock");
    let mut first = Command::new(env!("CARGO_BIN_EXE_cifar-wgpu"))
        .args(["train", "--data", s(&data), "--out", s(&out), "--quiet"])
        .args(["--epochs", "100000", "--batch-size", "4"])
        .env("CIFAR_WGPU_CACHE", dir.path().join("cache"))
        .env("KERAS_HOME", dir.path().join("keras"))
        .env_remove("WGPU_BACKEND")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !lock.exists() {
        assert!(
            started.elapsed() < TIME_LIMIT,
            "the first run never locked {}",
            s(&out)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = train(dir.path(), &data, &out, &[]);
    first.kill().unwrap();
    first.wait().unwrap();
    assert_refused(
        &second,
        &[&format!("process {}", first.id()), "--out", ".run.lock"],
    );
    assert!(!second.text.contains("Epoch "), "trained:\n{}", second.text);
    let third = train_ok(dir.path(), &data, &out, &[]);
    assert!(
        third.text.contains("took over") && third.text.contains(&format!("process {}", first.id())),
        "{}",
        third.text
    );
    assert!(!lock.exists(), "the lock was left behind");
}

/// `export --out` and `report` write into a folder too: while another process holds it (here, this
/// test), both are refused, naming that process, and write nothing.
#[test]
fn export_and_report_into_a_held_folder() {
    let (dir, data, out) = trained(&[]);
    let me = format!("process {}", std::process::id());
    let exported = dir.path().join("exported");
    let held = cifar_wgpu::model::folder::lock(&exported).unwrap();
    let export = cli(
        dir.path(),
        &["export", "--model", s(&out), "--out", s(&exported)],
        &[],
    );
    assert_refused(&export, &[&me]);
    assert!(!exported.exists(), "export wrote into a held folder");
    drop(held);
    let before = std::fs::read_dir(&out).unwrap().count();
    let _held = cifar_wgpu::model::folder::lock(&out).unwrap();
    let report = cli(
        dir.path(),
        &[
            "report",
            "--model",
            s(&out),
            "--data",
            s(&data),
            "--batch-size",
            "4",
        ],
        &[],
    );
    assert_refused(&report, &[&me]);
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        before,
        "report wrote"
    );
}

/// A lock file left by a run that died (its PID gone) does not block the folder forever: taken
/// over, with a warning naming it.
#[test]
fn stale_lock_of_a_dead_pid() {
    let (dir, data) = with_tiny_idx();
    let out = dir.path().join("run");
    let mut ended = Command::new("true").spawn().unwrap();
    let pid = ended.id();
    ended.wait().unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let owner = serde_json::json!({"pid": pid, "host": host.trim(), "started": 1});
    let lock = dir.path().join(".run.lock");
    std::fs::write(&lock, owner.to_string()).unwrap();
    let run = train_ok(dir.path(), &data, &out, &[]);
    assert!(
        run.text.contains("warning:") && run.text.contains(&format!("process {pid}")),
        "{}",
        run.text
    );
    assert!(!lock.exists(), "the lock was left behind");
}

/// A run's folder moved since its checkpoint was written: resuming it alone is refused with the
/// --out to add (rather than writing to the old place), and with that --out it continues there.
#[test]
fn resume_of_a_moved_folder() {
    let (dir, _, out) = trained(&[]);
    let moved = dir.path().join("moved");
    std::fs::rename(&out, &moved).unwrap();
    let checkpoint = moved.join("checkpoint");
    let run = resume(dir.path(), &checkpoint, &[]);
    assert_refused(&run, &[&format!("--out {}", s(&moved))]);
    let run = resume(
        dir.path(),
        &checkpoint,
        &["--out", s(&moved), "--epochs", "2", "--quiet"],
    );
    assert!(run.status.success(), "{}", run.text);
    assert!(!out.exists(), "wrote to the folder's old place");
    let history = std::fs::read_to_string(moved.join("history.csv")).unwrap();
    assert_eq!(history.lines().count(), 3, "{history}");
}
