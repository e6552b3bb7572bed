//! Fuzzing every reader (issue 11), on stable Rust, bounded for CI and runnable for longer by hand.
//!
//! One test per reader. Each starts from valid files in the real format (written by
//! tests/common/writers.rs, our own savers, or Keras' golden files in assets/keras) and feeds the
//! reader inputs made by a deterministic mutator: bit flips, interesting byte values, truncation,
//! splicing from another seed, nudged length fields, duplicated and deleted chunks, and numbers in
//! text replaced by extreme ones. Files written compressed (`.tar.gz`, `.gz`, `.keras` members) are
//! mutated before compression, so the reader sees the change rather than gzip's CRC refusing it; a
//! few inputs are also mutated after compression. Every input must end in `Ok` or an error whose
//! message names the file or folder refused: a panic, an abort (a failed allocation under the
//! memory limit), an input that runs past [`INPUT_TIME_CAP`] or an error naming no file is a
//! failure.
//!
//! The parent runs this same test binary again, filtered to one test, as a child under `ulimit -v`
//! ([`ADDRESS_SPACE_KB`]); the child replays `tests/fuzz_regressions/<target>/`, checks that the
//! seeds are read, fuzzes for `CIFAR_WGPU_FUZZ_SECONDS` (default [`DEFAULT_SECONDS`]) and prints
//! its executions and peak memory. A failing input is kept under `target/tmp/fuzz-failures/`, in
//! the layout of a regression case (the files, and `ENTRY`: the path given to the reader) ready to
//! be moved into `tests/fuzz_regressions/<target>/` once the reader is fixed.
//! `CIFAR_WGPU_FUZZ_SEED` picks another sequence of inputs; input `i` of a seed is always the same.
//! By hand, for ten minutes a target: `CIFAR_WGPU_FUZZ_SECONDS=600 CIFAR_WGPU_FUZZ_SEED=7 cargo test
//! --test fuzz -- --test-threads 2 --nocapture` (each target prints its executions).

#[path = "common/data_fixtures.rs"]
mod fixtures;
#[path = "common/writers.rs"]
mod writers;

use std::io::{Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flate2::write::GzEncoder;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

use cifar_wgpu::data::{self, synthetic};
use cifar_wgpu::keras;
use cifar_wgpu::layers::{Activation, Conv2D, Dense, Flatten, MaxPooling2D};
use cifar_wgpu::model::Sequential;
use cifar_wgpu::model::io::SavedModel;
use cifar_wgpu::optimizer::Optimizer;
use cifar_wgpu::shape::Padding;
use cifar_wgpu::train::checkpoint::{Checkpoint, RunRecord, RunState};
use cifar_wgpu::train::{EpochLog, FitConfig, Progress, history};
use writers::Keys;

/// Set in the child: the folder it works in.
const CHILD_ENV: &str = "CIFAR_WGPU_FUZZ_CHILD";
/// Seconds of fuzzing per target.
const SECONDS_ENV: &str = "CIFAR_WGPU_FUZZ_SECONDS";
const SEED_ENV: &str = "CIFAR_WGPU_FUZZ_SEED";
/// Ten targets at 6 s, two at a time (`--test-threads 2`): about half a minute of CI.
const DEFAULT_SECONDS: f64 = 6.0;
/// The child's address-space limit (KiB): 1 GiB, the ceiling for any input.
const ADDRESS_SPACE_KB: u64 = 1 << 20;
/// One input taking longer than this is a hang.
const INPUT_TIME_CAP: Duration = Duration::from_secs(10);

/// How a file of an input is written.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Pack {
    Plain,
    /// Gzipped; the bytes are the uncompressed content.
    Gzip,
    /// A member (deflated) of the zip archive at `Part::path`; `Part::member` is its name.
    Zip,
}

/// A file of an input: its path under the input folder, its content, how it is written.
#[derive(Clone, Debug)]
struct Part {
    path: String,
    member: String,
    bytes: Vec<u8>,
    pack: Pack,
}

/// What a reader is given: files, and the path (under the input folder) it is called on.
#[derive(Clone, Debug)]
struct Input {
    entry: String,
    parts: Vec<Part>,
}

fn plain(path: impl Into<String>, bytes: Vec<u8>) -> Part {
    Part {
        path: path.into(),
        member: String::new(),
        bytes,
        pack: Pack::Plain,
    }
}

