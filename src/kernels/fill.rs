//! Filling a tensor with one value, `shaders/fill.wgsl`.

use crate::gpu::{Cost, Dispatch, Gpu, Tensor};

super::shader!("fill.wgsl");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    value: f32,
}

pub fn fill(gpu: &Gpu, out: &Tensor, value: f32) -> Dispatch {
    let params = Params {
        len: out.len as u32,
        value,
    };
    gpu.dispatch(
        "fill",
        &SHADER,
        "fill",
        &[],
        &params,
        &[out],
        super::grid(gpu, out.len, 256),
        Cost {
            flops: 0,
            bytes: out.bytes(),
        },
    )
}
