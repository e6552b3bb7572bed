// Strided 2-D convolution, channels-last, as Keras computes it (a correlation: the kernel is not
// flipped). x [N, H, W, CIN], w [KH, KW, CIN, COUT] (Keras' layout), b [COUT], y [N, OH, OW, COUT].
// Output pixel (oy, ox) meets input pixel (oy * SH + i - pad_top, ox * SW + j - pad_left) at tap
// (i, j); taps outside the input read zero. 'same' and 'valid' differ only in OH, OW and the pads
// (host-computed, TensorFlow's asymmetric 'same' padding included).
//
// Entry points (CPU twins of the same names in src/reference/conv2d.rs):
//   conv2d_forward          y = conv(x, w) + b, bias fused (or none), then optionally ReLU
//   conv2d_backward_input   dx = full correlation of the stride-dilated dy with the flipped kernel,
//                           optionally masked by x > 0 (the ReLU backward of the layer before)
//   conv2d_backward_weight  partial dW (and db) over one chunk of (n, oy, ox) rows, summed by
//                           column_sum.wgsl
// conv2d_forward_vec4 and conv2d_backward_weight_vec4 compute the same bits through vec4 views of the
// channel-fastest tensors, where the channel counts allow (src/kernels/conv2d.rs chooses).
//
// Every kernel keeps a register tile, so each value loaded feeds several multiply-adds and no barrier
// is needed. Loads are clamped and masked with `select`; only stores are guarded. Tile sizes are
// override constants set from Rust (`Conv2dTiles`), bounded by MAX_* array sizes. Two tile sets
// (`Conv2dFlavour`): big tiles for software adapters, which emulate every load lane by lane, and small
// ones for GPUs, which want many invocations. Mesa unrolls a tile loop (keeping the tile in registers)
// only when the tile equals its array bound, so the big set is the bounds. Timings: docs/PERFORMANCE.md.

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
    // conv2d_backward_weight: (n, oy, ox) rows summed by one invocation.
    rows_per_chunk: u32,
    // Nonzero: conv2d_forward ends in a ReLU, and conv2d_backward_input zeroes dx where x <= 0 (the
    // ReLU backward of the layer before). Both are exact selects, the same bits as activation.wgsl's ReLU.
    relu: u32,
    // Nonzero: conv2d_forward adds the bias, and conv2d_backward_weight writes the bias's partial sums
    // too; zero: the layer has none (use_bias=False), and the kernel is bound in the bias's place,
    // never read.
    bias: u32,
    // conv2d_backward_weight: words per chunk in the partial sums, and where in a chunk's words the
    // bias's sums start (when `bias`): [kernel sums | zero padding | bias sums], laid out like the
    // gradient span it is summed into.
    row_len: u32,
    bias_at: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// Invocations per workgroup, along x; the grid may spill into y (kernels/mod.rs `grid`).
override WG: u32;
// Register tile of conv2d_backward_input: PX neighbouring pixels of one row (at most MAX_PX) x 4
// channels.
override PX: u32;
const MAX_PX: u32 = 8u;
// Register tile of conv2d_forward: FPX neighbouring pixels of one row (at most MAX_FPX) x FCQ quads of
// output channels (at most MAX_FCQ).
override FPX: u32;
const MAX_FPX: u32 = 32u;
override FCQ: u32;
const MAX_FCQ: u32 = 8u;
// Register tile of conv2d_backward_weight: TK kernel rows (at most MAX_TK) x BCQ quads of output
// channels (at most MAX_BCQ).
override TK: u32;
const MAX_TK: u32 = 27u;
override BCQ: u32;
const MAX_BCQ: u32 = 8u;
// conv2d_backward_weight_vec4: rows (n, oy, ox) added per step of its row loop (see there).
const RB: u32 = 2u;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// Four channel indices from c0, clamped to the last channel (loads stay in bounds; stores are guarded).
fn channels(c0: u32, count: u32) -> vec4<u32> {
    return min(vec4<u32>(c0, c0 + 1u, c0 + 2u, c0 + 3u), vec4<u32>(count - 1u));
}

