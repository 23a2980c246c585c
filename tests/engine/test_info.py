#!/usr/bin/python3
"""`st3d info` parameter counts equal PyTorch's sum(p.numel()) for every
family and depth: the original code's families from the independent
reference (tests/reference/ref_models.py, built on the meta device),
torchvision's video ResNets from Debian's python3-torchvision.
Prints 'N passed, M failed'; exits non-zero on any mismatch."""
import argparse
import os
import re
import subprocess
import sys

import torchvision.models.video as V

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import ref_models as R  # noqa: E402

CASES = []
for d in (10, 18, 34, 50, 101, 152, 200):
    CASES.append(("resnet", d, {}, ["--model", "resnet"]))
for d in (18, 34, 50, 101, 152, 200):
    CASES.append(("preresnet", d, {}, ["--model", "preresnet"]))
for d in (50, 101):
    CASES.append(("wideresnet", d, {}, ["--model", "wideresnet"]))
for d in (50, 101, 152):
    CASES.append(("resnext", d, {}, ["--model", "resnext"]))
CASES += [
    ("resnet", 18, {"shortcut": "A"}, ["--model", "resnet", "--resnet-shortcut", "A"]),
    ("resnet", 34, {"widen_factor": 0.5, "n_classes": 101}, ["--model", "resnet",
     "--resnet-widen-factor", "0.5", "--n-classes", "101"]),
    ("resnet", 50, {"conv1_t_size": 3, "n_input_channels": 2}, ["--model", "resnet",
     "--conv1-t-size", "3", "--n-input-channels", "2"]),
    ("wideresnet", 50, {"wide_k": 3}, ["--model", "wideresnet", "--wide-resnet-k", "3"]),
]
# (ResNeXt with a cardinality other than 32 is left out: the original sizes fc
# as cardinality * 32 * 2, which only runs when that equals layer4's width.)
TV = [("tv-r3d", V.r3d_18), ("tv-mc3", V.mc3_18), ("tv-r2plus1d", V.r2plus1d_18)]


def st3d_count(st3d, args):
    out = subprocess.run([st3d, "info"] + args, capture_output=True, text=True)
    m = re.search(r"^parameters: (\d+)$", out.stdout, re.M)
    return int(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--st3d", default=os.environ.get("ST3D_BIN", "build/st3d"))
    args = ap.parse_args()
    passed = failed = 0
    for family, depth, kw, opts in CASES:
        kw = dict(kw)
        kw.setdefault("n_classes", 400)
        want = R.count_parameters(family, depth, **kw)
        got = st3d_count(args.st3d, opts + ["--model-depth", str(depth)] +
                         ([] if "--n-classes" in opts else ["--n-classes", "400"]))
        ok = got == want
        passed += ok
        failed += not ok
        print("%-4s %s-%d %s: st3d %s, PyTorch %d" % ("ok" if ok else "FAIL", family, depth, kw, got, want))
    for name, make in TV:
        want = sum(p.numel() for p in make(num_classes=400).parameters())
        got = st3d_count(args.st3d, ["--model", name, "--model-depth", "18", "--n-classes", "400"])
        ok = got == want
        passed += ok
        failed += not ok
        print("%-4s %s: st3d %s, torchvision %d" % ("ok" if ok else "FAIL", name, got, want))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
