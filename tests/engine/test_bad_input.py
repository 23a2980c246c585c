#!/usr/bin/python3
"""Bad input to the network commands: each must exit non-zero (and not from a
signal), print exactly one line on stderr, and name the culprit (the file,
option or key, and for a shape mismatch both shapes).
Prints 'N passed, M failed'; exits non-zero on any failure."""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import st_io  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--st3d", default=os.environ.get("ST3D_BIN", "build/st3d"))
    args = ap.parse_args()
    st3d = args.st3d
    tmp = tempfile.mkdtemp(prefix="st3dbad-")
    p = lambda name: os.path.join(tmp, name)  # noqa: E731

    # a valid resnet-10 with 5 classes, and inputs
    subprocess.run([st3d, "init", "--model", "resnet", "--model-depth", "10", "--n-classes", "5",
                    "--output", p("w.safetensors")], check=True, capture_output=True)
    np.save(p("x.npy"), np.zeros((1, 3, 8, 32, 32), np.float32))
    np.save(p("x64.npy"), np.zeros((1, 3, 8, 32, 32), np.float64))
    np.save(p("x4.npy"), np.zeros((3, 8, 32, 32), np.float32))
    np.save(p("x2ch.npy"), np.zeros((1, 2, 8, 32, 32), np.float32))
    np.save(p("labels.npy"), np.array([7], np.int64))
    tensors, meta = st_io.load(p("w.safetensors"))
    missing = dict(tensors)
    del missing["layer1.0.bn1.running_var"]
    st_io.save(p("missing.safetensors"), missing)
    wrong = dict(tensors)
    wrong["fc.weight"] = np.zeros((6, 512), np.float32)
    st_io.save(p("wrong.safetensors"), wrong)
    extra = dict(tensors)
    extra["layer9.weight"] = np.zeros((3,), np.float32)
    st_io.save(p("extra.safetensors"), extra)
    data = open(p("w.safetensors"), "rb").read()
    open(p("trunc.safetensors"), "wb").write(data[: len(data) // 2])
    open(p("text.pth"), "w").write("this is not a checkpoint\n")
    open(p("empty.npy"), "wb").close()

    base = ["--model", "resnet", "--model-depth", "10", "--n-classes", "5"]
    fwd = lambda w, x: [st3d, "forward"] + base + ["--weights", w, "--input", x,  # noqa: E731
                                                   "--output", p("y.npy")]
    cases = [
        ("unknown option", [st3d, "forward", "--frobnicate", "3"], ["--frobnicate"]),
        ("unknown command", [st3d, "fly"], ["fly"]),
        ("unknown depth", [st3d, "info", "--model", "resnet", "--model-depth", "19"], ["19"]),
        ("unknown model", [st3d, "info", "--model", "vgg"], ["vgg"]),
        ("bad shortcut", [st3d, "info", "--resnet-shortcut", "C"], ["resnet-shortcut"]),
        ("non-numeric value", [st3d, "info", "--model-depth", "deep"], ["model-depth", "deep"]),
        ("missing value", [st3d, "info", "--model-depth"], ["model-depth"]),
        ("float64 input", fwd(p("w.safetensors"), p("x64.npy")), ["x64.npy", "float32"]),
        ("rank-4 input", fwd(p("w.safetensors"), p("x4.npy")), ["x4.npy", "4"]),
        ("wrong channels", fwd(p("w.safetensors"), p("x2ch.npy")), ["x2ch.npy", "channels"]),
        ("empty npy", fwd(p("w.safetensors"), p("empty.npy")), ["empty.npy"]),
        ("missing input", fwd(p("w.safetensors"), p("nope.npy")), ["nope.npy"]),
        ("missing weights file", fwd(p("nope.safetensors"), p("x.npy")), ["nope.safetensors"]),
        ("missing key", fwd(p("missing.safetensors"), p("x.npy")),
         ["missing.safetensors", "layer1.0.bn1.running_var"]),
        ("wrong shape", fwd(p("wrong.safetensors"), p("x.npy")),
         ["wrong.safetensors", "fc.weight", "[6, 512]", "[5, 512]"]),
        ("unexpected key", fwd(p("extra.safetensors"), p("x.npy")), ["extra.safetensors", "layer9.weight"]),
        ("truncated weights", fwd(p("trunc.safetensors"), p("x.npy")), ["trunc.safetensors"]),
        ("text as weights", fwd(p("text.pth"), p("x.npy")), ["text.pth"]),
        ("label out of range", [st3d, "train-steps"] + base + ["--weights", p("w.safetensors"),
         "--input", p("x.npy"), "--labels", p("labels.npy"), "--output", p("o.safetensors")],
         ["labels.npy", "label 7"]),
        ("unrecognised weights for info", [st3d, "info", p("extra.safetensors")], ["extra.safetensors"]),
    ]
    passed = failed = 0
    for name, cmd, must in cases:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        ok = (0 < r.returncode < 128 and len(lines) == 1 and all(m in lines[0] for m in must))
        passed += ok
        failed += not ok
        print("%-4s %-30s rc=%d  %s" % ("ok" if ok else "FAIL", name, r.returncode,
                                        lines[0] if len(lines) == 1 else lines))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
