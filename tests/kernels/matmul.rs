use cifar_wgpu::gpu::MatmulFlavour;
use cifar_wgpu::kernels::matmul::{Plan, matmul_planned, subgroups_cover};
use cifar_wgpu::reference;
use cifar_wgpu::shape::MatmulShape;

use crate::common::*;

/// With the device's own flavour (`Registers` with subgroups on lavapipe).
fn check(s: MatmulShape, with_bias: bool, seed: u64) {
    check_plan(
        s,
        with_bias,
        seed,
        Plan::auto(gpu(), gpu().flavours.matmul, s),
    );
}

/// Runs `plan` on fresh data against the f64 reference; returns the relative error and the number of
/// dispatches it took.
fn check_plan(s: MatmulShape, with_bias: bool, seed: u64, plan: Plan) -> (f64, usize) {
    let g = gpu();
    let a = random(s.m * s.k, seed, -1.0, 1.0);
    let b = random(s.k * s.n, seed + 1, -1.0, 1.0);
    let bias = random(s.n, seed + 2, -1.0, 1.0);
    let ta = g.upload("a", &a);
    let tb = g.upload("b", &b);
    let tbias = g.upload("bias", &bias);
    let tc = poisoned(s.m * s.n);
    let d = matmul_planned(g, &ta, &tb, with_bias.then_some(&tbias), &tc, None, s, plan);
    run_all(&d);
    let want = reference::matmul::matmul(
        &to_f64(&a),
        &to_f64(&b),
        with_bias.then_some(&to_f64(&bias)[..]),
        s,
    );
    let names: Vec<&str> = d.iter().map(|d| d.name).collect();
    let rel = compare(
        &format!(
            "{} {plan:?} {}x{}x{} bias={with_bias}",
            names.join("+"),
            s.m,
            s.n,
            s.k
        ),
        &read(&tc),
        &want,
        F32_TOL,
    );
    (rel, d.len())
}

#[test]
fn both_tilings_all_transposes_every_split_on_awkward_shapes() {
    // M, N, K multiples of nothing the kernels tile by (128x128 blocks in quads 64 apart, slabs of 8
    // along K, 8x8 and 8x16 register tiles, vec4 loads): one more than a block and a half-block
    // (129x130, 67, 65), a block's second quads partly filled (7x300), K shorter than one slab (1, 5),
    // K split three ways into ranges of 48 and 176 with a ragged last slab (131, 513), and a ragged
    // last split shorter than a slab (17 in three: 8 + 8 + 1). Kept small: lavapipe runs the
    // shared-memory kernel's 256 invocations and barriers on 2 CPU cores.
    let shapes = [
        (1, 1, 1),
        (67, 45, 131),
        (130, 10, 513),
        (3, 65, 40),
        (129, 130, 17),
        (7, 300, 5),
    ];
    let mut worst: Vec<(String, f64)> = Vec::new();
    for (i, &(m, n, k)) in shapes.iter().enumerate() {
        for (t, (ta, tb)) in [(false, false), (false, true), (true, false), (true, true)]
            .into_iter()
            .enumerate()
        {
            let s = MatmulShape {
                m,
                n,
                k,
                trans_a: ta,
                trans_b: tb,
            };
            let with_bias = (i + t) % 2 == 0;
            let seed = 200 + 10 * i as u64 + t as u64;
            let plans = [
                Plan::Registers,
                Plan::Shared { splits: 1 },
                Plan::Shared { splits: 3 },
                Plan::auto(gpu(), MatmulFlavour::Shared, s),
            ];
            for plan in plans {
                let (rel, dispatches) = check_plan(s, with_bias, seed, plan);
                // The split path must really run where K holds more than one slab of 8.
                if plan == (Plan::Shared { splits: 3 }) {
                    assert_eq!(dispatches, if k > 8 { 2 } else { 1 }, "{s:?}");
                }
                let key = format!("{plan:?}");
                match worst.iter_mut().find(|(p, _)| *p == key) {
                    Some(w) => w.1 = w.1.max(rel),
                    None => worst.push((key, rel)),
                }
            }
            // With and without the bias on the split path, on every shape and transpose.
            check_plan(s, !with_bias, seed + 5, Plan::Shared { splits: 3 });
        }
    }
    for (plan, rel) in worst {
        println!("max relative error, {plan}: {rel:.2e}");
    }
}

