#!/usr/bin/python3
"""st3d's Pillow-exact bilinear resize against Pillow's own, side by side.

The loaders resize every frame as the original code's transforms do
(PIL Image.resize, BILINEAR): st3d re-implements Pillow's fixed-point
resampling (src/data/spatial.c) so that clips equal the original's byte for
byte.  This runs build/resize_bench and Pillow's Image.resize on the same
frames (video-like, textured), checks the results are identical, and prints
microseconds per frame and the ratio, for the sizes the loaders meet:
  128x128 -> 56   the README's main job (motion dataset, 56 x 56 clips)
  171x128 -> 112  Kinetics / UCF-101 frames as the original's preprocessing
                  stores them (short side 128), to the paper's 112
  320x240 -> 112  UCF-101's native size to 112
Rounds are interleaved; each row is the best of --rounds.

usage: /usr/bin/python3 bench/resize_bench.py [--bin build/resize_bench] [--rounds 5]
"""
import argparse
import os
import subprocess
import tempfile
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = ((128, 128, 56), (171, 128, 112), (320, 240, 112))


def frame(w, h):
    yy, xx = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(w * 1000 + h)
    base = np.stack([(xx * 7 + yy * 3) % 256, (xx * yy) % 256, (xx ^ yy) * 5 % 256], -1)
    return np.clip(base + rng.integers(-30, 31, base.shape), 0, 255).astype(np.uint8)


def pil_us(img, d, iters):
    t = time.perf_counter()
    for _ in range(iters):
        out = img.resize((d, d), Image.BILINEAR)
    return (time.perf_counter() - t) / iters * 1e6, np.asarray(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "build", "resize_bench"))
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][0]
    print("CPU: %s; one thread; Pillow %s" % (cpu, Image.__version__))
    print("| resize | st3d (us/frame) | Pillow (us/frame) | Pillow / st3d | bytes equal |")
    print("| --- | --- | --- | --- | --- |")
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for w, h, d in SIZES:
            f = frame(w, h)
            src, out = os.path.join(tmp, "f.rgb"), os.path.join(tmp, "o.rgb")
            f.tofile(src)
            img = Image.fromarray(f)
            iters = max(50, int(2e6 / (w * h)))
            best_s, best_p, same = 1e30, 1e30, True
            for _ in range(a.rounds):
                r = subprocess.run([a.bin, src, str(w), str(h), str(d), str(iters), out],
                                   capture_output=True, text=True, check=True)
                us = float(r.stdout.split("us_per_frame=")[1])
                best_s = min(best_s, us)
                pus, ref = pil_us(img, d, iters)
                best_p = min(best_p, pus)
                same &= np.array_equal(np.fromfile(out, np.uint8).reshape(d, d, 3), ref)
            bad += not same
            print("| %dx%d -> %d | %.1f | %.1f | %.2fx | %s |" %
                  (w, h, d, best_s, best_p, best_p / best_s, "yes" if same else "NO"))
    if bad:
        raise SystemExit("st3d's resize differs from Pillow's")


if __name__ == "__main__":
    main()
