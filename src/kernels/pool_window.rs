//! The window of a 2-D pooling as the pooling kernels take it: `shaders/common/pool_window.wgsl`,
//! `avgpool2d`'s parameters and a field of `maxpool2d`'s.

use crate::shape::Pool2dShape;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct PoolWindow {
    n: u32,
    h: u32,
    w: u32,
    c: u32,
    pool_h: u32,
    pool_w: u32,
    stride_h: u32,
    stride_w: u32,
    oh: u32,
    ow: u32,
    pad_top: u32,
    pad_left: u32,
}

impl PoolWindow {
    /// The window of `s`, which the pooling kernel `kernel` checks first (`Pool2dShape::assert_valid`).
    pub(super) fn of(s: &Pool2dShape, kernel: &str) -> PoolWindow {
        s.assert_valid(kernel);
        PoolWindow {
            n: s.n as u32,
            h: s.h as u32,
            w: s.w as u32,
            c: s.c as u32,
            pool_h: s.pool_h as u32,
            pool_w: s.pool_w as u32,
            stride_h: s.stride_h as u32,
            stride_w: s.stride_w as u32,
            oh: s.out_h() as u32,
            ow: s.out_w() as u32,
            pad_top: s.pad_top() as u32,
            pad_left: s.pad_left() as u32,
        }
    }

    /// Its entry in the contract of every shader that includes `common/pool_window.wgsl`.
    pub(super) fn host_struct() -> super::HostStruct {
        super::host_struct!(PoolWindow {
            n,
            h,
            w,
            c,
            pool_h,
            pool_w,
            stride_h,
            stride_w,
            oh,
            ow,
            pad_top,
            pad_left
        })
    }
}

impl super::WgslType for PoolWindow {
    const WGSL: &'static str = "PoolWindow";
}