/// The product and the column sums of op(B) at word `m * n + gap` of one C (`matmul_with_sums`), in
/// `plan`: the product against the f64 reference, the sums bit for bit against an f32 sum in order of
/// k (`column_sum`'s one pass; within tolerance of the f64 twin where split-K adds per-split sums), the
/// gap left as it was.
fn check_sums(s: MatmulShape, gap: usize, seed: u64, plan: Plan) {
    let g = gpu();
    let a = random(s.m * s.k, seed, -1.0, 1.0);
    let b = random(s.k * s.n, seed + 1, -1.0, 1.0);
    let at = s.m * s.n + gap;
    // Product and sums poisoned, the gap holding a value no kernel writes.
    let sentinel = 12345.0f32;
    let mut c = vec![f32::NAN; at + s.n];
    c[s.m * s.n..at].fill(sentinel);
    let tc = g.upload("c", &c);
    let d = matmul_planned(
        g,
        &g.upload("a", &a),
        &g.upload("b", &b),
        None,
        &tc,
        Some(at),
        s,
        plan,
    );
    if plan == (Plan::Shared { splits: 3 }) {
        assert_eq!(d.len(), if s.k > 16 { 2 } else { 1 }, "{s:?}");
    }
    run_all(&d);
    let got = read(&tc);
    let names: Vec<&str> = d.iter().map(|d| d.name).collect();
    let name = format!(
        "{} {plan:?} {}x{}x{} trans_a={} trans_b={} gap={gap}",
        names.join("+"),
        s.m,
        s.n,
        s.k,
        s.trans_a,
        s.trans_b
    );
    let want = reference::matmul::matmul(&to_f64(&a), &to_f64(&b), None, s);
    compare(&name, &got[..s.m * s.n], &want, F32_TOL);
    assert!(
        got[s.m * s.n..at].iter().all(|&v| v == sentinel),
        "{name}: the gap between the product and the sums was written"
    );
    // op(B) as [K, N].
    let op_b: Vec<f32> = (0..s.k * s.n)
        .map(|i| match s.trans_b {
            true => b[(i % s.n) * s.k + i / s.n],
            false => b[i],
        })
        .collect();
    let sums = &got[at..];
    let want = reference::column_sum::column_sum(&to_f64(&op_b), s.k, s.n);
    compare(&format!("{name} sums"), sums, &want, F32_TOL);
    let split = d.len() > 1;
    if !split {
        let in_order: Vec<f32> = (0..s.n)
            .map(|n| (0..s.k).fold(0.0f32, |acc, k| acc + op_b[k * s.n + n]))
            .collect();
        for (n, (g, w)) in sums.iter().zip(&in_order).enumerate() {
            assert_eq!(g.to_bits(), w.to_bits(), "{name}: sum {n} is {g}, not {w}");
        }
    }
}

/// The weight gradient's product (TRANS_A) on widths that take each kernel: N % 4 != 0 (the
/// general 4x4 kernel), N % 4 == 0 (matmul_tile, matmul_sg_tile), rows past one workgroup of
/// each (matmul_sg_tile's are 128: 131), K split three ways with a ragged last slab, K past
/// matmul_sg_tile's chunk of 256 (300), and K = 1. Gaps of 0 (kernel and bias adjacent), 64 (a
/// parameter buffer's alignment) and 3 (sums not on a quad: the vec4 kernels hand over to the
/// general one). The general kernel also takes sums with the other transposes.
fn column_sums_shapes() -> Vec<(MatmulShape, usize)> {
    let tn = |m, n, k| MatmulShape {
        trans_a: true,
        ..MatmulShape::new(m, n, k)
    };
    vec![
        (tn(1, 1, 1), 0),
        (tn(67, 45, 131), 64),
        (tn(70, 68, 37), 0),
        (tn(33, 12, 20), 64),
        (tn(131, 20, 300), 64),
        (tn(9, 36, 5), 3),
        (MatmulShape::new(9, 8, 21), 3),
        (
            MatmulShape {
                trans_b: true,
                ..tn(5, 7, 19)
            },
            0,
        ),
    ]
}

#[test]
fn column_sums_of_the_weight_gradient_in_every_plan_but_subgroups() {
    for (i, (s, gap)) in column_sums_shapes().into_iter().enumerate() {
        let plans = [
            Plan::Registers,
            Plan::Shared { splits: 1 },
            Plan::Shared { splits: 3 },
            Plan::auto(gpu(), MatmulFlavour::Shared, s),
        ];
        for plan in plans {
            check_sums(s, gap, 500 + 10 * i as u64, plan);
        }
    }
}

