//! Which flavour of each kernel family runs on a device, decided once, when the device is opened, from
//! the adapter's capabilities and the user's override (`--tiling`). Kernels read `Gpu::flavours`; no
//! other code looks at the adapter to choose a kernel.
//!
//! Two families of flavours exist because two kinds of adapter want opposite things. A software adapter
//! (lavapipe, llvmpipe, WARP) emulates every storage load lane by lane and pays dearly for workgroup
//! memory and barriers, so its kernels keep big tiles in registers and few invocations. A real GPU wants
//! tens of thousands of invocations in flight and has fast shared memory, so its kernels use small
//! register tiles, shared-memory blocks and split-K. docs/PERFORMANCE.md has the measurements.
//!
//! A family is chosen only where the device's limits hold its largest workgroup (`WorkgroupNeeds`);
//! both fit WebGPU's default limits, so this only bites on adapters below that floor.

use std::fmt;

/// The family of kernel flavours: the user's `--tiling` override, and the adapter's default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tiling {
    /// Big register tiles, few invocations, no shared memory, no barriers: for software adapters.
    Registers,
    /// Shared-memory blocks and small register tiles, many invocations: for real GPUs.
    Shared,
}

impl Tiling {
    /// The default for an adapter: `Registers` on a CPU, `Shared` on anything else.
    pub fn auto(device_type: wgpu::DeviceType) -> Tiling {
        match device_type {
            wgpu::DeviceType::Cpu => Tiling::Registers,
            _ => Tiling::Shared,
        }
    }

    /// The other family, the fallback where this one does not fit a device.
    pub fn other(self) -> Tiling {
        match self {
            Tiling::Registers => Tiling::Shared,
            Tiling::Shared => Tiling::Registers,
        }
    }
}

/// The most any one pipeline of a family asks of a device's workgroup limits, over every kernel a
/// training or evaluation step runs with that family (the families share the single-flavour kernels).
/// tests/limits.rs derives these from the compiled pipelines themselves, so they cannot drift.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkgroupNeeds {
    /// Invocations in the largest workgroup.
    pub invocations: u32,
    /// The largest workgroup size along x, y and z.
    pub size: [u32; 3],
    /// Bytes of `var<workgroup>` one workgroup uses.
    pub storage_bytes: u32,
    /// Storage buffers bound to one pipeline.
    pub storage_buffers: u32,
}

impl WorkgroupNeeds {
    /// `Ok` where `limits` hold these needs, else the first limit that is short, named as wgpu names it.
    pub fn fit(&self, limits: &wgpu::Limits) -> Result<(), String> {
        let checks = [
            (
                "max_compute_invocations_per_workgroup",
                self.invocations,
                limits.max_compute_invocations_per_workgroup,
            ),
            (
                "max_compute_workgroup_size_x",
                self.size[0],
                limits.max_compute_workgroup_size_x,
            ),
            (
                "max_compute_workgroup_size_y",
                self.size[1],
                limits.max_compute_workgroup_size_y,
            ),
            (
                "max_compute_workgroup_size_z",
                self.size[2],
                limits.max_compute_workgroup_size_z,
            ),
            (
                "max_compute_workgroup_storage_size",
                self.storage_bytes,
                limits.max_compute_workgroup_storage_size,
            ),
            (
                "max_storage_buffers_per_shader_stage",
                self.storage_buffers,
                limits.max_storage_buffers_per_shader_stage,
            ),
        ];
        match checks.iter().find(|(_, need, have)| need > have) {
            Some((name, need, have)) => Err(format!("needs {name} {need}, the device has {have}")),
            None => Ok(()),
        }
    }
}

/// `--tiling`: which kernel flavours to run, for every operation that has several (the dense products,
/// the convolution's register tiles and the column sums of bias and weight gradients). `auto` picks by
/// adapter: `shared` on GPUs, else `subgroups` where subgroups are exactly 8 lanes wide (lavapipe), else
/// `registers`. `registers`: big register tiles and one invocation per column sum, for software
/// adapters. `subgroups`: `registers` with the dense products sharing A through subgroups (an error
/// where the adapter has no subgroups of 8 or more lanes). `shared`: shared-memory matmul with split-K,
/// small convolution tiles and a workgroup per column sum, for GPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum FlavourChoice {
    #[default]
    Auto,
    Registers,
    Subgroups,
    Shared,
}

