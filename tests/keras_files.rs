//! Our Keras files: save → load gives the same model, h5py reads them as Keras' own, and bad files
//! get clear errors (no panics).
//!
//! Two checks run external Python and skip loudly without it:
//! - `h5py_reads_our_files`: any `python3` with h5py (`apt-get install python3-h5py`; Debian's
//!   `/usr/bin/python3` is tried as well as the one on PATH);
//! - `real_keras_opens_our_files`: only when `CIFAR_WGPU_KERAS_PYTHON` names a Python with Keras 3
//!   (e.g. a venv from `pip install keras "jax[cpu]"`, as `assets/keras/make_golden.py` says);
//! - `real_keras2_loads_our_legacy_weights`: only when `CIFAR_WGPU_KERAS2_PYTHON` names a Python with
//!   TensorFlow 2.15 or older, i.e. Keras 2 (e.g. a Python 3.11 venv from `pip install tensorflow-cpu==2.15.1`).

use std::path::{Path, PathBuf};
use std::process::Command;

use cifar_wgpu::keras::{self, KerasError, SavedModel};
use cifar_wgpu::model::{Sequential, reference};

fn small(classes: usize, seed: u64) -> SavedModel {
    let model = Sequential::notebook([6, 6, 2], classes);
    let mut params = model.init_params(seed).unwrap();
    // Non-zero biases, so a swapped kernel and bias cannot pass.
    for t in model.param_tensors().unwrap() {
        if t.shape.len() == 1 {
            for (i, p) in params[t.offset..t.offset + t.len].iter_mut().enumerate() {
                *p = 0.01 * (i as f32 + 1.0);
            }
        }
    }
    SavedModel {
        class_names: (0..classes).map(|i| format!("kind {i}")).collect(),
        model,
        params,
    }
}

fn logits(saved: &SavedModel) -> Vec<f64> {
    let [h, w, c] = saved.model.input_shape;
    let x: Vec<f64> = (0..2 * h * w * c).map(|i| (i % 7) as f64 / 7.0).collect();
    let params: Vec<f64> = saved.params.iter().map(|&p| p as f64).collect();
    reference::forward_backward(&saved.model, &params, &x, &[0, 0], 2, 0, 0, false).logits
}

#[test]
fn save_then_load_keeps_every_weight_and_prediction() {
    let dir = tempfile::tempdir().unwrap();
    let m = small(3, 7);
    keras::save_keras_files(dir.path(), &m).unwrap();
    let d = dir.path();
    for (what, loaded) in [
        ("folder (model.keras)", keras::load(d)),
        ("model.keras", keras::load(&d.join(keras::ARCHIVE_FILE))),
        (
            "json + legacy h5",
            keras::load(&d.join(keras::ARCHITECTURE_FILE)),
        ),
        (
            "legacy h5 + json next to it",
            keras::load(&d.join(keras::LEGACY_WEIGHTS_FILE)),
        ),
        (
            "json + model.weights.h5",
            keras::load_pair(
                &d.join(keras::ARCHITECTURE_FILE),
                &d.join(keras::WEIGHTS_FILE),
            ),
        ),
    ] {
        let loaded = loaded.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(loaded, m, "{what}");
        assert_eq!(logits(&loaded), logits(&m), "{what}");
        println!("{what}: identical model, weights, class names and logits");
    }
    // No temporary files left behind.
    let mut names: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "cifar10_architecture.json",
            "cifar10_weights.h5",
            "model.keras",
            "model.weights.h5"
        ]
    );
}

#[test]
fn notebook_sized_model_round_trips() {
    // 4.2 million weights: the size `train` saves.
    let model = Sequential::notebook([32, 32, 3], 10);
    let params = model.init_params(1).unwrap();
    let m = SavedModel {
        class_names: keras::default_class_names(10),
        model,
        params,
    };
    let dir = tempfile::tempdir().unwrap();
    let t = std::time::Instant::now();
    keras::save_keras_files(dir.path(), &m).unwrap();
    let saved = t.elapsed();
    let t = std::time::Instant::now();
    for p in [
        dir.path().to_path_buf(),
        dir.path().join(keras::ARCHITECTURE_FILE),
    ] {
        assert_eq!(keras::load(&p).unwrap(), m, "{}", p.display());
    }
    println!(
        "notebook model: saved in {saved:?}, loaded twice in {:?}",
        t.elapsed()
    );
}

