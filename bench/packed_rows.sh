#!/bin/bash
# Issue 8 and 9's CPU rows from a folder made by bench/pack_runtime.sh, on a
# machine without Debian's libraries: bench/classify_bench.py (features end
# to end against the network alone and against the PyTorch pipeline, OpenCV
# decoding where PyAV is missing) and bench/pipeline_bench.sh r18, both on
# 2 cores (taskset -c 0,1, as the 2-core machines of the other figures).
#
#   bash bench/packed_rows.sh DIR     (PY=python3 ROUNDS=3 PIN="taskset -c 0,1")
set -u
cd "$(dirname "$0")/.."
DIR=$(cd "${1:?usage: bench/packed_rows.sh DIR}" && pwd)
PY=${PY:-python3}
PIN=${PIN:-taskset -c 0,1}
lscpu | grep -E 'Model name|^CPU\(s\)|Vendor|family|Model:'
uname -sr
grep Cpus_allowed_list /proc/self/status
mkdir -p /tmp/st3d-packed && tar -xJf "$DIR/libs.tar.xz" -C /tmp/st3d-packed || exit 1
export LD_LIBRARY_PATH=/tmp/st3d-packed/libs
ST=$DIR/st3d
if ldd "$ST" | grep "not found"; then exit 1; fi
"$ST" --version
decoder=av
$PY -c "import av" 2>/dev/null || decoder=cv2
echo "== classify_bench (PyTorch rows decode with $decoder) $(date +%T)"
PYTHONUNBUFFERED=1 $PIN $PY bench/classify_bench.py --st3d "$ST" --video "$DIR/video300.mp4" \
    --decoder $decoder --no-memory --no-direct --one-ffmpeg-thread --rounds "${ROUNDS:-3}" \
    --threads 2
echo "== pipeline_bench r18 $(date +%T)"
ST3D=$ST WORK=/tmp/st3d-pipeline $PIN bash bench/pipeline_bench.sh r18
echo "== done $(date +%T)"
