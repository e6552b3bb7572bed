//! (being written)

super::shader!("optimizer.wgsl");
