//! Pipelines compiled once and cached, and `Dispatch`: one kernel launch with its bindings fixed.
//!
//! A training step is a list of `Dispatch`es built once, when the model is placed on the GPU, and
//! replayed for every batch into one compute pass. Nothing is allocated per batch: parameters live in
//! a small uniform buffer created with the dispatch, and values that change per step (the step number
//! for dropout, Adam's bias correction) are read from a buffer the host updates before submitting.
//!
//! Binding convention for every kernel: `@binding(0)` is the kernel's uniform parameter struct, and
//! `@binding(1..)` are storage buffers in the order the kernel's Rust wrapper passes them. Pipelines use
//! wgpu's automatic layout, so each entry point must use every binding it is given.

use std::collections::HashMap;
use std::sync::Mutex;

use wgpu::util::DeviceExt;

use crate::gpu::{Gpu, GpuError, Tensor};

/// A WGSL source file compiled into the binary, with the shared declarations it includes.
#[derive(Debug)]
pub struct Shader {
    /// File name under `shaders/`, e.g. `matmul.wgsl`, or `common/step_state.wgsl` for an include.
    pub name: &'static str,
    pub source: &'static str,
    /// The files its `//!include NAME` lines name, e.g. `common/step_state.wgsl`.
    pub includes: &'static [&'static Shader],
}

/// The directive that pulls a shared file into a shader, alone on its line: `//!include NAME`.
const INCLUDE: &str = "//!include ";

impl Shader {
    /// The WGSL text to compile: `source` with each `//!include NAME` line replaced by that file of
    /// `includes`. Pipeline creation, tests/shaders.rs and any other tool compile this, never `source`,
    /// so a declaration shared by several shaders (`StepState`) is written once.
    pub fn wgsl(&self) -> String {
        let mut out = String::with_capacity(self.source.len());
        for line in self.source.lines() {
            match line.strip_prefix(INCLUDE) {
                Some(name) => {
                    let file = self
                        .includes
                        .iter()
                        .find(|f| f.name == name.trim())
                        .unwrap_or_else(|| {
                            panic!("{}: `{line}` is not in its includes", self.name)
                        });
                    out.push_str(&file.wgsl());
                }
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }
}

/// The work one dispatch must do: floating-point operations and the fewest bytes it must move
/// (each input read once, each output written once). The profiler turns them into FLOP/s and bytes/s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    pub flops: u64,
    pub bytes: u64,
}

#[derive(Hash, PartialEq, Eq)]
struct PipelineKey {
    shader: &'static str,
    entry: &'static str,
    // Override constants by name with their f64 bit patterns, so the key can be hashed.
    constants: Vec<(&'static str, u64)>,
}

/// The pipeline cache. Each (shader, entry point, override constants) is compiled once per device.
#[derive(Default)]
pub struct Kernels {
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<PipelineKey, wgpu::ComputePipeline>>,
}

impl Kernels {
    pub fn pipeline_count(&self) -> usize {
        self.pipelines.lock().unwrap().len()
    }
}

/// One kernel launch, ready to record.
#[derive(Debug)]
pub struct Dispatch {
    /// The kernel's name in timings and traces, e.g. `matmul_nt`.
    pub name: &'static str,
    pub pipeline: wgpu::ComputePipeline,
    pub bind_group: wgpu::BindGroup,
    pub workgroups: [u32; 3],
    pub cost: Cost,
}

impl Dispatch {
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }
}

impl Gpu {
    /// The compiled pipeline for `entry` in `shader` with the given override constants.
    pub fn pipeline(
        &self,
        shader: &'static Shader,
        entry: &'static str,
        constants: &[(&'static str, f64)],
    ) -> wgpu::ComputePipeline {
        let key = PipelineKey {
            shader: shader.name,
            entry,
            constants: constants.iter().map(|&(k, v)| (k, v.to_bits())).collect(),
        };
        if let Some(p) = self.kernels.pipelines.lock().unwrap().get(&key) {
            return p.clone();
        }
        let module = self
            .kernels
            .modules
            .lock()
            .unwrap()
            .entry(shader.name)
            .or_insert_with(|| {
                let desc = wgpu::ShaderModuleDescriptor {
                    label: Some(shader.name),
                    source: wgpu::ShaderSource::Wgsl(shader.wgsl().into()),
                };
                if self.shader_bounds_checks {
                    self.device.create_shader_module(desc)
                } else {
                    // SAFETY: every kernel is tested against its CPU twin on awkward shapes with
                    // NaN-poisoned outputs, and every wrapper asserts the sizes of the tensors it
                    // binds, so no index leaves its binding. Naga's inserted clamps cost up to half
                    // of a kernel's time on lavapipe; `--shader-bounds-checks` puts them back.
                    unsafe {
                        self.device.create_shader_module_trusted(
                            desc,
                            wgpu::ShaderRuntimeChecks::unchecked(),
                        )
                    }
                }
            })
            .clone();
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    // Kernels initialise the shared memory they use; skipping the zeroing saves a pass.
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        self.kernels
            .pipelines
            .lock()
            .unwrap()
            .insert(key, pipeline.clone());
        pipeline
    }

    /// Builds a dispatch: uploads `params` as binding 0 and binds `buffers` as bindings 1, 2, ...
    #[allow(clippy::too_many_arguments)]
    pub fn dispatch<P: bytemuck::Pod>(
        &self,
        name: &'static str,
        shader: &'static Shader,
        entry: &'static str,
        constants: &[(&'static str, f64)],
        params: &P,
        buffers: &[&Tensor],
        workgroups: [u32; 3],
        cost: Cost,
    ) -> Dispatch {
        let pipeline = self.pipeline(shader, entry, constants);
        // Uniform structs are padded to 16 bytes in WGSL's layout; pad the host copy to match.
        let mut bytes = bytemuck::bytes_of(params).to_vec();
        bytes.resize(bytes.len().next_multiple_of(16).max(16), 0);
        let uniform = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(name),
                contents: &bytes,
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }];
        entries.extend(
            buffers
                .iter()
                .enumerate()
                .map(|(i, t)| wgpu::BindGroupEntry {
                    binding: i as u32 + 1,
                    resource: t.binding(),
                }),
        );
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(name),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let max = self.limits.max_compute_workgroups_per_dimension;
        assert!(
            workgroups.iter().all(|&w| w <= max),
            "{name}: {workgroups:?} workgroups exceed the adapter's {max} per dimension"
        );
        Dispatch {
            name,
            pipeline,
            bind_group,
            workgroups,
            cost,
        }
    }
}

/// Splits `groups` workgroups over x and y so neither exceeds the adapter's per-dimension limit.
/// Kernels recover the linear index as `gid.x + gid.y * num_workgroups.x * WORKGROUP_SIZE`.
pub fn grid_1d(groups: u32, max_per_dim: u32) -> [u32; 3] {
    if groups <= max_per_dim {
        [groups.max(1), 1, 1]
    } else {
        [max_per_dim, groups.div_ceil(max_per_dim), 1]
    }
}

/// Records `dispatches` into one compute pass, submits it and waits. For tests and one-off work;
/// training records its own passes.
pub fn run_dispatches(gpu: &Gpu, dispatches: &[&Dispatch]) -> Result<(), GpuError> {
    let mut encoder = gpu
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("run") });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("run"),
            timestamp_writes: None,
        });
        for d in dispatches {
            d.record(&mut pass);
        }
    }
    gpu.queue.submit([encoder.finish()]);
    gpu.wait()
}
