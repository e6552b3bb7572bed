//! `Tensor`: a range of 32-bit words in a GPU buffer.
//!
//! Every kernel reads and writes f32 or u32 words, so one untyped view serves both; the host decides
//! the element type when it uploads or reads back. A tensor can be a sub-range of a larger buffer,
//! which is how all parameters share one flat buffer that a single optimizer dispatch updates.

use wgpu::util::DeviceExt;

use crate::gpu::{Gpu, GpuError};

/// Bytes per element: every tensor holds f32 or u32 words.
pub const WORD: u64 = 4;

const STORAGE_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

#[derive(Clone, Debug)]
pub struct Tensor {
    pub buffer: wgpu::Buffer,
    /// Offset of the first element, in bytes (a multiple of the adapter's storage offset alignment).
    pub offset: u64,
    /// Number of 32-bit elements.
    pub len: usize,
}

impl Tensor {
    pub fn bytes(&self) -> u64 {
        self.len as u64 * WORD
    }

    /// The binding for this range. An empty tensor binds one word, since WebGPU forbids empty bindings;
    /// kernels never read it.
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.offset,
            size: wgpu::BufferSize::new(self.bytes().max(WORD)),
        })
    }

    /// A view of `len` elements starting at element `start`. The caller keeps `start` aligned to the
    /// adapter's `min_storage_buffer_offset_alignment`, or the bind group is rejected.
    pub fn slice(&self, start: usize, len: usize) -> Tensor {
        assert!(
            start + len <= self.len,
            "slice {start}+{len} of a tensor of {}",
            self.len
        );
        Tensor {
            buffer: self.buffer.clone(),
            offset: self.offset + start as u64 * WORD,
            len,
        }
    }

    /// One view from the start of `self` to the end of `later`, a range of the same buffer that starts
    /// at or after `self`'s end, and `later`'s first element within it: one binding for a pair a kernel
    /// writes together, such as a layer's kernel and bias gradients (alignment padding may lie between
    /// them). `None` when `later` is elsewhere.
    pub fn span_to(&self, later: &Tensor) -> Option<(Tensor, usize)> {
        let end = self.offset + self.bytes();
        if later.buffer != self.buffer || later.offset < end {
            return None;
        }
        let start = ((later.offset - self.offset) / WORD) as usize;
        let span = Tensor {
            buffer: self.buffer.clone(),
            offset: self.offset,
            len: start + later.len,
        };
        Some((span, start))
    }
}

impl Gpu {
    /// A tensor initialised from host data (f32 or u32).
    pub fn upload<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> Tensor {
        assert_eq!(
            std::mem::size_of::<T>() as u64,
            WORD,
            "tensors hold 32-bit words"
        );
        let mut bytes: &[u8] = bytemuck::cast_slice(data);
        let word = [0u8; WORD as usize];
        if bytes.is_empty() {
            bytes = &word;
        }
        let buffer = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytes,
                usage: STORAGE_USAGE,
            });
        Tensor {
            buffer,
            offset: 0,
            len: data.len(),
        }
    }

    /// A zero-filled tensor of `len` words (wgpu zero-initialises new buffers).
    pub fn zeros(&self, label: &str, len: usize) -> Tensor {
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (len as u64 * WORD).max(WORD),
            usage: STORAGE_USAGE,
            mapped_at_creation: false,
        });
        Tensor {
            buffer,
            offset: 0,
            len,
        }
    }

    /// Overwrites a tensor's contents from the host (queued; takes effect before the next submission).
    pub fn write<T: bytemuck::Pod>(&self, tensor: &Tensor, data: &[T]) {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        assert_eq!(
            bytes.len() as u64,
            tensor.bytes(),
            "write of the wrong size"
        );
        if !bytes.is_empty() {
            self.queue
                .write_buffer(&tensor.buffer, tensor.offset, bytes);
        }
    }

    /// Copies a tensor back to the host. This waits for the GPU: call it for metrics, evaluation and
    /// saving, never inside a batch.
    pub fn read<T: bytemuck::Pod>(&self, tensor: &Tensor) -> Result<Vec<T>, GpuError> {
        assert_eq!(
            std::mem::size_of::<T>() as u64,
            WORD,
            "tensors hold 32-bit words"
        );
        if tensor.len == 0 {
            return Ok(Vec::new());
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: tensor.bytes(),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("readback"),
            });
        encoder.copy_buffer_to_buffer(&tensor.buffer, tensor.offset, &staging, 0, tensor.bytes());
        self.queue.submit([encoder.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|e| GpuError::Readback(e.to_string()))?
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        let out = bytemuck::cast_slice::<u8, T>(&view).to_vec();
        drop(view);
        staging.unmap();
        Ok(out)
    }

    pub fn read_f32(&self, tensor: &Tensor) -> Result<Vec<f32>, GpuError> {
        self.read::<f32>(tensor)
    }

    pub fn read_u32(&self, tensor: &Tensor) -> Result<Vec<u32>, GpuError> {
        self.read::<u32>(tensor)
    }
}
