//! (being written)

super::shader!("dropout.wgsl");