impl FlavourChoice {
    /// `GpuOptions::tiling` for this choice: the family forced, or `None` to decide by adapter.
    pub fn forced(self) -> Option<Tiling> {
        match self {
            FlavourChoice::Auto => None,
            FlavourChoice::Registers | FlavourChoice::Subgroups => Some(Tiling::Registers),
            FlavourChoice::Shared => Some(Tiling::Shared),
        }
    }

    /// `GpuOptions::matmul_subgroups` for this choice: forced on or off, or `None` to decide by adapter.
    pub fn subgroups(self) -> Option<bool> {
        match self {
            FlavourChoice::Auto => None,
            FlavourChoice::Subgroups => Some(true),
            FlavourChoice::Registers | FlavourChoice::Shared => Some(false),
        }
    }
}

/// The dense products (`kernels::matmul`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulFlavour {
    /// Register-tiled kernels, `shaders/matmul.wgsl`.
    Registers,
    /// The same with A shared through subgroups, `shaders/matmul_subgroup.wgsl`, for the shapes it
    /// covers (the others run `Registers`).
    Subgroups,
    /// Shared-memory block tiles with split-K, `shaders/matmul.wgsl`'s `matmul_shared`.
    Shared,
}

/// The register tiles of `conv2d_forward` and `conv2d_backward_weight` (`kernels::conv2d::Conv2dTiles`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conv2dFlavour {
    /// Tiles as big as the shader's arrays: few invocations, each value loaded feeding many FMAs.
    BigTiles,
    /// Small tiles: many invocations.
    SmallTiles,
}

/// The last pass of a column sum (`kernels::column_sum`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnSumFlavour {
    /// One invocation walks each column.
    InvocationPerColumn,
    /// A workgroup per column, its sums added in a fixed tree through workgroup memory.
    WorkgroupPerColumn,
}

/// The flavour of every kernel family with more than one, as one device runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelFlavours {
    pub matmul: MatmulFlavour,
    pub conv2d: Conv2dFlavour,
    pub column_sum: ColumnSumFlavour,
}

/// Lanes per subgroup that `shaders/matmul_subgroup.wgsl` is written for: its workgroups are 8
/// invocations that must form one subgroup, so subgroups must have at least 8 lanes.
pub const MATMUL_SUBGROUP_LANES: u32 = 8;

/// Whether the subgroup matmul kernels are correct on an adapter: subgroup operations, and subgroups
/// never narrower than `MATMUL_SUBGROUP_LANES`.
pub fn subgroup_matmul_runs(info: &wgpu::AdapterInfo, features: wgpu::Features) -> bool {
    features.contains(wgpu::Features::SUBGROUP) && info.subgroup_min_size >= MATMUL_SUBGROUP_LANES
}

/// The most loop iterations one invocation may take, over all its loops together, on an adapter that
/// bounds them, or `None` where nothing does. llvmpipe (behind lavapipe and the GL backend's
/// llvmpipe) ends every loop of an invocation once the loops' iterations together reach 65535
/// (gallivm's loop limiter, against infinite loops): a kernel past it silently stops adding, no
/// error. Measured on lavapipe (LLVM 15): one loop of 65534 iterations adds up, of 65535 no
/// longer; nested loops count every iteration of each (a 255 x 255 pooling window, 255 + 65025,
/// adds up, 256 x 255 no longer); a constant 8-step loop inside `matmul_shared`'s counts too.
/// Kernels whose loops grow with a shape plan to stay within this, with a margin for their short
/// loops (the products split K, the fused dense loss is not taken), or
/// `train::network::check_loops` refuses the layer.
pub fn loop_limit(info: &wgpu::AdapterInfo) -> Option<usize> {
    info.name
        .to_ascii_lowercase()
        .contains("llvmpipe")
        .then_some(MAX_LOOP_STEPS)
}

