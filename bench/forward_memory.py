#!/usr/bin/python3
"""Peak memory of one forward pass: `st3d forward` against a PyTorch process
doing the same forward from the same weights file (issue 9's memory row).

Network: Hara et al.'s 3D ResNet (tests/torch/ref_resnet.py, random weights
saved once as a .pth by torch.save and as .safetensors), a batch of
--batch clips of 3 x 16 x 112 x 112.  Rows, in one run:
  st3d forward (.safetensors)   `st3d forward --weights W.safetensors`
  st3d forward (.pth)           the same from the .pth
  PyTorch                       /usr/bin/python3: torch.load(W.pth) into the
                                model, eval, torch.no_grad(), model(x); the
                                same --threads
Peak RSS is /usr/bin/time's "maximum resident set size" of each process
(libraries included).  The logits of both are compared (1e-3 relative) so
that the rows do the same work.

usage: /usr/bin/python3 bench/forward_memory.py [--st3d build/st3d] [--depth 50]
       [--batch 8] [--threads 2]
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "torch"))

TORCH_FORWARD = r"""
import sys, numpy as np, torch
sys.path.insert(0, sys.argv[1])
import ref_resnet as R
torch.set_num_threads(int(sys.argv[5]))
model = R.build("resnet", int(sys.argv[2]), n_classes=400)
model.load_state_dict(torch.load(sys.argv[3]))
model.eval()
x = torch.from_numpy(np.load(sys.argv[4]))
with torch.no_grad():
    y = model(x)
np.save(sys.argv[6], y.numpy())
"""


def peak_rss(cmd):
    p = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M"] + [str(c) for c in cmd],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit("failed: %s\n%s" % (" ".join(map(str, cmd)), p.stderr[-2000:]))
    return [int(l.split()[1]) for l in p.stderr.splitlines() if l.startswith("MAXRSS")][-1] / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--st3d", default=os.path.join(HERE, "..", "build", "st3d"))
    ap.add_argument("--depth", type=int, default=50)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    import torch
    import ref_resnet as R
    import st_io
    cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][0]
    with tempfile.TemporaryDirectory() as tmp:
        model = R.build("resnet", a.depth, n_classes=400)
        R.randomize(model, torch.Generator().manual_seed(1))
        pth, st = os.path.join(tmp, "w.pth"), os.path.join(tmp, "w.safetensors")
        torch.save(model.state_dict(), pth)
        st_io.save(st, st_io.state_dict_to_numpy(model.state_dict()), {"format": "pt"})
        del model
        xp = os.path.join(tmp, "x.npy")
        np.save(xp, np.random.default_rng(1).standard_normal(
            (a.batch, 3, 16, 112, 112)).astype(np.float32))
        rows = []
        for name, w in (("st3d forward (.safetensors)", st), ("st3d forward (.pth)", pth)):
            yp = os.path.join(tmp, "y_st3d.npy")
            rows.append((name, peak_rss([a.st3d, "forward", "--weights", w, "--input", xp,
                                         "--output", yp, "--threads", a.threads])))
        y_st3d = np.load(os.path.join(tmp, "y_st3d.npy"))
        yp = os.path.join(tmp, "y_torch.npy")
        torch_mb = peak_rss(["/usr/bin/python3", "-c", TORCH_FORWARD, os.path.join(HERE, "..", "tests", "torch"),
                             a.depth, pth, xp, a.threads, yp])
        y_t = np.load(yp)
        err = float(np.max(np.abs(y_st3d - y_t)) / max(np.max(np.abs(y_t)), 1e-30))
    print("CPU: %s; ResNet-%d (shortcut B), batch %d x 3 x 16 x 112 x 112, %d threads; "
          "logits agree to %.1e" % (cpu, a.depth, a.batch, a.threads, err))
    print("| process | peak RSS (MiB) | x PyTorch |")
    print("| --- | --- | --- |")
    for name, mb in rows:
        print("| %s | %.0f | %.2f |" % (name, mb, mb / torch_mb))
    print("| PyTorch (torch.load + no_grad forward) | %.0f | 1.00 |" % torch_mb)
    if err > 1e-3:
        raise SystemExit("the logits differ by %.1e: the rows do not do the same work" % err)


if __name__ == "__main__":
    main()
