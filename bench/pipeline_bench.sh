#!/bin/bash
# The training, validation and test pipelines against the network alone:
# `st3d train` (data loading included), its validation epochs and `st3d test`
# in clips/s, next to `st3d bench --mode train|infer` for the same network
# and batch, in one run, with the ratios.  The data is the built-in motion
# dataset (MPEG-4, 128x128), made small so that the run takes minutes.
#
#   bench/pipeline_bench.sh [small|r18]
#     small  the README's main job: ResNet-10 widen 0.25, conv1 3x7x7,
#            8x56x56 clips, batch 16 (48 training videos per class)
#     r18    the paper's size: ResNet-18, 16x112x112 clips, batch 8
#            (6 training and 12 test videos per class: validation then runs
#            96 clips, enough that its fixed costs, a re-prepare of the
#            plan after each epoch's training (0.15 s) and the first batch's
#            wait for the loader, do not decide the ratio)
#   ST3D=build/st3d  WORK=/tmp/st3d-pipeline  THREADS=2
#
# The second epoch is the one reported (the first builds the plans).  Each
# bench row runs as many batches as the pipeline it is compared with
# (training epoch, validation epoch, test) and is timed the same way.
set -euo pipefail
cd "$(dirname "$0")/.."
ST3D=${ST3D:-build/st3d}
WORK=${WORK:-/tmp/st3d-pipeline}
THREADS=${THREADS:-2}
SETUP=${1:-r18}
case "$SETUP" in
small)
    NET=(--model resnet --model-depth 10 --resnet-widen-factor 0.25 --conv1-t-size 3)
    SIZE=56 DUR=8 BATCH=16 TRAIN_PER=12 TEST_PER=4 ;;
r18)
    NET=(--model resnet --model-depth 18)
    SIZE=112 DUR=16 BATCH=8 TRAIN_PER=6 TEST_PER=12 ;;
*) echo "usage: $0 [small|r18]" >&2; exit 2 ;;
esac
CLASSES=8 # the motion dataset's
DATA="$WORK/motion-$SETUP-$TRAIN_PER-$TEST_PER"
mkdir -p "$WORK"
if [ ! -f "$DATA.json" ]; then
    "$ST3D" make-dataset motion "$DATA" --train-per-class "$TRAIN_PER" --test-per-class "$TEST_PER" >/dev/null
    "$ST3D" make-annotations --dataset ucf101 --src "$DATA/splits" --video-path "$DATA/videos" \
        --dst "$DATA.json" >/dev/null
fi
common=(--video-path "$DATA/videos" --annotation-path "$DATA.json" --n-classes "$CLASSES" "${NET[@]}"
        --sample-size "$SIZE" --sample-duration "$DUR" --threads "$THREADS")
RES="$WORK/run-$SETUP"
rm -rf "$RES"
"$ST3D" train "${common[@]}" --result-path "$RES" --batch-size "$BATCH" --n-epochs 2 \
    --train-crop center --no-hflip --n-val-samples 1 --checkpoint 2 2>"$WORK/train-$SETUP.txt"
"$ST3D" test "${common[@]}" --result-path "$RES" --batch-size "$BATCH" \
    --resume-path "$RES/save_2.safetensors" --inference-subset val --inference-stride "$DUR" \
    2>"$WORK/test-$SETUP.txt" | tee "$WORK/test-out-$SETUP.txt"
# the network alone over as many batches as the pipeline ran, timed as the
# pipeline is (all clips over all seconds: bench's mean_clips_per_s; its
# median drops the slow runs, which a pipeline cannot)
bench() {
    local runs=$(( $2 > 5 ? $2 : 5 ))
    "$ST3D" bench "${NET[@]}" --n-classes "$CLASSES" --batch "$BATCH" --sample-duration "$DUR" \
        --sample-size "$SIZE" --threads "$THREADS" --mode "$1" --runs "$runs" --warmup 2 |
        sed -n 's/^RESULT .*mean_clips_per_s=\([0-9.]*\).*/\1/p'
}
TEST_CLIPS=$(sed -n 's/.* \([0-9]*\) clips, .*/\1/p' "$WORK/test-out-$SETUP.txt" | head -1)
TEST_CLIPS=${TEST_CLIPS:-0}
B_TRAIN=$(bench train $(( CLASSES * TRAIN_PER / BATCH )))
B_VAL=$(bench infer $(( CLASSES * TEST_PER / BATCH )))
B_TEST=$(bench infer $(( (TEST_CLIPS + BATCH - 1) / BATCH )))
# the last progress line of epoch 2 of each kind; test's last line
rate() { grep -a "$1" "$2" | tail -1 | sed -n 's/.* \([0-9.]*\) clips\/s.*/\1/p'; }
T_TRAIN=$(rate "^train   2" "$WORK/train-$SETUP.txt")
T_VAL=$(rate "^val     2" "$WORK/train-$SETUP.txt")
T_TEST=$(tr '\r' '\n' <"$WORK/test-$SETUP.txt" | rate "clips/s" /dev/stdin)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { print (b > 0 ? a / b : 0) }'; }
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $THREADS threads"
echo "setup $SETUP: ${NET[*]}, ${DUR}x${SIZE}x${SIZE}, batch $BATCH"
printf "| %-40s | %8s | %-26s | %5s |\n" pipeline clips/s "network alone (st3d bench)" ratio
printf "| %-40s | %8s | %-26s | %5.2f |\n" "st3d train, epoch 2 (loading included)" "$T_TRAIN" "$B_TRAIN (train)" \
    "$(ratio "$T_TRAIN" "$B_TRAIN")"
printf "| %-40s | %8s | %-26s | %5.2f |\n" "st3d train validation, epoch 2" "$T_VAL" "$B_VAL (infer)" \
    "$(ratio "$T_VAL" "$B_VAL")"
printf "| %-40s | %8s | %-26s | %5.2f |\n" "st3d test (sliding windows)" "$T_TEST" "$B_TEST (infer)" \
    "$(ratio "$T_TEST" "$B_TEST")"
