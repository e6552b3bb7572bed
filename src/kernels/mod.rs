//! Rust wrappers for the WGSL kernels in `shaders/`: each builds `Dispatch`es from tensors and shapes,
//! deriving workgroup counts, and states the FLOPs and bytes of each launch. One module per shader file;
//! the CPU twin of each module is in `crate::reference` under the same name.

pub mod activation;
pub mod conv2d;
pub mod dropout;
pub mod fill;
pub mod gather;
pub mod matmul;
pub mod maxpool2d;
pub mod optimizer;
pub mod reduce;
pub mod softmax_cross_entropy;

use crate::gpu::Shader;

/// Declares a `static SHADER` for a file under `shaders/`.
macro_rules! shader {
    ($file:literal) => {
        pub static SHADER: $crate::gpu::Shader = $crate::gpu::Shader {
            name: $file,
            source: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $file)),
        };
    };
}
pub(crate) use shader;

/// Every shader the crate compiles, for validation and for warming the pipeline cache.
/// `matmul::subgroup::SHADER` compiles only on devices with Features::SUBGROUP.
pub fn all_shaders() -> [&'static Shader; 11] {
    [
        &activation::SHADER,
        &conv2d::SHADER,
        &dropout::SHADER,
        &fill::SHADER,
        &gather::SHADER,
        &matmul::SHADER,
        &matmul::subgroup::SHADER,
        &maxpool2d::SHADER,
        &optimizer::SHADER,
        &reduce::SHADER,
        &softmax_cross_entropy::SHADER,
    ]
}

/// Values that change from one training step to the next, in a small storage buffer the host rewrites
/// (with `queue.write_buffer`, not a round trip) before each step's submission. Kernels that need them
/// bind it read-only and declare the same struct:
/// ```wgsl
/// struct StepState { step: u32, lr: f32, adam_alpha: f32, _pad: u32 }
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct StepState {
    /// Training step, counted from 0 over the whole run (dropout masks and Adam depend on it).
    pub step: u32,
    /// Learning rate for this step.
    pub lr: f32,
    /// Adam's step size with bias correction, lr * sqrt(1 - beta2^t) / (1 - beta1^t), t = step + 1,
    /// computed on the host in f32 as Keras does.
    pub adam_alpha: f32,
    pub _pad: u32,
}

impl StepState {
    pub const WORDS: usize = 4;

    pub fn words(&self) -> [u32; 4] {
        bytemuck::cast(*self)
    }
}

/// Workgroups for `n` invocations of a 1-D kernel with `size`-wide workgroups, within the adapter's limit.
pub(crate) fn grid(gpu: &crate::gpu::Gpu, n: usize, size: u32) -> [u32; 3] {
    let groups = (n as u64).div_ceil(size as u64);
    let groups = u32::try_from(groups).expect("too many workgroups for a 1-D kernel");
    crate::gpu::grid_1d(groups, gpu.limits.max_compute_workgroups_per_dimension)
}
