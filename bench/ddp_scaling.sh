#!/bin/bash
# Data-parallel scaling on one machine: `st3d train` as 1 rank x 2 threads
# (batch 2B) against `mpirun -np 2` x 1 thread (batch B per rank: the same
# clips per step), in one run, with the ratio; then the all-reduce's cost
# per step with the backward overlap (the default) and without it
# (--no-overlap), and the share of the communication hidden behind the
# backward pass.  The data is the built-in motion dataset (MPEG-4, 128x128).
#
#   bench/ddp_scaling.sh [r18|small]
#     r18    the paper's size: ResNet-18, 16x112x112 clips, 8 clips per step
#     small  ResNet-10 widen 0.25, 8x56x56 clips, 16 clips per step
#   ST3D=build/st3d  WORK=/tmp/st3d-ddp  EPOCHS=3  ROUNDS=2
#
# The three runs go in interleaved rounds (machines are shared and noisy);
# epoch 1 builds the plans; the later epochs' clips/s over all rounds are
# reported (median), and the median waits.
set -euo pipefail
cd "$(dirname "$0")/.."
ST3D=${ST3D:-build/st3d}
WORK=${WORK:-/tmp/st3d-ddp}
EPOCHS=${EPOCHS:-3}
ROUNDS=${ROUNDS:-2}
SETUP=${1:-r18}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
case "$SETUP" in
r18) NET=(--model resnet --model-depth 18); SIZE=112 DUR=16 STEP=8 PER=6 ;;
small) NET=(--model resnet --model-depth 10 --resnet-widen-factor 0.25 --conv1-t-size 3)
       SIZE=56 DUR=8 STEP=16 PER=12 ;;
*) echo "usage: $0 [r18|small]" >&2; exit 2 ;;
esac
DATA="$WORK/motion-$SETUP"
mkdir -p "$WORK"
if [ ! -f "$DATA.json" ]; then
    "$ST3D" make-dataset motion "$DATA" --train-per-class "$PER" --test-per-class 1 >/dev/null
    "$ST3D" make-annotations --dataset ucf101 --src "$DATA/splits" --video-path "$DATA/videos" \
        --dst "$DATA.json" >/dev/null
fi
common=(--video-path "$DATA/videos" --annotation-path "$DATA.json" --n-classes 8 "${NET[@]}"
        --sample-size "$SIZE" --sample-duration "$DUR" --n-epochs "$EPOCHS" --no-val
        --checkpoint 1000 --learning-rate 0.01)
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//') ($(nproc) cores)"
echo "setup $SETUP: ${NET[*]}, ${DUR}x${SIZE}x${SIZE}, $STEP clips per step"

# clips/s of the epochs after the first (median), from the epoch lines
rate() { cat "$@" | grep -o 'epoch [0-9]*: .* clips/s' | awk '$2 != "1:" {print $(NF-1)}' | sort -g |
         awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : "nan")}'; }
# interleaved rounds: one, two, two without overlap, one, two, ...
for r in $(seq 1 "$ROUNDS"); do
    "$ST3D" train "${common[@]}" --batch-size "$STEP" --threads 2 --n-threads 2 \
        --result-path "$WORK/one" 2>"$WORK/one.$r.log"
    mpirun -np 2 --bind-to none "$ST3D" train "${common[@]}" --batch-size $((STEP / 2)) --threads 1 \
        --n-threads 1 --result-path "$WORK/two" 2>"$WORK/two.$r.log"
    mpirun -np 2 --bind-to none "$ST3D" train "${common[@]}" --batch-size $((STEP / 2)) --threads 1 \
        --n-threads 1 --no-overlap --result-path "$WORK/two-seq" 2>"$WORK/two-seq.$r.log"
done
R1=$(rate "$WORK"/one.*.log)
R2=$(rate "$WORK"/two.*.log)
R3=$(rate "$WORK"/two-seq.*.log)
printf "1 rank x 2 threads, batch %d:          %8s clips/s\n" "$STEP" "$R1"
printf "2 ranks x 1 thread, batch %d per rank:  %8s clips/s  (%s of 1 x 2)\n" $((STEP / 2)) "$R2" \
    "$(awk -v a="$R2" -v b="$R1" 'BEGIN {printf "%.1f%%", 100 * a / b}')"
printf "  the same without overlap:             %8s clips/s\n" "$R3"
echo "all-reduce, overlapped with the backward (each round):"; grep -h 'all-reduce per step' "$WORK"/two.*.log | sed 's/^/  /'
echo "all-reduce after the backward (--no-overlap):"; grep -h 'all-reduce per step' "$WORK"/two-seq.*.log | sed 's/^/  /'
median() { sort -g | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : "nan")}'; }
W1=$(cat "$WORK"/two.*.log | grep -o 'waiting after the backward [0-9.]* ms' | awk '{print $5}' | median)
W0=$(cat "$WORK"/two-seq.*.log | grep -o 'waiting after the backward [0-9.]* ms' | awk '{print $5}' | median)
awk -v a="$W1" -v b="$W0" 'BEGIN {printf "hidden behind the backward: %.0f%% of the all-reduce wait (%.1f of %.1f ms per step)\n", 100 * (1 - a / b), b - a, b}'
