// The window of a 2-D pooling, channels-last: x [n, h, w, c] pooled into y [n, oh, ow, c]. Output
// (oy, ox) covers input rows oy*stride_h - pad_top + [0, pool_h) and columns
// ox*stride_w - pad_left + [0, pool_w); the pads are 'same' padding's (0 for 'valid'), and the cells
// they add lie outside the input. avgpool2d.wgsl and maxpool2d.wgsl take it from the host
// (`kernels::pool_window::PoolWindow`, from a `Pool2dShape`) and walk it with the functions below.
struct PoolWindow {
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

// The in-bounds input range [lo, hi) of the window of output coordinate `o` along one axis.
fn pool_span(o: u32, stride: u32, pad: u32, pool: u32, size: u32) -> vec2<u32> {
    let start = i32(o * stride) - i32(pad);
    let lo = u32(max(start, 0));
    let hi = u32(min(start + i32(pool), i32(size)));
    return vec2<u32>(lo, hi);
}

// The input rows [lo, hi) of output row `oy`'s window that lie inside the input.
fn window_rows(win: PoolWindow, oy: u32) -> vec2<u32> {
    return pool_span(oy, win.stride_h, win.pad_top, win.pool_h, win.h);
}

// The input columns [lo, hi) of output column `ox`'s window that lie inside the input.
fn window_cols(win: PoolWindow, ox: u32) -> vec2<u32> {
    return pool_span(ox, win.stride_w, win.pad_left, win.pool_w, win.w);
}

// The outputs [first, last] along one axis whose windows contain input coordinate `i`; empty when
// first > last. Input row iy lies in the windows of rows oy with
// oy*stride_h - pad_top <= iy <= oy*stride_h - pad_top + pool_h - 1, i.e.
// ceil((iy + pad_top + 1 - pool_h) / stride_h) <= oy <= floor((iy + pad_top) / stride_h); columns alike.
fn pool_containing(i: u32, pad: u32, pool: u32, stride: u32, outs: u32) -> vec2<i32> {
    let lo = i32(i + pad + 1u) - i32(pool);
    var first = 0;
    if lo > 0 {
        first = (lo + i32(stride) - 1) / i32(stride);
    }
    let last = min(i32((i + pad) / stride), i32(outs) - 1);
    return vec2<i32>(first, last);
}

// The output rows [first, last] whose windows contain input row `iy`.
fn rows_containing(win: PoolWindow, iy: u32) -> vec2<i32> {
    return pool_containing(iy, win.pad_top, win.pool_h, win.stride_h, win.oh);
}

// The output columns [first, last] whose windows contain input column `ix`.
fn cols_containing(win: PoolWindow, ix: u32) -> vec2<i32> {
    return pool_containing(ix, win.pad_left, win.pool_w, win.stride_w, win.ow);
}
