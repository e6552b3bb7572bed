use cifar_wgpu::gpu::Tensor;
use cifar_wgpu::kernels::conv2d::*;
use cifar_wgpu::reference;
use cifar_wgpu::shape::{Conv2dShape, Padding};

use crate::common::*;

fn shape(
    n: usize,
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
    k: (usize, usize),
    padding: Padding,
) -> Conv2dShape {
    Conv2dShape {
        n,
        h,
        w,
        cin,
        cout,
        kh: k.0,
        kw: k.1,
        stride_h: 1,
        stride_w: 1,
        padding,
    }
}

fn strided(s: Conv2dShape, (stride_h, stride_w): (usize, usize)) -> Conv2dShape {
    Conv2dShape {
        stride_h,
        stride_w,
        ..s
    }
}

fn label(s: &Conv2dShape) -> String {
    format!(
        "n{} {}x{}x{} -> {} k{}x{} /{}x{} {:?}",
        s.n, s.h, s.w, s.cin, s.cout, s.kh, s.kw, s.stride_h, s.stride_w, s.padding
    )
}

/// Odd tile sizes that leave partial tiles along every axis, next to the two sets the wrappers choose.
const ODD_TILES: Conv2dTiles = Conv2dTiles {
    forward_pixels: 3,
    forward_quads: 2,
    weight_rows: 5,
    weight_quads: 3,
    vec4: true,
};

/// The odd tiles through the scalar entry points, which the wrappers choose only where the channels
/// do not come in quads: checked on every shape.
const ODD_SCALAR_TILES: Conv2dTiles = Conv2dTiles {
    vec4: false,
    ..ODD_TILES
};

fn tiles_label(t: &Conv2dTiles) -> String {
    format!(
        "[{}x{} / {}x{}{}]",
        t.forward_pixels,
        4 * t.forward_quads,
        t.weight_rows,
        4 * t.weight_quads,
        if t.vec4 { "" } else { " scalar" }
    )
}

/// A kernel gradient and a bias gradient `pad` words after it in one buffer, poisoned, as the flat
/// gradient buffer holds a layer's (there the pad rounds the kernel up to 64 words).
struct Grads {
    all: Tensor,
    dw: Tensor,
    db: Tensor,
    pad: usize,
}

impl Grads {
    fn new(s: &Conv2dShape, pad: usize) -> Grads {
        let all = poisoned(s.kernel_len() + pad + s.cout);
        Grads {
            dw: all.slice(0, s.kernel_len()),
            db: all.slice(s.kernel_len() + pad, s.cout),
            all,
            pad,
        }
    }

    /// db's first word counted from dw's, as `Tensor::span_to` gives it.
    fn bias_at(&self) -> usize {
        self.dw.len + self.pad
    }

    /// Compares dw and db with their twins, and checks that the padding between them is zero.
    fn compare(&self, name: &str, want_dw: &[f64], want_db: &[f64]) {
        let all = read(&self.all);
        let (dw, rest) = all.split_at(self.dw.len);
        let (padding, db) = rest.split_at(self.pad);
        compare(&format!("{name} dw"), dw, want_dw, F32_TOL);
        compare(&format!("{name} db"), db, want_db, F32_TOL);
        assert!(
            padding.iter().all(|&v| v.to_bits() == 0),
            "{name}: the padding between dw and db is not zero: {padding:?}"
        );
    }
}

/// A convolution's inputs for shape `s`, each in [-1, 1): x, the kernel w, the bias b and the
/// output gradient dy (drawn from seed, seed + 1, seed + 2 and seed + 3), on the host and uploaded.
struct Inputs {
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    dy: Vec<f32>,
    tx: Tensor,
    tw: Tensor,
    tb: Tensor,
    tdy: Tensor,
}

