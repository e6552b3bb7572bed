//! The `cifar-wgpu` command as a user runs it: train on a small archive in CIFAR-10's real format,
//! find the files it promises, evaluate the saved model, and get clear errors (never a panic) for bad
//! input.

#[path = "common/cli.rs"]
mod common_cli;
use common_cli::{assert_clean_failure, cli, succeeded, text, train};

#[path = "common/writers.rs"]
mod writers;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cifar_wgpu::data::synthetic;
use cifar_wgpu::model::Sequential;
use cifar_wgpu::model::io::SavedModel;

/// A tiny learnable data set written as CIFAR-10's binary archive (5 training batches + 1 test batch).
fn tiny_cifar(dir: &Path) -> String {
    let ds = synthetic::learnable(250, 60, 32, 32, 3, 10, 3);
    let path = dir.join("cifar-10-binary.tar.gz");
    writers::write_cifar_binary_tar_gz(&ds, &path).unwrap();
    path.to_str().unwrap().to_string()
}

/// [`tiny_cifar`] in `dir`, and the run folder `dir/run` to train it into.
fn tiny_cifar_run(dir: &Path) -> (String, PathBuf) {
    (tiny_cifar(dir), dir.join("run"))
}

#[test]
fn summary_prints_the_notebook_model() {
    let o = cli(&["summary"]);
    let t = succeeded(&o);
    assert!(
        t.contains("conv2d (Conv2D)") && t.contains("activation_2 (Activation)"),
        "{t}"
    );
    assert!(t.contains("Total params: 4,200,842 (16.02 MB)"), "{t}");
}

/// Output into a pipe its reader has closed (`cifar-wgpu summary | head -1`) ends the program
/// quietly, by SIGPIPE as other Unix tools end, not with a panic about a broken pipe.
#[cfg(unix)]
#[test]
fn a_closed_pipe_ends_the_program_quietly() {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::process::ExitStatusExt;
    // A pipe whose read end is closed before the program starts: its first write fails.
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe() writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors were just opened by pipe() and are owned here alone.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    let o = Command::new(env!("CARGO_BIN_EXE_cifar-wgpu"))
        .arg("summary")
        .stdout(write)
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        o.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}: {stderr}",
        o.status
    );
}

#[test]
fn train_saves_everything_then_evaluate_reads_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = tiny_cifar_run(dir.path());
    let out_s = out.to_str().unwrap();
    let o = train(
        &data,
        &out,
        &[
            "--epochs",
            "2",
            "--batch-size",
            "50",
            "--quiet",
            "--seed",
            "5",
        ],
    );
    let t = succeeded(&o);
    for expected in [
        "Epoch 1/2",
        "Epoch 2/2",
        "val_accuracy",
        "val_loss",
        "test: loss",
        "precision",
        "report.html",
    ] {
        assert!(
            t.contains(expected),
            "train output lacks '{expected}':\n{t}"
        );
    }
    for f in [
        "model.json",
        "weights.bin",
        "history.json",
        "history.csv",
        "checkpoint/progress.json",
        "curves.png",
        "curves.svg",
        "confusion.png",
        "per_class.csv",
        "samples.png",
        "report.html",
    ] {
        assert!(out.join(f).is_file(), "{f} was not written");
    }
    let history: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("history.json")).unwrap()).unwrap();
    assert_eq!(history["loss"].as_array().unwrap().len(), 2);
    assert_eq!(history["val_accuracy"].as_array().unwrap().len(), 2);
    let csv = std::fs::read_to_string(out.join("history.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    // Nothing half-written is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    let o = cli(&["evaluate", "--model", out_s, "--data", &data]);
    let t = succeeded(&o);
    assert!(t.contains("test: loss") && t.contains("per class"), "{t}");

    // The report can be rebuilt from the saved model, into another folder.
    let again = dir.path().join("again");
    let o = cli(&[
        "report",
        "--model",
        out_s,
        "--data",
        &data,
        "--out",
        again.to_str().unwrap(),
    ]);
    succeeded(&o);
    let html = std::fs::read_to_string(again.join("report.html")).unwrap();
    assert!(
        html.contains("data:image/png;base64,"),
        "the page embeds its pictures"
    );

    // --log-json: one JSON object per epoch on stdout.
    let out2 = dir.path().join("run2");
    let o = train(
        &data,
        &out2,
        &[
            "--epochs",
            "1",
            "--batch-size",
            "50",
            "--log-json",
            "--optimizer",
            "adam",
        ],
    );
    succeeded(&o);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("a JSON line");
    let epoch: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(epoch["epoch"], 1);
    assert!(epoch["val_accuracy"].as_f64().is_some());
}

#[test]
fn resume_continues_from_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = tiny_cifar_run(dir.path());
    let out_s = out.to_str().unwrap();
    let base = [
        "--data",
        &data,
        "--batch-size",
        "50",
        "--out",
        out_s,
        "--quiet",
    ];
    let o = cli(&[&["train", "--epochs", "1"][..], &base].concat());
    succeeded(&o);
    let ckpt = out.join("checkpoint");
    let o = cli(&[
        &["train", "--epochs", "2", "--resume", ckpt.to_str().unwrap()][..],
        &base,
    ]
    .concat());
    let t = succeeded(&o);
    assert!(
        t.contains("resuming at epoch 2") && t.contains("Epoch 2/2") && !t.contains("Epoch 1/2"),
        "{t}"
    );
}