/// `loop_limit` on llvmpipe: three quarters of its 65535.
pub const MAX_LOOP_STEPS: usize = 49152;

impl KernelFlavours {
    /// What these flavours' kernels ask of the device: `softmax_cross_entropy`'s 256 invocations and
    /// 3 KiB of workgroup sums, and eight storage buffers (the augmented gather's and the fused dense
    /// loss's: WebGPU's default limit) everywhere; `Shared` adds `matmul_shared`'s 16 x 16 workgroups
    /// and its double-buffered slabs of A and B, 4 KiB each: WebGPU's default 16 KiB.
    pub fn needs(&self) -> WorkgroupNeeds {
        match self.tiling() {
            Tiling::Registers => WorkgroupNeeds {
                invocations: 256,
                size: [256, 8, 1],
                storage_bytes: 3 * 256 * 4,
                storage_buffers: 8,
            },
            Tiling::Shared => WorkgroupNeeds {
                invocations: 256,
                size: [256, 16, 1],
                storage_bytes: 2 * 2 * 8 * 128 * 4,
                storage_buffers: 8,
            },
        }
    }

    /// Every flavour of one family; `subgroups` picks `MatmulFlavour::Subgroups` within `Registers`.
    pub fn of(tiling: Tiling, subgroups: bool) -> KernelFlavours {
        match tiling {
            Tiling::Registers => KernelFlavours {
                matmul: if subgroups {
                    MatmulFlavour::Subgroups
                } else {
                    MatmulFlavour::Registers
                },
                conv2d: Conv2dFlavour::BigTiles,
                column_sum: ColumnSumFlavour::InvocationPerColumn,
            },
            Tiling::Shared => KernelFlavours {
                matmul: MatmulFlavour::Shared,
                conv2d: Conv2dFlavour::SmallTiles,
                column_sum: ColumnSumFlavour::WorkgroupPerColumn,
            },
        }
    }

    /// The flavours for an adapter whose device gets `features` and `limits`. `tiling` forces the
    /// family (an error where it does not fit `limits`); `None` takes `Tiling::auto`, or the other
    /// family where that one does not fit. Within `Registers`, `subgroups` forces the subgroup matmul
    /// on (an error where it cannot run) or off; `None` uses it only where every subgroup is exactly
    /// `MATMUL_SUBGROUP_LANES` wide (lavapipe: 8..8), the case it was written and measured for.
    pub fn choose(
        info: &wgpu::AdapterInfo,
        features: wgpu::Features,
        limits: &wgpu::Limits,
        tiling: Option<Tiling>,
        subgroups: Option<bool>,
    ) -> Result<KernelFlavours, String> {
        // The subgroup matmul needs no more than `Registers`, so the family decides the fit.
        let fit = |t: Tiling| KernelFlavours::of(t, false).needs().fit(limits);
        let tiling = match tiling {
            Some(t) => t,
            None => {
                let auto = Tiling::auto(info.device_type);
                if fit(auto).is_ok() {
                    auto
                } else {
                    auto.other()
                }
            }
        };
        fit(tiling).map_err(|e| {
            format!(
                "the {tiling:?} kernels do not fit '{}' ({:?}): {e}",
                info.name, info.backend
            )
        })?;
        let runs = subgroup_matmul_runs(info, features);
        let exact = info.subgroup_min_size == MATMUL_SUBGROUP_LANES
            && info.subgroup_max_size == MATMUL_SUBGROUP_LANES;
        let subgroups = tiling == Tiling::Registers
            && match subgroups {
                None => runs && exact,
                Some(false) => false,
                Some(true) if runs => true,
                Some(true) => {
                    let has = if features.contains(wgpu::Features::SUBGROUP) {
                        format!(
                            "subgroups of {}..{} lanes",
                            info.subgroup_min_size, info.subgroup_max_size
                        )
                    } else {
                        "no subgroup operations".to_string()
                    };
                    return Err(format!(
                        "the subgroup matmul kernels (--tiling subgroups) need subgroup operations \
                         with at least {MATMUL_SUBGROUP_LANES} lanes; '{}' ({:?}) has {has}",
                        info.name, info.backend
                    ));
                }
            };
        Ok(KernelFlavours::of(tiling, subgroups))
    }

