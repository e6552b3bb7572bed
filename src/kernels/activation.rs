//! (being written)

super::shader!("activation.wgsl");