fn gzip(path: impl Into<String>, bytes: Vec<u8>) -> Part {
    Part {
        pack: Pack::Gzip,
        ..plain(path, bytes)
    }
}

/// A reader under test: its seeds, and the call (on the entry path) that must return, not panic.
struct Target {
    name: &'static str,
    seeds: fn() -> Vec<Input>,
    read: fn(&Path) -> Result<(), String>,
}

// ---------------------------------------------------------------------------------------------
// Seeds

fn tiny_cifar() -> data::Dataset {
    fixtures::tiny_cifar(2, 2, 7)
}

/// A CIFAR archive as a `.tar.gz`, as a plain `.tar`, and extracted (each batch mutated alone).
fn cifar_seeds(folder: &str, members: Vec<writers::Member>) -> Vec<Input> {
    let tar = writers::tar_bytes(&writers::in_folder(folder, members.clone())).unwrap();
    let extracted = members
        .into_iter()
        .map(|(name, bytes)| plain(format!("{folder}/{name}"), bytes))
        .collect();
    vec![
        Input {
            entry: "cifar-10.tar.gz".into(),
            parts: vec![gzip("cifar-10.tar.gz", tar.clone())],
        },
        Input {
            entry: "cifar-10.tar".into(),
            parts: vec![plain("cifar-10.tar", tar)],
        },
        Input {
            entry: folder.into(),
            parts: extracted,
        },
    ]
}

fn cifar_binary_seeds() -> Vec<Input> {
    let members = writers::cifar_binary_members(&tiny_cifar()).unwrap();
    cifar_seeds("cifar-10-batches-bin", members)
}

fn cifar_python_seeds() -> Vec<Input> {
    let mut seeds = Vec::new();
    for keys in [Keys::Bytes, Keys::Str] {
        let members = writers::cifar_python_members(&tiny_cifar(), keys).unwrap();
        seeds.extend(cifar_seeds("cifar-10-batches-py", members));
    }
    seeds
}

/// A one-channel 6x6 data set of 3 classes.
fn tiny_gray() -> data::Dataset {
    let mut ds = synthetic::random_like_cifar(12, 6, 3);
    ds.channels = 1;
    ds.height = 6;
    ds.width = 6;
    ds.class_names = (0..3).map(|c| format!("c{c}")).collect();
    for split in [&mut ds.train, &mut ds.test] {
        let n = split.len();
        split.images.truncate(n * 36);
        for (i, l) in split.labels.iter_mut().enumerate() {
            *l = (i % 3) as u8;
        }
    }
    ds
}

fn idx_seeds() -> Vec<Input> {
    let ds = tiny_gray();
    let files = [
        (
            "train-images-idx3-ubyte",
            writers::idx_images(&ds.train, 6, 6),
        ),
        ("train-labels-idx1-ubyte", writers::idx_labels(&ds.train)),
        (
            "t10k-images-idx3-ubyte",
            writers::idx_images(&ds.test, 6, 6),
        ),
        ("t10k-labels-idx1-ubyte", writers::idx_labels(&ds.test)),
    ];
    let plain_parts = files
        .iter()
        .map(|(n, b)| plain(format!("digits/{n}"), b.clone()))
        .collect();
    let gz_parts = files
        .iter()
        .map(|(n, b)| gzip(format!("digits/{n}.gz"), b.clone()))
        .collect();
    vec![
        Input {
            entry: "digits".into(),
            parts: plain_parts,
        },
        Input {
            entry: "digits".into(),
            parts: gz_parts,
        },
    ]
}

/// Image folders of a few PNGs and JPEGs, flat and with train/test, gray and RGB.
fn image_seeds() -> Vec<Input> {
    let mut seeds = Vec::new();
    let rgb = synthetic::random_like_cifar(4, 2, 5);
    let gray = tiny_gray();
    for (ds, with_test, format) in [
        (&gray, false, writers::ImageFormat::Png),
        (&rgb, true, writers::ImageFormat::Jpeg),
    ] {
        let mut small = ds.clone();
        small.class_names.truncate(3);
        for split in [&mut small.train, &mut small.test] {
            for l in split.labels.iter_mut() {
                *l %= 3;
            }
        }
        let dir = tempfile::tempdir().unwrap();
        writers::write_image_folder(&small, &dir.path().join("images"), with_test, format).unwrap();
        seeds.push(Input {
            entry: "images".into(),
            parts: files_under(dir.path()),
        });
    }
    seeds
}

