#!/usr/bin/python3
"""PyTorch checkpoints as users have them, loaded natively by st3d.

For several networks (the original code's families, built by the independent
reference in tests/reference/ref_models.py, and torchvision's own video
ResNets), random weights are saved with Debian's python3-torch:
  - zip format and legacy format (_use_new_zipfile_serialization=False),
  - float32 and float16,
  - plain state_dict, and a training checkpoint {'epoch', 'arch',
    'state_dict' with 'module.' keys, 'optimizer'}.
Then, without telling st3d the architecture:
  1. `st3d info FILE` must name the right network;
  2. `st3d forward --weights FILE` logits and features must equal PyTorch's
     (float32 model, or the float16-rounded weights in float32) within 1e-4
     (max|a-b| / max|b|);
  3. `st3d convert FILE OUT.safetensors --labels L` then forward from OUT
     gives the same logits, and `st3d info OUT` shows the recorded labels;
  4. fine-tuning: `--pretrain-path FILE --n-pretrain-classes K --n-classes M`
     keeps every weight but the classifier: features equal PyTorch's.
Prints 'N passed, M failed' and exits non-zero on any failure."""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torchvision.models.video as V

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import ref_models as R  # noqa: E402

torch.backends.mkldnn.enabled = False

# name, constructor, expected "model:" line fragment, input shape
CASES = [
    ("resnet18-A", lambda: R.build("resnet", 18, n_classes=11, shortcut="A"),
     "model: resnet --model-depth 18 --n-classes 11", (2, 3, 8, 48, 48)),
    ("resnet50-t3", lambda: R.build("resnet", 50, n_classes=5, conv1_t_size=3),
     "model: resnet --model-depth 50 --n-classes 5", (1, 3, 8, 48, 48)),
    ("preresnet18", lambda: R.build("preresnet", 18, n_classes=7),
     "model: preresnet --model-depth 18 --n-classes 7", (2, 3, 8, 48, 48)),
    ("wideresnet50", lambda: R.build("wideresnet", 50, n_classes=6, wide_k=1),
     "model: wideresnet --model-depth 50 --n-classes 6", (1, 3, 8, 32, 32)),
    ("resnext50", lambda: R.build("resnext", 50, n_classes=4),
     "model: resnext --model-depth 50 --n-classes 4", (1, 3, 8, 32, 32)),
    ("tv-r2plus1d", lambda: V.r2plus1d_18(num_classes=9),
     "model: tv-r2plus1d --model-depth 18 --n-classes 9", (1, 3, 8, 48, 48)),
    ("tv-mc3", lambda: V.mc3_18(num_classes=9),
     "model: tv-mc3 --model-depth 18 --n-classes 9", (1, 3, 8, 48, 48)),
]


def randomize(model, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=gen) * 0.5 - 0.25)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
                m.num_batches_tracked.fill_(7)
            elif isinstance(m, (torch.nn.Conv3d, torch.nn.Linear)):
                fan = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.rand(m.bias.shape, generator=gen) * 0.2 - 0.1)


def torch_outputs(model, x):
    """Logits and the pooled features (the classifier's input)."""
    feats = {}
    head = model.fc
    hook = head.register_forward_hook(lambda m, i, o: feats.__setitem__("f", i[0]))
    with torch.no_grad():
        y = model.eval()(x)
    hook.remove()
    return y.numpy(), feats["f"].numpy()