// ---------------------------------------------------------------------------------------------------
// Forward. One invocation: FPX neighbouring output pixels of one row x 4*FCQ output channels, so per
// (tap, input channel) FPX input loads and 4*FCQ kernel loads feed FPX*4*FCQ multiply-adds.
// Neighbouring invocations take neighbouring channel groups of the same pixels: they share input reads
// and read the kernel contiguously.

@group(0) @binding(1) var<storage, read> fwd_x: array<f32>;
@group(0) @binding(2) var<storage, read> fwd_w: array<f32>;
@group(0) @binding(3) var<storage, read> fwd_b: array<f32>;
@group(0) @binding(4) var<storage, read_write> fwd_y: array<f32>;

@compute @workgroup_size(WG)
fn conv2d_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let tc = 4u * FCQ;
    let groups = (p.cout + tc - 1u) / tc;
    let tiles = (p.ow + FPX - 1u) / FPX;
    if t >= groups * tiles * p.oh * p.n {
        return;
    }
    let co0 = (t % groups) * tc;
    let rest = t / groups;
    let ox0 = (rest % tiles) * FPX;
    let oy = (rest / tiles) % p.oh;
    let n = rest / tiles / p.oh;
    var co: array<vec4<u32>, MAX_FCQ>;
    for (var c = 0u; c < FCQ; c++) {
        co[c] = channels(co0 + 4u * c, p.cout);
    }

    var acc: array<array<vec4<f32>, MAX_FCQ>, MAX_FPX>;
    for (var q = 0u; q < FPX; q++) {
        for (var c = 0u; c < FCQ; c++) {
            acc[q][c] = vec4<f32>(0.0);
        }
    }
    for (var i = 0u; i < p.kh; i++) {
        let iy = i32(oy * p.stride_h + i) - i32(p.pad_top);
        if iy < 0 || iy >= i32(p.h) {
            continue;
        }
        let row = (n * p.h + u32(iy)) * p.w;
        for (var j = 0u; j < p.kw; j++) {
            // Where each pixel of the tile reads the input at this tap, and whether that is padding.
            var at: array<u32, MAX_FPX>;
            var inside: array<bool, MAX_FPX>;
            for (var q = 0u; q < FPX; q++) {
                let ix = i32((ox0 + q) * p.stride_w + j) - i32(p.pad_left);
                inside[q] = ix >= 0 && ix < i32(p.w);
                at[q] = (row + u32(clamp(ix, 0, i32(p.w) - 1))) * p.cin;
            }
            let tap = (i * p.kw + j) * p.cin;
            for (var ci = 0u; ci < p.cin; ci++) {
                let k = (tap + ci) * p.cout;
                var wv: array<vec4<f32>, MAX_FCQ>;
                for (var c = 0u; c < FCQ; c++) {
                    let kc = k + co[c];
                    wv[c] = vec4<f32>(fwd_w[kc.x], fwd_w[kc.y], fwd_w[kc.z], fwd_w[kc.w]);
                }
                for (var q = 0u; q < FPX; q++) {
                    let xv = select(0.0, fwd_x[at[q] + ci], inside[q]);
                    for (var c = 0u; c < FCQ; c++) {
                        acc[q][c] += xv * wv[c];
                    }
                }
            }
        }
    }
    for (var c = 0u; c < FCQ; c++) {
        let bias = vec4<f32>(fwd_b[co[c].x], fwd_b[co[c].y], fwd_b[co[c].z], fwd_b[co[c].w]);
        for (var q = 0u; q < FPX; q++) {
            let ox = ox0 + q;
            if ox < p.ow {
                let out = ((n * p.oh + oy) * p.ow + ox) * p.cout + co0 + 4u * c;
                var y = acc[q][c];
                if p.bias != 0u {
                    y += bias;
                }
                if p.relu != 0u {
                    y = select(y, vec4<f32>(0.0), y <= vec4<f32>(0.0));
                }
                for (var e = 0u; e < 4u; e++) {
                    if co0 + 4u * c + e < p.cout {
                        fwd_y[out + e] = y[e];
                    }
                }
            }
        }
    }
}

