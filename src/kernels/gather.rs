//! The data set on the GPU, and batches gathered from it: `shaders/gather.wgsl`.

use crate::gpu::{Cost, Dispatch, Gpu, GpuError, Tensor, WORD};
use crate::kernels::StepState;

super::shader!(
    "gather.wgsl",
    includes[super::common::STEP_STATE, super::common::PCG]
);

/// Invocations per workgroup: the shader's `WG` override.
const WG: u32 = 256;

pub(super) fn contracts() -> Vec<super::Contract> {
    vec![super::Contract {
        shader: &SHADER,
        structs: vec![
            super::host_struct!(Params {
                count,
                image_bytes,
                first_record,
                records
            }),
            super::host_struct!(AugmentParams {
                count,
                image_bytes,
                first_record,
                records,
                height,
                width,
                channels,
                flip,
                seed_lo,
                seed_hi,
                zoom_lo,
                zoom_span,
                shift_x,
                shift_y,
                unit,
                salt
            }),
            StepState::host_struct(),
        ],
        consts: vec![("ANGLES", ANGLES)],
    }]
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    count: u32,
    image_bytes: u32,
    first_record: u32,
    records: u32,
}

/// Angles in the rotation table the augmented gather draws from (the shader's `ANGLES`).
pub const ANGLES: u32 = 4096;
/// The longest image side the augmented gather's fixed-point arithmetic holds without overflow.
pub const MAX_AUGMENT_SIDE: usize = 2048;
/// Salt of the augmentation's draws, far from the layer indices dropout uses as salts.
pub const AUGMENT_SALT: u32 = 0xa06_0000;

/// The augmentation settings as the kernel takes them (`data::augment::Augment::consts`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AugmentConsts {
    /// Zoom factors, Q15: zoom_lo + floor(zoom_span * u / 2^16) for 16 random bits u.
    pub zoom_lo: u32,
    pub zoom_span: u32,
    /// Largest shift in pixels, Q16: along columns (Keras' tx, from the height) and rows.
    pub shift_x: u32,
    pub shift_y: u32,
    /// 1 when half of the images are flipped left to right.
    pub flip: u32,
}

/// 1 / (255 * 2^16): the augmented gather's weighted byte sums (24 bits) times this are pixels.
pub const AUGMENT_UNIT: f32 = 1.0 / 16_711_680.0;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct AugmentParams {
    count: u32,
    image_bytes: u32,
    first_record: u32,
    records: u32,
    height: u32,
    width: u32,
    channels: u32,
    flip: u32,
    seed_lo: u32,
    seed_hi: u32,
    zoom_lo: u32,
    zoom_span: u32,
    shift_x: u32,
    shift_y: u32,
    unit: f32,
    salt: u32,
}

/// What the augmented gather binds besides the batch: the settings, the run's seed and the
/// rotation table (`data::augment::Augment::rotation_table`), uploaded once.
pub struct Augmentation {
    pub consts: AugmentConsts,
    pub seed: u64,
    /// `ANGLES` (cos, sin) pairs in Q15.
    pub rotations: Tensor,
}

impl Augmentation {
    pub fn new(
        gpu: &Gpu,
        consts: AugmentConsts,
        rotation_table: &[i32],
        seed: u64,
    ) -> Augmentation {
        assert_eq!(
            rotation_table.len(),
            2 * ANGLES as usize,
            "rotation table size"
        );
        let words: Vec<u32> = rotation_table.iter().map(|&v| v as u32).collect();
        Augmentation {
            consts,
            seed,
            rotations: gpu.upload("rotations", &words),
        }
    }
}

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Images as bytes on the GPU, split into chunks of whole records that each fit one binding.
pub struct DeviceImages {
    pub chunks: Vec<ImageChunk>,
    /// Every label, one u32 each.
    pub labels: Tensor,
    /// The 256 values `byte as f32 / 255.0`, as Keras computes them.
    pub byte_to_unit: Tensor,
    pub image_bytes: usize,
    pub len: usize,
    /// Unique per upload, so caches of programs that bind these buffers key on the data, not on an
    /// address a later upload may reuse.
    pub id: u64,
}

pub struct ImageChunk {
    /// Packed bytes of records [first_record, first_record + records).
    pub data: Tensor,
    pub first_record: usize,
    pub records: usize,
}

/// Packs bytes four to a little-endian u32 word, zero-padding the end.
pub fn pack_bytes(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(w)
        })
        .collect()
}

/// The per-byte table the gather kernel uses for /255.
pub fn byte_to_unit_table() -> Vec<f32> {
    (0..256).map(|b| b as f32 / 255.0).collect()
}

