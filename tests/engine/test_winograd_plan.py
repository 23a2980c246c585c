#!/usr/bin/python3
"""Which convolutions an inference plan runs as temporal Winograd
(src/ops/conv_wino.c): those with temporal stride 1 and an odd temporal
kernel r where F(m, r) needs at least a fifth fewer 2D convolutions than the
direct kernel does on real (not padding) frames.  The expected counts below
are worked out from the networks' shapes by hand (Table 1 of the paper), not
taken from st3d; `--conv direct` must run none.  The results themselves are
compared with PyTorch by tests/torch (with --conv auto, the default).
Prints one line per case; exits non-zero on a mismatch."""
import argparse
import os
import re
import subprocess
import sys


def winograd_convs(st3d, args):
    out = subprocess.run([st3d, "bench", "--n-classes", "10", "--runs", "1", "--warmup", "0",
                          "--threads", "2"] + args, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("st3d bench %s: exit %d: %s" % (" ".join(args), out.returncode, out.stderr))
    return int(re.search(r"convolutions as temporal Winograd: (\d+)", out.stdout).group(1))


# (st3d options, expected count, why)
CASES = [
    (["--model", "resnet", "--model-depth", "18", "--batch", "2", "--sample-duration", "16",
      "--sample-size", "48"], 8,
     "conv1 (r 7, 16 frames: 4 tiles x 10 = 40 < 100 real); layer1's 4 convs (8 frames: "
     "2 x 6 = 12 < 22); layer2's 3 stride-1 convs (4 frames: 6 < 10); layer3 (2 frames: "
     "4 = 4) and layer4 (1 frame) direct"),
    (["--model", "resnet", "--model-depth", "18", "--batch", "1", "--sample-duration", "8",
      "--sample-size", "48", "--conv1-t-size", "3", "--conv1-t-stride", "2"], 0,
     "conv1 has temporal stride 2; after it and the max pool 2 frames are left (4 = 4)"),
    (["--model", "resnet2p1d", "--model-depth", "18", "--batch", "1", "--sample-duration", "8",
      "--sample-size", "32"], 5,
     "conv1_t (7x1x1, 8 frames: 20 < 44); layer1's 4 temporal 3x1x1 convs (4 frames after "
     "the max pool: 6 < 10); the spatial 1x3x3 convs have r = 1"),
    (["--model", "densenet", "--model-depth", "121", "--batch", "1", "--sample-duration", "16",
      "--sample-size", "32"], 19,
     "conv1 (r 7, 16 frames); denseblock1's 6 3x3x3 convs (8 frames); denseblock2's 12 "
     "(4 frames); denseblock3 and 4 (2 and 1 frames) direct"),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--st3d", default=os.environ.get("ST3D_BIN", "build/st3d"))
    a = ap.parse_args()
    failed = 0
    for opts, want, why in CASES:
        got = winograd_convs(a.st3d, opts)
        direct = winograd_convs(a.st3d, opts + ["--conv", "direct"])
        ok = (want is None or got == want) and direct == 0
        failed += not ok
        print("%-70s auto %d (want %s), direct %d: %s" % (" ".join(opts), got, want, direct,
                                                         "PASS" if ok else "FAIL"))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