#[test]
fn bad_input_gets_a_clear_error_and_no_panic() {
    let dir = tempfile::tempdir().unwrap();
    // Unknown flag: clap's usage error.
    let o = cli(&["train", "--no-such-flag"]);
    assert_clean_failure(&o, &["--no-such-flag"]);
    // A data path that does not exist.
    let o = cli(&[
        "train",
        "--data",
        "/nonexistent/cifar.tar.gz",
        "--epochs",
        "1",
    ]);
    assert_clean_failure(&o, &["error:", "/nonexistent/cifar.tar.gz"]);
    // A corrupt archive.
    let bad = dir.path().join("bad.tar.gz");
    std::fs::write(&bad, b"\x1f\x8b\x08\x00 definitely not gzip").unwrap();
    let o = cli(&["train", "--data", bad.to_str().unwrap()]);
    assert_clean_failure(&o, &["error:", "bad.tar.gz"]);
    // A model folder that does not exist, and a malformed one.
    let o = cli(&["evaluate", "--model", "/nonexistent/model"]);
    assert_clean_failure(&o, &["error:", "/nonexistent/model"]);
    let m = dir.path().join("model");
    std::fs::create_dir(&m).unwrap();
    std::fs::write(
        m.join("model.json"),
        b"{\"format\": \"cifar-wgpu-model/1\", \"model\": 7}",
    )
    .unwrap();
    let o = cli(&["evaluate", "--model", m.to_str().unwrap()]);
    assert_clean_failure(&o, &["error:", "model.json"]);
    // Bad numbers.
    let o = cli(&["train", "--epochs", "0"]);
    assert_clean_failure(&o, &["error:", "--epochs"]);
    let o = cli(&[
        "train",
        "--validation-split",
        "1.5",
        "--data",
        &tiny_cifar(dir.path()),
    ]);
    assert_clean_failure(&o, &["error:", "1.5"]);
}

#[test]
fn a_backend_without_adapters_is_a_loud_explained_failure() {
    // This machine has no Metal (Linux) and no DX12: no adapter can be found through them.
    if cfg!(any(
        target_os = "macos",
        target_os = "ios",
        target_os = "windows"
    )) {
        // Explicit: on those systems Metal or DX12 exist, so this check has nothing to test.
        println!("skipped: this platform has Metal or DX12 adapters");
        return;
    }
    let o = cli(&["adapters", "--backend", "metal"]);
    assert_clean_failure(&o, &["no GPU adapter found", "mesa-vulkan-drivers"]);
    let t = succeeded(&cli(&["adapters"]));
    assert!(t.contains("max storage binding"), "{t}");
}

#[test]
fn ctrl_c_writes_a_checkpoint_and_exits_cleanly() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = tiny_cifar_run(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_cifar-wgpu"))
        .args([
            "train",
            "--data",
            &data,
            "--epochs",
            "50",
            "--batch-size",
            "10",
            "--quiet",
        ])
        .args(["--out", out.to_str().unwrap()])
        .env("KERAS_HOME", dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until training is under way, then interrupt as a terminal would.
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("Epoch 2/") {
            break;
        }
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let o = child.wait_with_output().unwrap();
    let t = format!("{seen}{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(130), "{t}");
    assert!(!t.contains("panicked"), "{t}");
    assert!(
        t.contains("interrupted at epoch 2") && t.contains("--resume"),
        "{t}"
    );
    assert!(out.join("checkpoint/progress.json").is_file());
    let progress: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("checkpoint/progress.json")).unwrap())
            .unwrap();
    assert_eq!(progress["progress"]["epoch"], 1, "{progress}");
}