impl Inputs {
    fn random(s: &Conv2dShape, seed: u64) -> Inputs {
        let g = gpu();
        let x = random(s.input_len(), seed, -1.0, 1.0);
        let w = random(s.kernel_len(), seed + 1, -1.0, 1.0);
        let b = random(s.cout, seed + 2, -1.0, 1.0);
        let dy = random(s.output_len(), seed + 3, -1.0, 1.0);
        Inputs {
            tx: g.upload("x", &x),
            tw: g.upload("w", &w),
            tb: g.upload("b", &b),
            tdy: g.upload("dy", &dy),
            x,
            w,
            b,
            dy,
        }
    }

    /// (x, w, b, dy) for the twins.
    fn as_f64(&self) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        (
            to_f64(&self.x),
            to_f64(&self.w),
            to_f64(&self.b),
            to_f64(&self.dy),
        )
    }
}

/// What `check` computes with one tile set, poisoned: the forward with bias (y) and with the fused
/// ReLU (relu), the weight gradient without bias (dw) and with the bias gradient after it (grads).
struct TiledOutputs {
    tiles: Conv2dTiles,
    y: Tensor,
    relu: Tensor,
    dw: Tensor,
    grads: Grads,
}

/// Runs the forward and all three gradients on the GPU and compares each with the CPU twin; the
/// forward and the weight gradient (with the bias gradient in one span, and without bias) with every
/// tile set (`Conv2dTiles::GPU`, `SOFTWARE`, `ODD_TILES`, `ODD_SCALAR_TILES`: where cout is a
/// multiple of 4, the vec4 entry points and the scalar ones; the weight gradient's vec4 entry point
/// also needs its partial row in quads, which the odd pad of 5 words denies), the others as the
/// wrappers choose; the
/// forward without bias with the odd tiles; the standalone bias gradient (for a db outside dw's
/// buffer).
fn check(s: Conv2dShape, seed: u64) {
    let g = gpu();
    let i = Inputs::random(&s, seed);
    let tile_sets = [
        Conv2dTiles::GPU,
        Conv2dTiles::SOFTWARE,
        ODD_TILES,
        ODD_SCALAR_TILES,
    ];
    // The padding of the flat layout, odd ones, and none.
    let pads = [
        s.kernel_len().next_multiple_of(64) - s.kernel_len(),
        5,
        0,
        3,
    ];
    let outs: Vec<TiledOutputs> = tile_sets
        .iter()
        .zip(pads)
        .map(|(&tiles, pad)| TiledOutputs {
            tiles,
            y: poisoned(s.output_len()),
            relu: poisoned(s.output_len()),
            dw: poisoned(s.kernel_len()),
            grads: Grads::new(&s, pad),
        })
        .collect();
    let tdx = poisoned(s.input_len());
    let tdx_masked = poisoned(s.input_len());
    let ty_unbiased = poisoned(s.output_len());
    let tdb = poisoned(s.cout);
    let most_pad = pads.iter().max().map(|pad| s.kernel_len() + pad);
    let wscratch = poisoned(conv2d_weight_scratch(s, most_pad));
    let bscratch = poisoned(conv2d_bias_scratch(s));
    // x in [-1, 1) doubles as the ReLU mask of the fused input gradient: about half is masked.
    let mut ds = vec![
        conv2d_backward_input(g, &i.tdy, &i.tw, None, &tdx, s),
        conv2d_backward_input(g, &i.tdy, &i.tw, Some(&i.tx), &tdx_masked, s),
        conv2d_forward_tiled(g, &i.tx, &i.tw, None, false, &ty_unbiased, s, ODD_TILES),
    ];
    for o in &outs {
        for (relu, y) in [(false, &o.y), (true, &o.relu)] {
            ds.push(conv2d_forward_tiled(
                g,
                &i.tx,
                &i.tw,
                Some(&i.tb),
                relu,
                y,
                s,
                o.tiles,
            ));
        }
        // The weight gradients share one scratch buffer: each pair of dispatches runs in order.
        for (dw, db) in [(&o.dw, None), (&o.grads.dw, Some(&o.grads.db))] {
            ds.extend(conv2d_backward_weight_tiled(
                g, &i.tx, &i.tdy, &wscratch, dw, db, s, o.tiles,
            ));
        }
    }
    ds.extend(conv2d_backward_bias(g, &i.tdy, &bscratch, &tdb, s));
    run_all(&ds);

    let (x, w, b, dy) = i.as_f64();
    let want_y = reference::conv2d::conv2d_forward(&x, &w, Some(&b), s);
    let want_unbiased = reference::conv2d::conv2d_forward(&x, &w, None, s);
    let want_dx = reference::conv2d::conv2d_backward_input(&dy, &w, s);
    let want_relu = reference::conv2d::conv2d_forward_relu(&x, &w, Some(&b), s);
    let want_dx_masked = reference::conv2d::conv2d_backward_input_masked(&dy, &w, &x, s);
    let want_dw = reference::conv2d::conv2d_backward_weight(&x, &dy, s);
    let want_db = reference::conv2d::conv2d_backward_bias(&dy, s);
    let name = label(&s);
    for o in &outs {
        let t = tiles_label(&o.tiles);
        compare_tensor(&format!("conv2d_forward {name} {t} y"), &o.y, &want_y);
        compare_tensor(
            &format!("conv2d_forward relu {name} {t} y"),
            &o.relu,
            &want_relu,
        );
        compare_tensor(
            &format!("conv2d_backward_weight no bias {name} {t} dw"),
            &o.dw,
            &want_dw,
        );
        o.grads.compare(
            &format!("conv2d_backward_weight {name} {t} pad {}", o.grads.pad),
            &want_dw,
            &want_db,
        );
    }
    // Every tile set and entry point adds each output's terms in the same order: the same bits as
    // the scalar entry points (lavapipe; other adapters may contract multiply-adds differently in
    // differently shaped code).
    if g.info.name.contains("llvmpipe") {
        let bits = |t: &Tensor| read(t).iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let (scalar, others) = outs.split_last().unwrap();
        assert_eq!(scalar.tiles, ODD_SCALAR_TILES);
        for o in others {
            let t = format!("{} against the scalar ones", tiles_label(&o.tiles));
            for (what, got, want) in [
                ("conv2d_forward y", &o.y, &scalar.y),
                ("conv2d_forward relu y", &o.relu, &scalar.relu),
                ("conv2d_backward_weight no bias dw", &o.dw, &scalar.dw),
                ("conv2d_backward_weight dw", &o.grads.dw, &scalar.grads.dw),
                ("conv2d_backward_weight db", &o.grads.db, &scalar.grads.db),
            ] {
                compare_exact(
                    &format!("{what} {name} {t} (bits)"),
                    &bits(got),
                    &bits(want),
                );
            }
        }
    }
    compare_tensor(
        &format!(
            "conv2d_forward no bias {name} {} y",
            tiles_label(&ODD_TILES)
        ),
        &ty_unbiased,
        &want_unbiased,
    );
    compare_tensor(&format!("conv2d_backward_input {name} dx"), &tdx, &want_dx);
    compare_tensor(
        &format!("conv2d_backward_input masked {name} dx"),
        &tdx_masked,
        &want_dx_masked,
    );
    compare_tensor(&format!("conv2d_backward_bias {name} db"), &tdb, &want_db);
}

