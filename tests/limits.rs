//! The least adapter we promise to run on: WebGPU's default limits (`--limits webgpu`) and none of the
//! optional features (timestamps, subgroups; we never ask for shader-f16). A device opened so gets
//! exactly those limits, every kernel family's declared needs are what its pipelines really use (read
//! from the compiled shaders by naga), CIFAR-sized data uploads in chunks that fit its bindings, and a
//! training step of every family there equals the CPU reference step. scripts/test.sh also runs the
//! whole kernel suite and the training-step tests with `CIFAR_WGPU_LIMITS=webgpu`.

#[path = "common/gpu.rs"]
mod common_gpu;
use common_gpu::{build_programs, every_layer_model, fixed_batch, write_batch};

use cifar_wgpu::gpu::{
    Gpu, GpuOptions, KernelFlavours, LimitsChoice, OptionalFeature, Tiling, WorkgroupNeeds,
};
use cifar_wgpu::gpu::{Shader, run_dispatches};
use cifar_wgpu::kernels::all_shaders;
use cifar_wgpu::kernels::gather::{gather_batch, upload_images};
use cifar_wgpu::model::reference;
use cifar_wgpu::optimizer::Optimizer;
use cifar_wgpu::train::{Metrics, Mode, Network};

/// A device under WebGPU's default limits with the kernels of `tiling` (`subgroups`: the subgroup
/// matmul, which needs the SUBGROUP feature; otherwise no optional feature at all).
fn least_device(tiling: Tiling, subgroups: bool) -> Gpu {
    Gpu::new(&GpuOptions {
        limits: Some(LimitsChoice::Webgpu),
        tiling: Some(tiling),
        matmul_subgroups: Some(subgroups),
        without: OptionalFeature::ALL
            .into_iter()
            .filter(|&f| !(subgroups && f == OptionalFeature::Subgroups))
            .collect(),
        ..GpuOptions::default()
    })
    .unwrap_or_else(|e| panic!("a device under WebGPU's limits on the test adapter: {e}"))
}

/// Every kernel family, and the subgroup matmul where the adapter can run it (not on GL: no subgroups).
fn families() -> Vec<(Tiling, bool)> {
    let mut all = vec![(Tiling::Registers, false), (Tiling::Shared, false)];
    let g = Gpu::new(&GpuOptions::default()).expect("the test adapter");
    if g.can_run_subgroup_matmul() {
        all.push((Tiling::Registers, true));
    } else {
        println!(
            "'{}' ({:?}) cannot run the subgroup matmul",
            g.info.name, g.info.backend
        );
    }
    all
}

#[test]
fn webgpu_limits_are_what_the_device_gets_and_bound_every_binding() {
    let g = least_device(Tiling::Registers, false);
    assert_eq!(g.limits, LimitsChoice::Webgpu.limits(&g.adapter.limits()));
    assert!(g.limits.max_compute_workgroup_storage_size <= 16 << 10);
    // wgpu gives a device the features asked for, and we asked for none: not even shader-f16.
    assert_eq!(g.features, Default::default());
    assert!(OptionalFeature::ALL.iter().all(|&f| !g.has(f)));
    // The data upload and split-K scratch are sized by this: 128 MiB, not lavapipe's 2 GiB.
    assert_eq!(g.max_binding_bytes(), 128 << 20);
}

