#!/usr/bin/python3
"""st3d's torchvision video ResNets vs torchvision itself, and parameter
counts of every family and depth.

(1) torchvision.models.video.r3d_18, mc3_18 and r2plus1d_18 (Debian's
    python3-torchvision; random weights, BN statistics randomised) are saved
    with their own state_dict keys; `st3d forward --model tv-r3d|tv-mc3|
    tv-r2plus1d` must match torchvision's eval-mode logits and pooled
    features within 1e-4, and `st3d train-steps` (2 SGD steps, lr 1e-3,
    momentum 0.9, weight decay 1e-3) every parameter, running statistic and
    last-step gradient within 1e-3 (reference: the same torchvision module in
    float64), num_batches_tracked equal.  See fam_common.py for the metric.

(2) `st3d info` prints `parameters: N`; N must equal sum(p.numel()) of the
    PyTorch module for densenet 121/169/201/264, resnet2p1d 10..200 (shortcut
    A and B), c3d with and without BN, and the three torchvision networks.

Exit status: 0 when everything passes, 1 on a failure, 2 on usage errors.
"""
import argparse
import os
import re
import sys

import torch

sys.dont_write_bytecode = True   # no __pycache__ in the source tree (tests/reference)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fam_common as FC  # noqa: E402
import ref_families as RF  # noqa: E402
from fam_common import common  # noqa: E402

TV = {"tv-r3d": "r3d_18", "tv-mc3": "mc3_18", "tv-r2plus1d": "r2plus1d_18"}


def tv_build(model, n_classes, device=None):
    import torchvision.models.video as V
    m = getattr(V, TV[model])(num_classes=n_classes)
    return m if device is None else m.to(device)


def tv_call(m, x):
    """torchvision's VideoResNet.forward, keeping the pooled features."""
    x = m.stem(x)
    x = m.layer4(m.layer3(m.layer2(m.layer1(x))))
    f = m.avgpool(x).flatten(1)
    return m.fc(f), f


def tv_case(model, fwd, train, ncls=10):
    return FC.Case(model, ["--model", model, "--model-depth", "18"],
                   lambda: tv_build(model, ncls), tv_call, fwd, train, ncls)


# 8x24x24 ends at 1x2x2 (mc3: 8x2x2) after layer4, so the last batch
# statistics still see 8 values per channel at batch 2
CASES = [tv_case(m, (2, 3, 8, 32, 32), (2, 3, 8, 24, 24)) for m in TV]


def count_cases():
    out = []
    for d in (121, 169, 201, 264):
        out.append(("densenet-%d" % d, ["--model", "densenet", "--model-depth", str(d)],
                    lambda d=d: RF.count_parameters("densenet", d)))
    for d in (10, 18, 34, 50, 101, 152, 200):
        for sc in ("A", "B"):
            out.append(("resnet2p1d-%d-%s" % (d, sc),
                        ["--model", "resnet2p1d", "--model-depth", str(d), "--resnet-shortcut", sc],
                        lambda d=d, sc=sc: RF.count_parameters("resnet2p1d", d, shortcut=sc)))
    out.append(("resnet2p1d-18-w2-t3", ["--model", "resnet2p1d", "--model-depth", "18",
                                        "--resnet-widen-factor", "2", "--conv1-t-size", "3"],
                lambda: RF.count_parameters("resnet2p1d", 18, widen_factor=2.0, conv1_t_size=3)))
    out.append(("c3d", ["--model", "c3d"], lambda: RF.count_parameters("c3d")))
    out.append(("c3d-bn", ["--model", "c3d", "--c3d-bn"],
                lambda: RF.count_parameters("c3d", bn=True)))
    for m in TV:
        out.append((m, ["--model", m, "--model-depth", "18"],
                    lambda m=m: sum(p.numel() for p in tv_build(m, 400, "meta").parameters())))
    return out


def run_counts(args):
    bad = 0
    print("%-22s %12s %12s  %s" % ("network (400 classes)", "st3d", "PyTorch", "result"))
    for name, opts, torch_count in count_cases():
        p = common.run([args.st3d, "info"] + opts)
        m = re.search(r"parameters:\s*(\d+)", p.stdout)
        n_st3d = int(m.group(1)) if (p.returncode == 0 and m) else None
        n_ref = torch_count()
        ok = n_st3d == n_ref
        bad += not ok
        print("%-22s %12s %12d  %s" % (name, n_st3d if n_st3d is not None else
                                      "exit %d" % p.returncode, n_ref, "PASS" if ok else "FAIL"))
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    FC.add_args(ap)
    ap.add_argument("--no-counts", action="store_true", help="skip the parameter counts")
    args = ap.parse_args()
    rc = FC.run_all(CASES, args)
    if rc == 2 or args.list:
        return rc
    if not args.no_counts:
        print()
        nbad = run_counts(args)
        print("\nparameter counts: %s" % ("all equal" if nbad == 0 else "%d differ" % nbad))
        if nbad:
            rc = 1
    return rc


if __name__ == "__main__":
    torch.set_num_threads(2)
    sys.exit(main())
