#!/usr/bin/python3
"""PyTorch checkpoints as users have them, loaded natively by st3d.

For several networks (the original code's families from ref_resnet.py, and
torchvision's own video ResNets), random weights (seeded as every harness
case: crc32 of case/part/purpose) are saved with PyTorch's torch.save:
  - zip format and legacy format (_use_new_zipfile_serialization=False),
  - float32 and float16,
  - plain state_dict, and a training checkpoint {'epoch', 'arch',
    'state_dict' with 'module.' keys, 'optimizer'}.
Then, without telling st3d the architecture:
  1. `st3d info FILE` names the right network;
  2. `st3d forward --weights FILE` logits and features equal PyTorch's eval
     forward (float32, oneDNN off; for float16 files the f16-rounded weights
     in float32) within the harness's forward tolerance;
  3. `st3d convert FILE OUT.safetensors --labels L` then forward from OUT
     gives the same logits, and `st3d info OUT` shows the recorded labels
     and architecture;
  4. fine-tuning: `--pretrain-path FILE --n-pretrain-classes K --n-classes 3`
     keeps every weight but the classifier: features equal PyTorch's; a
     wrong --n-pretrain-classes is refused.
--tier quick: the first network; full: the others.
"""
import argparse
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import numpy as np  # noqa: E402
import ref_families as RF  # noqa: E402
import ref_resnet as R  # noqa: E402
import torch  # noqa: E402
from test_networks import tv_build  # noqa: E402


def rinit(model, gen):
    R.randomize(model, gen)


def finit(model, gen):
    RF.randomize(model, gen)


# name, constructor, weights init, expected "model:" line fragment, input shape, tier
CASES = [
    ("resnet18-A", lambda: R.build("resnet", 18, n_classes=11, shortcut="A"), rinit,
     "model: resnet --model-depth 18 --n-classes 11", (2, 3, 8, 48, 48), "quick"),
    ("resnet50-t3", lambda: R.build("resnet", 50, n_classes=5, conv1_t_size=3), rinit,
     "model: resnet --model-depth 50 --n-classes 5", (1, 3, 8, 48, 48), "full"),
    ("preresnet18", lambda: R.build("preresnet", 18, n_classes=7), rinit,
     "model: preresnet --model-depth 18 --n-classes 7", (2, 3, 8, 48, 48), "full"),
    ("wideresnet50", lambda: R.build("wideresnet", 50, n_classes=6, wide_k=1), rinit,
     "model: wideresnet --model-depth 50 --n-classes 6", (1, 3, 8, 32, 32), "full"),
    ("resnext50", lambda: R.build("resnext", 50, n_classes=4), rinit,
     "model: resnext --model-depth 50 --n-classes 4", (1, 3, 8, 32, 32), "full"),
    ("tv-r2plus1d", lambda: tv_build("tv-r2plus1d", 9), finit,
     "model: tv-r2plus1d --model-depth 18 --n-classes 9", (1, 3, 8, 48, 48), "full"),
    ("tv-mc3", lambda: tv_build("tv-mc3", 9), finit,
     "model: tv-mc3 --model-depth 18 --n-classes 9", (1, 3, 8, 48, 48), "full"),
]


def torch_outputs(model, x):
    """Logits and the pooled features (the classifier's input)."""
    feats = {}
    hook = model.fc.register_forward_hook(lambda m, i, o: feats.__setitem__("f", i[0]))
    with torch.no_grad():
        y = model.eval()(x)
    hook.remove()
    return {"logits": H.as64(y), "features": H.as64(feats["f"])}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    H.add_args(ap)
    ap.add_argument("--case", action="append", help="only networks whose name contains this")
    args = ap.parse_args()
    H.check_binary(args.st3d)
    torch.set_num_threads(args.threads)
    st3d = H.St3d(args.st3d, args.threads, args.timeout)
    out = H.Runner(args.verbose)
    with H.TempDir(keep=args.keep, prefix="st3dckpt-") as tmp:
        for ci, (name, make, init, expect, shape, tier) in enumerate(CASES):
            if args.tier != "all" and tier != args.tier:
                continue
            if args.case and not any(s in name for s in args.case):
                continue
            run_network(name, make, init, expect, shape, ci, st3d, tmp, out)
    return out.close()


