#!/bin/sh
# fuzz/run.sh SECONDS [TARGET...] - builds the libFuzzer targets with clang
# into build-fuzz/, generates seed corpora by running the io tests (small
# valid and invalid files), adds the regression inputs of fuzz/corpus/, and
# runs each target (default: all) for SECONDS with one worker.  New inputs
# accumulate in build-fuzz/corpus/TARGET; crashes land in
# build-fuzz/artifacts/ (copy them to fuzz/corpus/TARGET/ once fixed).
set -eu
secs=${1:-60}
shift || true
targets=${*:-"fuzz_safetensors fuzz_npy fuzz_pickle fuzz_pth"}
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build-fuzz
py=/usr/bin/python3
[ -x $py ] || py=python3

cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DST3D_FUZZ=ON \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
make -C "$build" -j2 fuzz_seed_tool $targets >/dev/null

seeds=$build/seeds
if [ ! -d "$seeds/pth" ]; then
  mkdir -p "$seeds/pth" "$seeds/safetensors" "$seeds/npy" "$seeds/pickle"
  $py "$root/tests/io/test_pth.py" "$build/fuzz/fuzz_seed_tool" --seeds "$seeds/pth" >/dev/null
  $py "$root/tests/io/test_safetensors_npy.py" "$build/fuzz/fuzz_seed_tool" \
      --seeds "$seeds" >/dev/null
  # the pickles inside the zip seeds, for fuzz_pickle
  $py - "$seeds/pth" "$seeds/pickle" <<'PY'
import os, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
for f in sorted(os.listdir(src)):
    try:
        z = zipfile.ZipFile(os.path.join(src, f))
    except zipfile.BadZipFile:
        continue
    for n in z.namelist():
        if n.endswith("/data.pkl"):
            open(os.path.join(dst, f + ".pkl"), "wb").write(z.read(n))
PY
fi

for t in $targets; do
  kind=${t#fuzz_}
  mkdir -p "$build/corpus/$t" "$build/artifacts/$t" "$root/fuzz/corpus/$t"
  echo "== $t for ${secs}s"
  "$build/fuzz/$t" -max_total_time="$secs" -rss_limit_mb=2048 \
      -timeout=10 -print_final_stats=1 -artifact_prefix="$build/artifacts/$t/" \
      "$build/corpus/$t" "$seeds/$kind" "$root/fuzz/corpus/$t" 2>&1 | tail -12
done