/// Every file under `root`, as plain parts named relative to it.
fn files_under(root: &Path) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                parts.push(plain(rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    parts.sort_by(|a, b| a.path.cmp(&b.path));
    parts
}

/// A model small enough that its files mutate quickly: 6x6x2 → Conv2D(3) → MaxPool → Dense(3).
fn small_saved() -> SavedModel {
    let model = Sequential::from_layers(
        "fuzz",
        [6, 6, 2],
        vec![
            Conv2D::new(3, [3, 3], Padding::Same)
                .activation(Activation::Relu)
                .into(),
            MaxPooling2D::new([2, 2]).into(),
            Flatten.into(),
            Dense::new(3).activation(Activation::Softmax).into(),
        ],
    );
    let params = model.init_params(1).unwrap();
    SavedModel {
        class_names: (0..3).map(|i| format!("c{i}")).collect(),
        model,
        params,
    }
}

/// The files `save` writes into a folder `name`, as plain parts.
fn saved_folder(name: &str, save: impl FnOnce(&Path)) -> Vec<Part> {
    let dir = tempfile::tempdir().unwrap();
    save(&dir.path().join(name));
    files_under(dir.path())
}

fn model_file_seeds() -> Vec<Input> {
    vec![Input {
        entry: "model".into(),
        parts: saved_folder("model", |d| small_saved().save(d).unwrap()),
    }]
}

fn asset(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("assets/keras")
            .join(name),
    )
    .unwrap()
}

/// The members of a zip archive, as parts of a zip at `path`.
fn zip_parts(path: &str, zip: &[u8]) -> Vec<Part> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut member = archive.by_index(i).unwrap();
            let mut bytes = Vec::new();
            member.read_to_end(&mut bytes).unwrap();
            Part {
                path: path.into(),
                member: member.name().unwrap().into_owned(),
                bytes,
                pack: Pack::Zip,
            }
        })
        .collect()
}

fn our_keras_file(name: &str) -> Vec<u8> {
    keras::keras_files(&small_saved())
        .unwrap()
        .into_iter()
        .find(|(n, _)| *n == name)
        .unwrap()
        .1
}

fn keras_archive_seeds() -> Vec<Input> {
    vec![
        Input {
            entry: "tiny.keras".into(),
            parts: zip_parts("tiny.keras", &asset("tiny.keras")),
        },
        Input {
            entry: "model.keras".into(),
            parts: zip_parts("model.keras", &our_keras_file(keras::ARCHIVE_FILE)),
        },
    ]
}

/// Weights with the architecture next to them, named so `keras::load` finds it.
fn weights_with_json(weights: &str, w: Vec<u8>, json: &str, j: Vec<u8>) -> Input {
    Input {
        entry: weights.into(),
        parts: vec![plain(weights, w), plain(json, j)],
    }
}

fn h5_legacy_seeds() -> Vec<Input> {
    vec![
        weights_with_json(
            "tiny_weights.h5",
            asset("tiny_weights.h5"),
            "tiny_architecture.json",
            asset("tiny_architecture.json"),
        ),
        Input {
            entry: "tiny_model.h5".into(),
            parts: vec![plain("tiny_model.h5", asset("tiny_model.h5"))],
        },
        weights_with_json(
            keras::LEGACY_WEIGHTS_FILE,
            our_keras_file(keras::LEGACY_WEIGHTS_FILE),
            keras::ARCHITECTURE_FILE,
            our_keras_file(keras::ARCHITECTURE_FILE),
        ),
    ]
}

fn h5_keras3_seeds() -> Vec<Input> {
    vec![
        weights_with_json(
            "tiny.weights.h5",
            asset("tiny.weights.h5"),
            keras::ARCHITECTURE_FILE,
            asset("tiny_architecture.json"),
        ),
        weights_with_json(
            keras::WEIGHTS_FILE,
            our_keras_file(keras::WEIGHTS_FILE),
            keras::ARCHITECTURE_FILE,
            our_keras_file(keras::ARCHITECTURE_FILE),
        ),
    ]
}

fn epoch_logs() -> Vec<EpochLog> {
    (0..3)
        .map(|epoch| EpochLog {
            epoch,
            loss: 2.0 / (epoch + 1) as f64,
            accuracy: 0.1 * (epoch + 1) as f64,
            val_loss: (epoch != 1).then_some(1.5),
            val_accuracy: (epoch != 1).then_some(0.25),
            seconds: 1.5,
            train_seconds: 1.25,
        })
        .collect()
}