#[test]
fn keras_files_load_back_and_predict_matches_the_cpu_reference() {
    use cifar_wgpu::model::io::SavedModel;
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = tiny_cifar_run(dir.path());
    let out_s = out.to_str().unwrap();
    let o = train(
        &data,
        &out,
        &["--epochs", "1", "--batch-size", "50", "--quiet"],
    );
    succeeded(&o);
    for f in [
        "cifar10_architecture.json",
        "cifar10_weights.h5",
        "model.weights.h5",
        "model.keras",
    ] {
        assert!(out.join(f).is_file(), "{f} was not written");
    }
    // The same model through our files and through each Keras form evaluates identically.
    let accuracy = |model: &str| {
        let o = cli(&["evaluate", "--model", model, "--data", &data]);
        let t = succeeded(&o);
        t.lines()
            .find(|l| l.starts_with("test: loss"))
            .unwrap()
            .split(" (")
            .next()
            .unwrap()
            .to_string()
    };
    let ours = accuracy(out_s);
    assert_eq!(accuracy(out.join("model.keras").to_str().unwrap()), ours);
    assert_eq!(
        accuracy(out.join("cifar10_architecture.json").to_str().unwrap()),
        ours
    );

    // Predict on PNG files of test images equals the CPU reference's argmax on the same pixels.
    let ds = cifar_wgpu::data::read(Path::new(&data), None).unwrap();
    let pics = dir.path().join("pics");
    std::fs::create_dir(&pics).unwrap();
    let n = 6;
    for i in 0..n {
        let img = image::RgbImage::from_raw(32, 32, ds.test.image(i).to_vec()).unwrap();
        img.save(pics.join(format!("img{i}.png"))).unwrap();
    }
    let o = cli(&[
        "predict",
        "--model",
        out_s,
        "--json",
        pics.to_str().unwrap(),
    ]);
    succeeded(&o);
    let got: Vec<usize> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["top"][0]["index"]
                .as_u64()
                .unwrap() as usize
        })
        .collect();
    let saved = SavedModel::load(&out).unwrap();
    let params: Vec<f64> = saved.params.iter().map(|&v| v as f64).collect();
    let x: Vec<f64> = ds.test.images[..n * 3072]
        .iter()
        .map(|&b| (b as f32 / 255.0) as f64)
        .collect();
    let r = cifar_wgpu::model::reference::forward_backward(
        &saved.model,
        &params,
        &x,
        &[0; 6],
        n,
        0,
        0,
        false,
    );
    let want: Vec<usize> = r
        .logits
        .chunks(10)
        .map(|row| (0..10).fold(0, |best, i| if row[i] > row[best] { i } else { best }))
        .collect();
    assert_eq!(got, want);
    // A file that is not an image is a clear error.
    std::fs::write(pics.join("broken.png"), b"not a png").unwrap();
    let o = cli(&["predict", "--model", out_s, pics.to_str().unwrap()]);
    assert_clean_failure(&o, &["broken.png"]);
}

