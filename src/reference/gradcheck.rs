//! Central finite differences in f64, for checking every backward twin against its forward twin.

/// Deterministic values in [-1, 1) for tests (a small LCG: tests must not depend on an RNG crate's
/// stream staying the same across versions).
pub fn seeded(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

/// Checks `analytic` = d loss / d x at `x` by central differences with step 1e-6; fails with the
/// tensor's name, the worst element and the relative error.
pub fn check_gradient(name: &str, x: &[f64], analytic: &[f64], loss: impl Fn(&[f64]) -> f64) {
    assert_eq!(
        x.len(),
        analytic.len(),
        "{name}: gradient has the wrong length"
    );
    let h = 1e-6;
    let mut v = x.to_vec();
    let mut worst = (0usize, 0.0f64);
    let mut num_norm = 0.0;
    let mut diff_norm = 0.0;
    for i in 0..x.len() {
        v[i] = x[i] + h;
        let up = loss(&v);
        v[i] = x[i] - h;
        let down = loss(&v);
        v[i] = x[i];
        let numeric = (up - down) / (2.0 * h);
        let d = (numeric - analytic[i]).abs();
        if d > worst.1 {
            worst = (i, d);
        }
        num_norm += numeric * numeric;
        diff_norm += d * d;
    }
    let rel = diff_norm.sqrt() / num_norm.sqrt().max(1e-12);
    println!(
        "{name}: finite differences OK? rel = {rel:.2e}, max diff {:.2e} at {}",
        worst.1, worst.0
    );
    assert!(
        rel < 1e-6,
        "{name}: analytic gradient differs from finite differences: rel {rel:.2e}, max diff {:.2e} at element {}",
        worst.1,
        worst.0
    );
}