fn checkpoint_seeds() -> Vec<Input> {
    let model = small_saved();
    let words = model.params.len();
    let optimizer = Optimizer::adam_default();
    let checkpoint = Checkpoint {
        optimizer_state: (0..optimizer.state_buffers())
            .map(|b| (0..words).map(|i| (i * (b + 1)) as f32 * 1e-3).collect())
            .collect(),
        model,
        state: RunState {
            progress: Progress {
                epoch: 2,
                batch: 3,
                step: 11,
            },
            fit: FitConfig {
                epochs: 5,
                batch_size: 4,
                shuffle: true,
                seed: 9,
                augment: None,
            },
            optimizer,
            validation_split: 0.2,
            run: RunRecord::default(),
            history: epoch_logs(),
            partial_metrics: [1, 2, 3, 4],
        },
    };
    vec![Input {
        entry: "checkpoint".into(),
        parts: saved_folder("checkpoint", |d| {
            std::fs::create_dir_all(d).unwrap();
            checkpoint.save(d).unwrap()
        }),
    }]
}

fn history_seeds() -> Vec<Input> {
    vec![Input {
        entry: "run".into(),
        parts: history::files(&epoch_logs())
            .into_iter()
            .map(|(name, bytes)| plain(format!("run/{name}"), bytes))
            .collect(),
    }]
}

// ---------------------------------------------------------------------------------------------
// Readers

fn read_data(path: &Path) -> Result<(), String> {
    data::read(path, None).map(drop).map_err(|e| e.to_string())
}

fn read_model_files(path: &Path) -> Result<(), String> {
    SavedModel::load(path).map(drop).map_err(|e| e.to_string())
}

fn read_keras(path: &Path) -> Result<(), String> {
    keras::load(path).map(drop).map_err(|e| e.to_string())
}

fn read_checkpoint(path: &Path) -> Result<(), String> {
    Checkpoint::load(path).map(drop).map_err(|e| e.to_string())
}

/// The history, and the chart `report` draws from it (±1e308 once hung there).
fn read_history(path: &Path) -> Result<(), String> {
    let logs = history::load(path).map_err(|e| e.to_string())?;
    cifar_wgpu::report::curves_svg(&logs)
        .map(drop)
        .map_err(|e| e.to_string())
}

const TARGETS: &[Target] = &[
    Target {
        name: "cifar_binary",
        seeds: cifar_binary_seeds,
        read: read_data,
    },
    Target {
        name: "cifar_python",
        seeds: cifar_python_seeds,
        read: read_data,
    },
    Target {
        name: "idx",
        seeds: idx_seeds,
        read: read_data,
    },
    Target {
        name: "image_folder",
        seeds: image_seeds,
        read: read_data,
    },
    Target {
        name: "model_files",
        seeds: model_file_seeds,
        read: read_model_files,
    },
    Target {
        name: "keras_archive",
        seeds: keras_archive_seeds,
        read: read_keras,
    },
    Target {
        name: "h5_legacy",
        seeds: h5_legacy_seeds,
        read: read_keras,
    },
    Target {
        name: "h5_keras3",
        seeds: h5_keras3_seeds,
        read: read_keras,
    },
    Target {
        name: "checkpoint",
        seeds: checkpoint_seeds,
        read: read_checkpoint,
    },
    Target {
        name: "history",
        seeds: history_seeds,
        read: read_history,
    },
];

// ---------------------------------------------------------------------------------------------
// The mutator

const INTERESTING_BYTES: [u8; 5] = [0, 255, 0x7f, 0x80, 1];
const INTERESTING_NUMBERS: [&str; 14] = [
    "0",
    "-1",
    "1",
    "2",
    "65536",
    "4294967295",
    "4294967296",
    "1000000000000",
    "4611686018427387904",
    "18446744073709551616",
    "1e308",
    "-1e308",
    "1e-320",
    "0.5",
];

/// A random range of `len` bytes (empty when `len` is 0), short more often than long.
fn range(rng: &mut Pcg64Mcg, len: usize) -> std::ops::Range<usize> {
    if len == 0 {
        return 0..0;
    }
    let start = rng.random_range(0..len);
    let max = (len - start).min(if rng.random_bool(0.8) { 64 } else { 1 << 16 });
    start..start + rng.random_range(1..=max)
}

