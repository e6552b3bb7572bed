//! Choosing an adapter and opening a device on it.
//!
//! We ask for the adapter's real limits (not WebGPU's conservative defaults) because the dense layer's
//! weights and the data set are large, and for every optional feature we can use (timestamps,
//! subgroups) without requiring any of them, so the same binary runs on any adapter. `--limits webgpu`
//! asks for WebGPU's defaults instead, the floor every conformant adapter meets, to prove that we run
//! there; tests also withhold optional features to run the fallbacks a less capable adapter gets.

use std::fmt;

use crate::gpu::error::{DeviceErrors, env_backends};
use crate::gpu::flavours::{KernelFlavours, Tiling, loop_limit, subgroup_matmul_runs};
use crate::gpu::{GpuError, Kernels, StepsPerSubmission};

/// Which graphics API to open the adapter through. `Auto` lets wgpu's own `WGPU_BACKEND` decide.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    #[default]
    Auto,
    Vulkan,
    Metal,
    Dx12,
    Gl,
}

impl BackendChoice {
    fn backends(self) -> wgpu::Backends {
        match self {
            // The modern APIs first: probing GL too costs start-up time and prints EGL noise on headless
            // machines. wgpu's own WGPU_BACKEND (e.g. `gl`) overrides the automatic choice, and GL is
            // tried when nothing else is found.
            BackendChoice::Auto => wgpu::Backends::PRIMARY.with_env(),
            BackendChoice::Vulkan => wgpu::Backends::VULKAN,
            BackendChoice::Metal => wgpu::Backends::METAL,
            BackendChoice::Dx12 => wgpu::Backends::DX12,
            BackendChoice::Gl => wgpu::Backends::GL,
        }
    }
}

/// `--limits`: which device limits to request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LimitsChoice {
    /// Everything the adapter offers.
    #[default]
    Adapter,
    /// WebGPU's default limits (`wgpu::Limits::default()`: 256 invocations per workgroup, 16 KiB of
    /// workgroup storage, 8 storage buffers per stage, 128 MiB per binding, 256 MiB per buffer), the
    /// floor every conformant adapter meets; lowered where this adapter has less.
    Webgpu,
}

impl LimitsChoice {
    /// The variable that picks the limits when `GpuOptions::limits` is `None`, as `WGPU_BACKEND` picks
    /// the backend: `adapter` or `webgpu`. Lets a whole test suite run under WebGPU's limits.
    pub const ENV: &'static str = "CIFAR_WGPU_LIMITS";

    /// `choice`, else `$CIFAR_WGPU_LIMITS`, else `Adapter`.
    fn resolve(choice: Option<LimitsChoice>) -> Result<LimitsChoice, GpuError> {
        use clap::ValueEnum;
        match (choice, std::env::var(Self::ENV)) {
            (Some(c), _) => Ok(c),
            (None, Ok(v)) => LimitsChoice::from_str(&v, true)
                .map_err(|_| GpuError::Device(format!("{}={v}: use adapter or webgpu", Self::ENV))),
            (None, Err(_)) => Ok(LimitsChoice::Adapter),
        }
    }

    /// The limits to request from an adapter that offers `adapter`.
    pub fn limits(self, adapter: &wgpu::Limits) -> wgpu::Limits {
        match self {
            LimitsChoice::Adapter => adapter.clone(),
            LimitsChoice::Webgpu => wgpu::Limits::default().or_worse_values_from(adapter),
        }
    }
}

/// How the user wants the adapter chosen.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    pub backend: BackendChoice,
    /// Case-insensitive part of the adapter's name; `WGPU_ADAPTER_NAME` is used when this is `None`.
    pub adapter: Option<String>,
    /// Keep naga's run-time bounds checks in every shader (slower; for debugging a kernel).
    pub shader_bounds_checks: bool,
    /// Force a family of kernel flavours; `None` picks `Tiling::auto` for the adapter
    /// (`FlavourChoice::forced` from `--tiling`).
    pub tiling: Option<Tiling>,
    /// With `Tiling::Registers`: `Some(true)` requires the subgroup matmul (an error where the adapter
    /// cannot run it), `Some(false)` refuses it, `None` decides by adapter (`KernelFlavours::choose`).
    pub matmul_subgroups: Option<bool>,
    /// The limits to request; `None` reads `$CIFAR_WGPU_LIMITS` (`LimitsChoice::ENV`), else `Adapter`.
    pub limits: Option<LimitsChoice>,
    /// Optional features not requested even where the adapter offers them, so tests run the fallbacks
    /// an adapter without them gets.
    pub without: Vec<OptionalFeature>,
    /// Training steps per submission (`--steps-per-submission`); `Gpu::steps_per_submission`.
    pub steps_per_submission: StepsPerSubmission,
}

