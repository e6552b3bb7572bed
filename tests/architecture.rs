//! Invariants of the code's layout, checked on the sources themselves (no GPU).

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Lines naming the graphics API's crate (a path into it, not `cifar_wgpu::`, or a `use` of it) or
/// calling the device or queue that `Gpu` holds.
fn graphics_api_lines(source: &str) -> Vec<(usize, &str)> {
    // Spelled in pieces so this file does not trip its own check.
    let krate = ["w", "gpu"].concat();
    let path = format!("{krate}::");
    let import = format!("use {krate}");
    let handles = [[".device", "."].concat(), [".queue", "."].concat()];
    source
        .lines()
        .enumerate()
        .filter(|(_, line)| {
            line.contains(&import)
                || handles.iter().any(|h| line.contains(h.as_str()))
                || line.match_indices(&path).any(|(at, _)| {
                    let before = line[..at].chars().next_back();
                    !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                })
        })
        .map(|(i, line)| (i + 1, line))
        .collect()
}

#[test]
fn only_src_gpu_speaks_the_graphics_api() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("tests"), &mut files);
    let gpu_dir = root.join("src").join("gpu");
    let mut offences = Vec::new();
    for file in files.iter().filter(|f| !f.starts_with(&gpu_dir)) {
        let source = std::fs::read_to_string(file).unwrap();
        for (line, text) in graphics_api_lines(&source) {
            let name = file.strip_prefix(root).unwrap().display();
            offences.push(format!("{name}:{line}: {}", text.trim()));
        }
    }
    assert!(
        offences.is_empty(),
        "only src/gpu may name wgpu or call its device and queue; use src/gpu's API instead:\n{}",
        offences.join("\n")
    );
    assert!(files.len() > 50, "found only {} source files", files.len());
}

#[test]
fn the_check_sees_paths_imports_and_device_calls_but_not_the_crate_name() {
    let krate = ["w", "gpu"].concat();
    let bad = format!(
        "let x = {krate}::Features::empty();\nuse {krate}::util;\ngpu{}poll(p);\n",
        [".device", "."].concat()
    );
    assert_eq!(graphics_api_lines(&bad).len(), 3);
    assert!(graphics_api_lines("use cifar_wgpu::gpu::Gpu;").is_empty());
}

/// Lines that branch on a layer's kind: a match arm, `if let` or `matches!` on a `Layer::` variant.
/// Building a `Layer` value is fine anywhere; asking which kind it is belongs to `src/layers/mod.rs`.
fn layer_kind_branches(source: &str) -> Vec<(usize, &str)> {
    let variant = ["Layer", "::"].concat();
    source
        .lines()
        .enumerate()
        .filter(|(_, line)| {
            line.contains(&variant)
                && (line.contains("=>")
                    || line.contains("if let")
                    || line.contains("let Some(")
                    || line.contains("matches!"))
        })
        .map(|(i, line)| (i + 1, line))
        .collect()
}

#[test]
fn only_the_layer_registry_asks_which_kind_a_layer_is() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let registry = root.join("src/layers/mod.rs");
    let offences: Vec<String> = files
        .iter()
        .filter(|f| **f != registry)
        .flat_map(|file| {
            let source = std::fs::read_to_string(file).unwrap();
            let name = file.strip_prefix(root).unwrap().display().to_string();
            layer_kind_branches(&source)
                .into_iter()
                .map(|(line, text)| format!("{name}:{line}: {}", text.trim()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        offences.is_empty(),
        "only src/layers/mod.rs branches on the layer kind; ask the layer through LayerKind:\n{}",
        offences.join("\n")
    );
    let bad = [
        "Layer",
        "::Dense(d) => d.units,\nif let Layer",
        "::Flatten(_) = l {}",
    ]
    .concat();
    assert_eq!(layer_kind_branches(&bad).len(), 2);
}

#[test]
fn the_flow_is_one_way_nothing_below_the_session_calls_up() {
    // main.rs → session → data, train, report, layers, model, keras → kernels → gpu.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let up = ["crate::", "session"].concat();
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let session = root.join("src/session");
    let offences: Vec<String> = files
        .iter()
        .filter(|f| !f.starts_with(&session) && !f.ends_with("main.rs"))
        .flat_map(|file| {
            let source = std::fs::read_to_string(file).unwrap();
            let name = file.strip_prefix(root).unwrap().display().to_string();
            source
                .lines()
                .enumerate()
                .filter(|(_, l)| l.contains(&up) && !l.trim_start().starts_with("//"))
                .map(|(i, l)| format!("{name}:{}: {}", i + 1, l.trim()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        offences.is_empty(),
        "only main.rs uses the session module:\n{}",
        offences.join("\n")
    );
}