/// Uploads `images` (n records of `image_bytes` bytes) and their labels once. `max_chunk_bytes`
/// bounds one chunk; pass `gpu.max_binding_bytes()` except to test the chunking itself.
pub fn upload_images(
    gpu: &Gpu,
    images: &[u8],
    labels: &[u8],
    image_bytes: usize,
    max_chunk_bytes: u64,
) -> Result<DeviceImages, GpuError> {
    let n = labels.len();
    // The kernel's parameters are u32: record sizes and counts past that would wrap on the GPU.
    if image_bytes == 0 || u32::try_from(image_bytes).is_err() || u32::try_from(n).is_err() {
        return Err(GpuError::Device(format!(
            "{n} images of {image_bytes} bytes each: images must have at least one byte, and both \
             numbers must be below 2^32"
        )));
    }
    assert_eq!(
        Some(images.len()),
        n.checked_mul(image_bytes),
        "the caller's images and labels disagree"
    );
    let per_chunk = (max_chunk_bytes / image_bytes as u64) as usize;
    if per_chunk == 0 {
        return Err(GpuError::TooLarge {
            what: "one image".into(),
            needed: image_bytes as u64,
            limit: max_chunk_bytes,
            limit_name: "max_storage_buffer_binding_size",
            remedy: "use smaller images (--image-size for an image folder)".into(),
        });
    }
    let chunks = (0..n.div_ceil(per_chunk).max(1))
        .map(|c| {
            let first = c * per_chunk;
            let records = per_chunk.min(n - first);
            let bytes = &images[first * image_bytes..(first + records) * image_bytes];
            ImageChunk {
                data: gpu.upload("images", &pack_bytes(bytes)),
                first_record: first,
                records,
            }
        })
        .collect();
    let labels32: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
    Ok(DeviceImages {
        chunks,
        labels: gpu.upload("labels", &labels32),
        byte_to_unit: gpu.upload("byte_to_unit", &byte_to_unit_table()),
        image_bytes,
        len: n,
        id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    })
}

/// Gathers `indices.len` images into `images` ([count, image_bytes] f32) and their labels into
/// `batch_labels` ([count] u32): one dispatch per chunk, four bytes per invocation where images are
/// whole words (`gather_batch_vec4`: CIFAR's 3072 bytes, MNIST's 784).
pub fn gather_batch(
    gpu: &Gpu,
    data: &DeviceImages,
    indices: &Tensor,
    images: &Tensor,
    batch_labels: &Tensor,
) -> Vec<Dispatch> {
    let count = indices.len;
    assert_eq!(
        images.len,
        count * data.image_bytes,
        "gather_batch: image tensor size"
    );
    assert_eq!(batch_labels.len, count, "gather_batch: label tensor size");
    let (entry, per_invocation) = if data.image_bytes.is_multiple_of(4) {
        ("gather_batch_vec4", 4)
    } else {
        ("gather_batch", 1)
    };
    data.chunks
        .iter()
        .map(|chunk| {
            let params = Params {
                count: count as u32,
                image_bytes: data.image_bytes as u32,
                first_record: chunk.first_record as u32,
                records: chunk.records as u32,
            };
            let elems = count * data.image_bytes;
            let cost = Cost {
                flops: 0,
                // Each image byte is read and each f32 written once over all chunks.
                bytes: (elems as u64 * (1 + WORD)) / data.chunks.len() as u64,
            };
            gpu.dispatch(
                "gather_batch",
                &SHADER,
                entry,
                &[("WG", WG as f64)],
                &params,
                &[
                    &chunk.data,
                    &data.labels,
                    indices,
                    images,
                    batch_labels,
                    &data.byte_to_unit,
                ],
                super::grid(gpu, elems / per_invocation, WG),
                cost,
            )
        })
        .collect()
}

/// `gather_batch` with each image through its random affine for the step in `step_state`: images
/// of `shape` ([height, width, channels]). One dispatch per chunk; see the shader for the geometry.
#[allow(clippy::too_many_arguments)]
pub fn gather_batch_augmented(
    gpu: &Gpu,
    data: &DeviceImages,
    shape: [usize; 3],
    aug: &Augmentation,
    indices: &Tensor,
    images: &Tensor,
    batch_labels: &Tensor,
    step_state: &Tensor,
) -> Vec<Dispatch> {
    let count = indices.len;
    let [height, width, channels] = shape;
    assert_eq!(
        height * width * channels,
        data.image_bytes,
        "gather_batch_augmented: image shape"
    );
    assert!(
        height <= MAX_AUGMENT_SIDE && width <= MAX_AUGMENT_SIDE,
        "gather_batch_augmented: {height}x{width} images (Augment::consts refuses them)"
    );
    assert_eq!(
        images.len,
        count * data.image_bytes,
        "gather_batch_augmented: image tensor size"
    );
    assert_eq!(
        batch_labels.len, count,
        "gather_batch_augmented: label tensor size"
    );
    let c = aug.consts;
    data.chunks
        .iter()
        .map(|chunk| {
            let params = AugmentParams {
                count: count as u32,
                image_bytes: data.image_bytes as u32,
                first_record: chunk.first_record as u32,
                records: chunk.records as u32,
                height: height as u32,
                width: width as u32,
                channels: channels as u32,
                flip: c.flip,
                seed_lo: aug.seed as u32,
                seed_hi: (aug.seed >> 32) as u32,
                zoom_lo: c.zoom_lo,
                zoom_span: c.zoom_span,
                shift_x: c.shift_x,
                shift_y: c.shift_y,
                unit: AUGMENT_UNIT,
                salt: AUGMENT_SALT,
            };
            let elems = count * data.image_bytes;
            let cost = Cost {
                // Per output value: the source point (8 fixed-point products) and the bilinear sum.
                flops: elems as u64 * 16 / data.chunks.len() as u64,
                // Four source bytes read per output value (mostly cached), one f32 written.
                bytes: (elems as u64 * (4 + WORD)) / data.chunks.len() as u64,
            };
            gpu.dispatch(
                "gather_augmented",
                &SHADER,
                "gather_augmented",
                &[("WG", WG as f64)],
                &params,
                &[
                    &chunk.data,
                    &data.labels,
                    indices,
                    images,
                    batch_labels,
                    &aug.rotations,
                    step_state,
                ],
                super::grid(gpu, elems, WG),
                cost,
            )
        })
        .collect()
}