/// An optional feature we use where the adapter offers it (`WANTED_FEATURES`), by what it enables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionalFeature {
    /// Every timestamp query: without them the profiler times each dispatch on the host.
    Timestamps,
    /// Timestamps inside compute passes: without them the profiler runs one pass per dispatch.
    TimestampsInsidePasses,
    /// Subgroup operations: without them no subgroup matmul.
    Subgroups,
}

impl OptionalFeature {
    pub const ALL: [OptionalFeature; 3] = [
        OptionalFeature::Timestamps,
        OptionalFeature::TimestampsInsidePasses,
        OptionalFeature::Subgroups,
    ];

    /// The wgpu features it stands for.
    fn features(self) -> wgpu::Features {
        match self {
            OptionalFeature::Timestamps => {
                wgpu::Features::TIMESTAMP_QUERY
                    | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
                    | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES
            }
            OptionalFeature::TimestampsInsidePasses => {
                wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES
            }
            OptionalFeature::Subgroups => wgpu::Features::SUBGROUP,
        }
    }
}

/// Optional features we use when the adapter offers them.
const WANTED_FEATURES: wgpu::Features = wgpu::Features::TIMESTAMP_QUERY
    .union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS)
    .union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES)
    .union(wgpu::Features::SUBGROUP);

/// An open device and what we learned about its adapter.
pub struct Gpu {
    pub adapter: wgpu::Adapter,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    pub kernels: Kernels,
    pub shader_bounds_checks: bool,
    /// The flavour of each kernel family this device runs, chosen when it was opened.
    pub flavours: KernelFlavours,
    /// wgpu's errors outside error scopes, returned by the next wait.
    pub(crate) errors: DeviceErrors,
    /// How many training steps a trainer on this device puts in one submission, unless told.
    pub steps_per_submission: StepsPerSubmission,
}

impl Gpu {
    /// Opens the best adapter that matches `opts`: a real GPU when there is one, a software one
    /// (lavapipe, llvmpipe, WARP) only when it is all there is, with a warning.
    pub fn new(opts: &GpuOptions) -> Result<Gpu, GpuError> {
        // An unknown WGPU_BACKEND is an error, and one that names a backend is kept to: the GL
        // fallback is only for the automatic choice.
        let from_env = match opts.backend {
            BackendChoice::Auto => env_backends()?,
            _ => None,
        };
        let mut adapters = enumerate(opts.backend.backends());
        if adapters.is_empty() && opts.backend == BackendChoice::Auto && from_env.is_none() {
            adapters = enumerate(wgpu::Backends::GL);
        }
        if adapters.is_empty()
            && let Some((_, setting)) = from_env
        {
            return Err(GpuError::NoAdapter { backends: setting });
        }
        let adapter = choose_adapter(adapters, opts)?;
        Gpu::open(adapter, opts)
    }

    fn open(adapter: wgpu::Adapter, opts: &GpuOptions) -> Result<Gpu, GpuError> {
        let info = adapter.get_info();
        if info.device_type == wgpu::DeviceType::Cpu {
            log::warn!(
                "using the software adapter '{}' ({:?}): kernels are correct but training is slow; \
                 a real GPU is used whenever one is present",
                info.name,
                info.backend
            );
        }
        let withheld = opts
            .without
            .iter()
            .fold(wgpu::Features::empty(), |f, o| f | o.features());
        let features = (adapter.features() & WANTED_FEATURES).difference(withheld);
        let limits = LimitsChoice::resolve(opts.limits)?.limits(&adapter.limits());
        let flavours =
            KernelFlavours::choose(&info, features, &limits, opts.tiling, opts.matmul_subgroups)
                .map_err(GpuError::Device)?;
        let desc = wgpu::DeviceDescriptor {
            label: Some("cifar-wgpu"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| {
            GpuError::RequestDevice {
                adapter: info.name.clone(),
                source: e,
            }
        })?;
        let errors = DeviceErrors::default();
        errors.install(&device);
        Ok(Gpu {
            adapter,
            device,
            queue,
            info,
            limits,
            features,
            kernels: Kernels::default(),
            shader_bounds_checks: opts.shader_bounds_checks,
            flavours,
            errors,
            steps_per_submission: opts.steps_per_submission,
        })
    }

    /// Whether the device has `feature` (the adapter offers it and it was not withheld).
    pub fn has(&self, feature: OptionalFeature) -> bool {
        self.features.contains(feature.features())
    }

    /// Whether `shaders/matmul_subgroup.wgsl` runs correctly on this device (whatever the default).
    pub fn can_run_subgroup_matmul(&self) -> bool {
        subgroup_matmul_runs(&self.info, self.features)
    }

    /// Blocks until every submitted command has finished.
    pub fn wait(&self) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Device(e.to_string()))?;
        self.errors.check()
    }

    /// The most loop iterations one invocation may take on this adapter (`flavours::loop_limit`).
    pub fn loop_limit(&self) -> Option<usize> {
        loop_limit(&self.info)
    }

    /// The largest single storage binding, rounded down to a multiple of 4 bytes.
    pub fn max_binding_bytes(&self) -> u64 {
        let lim = &self.limits;
        lim.max_storage_buffer_binding_size.min(lim.max_buffer_size) & !3
    }
}

