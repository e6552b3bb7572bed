//! (being written)

super::shader!("maxpool2d.wgsl");
