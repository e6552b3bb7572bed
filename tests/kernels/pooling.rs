//! What the pooling kernels' tests share: the shape of a pooling, its label, and the loop over
//! paddings, windows and images that the general tests of avgpool2d and maxpool2d both walk.

use cifar_wgpu::shape::{Padding, Pool2dShape};

/// A batch of `n` images `h`x`w`x`c` pooled by `size` windows `stride` apart.
pub fn pool(
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    size: (usize, usize),
    stride: (usize, usize),
    padding: Padding,
) -> Pool2dShape {
    Pool2dShape {
        n,
        h,
        w,
        c,
        pool_h: size.0,
        pool_w: size.1,
        stride_h: stride.0,
        stride_w: stride.1,
        padding,
    }
}

/// One window the size of the image, as the global poolings run.
pub fn global(n: usize, h: usize, w: usize, c: usize) -> Pool2dShape {
    pool(n, h, w, c, (h, w), (h, w), Padding::Valid)
}

/// The shape as the comparisons name it.
pub fn label(s: Pool2dShape) -> String {
    format!(
        "n{} {}x{}x{} pool {}x{} stride {}x{} {:?}",
        s.n, s.h, s.w, s.c, s.pool_h, s.pool_w, s.stride_h, s.stride_w, s.padding
    )
}

/// (size, stride) pairs: windows that tile, overlap, leave gaps or uncovered rows and columns.
pub type Windows<'a> = &'a [((usize, usize), (usize, usize))];

/// (n, h, w, c) of the images.
pub type Images<'a> = &'a [(usize, usize, usize, usize)];

/// Odd sizes, a batch of one and channel counts of 1, 3 and 70.
pub const ODD_IMAGES: [(usize, usize, usize, usize); 3] =
    [(1, 7, 9, 3), (2, 5, 6, 1), (3, 8, 5, 70)];

/// Calls `check` on every image under every window in 'valid' then 'same' padding, with seeds
/// from `seed` 10 apart.
pub fn each_shape(
    windows: Windows,
    images: Images,
    mut seed: u64,
    mut check: impl FnMut(Pool2dShape, u64),
) {
    for padding in [Padding::Valid, Padding::Same] {
        for &(size, stride) in windows {
            for &(n, h, w, c) in images {
                check(pool(n, h, w, c, size, stride, padding), seed);
                seed += 10;
            }
        }
    }
}
