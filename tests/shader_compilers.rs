//! Every shader and every pipeline we build, through the compilers of the platforms we cannot run here:
//! - Tint, the WGSL compiler Chrome ships, through Dawn's null backend (`tests/tint/`, Node);
//! - naga's translations that wgpu makes on each backend: MSL (Metal), HLSL for DXC (shader model
//!   6.0) and FXC (5.1) (DX12), GLSL ES 3.1 (GL) and SPIR-V (Vulkan), each pipeline's override
//!   constants applied first; the SPIR-V must pass `spirv-val` and the GLSL `glslangValidator`.
//!
//! The pipelines are the ones training and evaluation really build: the every-layer model and the
//! notebook's model at batch 128, with every optimizer, in every kernel flavour, collected from the
//! pipeline cache of a device per flavour. Metal's and Microsoft's own compilers do not run on Linux:
//! MSL and HLSL are translated and checked by naga only.

#[path = "common/gpu.rs"]
mod common_gpu;
use common_gpu::build_programs;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use cifar_wgpu::gpu::{Gpu, GpuOptions, Shader, Tiling};
use cifar_wgpu::kernels::all_shaders;

/// Shaders that call subgroup built-ins: they need Features::SUBGROUP, and the WGSL spec (Tint) wants
/// `enable subgroups;`, which naga 30 does not accept yet, so it is added for Tint alone.
const NEEDS_SUBGROUPS: &[&str] = &["matmul_subgroup.wgsl"];

struct Pipeline {
    shader: &'static Shader,
    entry: &'static str,
    constants: Vec<(&'static str, f64)>,
}

fn shader(name: &str) -> &'static Shader {
    all_shaders()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no shader named {name}"))
}

/// Builds (without running) every program of training and evaluation on a device of each flavour.
fn pipelines() -> &'static [Pipeline] {
    static PIPELINES: OnceLock<Vec<Pipeline>> = OnceLock::new();
    PIPELINES.get_or_init(|| {
        let mut all = Vec::new();
        for (tiling, subgroups) in [
            (Tiling::Registers, false),
            (Tiling::Registers, true),
            (Tiling::Shared, false),
        ] {
            let g = Gpu::new(&GpuOptions {
                tiling: Some(tiling),
                matmul_subgroups: Some(subgroups),
                ..GpuOptions::default()
            })
            .expect("a device of each kernel flavour on the test adapter (lavapipe has them all)");
            build_programs(&g);
            for c in g.kernels.compiled() {
                let p = Pipeline {
                    shader: shader(c.shader),
                    entry: c.entry,
                    constants: c.constants,
                };
                let seen = all.iter().any(|q: &Pipeline| {
                    q.shader.name == p.shader.name
                        && q.entry == p.entry
                        && q.constants == p.constants
                });
                if !seen {
                    all.push(p);
                }
            }
        }
        all
    })
}

#[test]
fn the_pipelines_cover_every_shader() {
    let used: Vec<&str> = pipelines().iter().map(|p| p.shader.name).collect();
    for s in all_shaders() {
        assert!(
            used.contains(&s.name),
            "{}: no training or evaluation pipeline uses it (dead, or missing from build_programs)",
            s.name
        );
    }
    println!("{} pipelines", pipelines().len());
}

#[test]
fn tint_accepts_every_shader_and_pipeline() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tint");
    assert!(
        dir.join("node_modules/webgpu").is_dir(),
        "Dawn's node package is not installed: run `npm ci --prefix tests/tint` (scripts/test.sh does)"
    );
    let shaders: Vec<_> = all_shaders()
        .into_iter()
        .map(|s| {
            let subgroups = NEEDS_SUBGROUPS.contains(&s.name);
            let source = if subgroups {
                format!("enable subgroups;\n{}", s.wgsl())
            } else {
                s.wgsl()
            };
            let features: &[&str] = if subgroups { &["subgroups"] } else { &[] };
            serde_json::json!({"name": s.name, "source": source, "features": features})
        })
        .collect();
    let programs: Vec<_> = pipelines()
        .iter()
        .map(|p| {
            let constants: serde_json::Map<_, _> = p
                .constants
                .iter()
                .map(|&(k, v)| (k.to_string(), serde_json::json!(v)))
                .collect();
            serde_json::json!({"shader": p.shader.name, "entry": p.entry, "constants": constants})
        })
        .collect();
    let manifest = serde_json::json!({"shaders": shaders, "pipelines": programs}).to_string();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), manifest).unwrap();
    let out = Command::new("node")
        .arg(dir.join("validate.mjs"))
        .arg(file.path())
        .output()
        .expect("Node.js runs the Tint check: install it (Debian: nodejs npm)");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "Tint refused a shader or pipeline");
    assert!(
        text.contains(&format!(
            "{} passed, 0 failed",
            all_shaders().len() + pipelines().len()
        )),
        "Tint did not check everything"
    );
}