fn enumerate(backends: wgpu::Backends) -> Vec<wgpu::Adapter> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends;
    pollster::block_on(wgpu::Instance::new(desc).enumerate_adapters(backends))
}

fn device_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn choose_adapter(
    adapters: Vec<wgpu::Adapter>,
    opts: &GpuOptions,
) -> Result<wgpu::Adapter, GpuError> {
    if adapters.is_empty() {
        return Err(GpuError::NoAdapter {
            backends: format!("{:?}", opts.backend),
        });
    }
    let wanted = opts
        .adapter
        .clone()
        .or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok())
        .map(|s| s.to_lowercase());
    let available: Vec<String> = adapters
        .iter()
        .map(|a| AdapterSummary::of(a).to_string())
        .collect();
    let mut matching: Vec<wgpu::Adapter> = adapters
        .into_iter()
        .filter(|a| match &wanted {
            Some(w) => a.get_info().name.to_lowercase().contains(w.as_str()),
            None => true,
        })
        .collect();
    // Stable sort: among equal ranks, keep the order the backends reported (Vulkan first on Linux).
    matching.sort_by_key(|a| device_rank(a.get_info().device_type));
    matching
        .into_iter()
        .next()
        .ok_or_else(|| GpuError::NoMatchingAdapter {
            wanted: wanted.unwrap_or_default(),
            available: available.join("\n  "),
        })
}

/// The facts about one adapter that matter for training, for `cifar-wgpu adapters`.
pub struct AdapterSummary {
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
}

impl AdapterSummary {
    pub fn of(adapter: &wgpu::Adapter) -> AdapterSummary {
        AdapterSummary {
            info: adapter.get_info(),
            limits: adapter.limits(),
            features: adapter.features(),
        }
    }
}

impl fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.info;
        write!(
            f,
            "{} ({:?}, {:?}, driver {} {})",
            i.name, i.backend, i.device_type, i.driver, i.driver_info
        )
    }
}

impl AdapterSummary {
    /// A multi-line description with the limits and features that decide how we lay out work.
    pub fn details(&self) -> String {
        let l = &self.limits;
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let has = |feat: wgpu::Features| {
            if self.features.contains(feat) {
                "yes"
            } else {
                "no"
            }
        };
        format!(
            "{self}\n    max buffer {:.0} MiB, max storage binding {:.0} MiB, storage buffers per stage {}\n    \
             workgroup: {} invocations, {}x{}x{} size, {} KiB shared memory; subgroups {}..{}\n    \
             timestamps: {} (inside passes: {}), subgroups: {}\n    kernels (auto): {}",
            mib(l.max_buffer_size),
            mib(l.max_storage_buffer_binding_size),
            l.max_storage_buffers_per_shader_stage,
            l.max_compute_invocations_per_workgroup,
            l.max_compute_workgroup_size_x,
            l.max_compute_workgroup_size_y,
            l.max_compute_workgroup_size_z,
            l.max_compute_workgroup_storage_size / 1024,
            self.info.subgroup_min_size,
            self.info.subgroup_max_size,
            has(wgpu::Features::TIMESTAMP_QUERY),
            has(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES),
            has(wgpu::Features::SUBGROUP),
            KernelFlavours::choose(&self.info, self.features, &self.limits, None, None)
                .map_or_else(|e| e, |f| f.to_string()),
        )
    }
}

/// Every adapter visible through `backend` (for `Auto`, every backend, GL included), best first.
pub fn list_adapters(backend: BackendChoice) -> Result<Vec<AdapterSummary>, GpuError> {
    let (backends, described) = match backend {
        BackendChoice::Auto => match env_backends()? {
            Some((b, setting)) => (b, setting),
            None => (wgpu::Backends::all(), format!("{backend:?}")),
        },
        b => (b.backends(), format!("{backend:?}")),
    };
    let mut adapters = enumerate(backends);
    if adapters.is_empty() {
        return Err(GpuError::NoAdapter {
            backends: described,
        });
    }
    adapters.sort_by_key(|a| device_rank(a.get_info().device_type));
    Ok(adapters.iter().map(AdapterSummary::of).collect())
}
