//! Rust wrappers for the WGSL kernels in `shaders/`: each builds `Dispatch`es from tensors and shapes,
//! deriving workgroup counts, and states the FLOPs and bytes of each launch. One module per shader file;
//! the CPU twin of each module is in `crate::reference` under the same name. Each module also lists its
//! shader's `Contract` with the host (the structs and constants both sides declare), which
//! tests/shaders.rs checks against the shader with naga.

pub mod activation;
pub mod avgpool2d;
pub mod batch_norm;
pub mod column_sum;
pub mod conv2d;
pub mod dropout;
pub mod gather;
pub mod matmul;
pub mod maxpool2d;
pub mod optimizer;
mod pool_window;
pub mod softmax_cross_entropy;

use crate::gpu::Shader;

/// Declares a `static SHADER` for a file under `shaders/`, optionally with the shared files under
/// `shaders/common/` that it includes (`shader!("dropout.wgsl", includes [STEP_STATE])`).
macro_rules! shader {
    ($file:literal) => {
        $crate::kernels::shader!($file, includes []);
    };
    ($file:literal, includes [$($include:expr),*]) => {
        pub static SHADER: $crate::gpu::Shader = $crate::gpu::Shader {
            name: $file,
            source: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $file)),
            includes: &[$(&$include),*],
        };
    };
}
pub(crate) use shader;

/// Declarations several shaders share, in `shaders/common/`; a shader names the ones it includes in
/// its `shader!` line and pulls each in with a `//!include common/NAME.wgsl` line (`Shader::wgsl`).
pub mod common {
    use crate::gpu::Shader;

    macro_rules! common {
        ($name:ident, $file:literal) => {
            pub static $name: Shader = Shader {
                name: concat!("common/", $file),
                source: include_str!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/shaders/common/",
                    $file
                )),
                includes: &[],
            };
        };
    }

    common!(STEP_STATE, "step_state.wgsl");
    common!(MATMUL_PARAMS, "matmul_params.wgsl");
    common!(PCG, "pcg.wgsl");
    common!(DROPOUT_MASK, "dropout_mask.wgsl");
    common!(MATMUL_SUMS, "matmul_sums.wgsl");
    common!(METRICS, "metrics.wgsl");
    common!(POOL_WINDOW, "pool_window.wgsl");

    /// Every file under `shaders/common/`.
    pub fn all() -> [&'static Shader; 7] {
        [
            &STEP_STATE,
            &MATMUL_PARAMS,
            &PCG,
            &DROPOUT_MASK,
            &MATMUL_SUMS,
            &METRICS,
            &POOL_WINDOW,
        ]
    }
}

/// What one shader shares with the host besides its bindings: the `#[repr(C)]` structs both sides
/// declare (uniform parameters, `StepState`, metrics) and the WGSL `const`s that mirror a Rust
/// constant (array bounds and tiles, which WGSL cannot take from an override). tests/shaders.rs
/// reflects each shader with naga and checks every entry, so a contract changed on one side only
/// fails without a GPU. Workgroup sizes that are `override`s need no entry: they have no default in
/// WGSL, so a pipeline the host does not give them fails to build.
pub struct Contract {
    pub shader: &'static Shader,
    pub structs: Vec<HostStruct>,
    /// (name of a WGSL `const`, the value of the Rust constant it mirrors).
    pub consts: Vec<(&'static str, u32)>,
}

/// A `#[repr(C)]` Rust struct as the host lays it out, to compare with the WGSL struct of that name.
#[derive(Debug)]
pub struct HostStruct {
    pub name: &'static str,
    pub size: usize,
    pub fields: Vec<HostField>,
}

#[derive(Debug)]
pub struct HostField {
    pub name: &'static str,
    pub offset: usize,
    /// The WGSL type the Rust field's type must meet, e.g. `u32`, or `PoolWindow` for a nested struct.
    pub wgsl_type: &'static str,
}

/// A Rust type that crosses to WGSL, and the WGSL type it is there: a scalar, or a struct both sides
/// declare (nested in another, as `maxpool2d`'s `Params` holds a `PoolWindow`).
pub trait WgslType {
    const WGSL: &'static str;
}

impl WgslType for u32 {
    const WGSL: &'static str = "u32";
}

impl WgslType for f32 {
    const WGSL: &'static str = "f32";
}

/// The WGSL type of the field a projection `|s| &s.field` reaches (used by `host_struct!`).
pub fn wgsl_type<S, T: WgslType>(_field: fn(&S) -> &T) -> &'static str {
    T::WGSL
}

/// `host_struct!(Params { m, n, k })`: the layout of `Params` with every field listed, in order.
macro_rules! host_struct {
    ($ty:ident { $($field:ident),* $(,)? }) => {
        $crate::kernels::HostStruct {
            name: stringify!($ty),
            size: ::std::mem::size_of::<$ty>(),
            fields: vec![$($crate::kernels::HostField {
                name: stringify!($field),
                offset: ::std::mem::offset_of!($ty, $field),
                wgsl_type: $crate::kernels::wgsl_type::<$ty, _>(|s| &s.$field),
            }),*],
        }
    };
}
pub(crate) use host_struct;

/// The contract of every shader the crate compiles, one or more per kernel module.
pub fn contracts() -> Vec<Contract> {
    [
        avgpool2d::contracts(),
        batch_norm::contracts(),
        column_sum::contracts(),
        conv2d::contracts(),
        dropout::contracts(),
        gather::contracts(),
        matmul::contracts(),
        maxpool2d::contracts(),
        optimizer::contracts(),
        activation::contracts(),
        softmax_cross_entropy::contracts(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Every shader the crate compiles, for validation. `matmul::subgroup::SHADER` compiles only on
/// devices with Features::SUBGROUP.
pub fn all_shaders() -> Vec<&'static Shader> {
    contracts().iter().map(|c| c.shader).collect()
}

/// Values that change from one training step to the next, in a small storage buffer the host rewrites
/// (with `queue.write_buffer`, not a round trip) before each step's submission. Kernels that need them
/// bind it read-only and include its WGSL twin, `shaders/common/step_state.wgsl`.
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

    /// Its entry in the contract of every shader that includes `common/step_state.wgsl`.
    fn host_struct() -> HostStruct {
        host_struct!(StepState {
            step,
            lr,
            adam_alpha,
            _pad
        })
    }
}

/// Workgroups for `n` invocations of a 1-D kernel with `size`-wide workgroups, within the adapter's limit.
pub(crate) fn grid(gpu: &crate::gpu::Gpu, n: usize, size: u32) -> [u32; 3] {
    let groups = (n as u64).div_ceil(size as u64);
    let groups = u32::try_from(groups).expect("too many workgroups for a 1-D kernel");
    crate::gpu::grid_1d(groups, gpu.limits.max_compute_workgroups_per_dimension)
}