/// naga's IR of a pipeline with its override constants applied, as wgpu hands it to a backend.
fn lowered(p: &Pipeline) -> (naga::Module, naga::valid::ModuleInfo) {
    use naga::valid::{
        Capabilities, ShaderStages, SubgroupOperationSet, ValidationFlags, Validator,
    };
    let module = naga::front::wgsl::parse_str(&p.shader.wgsl())
        .unwrap_or_else(|e| panic!("{}: {}", p.shader.name, e.emit_to_string(&p.shader.wgsl())));
    let info = Validator::new(ValidationFlags::all(), Capabilities::all())
        .subgroup_stages(ShaderStages::COMPUTE)
        .subgroup_operations(SubgroupOperationSet::all())
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}: {e:?}", p.shader.name));
    let constants: naga::back::PipelineConstants = p
        .constants
        .iter()
        .map(|&(k, v)| (k.to_string(), v))
        .collect();
    let (module, info) = naga::back::pipeline_constants::process_overrides(
        &module,
        &info,
        Some((naga::ShaderStage::Compute, p.entry)),
        &constants,
    )
    .unwrap_or_else(|e| panic!("{}: {e:?}", describe(p)));
    (module.into_owned(), info.into_owned())
}

fn describe(p: &Pipeline) -> String {
    let constants: Vec<String> = p
        .constants
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("{} {} ({})", p.shader.name, p.entry, constants.join(", "))
}

/// Runs a validator on `text` written to a file named `file`, failing with its output.
fn validate_with(tool: &str, args: &[&str], dir: &Path, file: &str, bytes: &[u8], what: &str) {
    let path = dir.join(file);
    std::fs::write(&path, bytes).unwrap();
    let out = Command::new(tool)
        .args(args)
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{tool}: {e}; install it (Debian: spirv-tools, glslang-tools; scripts/test.sh does)"
            )
        });
    assert!(
        out.status.success(),
        "{tool} refused {what}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_pipeline_translates_for_metal_dx12_gl_and_vulkan_and_validates() {
    use naga::back::{glsl, hlsl, msl, spv};
    let dir = tempfile::tempdir().unwrap();
    let mut counts = HashMap::new();
    for (i, p) in pipelines().iter().enumerate() {
        let what = describe(p);
        let (module, info) = lowered(p);
        let subgroups = NEEDS_SUBGROUPS.contains(&p.shader.name);
        let entry = (naga::ShaderStage::Compute, p.entry.to_string());

        // Metal: MSL 2.4 (every Apple GPU that runs Metal 3; subgroup ops need 2.1).
        msl::write_string(
            &module,
            &info,
            &msl::Options {
                lang_version: (2, 4),
                ..Default::default()
            },
            &msl::PipelineOptions {
                entry_point: Some(entry.clone()),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("MSL: {what}: {e:?}"));
        *counts.entry("MSL 2.4").or_insert(0) += 1;

        // DX12: DXC takes shader model 6; FXC (5.1) has no wave intrinsics, so wgpu offers no
        // subgroups there and the subgroup kernels are never chosen.
        for model in [hlsl::ShaderModel::V6_0, hlsl::ShaderModel::V5_1] {
            if subgroups && model == hlsl::ShaderModel::V5_1 {
                continue;
            }
            let options = hlsl::Options {
                shader_model: model,
                ..Default::default()
            };
            let pipeline = hlsl::PipelineOptions {
                entry_point: Some(entry.clone()),
            };
            let mut text = String::new();
            hlsl::Writer::new(&mut text, &options, &pipeline)
                .write(&module, &info, None)
                .unwrap_or_else(|e| panic!("HLSL {model:?}: {what}: {e:?}"));
            *counts
                .entry(if model == hlsl::ShaderModel::V6_0 {
                    "HLSL 6.0"
                } else {
                    "HLSL 5.1"
                })
                .or_insert(0) += 1;
        }

        // GL: GLSL ES 3.1 compute. wgpu's GL backend offers no subgroups, so the subgroup kernels
        // are never chosen there.
        if !subgroups {
            let mut text = String::new();
            let options = glsl::Options {
                version: glsl::Version::new_gles(310),
                ..Default::default()
            };
            let pipeline = glsl::PipelineOptions {
                shader_stage: naga::ShaderStage::Compute,
                entry_point: p.entry.to_string(),
                multiview: None,
            };
            glsl::Writer::new(
                &mut text,
                &module,
                &info,
                &options,
                &pipeline,
                naga::proc::BoundsCheckPolicies::default(),
            )
            .and_then(|mut w| w.write())
            .unwrap_or_else(|e| panic!("GLSL ES 3.1: {what}: {e:?}"));
            validate_with(
                "glslangValidator",
                &["-S", "comp"],
                dir.path(),
                &format!("{i}.comp"),
                text.as_bytes(),
                &format!("the GLSL ES 3.1 of {what}"),
            );
            *counts.entry("GLSL ES 3.1").or_insert(0) += 1;
        }

        // Vulkan: SPIR-V 1.3 (subgroup operations need it).
        let words = spv::write_vec(
            &module,
            &info,
            &spv::Options {
                lang_version: (1, 3),
                ..Default::default()
            },
            Some(&spv::PipelineOptions {
                shader_stage: naga::ShaderStage::Compute,
                entry_point: p.entry.to_string(),
            }),
        )
        .unwrap_or_else(|e| panic!("SPIR-V: {what}: {e:?}"));
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        validate_with(
            "spirv-val",
            &["--target-env", "vulkan1.1"],
            dir.path(),
            &format!("{i}.spv"),
            &bytes,
            &format!("the SPIR-V of {what}"),
        );
        *counts.entry("SPIR-V 1.3").or_insert(0) += 1;
    }
    println!("{} pipelines translated: {counts:?}", pipelines().len());
    assert_eq!(counts["MSL 2.4"], pipelines().len());
}
