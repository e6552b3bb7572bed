//! Strided 2-D convolution, channels-last, forward and backward: `shaders/conv2d.wgsl`.
//!
//! x [n, h, w, cin], w [kh, kw, cin, cout] (Keras' layout), b [cout] or none (`use_bias=False`),
//! y / dy [n, oh, ow, cout].
//! The weight gradient (with the bias gradient, when both lie in one buffer) ends in
//! `column_sum::column_sum`; see each function for its scratch space.

use crate::gpu::{Conv2dFlavour, Cost, Dispatch, Gpu, Tensor, WORD};
use crate::kernels::column_sum::{
    column_sum, column_sum_scratch, loop_steps as column_sum_loop_steps,
};
use crate::shape::{Conv2dShape, Padding};

super::shader!("conv2d.wgsl");

pub(super) fn contracts() -> Vec<super::Contract> {
    let bounds = Conv2dTiles::SOFTWARE;
    vec![super::Contract {
        shader: &SHADER,
        structs: vec![super::host_struct!(Params {
            n,
            h,
            w,
            cin,
            cout,
            kh,
            kw,
            oh,
            ow,
            pad_top,
            pad_left,
            stride_h,
            stride_w,
            rows_per_chunk,
            relu,
            bias,
            row_len,
            bias_at,
            _pad0,
            _pad1
        })],
        consts: vec![
            ("MAX_PX", PX as u32),
            ("MAX_FPX", bounds.forward_pixels),
            ("MAX_FCQ", bounds.forward_quads),
            ("MAX_TK", bounds.weight_rows),
            ("MAX_BCQ", bounds.weight_quads),
        ],
    }]
}

/// Invocations per workgroup (1-D grids).
const WG: u32 = 64;
/// Register tile of the input-gradient kernel: PX pixels along a row x 4 channels (the shader's `PX`
/// override, and its array bound `MAX_PX`).
const PX: usize = 8;
/// Fewest rows (n, oy, ox) summed by one invocation of the weight-gradient kernel's first pass. The
/// notebook at batch 128 has 131,072 rows: 1,024 chunks and a one-pass column sum.
const ROWS_PER_CHUNK: usize = 128;

/// Register tiles of `conv2d_forward` and `conv2d_backward_weight`: the shader's override constants.
/// Two sets, chosen by `gpu.flavours.conv2d` (docs/PERFORMANCE.md has the measurements behind them);
/// the `_tiled` functions take one explicitly, so tests check both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dTiles {
    /// `conv2d_forward`: pixels along a row per invocation (1 to 32).
    pub forward_pixels: u32,
    /// `conv2d_forward`: quads of output channels per invocation (1 to 8).
    pub forward_quads: u32,
    /// `conv2d_backward_weight`: kernel rows (i, j, ci) per invocation (1 to 27).
    pub weight_rows: u32,
    /// `conv2d_backward_weight`: quads of output channels per invocation (1 to 8).
    pub weight_quads: u32,
    /// Whether the `_vec4` entry points run where the shape allows them (cout a multiple of 4, and for
    /// the weight gradient its partial sums' row too): each quad of channels of w, b, y, dy and the
    /// partial sums is then one vec4 access instead of four, and each accumulator is loaded and
    /// stored once per three input channels (forward) or two rows (weight gradient) instead of
    /// once per term; the same sums in the same order, so the same bits. Both sets say yes; false
    /// runs the scalar entry points, for tests and timings.
    pub vec4: bool,
}

impl Conv2dTiles {
    /// Small tiles, many invocations: what a real GPU wants (the notebook layer at batch 128 is
    /// 131,072 forward and 57,344 weight-gradient invocations; docs/PERFORMANCE.md has the timings).
    pub const GPU: Conv2dTiles = Conv2dTiles {
        forward_pixels: 8,
        forward_quads: 1,
        weight_rows: 4,
        weight_quads: 1,
        vec4: true,
    };
    /// Big tiles, few invocations: what lavapipe wants, where every load is emulated lane by lane
    /// (the notebook layer at batch 128: 4,096 forward and 1,024 weight-gradient invocations). These
    /// are also the shader's array bounds (`MAX_FPX`, `MAX_FCQ`, `MAX_TK`, `MAX_BCQ`, checked by
    /// tests/shaders.rs): lavapipe only unrolls the tile loops, and so keeps the tiles out of scratch
    /// memory, when a tile equals its bound.
    pub const SOFTWARE: Conv2dTiles = Conv2dTiles {
        forward_pixels: 32,
        forward_quads: 8,
        weight_rows: 27,
        weight_quads: 8,
        vec4: true,
    };

