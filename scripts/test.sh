#!/usr/bin/env bash
# The project's test command: sets up what a fresh Debian machine lacks, then runs formatting, lints and
# every test. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

have_vulkan_adapter() {
    # lavapipe or a real driver leaves an ICD manifest in one of these places.
    compgen -G "/usr/share/vulkan/icd.d/*.json" >/dev/null || compgen -G "/etc/vulkan/icd.d/*.json" >/dev/null \
        || [ -n "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ]
}

if ! have_vulkan_adapter || ! ldconfig -p | grep -q libvulkan.so.1; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        echo "== installing lavapipe (mesa-vulkan-drivers), Mesa's software Vulkan driver, for headless GPU tests"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
    else
        echo "error: no Vulkan driver found. The kernel tests need a GPU adapter; for headless use install" >&2
        echo "       Mesa's lavapipe: sudo apt-get install mesa-vulkan-drivers" >&2
        exit 1
    fi
fi

# Real Fashion-MNIST, for the tests that read a real data set; h5py, with which a test reads our HDF5
# files as Keras users' tools do; spirv-val and glslangValidator, which check the SPIR-V and GLSL that
# naga makes of every pipeline; Node.js for Tint, Chrome's WGSL compiler (tests/tint).
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    missing=()
    [ -d /usr/share/datasets/fashion-mnist ] || missing+=(dataset-fashion-mnist)
    /usr/bin/python3 -c 'import h5py' 2>/dev/null || missing+=(python3-h5py)
    command -v spirv-val >/dev/null || missing+=(spirv-tools)
    command -v glslangValidator >/dev/null || missing+=(glslang-tools)
    command -v npm >/dev/null || missing+=(nodejs npm)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "== installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi
if [ ! -d tests/tint/node_modules/webgpu ]; then
    echo "== installing Dawn's node package (tests/tint) for the Tint check"
    npm ci --prefix tests/tint --no-audit --no-fund --loglevel=error
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --locked -- --test-threads 2
# The same kernels through wgpu's GL backend (llvmpipe through EGL): every kernel test but the subgroup
# kernels' (GL offers no subgroups), the training step against the CPU step, and the pinned runs
# (compared within a tolerance there). One test thread: wgpu's GL device serialises on one context.
# Also there: WebGPU's default limits with no optional features (tests/limits.rs) and each timing level
# of the profiler (tests/profile.rs).
echo "== cargo test on the GL backend"
WGPU_BACKEND=gl cargo test --locked --test kernels -- --test-threads 1 --skip subgroup_kernels
WGPU_BACKEND=gl cargo test --locked --test train --test pinned_weights -- --test-threads 1 \
    one_gpu_training_step _pinned
WGPU_BACKEND=gl cargo test --locked --test limits --test profile -- --test-threads 1
# Every kernel test and the training-step tests again on devices that request only WebGPU's default
# limits (CIFAR_WGPU_LIMITS=webgpu), the floor every conformant adapter meets: 128 MiB bindings,
# 256 invocations and 16 KiB of workgroup storage per workgroup, 8 storage buffers per stage.
echo "== cargo test under WebGPU's default limits"
CIFAR_WGPU_LIMITS=webgpu cargo test --locked --test kernels -- --test-threads 2
CIFAR_WGPU_LIMITS=webgpu cargo test --locked --test train -- --test-threads 2 one_gpu_training_step