#[test]
fn export_writes_our_files_and_keras_files_from_any_model() {
    use cifar_wgpu::keras;
    use cifar_wgpu::model::io::SavedModel;
    let dir = tempfile::tempdir().unwrap();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/keras/tiny.keras");
    let first = dir.path().join("first");
    let export = |model: &Path, out: &Path| {
        cli(&[
            "export",
            "--model",
            model.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let o = export(&golden, &first);
    succeeded(&o);
    let from_keras = keras::load(&golden).unwrap();
    assert_eq!(SavedModel::load(&first).unwrap().params, from_keras.params);
    // Our export read back through its own Keras archive: the same weights, byte for byte.
    let second = dir.path().join("second");
    let o = export(&first.join("model.keras"), &second);
    succeeded(&o);
    for name in ["weights.bin", "cifar10_weights.h5", "model.weights.h5"] {
        assert_eq!(
            std::fs::read(first.join(name)).unwrap(),
            std::fs::read(second.join(name)).unwrap(),
            "{name} differs after a round trip"
        );
    }
    let o = export(&dir.path().join("missing"), &second);
    assert_clean_failure(&o, &["missing"]);
}

fn cli_env(args: &[&str], env: (&str, &str)) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cifar-wgpu"))
        .args(args)
        .env(env.0, env.1)
        .output()
        .expect("the binary runs")
}

#[test]
fn numeric_flags_are_checked_as_they_are_parsed() {
    let cases: &[(&[&str], &str)] = &[
        (&["train", "--batch-size", "0"], "--batch-size"),
        (&["train", "--epochs", "0"], "--epochs"),
        (&["train", "--lr=-1"], "--lr"),
        (&["train", "--lr", "nan"], "--lr"),
        (&["train", "--lr", "inf"], "--lr"),
        (&["train", "--epsilon", "0"], "--epsilon"),
        (&["train", "--validation-split", "1"], "--validation-split"),
        (&["train", "--validation-split=-0.1"], "--validation-split"),
        (&["train", "--rho", "1.5"], "--rho"),
        (&["train", "--beta1", "1"], "--beta1"),
        (
            &["evaluate", "--model", "m", "--batch-size", "0"],
            "--batch-size",
        ),
        (
            &["report", "--model", "m", "--batch-size", "0"],
            "--batch-size",
        ),
        (
            &["predict", "--model", "m", "x.png", "--batch-size", "0"],
            "--batch-size",
        ),
        (&["profile", "--batch-size", "0"], "--batch-size"),
        (&["profile", "--steps", "0"], "--steps"),
        (&["bench", "--epochs", "0"], "--epochs"),
    ];
    for (args, flag) in cases {
        let o = cli(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}:\n{}", text(&o));
        assert_clean_failure(&o, &["error:", flag]);
    }
}

#[test]
fn wgpu_backend_must_name_an_api_that_is_there() {
    let o = cli_env(
        &["profile", "--steps", "1", "--batch-size", "2"],
        ("WGPU_BACKEND", "foo"),
    );
    assert_clean_failure(&o, &["WGPU_BACKEND=foo", "'foo'"]);
    if cfg!(target_os = "windows") {
        println!("skipped the dx12 half: this platform has DX12");
        return;
    }
    // Named but absent: an error, not a silent fall back to GL.
    let o = cli_env(
        &["profile", "--steps", "1", "--batch-size", "2"],
        ("WGPU_BACKEND", "dx12"),
    );
    assert_clean_failure(&o, &["no GPU adapter found", "WGPU_BACKEND"]);
}

#[test]
fn impossible_batch_sizes_are_refused_before_allocating() {
    let o = cli(&["profile", "--batch-size", "1000000"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_clean_failure(&o, &["a batch of 1000000", "--batch-size", "max_"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = train(tiny_cifar(dir.path()), &out, &["--batch-size", "100000000"]);
    assert_clean_failure(&o, &["a batch of 100000000", "--batch-size", "max_"]);
    assert!(!text(&o).contains("Epoch 1"), "{}", text(&o));
}

#[test]
fn silent_wrong_results_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_cifar(dir.path());
    // An --out that cannot be written (below a regular file), found before the first epoch.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let blocked = file.join("model");
    let o = cli(&["train", "--data", &data, "--out", blocked.to_str().unwrap()]);
    assert_clean_failure(&o, &["--out", "a-file"]);
    assert!(!text(&o).contains("Epoch 1"), "{}", text(&o));

    // A model with NaN weights: predict refuses to print "NaN%".
    let model_dir = dir.path().join("nan-model");
    let model = Sequential::notebook([32, 32, 3], 10);
    let saved = SavedModel {
        params: vec![f32::NAN; model.param_words().unwrap()],
        class_names: (0..10).map(|i| format!("class{i}")).collect(),
        model,
    };
    saved.save(&model_dir).unwrap();
    let png = dir.path().join("cat.png");
    image::RgbImage::new(32, 32).save(&png).unwrap();
    let o = cli(&[
        "predict",
        "--model",
        model_dir.to_str().unwrap(),
        png.to_str().unwrap(),
    ]);
    assert_clean_failure(&o, &["NaN or infinite outputs"]);
    assert!(!text(&o).contains("NaN%"), "{}", text(&o));

    // A checkpoint whose progress.json was edited after it was written (to say batch 0): its
    // manifest no longer vouches for it.
    let run = dir.path().join("run");
    let o = train(
        &data,
        &run,
        &["--epochs", "1", "--batch-size", "50", "--quiet"],
    );
    succeeded(&o);
    let progress = run.join("checkpoint").join("progress.json");
    let json = std::fs::read_to_string(&progress).unwrap();
    std::fs::write(
        &progress,
        json.replace("\"batch_size\": 50", "\"batch_size\": 0"),
    )
    .unwrap();
    let o = train(
        &data,
        &run,
        &[
            "--resume",
            run.join("checkpoint").to_str().unwrap(),
            "--epochs",
            "2",
        ],
    );
    assert_clean_failure(&o, &["progress.json", "manifest.json"]);
}

#[test]
fn train_runs_end_to_end_on_the_gl_backend_and_under_webgpu_limits() {
    // wgpu's GL backend (llvmpipe through EGL on this machine), in a process of its own, so its one EGL
    // context is not shared with other tests' devices; WebGPU's default limits on top, so the run also
    // proves the floor every conformant adapter meets is enough. Tiny IDX images keep it quick.
    let dir = tempfile::tempdir().unwrap();
    let data = writers::learnable_idx(dir.path(), 150, 40);
    let out = dir.path().join("run");
    let o = train(
        &data,
        &out,
        &[
            "--backend",
            "gl",
            "--limits",
            "webgpu",
            "--epochs",
            "1",
            "--batch-size",
            "32",
            "--quiet",
        ],
    );
    let t = succeeded(&o);
    assert!(t.contains("(Gl,"), "not on the GL backend:\n{t}");
    for expected in ["Epoch 1/1", "val_accuracy", "test: loss"] {
        assert!(
            t.contains(expected),
            "train output lacks '{expected}':\n{t}"
        );
    }
    for f in ["model.json", "weights.bin", "history.json", "report.html"] {
        assert!(out.join(f).is_file(), "{f} was not written");
    }
}

/// Spawns `command` in a process group of its own, reads its stdout until a line starting with
/// `line`, then interrupts the group as a terminal's Ctrl-C would (a shell and the binary it runs
/// alike). Returns everything printed, to the end, and the exit code.
#[cfg(unix)]
fn interrupt_at(command: &mut Command, line: &str) -> (String, Option<i32>) {
    use std::io::{BufRead, BufReader, Read};
    use std::os::unix::process::CommandExt;
    let mut child = command
        .process_group(0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    });
    let mut seen = String::new();
    let mut interrupted = false;
    // Read to the end, so that nothing the run prints after the interrupt meets a closed pipe.
    for l in BufReader::new(child.stdout.take().unwrap()).lines() {
        let l = l.unwrap();
        seen.push_str(&l);
        seen.push('\n');
        if !interrupted && l.starts_with(line) {
            let status = Command::new("kill")
                .args(["-INT", "--", &format!("-{}", child.id())])
                .status()
                .unwrap();
            assert!(status.success());
            interrupted = true;
        }
    }
    let code = child.wait().unwrap().code();
    (format!("{seen}{}", errors.join().unwrap()), code)
}

/// The Ctrl-C hint is a command that works as printed, pasted into a shell, even with a space in
/// --out: it continues the interrupted run (its data, epochs and folder), which stops again at the
/// next Ctrl-C with a hint of its own.
#[cfg(unix)]
#[test]
fn the_ctrl_c_hint_resumes_the_run_when_pasted_into_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    let data = writers::learnable_idx(dir.path(), 100, 20);
    let out = dir.path().join("my run");
    let mut first = Command::new(env!("CARGO_BIN_EXE_cifar-wgpu"));
    first
        .args(["train", "--data", data.to_str().unwrap(), "--epochs", "500"])
        .args([
            "--batch-size",
            "10",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ])
        .env("KERAS_HOME", dir.path());
    let (t, code) = interrupt_at(&mut first, "Epoch 2/");
    assert_eq!(code, Some(130), "{t}");
    let hint = t
        .split('`')
        .nth(1)
        .unwrap_or_else(|| panic!("no command in backquotes:\n{t}"));
    assert!(
        hint.contains("'"),
        "the path with a space is not quoted: {hint}"
    );
    // Pasted from another folder, with nothing but the command.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let mut pasted = Command::new("sh");
    pasted
        .args(["-c", hint])
        .current_dir(&elsewhere)
        .env("KERAS_HOME", dir.path());
    // The shell may end by the interrupt itself; the run says how it ended.
    let (t, _) = interrupt_at(&mut pasted, "Epoch 3/");
    assert!(!t.contains("panicked"), "{t}");
    assert!(
        t.contains("resuming at epoch 2") && t.contains("Epoch 3/500"),
        "not the interrupted run:\n{t}"
    );
    assert!(t.contains("interrupted at epoch 3"), "{t}");
    assert!(out.join("checkpoint/manifest.json").is_file());
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "wrote into the working folder"
    );
}
