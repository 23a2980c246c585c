#!/bin/bash
# One command from a fresh Debian 12 machine to a working st3d: installs the
# Debian packages, builds, then runs the main job on a built-in default
# (no download): a 3D ResNet-18 (Kinetics-400 head, freshly initialized as
# the original code does) classifies a clip, and st3d times inference and a
# training step.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
ST3D=build/st3d
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

$ST3D info --model resnet --model-depth 18 --n-classes 400 | tail -2
$ST3D init --model resnet --model-depth 18 --n-classes 400 --output "$work/resnet18.safetensors"
# a 3 x 16 x 112 x 112 clip: a bright square moving across a dark frame
/usr/bin/python3 - "$work/clip.npy" <<'PY'
import sys, numpy as np
x = np.zeros((1, 3, 16, 112, 112), np.float32)
for t in range(16):
    x[0, :, t, 40:72, 4 + 6 * t:36 + 6 * t] = 1.0
np.save(sys.argv[1], x)
PY
$ST3D forward --model resnet --model-depth 18 --n-classes 400 \
    --weights "$work/resnet18.safetensors" --input "$work/clip.npy" \
    --output "$work/logits.npy" --features "$work/features.npy"
/usr/bin/python3 -c "
import numpy as np, sys
z = np.load('$work/logits.npy')[0]; f = np.load('$work/features.npy')[0]
top = np.argsort(-z)[:5]
print('forward: top-5 classes', list(top), 'logits', np.round(z[top], 4), '| features', f.shape)"
$ST3D bench --model resnet --model-depth 18 --batch 1 --mode infer 2>/dev/null | head -1
$ST3D bench --model resnet --model-depth 18 --batch 8 --mode train --runs 3 --warmup 1 2>/dev/null | head -1
