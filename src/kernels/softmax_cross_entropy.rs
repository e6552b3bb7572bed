//! (being written)

super::shader!("softmax_cross_entropy.wgsl");