#[test]
fn ten_classes_without_names_are_cifar10s() {
    assert_eq!(keras::default_class_names(10)[0], "airplane");
    assert_eq!(keras::default_class_names(10)[9], "truck");
    assert_eq!(
        keras::default_class_names(3),
        ["class0", "class1", "class2"]
    );
}

#[test]
fn keras_paths_are_told_from_ours() {
    let dir = tempfile::tempdir().unwrap();
    keras::save_keras_files(dir.path(), &small(3, 1)).unwrap();
    assert!(keras::is_keras_path(dir.path()));
    assert!(keras::is_keras_path(Path::new("x/model.keras")));
    assert!(keras::is_keras_path(Path::new("x/cifar10_weights.h5")));
    assert!(!keras::is_keras_path(Path::new("x/model.json")));
    small(3, 1).save(dir.path()).unwrap(); // our own model.json + weights.bin win
    assert!(!keras::is_keras_path(dir.path()));
}

/// A Python that can `import h5py`, if any.
fn python_with(module: &str, candidates: &[String]) -> Option<String> {
    candidates.iter().find_map(|p| {
        let ok = Command::new(p)
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then(|| p.clone())
    })
}

fn run_python(python: &str, script: &str, dir: &Path) {
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(dir)
        .env(
            "KERAS_BACKEND",
            std::env::var("KERAS_BACKEND").unwrap_or("jax".into()),
        )
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "{python} failed:\n{text}");
}

const H5PY_CHECK: &str = r#"
import sys, h5py, numpy as np
d = sys.argv[1]
names = ["conv2d", "activation", "max_pooling2d", "dropout", "flatten", "dense",
         "activation_1", "dropout_1", "dense_1", "activation_2"]
shapes = {"conv2d": [(3, 3, 2, 32), (32,)], "dense": [(288, 512), (512,)], "dense_1": [(512, 3), (3,)]}
with h5py.File(d + "/cifar10_weights.h5", "r") as f:
    ln = f.attrs["layer_names"]
    assert ln.dtype.kind == "S", ("layer_names must be fixed-length bytes", ln.dtype)
    assert [n.decode() for n in ln] == names, ln
    for a, want in [("backend", b"tensorflow"), ("keras_version", b"3.15.1")]:
        v = f.attrs[a]
        assert isinstance(v, np.bytes_) and v == want, (a, v, type(v))
    for n in names:
        wn = [w.decode() for w in f[n].attrs["weight_names"]]
        want = [f"{n}/kernel:0", f"{n}/bias:0"] if n in shapes else []
        assert wn == want, (n, wn)
        for w, s in zip(wn, shapes.get(n, [])):
            ds = f[n][w]
            assert ds.shape == s and ds.dtype == np.float32, (n, w, ds.shape, ds.dtype)
    print("h5py: cifar10_weights.h5 has Keras' legacy layout, names, shapes and attributes")
with h5py.File(d + "/model.weights.h5", "r") as f:
    assert sorted(f["layers"].keys()) == sorted(names), list(f["layers"].keys())
    for n, ss in shapes.items():
        for i, s in enumerate(ss):
            ds = f[f"layers/{n}/vars/{i}"]
            assert ds.shape == s and ds.dtype == np.float32, (n, i, ds.shape)
    print("h5py: model.weights.h5 has Keras 3's layout and shapes")
"#;