#[test]
fn conv2d_kernel_sizes_and_paddings_on_awkward_shapes() {
    // Widths not multiples of the 4-pixel register tile, channels not multiples of 4 (and 8 output
    // channels, for the vec4 entry points, with 2 input channels: not a multiple of their 3), batch
    // 1, kernels 1x1 to 5x5 (even ones put the odd 'same' pixel after), rectangular kernels.
    let mut seed = 0;
    for padding in [Padding::Same, Padding::Valid] {
        for k in [(1, 1), (2, 2), (3, 3), (5, 5), (3, 2), (1, 4)] {
            for &(n, h, w, cin, cout) in &[
                (1, 7, 9, 3, 5),
                (2, 6, 5, 1, 1),
                (3, 5, 13, 6, 9),
                (2, 5, 7, 2, 8),
            ] {
                check(shape(n, h, w, cin, cout, k, padding), seed);
                seed += 10;
            }
        }
    }
}

#[test]
fn conv2d_strides_on_awkward_shapes() {
    // Strides that divide the size and strides that do not (7 and 9 by 2, 5 by 3 ...), strides
    // larger than the kernel (taps that meet no output, input pixels no tap meets), different along
    // rows and columns; in 'same' the odd pixel of padding goes after, and with stride > 1 the pad
    // before can be 0 where stride 1 would pad.
    let mut seed = 2000;
    for padding in [Padding::Same, Padding::Valid] {
        for (k, stride) in [
            ((3, 3), (2, 2)),
            ((2, 2), (2, 2)),
            ((1, 1), (2, 3)),
            ((5, 3), (3, 2)),
            ((3, 2), (1, 3)),
            ((4, 4), (3, 3)),
        ] {
            for &(n, h, w, cin, cout) in &[
                (1, 7, 9, 3, 5),
                (2, 8, 5, 1, 2),
                (2, 9, 13, 6, 9),
                (1, 7, 9, 5, 4),
            ] {
                check(strided(shape(n, h, w, cin, cout, k, padding), stride), seed);
                seed += 10;
            }
        }
    }
}

