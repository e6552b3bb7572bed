use cifar_wgpu::kernels::gather::{gather_batch, upload_images};
use cifar_wgpu::reference;

use crate::common::*;

#[test]
fn gather_batch_across_chunks_is_bit_exact() {
    let g = gpu();
    // 7-byte images so records straddle u32 words; chunks of 3 records force several dispatches.
    let (n, image_bytes) = (10usize, 7usize);
    let data: Vec<u8> = (0..n * image_bytes).map(|i| (i * 37 % 256) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let dev = upload_images(g, &data, &labels, image_bytes, (3 * image_bytes) as u64).unwrap();
    assert_eq!(dev.chunks.len(), 4);
    let indices: Vec<u32> = vec![9, 0, 4, 4, 7, 2];
    let ti = g.upload("indices", &indices);
    let images = poisoned(indices.len() * image_bytes);
    let batch_labels = g.upload("labels", &vec![u32::MAX; indices.len()]);
    let ds = gather_batch(g, &dev, &ti, &images, &batch_labels);
    run_all(&ds);
    let (want_images, want_labels) =
        reference::gather::gather_batch(&data, &labels, image_bytes, &indices);
    let got = read(&images);
    let got_bits: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
    let want_bits: Vec<u32> = want_images.iter().map(|v| v.to_bits()).collect();
    compare_exact("gather_batch images (bits)", &got_bits, &want_bits);
    compare_exact(
        "gather_batch labels",
        &g.read_u32(&batch_labels).unwrap(),
        &want_labels,
    );
}
