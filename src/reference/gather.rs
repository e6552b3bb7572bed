//! CPU twin of `shaders/gather.wgsl`.

/// Images `indices` of `data` (records of `image_bytes` bytes) as f32 / 255, with their labels.
pub fn gather_batch(
    data: &[u8],
    labels: &[u8],
    image_bytes: usize,
    indices: &[u32],
) -> (Vec<f32>, Vec<u32>) {
    let mut images = Vec::with_capacity(indices.len() * image_bytes);
    let mut out_labels = Vec::with_capacity(indices.len());
    for &i in indices {
        let i = i as usize;
        images.extend(
            data[i * image_bytes..(i + 1) * image_bytes]
                .iter()
                .map(|&b| b as f32 / 255.0),
        );
        out_labels.push(labels[i] as u32);
    }
    (images, out_labels)
}
