#!/usr/bin/python3
"""st3d on bad input: every case must exit with a status in 1..127 (no signal,
no core file), write nothing to stdout that looks like a result, and print
exactly ONE non-empty line on stderr naming the culprit (file, option or
tensor key, and for shape errors both the expected and the found shape).

Exit 0 when every case behaves, 1 otherwise.
"""
import argparse
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import ref_models as R  # noqa: E402
import st_io  # noqa: E402

MODEL = ["--model", "resnet", "--model-depth", "10", "--n-classes", "5"]


def shape_re(shape):
    """Regex matching the numbers of shape in order, any separators
    ([64, 64, 3, 3, 3], 64x64x3x3x3, (64,64,3,3,3) ...)."""
    return r"(?<!\d)" + r"\D{1,4}".join(str(int(s)) for s in shape) + r"(?!\d)"


def make_files(d):
    import torch
    torch.manual_seed(0)
    m = R.build("resnet", 10, n_classes=5)
    sd = st_io.state_dict_to_numpy(m.state_dict())
    p = lambda name: os.path.join(d, name)  # noqa: E731
    st_io.save(p("good.safetensors"), sd)
    x = sd.copy()
    del x["layer2.0.bn1.running_var"]
    st_io.save(p("missing-key.safetensors"), x)
    x = sd.copy()
    x["layer1.0.conv2.weight"] = np.zeros((64, 64, 3, 3, 1), np.float32)
    st_io.save(p("wrong-shape.safetensors"), x)
    raw = open(p("good.safetensors"), "rb").read()
    open(p("truncated.safetensors"), "wb").write(raw[:len(raw) // 2])
    open(p("truncated-header.safetensors"), "wb").write(raw[:40])
    open(p("empty.safetensors"), "wb").close()
    rng = np.random.default_rng(0)
    np.save(p("x.npy"), rng.standard_normal((2, 3, 8, 32, 32)).astype(np.float32))
    np.save(p("x-f64.npy"), rng.standard_normal((2, 3, 8, 32, 32)))
    np.save(p("x-rank4.npy"), rng.standard_normal((3, 8, 32, 32)).astype(np.float32))
    np.save(p("x-2ch.npy"), rng.standard_normal((2, 2, 8, 32, 32)).astype(np.float32))
    open(p("x-garbage.npy"), "wb").write(b"\x93NUMPY\x01\x00garbage")
    np.save(p("labels.npy"), np.array([1, 2], np.int64))
    np.save(p("labels-f32.npy"), np.array([1, 2], np.float32))
    np.save(p("labels-3.npy"), np.array([1, 2, 3], np.int64))
    np.save(p("labels-range.npy"), np.array([1, 5], np.int64))
    return p


def cases(p):
    fwd = ["forward"] + MODEL
    trn = ["train-steps"] + MODEL
    good = ["--weights", p("good.safetensors")]
    io = ["--input", p("x.npy"), "--output", p("y.npy")]
    tio = ["--input", p("x.npy"), "--labels", p("labels.npy"), "--steps", "1", "--lr", "0.01",
           "--output", p("out.safetensors")]
    # name, argv, regexes the stderr line must contain (case-insensitive)
    return [
        ("unknown option", fwd + good + io + ["--bogus-option", "1"], [r"--bogus-option"]),
        ("unknown depth 19", ["info", "--model", "resnet", "--model-depth", "19"],
         [r"\b19\b"]),
        ("depth 18 for wideresnet", ["info", "--model", "wideresnet", "--model-depth", "18"],
         [r"\b18\b"]),
        ("unknown model", ["info", "--model", "resnet9000", "--model-depth", "18"],
         [r"resnet9000"]),
        ("bad shortcut", ["info", "--model", "resnet", "--model-depth", "18",
                          "--resnet-shortcut", "C"], [r"shortcut"]),
        ("non-integer depth", ["info", "--model", "resnet", "--model-depth", "eighteen"],
         [r"depth", r"eighteen"]),
        ("missing option value", ["info", "--model", "resnet", "--model-depth"],
         [r"model.depth"]),
        ("input float64", fwd + good + ["--input", p("x-f64.npy"), "--output", p("y.npy")],
         [re.escape("x-f64.npy")]),
        ("input rank 4", fwd + good + ["--input", p("x-rank4.npy"), "--output", p("y.npy")],
         [re.escape("x-rank4.npy")]),
        ("input 2 channels", fwd + good + ["--input", p("x-2ch.npy"), "--output", p("y.npy")],
         [re.escape("x-2ch.npy"), r"\b2\b", r"\b3\b"]),
        ("input garbage .npy", fwd + good + ["--input", p("x-garbage.npy"), "--output", p("y.npy")],
         [re.escape("x-garbage.npy")]),
        ("input nonexistent", fwd + good + ["--input", p("nope.npy"), "--output", p("y.npy")],
         [re.escape("nope.npy")]),
        ("weights missing key", fwd + ["--weights", p("missing-key.safetensors")] + io,
         [re.escape("layer2.0.bn1.running_var")]),
        ("weights wrong shape", fwd + ["--weights", p("wrong-shape.safetensors")] + io,
         [re.escape("layer1.0.conv2.weight"), shape_re((64, 64, 3, 3, 1)),
          shape_re((64, 64, 3, 3, 3))]),
        ("weights for other n-classes",
         ["forward", "--model", "resnet", "--model-depth", "10", "--n-classes", "7"] + good + io,
         [re.escape("fc.weight"), shape_re((5, 512)), shape_re((7, 512))]),
        ("weights truncated data", fwd + ["--weights", p("truncated.safetensors")] + io,
         [re.escape("truncated.safetensors")]),
        ("weights truncated header", fwd + ["--weights", p("truncated-header.safetensors")] + io,
         [re.escape("truncated-header.safetensors")]),
        ("weights empty file", fwd + ["--weights", p("empty.safetensors")] + io,
         [re.escape("empty.safetensors")]),
        ("weights nonexistent", fwd + ["--weights", p("nope.safetensors")] + io,
         [re.escape("nope.safetensors")]),
        ("output dir nonexistent", fwd + good + ["--input", p("x.npy"), "--output",
                                                 p("no/such/dir/y.npy")],
         [re.escape(os.path.join("no", "such", "dir"))]),
        ("labels float32", trn + good + [a if a != p("labels.npy") else p("labels-f32.npy")
                                         for a in tio], [re.escape("labels-f32.npy")]),
        ("labels count != batch", trn + good + [a if a != p("labels.npy") else p("labels-3.npy")
                                                for a in tio], [re.escape("labels-3.npy")]),
        ("label out of range", trn + good + [a if a != p("labels.npy") else p("labels-range.npy")
                                             for a in tio], [re.escape("labels-range.npy")]),
        ("train truncated weights", trn + ["--weights", p("truncated.safetensors")] + tio,
         [re.escape("truncated.safetensors")]),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_binary_arg(ap)
    args = ap.parse_args()
    common.check_binary(args.st3d)
    nfail = 0
    with common.TempDir() as d:
        p = make_files(d)
        all_cases = cases(p)
        for name, argv, pats in all_cases:
            before = set(os.listdir(d))
            r = common.run([args.st3d] + argv, timeout=120)
            lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
            problems = []
            if r.returncode == 0:
                problems.append("exit status 0")
            elif r.returncode < 0 or r.returncode >= 128:
                problems.append("killed / crashed (status %d)" % r.returncode)
            if len(lines) != 1:
                problems.append("%d stderr lines" % len(lines))
            text = " ".join(lines)
            for pat in pats:
                if not re.search(pat, text, re.I):
                    problems.append("stderr lacks /%s/" % pat)
            cores = [f for f in set(os.listdir(d)) - before if f.startswith("core")]
            if cores:
                problems.append("core file %s" % cores[0])
            ok = not problems
            nfail += not ok
            print("%-4s %-30s exit %3d  %s" % ("ok" if ok else "FAIL", name, r.returncode,
                                             text[:150]))
            if problems:
                print("     -> " + "; ".join(problems))
    print("\n%d/%d bad-input cases behave" % (len(all_cases) - nfail, len(all_cases)))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