    /// The tiles of `gpu.flavours.conv2d`.
    pub fn of(gpu: &Gpu) -> Conv2dTiles {
        match gpu.flavours.conv2d {
            Conv2dFlavour::BigTiles => Conv2dTiles::SOFTWARE,
            Conv2dFlavour::SmallTiles => Conv2dTiles::GPU,
        }
    }

    fn check(&self) {
        let max = Conv2dTiles::SOFTWARE;
        assert!(
            (1..=max.forward_pixels).contains(&self.forward_pixels)
                && (1..=max.forward_quads).contains(&self.forward_quads)
                && (1..=max.weight_rows).contains(&self.weight_rows)
                && (1..=max.weight_quads).contains(&self.weight_quads),
            "conv2d: tiles {self:?} exceed the shader's register arrays"
        );
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    h: u32,
    w: u32,
    cin: u32,
    cout: u32,
    kh: u32,
    kw: u32,
    oh: u32,
    ow: u32,
    pad_top: u32,
    pad_left: u32,
    stride_h: u32,
    stride_w: u32,
    rows_per_chunk: u32,
    /// Nonzero: the forward ends in a ReLU; the input gradient is masked by x > 0.
    relu: u32,
    /// Nonzero: the forward adds the bias; the weight gradient also sums the bias's.
    bias: u32,
    /// The weight gradient's words per chunk of partial sums, and the first of the bias's among them.
    row_len: u32,
    bias_at: u32,
    _pad0: u32,
    _pad1: u32,
}

impl Params {
    fn of(s: &Conv2dShape) -> Params {
        assert!(
            s.kh >= 1
                && s.kw >= 1
                && s.cin >= 1
                && s.cout >= 1
                && s.stride_h >= 1
                && s.stride_w >= 1,
            "conv2d: empty shape or zero stride {s:?}"
        );
        assert!(
            s.padding == Padding::Same || (s.kh <= s.h && s.kw <= s.w),
            "conv2d: kernel larger than the input {s:?}"
        );
        Params {
            n: s.n as u32,
            h: s.h as u32,
            w: s.w as u32,
            cin: s.cin as u32,
            cout: s.cout as u32,
            kh: s.kh as u32,
            kw: s.kw as u32,
            oh: s.out_h() as u32,
            ow: s.out_w() as u32,
            pad_top: s.pad_top() as u32,
            pad_left: s.pad_left() as u32,
            stride_h: s.stride_h as u32,
            stride_w: s.stride_w as u32,
            rows_per_chunk: 0,
            relu: 0,
            bias: 0,
            row_len: 0,
            bias_at: 0,
            _pad0: 0,
            _pad1: 0,
        }
    }
}

/// Multiply-adds of one convolution, counting every tap (padded ones too, as frameworks do).
fn macs(s: &Conv2dShape) -> u64 {
    (s.output_len() * s.kh * s.kw * s.cin) as u64
}

/// y = conv(x, w) + b, bias fused (none when `b` is `None`: a layer without bias), then max(y, 0)
/// when `relu` (the layer's ReLU, fused: an exact select, the bits of `activation_forward` with
/// ReLU after the convolution), with the adapter's tiles (`Conv2dTiles::of`).
pub fn conv2d_forward(
    gpu: &Gpu,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    relu: bool,
    y: &Tensor,
    s: Conv2dShape,
) -> Dispatch {
    conv2d_forward_tiled(gpu, x, w, b, relu, y, s, Conv2dTiles::of(gpu))
}

/// `conv2d_forward` with explicit tiles. One invocation computes `forward_pixels` output pixels of a
/// row x 4 * `forward_quads` output channels; `conv2d_forward_vec4` where cout is a multiple of 4
/// (and `tiles.vec4`), else `conv2d_forward`: the same bits. Cost: 2 FLOPs per multiply-add plus
/// the bias add (and the ReLU's select); x, w, b read once and y written once.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward_tiled(
    gpu: &Gpu,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    relu: bool,
    y: &Tensor,
    s: Conv2dShape,
    tiles: Conv2dTiles,
) -> Dispatch {
    tiles.check();
    assert_eq!(
        x.len,
        s.input_len(),
        "conv2d_forward: x has the wrong size for {s:?}"
    );
    assert_eq!(
        w.len,
        s.kernel_len(),
        "conv2d_forward: w has the wrong size for {s:?}"
    );
    if let Some(b) = b {
        assert_eq!(
            b.len, s.cout,
            "conv2d_forward: b has the wrong size for {s:?}"
        );
    }
    assert_eq!(
        y.len,
        s.output_len(),
        "conv2d_forward: y has the wrong size for {s:?}"
    );
    let (px, quads) = (tiles.forward_pixels, tiles.forward_quads);
    let invocations =
        s.n * s.out_h() * s.out_w().div_ceil(px as usize) * s.cout.div_ceil(4 * quads as usize);
    let biased = b.is_some();
    let entry = if tiles.vec4 && s.cout.is_multiple_of(4) {
        "conv2d_forward_vec4"
    } else {
        "conv2d_forward"
    };
    let cost = Cost {
        flops: 2 * macs(&s) + (biased as u64 + relu as u64) * s.output_len() as u64,
        bytes: (s.input_len() + s.kernel_len() + biased as usize * s.cout + s.output_len()) as u64
            * WORD,
    };
    // Without a bias, w is bound in its place (a binding cannot be left empty) and never read.
    gpu.dispatch(
        "conv2d_forward",
        &SHADER,
        entry,
        &[("WG", WG as f64), ("FPX", px as f64), ("FCQ", quads as f64)],
        &Params {
            relu: relu as u32,
            bias: biased as u32,
            ..Params::of(&s)
        },
        &[x, w, b.unwrap_or(w), y],
        super::grid(gpu, invocations, WG),
        cost,
    )
}