#[test]
fn conv2d_strided_partial_tiles_and_many_chunks() {
    // Stride 2 'same' on an odd 35x35 input: an 18-pixel output row (a partial tile of 32), 36 output
    // channels; and a batch whose weight gradient spans several chunks of rows.
    check(
        strided(shape(1, 35, 35, 4, 36, (3, 3), Padding::Same), (2, 2)),
        2900,
    );
    check(
        strided(shape(9, 31, 33, 3, 8, (3, 3), Padding::Same), (2, 2)),
        2910,
    );
}

#[test]
fn conv2d_many_channels() {
    check(shape(2, 6, 7, 40, 70, (3, 3), Padding::Same), 1000);
    check(shape(1, 9, 6, 40, 70, (5, 5), Padding::Valid), 1010);
    check(shape(1, 4, 4, 33, 17, (2, 2), Padding::Same), 1020);
    check(shape(1, 6, 5, 40, 72, (3, 3), Padding::Same), 1030);
}

#[test]
fn conv2d_partial_tiles_of_the_software_tiles() {
    // Rows wider than 32 pixels (a full and a partial pixel tile), 36 output channels (a full and a
    // partial channel tile of 32), kernel rows not a multiple of 27 (3x3x4 = 36, 5x5x3 = 75), CIN = 1
    // with more kernel rows than one tile of 27 (7x7x1 = 49).
    check(shape(1, 3, 45, 4, 36, (3, 3), Padding::Same), 1400);
    check(shape(2, 7, 40, 3, 33, (5, 5), Padding::Valid), 1410);
    check(shape(1, 9, 34, 1, 6, (7, 7), Padding::Same), 1420);
}

#[test]
fn conv2d_default_wrappers_use_the_adapters_tiles() {
    // `conv2d_forward` and `conv2d_backward_weight` without tiles are the `_tiled` ones with
    // `Conv2dTiles::of`; one shape through them, so the default path is checked as such.
    let g = gpu();
    let s = shape(2, 5, 33, 3, 10, (3, 3), Padding::Same);
    let i = Inputs::random(&s, 1500);
    let (ty, grads) = (poisoned(s.output_len()), Grads::new(&s, 3));
    let wscratch = poisoned(conv2d_weight_scratch(s, Some(grads.bias_at())));
    let mut ds = vec![conv2d_forward(g, &i.tx, &i.tw, Some(&i.tb), false, &ty, s)];
    ds.extend(conv2d_backward_weight(
        g,
        &i.tx,
        &i.tdy,
        &wscratch,
        &grads.dw,
        Some(&grads.db),
        s,
    ));
    run_all(&ds);
    let (x, w, b, dy) = i.as_f64();
    let t = tiles_label(&Conv2dTiles::of(g));
    compare_tensor(
        &format!("conv2d_forward {} {t} y", label(&s)),
        &ty,
        &reference::conv2d::conv2d_forward(&x, &w, Some(&b), s),
    );
    grads.compare(
        &format!("conv2d_backward_weight {} {t}", label(&s)),
        &reference::conv2d::conv2d_backward_weight(&x, &dy, s),
        &reference::conv2d::conv2d_backward_bias(&dy, s),
    );
}