/// A little- or big-endian integer of `width` bytes at a random offset, nudged or set to an
/// extreme: the length fields and offsets every format here has.
fn nudge_integer(rng: &mut Pcg64Mcg, bytes: &mut [u8]) {
    let width = [2usize, 4, 8][rng.random_range(0..3)];
    if bytes.len() < width {
        return;
    }
    let at = rng.random_range(0..=bytes.len() - width);
    let field = &mut bytes[at..at + width];
    let little = rng.random_bool(0.5);
    let mut word = [0u8; 8];
    if little {
        word[..width].copy_from_slice(field);
    } else {
        word[8 - width..].copy_from_slice(field);
    }
    let value = if little {
        u64::from_le_bytes(word)
    } else {
        u64::from_be_bytes(word)
    };
    let value = match rng.random_range(0..4) {
        0 => value.wrapping_add(rng.random_range(1..=32)),
        1 => value.wrapping_sub(rng.random_range(1..=32)),
        2 => value.wrapping_mul(if rng.random_bool(0.5) { 2 } else { 256 }),
        _ => [
            0,
            u64::MAX,
            1 << (8 * width - 1),
            (1 << (8 * width - 1)) - 1,
        ][rng.random_range(0..4)],
    };
    if little {
        field.copy_from_slice(&value.to_le_bytes()[..width]);
    } else {
        field.copy_from_slice(&value.to_be_bytes()[8 - width..]);
    }
}

/// Replaces a run of ASCII digits (a JSON number, a shape, a count) by an extreme number.
fn replace_number(rng: &mut Pcg64Mcg, bytes: &mut Vec<u8>) {
    let starts: Vec<usize> = (0..bytes.len())
        .filter(|&i| bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_digit()))
        .collect();
    if starts.is_empty() {
        return;
    }
    let start = starts[rng.random_range(0..starts.len())];
    let end = (start..bytes.len())
        .find(|&i| !bytes[i].is_ascii_digit() && bytes[i] != b'.' && bytes[i] != b'e')
        .unwrap_or(bytes.len());
    let number = INTERESTING_NUMBERS[rng.random_range(0..INTERESTING_NUMBERS.len())];
    bytes.splice(start..end, number.bytes());
}

/// One mutation of `bytes`; `other` is another seed file, for splicing.
fn mutate(rng: &mut Pcg64Mcg, bytes: &mut Vec<u8>, other: &[u8]) {
    let len = bytes.len();
    match rng.random_range(0..10) {
        0 if len > 0 => {
            let at = rng.random_range(0..len);
            bytes[at] ^= 1 << rng.random_range(0..8);
        }
        1 if len > 0 => {
            let at = rng.random_range(0..len);
            bytes[at] = INTERESTING_BYTES[rng.random_range(0..INTERESTING_BYTES.len())];
        }
        2 => bytes.truncate(rng.random_range(0..=len)),
        3 => {
            let from = range(rng, other.len());
            let to = range(rng, len);
            bytes.splice(to, other[from].iter().copied());
        }
        4 | 5 => nudge_integer(rng, bytes),
        6 => {
            let chunk = bytes[range(rng, len)].to_vec();
            let at = rng.random_range(0..=len);
            bytes.splice(at..at, chunk);
        }
        7 => {
            bytes.drain(range(rng, len));
        }
        8 => replace_number(rng, bytes),
        _ => {
            let at = rng.random_range(0..=len);
            let n = rng.random_range(1..=16);
            let noise: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            bytes.splice(at..at, noise);
        }
    }
}