/// The same with the subgroup kernels (their own test, which the GL pass skips by name: GL has no
/// subgroups; on lavapipe through Vulkan they must run, see `subgroup_kernels_on_awkward_shapes`).
#[test]
fn subgroup_kernels_write_the_weight_gradients_column_sums() {
    assert!(
        gpu().can_run_subgroup_matmul(),
        "the test adapter has no subgroup matmul"
    );
    for (i, (s, gap)) in column_sums_shapes().into_iter().enumerate() {
        check_sums(s, gap, 500 + 10 * i as u64, Plan::Subgroups);
    }
}

#[test]
fn matmul_all_transposes_on_awkward_shapes() {
    // Sizes that are not multiples of the 4x4 register tile nor of the 8x8 workgroup.
    let shapes = [
        (1, 1, 1),
        (1, 10, 37),
        (5, 3, 7),
        (33, 65, 17),
        (130, 70, 129),
    ];
    for (i, &(m, n, k)) in shapes.iter().enumerate() {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let s = MatmulShape {
                m,
                n,
                k,
                trans_a: ta,
                trans_b: tb,
            };
            check(s, i % 2 == 0, 10 * i as u64);
        }
    }
}

#[test]
fn matmul_tiled_paths_on_awkward_shapes() {
    // Widths that are multiples of 4 take the tiled entry points (`matmul_tile` when N % 4 == 0 without
    // TRANS_B, `matmul_tile_nt` when K % 4 == 0 with TRANS_B), in the device's flavour and in
    // `Registers`. Their workgroups cover 8 rows and 256 (or 128) columns, each invocation 8 rows and
    // 4 quads (or 8 columns) strided by 16: rows not a multiple of 8, a batch of 1, columns past one
    // workgroup, and invocations whose later quads or columns fall off the end (68 columns = 17
    // quads) exercise every edge. `matmul_tile` takes up to 4 blocks of 8 rows per workgroup, K in
    // chunks of 256: on 2 CPU threads, 70 rows in 2 blocks per workgroup (the last has one, of 6
    // rows) and 161 in 4 (the last has one row), K of 263, 300 and 516 past one chunk.
    let shapes = [
        (1, 4, 4),
        (5, 12, 7),
        (6, 20, 20),
        (33, 260, 17),
        (130, 68, 132),
        (3, 516, 8),
        (1, 264, 40),
        (17, 1028, 12),
        (70, 8, 300),
        (161, 516, 263),
        (161, 36, 516),
    ];
    for (i, &(m, n, k)) in shapes.iter().enumerate() {
        for (ta, tb) in [(false, false), (false, true), (true, false)] {
            let s = MatmulShape {
                m,
                n,
                k,
                trans_a: ta,
                trans_b: tb,
            };
            check(s, i % 2 == 1, 50 + 10 * i as u64);
            check_plan(s, i % 2 == 1, 55 + 10 * i as u64, Plan::Registers);
        }
    }
}

#[test]
fn dense_layer_shapes_of_the_notebook_at_batch_3() {
    // The second dense layer of the notebook (512 -> 10) and a slice of the first, with a tiny batch.
    check(MatmulShape::new(3, 10, 512), true, 100);
    check(
        MatmulShape {
            trans_b: true,
            ..MatmulShape::new(3, 512, 10)
        },
        false,
        101,
    );
    check(
        MatmulShape {
            trans_a: true,
            ..MatmulShape::new(512, 10, 3)
        },
        false,
        102,
    );
    check(MatmulShape::new(2, 512, 1024), true, 103);
}