#[test]
fn conv2d_kernel_as_large_as_the_input() {
    // 'valid' gives a 1x1 output; 'same' pads more than the image on some taps.
    check(shape(2, 3, 4, 2, 6, (3, 4), Padding::Valid), 1100);
    check(shape(2, 3, 4, 2, 6, (5, 5), Padding::Same), 1110);
}

#[test]
fn conv2d_notebook_first_layer_at_batch_2() {
    // 32x32x3 -> 32 filters 3x3 'same'. 2,048 rows: the weight gradient's chunks and column sum are
    // those of a real batch, just fewer.
    check(shape(2, 32, 32, 3, 32, (3, 3), Padding::Same), 1200);
}

#[test]
fn conv2d_weight_gradient_with_more_chunks_than_one_column_sum_pass_takes() {
    // 160 x 30 x 30 = 144,000 rows: over 1,024 chunks of 128, so the chunks grow until one pass of
    // the column sum adds them all. Checks the weight and bias gradients only (the others are above):
    // dw and db together as in the flat gradient buffer, and db by the standalone column sum (two
    // passes here).
    let g = gpu();
    let s = shape(160, 30, 30, 2, 3, (3, 3), Padding::Same);
    let x = random(s.input_len(), 1300, -1.0, 1.0);
    let dy = random(s.output_len(), 1301, -1.0, 1.0);
    let (tx, tdy) = (g.upload("x", &x), g.upload("dy", &dy));
    let (grads, tdb) = (Grads::new(&s, 64 - s.kernel_len()), poisoned(s.cout));
    let wscratch = poisoned(conv2d_weight_scratch(s, Some(grads.bias_at())));
    let bscratch = poisoned(conv2d_bias_scratch(s));
    let mut ds = conv2d_backward_weight(g, &tx, &tdy, &wscratch, &grads.dw, Some(&grads.db), s);
    ds.extend(conv2d_backward_bias(g, &tdy, &bscratch, &tdb, s));
    run_all(&ds);
    let dy = to_f64(&dy);
    let want_dw = reference::conv2d::conv2d_backward_weight(&to_f64(&x), &dy, s);
    let want_db = reference::conv2d::conv2d_backward_bias(&dy, s);
    grads.compare(
        &format!("conv2d_backward_weight {}", label(&s)),
        &want_dw,
        &want_db,
    );
    compare_tensor(
        &format!("conv2d_backward_bias {} db", label(&s)),
        &tdb,
        &want_db,
    );
}

/// Tile sets to time: `Conv2dTiles::of` the adapter and `Conv2dTiles::GPU`, each with the vec4 entry
/// points and with the scalar ones, or those in `CONV2D_TILES`, e.g. `8,8,14,8;16,4,28,8,0` (forward
/// pixels, forward quads, weight rows, weight quads, and optionally 0 for the scalar entry points).
fn timing_tiles() -> Vec<Conv2dTiles> {
    match std::env::var("CONV2D_TILES") {
        Ok(list) => list
            .split(';')
            .map(|t| {
                let v: Vec<u32> = t.split(',').map(|x| x.trim().parse().unwrap()).collect();
                assert!(
                    v.len() == 4 || v.len() == 5,
                    "CONV2D_TILES: {t}: four or five numbers per tile set"
                );
                Conv2dTiles {
                    forward_pixels: v[0],
                    forward_quads: v[1],
                    weight_rows: v[2],
                    weight_quads: v[3],
                    vec4: v.get(4) != Some(&0),
                }
            })
            .collect(),
        Err(_) => [Conv2dTiles::of(gpu()), Conv2dTiles::GPU]
            .into_iter()
            .flat_map(|t| [t, Conv2dTiles { vec4: false, ..t }])
            .collect(),
    }
}

