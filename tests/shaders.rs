//! Every WGSL file parses and validates with naga, with no adapter, and keeps its contract with the host:
//! a typo in a shader, or a struct or constant changed on one side only, fails here on any machine,
//! before a GPU is involved. `matmul_subgroup.wgsl` is validated with the subgroup capabilities a device
//! with Features::SUBGROUP has; every other file without them.

use cifar_wgpu::gpu::Shader;
use cifar_wgpu::kernels::{Contract, HostStruct, common, contracts};

/// The shader as it is compiled (includes resolved), parsed and validated.
fn parse(shader: &Shader) -> naga::Module {
    let source = shader.wgsl();
    let module = naga::front::wgsl::parse_str(&source)
        .unwrap_or_else(|e| panic!("{}: {}", shader.name, e.emit_to_string(&source)));
    // Subgroup operations in compute shaders, as a device with Features::SUBGROUP allows them. Only the
    // files that use them get the capability, so a subgroup builtin that slips into another file (which
    // must run on adapters without the feature) fails here.
    let subgroups = shader.name == "matmul_subgroup.wgsl";
    let capabilities = if subgroups {
        naga::valid::Capabilities::SUBGROUP
    } else {
        naga::valid::Capabilities::default()
    };
    let mut validator =
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities);
    if subgroups {
        validator
            .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
            .subgroup_operations(naga::valid::SubgroupOperationSet::all());
    }
    validator
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}: {}", shader.name, e.emit_to_string(&source)));
    module
}

#[test]
fn every_shader_validates_with_naga() {
    for shader in cifar_wgpu::kernels::all_shaders() {
        let module = parse(shader);
        println!(
            "{}: valid, {} entry points",
            shader.name,
            module.entry_points.len()
        );
    }
}

/// The WGSL spelling of a struct member's type, for the types the host shares: scalars, and structs
/// by name (a nested struct is checked on its own, as a struct of the contract).
fn wgsl_type(module: &naga::Module, ty: naga::Handle<naga::Type>) -> String {
    let ty = &module.types[ty];
    match ty.inner {
        naga::TypeInner::Scalar(s) => match (s.kind, s.width) {
            (naga::ScalarKind::Uint, 4) => "u32".into(),
            (naga::ScalarKind::Sint, 4) => "i32".into(),
            (naga::ScalarKind::Float, 4) => "f32".into(),
            other => format!("{other:?}"),
        },
        naga::TypeInner::Struct { .. } if ty.name.is_some() => ty.name.clone().unwrap(),
        ref other => format!("{other:?}"),
    }
}

/// The differences between a Rust struct and the WGSL struct of the same name in `module`.
fn struct_mismatches(module: &naga::Module, host: &HostStruct) -> Vec<String> {
    let Some((_, ty)) = module
        .types
        .iter()
        .find(|(_, t)| t.name.as_deref() == Some(host.name))
    else {
        return vec![format!("no WGSL struct {}", host.name)];
    };
    let naga::TypeInner::Struct { ref members, span } = ty.inner else {
        return vec![format!("{} is not a struct in WGSL", host.name)];
    };
    let mut bad = Vec::new();
    if span as usize != host.size {
        bad.push(format!("size: WGSL {span}, Rust {}", host.size));
    }
    let wgsl: Vec<(String, usize, String)> = members
        .iter()
        .map(|m| {
            (
                m.name.clone().unwrap_or_default(),
                m.offset as usize,
                wgsl_type(module, m.ty),
            )
        })
        .collect();
    let rust: Vec<(String, usize, String)> = host
        .fields
        .iter()
        .map(|f| (f.name.to_string(), f.offset, f.wgsl_type.to_string()))
        .collect();
    if wgsl != rust {
        bad.push(format!(
            "fields (name, offset, type):\n  WGSL {wgsl:?}\n  Rust {rust:?}"
        ));
    }
    bad
}

/// The differences between the Rust constants a contract lists and the shader's `const`s.
fn const_mismatches(module: &naga::Module, consts: &[(&str, u32)]) -> Vec<String> {
    consts
        .iter()
        .filter_map(|&(name, want)| {
            let Some((_, c)) = module
                .constants
                .iter()
                .find(|(_, c)| c.name.as_deref() == Some(name))
            else {
                return Some(format!("no WGSL const {name}"));
            };
            match module.global_expressions[c.init] {
                naga::Expression::Literal(naga::Literal::U32(got)) if got == want => None,
                ref got => Some(format!("const {name}: WGSL {got:?}, Rust {want}")),
            }
        })
        .collect()
}

fn contract_mismatches(c: &Contract) -> Vec<String> {
    let module = parse(c.shader);
    let mut bad: Vec<String> = c
        .structs
        .iter()
        .flat_map(|s| {
            struct_mismatches(&module, s)
                .into_iter()
                .map(move |m| format!("struct {}: {m}", s.name))
        })
        .collect();
    bad.extend(const_mismatches(&module, &c.consts));
    // Every struct the shader declares is in the contract, so none is left unchecked.
    for (_, ty) in module.types.iter() {
        if let (Some(name), naga::TypeInner::Struct { .. }) = (&ty.name, &ty.inner)
            && !name.starts_with("__")
            && !c.structs.iter().any(|s| s.name == name)
        {
            bad.push(format!("struct {name} is not in the contract"));
        }
    }
    bad
}

