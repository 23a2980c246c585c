#!/usr/bin/python3
"""`st3d info` parameter counts vs sum(p.numel()) of the PyTorch reference.

Every family and depth with both shortcut types, plus option variants (widen
factor including non-integer channel products, wide-resnet k, input channels,
class count, conv1 temporal size).  The reference models are built on the meta
device, so nothing is allocated.  Exit 0 when every count matches, 1 otherwise.
"""
import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import ref_models as R  # noqa: E402


def cases(families):
    for fam in families:
        for depth in R.FAMILY_DEPTHS[fam]:
            for sc in ("A", "B"):
                yield fam, depth, dict(shortcut=sc)
        if fam == "resnet":
            yield fam, 18, dict(widen_factor=0.5, n_classes=101)
            yield fam, 18, dict(widen_factor=1.5)
            yield fam, 34, dict(widen_factor=0.3, shortcut="A")   # int(64*0.3) = 19 ...
            yield fam, 50, dict(widen_factor=2.0, n_input_channels=2, conv1_t_size=3)
            yield fam, 10, dict(n_classes=1, n_input_channels=1, no_max_pool=True)
        elif fam == "preresnet":
            yield fam, 50, dict(n_classes=51, conv1_t_size=5, n_input_channels=2)
            # the original's model.py passes the widen factor to resnet only
            yield fam, 18, dict(widen_factor=0.5)
        elif fam == "wideresnet":
            yield fam, 50, dict(wide_k=1)
            yield fam, 101, dict(wide_k=1, n_classes=600)
            yield fam, 50, dict(wide_k=3, shortcut="A")
        elif fam == "resnext":
            yield fam, 101, dict(cardinality=32, n_classes=101, n_input_channels=2)
            yield fam, 50, dict(cardinality=16)
            yield fam, 50, dict(cardinality=8, shortcut="A")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_binary_arg(ap)
    ap.add_argument("--family", action="append", choices=R.FAMILIES)
    args = ap.parse_args()
    common.check_binary(args.st3d)
    fams = args.family or list(R.FAMILIES)
    nfail = n = 0
    print("%-11s %5s  %-58s %13s %13s  %s" % ("family", "depth", "options", "st3d", "pytorch", ""))
    for fam, depth, kw in cases(fams):
        n += 1
        want = R.count_parameters(fam, depth, **kw)
        p = common.run([args.st3d, "info"] + common.model_args(fam, depth, **kw), timeout=120)
        got = None
        m = re.findall(r"^parameters:\s*(\d+)\s*$", p.stdout, re.M)
        if p.returncode == 0 and len(m) == 1:
            got = int(m[0])
        ok = got == want
        nfail += not ok
        opts = " ".join(common.model_args(fam, depth, **kw)[4:])
        extra = ""
        if p.returncode != 0:
            extra = "exit %d: %s" % (p.returncode, p.stderr.strip()[-200:])
        elif got is None:
            extra = "no single 'parameters: N' line in the output"
        print("%-11s %5d  %-58s %13s %13d  %s %s" % (fam, depth, opts[:58], got, want,
                                                  "ok" if ok else "MISMATCH", extra))
    print("\n%d/%d parameter counts match" % (n - nfail, n))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
