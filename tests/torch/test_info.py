#!/usr/bin/python3
"""`st3d info` parameter counts vs sum(p.numel()) of the PyTorch references.

Every family and depth: the original code's ResNets (ref_resnet.py) with both
shortcut types and option variants (widen factors including non-integer
channel products, wide-resnet k, cardinality, input channels, class count,
conv1 temporal size, no max pool), DenseNet, R(2+1)D (both shortcuts) and C3D
(ref_families.py), torchvision's video ResNets (torchvision itself).  The
references are built on the meta device: nothing is allocated.  `st3d info`
must exit 0 and print exactly one line `parameters: N`.
"""
import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import ref_families as RF  # noqa: E402
import ref_resnet as R  # noqa: E402
from test_networks import TV, model_args, tv_build  # noqa: E402


def resnet_cases():
    for fam in R.FAMILIES:
        for depth in R.FAMILY_DEPTHS[fam]:
            for sc in ("A", "B"):
                yield fam, depth, dict(shortcut=sc)
        if fam == "resnet":
            yield fam, 18, dict(widen_factor=0.5, n_classes=101)
            yield fam, 18, dict(widen_factor=1.5)
            yield fam, 34, dict(widen_factor=0.3, shortcut="A")   # int(64*0.3) = 19 ...
            yield fam, 34, dict(widen_factor=0.5, n_classes=101)
            yield fam, 50, dict(widen_factor=2.0, n_input_channels=2, conv1_t_size=3)
            yield fam, 50, dict(conv1_t_size=3, n_input_channels=2)
            yield fam, 10, dict(n_classes=1, n_input_channels=1, no_max_pool=True)
        elif fam == "preresnet":
            yield fam, 50, dict(n_classes=51, conv1_t_size=5, n_input_channels=2)
            # the original's model.py passes the widen factor to resnet only
            yield fam, 18, dict(widen_factor=0.5)
        elif fam == "wideresnet":
            yield fam, 50, dict(wide_k=1)
            yield fam, 101, dict(wide_k=1, n_classes=600)
            yield fam, 50, dict(wide_k=3, shortcut="A")
            yield fam, 50, dict(wide_k=3)
        elif fam == "resnext":
            yield fam, 101, dict(cardinality=32, n_classes=101, n_input_channels=2)
            yield fam, 50, dict(cardinality=16)
            yield fam, 50, dict(cardinality=8, shortcut="A")


def cases():
    """(label, st3d options, reference count function)."""
    out = []
    for fam, depth, kw in resnet_cases():
        args = model_args(fam, depth, **kw)
        out.append((" ".join(args[1:]), args,
                    lambda fam=fam, depth=depth, kw=kw: R.count_parameters(fam, depth, **kw)))
    # the default class count spelled out
    out.append(("resnet 18 --n-classes 400", ["--model", "resnet", "--model-depth", "18",
                                              "--n-classes", "400"],
                lambda: R.count_parameters("resnet", 18, n_classes=400)))
    for d in (121, 169, 201, 264):
        out.append(("densenet %d" % d, ["--model", "densenet", "--model-depth", str(d)],
                    lambda d=d: RF.count_parameters("densenet", d)))
    for d in (10, 18, 34, 50, 101, 152, 200):
        for sc in ("A", "B"):
            out.append(("resnet2p1d %d %s" % (d, sc),
                        ["--model", "resnet2p1d", "--model-depth", str(d), "--resnet-shortcut", sc],
                        lambda d=d, sc=sc: RF.count_parameters("resnet2p1d", d, shortcut=sc)))
    out.append(("resnet2p1d 18 w2 t3", ["--model", "resnet2p1d", "--model-depth", "18",
                                        "--resnet-widen-factor", "2", "--conv1-t-size", "3"],
                lambda: RF.count_parameters("resnet2p1d", 18, widen_factor=2.0, conv1_t_size=3)))
    out.append(("c3d", ["--model", "c3d"], lambda: RF.count_parameters("c3d")))
    out.append(("c3d bn", ["--model", "c3d", "--c3d-bn"], lambda: RF.count_parameters("c3d", bn=True)))
    for m in TV:
        for ncls in (400, 9):
            out.append(("%s %d classes" % (m, ncls),
                        ["--model", m, "--model-depth", "18", "--n-classes", str(ncls)],
                        lambda m=m, n=ncls: sum(p.numel() for p in tv_build(m, n, "meta").parameters())))
    return out


def main():
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    H.add_args(ap)
    args = ap.parse_args()
    H.check_binary(args.st3d)
    passed = failed = 0
    print("%-62s %12s %12s  %s" % ("network", "st3d", "PyTorch", "result"))
    for label, opts, count in cases():
        want = count()
        p = H.run([args.st3d, "info"] + opts, timeout=120)
        m = re.findall(r"^parameters:\s*(\d+)\s*$", p.stdout, re.M)
        got = int(m[0]) if p.returncode == 0 and len(m) == 1 else None
        ok = got == want
        passed += ok
        failed += not ok
        why = ""
        if p.returncode != 0:
            why = "exit %d: %s" % (p.returncode, p.stderr.strip()[-200:])
        elif got is None:
            why = "%d 'parameters: N' lines" % len(m)
        print("%-62s %12s %12d  %s %s" % (label[:62], got, want, "PASS" if ok else "FAIL", why))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