/// dx = full correlation of dy with the flipped kernel: the gradient of the loss with respect to x,
/// for any padding and strides. With `relu_mask` (the layer's input x, a ReLU's output), dx is then zeroed where
/// x <= 0: that ReLU's backward, fused (an exact select, the bits of `activation_backward` with ReLU). Every
/// element of dx is written. One invocation: 8 input pixels of a row x 4 input channels. Cost: 2 FLOPs
/// per multiply-add (the forward's count); dy, w (and x) read once, dx written once.
pub fn conv2d_backward_input(
    gpu: &Gpu,
    dy: &Tensor,
    w: &Tensor,
    relu_mask: Option<&Tensor>,
    dx: &Tensor,
    s: Conv2dShape,
) -> Dispatch {
    assert_eq!(
        dy.len,
        s.output_len(),
        "conv2d_backward_input: dy has the wrong size for {s:?}"
    );
    assert_eq!(
        w.len,
        s.kernel_len(),
        "conv2d_backward_input: w has the wrong size for {s:?}"
    );
    assert_eq!(
        dx.len,
        s.input_len(),
        "conv2d_backward_input: dx has the wrong size for {s:?}"
    );
    if let Some(x) = relu_mask {
        assert_eq!(
            x.len,
            s.input_len(),
            "conv2d_backward_input: the mask has the wrong size for {s:?}"
        );
    }
    let invocations = s.n * s.h * s.w.div_ceil(PX) * s.cin.div_ceil(4);
    let masked = relu_mask.is_some() as u64;
    let cost = Cost {
        flops: 2 * macs(&s),
        bytes: (s.output_len() + s.kernel_len() + (1 + masked as usize) * s.input_len()) as u64
            * WORD,
    };
    // Without a mask, dy is bound in its place (a binding cannot be left empty) and never read.
    gpu.dispatch(
        "conv2d_backward_input",
        &SHADER,
        "conv2d_backward_input",
        &[("WG", WG as f64), ("PX", PX as f64)],
        &Params {
            relu: masked as u32,
            ..Params::of(&s)
        },
        &[dy, w, dx, relu_mask.unwrap_or(dy)],
        super::grid(gpu, invocations, WG),
        cost,
    )
}

/// Rows per chunk and chunks of the weight gradient's first pass: chunks of `ROWS_PER_CHUNK` rows, or
/// of twice, four times ... as many, until `column_sum` adds the chunks in one pass. That pass then
/// needs no scratch of its own, which matters: a second pass would read the partial sums and write its
/// own partials in the same scratch buffer within one dispatch, and wgpu tracks usage per buffer, so
/// a read-only and a read-write binding of one buffer conflict even on disjoint ranges.
fn weight_chunks(s: &Conv2dShape) -> (usize, usize) {
    let rows = s.n * s.out_h() * s.out_w();
    let mut per_chunk = ROWS_PER_CHUNK;
    while column_sum_scratch(rows.div_ceil(per_chunk), s.kernel_len()) != 0 {
        per_chunk *= 2;
    }
    (per_chunk, rows.div_ceil(per_chunk))
}

