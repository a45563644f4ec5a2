#!/usr/bin/env bash
# Fill .whl/ (ignored by git) with the wheels the device image lacks, for the device call's `carry: [".whl"]`.
#
# The device image (/work/.library/device/KINDS.md, nvidia-h200: Python 3.12, jax 0.11 with CUDA 13, flax, optax,
# orbax-checkpoint, numpy, pyyaml, matplotlib, scipy, torch, tensorboard, protobuf, packaging) has every one of
# pyproject.toml's dependencies but tensorboardX; tensorboardX needs numpy, packaging and protobuf, all there.
# So one pure-Python wheel travels. benchmarks/gpu_session.py installs it from this folder alone (pip --no-index
# --no-deps --target) when the device's Python cannot import tensorboardX.
#
#   bash benchmarks/gpu_wheels.sh            # into .whl/ at the repository root
#   bash benchmarks/gpu_wheels.sh DIR        # into DIR
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-.whl}
PY=${PYTHON:-python3}
mkdir -p "$dest"
# the image's Python 3.12 on x86-64; tensorboardX is pure Python (py3-none-any), the platform tags only keep pip
# from choosing a source distribution
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$dest" "tensorboardX==2.6.5"
ls -l "$dest"
size=$(du -sk "$dest" | cut -f1)
echo "gpu_wheels: $dest holds ${size} KiB (everything carried must stay under 64 MiB, the working tree included)"
if [ "$size" -gt 16384 ]; then
  echo "gpu_wheels: more than 16 MiB of wheels: check that only one version of each is there" >&2
  exit 1
fi
