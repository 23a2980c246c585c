#!/usr/bin/python3
"""Inference keeps only live activations: peak activation memory must not grow
with depth, and must stay within a few of the widest tensors.

For ResNet-50/101/152/200 (and preresnet, resnext) at 1x3x8x64x64, the
activation memory st3d reports (`st3d bench --mode infer`, "activation
memory") must be the same for every depth, and at most 4x the largest single
activation PyTorch's own forward produces (measured with forward hooks on an
independent PyTorch model, tests/torch/ref_resnet.py).

A batch runs its high-resolution layers one clip at a time (plan_infer.c,
"the micro-batched head"): for ResNet-18, ResNet-50 and R(2+1)D-18 at
3x16x64x64, the activation memory of a batch of 8 must stay below 3x that of
one clip (it is 8x when every layer holds the whole batch).
Prints 'N passed, M failed'; exits 77 when PyTorch is absent."""
import argparse
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True
try:
    import torch
except ImportError:
    print("skipped: PyTorch is not installed for %s" % sys.executable)
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "torch"))
import ref_resnet as R  # noqa: E402

SHAPE = (1, 3, 8, 64, 64)


def st3d_activation_mib(st3d, family, depth, shape=SHAPE):
    out = subprocess.run([st3d, "bench", "--model", family, "--model-depth", str(depth),
                          "--n-classes", "10", "--batch", str(shape[0]),
                          "--sample-duration", str(shape[2]),
                          "--sample-size", str(shape[3]), "--runs", "1", "--warmup", "0",
                          "--threads", "2"], capture_output=True, text=True, check=True).stdout
    return float(re.search(r"activation memory: ([0-9.]+) MiB", out).group(1))


def torch_largest_activation_mib(family, depth):
    model = R.build(family, depth, n_classes=10).eval()
    largest = [0]

    def hook(_m, _i, out):
        if torch.is_tensor(out):
            largest[0] = max(largest[0], out.numel() * 4)
    for mod in model.modules():
        mod.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.zeros(SHAPE))
    return largest[0] / 2**20


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--st3d", default=os.environ.get("ST3D_BIN", "build/st3d"))
    args = ap.parse_args()
    failed = 0
    for family, depths in (("resnet", (50, 101, 152, 200)), ("preresnet", (50, 152)),
                           ("resnext", (50, 101))):
        sizes = {d: st3d_activation_mib(args.st3d, family, d) for d in depths}
        widest = torch_largest_activation_mib(family, depths[0])
        same = len(set(sizes.values())) == 1
        bounded = max(sizes.values()) <= 4 * widest + 0.5
        ok = same and bounded
        failed += not ok
        print("%-10s %s MiB by depth; widest PyTorch activation %.2f MiB: %s" %
              (family, sizes, widest, "PASS" if ok else "FAIL"))
    for family, depth in (("resnet", 18), ("resnet", 50), ("resnet2p1d", 18)):
        one = st3d_activation_mib(args.st3d, family, depth, (1, 3, 16, 64, 64))
        eight = st3d_activation_mib(args.st3d, family, depth, (8, 3, 16, 64, 64))
        ok = eight < 3 * one
        failed += not ok
        print("%s-%d activation memory: batch 1 %.2f MiB, batch 8 %.2f MiB (%.2fx): %s" %
              (family, depth, one, eight, eight / one, "PASS" if ok else "FAIL"))
    print("%d passed, %d failed" % (6 - failed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