#[test]
fn h5py_reads_our_files() {
    let candidates = ["python3".to_string(), "/usr/bin/python3".to_string()];
    let Some(python) = python_with("h5py", &candidates) else {
        eprintln!(
            "\n*** SKIPPED h5py_reads_our_files: no python3 with h5py (tried {candidates:?}); \
             install python3-h5py ***\n"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    keras::save_keras_files(dir.path(), &small(3, 3)).unwrap();
    run_python(&python, H5PY_CHECK, dir.path());
}

const KERAS_CHECK: &str = r#"
import sys, json, numpy as np, keras
d = sys.argv[1]
expected = np.load(d + "/expected.npz")
m = keras.models.model_from_json(open(d + "/cifar10_architecture.json").read())
m.load_weights(d + "/cifar10_weights.h5")
for i, w in enumerate(m.weights):
    assert np.array_equal(np.asarray(w), expected[f"w{i}"]), (i, w.path)
print("keras", keras.__version__, ": model_from_json + load_weights(cifar10_weights.h5): every weight equal")
m2 = keras.models.model_from_json(open(d + "/cifar10_architecture.json").read())
m2.load_weights(d + "/model.weights.h5")
for i, w in enumerate(m2.weights):
    assert np.array_equal(np.asarray(w), expected[f"w{i}"]), (i, w.path)
print("keras: load_weights(model.weights.h5): every weight equal")
m3 = keras.models.load_model(d + "/model.keras")
for i, w in enumerate(m3.weights):
    assert np.array_equal(np.asarray(w), expected[f"w{i}"]), (i, w.path)
x = expected["x"]
p = m3.predict(x, verbose=0)
assert np.allclose(p, expected["probs"], atol=1e-5), (p, expected["probs"])
print("keras: load_model(model.keras): every weight equal, predictions equal ours within 1e-5")
"#;

#[test]
fn real_keras_opens_our_files() {
    let Ok(python) = std::env::var("CIFAR_WGPU_KERAS_PYTHON") else {
        eprintln!(
            "\n*** SKIPPED real_keras_opens_our_files: set CIFAR_WGPU_KERAS_PYTHON to a Python \
             with Keras 3 to run it ***\n"
        );
        return;
    };
    let dir = saved_with_expected();
    run_python(&python, KERAS_CHECK, dir.path());
}

/// Keras 2 reads Keras 3's JSON only after a translation (its `InputLayer` knows no `batch_shape`, its
/// layers no `DTypePolicy` objects or `quantization_config`): Keras 2 users rebuild the notebook's model
/// in code, as the notebook does, and load `cifar10_weights.h5`. The translation here only rebuilds the
/// layers; the weights file is what is checked.
const KERAS2_CHECK: &str = r#"
import sys, json, numpy as np, tensorflow as tf, keras
assert keras.__version__.startswith("2."), "not Keras 2: " + keras.__version__
d = sys.argv[1]
def keras2(o):
    if isinstance(o, dict):
        if o.get("class_name") == "DTypePolicy":
            return o["config"]["name"]
        skip = ("optional", "input_axes", "output_axes", "quantization_config")
        o = {k: keras2(v) for k, v in o.items() if k not in skip}
        if "batch_shape" in o:
            o["batch_input_shape"] = o.pop("batch_shape")
        return o
    if isinstance(o, list):
        return [keras2(v) for v in o]
    return o
m = tf.keras.models.model_from_json(json.dumps(keras2(json.load(open(d + "/cifar10_architecture.json")))))
m.load_weights(d + "/cifar10_weights.h5")
expected = np.load(d + "/expected.npz")
for i, w in enumerate(m.get_weights()):
    assert np.array_equal(w, expected[f"w{i}"]), i
p = m.predict(expected["x"], verbose=0)
assert np.allclose(p, expected["probs"], atol=1e-5), (p, expected["probs"])
print("keras", keras.__version__, "(tensorflow", tf.__version__ + "): load_weights(cifar10_weights.h5): every weight equal, predictions within 1e-5")
"#;

#[test]
fn real_keras2_loads_our_legacy_weights() {
    let Ok(python) = std::env::var("CIFAR_WGPU_KERAS2_PYTHON") else {
        eprintln!(
            "\n*** SKIPPED real_keras2_loads_our_legacy_weights: set CIFAR_WGPU_KERAS2_PYTHON to a \
             Python with TensorFlow 2.15 or older (Keras 2) to run it ***\n"
        );
        return;
    };
    let dir = saved_with_expected();
    run_python(&python, KERAS2_CHECK, dir.path());
}

/// A small model's Keras files, with `expected.npz` beside them: its weights in Keras' order, an input
/// batch and our probabilities for it.
fn saved_with_expected() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let m = small(3, 5);
    keras::save_keras_files(dir.path(), &m).unwrap();
    // The expected weights, input and probabilities, as .npy files in an .npz (a plain zip).
    let mut arrays: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    for (i, t) in m.model.param_tensors().unwrap().iter().enumerate() {
        arrays.push((
            format!("w{i}"),
            t.shape.clone(),
            m.params[t.offset..t.offset + t.len].to_vec(),
        ));
    }
    let [h, w, c] = m.model.input_shape;
    let x: Vec<f64> = (0..2 * h * w * c).map(|i| (i % 7) as f64 / 7.0).collect();
    arrays.push((
        "x".into(),
        vec![2, h, w, c],
        x.iter().map(|&v| v as f32).collect(),
    ));
    let probs: Vec<f32> = logits(&m)
        .chunks(3)
        .flat_map(|l| {
            let max = l.iter().cloned().fold(f64::MIN, f64::max);
            let sum: f64 = l.iter().map(|v| (v - max).exp()).sum();
            l.iter()
                .map(move |v| ((v - max).exp() / sum) as f32)
                .collect::<Vec<_>>()
        })
        .collect();
    arrays.push(("probs".into(), vec![2, 3], probs));
    write_npz(&dir.path().join("expected.npz"), &arrays);
    dir
}

fn write_npz(path: &PathBuf, arrays: &[(String, Vec<usize>, Vec<f32>)]) {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, shape, values) in arrays {
        let dims: Vec<String> = shape.iter().map(|d| format!("{d},")).collect();
        let mut header = format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}), }}",
            dims.join(" ")
        );
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        for v in values {
            bytes.extend(v.to_le_bytes());
        }
        zip.start_file(
            format!("{name}.npy"),
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        zip.write_all(&bytes).unwrap();
    }
    zip.finish().unwrap();
}

