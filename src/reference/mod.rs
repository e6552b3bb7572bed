//! CPU twins of every GPU kernel, in plain Rust and f64. Tests compare each kernel with its twin, and
//! check each backward twin against finite differences of its forward twin; they are also the
//! readable definition of what each kernel computes. One module per shader, with the same names.

pub mod activation;
pub mod avgpool2d;
pub mod batch_norm;
pub mod column_sum;
pub mod conv2d;
pub mod dropout;
pub mod gather;
pub mod matmul;
pub mod maxpool2d;
pub mod optimizer;
pub mod softmax_cross_entropy;

#[cfg(test)]
pub(crate) mod gradcheck;