/// Input number `i` of the sequence `seed` of a target: a seed with one to four mutations
/// stacked, to one or two of its files.
fn input_number(seeds: &[Input], seed: u64, target: usize, i: u64) -> (Input, Pcg64Mcg) {
    let mut rng = Pcg64Mcg::seed_from_u64(
        seed ^ (target as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i.wrapping_mul(0xff51_afd7),
    );
    let mut input = seeds[rng.random_range(0..seeds.len())].clone();
    for _ in 0..rng.random_range(1..=4) {
        let part = rng.random_range(0..input.parts.len());
        let donor = &seeds[rng.random_range(0..seeds.len())];
        let other = &donor.parts[rng.random_range(0..donor.parts.len())].bytes;
        mutate(&mut rng, &mut input.parts[part].bytes, other);
    }
    (input, rng)
}

/// Writes `input` under `dir` (emptied first). With `rng`, one in eight inputs also has a
/// mutation after compression, in one compressed file.
fn materialize(input: &Input, dir: &Path, rng: Option<&mut Pcg64Mcg>) {
    if dir.exists() {
        std::fs::remove_dir_all(dir).unwrap();
    }
    std::fs::create_dir_all(dir).unwrap();
    let mut packed = Vec::new();
    for part in &input.parts {
        let path = dir.join(&part.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        match part.pack {
            Pack::Plain => std::fs::write(&path, &part.bytes).unwrap(),
            Pack::Gzip => {
                // In memory, not writers::write_gz: its fsync would cost more than the read.
                let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(&part.bytes).unwrap();
                std::fs::write(&path, gz.finish().unwrap()).unwrap();
                packed.push(path);
            }
            Pack::Zip if !packed.contains(&path) => {
                let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
                let options = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Deflated);
                for member in input.parts.iter().filter(|p| p.path == part.path) {
                    zip.start_file(member.member.as_str(), options).unwrap();
                    zip.write_all(&member.bytes).unwrap();
                }
                zip.finish().unwrap();
                packed.push(path);
            }
            Pack::Zip => {}
        }
    }
    if let Some(rng) = rng
        && !packed.is_empty()
        && rng.random_bool(0.125)
    {
        let path = &packed[rng.random_range(0..packed.len())];
        let mut bytes = std::fs::read(path).unwrap();
        mutate(rng, &mut bytes, &[]);
        std::fs::write(path, bytes).unwrap();
    }
    std::fs::write(dir.join("ENTRY"), &input.entry).unwrap();
}

// ---------------------------------------------------------------------------------------------
// The child: replay, seeds, fuzz

/// When the input being read started (ms since the child began), 0 when none is.
static INPUT_STARTED_MS: AtomicU64 = AtomicU64::new(0);
/// The last panic's message and place.
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

/// The longest any input took to read (ms).
static SLOWEST_MS: AtomicU64 = AtomicU64::new(0);

/// Reads the input in `dir` (its files and `ENTRY`): `Err(None)` for a clean error, and
/// `Err(Some(what))` for a failure: a panic, or an error message that names nothing under `dir`.
fn run_one(target: &Target, dir: &Path, epoch: Instant) -> Result<(), Option<String>> {
    let entry = std::fs::read_to_string(dir.join("ENTRY")).unwrap();
    let path = dir.join(entry.trim());
    let started = Instant::now();
    INPUT_STARTED_MS.store(epoch.elapsed().as_millis() as u64 + 1, Ordering::SeqCst);
    let outcome = catch_unwind(AssertUnwindSafe(|| (target.read)(&path)));
    INPUT_STARTED_MS.store(0, Ordering::SeqCst);
    SLOWEST_MS.fetch_max(started.elapsed().as_millis() as u64, Ordering::SeqCst);
    match outcome {
        Ok(Ok(())) => Ok(()),
        // An error must say where: the file, or the folder, it refuses.
        Ok(Err(message)) if message.contains(dir.to_str().unwrap()) => Err(None),
        Ok(Err(message)) => Err(Some(format!("an error that names no file: {message}"))),
        Err(_) => Err(Some(LAST_PANIC.lock().unwrap().clone())),
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

fn peak_rss_kb() -> u64 {
    // Linux's figure; 0 where there is no /proc.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn child(index: usize, work: &Path) {
    let target = &TARGETS[index];
    let epoch = Instant::now();
    std::panic::set_hook(Box::new(|info| {
        *LAST_PANIC.lock().unwrap() = info.to_string();
    }));
    // The watchdog: an input past the cap ends the child, its files left in `work/input`.
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let started = INPUT_STARTED_MS.load(Ordering::SeqCst);
            if started != 0
                && epoch.elapsed().as_millis() as u64 > started + INPUT_TIME_CAP.as_millis() as u64
            {
                println!("fuzz-hang: an input took over {INPUT_TIME_CAP:?}");
                std::process::abort();
            }
        }
    });
    let input_dir = work.join("input");
    let mut failures = Vec::new();

    let regressions = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(target.name);
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&regressions)
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    cases.sort();
    for case in &cases {
        if std::fs::remove_dir_all(&input_dir).is_err() && input_dir.exists() {
            panic!("cannot clear {}", input_dir.display());
        }
        copy_dir(case, &input_dir);
        if let Err(Some(failure)) = run_one(target, &input_dir, epoch) {
            failures.push(format!("regression {}: {failure}", case.display()));
        }
    }

    let seeds = (target.seeds)();
    for (i, seed) in seeds.iter().enumerate() {
        materialize(seed, &input_dir, None);
        if let Err(e) = run_one(target, &input_dir, epoch) {
            panic!("{}: seed {i} is not read: {e:?}", target.name);
        }
    }

    let seconds: f64 = std::env::var(SECONDS_ENV)
        .map(|s| s.parse().expect("CIFAR_WGPU_FUZZ_SECONDS is a number"))
        .unwrap_or(DEFAULT_SECONDS);
    let seed: u64 = std::env::var(SEED_ENV)
        .map(|s| s.parse().expect("CIFAR_WGPU_FUZZ_SEED is an integer"))
        .unwrap_or(0);
    let fuzz_start = Instant::now();
    let (mut executions, mut errors) = (0u64, 0u64);
    while fuzz_start.elapsed().as_secs_f64() < seconds {
        let (input, mut rng) = input_number(&seeds, seed, index, executions);
        materialize(&input, &input_dir, Some(&mut rng));
        match run_one(target, &input_dir, epoch) {
            Ok(()) => {}
            Err(None) => errors += 1,
            Err(Some(failure)) => {
                let kept = work.join("failures").join(executions.to_string());
                copy_dir(&input_dir, &kept);
                failures.push(format!("input {executions} (seed {seed}): {failure}"));
            }
        }
        executions += 1;
    }
    println!(
        "fuzz-stats {} executions, {} errors, {} regressions, {:.1} s, slowest input {} ms, peak RSS {} MiB",
        executions,
        errors,
        cases.len(),
        fuzz_start.elapsed().as_secs_f64(),
        SLOWEST_MS.load(Ordering::SeqCst),
        peak_rss_kb() >> 10
    );
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// The parent

