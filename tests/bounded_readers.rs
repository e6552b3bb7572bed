//! Bounded readers (issue 11): each crafted input below once crashed, hung or took gigabytes. Each
//! must now end in a clear error naming the file (the history must simply draw), quickly and within
//! a memory bound.
//!
//! How the bound is checked: the parent builds the input in a temporary folder, then runs this
//! same test binary again, filtered to the one test, as a child under `ulimit -v` (an address-space
//! limit, so a runaway allocation fails instead of swapping the machine). The child only reads
//! the input, checks the message and prints its peak resident memory (`VmHWM` from
//! /proc/self/status), which the parent checks against [`PEAK_RSS_KB`] and prints.

#[path = "common/crafted.rs"]
mod crafted;
#[path = "common/data_fixtures.rs"]
mod fixtures;
#[path = "common/writers.rs"]
mod writers;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cifar_wgpu::data::{self, synthetic};
use cifar_wgpu::keras;
use crafted::{edit_json, gnu_long_name_tar_gz, huge_png_header, keras_files, python_archive_with};
use writers::Member;

/// Set in the child: the input to read.
const INPUT_ENV: &str = "BOUNDED_READERS_INPUT";
/// The child's address-space limit (`ulimit -v`, KiB): 1.5 GiB, under what every input took before.
const ADDRESS_SPACE_KB: u64 = 1536 << 10;
/// The child's peak resident memory must stay under this (KiB): 256 MiB.
const PEAK_RSS_KB: u64 = 256 << 10;
/// And it must be done within this.
const TIME_LIMIT: Duration = Duration::from_secs(60);

/// Runs `read` on the input `make` builds, in a child process (see the module docs); `read`
/// returns the text to check (an error's message), which must hold every needle and the file.
fn bounded(
    test: &str,
    make: impl FnOnce(&Path) -> PathBuf,
    read: fn(&Path) -> String,
    needles: &[&str],
) {
    if let Some(input) = std::env::var_os(INPUT_ENV) {
        let input = PathBuf::from(input);
        let message = read(&input);
        println!("message: {message}");
        for needle in needles {
            assert!(
                message.contains(needle),
                "message lacks {needle:?}: {message}"
            );
        }
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let peak = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        println!("child-peak {peak}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let input = make(tmp.path());
    let started = Instant::now();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {ADDRESS_SPACE_KB} && exec \"$@\""))
        .arg("sh")
        .arg(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads", "1"])
        .env(INPUT_ENV, &input)
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{test}: the child failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let peak_kb: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("child-peak VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{test}: the child ran no reader:\n{stdout}\n{stderr}"));
    let message = stdout
        .lines()
        .find_map(|l| l.find("message: ").map(|at| &l[at + 9..]))
        .unwrap_or("");
    println!(
        "{test}: {:.2} s, peak RSS {} MiB; {message}",
        elapsed.as_secs_f64(),
        peak_kb >> 10
    );
    assert!(peak_kb <= PEAK_RSS_KB, "{test}: peak RSS {peak_kb} KiB");
    assert!(elapsed <= TIME_LIMIT, "{test}: took {elapsed:?}");
    assert!(
        message.contains(input.to_str().unwrap()),
        "{test}: the message does not name {}: {message}",
        input.display()
    );
}

fn data_error(path: &Path) -> String {
    data::read(path, None)
        .expect_err("the crafted input was accepted")
        .to_string()
}