/// Wall time of the notebook's first layer at batch 128 on this adapter, the fastest of `CONV2D_RUNS`
/// (10) runs of each kernel after a warm-up, with the napkin math, for each tile set of
/// `timing_tiles`. The kernels take turns, one run each per round, so that a busy spell of a shared
/// machine slows every variant alike rather than the one running then.
/// `cargo test --release --test kernels conv2d_timing -- --ignored --nocapture`
#[test]
#[ignore = "timing, not a check"]
fn conv2d_timing_notebook_batch_128() {
    let g = gpu();
    let s = shape(128, 32, 32, 3, 32, (3, 3), Padding::Same);
    let Inputs {
        tx, tw, tb, tdy, ..
    } = Inputs::random(&s, 1);
    // dw and db as the flat gradient buffer holds them: db at the next 64-word boundary.
    let bias_at = s.kernel_len().next_multiple_of(64);
    let tgrads = g.zeros("grads", bias_at + s.cout);
    let (ty, tdx, tdw, tdb) = (
        g.zeros("y", s.output_len()),
        g.zeros("dx", s.input_len()),
        tgrads.slice(0, s.kernel_len()),
        tgrads.slice(bias_at, s.cout),
    );
    let wscratch = g.zeros("wscratch", conv2d_weight_scratch(s, Some(bias_at)));
    let bscratch = g.zeros("bscratch", conv2d_bias_scratch(s));
    let mut cases: Vec<(String, Vec<cifar_wgpu::gpu::Dispatch>)> = Vec::new();
    for tiles in timing_tiles() {
        let t = tiles_label(&tiles);
        cases.push((
            format!("conv2d_forward {t}"),
            vec![conv2d_forward_tiled(
                g,
                &tx,
                &tw,
                Some(&tb),
                false,
                &ty,
                s,
                tiles,
            )],
        ));
        cases.push((
            format!("conv2d_backward_weight no bias {t}"),
            conv2d_backward_weight_tiled(g, &tx, &tdy, &wscratch, &tdw, None, s, tiles),
        ));
        cases.push((
            format!("conv2d_backward_weight with bias {t}"),
            conv2d_backward_weight_tiled(g, &tx, &tdy, &wscratch, &tdw, Some(&tdb), s, tiles),
        ));
    }
    cases.push((
        "conv2d_backward_input".into(),
        vec![conv2d_backward_input(g, &tdy, &tw, None, &tdx, s)],
    ));
    cases.push((
        "conv2d_backward_bias".into(),
        conv2d_backward_bias(g, &tdy, &bscratch, &tdb, s),
    ));
    let runs: usize = std::env::var("CONV2D_RUNS").map_or(10, |r| r.parse().unwrap());
    for (_, ds) in &cases {
        run_all(ds);
    }
    // The fastest of the runs: the machine may be shared, and a slow run says little about the kernel.
    let mut fastest = vec![f64::INFINITY; cases.len()];
    for _ in 0..runs {
        for ((_, ds), best) in cases.iter().zip(&mut fastest) {
            let start = std::time::Instant::now();
            run_all(ds);
            *best = best.min(start.elapsed().as_secs_f64());
        }
    }
    for ((name, ds), &secs) in cases.iter().zip(&fastest) {
        let flops: u64 = ds.iter().map(|d| d.cost.flops).sum();
        let bytes: u64 = ds.iter().map(|d| d.cost.bytes).sum();
        println!(
            "{name}: {:.2} ms (fastest of {runs}, {} dispatches), {:.1} MFLOP -> {:.2} GFLOP/s, {:.1} MB -> {:.2} GB/s",
            secs * 1e3,
            ds.len(),
            flops as f64 / 1e6,
            flops as f64 / secs / 1e9,
            bytes as f64 / 1e6,
            bytes as f64 / secs / 1e9
        );
    }
}