fn fuzz(name: &str) {
    let index = TARGETS.iter().position(|t| t.name == name).unwrap();
    if let Some(work) = std::env::var_os(CHILD_ENV) {
        return child(index, Path::new(&work));
    }
    let work = tempfile::tempdir().unwrap();
    let test = format!("fuzz_{name}");
    let seconds: f64 = std::env::var(SECONDS_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SECONDS);
    let limit = Duration::from_secs_f64(seconds) + INPUT_TIME_CAP + Duration::from_secs(120);
    let started = Instant::now();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {ADDRESS_SPACE_KB} && exec \"$@\""))
        .arg("sh")
        .arg(std::env::current_exe().unwrap())
        .args([&test, "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, work.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).unwrap();
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = out_reader.join().unwrap();
    let stderr = err_reader.join().unwrap();
    let stats = stdout
        .lines()
        .find_map(|l| l.find("fuzz-stats ").map(|at| &l[at + 11..]))
        .unwrap_or("no statistics");
    println!(
        "fuzz {name}: {stats}; {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
    if status.success() {
        return;
    }
    // Keep what failed: the inputs the child caught panicking on, or the one it was reading when
    // it aborted, hung or was killed.
    let kept = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("fuzz-failures")
        .join(name);
    let _ = std::fs::remove_dir_all(&kept);
    if work.path().join("failures").is_dir() {
        copy_dir(&work.path().join("failures"), &kept);
    }
    if !stdout.contains("fuzz-stats ") && work.path().join("input").is_dir() {
        copy_dir(&work.path().join("input"), &kept.join("last"));
    }
    panic!(
        "fuzz {name}: the child failed ({status}); inputs kept in {} (move a case into \
         tests/fuzz_regressions/{name}/ once fixed)\n{stdout}\n{stderr}",
        kept.display()
    );
}

#[test]
fn fuzz_cifar_binary() {
    fuzz("cifar_binary");
}

#[test]
fn fuzz_cifar_python() {
    fuzz("cifar_python");
}

#[test]
fn fuzz_idx() {
    fuzz("idx");
}

#[test]
fn fuzz_image_folder() {
    fuzz("image_folder");
}

#[test]
fn fuzz_model_files() {
    fuzz("model_files");
}

#[test]
fn fuzz_keras_archive() {
    fuzz("keras_archive");
}

#[test]
fn fuzz_h5_legacy() {
    fuzz("h5_legacy");
}

#[test]
fn fuzz_h5_keras3() {
    fuzz("h5_keras3");
}

#[test]
fn fuzz_checkpoint() {
    fuzz("checkpoint");
}

#[test]
fn fuzz_history() {
    fuzz("history");
}