    /// The family these flavours belong to.
    pub fn tiling(&self) -> Tiling {
        match self.matmul {
            MatmulFlavour::Registers | MatmulFlavour::Subgroups => Tiling::Registers,
            MatmulFlavour::Shared => Tiling::Shared,
        }
    }
}

impl fmt::Display for KernelFlavours {
    /// e.g. `matmul Subgroups, conv2d BigTiles, column_sum InvocationPerColumn`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "matmul {:?}, conv2d {:?}, column_sum {:?}",
            self.matmul, self.conv2d, self.column_sum
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(device_type: wgpu::DeviceType, lanes: (u32, u32)) -> wgpu::AdapterInfo {
        wgpu::AdapterInfo {
            subgroup_min_size: lanes.0,
            subgroup_max_size: lanes.1,
            ..wgpu::AdapterInfo::new(device_type, wgpu::Backend::Vulkan)
        }
    }

    #[test]
    fn each_adapter_gets_one_family_and_subgroups_only_where_they_fit() {
        let sub = wgpu::Features::SUBGROUP;
        let cpu8 = adapter(wgpu::DeviceType::Cpu, (8, 8));
        let cpu4 = adapter(wgpu::DeviceType::Cpu, (4, 16));
        let gpu = adapter(wgpu::DeviceType::DiscreteGpu, (32, 32));
        let lim = wgpu::Limits::default();
        let auto =
            |info, features| KernelFlavours::choose(info, features, &lim, None, None).unwrap();
        assert_eq!(
            auto(&cpu8, sub),
            KernelFlavours::of(Tiling::Registers, true)
        );
        assert_eq!(
            auto(&cpu8, wgpu::Features::empty()),
            KernelFlavours::of(Tiling::Registers, false)
        );
        assert_eq!(
            auto(&cpu4, sub),
            KernelFlavours::of(Tiling::Registers, false)
        );
        assert_eq!(auto(&gpu, sub), KernelFlavours::of(Tiling::Shared, false));
        // Forced: subgroups where they run (32 lanes hold the 8-lane workgroups), an error where not.
        let forced = |info, t, s| KernelFlavours::choose(info, sub, &lim, Some(t), Some(s));
        assert_eq!(
            forced(&gpu, Tiling::Registers, true).unwrap().matmul,
            MatmulFlavour::Subgroups
        );
        assert!(forced(&cpu4, Tiling::Registers, true).is_err());
        assert_eq!(
            forced(&cpu8, Tiling::Shared, true).unwrap(),
            KernelFlavours::of(Tiling::Shared, false)
        );
        for f in [
            KernelFlavours::of(Tiling::Registers, true),
            KernelFlavours::of(Tiling::Shared, false),
        ] {
            assert_eq!(
                KernelFlavours::of(f.tiling(), f.matmul == MatmulFlavour::Subgroups),
                f
            );
        }
    }

