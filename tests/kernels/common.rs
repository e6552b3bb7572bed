//! Shared by the kernel tests: one device per test binary, random data, poisoned outputs and the
//! comparison every test uses.

use std::sync::OnceLock;

use cifar_wgpu::gpu::{Dispatch, Gpu, GpuOptions, Tensor, run_dispatches};

/// Relative error of the norm allowed between an f32 kernel and its f64 twin.
pub const F32_TOL: f64 = 1e-4;

/// The test device. A machine without an adapter fails loudly here: the kernels are the product, and a
/// skipped kernel test would hide that nothing was checked.
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let gpu = Gpu::new(&GpuOptions::default()).unwrap_or_else(|e| {
            panic!("kernel tests need a GPU adapter (lavapipe is enough): {e}")
        });
        println!("adapter: {} ({:?})", gpu.info.name, gpu.info.backend);
        gpu
    })
}

/// Deterministic values in [lo, hi) (an LCG, so test data never changes under us).
pub fn random(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) ^ 0xD1B54A32D192ED03;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect()
}

pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// An output tensor filled with NaN.
pub fn poisoned(len: usize) -> Tensor {
    gpu().upload("poisoned", &vec![f32::NAN; len])
}

pub fn run(dispatches: &[&Dispatch]) {
    run_dispatches(gpu(), dispatches).expect("GPU run failed");
}

pub fn run_all(dispatches: &[Dispatch]) {
    let refs: Vec<&Dispatch> = dispatches.iter().collect();
    run(&refs);
}

pub fn read(t: &Tensor) -> Vec<f32> {
    gpu().read_f32(t).expect("readback failed")
}

/// Reads `got` back and compares it with its twin within `F32_TOL` (`compare`).
pub fn compare_tensor(name: &str, got: &Tensor, want: &[f64]) -> f64 {
    compare(name, &read(got), want, F32_TOL)
}

/// Compares a GPU result with its reference: relative error of the norm within `tol`, no NaN or
/// infinity anywhere. Prints one line per tensor; returns the relative error.
pub fn compare(name: &str, got: &[f32], want: &[f64], tol: f64) -> f64 {
    assert_eq!(
        got.len(),
        want.len(),
        "{name}: length {} != {}",
        got.len(),
        want.len()
    );
    let mut diff2 = 0.0f64;
    let mut norm2 = 0.0f64;
    let mut worst = (0usize, 0.0f64);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.is_finite(),
            "{name}: element {i} is {g} (want {w}): never written or overflowed"
        );
        let d = (g as f64 - w).abs();
        if d > worst.1 {
            worst = (i, d);
        }
        diff2 += d * d;
        norm2 += w * w;
    }
    let rel = if norm2 > 0.0 {
        (diff2 / norm2).sqrt()
    } else {
        diff2.sqrt()
    };
    let verdict = if rel <= tol { "OK" } else { "FAIL" };
    println!(
        "{name}: {verdict} rel {rel:.2e} (tol {tol:.0e}), max diff {:.2e} at {} of {}",
        worst.1,
        worst.0,
        got.len()
    );
    assert!(
        rel <= tol,
        "{name}: relative error {rel:.2e} exceeds {tol:.0e}; max diff {:.2e} at element {}",
        worst.1,
        worst.0
    );
    rel
}

/// Exact comparison for integer outputs.
pub fn compare_exact(name: &str, got: &[u32], want: &[u32]) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    let bad = got.iter().zip(want).position(|(g, w)| g != w);
    if let Some(i) = bad {
        panic!(
            "{name}: element {i} is {} but should be {}",
            got[i], want[i]
        );
    }
    println!("{name}: OK exact ({} elements)", got.len());
}