def rel(a, b):
    return float(np.abs(a.astype(np.float64) - b).max() / max(np.abs(b).max(), 1e-12))


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--st3d", default=os.environ.get("ST3D_BIN", "build/st3d"))
    args = ap.parse_args()
    st3d = args.st3d
    passed = failed = 0
    tmp = tempfile.mkdtemp(prefix="st3dckpt-")

    def check(ok, what):
        nonlocal passed, failed
        passed += ok
        failed += not ok
        print("  %-4s %s" % ("ok" if ok else "FAIL", what))

    for ci, (name, make, expect, shape) in enumerate(CASES):
        print(name)
        model = make()
        randomize(model, 100 + ci)
        x = torch.from_numpy(np.random.default_rng(ci).standard_normal(shape).astype(np.float32))
        np.save(os.path.join(tmp, "x.npy"), x.numpy())
        sd = model.state_dict()
        variants = {
            "zip-f32-plain": (sd, True, False),
            "legacy-f32-ckpt": (sd, False, True),
            "zip-f16-ckpt": ({k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}, True, True),
            "legacy-f16-plain": ({k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}, False, False),
        }
        # every variant for the first two networks; the wrapped ones (which the
        # convert and fine-tune checks below use) for the others
        if ci >= 2:
            variants = {k: v for k, v in variants.items() if k.endswith("ckpt")}
        for vname, (vsd, zipfmt, wrapped) in variants.items():
            path = os.path.join(tmp, "%s-%s.pth" % (name, vname))
            obj = vsd
            if wrapped:
                opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
                obj = {"epoch": 12, "arch": name, "state_dict": {"module." + k: v for k, v in vsd.items()},
                       "optimizer": opt.state_dict()}
            torch.save(obj, path, _use_new_zipfile_serialization=zipfmt)
            # reference: the same (possibly f16-rounded) weights in float32
            ref = make()
            ref.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in vsd.items()})
            y_ref, f_ref = torch_outputs(ref, x)

            info = run([st3d, "info", path])
            check(info.returncode == 0 and expect in info.stdout, "%s: info names '%s'" % (vname, expect))
            out = os.path.join(tmp, "y.npy")
            feat = os.path.join(tmp, "f.npy")
            r = run([st3d, "forward", "--weights", path, "--input", os.path.join(tmp, "x.npy"),
                     "--output", out, "--features", feat, "--threads", "2"])
            if r.returncode != 0:
                check(False, "%s: forward failed: %s" % (vname, r.stderr.strip()))
                continue
            e = max(rel(np.load(out), y_ref), rel(np.load(feat), f_ref))
            check(e <= 1e-4, "%s: logits/features rel err %.2e" % (vname, e))

        # convert with labels, then forward from the converted file
        src = os.path.join(tmp, "%s-legacy-f32-ckpt.pth" % name)
        conv = os.path.join(tmp, "%s.safetensors" % name)
        n_classes = model.fc.out_features
        labels = os.path.join(tmp, "labels.txt")
        with open(labels, "w") as f:
            f.write("\n".join("class %d" % i for i in range(n_classes)) + "\n")
        r = run([st3d, "convert", src, conv, "--labels", labels, "--mean-dataset", "kinetics",
                 "--value-scale", "1"])
        check(r.returncode == 0, "convert: %s" % (r.stderr.strip() or "ok"))
        info = run([st3d, "info", conv])
        check('"class 0"' in info.stdout and expect in info.stdout, "converted file records labels and architecture")
        y_ref, f_ref = torch_outputs(model, x)
        r = run([st3d, "forward", "--weights", conv, "--input", os.path.join(tmp, "x.npy"),
                 "--output", os.path.join(tmp, "y2.npy"), "--threads", "2"])
        ok = r.returncode == 0 and rel(np.load(os.path.join(tmp, "y2.npy")), y_ref) <= 1e-4
        check(ok, "forward from the converted file")

        # fine-tuning: a new classifier of 3 classes, everything else kept
        r = run([st3d, "forward", "--pretrain-path", src, "--n-pretrain-classes", str(n_classes),
                 "--n-classes", "3", "--input", os.path.join(tmp, "x.npy"),
                 "--output", os.path.join(tmp, "y3.npy"), "--features", os.path.join(tmp, "f3.npy"),
                 "--threads", "2"])
        ok = (r.returncode == 0 and np.load(os.path.join(tmp, "y3.npy")).shape == (shape[0], 3)
              and rel(np.load(os.path.join(tmp, "f3.npy")), f_ref) <= 1e-4)
        check(ok, "fine-tuning load keeps all but the classifier %s" % r.stderr.strip())
        r = run([st3d, "forward", "--pretrain-path", src, "--n-pretrain-classes", str(n_classes + 1),
                 "--n-classes", "3", "--input", os.path.join(tmp, "x.npy"),
                 "--output", os.path.join(tmp, "y3.npy")])
        check(r.returncode != 0 and "n-pretrain-classes" in r.stderr,
              "a wrong --n-pretrain-classes is refused")
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