    #[test]
    fn every_subgroup_size_from_4_to_128_gets_the_subgroup_matmul_only_where_it_is_correct() {
        // Lavapipe 8, Intel 8..32, AMD 32..64, Apple and NVIDIA 32, and the extremes the API allows.
        let sub = wgpu::Features::SUBGROUP;
        let lim = wgpu::Limits::default();
        for lanes in [
            (4, 4),
            (4, 128),
            (8, 8),
            (8, 16),
            (8, 32),
            (16, 16),
            (32, 32),
            (32, 64),
            (64, 64),
            (128, 128),
        ] {
            let fits = lanes.0 >= MATMUL_SUBGROUP_LANES;
            for device in [wgpu::DeviceType::Cpu, wgpu::DeviceType::DiscreteGpu] {
                let info = adapter(device, lanes);
                let auto = KernelFlavours::choose(&info, sub, &lim, None, None).unwrap();
                let want = match device {
                    wgpu::DeviceType::Cpu => KernelFlavours::of(Tiling::Registers, lanes == (8, 8)),
                    _ => KernelFlavours::of(Tiling::Shared, false),
                };
                assert_eq!(auto, want, "{lanes:?} {device:?}");
                let forced =
                    KernelFlavours::choose(&info, sub, &lim, Some(Tiling::Registers), Some(true));
                assert_eq!(forced.is_ok(), fits, "{lanes:?} {device:?}: {forced:?}");
                let without = KernelFlavours::choose(
                    &info,
                    wgpu::Features::empty(),
                    &lim,
                    Some(Tiling::Registers),
                    None,
                );
                assert_eq!(
                    without.unwrap(),
                    KernelFlavours::of(Tiling::Registers, false)
                );
            }
        }
    }

    #[test]
    fn a_family_that_does_not_fit_the_limits_is_not_chosen() {
        let gpu = adapter(wgpu::DeviceType::DiscreteGpu, (32, 32));
        let cpu = adapter(wgpu::DeviceType::Cpu, (8, 8));
        let webgpu = wgpu::Limits::default();
        let none = wgpu::Features::empty();
        // WebGPU's floor holds every family.
        for t in [Tiling::Registers, Tiling::Shared] {
            assert_eq!(KernelFlavours::of(t, true).needs().fit(&webgpu), Ok(()));
        }
        // Too little workgroup storage for the shared-memory slabs: the GPU falls back to registers,
        // and forcing `shared` names the short limit.
        let small = wgpu::Limits {
            max_compute_workgroup_storage_size: 4096,
            ..webgpu.clone()
        };
        assert_eq!(
            KernelFlavours::choose(&gpu, none, &small, None, None).unwrap(),
            KernelFlavours::of(Tiling::Registers, false)
        );
        let err =
            KernelFlavours::choose(&gpu, none, &small, Some(Tiling::Shared), None).unwrap_err();
        assert!(err.contains("max_compute_workgroup_storage_size"), "{err}");
        // 16 x 16 workgroups not allowed along y: the same.
        let narrow = wgpu::Limits {
            max_compute_workgroup_size_y: 8,
            ..webgpu.clone()
        };
        assert_eq!(
            KernelFlavours::choose(&gpu, none, &narrow, None, None)
                .unwrap()
                .tiling(),
            Tiling::Registers
        );
        // Fewer than 256 invocations: nothing fits, and the error says why.
        let tiny = wgpu::Limits {
            max_compute_invocations_per_workgroup: 128,
            ..webgpu
        };
        for info in [&gpu, &cpu] {
            let err = KernelFlavours::choose(info, none, &tiny, None, None).unwrap_err();
            assert!(
                err.contains("max_compute_invocations_per_workgroup 256"),
                "{err}"
            );
        }
    }

    #[test]
    fn only_llvmpipe_bounds_an_invocations_loops() {
        let named = |name: &str, device_type, backend| wgpu::AdapterInfo {
            name: name.to_string(),
            ..wgpu::AdapterInfo::new(device_type, backend)
        };
        let cpu = wgpu::DeviceType::Cpu;
        for info in [
            named(
                "llvmpipe (LLVM 15.0.7, 256 bits)",
                cpu,
                wgpu::Backend::Vulkan,
            ),
            named("llvmpipe (LLVM 19.1.1, 256 bits)", cpu, wgpu::Backend::Gl),
        ] {
            assert_eq!(loop_limit(&info), Some(MAX_LOOP_STEPS), "{}", info.name);
        }
        for info in [
            named(
                "NVIDIA H200",
                wgpu::DeviceType::DiscreteGpu,
                wgpu::Backend::Vulkan,
            ),
            named("Microsoft Basic Render Driver", cpu, wgpu::Backend::Dx12),
        ] {
            assert_eq!(loop_limit(&info), None, "{}", info.name);
        }
    }
}
