use thiserror::Error;

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
        "{what} needs {needed} bytes in one binding, more than this adapter's limit of {limit} bytes"
    )]
    TooLarge {
        what: String,
        needed: u64,
        limit: u64,
    },
}
