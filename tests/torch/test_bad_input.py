#!/usr/bin/python3
"""st3d's network commands on bad input: every case must exit with a status
in 1..127 (no signal, no core file), print exactly ONE non-empty line on
stderr naming the culprit (the file, option, command or tensor key, and for
a shape mismatch both the expected and the found shape), and leave no output
file behind.
"""
import argparse
import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import numpy as np  # noqa: E402
import ref_resnet as R  # noqa: E402
import st_io  # noqa: E402

MODEL = ["--model", "resnet", "--model-depth", "10", "--n-classes", "5"]


def shape_re(shape):
    """Regex matching the numbers of a shape in order, any separators
    ([64, 64, 3, 3, 3], 64x64x3x3x3, (64,64,3,3,3) ...)."""
    return r"(?<!\d)" + r"\D{1,4}".join(str(int(s)) for s in shape) + r"(?!\d)"


def lit(s):
    return re.escape(s)


def make_files(d):
    import torch
    torch.manual_seed(H.seed("bad-input", "weights"))
    m = R.build("resnet", 10, n_classes=5)
    sd = st_io.state_dict_to_numpy(m.state_dict())
    p = lambda name: os.path.join(d, name)  # noqa: E731
    st_io.save(p("good.safetensors"), sd)
    x = dict(sd)
    del x["layer2.0.bn1.running_var"]
    st_io.save(p("missing-key.safetensors"), x)
    x = dict(sd)
    del x["layer1.0.bn1.running_var"]
    st_io.save(p("missing.safetensors"), x)
    x = dict(sd)
    x["layer1.0.conv2.weight"] = np.zeros((64, 64, 3, 3, 1), np.float32)
    st_io.save(p("wrong-shape.safetensors"), x)
    x = dict(sd)
    x["fc.weight"] = np.zeros((6, 512), np.float32)
    st_io.save(p("wrong.safetensors"), x)
    x = dict(sd)
    x["layer9.weight"] = np.zeros((3,), np.float32)
    st_io.save(p("extra.safetensors"), x)
    raw = open(p("good.safetensors"), "rb").read()
    open(p("truncated.safetensors"), "wb").write(raw[:len(raw) // 2])
    open(p("truncated-header.safetensors"), "wb").write(raw[:40])
    open(p("empty.safetensors"), "wb").close()
    open(p("text.pth"), "w").write("this is not a checkpoint\n")
    rng = np.random.default_rng(H.seed("bad-input", "input"))
    np.save(p("x.npy"), rng.standard_normal((2, 3, 8, 32, 32)).astype(np.float32))
    np.save(p("x1.npy"), np.zeros((1, 3, 8, 32, 32), np.float32))
    np.save(p("x-f64.npy"), rng.standard_normal((2, 3, 8, 32, 32)))
    np.save(p("x-rank4.npy"), rng.standard_normal((3, 8, 32, 32)).astype(np.float32))
    np.save(p("x-2ch.npy"), rng.standard_normal((2, 2, 8, 32, 32)).astype(np.float32))
    open(p("x-garbage.npy"), "wb").write(b"\x93NUMPY\x01\x00garbage")
    open(p("empty.npy"), "wb").close()
    np.save(p("labels.npy"), np.array([1, 2], np.int64))
    np.save(p("labels7.npy"), np.array([7], np.int64))
    np.save(p("labels-f32.npy"), np.array([1, 2], np.float32))
    np.save(p("labels-3.npy"), np.array([1, 2, 3], np.int64))
    np.save(p("labels-range.npy"), np.array([1, 5], np.int64))
    return p


def cases(p):
    """(name, argv, regexes the stderr line must contain (case-insensitive),
    output files that must not exist afterwards)."""
    fwd = ["forward"] + MODEL
    trn = ["train-steps"] + MODEL
    good = ["--weights", p("good.safetensors")]
    y = p("y.npy")
    io = ["--input", p("x.npy"), "--output", y]
    out = p("out.safetensors")
    tio = ["--input", p("x.npy"), "--labels", p("labels.npy"), "--steps", "1", "--lr", "0.01",
           "--output", out]

    def fw(w, x):
        return fwd + ["--weights", p(w), "--input", p(x), "--output", y]

    def tr(labels):
        return trn + good + [a if a != p("labels.npy") else p(labels) for a in tio]

    return [
        # options and commands
        ("unknown option", fwd + good + io + ["--bogus-option", "1"], [lit("--bogus-option")], [y]),
        ("unknown option, nothing else", ["forward", "--frobnicate", "3"], [lit("--frobnicate")], []),
        ("unknown command", ["fly"], [r"\bfly\b"], []),
        ("unknown depth 19", ["info", "--model", "resnet", "--model-depth", "19"], [r"\b19\b"], []),
        ("depth 18 for wideresnet", ["info", "--model", "wideresnet", "--model-depth", "18"],
         [r"\b18\b"], []),
        ("unknown model", ["info", "--model", "resnet9000", "--model-depth", "18"],
         [r"resnet9000"], []),
        ("unknown model vgg", ["info", "--model", "vgg"], [r"\bvgg\b"], []),
        ("bad shortcut", ["info", "--model", "resnet", "--model-depth", "18",
                          "--resnet-shortcut", "C"], [r"shortcut"], []),
        ("bad shortcut, no model", ["info", "--resnet-shortcut", "C"], [lit("resnet-shortcut")], []),
        ("non-integer depth", ["info", "--model", "resnet", "--model-depth", "eighteen"],
         [r"depth", r"eighteen"], []),
        ("non-numeric depth", ["info", "--model-depth", "deep"], [lit("model-depth"), r"\bdeep\b"], []),
        ("missing option value", ["info", "--model", "resnet", "--model-depth"], [r"model.depth"], []),
        ("missing value, no model", ["info", "--model-depth"], [lit("model-depth")], []),
        # inputs
        ("input float64", fw("good.safetensors", "x-f64.npy"), [lit("x-f64.npy"), r"float32"], [y]),
        ("input rank 4", fw("good.safetensors", "x-rank4.npy"), [lit("x-rank4.npy"), r"\b4\b"], [y]),
        ("input 2 channels", fw("good.safetensors", "x-2ch.npy"),
         [lit("x-2ch.npy"), r"\b2\b", r"\b3\b", r"channels"], [y]),
        ("input garbage .npy", fw("good.safetensors", "x-garbage.npy"), [lit("x-garbage.npy")], [y]),
        ("input empty .npy", fw("good.safetensors", "empty.npy"), [lit("empty.npy")], [y]),
        ("input nonexistent", fw("good.safetensors", "nope.npy"), [lit("nope.npy")], [y]),
        # weights
        ("weights missing key", fw("missing-key.safetensors", "x.npy"),
         [lit("missing-key.safetensors"), lit("layer2.0.bn1.running_var")], [y]),
        ("weights missing key (2)", fw("missing.safetensors", "x1.npy"),
         [lit("missing.safetensors"), lit("layer1.0.bn1.running_var")], [y]),
        ("weights wrong shape", fw("wrong-shape.safetensors", "x.npy"),
         [lit("layer1.0.conv2.weight"), shape_re((64, 64, 3, 3, 1)), shape_re((64, 64, 3, 3, 3))], [y]),
        ("weights wrong fc shape", fw("wrong.safetensors", "x1.npy"),
         [lit("wrong.safetensors"), lit("fc.weight"), lit("[6, 512]"), lit("[5, 512]")], [y]),
        ("weights for other n-classes",
         ["forward", "--model", "resnet", "--model-depth", "10", "--n-classes", "7"] + good + io,
         [lit("fc.weight"), shape_re((5, 512)), shape_re((7, 512))], [y]),
        ("weights unexpected key", fw("extra.safetensors", "x1.npy"),
         [lit("extra.safetensors"), lit("layer9.weight")], [y]),
        ("weights truncated data", fw("truncated.safetensors", "x.npy"), [lit("truncated.safetensors")], [y]),
        ("weights truncated header", fw("truncated-header.safetensors", "x.npy"),
         [lit("truncated-header.safetensors")], [y]),
        ("weights empty file", fw("empty.safetensors", "x.npy"), [lit("empty.safetensors")], [y]),
        ("weights nonexistent", fw("nope.safetensors", "x.npy"), [lit("nope.safetensors")], [y]),
        ("text as weights", fw("text.pth", "x1.npy"), [lit("text.pth")], [y]),
        ("info on unrecognised weights", ["info", p("extra.safetensors")], [lit("extra.safetensors")], []),
        ("output dir nonexistent", fwd + good + ["--input", p("x.npy"), "--output",
                                                 p("no/such/dir/y.npy")],
         [lit(os.path.join("no", "such", "dir"))], [p("no/such/dir/y.npy")]),
        # training
        ("labels float32", tr("labels-f32.npy"), [lit("labels-f32.npy")], [out]),
        ("labels count != batch", tr("labels-3.npy"), [lit("labels-3.npy")], [out]),
        ("label out of range", tr("labels-range.npy"), [lit("labels-range.npy")], [out]),
        ("label 7 of 5 classes", trn + good + ["--input", p("x1.npy"), "--labels", p("labels7.npy"),
                                               "--output", out],
         [lit("labels7.npy"), r"label 7"], [out]),
        ("train truncated weights", trn + ["--weights", p("truncated.safetensors")] + tio,
         [lit("truncated.safetensors")], [out]),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    H.add_args(ap)
    args = ap.parse_args()
    H.check_binary(args.st3d)
    passed = failed = 0
    with H.TempDir(keep=args.keep, prefix="st3dbad-") as d:
        p = make_files(d)
        for name, argv, pats, outputs in cases(p):
            before = set(os.listdir(d))
            r = H.run([args.st3d] + argv, timeout=120)
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
            for o in outputs:
                if os.path.exists(o):
                    problems.append("output %s written" % os.path.basename(o))
                    os.unlink(o)
            ok = not problems
            passed += ok
            failed += not ok
            print("%-4s %-30s exit %3d  %s" % ("PASS" if ok else "FAIL", name, r.returncode,
                                             text[:150]))
            if problems:
                print("     -> " + "; ".join(problems))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