fn keras_error(path: &Path) -> String {
    match keras::load(path) {
        Ok(_) => panic!("the crafted model was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn pickle_nested_20000_deep() {
    bounded(
        "pickle_nested_20000_deep",
        |dir| {
            let mut p = b"\x80\x02".to_vec();
            p.extend(std::iter::repeat_n(b']', 20_000));
            p.extend(std::iter::repeat_n(b'a', 19_999));
            p.push(b'.');
            {
                let path = dir.join("cifar-10-python.tar.gz");
                python_archive_with(&path, p);
                path
            }
        },
        data_error,
        &["data_batch_1", "nests containers more than 32 deep"],
    );
}

#[test]
fn pickle_of_millions_of_marks() {
    bounded(
        "pickle_of_millions_of_marks",
        |dir| {
            // 30 MB of MARK opcodes: within the size of a real batch, about 30 KB compressed.
            let mut p = b"\x80\x02".to_vec();
            p.extend(std::iter::repeat_n(b'(', 30_000_000));
            {
                let path = dir.join("cifar-10-python.tar.gz");
                python_archive_with(&path, p);
                path
            }
        },
        data_error,
        &["data_batch_1", "MARKs open at once"],
    );
}

#[test]
fn tar_with_a_huge_gnu_long_name() {
    bounded(
        "tar_with_a_huge_gnu_long_name",
        |dir| {
            // A GNU long-name entry of 64 MB, then the member it would name.
            let path = dir.join("long-name.tar.gz");
            gnu_long_name_tar_gz(&path, 64 << 20);
            path
        },
        data_error,
        &["GNU long name of 67108864 bytes; at most 4096 are read"],
    );
}

/// Zip `members` (name, bytes) deflated into `path`.
fn write_zip(path: &Path, members: &[Member]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    for (name, bytes) in members {
        zip.start_file(name.as_str(), options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

#[test]
fn keras_zip_bomb_member() {
    bounded(
        "keras_zip_bomb_member",
        |dir| {
            keras_files(dir);
            let config = std::fs::read(dir.join(keras::ARCHITECTURE_FILE)).unwrap();
            let weights = std::fs::read(dir.join(keras::WEIGHTS_FILE)).unwrap();
            // 256 MiB of spaces after the JSON, about 256 KB deflated.
            let mut bomb = config;
            bomb.resize(256 << 20, b' ');
            let path = dir.join("bomb.keras");
            write_zip(
                &path,
                &[
                    ("config.json".into(), bomb),
                    ("model.weights.h5".into(), weights),
                ],
            );
            path
        },
        keras_error,
        &["config.json inside is 268435456 bytes or more; at most 16777216 are read"],
    );
}

#[test]
fn keras_json_with_units_10_to_the_12() {
    bounded(
        "keras_json_with_units_10_to_the_12",
        |dir| {
            keras_files(dir);
            let path = dir.join(keras::ARCHITECTURE_FILE);
            edit_json(&path, "\"units\": 3", "\"units\": 1000000000000");
            path
        },
        keras_error,
        // Refused by the model's own shape check, or else by the parameter cap of the readers.
        &[],
    );
}

#[test]
fn keras_json_with_half_a_billion_parameters() {
    bounded(
        "keras_json_with_half_a_billion_parameters",
        |dir| {
            // Every tensor fits the model's own shape limits; the total (513 million) does not fit

            keras_files(dir);
            let path = dir.join(keras::ARCHITECTURE_FILE);
            edit_json(&path, "\"units\": 3", "\"units\": 1000000");
            path
        },
        keras_error,
        &["the architecture has 513148576 parameters; models of at most 67108864 are read"],
    );
}

/// The small model's architecture with an input side of `side`.
fn keras_json_with_side(dir: &Path, side: &str) -> PathBuf {
    keras_files(dir);
    let path = dir.join(keras::ARCHITECTURE_FILE);
    edit_json(&path, "[null, 6, 6, 2]", &format!("[null, {side}, 6, 2]"));
    path
}

#[test]
fn keras_json_with_an_input_side_of_0() {
    bounded(
        "keras_json_with_an_input_side_of_0",
        |dir| keras_json_with_side(dir, "0"),
        keras_error,
        &["[null,0,6,2]"],
    );
}

#[test]
fn keras_json_with_an_input_side_of_2_to_the_32() {
    bounded(
        "keras_json_with_an_input_side_of_2_to_the_32",
        |dir| keras_json_with_side(dir, "4294967296"),
        keras_error,
        // Refused by the model's own shape check, or else by the input-shape check of the readers.
        &["4294967296, 6, 2"],
    );
}

#[test]
fn image_folder_of_16384_square_pngs() {
    bounded(
        "image_folder_of_16384_square_pngs",
        |dir| {
            let root = dir.join("huge");
            std::fs::create_dir_all(root.join("a")).unwrap();
            for i in 0..3 {
                std::fs::write(root.join(format!("a/{i}.png")), huge_png_header(16_384)).unwrap();
            }
            root
        },
        data_error,
        &["0.png", "16384x16384 pixels"],
    );
}

/// Two classes of one 4x4 image each.
fn tiny_image_folder(root: &Path) {
    for class in ["a", "b"] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        let path = root.join(class).join("0.png");
        image::save_buffer(&path, &[7u8; 48], 4, 4, image::ExtendedColorType::Rgb8).unwrap();
    }
}

#[test]
fn image_folder_with_a_symlink_loop() {
    bounded(
        "image_folder_with_a_symlink_loop",
        |dir| {
            let root = dir.join("looped");
            tiny_image_folder(&root);
            let class = std::fs::read_dir(&root)
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path();
            std::os::unix::fs::symlink(&class, class.join("again")).unwrap();
            root
        },
        |root| {
            let listed = data::image_files(&[root.to_path_buf()])
                .expect_err("predict's walk accepted the loop")
                .to_string();
            let read = data_error(root);
            assert!(listed.contains("symbolic link loop"), "{listed}");
            read
        },
        &["again", "symbolic link loop"],
    );
}

#[test]
fn history_with_1e308_values_still_draws() {
    bounded(
        "history_with_1e308_values_still_draws",
        |dir| {
            let json = r#"{"loss": [1e308, -1e308, 0.5], "accuracy": [0.5, 1e308, -1e308],
                "val_loss": [-1e308, 1e308, null], "val_accuracy": [1e308, 0.2, null]}"#;
            std::fs::write(dir.join("history.json"), json).unwrap();
            dir.to_path_buf()
        },
        |dir| {
            let history = cifar_wgpu::train::history::load(dir).unwrap();
            let svg = cifar_wgpu::report::curves_svg(&history).unwrap();
            assert!(svg.contains("<svg"));
            format!("{}: drawn", dir.display())
        },
        &[],
    );
}

#[test]
fn idx_labels_with_one_stray_255() {
    bounded(
        "idx_labels_with_one_stray_255",
        |dir| {
            let root = dir.join("digits");
            let mut ds = synthetic::random_like_cifar(30, 10, 5);
            // One channel, labels 0..9 everywhere, then one stray byte.
            ds.channels = 1;
            for split in [&mut ds.train, &mut ds.test] {
                split.images.truncate(split.len() * 32 * 32);
                for (i, l) in split.labels.iter_mut().enumerate() {
                    *l = (i % 10) as u8;
                }
            }
            ds.train.labels[17] = 255;
            writers::write_idx(&ds, &root, false).unwrap();
            root
        },
        data_error,
        &[
            "train-labels-idx1-ubyte",
            "label 255 of record 17",
            "10 classes",
        ],
    );
}

#[test]
fn image_folder_resized_past_the_total_cap() {
    bounded(
        "image_folder_resized_past_the_total_cap",
        |dir| {
            let root = dir.join("small");
            tiny_image_folder(&root);
            root
        },
        // Two images at 16384x16384x3 would be 1.5 GiB.
        |root| {
            data::read(root, Some((16_384, 16_384)))
                .expect_err("the crafted input was accepted")
                .to_string()
        },
        &[
            "2 images of 16384x16384x3",
            "more than the 1073741824 bytes",
        ],
    );
}
