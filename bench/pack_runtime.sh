#!/bin/bash
# Packs build/st3d with the shared libraries it loads (Debian 12's oneDNN,
# FFmpeg, ...; glibc's own stay behind) and a 300 s test video into one
# folder, so that issue 8 and 9's rows (bench/packed_rows.sh) can run on a
# machine that has a newer glibc, Python with PyTorch, and none of those
# packages: a cloud GPU box's Intel Xeon, for instance.  The folder is
# about 59 MB (the libraries xz-compressed, 57 MB; st3d 0.6 MB; the video
# 1.4 MB), under a 64 MiB transfer limit with room for this repository.
#
#   bench/pack_runtime.sh DIR      then, on the other machine, from a copy of
#                                  this repository:  bash bench/packed_rows.sh DIR
set -euo pipefail
mkdir -p -- "${1:?usage: bench/pack_runtime.sh DIR}"
DIR=$(cd "$1" && pwd)
cd "$(dirname "$0")/.."
ST3D=${ST3D:-build/st3d}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/libs"
ldd "$ST3D" | awk '$3 ~ /^\// {print $3}' |
    grep -vE '/(libc|libm|libpthread|libdl|librt|ld-linux-x86-64|libresolv)\.so' |
    xargs -I{} cp -L {} "$tmp/libs/"
tar -C "$tmp" -cf - libs | xz -T0 -9e >"$DIR/libs.tar.xz"
cp "$ST3D" "$DIR/st3d"
# the video classify_bench.py makes (libx264 with B-frames, 320x240, 25 fps)
[ -f "$DIR/video300.mp4" ] || ffmpeg -nostdin -v error -y -f lavfi -i testsrc=size=320x240:rate=25 \
    -t 300 -c:v libx264 -preset medium -bf 3 -pix_fmt yuv420p "$DIR/video300.mp4"
du -sh "$DIR"
