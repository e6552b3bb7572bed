//! Every WGSL file parses and validates with naga, with no adapter: a typo in a shader fails here on any
//! machine, before a GPU is involved. `matmul_subgroup.wgsl` is validated with the subgroup
//! capabilities a device with Features::SUBGROUP has; every other file without them.

#[test]
fn every_shader_validates_with_naga() {
    let mut checked = 0;
    for shader in cifar_wgpu::kernels::all_shaders() {
        let module = naga::front::wgsl::parse_str(shader.source)
            .unwrap_or_else(|e| panic!("{}: {}", shader.name, e.emit_to_string(shader.source)));
        // Subgroup operations in compute shaders, as a device with Features::SUBGROUP allows them.
        // Only the files that use them get the capability, so a subgroup builtin that slips into
        // another file (which must run on adapters without the feature) fails here.
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
            .unwrap_or_else(|e| panic!("{}: {}", shader.name, e.emit_to_string(shader.source)));
        println!(
            "{}: valid, {} entry points",
            shader.name,
            module.entry_points.len()
        );
        checked += 1;
    }
    assert_eq!(checked, cifar_wgpu::kernels::all_shaders().len());
}

#[test]
fn every_file_in_shaders_is_compiled_into_the_crate() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    let known: Vec<&str> = cifar_wgpu::kernels::all_shaders()
        .iter()
        .map(|s| s.name)
        .collect();
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            known.contains(&name.as_str()),
            "shaders/{name} is not in kernels::all_shaders()"
        );
    }
}
