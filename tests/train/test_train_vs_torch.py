#!/usr/bin/python3
"""The first 12 steps of `st3d train` (ResNet-18) against PyTorch.

Both start from the same weights, take the same clips (the
loader's batches dumped by `st3d sample-clips` with the same options and
seed: a test hook on the very loader `st3d train` uses), and run
torch.optim.SGD (momentum 0.9, dampening 0, weight decay 1e-3) with
MultiStepLR milestones crossed inside the run, BN in training mode, mean
cross-entropy.  Every step's loss in train_batch.log must equal PyTorch's
within 1e-3 relative, and the learning rate of every step PyTorch's exactly.
The initial weights are drawn well conditioned (see below).  The reference
network is tests/torch/ref_resnet.py's (the original's
ResNet written independently), in float32 on PyTorch's oneDNN (only rounding differs).
Usage: test_train_vs_torch.py --st3d ST3D
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "torch"))
import ref_resnet  # noqa: E402
import st_io  # noqa: E402

torch.backends.mkldnn.enabled = True  # 1.7x faster here; rounding only differs (well-conditioned weights)
STEPS = 12
TOL = 1e-3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--st3d", required=True)
    ap.add_argument("--f64", action="store_true", help="also print PyTorch float32 vs float64")
    a = ap.parse_args()
    torch.set_num_threads(2)
    tmp = tempfile.mkdtemp()
    st3d = a.st3d
    run = lambda *args: subprocess.run([st3d] + list(args), check=True, capture_output=True, text=True)
    vids = os.path.join(tmp, "motion")
    run("make-dataset", "motion", vids, "--classes", "4", "--train-per-class", "6",
        "--test-per-class", "1", "--frames", "24", "--size", "64", "--threads", "2")
    ann = os.path.join(tmp, "ann.json")
    run("make-annotations", "--dataset", "ucf101", "--src", os.path.join(vids, "splits"),
        "--video-path", os.path.join(vids, "videos"), "--dst", ann)
    # Initial weights: well conditioned (ref_resnet.randomize "margin": BN betas
    # keep ReLU inputs away from 0), so that float32 rounding cannot flip ReLU
    # decisions and the comparison is well posed (from Kaiming init with BN
    # beta 0, PyTorch float32 vs float64 drift apart by 1e-2 within 4 steps).
    w0 = os.path.join(tmp, "w0.safetensors")
    init = ref_resnet.build("resnet", 18, n_classes=4)
    ref_resnet.randomize(init, torch.Generator().manual_seed(11), bn_beta="margin")
    st_io.save(w0, {k: v.detach().numpy() for k, v in init.state_dict().items()})
    data = ["--annotation-path", ann, "--video-path", os.path.join(vids, "videos"),
            "--batch-size", "8", "--sample-size", "48", "--sample-duration", "16",
            "--n-threads", "2", "--manual-seed", "5"]
    epochs = 4  # 24 clips / 8 = 3 steps per epoch
    clips = os.path.join(tmp, "clips")
    run("sample-clips", *data, "--n-epochs", str(epochs), "--out-dir", clips, "--quiet")
    res = os.path.join(tmp, "run")
    run("train", *data, "--weights", w0, "--n-classes", "4", "--model", "resnet", "--model-depth", "18",
        "--result-path", res, "--n-epochs", str(epochs), "--no-val", "--learning-rate", "0.001",
        "--multistep-milestones", "2,3", "--checkpoint", "100", "--threads", "2")
    rows = [r.split("\t") for r in open(os.path.join(res, "train_batch.log"), newline="").read().split("\r\n")[1:] if r]
    st_loss = [float(r[3]) for r in rows]
    st_lr = [float(r[5]) for r in rows]
    print(f"st3d train: {len(rows)} steps logged")

    # clips.jsonl lists the clips of batch_00000.npy, batch_00001.npy, ... in order
    groups = {}
    for line in open(os.path.join(clips, "clips.jsonl")):
        c = json.loads(line)
        groups.setdefault((c["epoch"], c["batch"]), []).append(c["label"])
    labels = list(groups.values())
    batches = sorted(f for f in os.listdir(clips) if f.startswith("batch_"))

    sd, _ = st_io.load(w0)

    def make(dtype):
        model = ref_resnet.build("resnet", 18, n_classes=4)
        model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in sd.items()})
        model.to(dtype).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9, dampening=0, weight_decay=1e-3)
        return model, opt, torch.optim.lr_scheduler.MultiStepLR(opt, [2, 3])
    model, opt, sched = make(torch.float32)
    m64, o64, s64 = make(torch.float64) if a.f64 else (None, None, None)
    per_epoch = len(batches) // epochs
    passed = failed = 0
    for step in range(min(STEPS, len(batches))):
        epoch, b = divmod(step, per_epoch)
        x = torch.from_numpy(np.load(os.path.join(clips, batches[step])))
        y = torch.tensor(labels[step])
        lr = opt.param_groups[0]["lr"]
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if b == per_epoch - 1:
            sched.step()
        if m64 is not None:
            o64.zero_grad()
            l64 = F.cross_entropy(m64(x.double()), y)
            l64.backward()
            o64.step()
            if b == per_epoch - 1:
                s64.step()
            print(f"   torch float32 vs float64: rel {abs(loss.item() - l64.item()) / abs(l64.item()):.1e}")
        err = abs(st_loss[step] - loss.item()) / abs(loss.item())
        ok = err <= TOL and st_lr[step] == lr
        passed += ok
        failed += not ok
        print(f"step {step + 1:2d} (epoch {epoch + 1}) lr {lr:<8g} st3d {st_loss[step]:.6f} "
              f"torch {loss.item():.6f} rel {err:.1e} {'ok' if ok else 'FAIL'}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or passed < STEPS else 0


if __name__ == "__main__":
    sys.exit(main())
