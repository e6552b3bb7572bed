//! Everything that knows about wgpu lives under this folder: the device, buffers, the pipeline cache and
//! the recording of dispatches. The rest of the crate talks in `Tensor`s and `Dispatch`es.

mod buffer;
mod context;
mod error;
pub mod flavours;
mod kernel;
mod submit;
pub mod timing;

pub use buffer::{Tensor, WORD};
pub use context::{
    AdapterSummary, BackendChoice, Gpu, GpuOptions, LimitsChoice, OptionalFeature, list_adapters,
};
pub use error::{GpuError, human_bytes};
pub use flavours::{
    ColumnSumFlavour, Conv2dFlavour, FlavourChoice, KernelFlavours, MATMUL_SUBGROUP_LANES,
    MAX_LOOP_STEPS, MatmulFlavour, Tiling, WorkgroupNeeds,
};
pub use kernel::{CompiledPipeline, Cost, Dispatch, Kernels, Shader, grid_1d, run_dispatches};
pub use submit::{
    InFlight, MAX_STEPS_PER_SUBMISSION, Op, Pacer, Readback, StepsPerSubmission, Submission,
    SubmitStats,
};