/// Words per chunk of the weight gradient's partial sums: the kernel's, or with a bias whose first word
/// lies `bias_at` words after the kernel's first (`Tensor::span_to`), the whole span's.
fn weight_row(s: &Conv2dShape, bias_at: Option<usize>) -> usize {
    match bias_at {
        Some(at) => {
            assert!(
                at >= s.kernel_len(),
                "conv2d_backward_weight: the bias gradient at word {at} overlaps the kernel's {} words",
                s.kernel_len()
            );
            at + s.cout
        }
        None => s.kernel_len(),
    }
}

/// The most loop iterations one invocation of the convolution's kernels takes (`Gpu::loop_limit`):
/// the forward's taps and input channels (nested: a row's taps, a tap's channels; or three channels
/// a step in one loop), the input gradient's taps and output channels, the weight gradient's rows
/// per chunk and the column sums of its chunks, and the bias gradient's column sums.
pub fn loop_steps(s: Conv2dShape) -> usize {
    let taps = |channels: usize| s.kh * (1 + s.kw * (1 + channels));
    let (per_chunk, chunks) = weight_chunks(&s);
    let rows = s.n * s.out_h() * s.out_w();
    [
        taps(s.cin),
        taps(s.cout),
        per_chunk,
        column_sum_loop_steps(chunks),
        column_sum_loop_steps(rows),
    ]
    .into_iter()
    .max()
    .unwrap_or(0)
}

/// Scratch words `conv2d_backward_weight` needs: the partial sums [chunks, row], a row laid out like
/// the gradient it is summed into: the kernel's kh*kw*cin*cout words, or with a bias at `bias_at`
/// (db's first word counted from dw's, as `Tensor::span_to` gives it) `bias_at + cout` words.
pub fn conv2d_weight_scratch(s: Conv2dShape, bias_at: Option<usize>) -> usize {
    weight_chunks(&s).1 * weight_row(&s, bias_at)
}

/// dw[i, j, ci, co] = sum over (n, oy, ox) of x[n, oy*sh + i - pt, ox*sw + j - pl, ci] * dy[n, oy, ox, co],
/// and with `db`, db[co] = sum over (n, oy, ox) of dy[n, oy, ox, co].
///
/// Two dispatches: partial sums over chunks of at least 128 rows into `scratch`, then `column_sum` of
/// those partials in one pass (see `weight_chunks`), with the adapter's tiles (`Conv2dTiles::of`).
/// `db` must lie after `dw` in the same buffer (`dw.span_to(db)` is `Some`, as in the flat gradient
/// buffer): the column sum then writes one view from dw's start to db's end, the words between them
/// (alignment padding) set to zero. Without `db` only dw is computed. `scratch` holds at least
/// `conv2d_weight_scratch(s, bias_at)` words and must not share a buffer with `x` or `dy`; its
/// contents are overwritten.
pub fn conv2d_backward_weight(
    gpu: &Gpu,
    x: &Tensor,
    dy: &Tensor,
    scratch: &Tensor,
    dw: &Tensor,
    db: Option<&Tensor>,
    s: Conv2dShape,
) -> Vec<Dispatch> {
    conv2d_backward_weight_tiled(gpu, x, dy, scratch, dw, db, s, Conv2dTiles::of(gpu))
}

