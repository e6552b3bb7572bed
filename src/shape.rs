//! Shapes of the tensors each kernel family works on, shared by the GPU kernels and their CPU
//! references. Every activation is channels-last (NHWC) like Keras, so a Flatten is free and a Dense
//! layer's kernel is in Keras' own [in, out] order.

/// C[m, n] = op(A)[m, k] * op(B)[k, n]; see `shaders/matmul.wgsl` for the storage of transposed operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulShape {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// A is stored as [k, m].
    pub trans_a: bool,
    /// B is stored as [n, k].
    pub trans_b: bool,
}

impl MatmulShape {
    pub fn new(m: usize, n: usize, k: usize) -> MatmulShape {
        MatmulShape {
            m,
            n,
            k,
            trans_a: false,
            trans_b: false,
        }
    }
}

/// Keras' two padding modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Padding {
    /// Output has the input's size (stride 1); TensorFlow puts the odd pixel of padding after.
    #[default]
    Same,
    /// No padding: output is `in - k + 1`.
    Valid,
}

/// A stride-1 2-D convolution, channels-last.
/// Input [n, h, w, cin], kernel [kh, kw, cin, cout] (Keras' layout), bias [cout], output [n, oh, ow, cout].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dShape {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub cin: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub padding: Padding,
}

impl Conv2dShape {
    pub fn out_h(&self) -> usize {
        match self.padding {
            Padding::Same => self.h,
            Padding::Valid => self.h + 1 - self.kh,
        }
    }
    pub fn out_w(&self) -> usize {
        match self.padding {
            Padding::Same => self.w,
            Padding::Valid => self.w + 1 - self.kw,
        }
    }
    /// Padding before the first row / column (TensorFlow: floor of half the total).
    pub fn pad_top(&self) -> usize {
        match self.padding {
            Padding::Same => (self.kh - 1) / 2,
            Padding::Valid => 0,
        }
    }
    pub fn pad_left(&self) -> usize {
        match self.padding {
            Padding::Same => (self.kw - 1) / 2,
            Padding::Valid => 0,
        }
    }
    pub fn input_len(&self) -> usize {
        self.n * self.h * self.w * self.cin
    }
    pub fn kernel_len(&self) -> usize {
        self.kh * self.kw * self.cin * self.cout
    }
    pub fn output_len(&self) -> usize {
        self.n * self.out_h() * self.out_w() * self.cout
    }
}

/// 2-D max pooling, channels-last: input [n, h, w, c], output [n, oh, ow, c].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dShape {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub pool_h: usize,
    pub pool_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub padding: Padding,
}

impl Pool2dShape {
    /// Keras' default: strides equal to the pool size, valid padding.
    pub fn new(n: usize, h: usize, w: usize, c: usize, pool: usize) -> Pool2dShape {
        Pool2dShape {
            n,
            h,
            w,
            c,
            pool_h: pool,
            pool_w: pool,
            stride_h: pool,
            stride_w: pool,
            padding: Padding::Valid,
        }
    }
    pub fn out_h(&self) -> usize {
        match self.padding {
            Padding::Valid => (self.h - self.pool_h) / self.stride_h + 1,
            Padding::Same => self.h.div_ceil(self.stride_h),
        }
    }
    pub fn out_w(&self) -> usize {
        match self.padding {
            Padding::Valid => (self.w - self.pool_w) / self.stride_w + 1,
            Padding::Same => self.w.div_ceil(self.stride_w),
        }
    }
    /// Padding before the first row (TensorFlow's rule; padded cells never win the max).
    pub fn pad_top(&self) -> usize {
        match self.padding {
            Padding::Valid => 0,
            Padding::Same => {
                ((self.out_h() - 1) * self.stride_h + self.pool_h).saturating_sub(self.h) / 2
            }
        }
    }
    pub fn pad_left(&self) -> usize {
        match self.padding {
            Padding::Valid => 0,
            Padding::Same => {
                ((self.out_w() - 1) * self.stride_w + self.pool_w).saturating_sub(self.w) / 2
            }
        }
    }
    pub fn input_len(&self) -> usize {
        self.n * self.h * self.w * self.c
    }
    pub fn output_len(&self) -> usize {
        self.n * self.out_h() * self.out_w() * self.c
    }
}
