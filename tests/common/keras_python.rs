//! Our Keras files, written from a golden model, read back by us and, when `CIFAR_WGPU_KERAS_PYTHON`
//! names a Python with Keras 3, opened by Keras itself.

use std::path::Path;

use cifar_wgpu::keras;

/// Loads `model.keras` and the JSON + weights pairs we wrote in `argv[1]` and checks Keras'
/// predictions on `make_golden.py`'s input formula against the golden probabilities (`argv[2]`).
const KERAS_OPENS: &str = r#"
import sys, json, numpy as np, keras
d, golden = sys.argv[1], sys.argv[2]
want = np.array(json.load(open(golden))["probabilities"])
archive = keras.models.load_model(d + "/model.keras")
shape = (2,) + tuple(archive.input_shape[1:])
flat = np.arange(int(np.prod(shape))).reshape(shape)
x = (((5 * flat + 3 * np.arange(2).reshape(2, 1, 1, 1)) % 17) / 16).astype(np.float32)
models = [("model.keras", archive)]
for weights in ["cifar10_weights.h5", "model.weights.h5"]:
    m = keras.models.model_from_json(open(d + "/cifar10_architecture.json").read())
    m.load_weights(d + "/" + weights)
    models.append(("cifar10_architecture.json + " + weights, m))
for what, m in models:
    p = m.predict(x, verbose=0)
    assert np.allclose(p, want, atol=1e-6), (what, p, want)
    print("keras", keras.__version__, what, ": predictions equal Keras' golden ones within 1e-6")
"#;

/// Saves the model of the golden `.keras` file `model` as our Keras files, checks that we read each
/// back equal, then has Keras open them and predict `golden`'s input. Returns false when Keras was
/// not asked (no `CIFAR_WGPU_KERAS_PYTHON`).
pub fn we_and_keras_read_what_we_save(model: &Path, golden: &Path) -> bool {
    let saved = keras::load(model).unwrap();
    let dir = tempfile::tempdir().unwrap();
    keras::save_keras_files(dir.path(), &saved).unwrap();
    for file in [keras::ARCHIVE_FILE, keras::ARCHITECTURE_FILE] {
        let again = keras::load(&dir.path().join(file)).unwrap();
        assert_eq!(again.model, saved.model, "{file}");
        assert_eq!(again.params, saved.params, "{file}");
    }
    let again = keras::load_pair(
        &dir.path().join(keras::ARCHITECTURE_FILE),
        &dir.path().join(keras::WEIGHTS_FILE),
    )
    .unwrap();
    assert_eq!(again.params, saved.params, "{}", keras::WEIGHTS_FILE);
    println!("{}: our Keras files read back equal", model.display());
    let Ok(python) = std::env::var("CIFAR_WGPU_KERAS_PYTHON") else {
        return false;
    };
    let out = std::process::Command::new(&python)
        .arg("-c")
        .arg(KERAS_OPENS)
        .arg(dir.path())
        .arg(golden)
        .env(
            "KERAS_BACKEND",
            std::env::var("KERAS_BACKEND").unwrap_or("jax".into()),
        )
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    println!("{text}");
    assert!(out.status.success(), "{python} failed:\n{text}");
    true
}

/// Says loudly that the Keras half of `test` did not run.
pub fn say_keras_skipped(test: &str) {
    eprintln!(
        "\n*** SKIPPED the Keras half of {test}: set CIFAR_WGPU_KERAS_PYTHON to a Python with \
         Keras 3 to run it ***\n"
    );
}