// conv2d_forward through vec4 views of w, b and y, when COUT is a multiple of 4: each quad of output
// channels is one load or store instead of four (lavapipe emulates every access lane by lane, so an
// access that moves four words costs little more than one that moves a word). The same tile and the
// same sums in the same order as conv2d_forward, so the same bits.

@group(0) @binding(1) var<storage, read> fwd4_x: array<f32>;
@group(0) @binding(2) var<storage, read> fwd4_w: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> fwd4_b: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> fwd4_y: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn conv2d_forward_vec4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let groups = (p.cout + 4u * FCQ - 1u) / (4u * FCQ);
    let tiles = (p.ow + FPX - 1u) / FPX;
    if t >= groups * tiles * p.oh * p.n {
        return;
    }
    // In quads: COUT / 4 per kernel row and output pixel; the tile's first, and its last in bounds.
    let quads = p.cout / 4u;
    let cq0 = (t % groups) * FCQ;
    let rest = t / groups;
    let ox0 = (rest % tiles) * FPX;
    let oy = (rest / tiles) % p.oh;
    let n = rest / tiles / p.oh;
    var cq: array<u32, MAX_FCQ>;
    for (var c = 0u; c < FCQ; c++) {
        cq[c] = min(cq0 + c, quads - 1u);
    }

    var acc: array<array<vec4<f32>, MAX_FCQ>, MAX_FPX>;
    for (var q = 0u; q < FPX; q++) {
        for (var c = 0u; c < FCQ; c++) {
            acc[q][c] = vec4<f32>(0.0);
        }
    }
    // Every tap and its input channels three at a time, so that each accumulator is loaded and
    // stored once per three multiply-adds (the tile lives in scratch memory), in the order of
    // conv2d_forward's; in one loop, as lavapipe ran the loops nested (rows, taps, channels) slower
    // (docs/PERFORMANCE.md). Channels past CIN read zero in x and w, and taps in the padding read
    // zero in x; they add +0.0 or -0.0 (w is finite), which changes no sum: an accumulator is never
    // -0.0 (it starts at +0.0, and only -0.0 + -0.0 is -0.0).
    var i = 0u;
    var j = 0u;
    var ci = 0u;
    for (var s = 0u; s < p.kh * p.kw * ((p.cin + 2u) / 3u); s++) {
        let iy = i32(oy * p.stride_h + i) - i32(p.pad_top);
        let row_inside = iy >= 0 && iy < i32(p.h);
        let row = (n * p.h + u32(clamp(iy, 0, i32(p.h) - 1))) * p.w;
        let has1 = ci + 1u < p.cin;
        let has2 = ci + 2u < p.cin;
        let c1 = min(ci + 1u, p.cin - 1u);
        let c2 = min(ci + 2u, p.cin - 1u);
        let tap = (i * p.kw + j) * p.cin;
        var w0: array<vec4<f32>, MAX_FCQ>;
        var w1: array<vec4<f32>, MAX_FCQ>;
        var w2: array<vec4<f32>, MAX_FCQ>;
        for (var c = 0u; c < FCQ; c++) {
            w0[c] = fwd4_w[(tap + ci) * quads + cq[c]];
            w1[c] = select(vec4<f32>(0.0), fwd4_w[(tap + c1) * quads + cq[c]], has1);
            w2[c] = select(vec4<f32>(0.0), fwd4_w[(tap + c2) * quads + cq[c]], has2);
        }
        for (var q = 0u; q < FPX; q++) {
            let ix = i32((ox0 + q) * p.stride_w + j) - i32(p.pad_left);
            let inside = row_inside && ix >= 0 && ix < i32(p.w);
            let at = (row + u32(clamp(ix, 0, i32(p.w) - 1))) * p.cin;
            let x0 = select(0.0, fwd4_x[at + ci], inside);
            let x1 = select(0.0, fwd4_x[at + c1], inside && has1);
            let x2 = select(0.0, fwd4_x[at + c2], inside && has2);
            for (var c = 0u; c < FCQ; c++) {
                var a = acc[q][c];
                a += x0 * w0[c];
                a += x1 * w1[c];
                a += x2 * w2[c];
                acc[q][c] = a;
            }
        }
        ci += 3u;
        if ci >= p.cin {
            ci = 0u;
            j += 1u;
            if j == p.kw {
                j = 0u;
                i += 1u;
            }
        }
    }
    for (var c = 0u; c < FCQ; c++) {
        if cq0 + c < quads {
            let bias = fwd4_b[cq[c]];
            for (var q = 0u; q < FPX; q++) {
                let ox = ox0 + q;
                if ox < p.ow {
                    var y = acc[q][c];
                    if p.bias != 0u {
                        y += bias;
                    }
                    if p.relu != 0u {
                        y = select(y, vec4<f32>(0.0), y <= vec4<f32>(0.0));
                    }
                    fwd4_y[((n * p.oh + oy) * p.ow + ox) * quads + cq0 + c] = y;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Gradient with respect to the input:
//   dx[n, iy, ix, ci] = sum_{i, j, co} dy[n, oy, ox, co] * w[i, j, ci, co]
// over the taps whose output pixel oy = (iy + pad_top - i) / SH, ox = (ix + pad_left - j) / SW
// exists (divides exactly and lies inside): a full correlation of dy, dilated by the strides, with the
// flipped kernel. With stride > 1 most taps of a pixel meet no output and are skipped. One invocation:
// PX neighbouring input pixels of one row x 4 input channels, so per (tap, output channel) PX dy loads
// and 4 kernel loads feed 4*PX multiply-adds. Every element of dx is written.

@group(0) @binding(1) var<storage, read> bin_dy: array<f32>;
@group(0) @binding(2) var<storage, read> bin_w: array<f32>;
@group(0) @binding(3) var<storage, read_write> bin_dx: array<f32>;
// The layer's input, read for the ReLU mask (bound either way).
@group(0) @binding(4) var<storage, read> bin_x: array<f32>;

@compute @workgroup_size(WG)
fn conv2d_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let groups = (p.cin + 3u) / 4u;
    let tiles = (p.w + PX - 1u) / PX;
    if t >= groups * tiles * p.h * p.n {
        return;
    }
    let ci0 = (t % groups) * 4u;
    let rest = t / groups;
    let ix0 = (rest % tiles) * PX;
    let iy = (rest / tiles) % p.h;
    let n = rest / tiles / p.h;
    let ci = channels(ci0, p.cin);

    var acc: array<vec4<f32>, MAX_PX>;
    for (var q = 0u; q < PX; q++) {
        acc[q] = vec4<f32>(0.0);
    }
    for (var i = 0u; i < p.kh; i++) {
        let sy = i32(iy + p.pad_top) - i32(i);
        let oy = sy / i32(p.stride_h);
        if sy < 0 || sy % i32(p.stride_h) != 0 || oy >= i32(p.oh) {
            continue;
        }
        let row = (n * p.oh + u32(oy)) * p.ow;
        for (var j = 0u; j < p.kw; j++) {
            var at: array<u32, MAX_PX>;
            var inside: array<bool, MAX_PX>;
            for (var q = 0u; q < PX; q++) {
                let sx = i32(ix0 + q + p.pad_left) - i32(j);
                let ox = sx / i32(p.stride_w);
                inside[q] = sx >= 0 && sx % i32(p.stride_w) == 0 && ox < i32(p.ow);
                at[q] = (row + u32(clamp(ox, 0, i32(p.ow) - 1))) * p.cout;
            }
            // Kernel rows w[i, j, ci, :] of the tile's four input channels.
            let k = (vec4<u32>((i * p.kw + j) * p.cin) + ci) * p.cout;
            for (var co = 0u; co < p.cout; co++) {
                let wv = vec4<f32>(bin_w[k.x + co], bin_w[k.y + co], bin_w[k.z + co], bin_w[k.w + co]);
                for (var q = 0u; q < PX; q++) {
                    acc[q] += select(0.0, bin_dy[at[q] + co], inside[q]) * wv;
                }
            }
        }
    }
    for (var q = 0u; q < PX; q++) {
        let ix = ix0 + q;
        if ix < p.w {
            let out = ((n * p.h + iy) * p.w + ix) * p.cin + ci0;
            for (var c = 0u; c < 4u; c++) {
                if ci0 + c < p.cin {
                    var d = acc[q][c];
                    if p.relu != 0u {
                        d = select(0.0, d, bin_x[out + c] > 0.0);
                    }
                    bin_dx[out + c] = d;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Gradient with respect to the kernel, first pass. Viewing dW as a [KH*KW*CIN, COUT] matrix with row
// k = (i*KW + j)*CIN + ci, it is x_col^T * dy summed over the R = N*OH*OW rows (n, oy, ox), where x_col
// holds the input value each row meets at each k (zero in the padding). The sum over R is split into
// chunks of rows_per_chunk rows; this pass writes partial[chunk, k, co], and column_sum adds the chunks.
// One invocation: one chunk x TK values of k x 4*BCQ output channels, so per row TK input loads and
// 4*BCQ dy loads feed TK*4*BCQ multiply-adds. Rows are added in order, so the result is deterministic.
// With a bias, db[co] = sum of dy[r, co] over the same rows: the invocations of the first k tile add
// the dy values they load anyway into 4*BCQ more sums and write them at bias_at of the chunk's words,
// the first of them (first channel tile) also the zero padding between kernel and bias sums, so one
// column_sum of [chunks, row_len] yields dW, the padding and db in their places of the gradient.

@group(0) @binding(1) var<storage, read> bw_x: array<f32>;
@group(0) @binding(2) var<storage, read> bw_dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> bw_partial: array<f32>;

@compute @workgroup_size(WG)
fn conv2d_backward_weight(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let kdim = p.kh * p.kw * p.cin;
    let rows = p.n * p.oh * p.ow;
    let chunks = (rows + p.rows_per_chunk - 1u) / p.rows_per_chunk;
    let tc = 4u * BCQ;
    let col_tiles = (p.cout + tc - 1u) / tc;
    let k_tiles = (kdim + TK - 1u) / TK;
    if t >= col_tiles * k_tiles * chunks {
        return;
    }
    let co0 = (t % col_tiles) * tc;
    let k0 = ((t / col_tiles) % k_tiles) * TK;
    let chunk = t / col_tiles / k_tiles;
    var co: array<vec4<u32>, MAX_BCQ>;
    for (var c = 0u; c < BCQ; c++) {
        co[c] = channels(co0 + 4u * c, p.cout);
    }
    // Each k of the tile as a row and column offset from the output pixel's window origin
    // (oy * SH, ox * SW), and as the offset of the input value it reads from that origin in x.
    var ky: array<u32, MAX_TK>;
    var kx: array<u32, MAX_TK>;
    var delta: array<i32, MAX_TK>;
    for (var a = 0u; a < TK; a++) {
        let k = min(k0 + a, kdim - 1u);
        let tap = k / p.cin;
        let ry = i32(tap / p.kw) - i32(p.pad_top);
        let rx = i32(tap % p.kw) - i32(p.pad_left);
        ky[a] = u32(ry);
        kx[a] = u32(rx);
        delta[a] = (ry * i32(p.w) + rx) * i32(p.cin) + i32(k % p.cin);
    }
    let last = i32(p.n * p.h * p.w * p.cin) - 1;

    let start = chunk * p.rows_per_chunk;
    let end = min(start + p.rows_per_chunk, rows);
    // The row's (n, oy, ox), stepped along instead of divided out for every row.
    var ox = start % p.ow;
    var oy = (start / p.ow) % p.oh;
    var n = start / p.ow / p.oh;
    var acc: array<array<vec4<f32>, MAX_BCQ>, MAX_TK>;
    for (var a = 0u; a < TK; a++) {
        for (var c = 0u; c < BCQ; c++) {
            acc[a][c] = vec4<f32>(0.0);
        }
    }
    let bias_tile = p.bias != 0u && k0 == 0u;
    var bacc: array<vec4<f32>, MAX_BCQ>;
    for (var c = 0u; c < BCQ; c++) {
        bacc[c] = vec4<f32>(0.0);
    }
    for (var r = start; r < end; r++) {
        let g = r * p.cout;
        var gv: array<vec4<f32>, MAX_BCQ>;
        for (var c = 0u; c < BCQ; c++) {
            let gc = g + co[c];
            gv[c] = vec4<f32>(bw_dy[gc.x], bw_dy[gc.y], bw_dy[gc.z], bw_dy[gc.w]);
        }
        if bias_tile {
            for (var c = 0u; c < BCQ; c++) {
                bacc[c] += gv[c];
            }
        }
        // x[n, oy * SH, ox * SW, 0] as a word index; the tap offsets are relative to it. Unsigned
        // wrap-around makes one comparison test both ends of each range.
        let y0 = oy * p.stride_h;
        let x0 = ox * p.stride_w;
        let base = i32(((n * p.h + y0) * p.w + x0) * p.cin);
        for (var a = 0u; a < TK; a++) {
            let inside = y0 + ky[a] < p.h && x0 + kx[a] < p.w;
            let xv = select(0.0, bw_x[u32(clamp(base + delta[a], 0, last))], inside);
            for (var c = 0u; c < BCQ; c++) {
                acc[a][c] += xv * gv[c];
            }
        }
        ox += 1u;
        if ox == p.ow {
            ox = 0u;
            oy += 1u;
            if oy == p.oh {
                oy = 0u;
                n += 1u;
            }
        }
    }
    let out0 = chunk * p.row_len;
    for (var a = 0u; a < TK; a++) {
        if k0 + a < kdim {
            for (var c = 0u; c < BCQ; c++) {
                let out = out0 + (k0 + a) * p.cout + co0 + 4u * c;
                for (var e = 0u; e < 4u; e++) {
                    if co0 + 4u * c + e < p.cout {
                        bw_partial[out + e] = acc[a][c][e];
                    }
                }
            }
        }
    }
    if bias_tile {
        for (var c = 0u; c < BCQ; c++) {
            let out = out0 + p.bias_at + co0 + 4u * c;
            for (var e = 0u; e < 4u; e++) {
                if co0 + 4u * c + e < p.cout {
                    bw_partial[out + e] = bacc[c][e];
                }
            }
        }
        if co0 == 0u {
            for (var i = kdim * p.cout; i < p.bias_at; i++) {
                bw_partial[out0 + i] = 0.0;
            }
        }
    }
}

// The output pixel (ox, oy, n) after `at` in row-major order (past the last, n = N).
fn next_row(at: vec3<u32>) -> vec3<u32> {
    if at.x + 1u < p.ow {
        return vec3<u32>(at.x + 1u, at.y, at.z);
    }
    if at.y + 1u < p.oh {
        return vec3<u32>(0u, at.y + 1u, at.z);
    }
    return vec3<u32>(0u, 0u, at.z + 1u);
}

// conv2d_backward_weight through vec4 views of dy and the partial sums, when COUT and row_len are
// multiples of 4 (so is bias_at then): each quad of dy is one load and each quad of sums one store.
// The same tile and the same sums in the same order as conv2d_backward_weight, so the same bits.

@group(0) @binding(1) var<storage, read> bw4_x: array<f32>;
@group(0) @binding(2) var<storage, read> bw4_dy: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> bw4_partial: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn conv2d_backward_weight_vec4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let kdim = p.kh * p.kw * p.cin;
    let rows = p.n * p.oh * p.ow;
    let chunks = (rows + p.rows_per_chunk - 1u) / p.rows_per_chunk;
    let quads = p.cout / 4u;
    let col_tiles = (quads + BCQ - 1u) / BCQ;
    let k_tiles = (kdim + TK - 1u) / TK;
    if t >= col_tiles * k_tiles * chunks {
        return;
    }
    let cq0 = (t % col_tiles) * BCQ;
    let k0 = ((t / col_tiles) % k_tiles) * TK;
    let chunk = t / col_tiles / k_tiles;
    var cq: array<u32, MAX_BCQ>;
    for (var c = 0u; c < BCQ; c++) {
        cq[c] = min(cq0 + c, quads - 1u);
    }
    var ky: array<u32, MAX_TK>;
    var kx: array<u32, MAX_TK>;
    var delta: array<i32, MAX_TK>;
    for (var a = 0u; a < TK; a++) {
        let k = min(k0 + a, kdim - 1u);
        let tap = k / p.cin;
        let ry = i32(tap / p.kw) - i32(p.pad_top);
        let rx = i32(tap % p.kw) - i32(p.pad_left);
        ky[a] = u32(ry);
        kx[a] = u32(rx);
        delta[a] = (ry * i32(p.w) + rx) * i32(p.cin) + i32(k % p.cin);
    }
    let last = i32(p.n * p.h * p.w * p.cin) - 1;

    let start = chunk * p.rows_per_chunk;
    let end = min(start + p.rows_per_chunk, rows);
    // The row's (ox, oy, n), stepped along instead of divided out for every row.
    var at = vec3<u32>(start % p.ow, (start / p.ow) % p.oh, start / p.ow / p.oh);
    var acc: array<array<vec4<f32>, MAX_BCQ>, MAX_TK>;
    for (var a = 0u; a < TK; a++) {
        for (var c = 0u; c < BCQ; c++) {
            acc[a][c] = vec4<f32>(0.0);
        }
    }
    let bias_tile = p.bias != 0u && k0 == 0u;
    var bacc: array<vec4<f32>, MAX_BCQ>;
    for (var c = 0u; c < BCQ; c++) {
        bacc[c] = vec4<f32>(0.0);
    }
    // RB rows at a time, so each accumulator is loaded and stored once per RB multiply-adds (the tile
    // lives in scratch memory), in the order of conv2d_backward_weight's. Rows past the chunk's end
    // read zero in x and dy and add +0.0, which changes no sum: an accumulator is never -0.0 (it
    // starts at +0.0, and only -0.0 + -0.0 is -0.0).
    for (var r = start; r < end; r += RB) {
        var g: array<array<vec4<f32>, MAX_BCQ>, RB>;
        var yb: array<u32, RB>;
        var xb: array<u32, RB>;
        var base: array<i32, RB>;
        for (var b = 0u; b < RB; b++) {
            let rb = min(r + b, end - 1u);
            for (var c = 0u; c < BCQ; c++) {
                g[b][c] = select(vec4<f32>(0.0), bw4_dy[rb * quads + cq[c]], r + b < end);
            }
            // x[n, oy * SH, ox * SW, 0] as a word index; the tap offsets are relative to it. Unsigned
            // wrap-around makes one comparison test both ends of each range.
            yb[b] = at.y * p.stride_h;
            xb[b] = at.x * p.stride_w;
            base[b] = i32(((at.z * p.h + yb[b]) * p.w + xb[b]) * p.cin);
            at = next_row(at);
        }
        if bias_tile {
            for (var c = 0u; c < BCQ; c++) {
                var s = bacc[c];
                for (var b = 0u; b < RB; b++) {
                    s += g[b][c];
                }
                bacc[c] = s;
            }
        }
        for (var a = 0u; a < TK; a++) {
            var xv: array<f32, RB>;
            for (var b = 0u; b < RB; b++) {
                let inside = yb[b] + ky[a] < p.h && xb[b] + kx[a] < p.w && r + b < end;
                xv[b] = select(0.0, bw4_x[u32(clamp(base[b] + delta[a], 0, last))], inside);
            }
            for (var c = 0u; c < BCQ; c++) {
                var s = acc[a][c];
                for (var b = 0u; b < RB; b++) {
                    s += xv[b] * g[b][c];
                }
                acc[a][c] = s;
            }
        }
    }
    let out0 = chunk * (p.row_len / 4u);
    for (var a = 0u; a < TK; a++) {
        if k0 + a < kdim {
            for (var c = 0u; c < BCQ; c++) {
                if cq0 + c < quads {
                    bw4_partial[out0 + (k0 + a) * quads + cq0 + c] = acc[a][c];
                }
            }
        }
    }
    if bias_tile {
        for (var c = 0u; c < BCQ; c++) {
            if cq0 + c < quads {
                bw4_partial[out0 + p.bias_at / 4u + cq0 + c] = bacc[c];
            }
        }
        if cq0 == 0u {
            for (var i = kdim * quads; i < p.bias_at / 4u; i++) {
                bw4_partial[out0 + i] = vec4<f32>(0.0);
            }
        }
    }
}