def run_network(name, make, init, expect, shape, ci, st3d, tmp, out):
    t0 = time.time()
    torch.manual_seed(H.seed(name, "checkpoint", "torch"))
    model = make()
    init(model, H.generator(name, "checkpoint", "weights"))
    x = torch.randn(shape, generator=H.generator(name, "checkpoint", "input"))
    xpath = os.path.join(tmp, "x.npy")
    np.save(xpath, x.numpy())
    sd = model.state_dict()
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}
    variants = {
        "zip-f32-plain": (sd, True, False),
        "legacy-f32-ckpt": (sd, False, True),
        "zip-f16-ckpt": (half, True, True),
        "legacy-f16-plain": (half, False, False),
    }
    # every variant for the first two networks; the wrapped ones (which the
    # convert and fine-tune checks below use) for the others
    if ci >= 2:
        variants = {k: v for k, v in variants.items() if k.endswith("ckpt")}
    refs = {}

    def reference(vsd, f16):
        # the same (possibly f16-rounded) weights in float32
        if f16 not in refs:
            ref = make()
            ref.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in vsd.items()})
            refs[f16] = torch_outputs(ref, x)
        return refs[f16]

    setup = time.time() - t0
    for vname, (vsd, zipfmt, wrapped) in variants.items():
        rep = H.Report(name, vname, "f32")
        t0 = time.time()
        path = os.path.join(tmp, "%s-%s.pth" % (name, vname))
        obj = vsd
        if wrapped:
            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            obj = {"epoch": 12, "arch": name, "state_dict": {"module." + k: v for k, v in vsd.items()},
                   "optimizer": opt.state_dict()}
        torch.save(obj, path, _use_new_zipfile_serialization=zipfmt)
        ref = reference(vsd, "f16" in vname)
        rep.secs[0] = time.time() - t0 + setup
        setup = 0.0
        info = st3d(rep, ["info", path])
        if not (info.returncode == 0 and expect in info.stdout):
            rep.fail("info does not name '%s': exit %d %s" % (expect, info.returncode,
                                                              (info.stdout + info.stderr)[-200:]))
        got = st3d.forward(rep, [], path, x, tmp, name + "-" + vname)
        if got is not None:
            H.compare_forward(rep, got, ref)
        out.add(rep)

    # convert with labels, then forward from the converted file
    rep = H.Report(name, "convert", "f32")
    src = os.path.join(tmp, "%s-legacy-f32-ckpt.pth" % name)
    conv = os.path.join(tmp, "%s.safetensors" % name)
    n_classes = model.fc.out_features
    labels = os.path.join(tmp, "labels.txt")
    with open(labels, "w") as f:
        f.write("\n".join("class %d" % i for i in range(n_classes)) + "\n")
    r = st3d(rep, ["convert", src, conv, "--labels", labels, "--mean-dataset", "kinetics",
                   "--value-scale", "1"])
    if r.returncode != 0:
        rep.fail("convert: exit %d: %s" % (r.returncode, r.stderr.strip()[-200:]))
    info = st3d(rep, ["info", conv])
    if not ('"class 0"' in info.stdout and expect in info.stdout):
        rep.fail("info of the converted file lacks the labels or '%s'" % expect)
    ref = reference(sd, False)
    got = st3d.forward(rep, [], conv, x, tmp, name + "-converted")
    if got is not None:
        H.compare_forward(rep, got, ref)
    out.add(rep)

    # fine-tuning: a new classifier of 3 classes, everything else kept
    rep = H.Report(name, "finetune", "f32")
    xp, yp, fp = (os.path.join(tmp, name + s) for s in ("-ft-x.npy", "-ft-y.npy", "-ft-f.npy"))
    np.save(xp, x.numpy())
    r = st3d(rep, ["forward", "--pretrain-path", src, "--n-pretrain-classes", str(n_classes),
                   "--n-classes", "3", "--input", xp, "--output", yp, "--features", fp,
                   "--threads", str(st3d.threads)])
    if r.returncode != 0:
        rep.fail("fine-tuning load: exit %d: %s" % (r.returncode, r.stderr.strip()[-200:]))
    else:
        y3 = np.load(yp)
        if y3.shape != (shape[0], 3):
            rep.fail("fine-tuning logits shape %s, expected %s" % (y3.shape, (shape[0], 3)))
        f3 = np.load(fp)
        if f3.shape != ref["features"].shape:
            rep.fail("fine-tuning features shape %s" % (f3.shape,))
        else:
            rep.check("features", "features (new classifier)", H.max_err(f3, ref["features"]),
                      H.TOL_FWD)
    r = st3d(rep, ["forward", "--pretrain-path", src, "--n-pretrain-classes", str(n_classes + 1),
                   "--n-classes", "3", "--input", xp, "--output", yp])
    if not (r.returncode != 0 and "n-pretrain-classes" in r.stderr):
        rep.fail("a wrong --n-pretrain-classes is not refused: exit %d %s"
                 % (r.returncode, r.stderr.strip()[-200:]))
    out.add(rep)


if __name__ == "__main__":
    sys.exit(main())
