//! Every WGSL file parses and validates with naga, with no adapter: a typo in a shader fails here on any
//! machine, before a GPU is involved.

#[test]
fn every_shader_validates_with_naga() {
    let mut checked = 0;
    for shader in cifar_wgpu::kernels::all_shaders() {
        let module = naga::front::wgsl::parse_str(shader.source)
            .unwrap_or_else(|e| panic!("{}: {}", shader.name, e.emit_to_string(shader.source)));
        let mut validator = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::default(),
        );
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
