#!/bin/bash
# One call on a lent NVIDIA machine (see the device tool's README): our kernel tests on the real GPU,
# the per-kernel profile of the GPU tiling (and of the subgroup kernels meant for lavapipe), our bench
# next to PyTorch eager and compiled (the same machine, the same recipe), and a short Fashion-MNIST
# training to check accuracy on a real GPU.
#
# Carried in .dev/: the stripped release binary `cifar-wgpu`, the stripped kernel-test binary `kernels`
# (`cargo test --test kernels --no-run`), `torch_seed.py` (../shared/bench) and Fashion-MNIST's four
# .gz files under `fashion/`. Carried in .gl/: the Vulkan loader and glvnd .debs (libvulkan1,
# libglvnd0, libglx0, libegl1, libgl1, libgles2, libopengl0, libx11-6 and its libraries): NVIDIA's
# Vulkan driver lives in libGLX_nvidia.so.0, which needs glvnd. SKIP_TORCH=1 leaves PyTorch out.
set -u
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export PYTHONUNBUFFERED=1
B=.dev/cifar-wgpu
L=$OUT/log.txt
step() { echo "=== $* ($(date +%T))" | tee -a "$L"; }
step nvidia-smi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv 2>&1 | tee -a "$L"
step adapters
if ! $B adapters 2>&1 | tee -a "$L" | grep -q "Vulkan"; then
    VK_LOADER_DEBUG=error,driver $B adapters 2>&1 | tail -20 | tee -a "$L"
    exit 1
fi
step kernel tests
timeout 150 .dev/kernels --test-threads 8 2>&1 | grep -v '^test .* ok$' | tail -30 | tee -a "$L"
for t in shared subgroups; do
    step profile --tiling $t
    timeout 60 $B profile --steps 20 --warmup 5 --tiling $t --trace "$OUT/trace-$t.json" 2>&1 | tee -a "$L"
done
step bench
timeout 120 $B bench --epochs 3 --json "$OUT/bench.json" 2>&1 | tail -3 | tee -a "$L"
if [ -z "${SKIP_TORCH:-}" ]; then
    step torch eager
    timeout 90 python3 .dev/torch_seed.py --epochs 3 2>&1 | tail -1 | tee -a "$L"
    step torch compile
    timeout 200 python3 .dev/torch_seed.py --epochs 3 --compile 2>&1 | tail -1 | tee -a "$L"
fi
step fashion-mnist train
timeout 120 $B train --data .dev/fashion --epochs 5 --out /tmp/fm --quiet 2>&1 \
    | grep -E "Epoch|test|adapter" | tee -a "$L"
step done
