//! Dense-layer products, `shaders/matmul.wgsl`.

use crate::gpu::{Cost, Dispatch, Gpu, Tensor, WORD};
use crate::shape::MatmulShape;

super::shader!("matmul.wgsl");

const WG_X: u32 = 8;
const WG_Y: u32 = 8;
/// Outputs per invocation along each axis (the register tile in the shader).
const TILE: usize = 4;
/// The tiled entry points (constants in the shader): invocations per workgroup, rows of C per
/// invocation, column quads per invocation (`matmul_tile`) and columns per invocation
/// (`matmul_tile_nt`).
const TILE_WG: usize = 16;
const TM: usize = 8;
const TQ: usize = 4;
const TN: usize = 8;

/// The entry point for `s` and its workgroup counts: a register-tiled kernel (8x16 or 8x8 outputs per
/// invocation, see the shader for why lavapipe needs that) when the widths allow vec4 loads (every
/// dense layer whose sizes are multiples of 4), else the general 4x4 kernel.
fn entry_point(s: MatmulShape) -> (&'static str, [u32; 3]) {
    let rows = s.m.div_ceil(TM) as u32;
    match (s.trans_a, s.trans_b) {
        (_, false) if s.n.is_multiple_of(4) => (
            "matmul_tile",
            [(s.n / 4).div_ceil(TILE_WG * TQ) as u32, rows, 1],
        ),
        (false, true) if s.k.is_multiple_of(4) => (
            "matmul_tile_nt",
            [s.n.div_ceil(TILE_WG * TN) as u32, rows, 1],
        ),
        _ => (
            "matmul",
            [
                s.n.div_ceil(TILE).div_ceil(WG_X as usize) as u32,
                s.m.div_ceil(TILE).div_ceil(WG_Y as usize) as u32,
                1,
            ],
        ),
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    has_bias: u32,
}

/// c = op(a) * op(b) (+ bias broadcast over rows). Without a bias, `a` is bound in its place (a binding
/// cannot be left empty, and binding `c` twice would alias a writable buffer) and never read.
pub fn matmul(
    gpu: &Gpu,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    c: &Tensor,
    s: MatmulShape,
) -> Dispatch {
    assert_eq!(a.len, s.m * s.k, "matmul: A has the wrong size for {s:?}");
    assert_eq!(b.len, s.k * s.n, "matmul: B has the wrong size for {s:?}");
    assert_eq!(c.len, s.m * s.n, "matmul: C has the wrong size for {s:?}");
    if let Some(bias) = bias {
        assert_eq!(bias.len, s.n, "matmul: bias has the wrong size for {s:?}");
    }
    let name = match (s.trans_a, s.trans_b) {
        (false, false) => "matmul_nn",
        (false, true) => "matmul_nt",
        (true, false) => "matmul_tn",
        (true, true) => "matmul_tt",
    };
    let params = Params {
        m: s.m as u32,
        n: s.n as u32,
        k: s.k as u32,
        has_bias: bias.is_some() as u32,
    };
    let (entry, groups) = entry_point(s);
    let bias_len = if bias.is_some() { s.n } else { 0 };
    let cost = Cost {
        flops: 2 * (s.m * s.n * s.k) as u64 + (s.m * bias_len) as u64,
        bytes: (s.m * s.k + s.k * s.n + bias_len + s.m * s.n) as u64 * WORD,
    };
    gpu.dispatch(
        name,
        &SHADER,
        entry,
        &[
            ("TRANS_A", s.trans_a as u32 as f64),
            ("TRANS_B", s.trans_b as u32 as f64),
            ("WG_X", WG_X as f64),
            ("WG_Y", WG_Y as f64),
        ],
        &params,
        &[a, b, bias.unwrap_or(a), c],
        groups,
        cost,
    )
}
