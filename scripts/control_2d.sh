#!/bin/bash
# The 2D control of the built-in experiment: the network, data and training
# of quickstart.sh, except that every convolution's temporal kernel is 1
# (--spatial-only: a 2D CNN run on each frame, its features averaged over
# time) and the frames of every clip come in a random order
# (--shuffle-frames), in training and in test.  Nothing is left that can see
# the motion, so its test accuracy should stay near chance (1/8), against
# the 3D network's.  Prints the video-level top-1.  Run after quickstart.sh
# (it reuses the dataset), or alone (it makes the dataset).
#   WORK=DIR   the quickstart folder (default: ./quickstart)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/motion_recipe.sh
[ -f "$WORK/motion.json" ] || make_motion "$WORK/motion"
R=$WORK/control_2d
common=(--video-path "$WORK/motion/videos" --annotation-path "$WORK/motion.json"
        --result-path "$R" --n-classes 8 "${NET[@]}" --spatial-only "${CLIPS[@]}"
        --shuffle-frames)
$ST3D train "${common[@]}" "${TRAIN[@]}" --n-epochs "$EPOCHS" --checkpoint "$EPOCHS"
$ST3D test "${common[@]}" --resume-path "$R/save_$EPOCHS.safetensors" \
    --inference-subset val --inference-stride 8
$ST3D eval --results "$R/val.json" --annotation-path "$WORK/motion.json" \
    --output-json "$R/accuracy.json"