// ---- bad files: each a clear error naming the file, never a panic ----

fn saved_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    keras::save_keras_files(dir.path(), &small(3, 9)).unwrap();
    dir
}

#[test]
fn truncated_hdf5_is_a_clear_error() {
    let dir = saved_dir();
    for name in [keras::LEGACY_WEIGHTS_FILE, keras::WEIGHTS_FILE] {
        let p = dir.path().join(name);
        let bytes = std::fs::read(&p).unwrap();
        // About 200 cuts, landing in the superblock, object headers, heaps, data and the last byte.
        let step = bytes.len() / 200 + 1;
        let cuts = (0..bytes.len()).step_by(step).chain([bytes.len() - 1]);
        for (i, keep) in cuts.enumerate() {
            std::fs::write(&p, &bytes[..keep]).unwrap();
            let e = match keras::load_pair(&dir.path().join(keras::ARCHITECTURE_FILE), &p) {
                Ok(_) => panic!("{name} cut to {keep} of {} bytes loaded", bytes.len()),
                Err(e) => e.to_string(),
            };
            assert!(e.contains(name), "{e}");
            if i % 40 == 0 {
                println!("{name} cut to {keep} bytes: {e}");
            }
        }
        std::fs::write(&p, &bytes).unwrap();
    }
}

#[test]
fn unknown_layer_in_json_is_named_with_what_is_supported() {
    let dir = saved_dir();
    let p = dir.path().join(keras::ARCHITECTURE_FILE);
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(
        &p,
        text.replacen(
            "\"class_name\":\"Dropout\"",
            "\"class_name\":\"SpatialDropout2D\"",
            1,
        ),
    )
    .unwrap();
    let e = keras::load(&p).unwrap_err();
    assert!(matches!(e, KerasError::Unsupported { .. }), "{e}");
    let e = e.to_string();
    assert!(
        e.contains("SpatialDropout2D") && e.contains("'dropout'") && e.contains("Supported:"),
        "{e}"
    );
    println!("{e}");
}

#[test]
fn unsupported_settings_are_named() {
    let m = Sequential::notebook([6, 6, 2], 3);
    let text = keras::model_to_json(&m).unwrap();
    for (from, to, word) in [
        ("\"groups\":1", "\"groups\":2", "groups"),
        ("\"activation\":\"relu\"", "\"activation\":\"selu\"", "selu"),
        (
            "\"data_format\":\"channels_last\"",
            "\"data_format\":\"channels_first\"",
            "data_format",
        ),
        (
            "\"dilation_rate\":[1,1]",
            "\"dilation_rate\":[2,2]",
            "dilation_rate",
        ),
        (
            "\"kernel_regularizer\":null",
            "\"kernel_regularizer\":{\"class_name\":\"L2\"}",
            "kernel_regularizer",
        ),
        (
            "\"name\":\"float32\"",
            "\"name\":\"mixed_float16\"",
            "dtype",
        ),
        (
            "\"class_name\":\"Sequential\"",
            "\"class_name\":\"Functional\"",
            "Functional",
        ),
    ] {
        assert!(text.contains(from), "{from}");
        let e = keras::model_from_json(&text.replace(from, to))
            .unwrap_err()
            .to_string();
        assert!(e.contains(word) && e.contains("Supported:"), "{to}: {e}");
        println!("{to}: {}", e.lines().next().unwrap());
    }
    let e = keras::model_from_json("{\"class_name\": ")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a Keras model JSON"), "{e}");
}

