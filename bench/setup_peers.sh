#!/bin/sh
# Installs the benchmarks' peers that Debian does not package: ONNX Runtime
# for Node.js (npm onnxruntime-node, which ships its CPU library) into
# bench/peers/node_modules.  Its install script would fetch CUDA libraries
# from GitHub; the CPU benchmark needs none (ONNXRUNTIME_NODE_INSTALL_CUDA=skip).
# PyTorch (python3-torch) and Node.js come from scripts/setup.sh / Debian.
set -eu
cd "$(dirname "$0")/peers"
command -v npm >/dev/null || { echo "setup_peers: npm not found (apt-get install npm)" >&2; exit 1; }
ONNXRUNTIME_NODE_INSTALL_CUDA=skip npm install --no-audit --no-fund
node -e "require('./node_modules/onnxruntime-node'); console.log('onnxruntime-node ready')"
