#!/bin/bash
# One command from a fresh Debian 12 machine to the paper's experiment on a
# built-in dataset (no download): install Debian's packages, build, make the
# "motion" dataset (real MPEG-4 videos whose class is a motion, laid out as
# UCF-101), train a small 3D ResNet from scratch, test it video by video
# (sliding windows, scores averaged), evaluate, plot the curves, and show how
# one video was classified.  About 10 minutes on 2 cores.
#   WORK=DIR   where the dataset and results go (default: ./quickstart)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
ST3D=build/st3d
WORK=${WORK:-quickstart}
mkdir -p "$WORK"
T0=$(date +%s)

# 1. the dataset: 8 motion classes x (40 training + 10 test) videos
$ST3D make-dataset motion "$WORK/motion"
$ST3D make-annotations --dataset ucf101 --src "$WORK/motion/splits" \
    --video-path "$WORK/motion/videos" --dst "$WORK/motion.json"

# 2. training from scratch (a flip would swap left/right and the rotations,
#    so --no-hflip; the original's other augmentations stay on)
common=(--video-path "$WORK/motion/videos" --annotation-path "$WORK/motion.json"
        --result-path "$WORK/results" --n-classes 8
        --model resnet --model-depth 10 --resnet-widen-factor 0.25 --conv1-t-size 3
        --sample-size 56 --sample-duration 8)
$ST3D train "${common[@]}" --no-hflip --batch-size 16 --n-epochs 30 \
    --learning-rate 0.05 --multistep-milestones 20,27 --weight-decay 1e-4 \
    --n-val-samples 1 --checkpoint 10

# 3. test: every test video in clips of 8 frames every 8, scores averaged
$ST3D test "${common[@]}" --resume-path "$WORK/results/save_30.safetensors" \
    --inference-subset val --inference-stride 8
# 4. evaluate: video-level accuracy, per class, confusion matrix
$ST3D eval --results "$WORK/results/val.json" --annotation-path "$WORK/motion.json" \
    --confusion "$WORK/results/confusion.png" --output-json "$WORK/results/accuracy.json"
# 5. the training curves (the paper's Figure 4)
$ST3D plot "$WORK/results"
# 6. one video, as it was classified
/usr/bin/python3 - "$WORK/results/val.json" <<'PY'
import json, sys
vid, res = next(iter(json.load(open(sys.argv[1]))["results"].items()))
print(f"{vid}: " + ", ".join(f"{r['label']} {r['score']:.3f}" for r in res[:3]))
PY
echo "done in $(( $(date +%s) - T0 )) s: results, curves.png and confusion.png in $WORK/results"