#[test]
fn mismatched_shapes_are_a_clear_error() {
    // Weights of a model with 4 classes, architecture with 3.
    let dir = tempfile::tempdir().unwrap();
    keras::save_keras_files(dir.path(), &small(4, 1)).unwrap();
    let other = tempfile::tempdir().unwrap();
    keras::save_keras_files(other.path(), &small(3, 1)).unwrap();
    let json = other.path().join(keras::ARCHITECTURE_FILE);
    for name in [keras::LEGACY_WEIGHTS_FILE, keras::WEIGHTS_FILE] {
        let e = keras::load_pair(&json, &dir.path().join(name)).unwrap_err();
        assert!(matches!(e, KerasError::Mismatch { .. }), "{e}");
        let e = e.to_string();
        assert!(
            e.contains("dense_1") && e.contains("[512, 4]") && e.contains("[512, 3]"),
            "{e}"
        );
        println!("{name}: {e}");
    }
}

#[test]
fn missing_weight_is_a_clear_error() {
    use hdf5_pure::{AttrValue, FileBuilder};
    let dir = tempfile::tempdir().unwrap();
    let m = small(3, 2);
    keras::save_keras_files(dir.path(), &m).unwrap();
    let json = dir.path().join(keras::ARCHITECTURE_FILE);
    // Keras 3 layout without dense_1's bias.
    let mut b = FileBuilder::new();
    let mut layers = b.create_group("layers");
    for name in ["conv2d", "dense", "dense_1"] {
        let mut g = layers.create_group(name);
        let mut vars = g.create_group("vars");
        for (i, t) in m
            .model
            .param_tensors()
            .unwrap()
            .iter()
            .filter(|t| t.name.starts_with(&format!("{name}/")) && t.name != "dense_1/bias")
            .enumerate()
        {
            let shape: Vec<u64> = t.shape.iter().map(|&d| d as u64).collect();
            vars.create_dataset(&i.to_string())
                .with_f32_data(&m.params[t.offset..t.offset + t.len])
                .with_shape(&shape);
        }
        g.add_group(vars.finish());
        layers.add_group(g.finish());
    }
    b.add_group(layers.finish());
    let p = dir.path().join("odd.weights.h5");
    std::fs::write(&p, b.finish().unwrap()).unwrap();
    let e = keras::load_pair(&json, &p).unwrap_err();
    assert!(matches!(e, KerasError::Mismatch { .. }), "{e}");
    let e = e.to_string();
    assert!(
        e.contains("odd.weights.h5") && e.contains("'dense_1' needs 2"),
        "{e}"
    );
    println!("{e}");

    // Legacy layout naming a dataset that is not there.
    let mut b = FileBuilder::new();
    let names: Vec<String> = m.model.layers.iter().map(|l| l.name.clone()).collect();
    b.set_attr("layer_names", AttrValue::AsciiStringArray(names.clone()));
    for l in &names {
        let mut g = b.create_group(l);
        if l.starts_with("conv2d") || l.starts_with("dense") {
            g.set_attr(
                "weight_names",
                AttrValue::AsciiStringArray(vec![format!("{l}/kernel:0"), format!("{l}/bias:0")]),
            );
        }
        b.add_group(g.finish());
    }
    let p = dir.path().join("empty_weights.h5");
    std::fs::write(&p, b.finish().unwrap()).unwrap();
    let e = keras::load_pair(&json, &p).unwrap_err();
    assert!(matches!(e, KerasError::Mismatch { .. }), "{e}");
    let e = e.to_string();
    assert!(
        e.contains("conv2d/kernel:0") && e.contains("missing"),
        "{e}"
    );
    println!("{e}");
}

