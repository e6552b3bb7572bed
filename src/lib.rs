//! cifar-wgpu: train convolutional networks on any GPU through raw WebGPU.
//!
//! Every kernel is a hand-written WGSL compute shader (`shaders/`) with a CPU twin in [`reference`].
//! See ARCHITECTURE.md for how data flows from the archive to the weights file.

pub mod data;
pub mod gpu;
pub mod keras;
pub mod kernels;
pub mod layers;
pub mod metrics;
pub mod model;
pub mod optimizer;
pub mod reference;
pub mod report;
pub mod session;
pub mod shape;
pub mod train;
