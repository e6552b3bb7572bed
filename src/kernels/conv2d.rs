//! (being written)

super::shader!("conv2d.wgsl");