#[test]
fn not_keras_files_are_clear_errors() {
    let dir = saved_dir();
    let d = dir.path();
    std::fs::write(d.join("bad.keras"), b"PK\x03\x04 not really").unwrap();
    let e = keras::load(&d.join("bad.keras")).unwrap_err().to_string();
    assert!(e.contains("bad.keras") && e.contains("zip"), "{e}");

    // A zip without config.json.
    {
        use std::io::Write;
        let mut z = zip::ZipWriter::new(std::fs::File::create(d.join("empty.keras")).unwrap());
        z.start_file("metadata.json", zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(b"{}").unwrap();
        z.finish().unwrap();
    }
    let e = keras::load(&d.join("empty.keras")).unwrap_err().to_string();
    assert!(e.contains("config.json"), "{e}");

    // A .keras archive cut short.
    let whole = std::fs::read(d.join(keras::ARCHIVE_FILE)).unwrap();
    std::fs::write(d.join("cut.keras"), &whole[..whole.len() * 2 / 3]).unwrap();
    let e = keras::load(&d.join("cut.keras")).unwrap_err().to_string();
    assert!(e.contains("cut.keras"), "{e}");
    println!("{e}");

    std::fs::write(d.join("text.h5"), b"hello").unwrap();
    let e = keras::load_pair(&d.join(keras::ARCHITECTURE_FILE), &d.join("text.h5"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("text.h5") && e.contains("not an HDF5 file"),
        "{e}"
    );

    let e = keras::load(&d.join("nothing.keras"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("nothing.keras"), "{e}");

    let empty = tempfile::tempdir().unwrap();
    let e = keras::load(empty.path()).unwrap_err().to_string();
    assert!(e.contains("no Keras model here"), "{e}");

    // The architecture alone, no weights anywhere next to it.
    let lone = tempfile::tempdir().unwrap();
    std::fs::copy(
        d.join(keras::ARCHITECTURE_FILE),
        lone.path().join("net.json"),
    )
    .unwrap();
    let e = keras::load(&lone.path().join("net.json"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no weights file"), "{e}");
}

// ---- bounded reading (issue 11) ----

#[test]
fn float16_weights_are_named_not_dumped() {
    let dir = saved_dir();
    let f16 = hdf5_pure::Datatype::FloatingPoint {
        size: 2,
        byte_order: hdf5_pure::DatatypeByteOrder::LittleEndian,
        layout: hdf5_pure::FloatingPointLayout {
            bit_offset: 0,
            bit_precision: 16,
            exponent_location: 10,
            exponent_size: 5,
            mantissa_location: 0,
            mantissa_size: 10,
            exponent_bias: 15,
        },
    };
    // Keras 3's layout with the first kernel, [3, 3, 2, 32], stored as float16.
    let mut b = hdf5_pure::FileBuilder::new();
    let mut layers = b.create_group("layers");
    let mut conv = layers.create_group("conv2d");
    let mut vars = conv.create_group("vars");
    vars.create_dataset("0")
        .with_raw_data(f16, vec![0u8; 576 * 2], 576)
        .with_shape(&[3, 3, 2, 32]);
    vars.create_dataset("1").with_f32_data(&[0.0; 32]);
    conv.add_group(vars.finish());
    layers.add_group(conv.finish());
    b.add_group(layers.finish());
    let weights = dir.path().join("half.weights.h5");
    std::fs::write(&weights, b.finish().unwrap()).unwrap();
    let e = keras::load_pair(&dir.path().join(keras::ARCHITECTURE_FILE), &weights)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("half.weights.h5")
            && e.contains("layers/conv2d/vars/0' holds f16")
            && !e.contains("FloatingPoint"),
        "{e}"
    );
    println!("{e}");
}

#[test]
fn oversized_weights_file_is_refused_before_reading() {
    let dir = saved_dir();
    let p = dir.path().join("huge.h5");
    // A sparse file: 600 MB on paper, nothing on disk.
    std::fs::File::create(&p)
        .unwrap()
        .set_len(keras::MAX_WEIGHTS_FILE + 1)
        .unwrap();
    let e = keras::load_pair(&dir.path().join(keras::ARCHITECTURE_FILE), &p)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("huge.h5") && e.contains("read up to 536870912 bytes"),
        "{e}"
    );
}