/// Every WGSL struct is in its shader's contract; every `#[repr(C)]` struct the host shares with a
/// shader has the WGSL struct's size and its fields' names, offsets and types in order; every Rust
/// constant a shader mirrors as a `const` has its value.
#[test]
fn host_structs_and_constants_match_the_shaders() {
    let mut failures = Vec::new();
    for c in contracts() {
        let bad = contract_mismatches(&c);
        let checked = format!(
            "{} structs ({}), {} consts",
            c.structs.len(),
            c.structs
                .iter()
                .map(|s| s.name)
                .collect::<Vec<_>>()
                .join(", "),
            c.consts.len()
        );
        if bad.is_empty() {
            println!("{}: OK, {checked}", c.shader.name);
        } else {
            failures.push(format!("{}: {}", c.shader.name, bad.join("\n  ")));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// The check above can fail: a contract whose struct has a field renamed, moved or retyped, or whose
/// constant is off by one, is reported.
#[test]
fn a_broken_contract_is_reported() {
    let all = contracts();
    let dropout = all
        .iter()
        .find(|c| c.shader.name == "dropout.wgsl")
        .unwrap();
    let module = parse(dropout.shader);
    let params = &dropout.structs[0];
    assert!(struct_mismatches(&module, params).is_empty());
    let broken = |edit: &dyn Fn(&mut HostStruct)| {
        let mut s = HostStruct {
            name: params.name,
            size: params.size,
            fields: params
                .fields
                .iter()
                .map(|f| cifar_wgpu::kernels::HostField { ..*f })
                .collect(),
        };
        edit(&mut s);
        struct_mismatches(&module, &s)
    };
    assert!(!broken(&|s| s.fields[1].name = "seed").is_empty());
    assert!(!broken(&|s| s.fields[3].offset += 4).is_empty());
    assert!(!broken(&|s| s.fields[3].wgsl_type = "f32").is_empty());
    assert!(!broken(&|s| s.fields[0].wgsl_type = "PoolWindow").is_empty());
    assert!(!broken(&|s| s.size += 4).is_empty());
    assert!(
        !broken(&|s| {
            s.fields.pop();
        })
        .is_empty()
    );
    let conv = all.iter().find(|c| c.shader.name == "conv2d.wgsl").unwrap();
    let module = parse(conv.shader);
    assert!(const_mismatches(&module, &conv.consts).is_empty());
    let (name, value) = conv.consts[0];
    assert!(!const_mismatches(&module, &[(name, value + 1)]).is_empty());
}

#[test]
fn every_file_in_shaders_is_compiled_into_the_crate() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    let shaders = cifar_wgpu::kernels::all_shaders();
    let included: Vec<&str> = shaders
        .iter()
        .flat_map(|s| s.includes.iter().map(|i| i.name))
        .collect();
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name == "common" {
            continue;
        }
        assert!(
            shaders.iter().any(|s| s.name == name),
            "shaders/{name} is not in kernels::contracts()"
        );
    }
    for entry in std::fs::read_dir(format!("{dir}/common")).unwrap() {
        let name = format!(
            "common/{}",
            entry.unwrap().file_name().into_string().unwrap()
        );
        assert!(
            common::all().iter().any(|s| s.name == name),
            "shaders/{name} is not in kernels::common::all()"
        );
        assert!(
            included.contains(&name.as_str()),
            "no shader includes {name}"
        );
    }
}

/// A shader includes a file exactly where it says so, and names every file it includes.
#[test]
fn includes_are_resolved_once_each() {
    for shader in cifar_wgpu::kernels::all_shaders() {
        let wgsl = shader.wgsl();
        assert!(!wgsl.contains("//!include"), "{}", shader.name);
        for include in shader.includes {
            let directive = format!("//!include {}", include.name);
            assert_eq!(
                shader.source.matches(&directive).count(),
                1,
                "{}: {directive}",
                shader.name
            );
        }
    }
}

/// Workgroup and tile sizes that are `override`s have no default in WGSL: the Rust constant passed at
/// pipeline creation is their only definition, and a pipeline built without it fails instead of running
/// a stale default. (The boolean TRANS_A / TRANS_B keep `false`: no transpose.)
#[test]
fn size_overrides_have_no_default() {
    let mut sizes = 0;
    for shader in cifar_wgpu::kernels::all_shaders() {
        let module = parse(shader);
        for (_, o) in module.overrides.iter() {
            let name = o.name.as_deref().unwrap_or("?");
            if wgsl_type(&module, o.ty) == "u32" {
                assert!(
                    o.init.is_none(),
                    "{}: override {name} has a default",
                    shader.name
                );
                sizes += 1;
            }
        }
    }
    assert!(sizes > 0);
    println!("{sizes} size overrides, none with a default");
}