/// `conv2d_backward_weight` with explicit tiles: one invocation of the first pass sums one chunk of
/// rows for `weight_rows` kernel rows x 4 * `weight_quads` output channels; those of the first
/// `weight_rows` also sum dy for db. The first pass is `conv2d_backward_weight_vec4` where cout and
/// the partial sums' row are multiples of 4 (and `tiles.vec4`), else `conv2d_backward_weight`: the
/// same bits.
/// Cost of the first pass: 2 FLOPs per multiply-add (and one per dy value summed for db); x and dy
/// read once, the partials written once.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_weight_tiled(
    gpu: &Gpu,
    x: &Tensor,
    dy: &Tensor,
    scratch: &Tensor,
    dw: &Tensor,
    db: Option<&Tensor>,
    s: Conv2dShape,
    tiles: Conv2dTiles,
) -> Vec<Dispatch> {
    tiles.check();
    assert_eq!(
        x.len,
        s.input_len(),
        "conv2d_backward_weight: x has the wrong size for {s:?}"
    );
    assert_eq!(
        dy.len,
        s.output_len(),
        "conv2d_backward_weight: dy has the wrong size for {s:?}"
    );
    assert_eq!(
        dw.len,
        s.kernel_len(),
        "conv2d_backward_weight: dw has the wrong size for {s:?}"
    );
    let (grad, bias_at) = match db {
        Some(db) => {
            assert_eq!(
                db.len, s.cout,
                "conv2d_backward_weight: db has the wrong size for {s:?}"
            );
            let (span, at) = dw
                .span_to(db)
                .expect("conv2d_backward_weight: db must lie after dw in the same buffer");
            (span, Some(at))
        }
        None => (dw.clone(), None),
    };
    let row = weight_row(&s, bias_at);
    let needed = conv2d_weight_scratch(s, bias_at);
    assert!(
        scratch.len >= needed,
        "conv2d_backward_weight: scratch holds {} words, needs {needed}",
        scratch.len,
    );
    let (per_chunk, chunks) = weight_chunks(&s);
    let kdim = s.kh * s.kw * s.cin;
    let partial = scratch.slice(0, chunks * row);
    let (tk, quads) = (tiles.weight_rows, tiles.weight_quads);
    let invocations = chunks * kdim.div_ceil(tk as usize) * s.cout.div_ceil(4 * quads as usize);
    let cost = Cost {
        flops: 2 * macs(&s) + bias_at.map_or(0, |_| s.output_len() as u64),
        bytes: (s.input_len() + s.output_len() + partial.len) as u64 * WORD,
    };
    let params = Params {
        rows_per_chunk: per_chunk as u32,
        bias: bias_at.is_some() as u32,
        row_len: row as u32,
        bias_at: bias_at.unwrap_or(0) as u32,
        ..Params::of(&s)
    };
    let entry = if tiles.vec4 && s.cout.is_multiple_of(4) && row.is_multiple_of(4) {
        "conv2d_backward_weight_vec4"
    } else {
        "conv2d_backward_weight"
    };
    let mut dispatches = vec![gpu.dispatch(
        "conv2d_backward_weight",
        &SHADER,
        entry,
        &[("WG", WG as f64), ("TK", tk as f64), ("BCQ", quads as f64)],
        &params,
        &[x, dy, &partial],
        super::grid(gpu, invocations, WG),
        cost,
    )];
    // One pass, so the column sum never touches its scratch argument.
    let reduce = column_sum(gpu, &partial, &partial, &grad, chunks, row);
    debug_assert_eq!(reduce.len(), 1);
    dispatches.extend(reduce);
    dispatches
}

/// Scratch words `conv2d_backward_bias` needs (0 for small outputs).
pub fn conv2d_bias_scratch(s: Conv2dShape) -> usize {
    column_sum_scratch(s.n * s.out_h() * s.out_w(), s.cout)
}

/// db[co] = sum over (n, oy, ox) of dy[n, oy, ox, co]: `column_sum` of dy viewed as [n*oh*ow, cout],
/// with `scratch` of at least `conv2d_bias_scratch(s)` words. `conv2d_backward_weight` computes db
/// with dw when db lies after dw in one buffer; this is for a db elsewhere.
pub fn conv2d_backward_bias(
    gpu: &Gpu,
    dy: &Tensor,
    scratch: &Tensor,
    db: &Tensor,
    s: Conv2dShape,
) -> Vec<Dispatch> {
    assert_eq!(
        dy.len,
        s.output_len(),
        "conv2d_backward_bias: dy has the wrong size for {s:?}"
    );
    assert_eq!(
        db.len, s.cout,
        "conv2d_backward_bias: db has the wrong size for {s:?}"
    );
    column_sum(gpu, dy, scratch, db, s.n * s.out_h() * s.out_w(), s.cout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_steps_count_taps_channels_and_rows_per_invocation() {
        let conv = |n, side, cin, cout, k| Conv2dShape {
            n,
            h: side,
            w: side,
            cin,
            cout,
            kh: k,
            kw: k,
            stride_h: 1,
            stride_w: 1,
            padding: Padding::Same,
        };
        // The notebook's convolution at batch 128: the weight gradient's column sum of its 1024
        // chunks (of 128 rows) is the longest walk.
        assert_eq!(loop_steps(conv(128, 32, 3, 32, 3)), 1024 + 6);
        // Taps and input channels: 3 x (1 + 3 x (1 + 6000)); output channels likewise.
        assert_eq!(loop_steps(conv(1, 3, 6000, 1, 3)), 54012);
        assert_eq!(loop_steps(conv(1, 3, 1, 6000, 3)), 54012);
        // Rows: 2^26 of them (batch 1024 of 256x256) take chunks of 65536 rows, and a bias
        // gradient apart from the kernel's sums 2^18 chunks of 256 in its last pass.
        assert_eq!(weight_chunks(&conv(1024, 256, 1, 1, 1)), (65536, 1024));
        assert_eq!(loop_steps(conv(1024, 256, 1, 1, 1)), (1 << 18) + 6);
    }
}
