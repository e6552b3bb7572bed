//! Every GPU kernel against its CPU twin (`cifar_wgpu::reference`) on awkward shapes. One module per
//! kernel family. Each comparison prints `name: OK rel … max diff …`, so a failure names the tensor and
//! says by how much it is off. Outputs are poisoned with NaN first, so an element a kernel never writes
//! fails the comparison.

mod common;

mod activation;
mod avgpool2d;
mod batch_norm;
mod column_sum;
mod conv2d;
mod dropout;
mod gather;
mod global_pool2d;
mod matmul;
mod maxpool2d;
mod optimizer;
mod pooling;
mod softmax_cross_entropy;
