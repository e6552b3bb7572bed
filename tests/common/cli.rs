//! Running the binary as a user does, for the tests that drive the command line.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs `cifar-wgpu args…` with a cache and a Keras home of this test binary's own, so no test reads
/// a user's data or another test's.
pub fn cli(args: &[&str]) -> Output {
    let own = |what: &str| {
        std::env::temp_dir().join(format!(
            "cifar-wgpu-{}-test-{what}",
            env!("CARGO_CRATE_NAME")
        ))
    };
    Command::new(env!("CARGO_BIN_EXE_cifar-wgpu"))
        .args(args)
        .env("CIFAR_WGPU_CACHE", own("cache"))
        .env("KERAS_HOME", own("no-keras"))
        .output()
        .expect("the binary runs")
}

/// `cifar-wgpu train --data DATA --out OUT` with `extra` flags.
pub fn train(data: impl AsRef<Path>, out: &Path, extra: &[&str]) -> Output {
    let data = data.as_ref().to_str().unwrap();
    let mut args = vec!["train", "--data", data, "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    cli(&args)
}

/// Its stdout then stderr.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A success: its text (stdout then stderr), which the assertion shows otherwise.
pub fn succeeded(o: &Output) -> String {
    let t = text(o);
    assert!(o.status.success(), "{t}");
    t
}

/// A failure: non-zero exit, no panic, a message naming each of `must_mention`.
pub fn assert_clean_failure(o: &Output, must_mention: &[&str]) {
    let t = text(o);
    assert!(!o.status.success(), "should fail:\n{t}");
    assert!(!t.contains("panicked"), "panicked:\n{t}");
    for m in must_mention {
        assert!(t.contains(m), "message should mention '{m}':\n{t}");
    }
}
