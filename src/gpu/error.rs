//! What can go wrong on the device, and how wgpu's own errors become ours: wgpu reports a failed
//! buffer creation or an invalid dispatch to an error handler whose default panics, so every device
//! gets a handler that records the first error for the next wait to return ([`DeviceErrors`]), and
//! placing a model runs inside error scopes ([`Gpu::catching`]).

use std::sync::{Arc, Mutex};

use thiserror::Error;

use crate::gpu::Gpu;

#[derive(Debug, Error)]
pub enum GpuError {
    #[error(
        "no GPU adapter found (backends: {backends}).\n\
         cifar-wgpu needs a Vulkan, Metal, DX12 or GL driver. For headless use on Linux install \
         lavapipe, Mesa's software Vulkan driver: `sudo apt-get install mesa-vulkan-drivers`; then \
         `cifar-wgpu adapters` should list it"
    )]
    NoAdapter { backends: String },
    #[error("no adapter's name contains '{wanted}'; the adapters are:\n  {available}")]
    NoMatchingAdapter { wanted: String, available: String },
    #[error("could not open a device on '{adapter}': {source}")]
    RequestDevice {
        adapter: String,
        #[source]
        source: wgpu::RequestDeviceError,
    },
    #[error("GPU error: {0}")]
    Device(String),
    #[error("reading a buffer back from the GPU failed: {0}")]
    Readback(String),
    #[error(
        "{what} needs {} in one buffer; this adapter allows {} ({limit_name}): {remedy}",
        human_bytes(*needed),
        human_bytes(*limit)
    )]
    TooLarge {
        what: String,
        needed: u64,
        limit: u64,
        /// The adapter limit's name in `wgpu::Limits`, e.g. `max_storage_buffer_binding_size`.
        limit_name: &'static str,
        /// What the user can change, e.g. "use a smaller --batch-size".
        remedy: String,
    },
    #[error(
        "{what} would loop {steps} times in one invocation of its kernels; '{adapter}' ends an \
         invocation's loops after 65535 iterations (llvmpipe's loop limiter), which would train \
         silently wrong, so we keep to {limit}: {remedy}"
    )]
    LoopLimit {
        what: String,
        steps: usize,
        limit: usize,
        adapter: String,
        /// What the user can change, e.g. "use a smaller pool window or a real GPU".
        remedy: String,
    },
    #[error(
        "WGPU_BACKEND={value}: {problem}; use one or more of vulkan, metal, dx12, gl \
         (comma-separated), or unset it"
    )]
    Backend { value: String, problem: String },
}

/// `12.3 GB`, `2.0 GB`, `512 MB`: byte counts as the user reads them in an error.
pub fn human_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        0..1_000_000 => format!("{bytes} bytes"),
        1_000_000..1_000_000_000 => format!("{:.1} MB", b / 1e6),
        _ => format!("{:.1} GB", b / 1e9),
    }
}

/// The backends `WGPU_BACKEND` names, with the setting as the user wrote it (`WGPU_BACKEND=dx12`), for
/// messages; `None` when it is unset. wgpu itself skips names it does not know, and an empty choice
/// would silently fall back to GL: here any unknown name is an error.
pub fn env_backends() -> Result<Option<(wgpu::Backends, String)>, GpuError> {
    let Ok(value) = std::env::var("WGPU_BACKEND") else {
        return Ok(None);
    };
    let known = [
        "vulkan", "vk", "metal", "mtl", "dx12", "d3d12", "gl", "gles", "opengl",
    ];
    let names: Vec<String> = value.split(',').map(|n| n.trim().to_lowercase()).collect();
    if let Some(bad) = names.iter().find(|n| !known.contains(&n.as_str())) {
        return Err(GpuError::Backend {
            problem: format!("'{bad}' is not a graphics API wgpu knows"),
            value,
        });
    }
    Ok(Some((
        wgpu::Backends::from_comma_list(&value),
        format!("WGPU_BACKEND={value}"),
    )))
}

/// The first error wgpu reported outside any error scope, kept until a wait returns it.
#[derive(Clone, Default)]
pub struct DeviceErrors(Arc<Mutex<Option<String>>>);

impl DeviceErrors {
    /// Installs itself as `device`'s uncaptured-error handler, in place of wgpu's panicking default.
    pub fn install(&self, device: &wgpu::Device) {
        let first = self.0.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            log::error!("GPU error: {e}");
            let mut first = first.lock().unwrap_or_else(|p| p.into_inner());
            first.get_or_insert_with(|| e.to_string());
        }));
    }

    /// The recorded error, if any, as ours.
    pub fn check(&self) -> Result<(), GpuError> {
        let first = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match first.as_ref() {
            Some(e) => Err(GpuError::Device(e.clone())),
            None => Ok(()),
        }
    }
}

impl Gpu {
    /// Runs `f` with the device's validation, out-of-memory and internal errors captured, and
    /// returns the first of them as ours: placing a model that the adapter cannot hold ends in an
    /// error naming `what`, not in wgpu's panic.
    pub fn catching<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T, GpuError> {
        let scopes = [
            wgpu::ErrorFilter::Internal,
            wgpu::ErrorFilter::OutOfMemory,
            wgpu::ErrorFilter::Validation,
        ]
        .map(|filter| self.device.push_error_scope(filter));
        let value = f();
        // Innermost first, as scopes must be popped.
        let mut first = None;
        for scope in scopes.into_iter().rev() {
            if let Some(e) = pollster::block_on(scope.pop()) {
                first.get_or_insert(e);
            }
        }
        match first {
            Some(e) => Err(GpuError::Device(format!("{what}: {e}"))),
            None => Ok(value),
        }
    }
}
