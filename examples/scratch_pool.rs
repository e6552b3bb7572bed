// Scratch benchmark for the maxpool/elementwise kernels: loads shaders at run time so variants can be
// compared without rebuilding. Not part of the crate; deleted before commit.
use cifar_wgpu::gpu::{Cost, Dispatch, Gpu, GpuOptions, Shader, Tensor, run_dispatches};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PoolParams([u32; 12]);

fn shader(path: &str) -> &'static Shader {
    let src = std::fs::read_to_string(path).unwrap();
    Box::leak(Box::new(Shader {
        name: Box::leak(path.to_string().into_boxed_str()),
        source: Box::leak(src.into_boxed_str()),
    }))
}

fn grid(g: &Gpu, n: usize, wg: u32) -> [u32; 3] {
    cifar_wgpu::gpu::grid_1d(
        n.div_ceil(wg as usize) as u32,
        g.limits.max_compute_workgroups_per_dimension,
    )
}

fn time(g: &Gpu, d: &Dispatch, reps: usize) -> (f64, f64) {
    run_dispatches(g, &[d]).unwrap();
    let mut v: Vec<f64> = (0..reps)
        .map(|_| {
            let t = std::time::Instant::now();
            run_dispatches(g, &[d]).unwrap();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[0], v[reps / 2])
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let which = args.get(1).map(|s| s.as_str()).unwrap_or("pool");
    let reps: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(5);
    let g = Gpu::new(&GpuOptions::default()).unwrap();
    let wg = 64u32;
    let (n, h, w, c) = (128usize, 32usize, 32usize, 32usize);
    let (oh, ow) = (16usize, 16usize);
    let inl = n * h * w * c;
    let outl = n * oh * ow * c;
    let x: Vec<f32> = (0..inl).map(|i| ((i * 2654435761) % 1000) as f32).collect();
    let tx = g.upload("x", &x);
    let ty = g.zeros("y", outl);
    let ta = g.zeros("a", outl);
    let tdx = g.zeros("dx", inl);
    let p = PoolParams([
        n as u32, h as u32, w as u32, c as u32, 2, 2, 2, 2, oh as u32, ow as u32, 0, 0,
    ]);
    if which == "pool" {
        let sh = shader("shaders/maxpool2d.wgsl");
        let consts = [("WG", wg as f64)];
        let run = |name: &'static str, bufs: &[&Tensor], inv: usize| {
            let d = g.dispatch(
                name,
                sh,
                name,
                &consts,
                &p,
                bufs,
                grid(&g, inv, wg),
                Cost::default(),
            );
            let (best, med) = time(&g, &d, reps);
            println!("{name:<36} best {best:8.1} ms  median {med:8.1} ms");
        };
        run("maxpool2d_forward", &[&tx, &ty, &ta], outl);
        let a1 = g.read_u32(&ta).unwrap();
        run("maxpool2d_forward_vec4", &[&tx, &ty, &ta], outl / 4);
        let a2 = g.read_u32(&ta).unwrap();
        assert_eq!(a1, a2);
        run("maxpool2d_backward", &[&ty, &ta, &tdx], inl);
        let d1 = g.read_f32(&tdx).unwrap();
        run("maxpool2d_backward_tiles", &[&ty, &ta, &tdx], outl);
        assert_eq!(d1, g.read_f32(&tdx).unwrap());
        run("maxpool2d_backward_tiles_vec4", &[&ty, &ta, &tdx], outl / 4);
        assert_eq!(d1, g.read_f32(&tdx).unwrap());
    }
    if which == "relu" {
        let sh = shader("shaders/activation.wgsl");
        let len = inl as u32;
        let xr: Vec<f32> = (0..inl)
            .map(|i| ((i * 2654435761) % 1000) as f32 - 500.0)
            .collect();
        let tx = g.upload("x", &xr);
        let run = |name: &'static str, bufs: &[&Tensor], inv: usize| {
            let d = g.dispatch(
                name,
                sh,
                name,
                &[],
                &[len, 0, 0, 0],
                bufs,
                grid(&g, inv, 256),
                Cost::default(),
            );
            let (best, med) = time(&g, &d, reps);
            println!("{name:<36} best {best:8.1} ms  median {med:8.1} ms");
        };
        run("relu_forward", &[&tx, &tdx], inl);
        let want = g.read_f32(&tdx).unwrap();
        for (name, div) in [
            ("relu_forward_vec4", 4),
            ("relu_forward_x4", 4),
            ("relu_forward_m4", 16),
            ("relu_forward_2v4", 8),
        ] {
            g.write(&tdx, &vec![f32::NAN; inl]);
            run(name, &[&tx, &tdx], inl / div);
            assert_eq!(want, g.read_f32(&tdx).unwrap(), "{name}");
        }
        run("relu_backward", &[&tx, &tx, &tdx], inl);
        run("relu_backward_vec4", &[&tx, &tx, &tdx], inl / 4);
    }
    if which == "drop" {
        let sh = shader("shaders/dropout.wgsl");
        let n = outl;
        let st = g.upload("st", &[7u32, 0, 0, 0]);
        let xr: Vec<f32> = (0..n)
            .map(|i| ((i * 2654435761) % 1000) as f32 - 500.0)
            .collect();
        let tx = g.upload("x", &xr);
        let prm: [u32; 6] = [
            n as u32,
            1,
            2,
            3,
            0.25f32.to_bits(),
            (1.0f32 / 0.75).to_bits(),
        ];
        let run = |name: &'static str, inv: usize| {
            let d = g.dispatch(
                name,
                sh,
                name,
                &[],
                &prm,
                &[&tx, &ty, &st],
                grid(&g, inv, 256),
                Cost::default(),
            );
            let (best, med) = time(&g, &d, reps);
            println!("{name:<36} best {best:8.1} ms  median {med:8.1} ms");
        };
        run("dropout", n);
        let want = g.read_f32(&ty).unwrap();
        g.write(&ty, &vec![f32::NAN; n]);
        run("dropout_vec4", n / 4);
        assert_eq!(want, g.read_f32(&ty).unwrap());
        run("dropout_vec4_nohash", n / 4);
        run("dropout_vec4_nost", n / 4);
        run("dropout_vec4_intcmp", n / 4);
        assert_eq!(want, g.read_f32(&ty).unwrap());
    }
    if which == "rms" {
        let sh = shader("shaders/optimizer.wgsl");
        let n = 4200896usize;
        let st = g.upload("st", &[7u32, 0.001f32.to_bits(), 0, 0]);
        let w0: Vec<f32> = (0..n)
            .map(|i| ((i * 2654435761) % 1000) as f32 - 500.0)
            .collect();
        let tg = g.upload("g", &w0);
        let tw = g.upload("w", &w0);
        let ts = g.zeros("s", n);
        let prm: [u32; 8] = [
            n as u32,
            0,
            0.9f32.to_bits(),
            0.1f32.to_bits(),
            0,
            1e-7f32.to_bits(),
            0,
            0,
        ];
        let run = |name: &'static str, inv: usize| {
            let d = g.dispatch(
                name,
                sh,
                name,
                &[],
                &prm,
                &[&tw, &tg, &st, &ts],
                grid(&g, inv, 256),
                Cost::default(),
            );
            let (best, med) = time(&g, &d, reps);
            println!("{name:<36} best {best:8.1} ms  median {med:8.1} ms");
        };
        run("rmsprop", n);
        run("rmsprop_vec4", n / 4);
    }
}
