"""st3d's bilinear resize (src/data/resize.c: Pillow's resampler with
SIMD loops) against Pillow itself, byte for byte, over hundreds of
geometries: downscales and upscales, one axis or both, sizes from 1 pixel,
images narrower than the SIMD blocks, windows of the output (a center crop
resizes only its columns), rows of the source further apart than its width
(a crop of a larger frame).  resize_tool runs every case in one process
with one work area, as a loader thread reuses its own."""
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from common import Checker, tmpdir

TOOL = sys.argv[2]
C = Checker()
rng = random.Random(20261204)
W, H = 640, 480
img = np.random.default_rng(7).integers(0, 256, (H, W, 3), dtype=np.uint8)
# smooth areas and hard edges too, not only noise
img[100:300, 50:400] = (img[100:300, 50:400] // 64) * 64
img[:, 320:330] = 255


def case(sw, sh, dw, dh, window=None):
    wx, wy, ww, wh = window or (0, 0, dw, dh)
    return (sw, sh, dw, dh, wx, wy, ww, wh)


cases = [
    case(320, 240, 149, 112, (18, 0, 112, 112)),   # Resize(112) + CenterCrop(112)
    case(320, 240, 112, 112),
    case(171, 128, 112, 112),
    case(128, 128, 56, 56),
    case(640, 480, 149, 112, (0, 0, 149, 112)),
    case(1, 1, 1, 1), case(1, 1, 7, 5), case(2, 3, 1, 1), case(5, 4, 112, 112),
    case(3, 200, 3, 17), case(200, 3, 17, 3), case(6, 6, 3, 3), case(9, 9, 4, 4),
    case(17, 13, 17, 5), case(17, 13, 5, 13), case(640, 480, 7, 5), case(640, 1, 3, 1),
]
for _ in range(300):
    sw, sh = rng.randint(1, W), rng.randint(1, H)
    dw = rng.randint(1, min(3 * sw, 300)) if rng.random() < 0.8 else sw
    dh = rng.randint(1, min(3 * sh, 300)) if rng.random() < 0.8 else sh
    if rng.random() < 0.5:
        ww, wh = rng.randint(1, dw), rng.randint(1, dh)
        cases.append(case(sw, sh, dw, dh, (rng.randint(0, dw - ww), rng.randint(0, dh - wh), ww, wh)))
    else:
        cases.append(case(sw, sh, dw, dh))

with tmpdir() as d:
    path = Path(d) / "image.rgb"
    path.write_bytes(img.tobytes())
    text = "".join(" ".join(map(str, c)) + "\n" for c in cases)
    p = subprocess.run([TOOL, str(path), str(W), str(H)], input=text.encode(),
                       capture_output=True)
    C.check(p.returncode == 0, "resize_tool ran every case (%s)" % p.stderr.decode().strip())
    out, at, bad = p.stdout, 0, []
    for sw, sh, dw, dh, wx, wy, ww, wh in cases:
        ref = np.asarray(Image.fromarray(img[:sh, :sw]).resize((dw, dh), Image.BILINEAR))
        ref = ref[wy:wy + wh, wx:wx + ww]
        got = np.frombuffer(out[at:at + ref.size], np.uint8)
        at += ref.size
        if got.size != ref.size or not np.array_equal(got.reshape(ref.shape), ref):
            bad.append("%dx%d -> %dx%d window %d,%d %dx%d" % (sw, sh, dw, dh, wx, wy, ww, wh))
    C.check(at == len(out), "output is exactly the cases' bytes (%d of %d)" % (at, len(out)))
    C.check(not bad, "%d of %d geometries equal Pillow byte for byte%s"
            % (len(cases) - len(bad), len(cases), "; differ: " + ", ".join(bad[:5]) if bad else ""))
C.finish()