#[test]
fn subgroup_kernels_on_awkward_shapes() {
    // Not skipped where the adapter lacks them: on lavapipe (the test adapter here and in CI) they are
    // the default kernels of every dense layer, and a silent skip would leave them unchecked.
    let g = gpu();
    assert!(
        g.can_run_subgroup_matmul(),
        "the test adapter '{}' ({:?}) cannot run shaders/matmul_subgroup.wgsl: it needs \
         Features::SUBGROUP with subgroups of at least 8 lanes (has features {:?}, subgroups {}..{}); \
         run the kernel tests on lavapipe (Mesa's Vulkan driver), which has them",
        g.info.name,
        g.info.backend,
        g.features,
        g.info.subgroup_min_size,
        g.info.subgroup_max_size,
    );
    // Workgroups of 8 lanes cover 16 quads, 2 per lane (matmul_sg_tile), or 16 columns, 2 per lane
    // (matmul_sg_tile_nt), in up to 4 blocks of 32 rows, K a chunk of 256 at a time. Rows below,
    // at and past one block's 32 (1, 7, 31, 33, 65) and past one workgroup's 128 (130, 161: the last
    // workgroup's blocks partly filled or absent), quads not a multiple of 16 (N = 4, 12, 36, 68,
    // 260: 1, 3, 9, 17, 65 quads, so some lanes own no quad or only their first), columns past 16
    // for the transposed B (N = 33, 36, 70, 260), K of 1 to 132 and past one chunk (513: two chunks
    // and a ragged one, or 516 for matmul_sg_tile_nt, which needs multiples of 4); N = 10, and
    // K not a multiple of 4 with the transposed B, fall back to the register kernels under the same
    // plan, and so does transposing both.
    let shapes = [
        (1, 4, 4),
        (7, 12, 1),
        (33, 36, 12),
        (65, 68, 131),
        (130, 260, 20),
        (31, 33, 132),
        (2, 70, 8),
        (40, 10, 7),
        (161, 12, 513),
        (161, 36, 516),
    ];
    let mut worst = 0.0f64;
    for (i, &(m, n, k)) in shapes.iter().enumerate() {
        for (t, (ta, tb)) in [(false, false), (true, false), (false, true), (true, true)]
            .into_iter()
            .enumerate()
        {
            let s = MatmulShape {
                m,
                n,
                k,
                trans_a: ta,
                trans_b: tb,
            };
            let covered = if tb { !ta && k % 4 == 0 } else { n % 4 == 0 };
            assert_eq!(subgroups_cover(s), covered, "{s:?}");
            if g.flavours.matmul == MatmulFlavour::Subgroups {
                let want = if covered {
                    Plan::Subgroups
                } else {
                    Plan::Registers
                };
                assert_eq!(Plan::auto(g, MatmulFlavour::Subgroups, s), want, "{s:?}");
            }
            let seed = 300 + 10 * i as u64 + t as u64;
            for with_bias in [false, true] {
                let (rel, _) =
                    check_plan(s, with_bias, seed + with_bias as u64 * 5, Plan::Subgroups);
                worst = worst.max(rel);
            }
        }
    }
    println!("max relative error, Subgroups: {worst:.2e}");
}

#[test]
fn subgroup_kernels_on_the_notebooks_dense_layer_at_batch_128() {
    // The shapes the subgroup kernels exist for, whole: the first dense layer (8192 -> 512) at batch
    // 128, all three products.
    let (batch, inputs, units) = (128, 8192, 512);
    let shapes = [
        MatmulShape::new(batch, units, inputs),
        MatmulShape {
            trans_a: true,
            ..MatmulShape::new(inputs, units, batch)
        },
        MatmulShape {
            trans_b: true,
            ..MatmulShape::new(batch, inputs, units)
        },
    ];
    for (i, s) in shapes.into_iter().enumerate() {
        assert!(subgroups_cover(s), "{s:?}");
        check_plan(s, i == 0, 400 + i as u64, Plan::Subgroups);
    }
}

#[test]
fn forward_with_k_past_llvmpipes_loop_limit() {
    // llvmpipe ends the loops of an invocation once their iterations together reach 65535. A
    // matmul_sg_tile (or matmul_tile) workgroup walks K once per block of 32 (or 8) rows it
    // computes: 4 blocks of 16500 would pass the limit, so the wrapper gives it fewer (2 on
    // machines of up to 4 threads, for this width of 8 or 2 workgroups across). 100 rows: the
    // last block has 4. The input gradient's matmul_tile_nt walks K once, a quad at a time.
    check_plan(long_forward(), true, 460, Plan::Registers);
    check_plan(long_dx(), false, 461, Plan::Registers);
}

fn long_forward() -> MatmulShape {
    MatmulShape::new(100, 512, 16500)
}

fn long_dx() -> MatmulShape {
    MatmulShape {
        trans_b: true,
        ..MatmulShape::new(100, 64, 66000)
    }
}

/// The same with the subgroup kernels (a test of its own, which the GL pass skips by name), and
/// the input gradient's matmul_sg_tile_nt, which walks K a quad at a time: 4 blocks of 16500
/// quads would pass the limit too.
#[test]
fn subgroup_kernels_on_k_past_llvmpipes_loop_limit() {
    assert!(subgroups_cover(long_forward()));
    check_plan(long_forward(), true, 450, Plan::Subgroups);
    assert!(subgroups_cover(long_dx()));
    check_plan(long_dx(), false, 451, Plan::Subgroups);
}

#[test]
fn forward_with_k_past_the_loop_limit_in_one_block() {
    // A K of 65535 or more is past llvmpipe's limit even with one block of rows per workgroup (a
    // Dense layer after Flatten of a 32x32x64 image has K = 65536): on llvmpipe the plan splits K
    // into ranges below the limit. 70000 is no multiple of a slab, 7 is no multiple of a quad (the
    // general kernel in `Plan::Registers`), 8 is (the tiled kernels).
    for (i, n) in [8, 7].into_iter().enumerate() {
        let s = MatmulShape::new(8, n, 70_000);
        check(s, true, 470 + i as u64);
    }
    // The weight gradient of a batch past the limit (K is the batch), with its bias's column sums
    // (each split's, then added).
    let dw = MatmulShape {
        trans_a: true,
        ..MatmulShape::new(5, 8, 50_001)
    };
    check_sums(dw, 4, 475, Plan::auto(gpu(), gpu().flavours.matmul, dw));
}

