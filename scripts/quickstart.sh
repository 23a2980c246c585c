#!/bin/bash
# One command from a fresh Debian 12 machine to the paper's experiment on a
# built-in dataset (no download): install Debian's packages, build, make the
# "motion" dataset (real MPEG-4 videos whose class is the direction a shape
# moves, laid out as UCF-101), train a small 3D ResNet from scratch, test it
# video by video (sliding windows, scores averaged), evaluate, plot the
# curves, and classify one video.  About 12 minutes on 2 cores.
#   WORK=DIR   where the dataset and results go (default: ./quickstart)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
. scripts/motion_recipe.sh
mkdir -p "$WORK"
T0=$(date +%s)

# 1. the dataset: 8 motion classes x (100 training + 20 test) videos
make_motion "$WORK/motion"
common=(--video-path "$WORK/motion/videos" --annotation-path "$WORK/motion.json"
        --result-path "$WORK/results" --n-classes 8 "${NET[@]}" "${CLIPS[@]}")

# 2. training from scratch, validating every epoch, a checkpoint every 10
$ST3D train "${common[@]}" "${TRAIN[@]}" --n-epochs "$EPOCHS" --checkpoint 10
# 3. test: every test video in clips of 8 frames every 8, scores averaged
$ST3D test "${common[@]}" --resume-path "$WORK/results/save_$EPOCHS.safetensors" \
    --inference-subset val --inference-stride 8
# 4. evaluate: video-level accuracy, per class, confusion matrix
$ST3D eval --results "$WORK/results/val.json" --annotation-path "$WORK/motion.json" \
    --confusion "$WORK/results/confusion.png" --output-json "$WORK/results/accuracy.json"
# 5. the training curves (the paper's Figure 4)
$ST3D plot "$WORK/results"
# 6. one video classified clip by clip, as video-classification-3d-cnn does
# (a glob, not `ls | head`: under pipefail, ls may die of SIGPIPE when head exits)
videos=("$WORK"/motion/videos/MoveUpLeft/*.avi)
video=${videos[0]}
$ST3D classify --weights "$WORK/results/save_$EPOCHS.safetensors" \
    --labels "$WORK/motion.json" "${CLIPS[@]}" --stride 8 "$video"
echo "done in $(( $(date +%s) - T0 )) s: results, curves.png and confusion.png in $WORK/results"
