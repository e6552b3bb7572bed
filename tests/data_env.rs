//! The cache folder's precedence: `--cache-dir`, then `$CIFAR_WGPU_CACHE`, then the user's cache
//! folder. Alone in its test binary because it sets an environment variable.

use std::path::PathBuf;

use cifar_wgpu::data::{CACHE_ENV, DataOptions, cache_dir};

#[test]
fn cache_dir_precedence() {
    let plain = DataOptions {
        keras_datasets: None,
        ..DataOptions::default()
    };
    // SAFETY: this is the only test in this binary, so no other thread reads the environment.
    unsafe { std::env::remove_var(CACHE_ENV) };
    let default = cache_dir(&plain);
    assert!(default.ends_with("cifar-wgpu"), "{}", default.display());
    if let Some(base) = dirs::cache_dir() {
        assert_eq!(default, base.join("cifar-wgpu"));
    }
    // SAFETY: as above.
    unsafe { std::env::set_var(CACHE_ENV, "/tmp/from-env") };
    assert_eq!(cache_dir(&plain), PathBuf::from("/tmp/from-env"));
    let explicit = DataOptions {
        cache_dir: Some("/tmp/from-flag".into()),
        ..plain.clone()
    };
    assert_eq!(cache_dir(&explicit), PathBuf::from("/tmp/from-flag"));
    // SAFETY: as above.
    unsafe { std::env::set_var(CACHE_ENV, "") };
    assert_eq!(cache_dir(&plain), default, "an empty variable is ignored");
}