#[test]
fn shared_kernel_on_the_notebooks_dense_layer_at_batch_128() {
    // The products the shared-memory kernel is for, whole, with the plans a GPU gets: the first dense
    // layer (8192 -> 512) at batch 128, forward in 64 splits of 128 (16 slabs each, so both halves of
    // the double buffer are reused), dW unsplit over 256 tiles, dx in 4 splits.
    let (batch, inputs, units) = (128, 8192, 512);
    let shapes = [
        (MatmulShape::new(batch, units, inputs), 64),
        (
            MatmulShape {
                trans_a: true,
                ..MatmulShape::new(inputs, units, batch)
            },
            1,
        ),
        (
            MatmulShape {
                trans_b: true,
                ..MatmulShape::new(batch, inputs, units)
            },
            4,
        ),
    ];
    for (i, (s, splits)) in shapes.into_iter().enumerate() {
        let plan = Plan::auto(gpu(), MatmulFlavour::Shared, s);
        assert_eq!(plan, Plan::Shared { splits }, "{s:?}");
        let (_, dispatches) = check_plan(s, i == 0, 500 + i as u64, plan);
        assert_eq!(dispatches, if splits > 1 { 2 } else { 1 }, "{s:?}");
    }
}

/// Wall time of the notebook's first dense layer (8192 -> 512) at batch 128, all three products as a
/// training step runs them (dW with its bias gradient), in the flavours lavapipe can run: rounds of
/// one call each, interleaved, so a busy machine slows every kernel alike; the fastest of 15 calls.
/// `cargo test --test kernels matmul_timing -- --ignored --nocapture`
#[test]
#[ignore = "timing, not a check"]
fn matmul_timing_notebook_batch_128() {
    let g = gpu();
    let (batch, inputs, units) = (128, 8192, 512);
    let x = g.upload("x", &random(batch * inputs, 1, -1.0, 1.0));
    let w = g.upload("w", &random(inputs * units, 2, -1.0, 1.0));
    let bias = g.upload("bias", &random(units, 3, -1.0, 1.0));
    let dy = g.upload("dy", &random(batch * units, 4, -1.0, 1.0));
    let y = g.zeros("y", batch * units);
    let dx = g.zeros("dx", batch * inputs);
    // dW and db as the flat gradient buffer holds them, adjacent.
    let grads = g.zeros("grads", inputs * units + units);
    let forward = MatmulShape::new(batch, units, inputs);
    let weight = MatmulShape {
        trans_a: true,
        ..MatmulShape::new(inputs, units, batch)
    };
    let input = MatmulShape {
        trans_b: true,
        ..MatmulShape::new(batch, inputs, units)
    };
    let mut plans = vec![Plan::Registers];
    if g.can_run_subgroup_matmul() {
        plans.push(Plan::Subgroups);
    }
    let mut cases = Vec::new();
    for plan in plans {
        let sums_at = Some(inputs * units);
        cases.push((
            format!("forward {plan:?}"),
            matmul_planned(g, &x, &w, Some(&bias), &y, None, forward, plan),
        ));
        cases.push((
            format!("dW + db {plan:?}"),
            matmul_planned(g, &x, &dy, None, &grads, sums_at, weight, plan),
        ));
        cases.push((
            format!("dx {plan:?}"),
            matmul_planned(g, &dy, &w, None, &dx, None, input, plan),
        ));
    }
    let mut best = vec![f64::INFINITY; cases.len()];
    for (_, d) in &cases {
        run_all(d);
    }
    for _ in 0..15 {
        for (i, (_, d)) in cases.iter().enumerate() {
            let start = std::time::Instant::now();
            run_all(d);
            best[i] = best[i].min(start.elapsed().as_secs_f64());
        }
    }
    for ((name, d), secs) in cases.iter().zip(best) {
        let names: Vec<&str> = d.iter().map(|d| d.name).collect();
        let flops: u64 = d.iter().map(|d| d.cost.flops).sum();
        println!(
            "{name} ({}): {:.2} ms (fastest of 15), {:.2} GFLOP/s",
            names.join("+"),
            secs * 1e3,
            flops as f64 / secs / 1e9
        );
    }
}
