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
    /// Output has ceil(input / stride) pixels; TensorFlow puts the odd pixel of padding after.
    #[default]
    Same,
    /// No padding: output is `(in - k) / stride + 1`.
    Valid,
}

/// A strided 2-D convolution, channels-last.
/// Input [n, h, w, cin], kernel [kh, kw, cin, cout] (Keras' layout), bias [cout], output [n, oh, ow, cout].
/// Output pixel (oy, ox) meets input pixel (oy * stride_h + i - pad_top, ox * stride_w + j - pad_left)
/// at kernel tap (i, j).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dShape {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub cin: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub padding: Padding,
}

/// Output size along one axis of `size` pixels, as TensorFlow computes it: 'same' covers every input
/// pixel (ceil(size / stride)), 'valid' only whole windows (`size >= k` is the caller's to check).
fn conv_out(size: usize, k: usize, stride: usize, padding: Padding) -> usize {
    match padding {
        Padding::Same => size.div_ceil(stride),
        Padding::Valid => (size - k) / stride + 1,
    }
}

/// Padding before the first pixel along one axis: TensorFlow's 'same' pads
/// max((out - 1) * stride + k - size, 0) in all, the smaller half before (the odd pixel goes after).
fn conv_pad_before(size: usize, k: usize, stride: usize, padding: Padding) -> usize {
    match padding {
        Padding::Same => {
            ((conv_out(size, k, stride, padding) - 1) * stride + k).saturating_sub(size) / 2
        }
        Padding::Valid => 0,
    }
}

impl Conv2dShape {
    pub fn out_h(&self) -> usize {
        conv_out(self.h, self.kh, self.stride_h, self.padding)
    }
    pub fn out_w(&self) -> usize {
        conv_out(self.w, self.kw, self.stride_w, self.padding)
    }
    pub fn pad_top(&self) -> usize {
        conv_pad_before(self.h, self.kh, self.stride_h, self.padding)
    }
    pub fn pad_left(&self) -> usize {
        conv_pad_before(self.w, self.kw, self.stride_w, self.padding)
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

/// The elementwise functions of `shaders/activation.wgsl`, shared by its kernels and their CPU twins.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ActivationFn {
    /// max(x, 0); the gradient at exactly 0 is 0 (TensorFlow's ReluGrad).
    Relu,
    /// 1 / (1 + exp(-x)).
    Sigmoid,
    Tanh,
    /// x for x > 0, else alpha * (exp(x) - 1).
    Elu {
        alpha: f32,
    },
    /// x for x > 0, else slope * x; the gradient at exactly 0 is the slope (TensorFlow's
    /// LeakyReluGrad).
    LeakyRelu {
        slope: f32,
    },
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
    /// The most loop iterations one invocation of a pooling kernel takes: a window's rows and cells
    /// (the forward), or the windows that hold one cell (the backward, at most as many).
    pub fn window_loop_steps(&self) -> usize {
        self.pool_h * (self.pool_w + 1) + 1
    }

    /// Panics unless the pooling kernel `kernel` can take the shape: a non-empty window and strides,
    /// a 'valid' window within the input, and element indices that fit u32.
    pub fn assert_valid(&self, kernel: &str) {
        assert!(
            self.pool_h >= 1 && self.pool_w >= 1 && self.stride_h >= 1 && self.stride_w >= 1,
            "{kernel}: empty window or zero stride in {self:?}"
        );
        assert!(
            self.padding == Padding::Same || (self.pool_h <= self.h && self.pool_w <= self.w),
            "{kernel}: window larger than the input in {self:?}"
        );
        assert!(
            self.input_len() <= u32::MAX as usize,
            "{kernel}: indices overflow u32 in {self:?}"
        );
    }

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
