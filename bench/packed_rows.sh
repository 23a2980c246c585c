#!/bin/bash
# Issue 8 and 9's CPU rows from a folder made by bench/pack_runtime.sh, on a
# machine without Debian's libraries: bench/classify_bench.py (features end
# to end against the network alone and against the PyTorch pipeline, OpenCV
# decoding where PyAV is missing) and bench/pipeline_bench.sh r18, both on
# 2 cores (taskset -c 0,1, as the 2-core machines of the other figures).
# The carried libraries are seen by st3d alone (a wrapper sets
# LD_LIBRARY_PATH for it), never by the machine's own Python and PyTorch.
#
#   bash bench/packed_rows.sh DIR     (PY=python3 ROUNDS=3 PIN="taskset -c 0,1")
set -euo pipefail
DIR=$(cd "${1:?usage: bench/packed_rows.sh DIR}" && pwd)
cd "$(dirname "$0")/.."
PY=${PY:-python3}
PIN=${PIN:-taskset -c 0,1}
lscpu | grep -E 'Model name|^CPU\(s\)|Vendor|family|Model:' || true
uname -sr
grep Cpus_allowed_list /proc/self/status || true
RT=/tmp/st3d-packed
mkdir -p "$RT" && tar -xJf "$DIR/libs.tar.xz" -C "$RT"
ST=$RT/st3d
printf '#!/bin/sh\nLD_LIBRARY_PATH=%s/libs exec %s "$@"\n' "$RT" "$DIR/st3d" >"$ST"
chmod +x "$ST"
if LD_LIBRARY_PATH=$RT/libs ldd "$DIR/st3d" | grep "not found"; then exit 1; fi
"$ST" --version
decoder=av
$PY -c "import av" 2>/dev/null || decoder=cv2
echo "== classify_bench (PyTorch rows decode with $decoder) $(date +%T)"
PYTHONUNBUFFERED=1 $PIN $PY bench/classify_bench.py --st3d "$ST" --video "$DIR/video300.mp4" \
    --decoder $decoder --no-memory --no-direct --rounds "${ROUNDS:-3}" --threads 2 \
    --pair-with "GOMP_SPINCOUNT=300000 --decode-overlap on --ffmpeg-threads 0"
echo "== pipeline_bench r18 $(date +%T)"
ST3D=$ST WORK=/tmp/st3d-pipeline $PIN bash bench/pipeline_bench.sh r18
echo "== done $(date +%T)"
