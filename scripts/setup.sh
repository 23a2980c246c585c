#!/bin/sh
# Installs everything st3d needs to build, test and benchmark, from Debian's
# packages only (Debian 12 "bookworm").  Run as root (or through sudo).
set -eu
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    build-essential cmake pkg-config clang libclang-rt-14-dev libomp-14-dev \
    libdnnl-dev libopenmpi-dev openmpi-bin \
    libavformat-dev libavcodec-dev libswscale-dev libavutil-dev ffmpeg \
    libjpeg62-turbo-dev libpng-dev libzip-dev zlib1g-dev libjansson-dev libcairo2-dev \
    python3 python3-numpy python3-torch python3-torchvision python3-pil python3-av libopenblas0-pthread \
    >/dev/null