#[test]
fn cifar_sized_data_uploads_in_chunks_that_fit_webgpus_binding_size_and_gathers_exactly() {
    // CIFAR-10's 50,000 training images are 153.6 MB: more than one 128 MiB binding.
    let g = least_device(Tiling::Registers, false);
    let (n, image_bytes) = (50_000, 32 * 32 * 3);
    let images: Vec<u8> = (0..n * image_bytes).map(|i| (i % 251) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let dev = upload_images(&g, &images, &labels, image_bytes, g.max_binding_bytes()).unwrap();
    assert_eq!(dev.chunks.len(), 2);
    assert!(
        dev.chunks
            .iter()
            .all(|c| c.data.bytes() <= g.max_binding_bytes())
    );
    // The first and last record of each chunk, and one in the middle.
    let first = dev.chunks[1].first_record as u32;
    let indices = [0, first - 1, first, 31_337, n as u32 - 1];
    let out = g.upload("images", &vec![f32::NAN; indices.len() * image_bytes]);
    let out_labels = g.upload("labels", &vec![u32::MAX; indices.len()]);
    let ds = gather_batch(&g, &dev, &g.upload("indices", &indices), &out, &out_labels);
    run_dispatches(&g, &ds.iter().collect::<Vec<_>>()).unwrap();
    let (want, want_labels) =
        cifar_wgpu::reference::gather::gather_batch(&images, &labels, image_bytes, &indices);
    let got = g.read_f32(&out).unwrap();
    assert!(
        got.iter()
            .zip(&want)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "gathered images differ"
    );
    assert_eq!(g.read_u32(&out_labels).unwrap(), want_labels);
}

/// Workgroup size, `var<workgroup>` bytes and storage buffers of one compiled pipeline, its override
/// constants applied (they size workgroups and arrays).
fn pipeline_needs(shader: &Shader, entry: &str, constants: &[(&str, f64)]) -> WorkgroupNeeds {
    use naga::valid::{Capabilities, ShaderStages, SubgroupOperationSet, ValidationFlags};
    let module = naga::front::wgsl::parse_str(&shader.wgsl()).expect("parses");
    let info = naga::valid::Validator::new(ValidationFlags::all(), Capabilities::all())
        .subgroup_stages(ShaderStages::COMPUTE)
        .subgroup_operations(SubgroupOperationSet::all())
        .validate(&module)
        .expect("validates");
    let constants = constants.iter().map(|&(k, v)| (k.to_string(), v)).collect();
    let (module, info) = naga::back::pipeline_constants::process_overrides(
        &module,
        &info,
        Some((naga::ShaderStage::Compute, entry)),
        &constants,
    )
    .expect("overrides apply");
    let index = module
        .entry_points
        .iter()
        .position(|e| e.name == entry)
        .expect("entry point");
    let used = info.get_entry_point(index);
    let mut needs = WorkgroupNeeds {
        invocations: module.entry_points[index].workgroup_size.iter().product(),
        size: module.entry_points[index].workgroup_size,
        storage_bytes: 0,
        storage_buffers: 0,
    };
    for (handle, var) in module.global_variables.iter() {
        if used[handle].is_empty() {
            continue;
        }
        match var.space {
            naga::AddressSpace::WorkGroup => {
                needs.storage_bytes += module.types[var.ty].inner.size(module.to_ctx())
            }
            naga::AddressSpace::Storage { .. } => needs.storage_buffers += 1,
            _ => {}
        }
    }
    needs
}

/// The largest of each need over every pipeline `g` has compiled.
fn largest(g: &Gpu) -> WorkgroupNeeds {
    let mut most = WorkgroupNeeds {
        invocations: 0,
        size: [0; 3],
        storage_bytes: 0,
        storage_buffers: 0,
    };
    for c in g.kernels.compiled() {
        let shader = all_shaders()
            .into_iter()
            .find(|s| s.name == c.shader)
            .expect("a known shader");
        let n = pipeline_needs(shader, c.entry, &c.constants);
        most.invocations = most.invocations.max(n.invocations);
        for d in 0..3 {
            most.size[d] = most.size[d].max(n.size[d]);
        }
        most.storage_bytes = most.storage_bytes.max(n.storage_bytes);
        most.storage_buffers = most.storage_buffers.max(n.storage_buffers);
    }
    most
}

#[test]
fn each_familys_declared_needs_are_its_pipelines_largest_and_fit_webgpu() {
    for (tiling, subgroups) in families() {
        let g = least_device(tiling, subgroups);
        build_programs(&g);
        g.wait().expect("every pipeline was accepted");
        let got = largest(&g);
        println!("{}: {got:?}", g.flavours);
        assert_eq!(g.flavours, KernelFlavours::of(tiling, subgroups));
        assert_eq!(
            g.flavours.needs(),
            got,
            "{}: KernelFlavours::needs is out of date",
            g.flavours
        );
        assert_eq!(got.fit(&g.limits), Ok(()));
    }
}

#[test]
fn a_training_step_of_every_family_under_webgpu_limits_equals_the_cpu_reference() {
    let (input, classes, batch) = ([9, 7, 3], 4, 5);
    let model = every_layer_model(input, classes);
    let params = model.init_params(11).unwrap();
    let (x, labels) = fixed_batch(&model, batch, classes, 3);
    let (seed, step) = (1234, 7);
    let p64: Vec<f64> = params.iter().map(|&v| v as f64).collect();
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let want = reference::forward_backward(&model, &p64, &x64, &labels, batch, seed, step, true);
    for (tiling, subgroups) in families() {
        let g = least_device(tiling, subgroups);
        let net =
            Network::new(&g, &model, Optimizer::adam_default(), &params, batch, seed).unwrap();
        write_batch(&g, &net, &x, &labels);
        net.set_step(&g, step);
        let dispatches = net.step(&g, batch, Mode::Train);
        run_dispatches(&g, &dispatches.iter().collect::<Vec<_>>()).unwrap();
        let metrics = Metrics::from_words(&g.read_u32(&net.train_metrics).unwrap());
        let name = g.flavours.to_string();
        rel_err(
            &name,
            "logits",
            &g.read_f32(&net.logits(batch, Mode::Train)).unwrap(),
            &want.logits,
        );
        rel_err(&name, "loss", &[metrics.loss_sum], &[want.loss_sum]);
        assert_eq!(metrics.correct, want.correct, "{name}: correct count");
        rel_err(
            &name,
            "gradients",
            &net.read_grads(&g).unwrap(),
            &want.grads,
        );
    }
}

/// Relative error of the norm within 1e-4 (f32 kernels against the f64 reference).
fn rel_err(flavours: &str, what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let (mut d2, mut n2) = (0.0, 0.0);
    for (&g, &w) in got.iter().zip(want) {
        assert!(g.is_finite(), "{flavours}: {what}: {g}");
        d2 += (g as f64 - w).powi(2);
        n2 += w * w;
    }
    let rel = (d2 / f64::max(n2, 1e-30)).sqrt();
    println!("{flavours}: {what}: rel {rel:.2e}");
    assert!(rel <= 1e-4, "{flavours}: {what}: relative error {rel:.2e}");
}
