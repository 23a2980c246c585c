#!/usr/bin/python3
"""`st3d train --save-format pth` and `--resume-path X.pth`, against PyTorch
(Debian's python3-torch), on a tiny built-in dataset (quick tier).

  * a 3-epoch run saving .pth: each file loads with plain torch.load, and
    as the original main.py uses it: model.load_state_dict (strict) into an
    independent PyTorch network (tests/torch/ref_resnet.py), SGD and
    MultiStepLR load_state_dict; every state-dict tensor and momentum buffer
    equals the safetensors checkpoint of the same run saved as safetensors
    (buffers matched to parameters by PyTorch's parameter order); the
    optimizer's param groups and the scheduler's state dict are those of a
    fresh SGD and MultiStepLR stepped as many epochs in PyTorch (keys, order,
    Python types, values); records are 64-byte aligned as torch writes them;
  * resuming from save_2.pth (st3d's own, and the same state re-saved by
    torch.save as main.py's save_checkpoint does) ends with every tensor and
    the metadata of the uninterrupted run's final checkpoint, bit for bit,
    and the same logs;
  * --lr-scheduler plateau: the state equals ReduceLROnPlateau's after the
    run's validation losses; --ft-begin-module layer4: one param group per
    trained parameter as get_fine_tuning_parameters gives, loadable into an
    SGD built that way;
  * malformed files for --resume-path (truncated; no 'optimizer'; no
    'scheduler'): one line naming the file, exit status 1, no crash.
"""
import argparse
import collections
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import warnings
import zipfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "torch"))
sys.path.insert(0, HERE)
import ref_resnet  # noqa: E402
from test_train import FAILS, PASSES, check, read_safetensors  # noqa: E402

LR, MILESTONES, EPOCHS = 0.01, [2], 3


def same(a, b, where):
    """a == b with the same Python types and dict order, recursively."""
    if type(a) is not type(b):
        return f"{where}: {type(a).__name__} {a!r} vs {type(b).__name__} {b!r}"
    if isinstance(a, dict):
        if list(a) != list(b):
            return f"{where}: keys {list(a)} vs {list(b)}"
        for k in a:
            r = same(a[k], b[k], f"{where}[{k!r}]")
            if r:
                return r
        return None
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return f"{where}: lengths {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            r = same(x, y, f"{where}[{i}]")
            if r:
                return r
        return None
    if isinstance(a, torch.Tensor):
        return None if a.dtype == b.dtype and torch.equal(a, b) else f"{where}: tensors differ"
    return None if a == b else f"{where}: {a!r} vs {b!r}"


def run(st3d, videos, ann, result, extra=(), epochs=EPOCHS):
    """st3d train on the tiny network; one compute thread (every run alike,
    and on a busy machine two spinning OpenMP threads cost several times
    more than the work)."""
    args = [st3d, "train", "--video-path", videos, "--annotation-path", ann, "--result-path", result,
            "--n-classes", "2", "--model", "resnet", "--model-depth", "10",
            "--resnet-widen-factor", "0.25", "--sample-size", "32", "--sample-duration", "8",
            "--batch-size", "2", "--n-epochs", str(epochs), "--checkpoint", "1", "--no-hflip",
            "--learning-rate", str(LR), "--multistep-milestones", ",".join(map(str, MILESTONES)),
            "--n-val-samples", "1", "--threads", "1", "--n-threads", "2"] + list(extra)
    return subprocess.run(args, capture_output=True, text=True)


def torch_model():
    return ref_resnet.build("resnet", 10, n_classes=2, widen_factor=0.25)


def fresh_optimizer(params, sched="multistep", steps=0, losses=()):
    """What main.py's get_train_utils builds, stepped as many epochs."""
    opt = torch.optim.SGD(params, lr=LR, momentum=0.9, dampening=0.0, weight_decay=1e-3,
                          nesterov=False)
    if sched == "multistep":
        s = torch.optim.lr_scheduler.MultiStepLR(opt, MILESTONES)
    else:
        s = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, "min", patience=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scheduler.step() without optimizer.step()
        for i in range(steps):
            s.step() if sched == "multistep" else s.step(losses[i])
    return opt, s


def check_zip(path):
    raw = open(path, "rb").read()
    z = zipfile.ZipFile(path)
    names = z.namelist()
    check(names[0].endswith("/data.pkl") and names[-1].endswith("/version") and
          z.read(names[-1]) == b"3\n" and z.read(names[0][:-8] + "byteorder") == b"little",
          f"{path}: records data.pkl .. version ('3\\n'), byteorder 'little' ({names[:3]}...)")
    bad = []
    for i in z.infolist():
        n, m = struct.unpack("<HH", raw[i.header_offset + 26:i.header_offset + 30])
        if (i.header_offset + 30 + n + m) % 64 or i.compress_type != zipfile.ZIP_STORED:
            bad.append(i.filename)
    check(not bad, f"{path}: every record stored and 64-byte aligned (not: {bad[:3]})")


def check_checkpoint(path, st_path, epoch):
    """save_<epoch>.pth against PyTorch and the safetensors run's file."""
    check_zip(path)
    ck = torch.load(path)
    want, _ = read_safetensors(st_path)
    check(list(ck) == ["epoch", "arch", "state_dict", "optimizer", "scheduler"] and
          ck["epoch"] == epoch and ck["arch"] == "resnet-10",
          f"{path}: keys {list(ck)}, epoch {ck.get('epoch')}, arch {ck.get('arch')}")
    model = torch_model()
    sd = ck["state_dict"]
    check(isinstance(sd, collections.OrderedDict) and list(sd) == list(model.state_dict()),
          f"{path}: state_dict is an OrderedDict in PyTorch's key order")
    try:
        model.load_state_dict(sd)  # strict, as resume_model
        check(True, "")
    except RuntimeError as e:
        check(False, f"{path}: load_state_dict(strict=True): {e}")
    diff = [k for k, v in model.state_dict().items()
            if k not in want or v.numpy().dtype != want[k].dtype or not np.array_equal(v.numpy(), want[k])]
    check(not diff, f"{path}: state dict equals the safetensors checkpoint (differ: {diff[:4]})")
    check(sd["bn1.num_batches_tracked"].dtype == torch.int64 and sd["bn1.num_batches_tracked"].dim() == 0,
          f"{path}: num_batches_tracked is a 0-dim int64 tensor")

    fresh, fresh_s = fresh_optimizer(model.parameters(), steps=epoch)
    opt, sched = fresh_optimizer(model.parameters())
    opt.load_state_dict(ck["optimizer"])
    sched.load_state_dict(ck["scheduler"])
    r = same(fresh.state_dict()["param_groups"], ck["optimizer"]["param_groups"], "param_groups")
    check(r is None, f"{path}: param groups as PyTorch's SGD + MultiStepLR after {epoch} epochs: {r}")
    r = same(fresh_s.state_dict(), ck["scheduler"], "scheduler")
    check(r is None, f"{path}: scheduler state as PyTorch's MultiStepLR after {epoch} epochs: {r}")
    names = [n for n, _ in model.named_parameters()]
    state = ck["optimizer"]["state"]
    check(list(state) == list(range(len(names))), f"{path}: optimizer state keyed 0..{len(names) - 1}")
    bad = [n for i, n in enumerate(names)
           if i not in state or not np.array_equal(state[i]["momentum_buffer"].numpy(),
                                                   want["optimizer.momentum_buffer." + n])]
    check(not bad, f"{path}: momentum buffers equal the safetensors run's by parameter order ({bad[:3]})")
    loaded = [opt.state[p]["momentum_buffer"] for p in model.parameters()]
    check(all(b.shape == p.shape for b, p in zip(loaded, model.parameters())),
          f"{path}: SGD.load_state_dict puts each buffer on its parameter")


def resume_equals(st3d, videos, ann, tmp, name, src_pth, ref):
    """Resumes from src_pth (in a copy of the pth run's folder) to the end."""
    res = os.path.join(tmp, name)
    shutil.copytree(os.path.join(tmp, "pth"), res)
    for f in os.listdir(res):
        if f.startswith("save_"):
            os.remove(os.path.join(res, f))
    p = run(st3d, videos, ann, res, ["--resume-path", src_pth])
    check(p.returncode == 0, f"{name}: resumed run exits 0 ({p.stderr.strip()[-300:]})")
    if p.returncode:
        return
    got, got_meta = read_safetensors(os.path.join(res, f"save_{EPOCHS}.safetensors"))
    want, want_meta = read_safetensors(os.path.join(ref, f"save_{EPOCHS}.safetensors"))
    diff = [k for k in want if k not in got or not np.array_equal(got[k], want[k])]
    check(sorted(got) == sorted(want) and not diff,
          f"{name}: final tensors bit-identical to the uninterrupted run (differ: {diff[:4]})")
    check(got_meta == want_meta,
          f"{name}: final metadata equal ({set(got_meta.items()) ^ set(want_meta.items())})")
    for log in ("train.log", "train_batch.log", "val.log"):
        check(open(os.path.join(res, log), "rb").read() == open(os.path.join(ref, log), "rb").read(),
              f"{name}: {log} equals the uninterrupted run's")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--st3d", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    st3d = a.st3d
    with tempfile.TemporaryDirectory() as tmp:
        ds = os.path.join(tmp, "motion")
        subprocess.run([st3d, "make-dataset", "motion", ds, "--classes", "2", "--train-per-class", "4",
                        "--test-per-class", "1", "--frames", "16", "--size", "32", "--threads", "2"],
                       check=True, capture_output=True)
        videos, ann = os.path.join(ds, "videos"), os.path.join(tmp, "ann.json")
        subprocess.run([st3d, "make-annotations", "--dataset", "ucf101", "--src", os.path.join(ds, "splits"),
                        "--video-path", videos, "--dst", ann], check=True, capture_output=True)

        # the same run saved both ways
        ref, pth = os.path.join(tmp, "ref"), os.path.join(tmp, "pth")
        p = run(st3d, videos, ann, ref)
        check(p.returncode == 0, f"safetensors run exits 0 ({p.stderr.strip()[-300:]})")
        p = run(st3d, videos, ann, pth, ["--save-format", "pth"])
        check(p.returncode == 0, f"pth run exits 0 ({p.stderr.strip()[-300:]})")
        files = sorted(os.listdir(pth))
        check([f for f in files if f.startswith("save_")] == [f"save_{e}.pth" for e in (1, 2, 3)] and
              not [f for f in files if ".tmp" in f], f"pth run leaves save_1..3.pth only ({files})")
        check(json.load(open(os.path.join(pth, "opts.json"))).get("save_format") == "pth",
              "opts.json save_format = pth")
        for e in (1, 2, 3):
            check_checkpoint(os.path.join(pth, f"save_{e}.pth"),
                             os.path.join(ref, f"save_{e}.safetensors"), e)

        # resuming: st3d's file, and the same state saved by torch.save as main.py does
        src = os.path.join(pth, "save_2.pth")
        resume_equals(st3d, videos, ann, tmp, "resume_st3d", src, ref)
        ck = torch.load(src)
        model = torch_model()
        model.load_state_dict(ck["state_dict"])
        opt, sched = fresh_optimizer(model.parameters())
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        os.makedirs(os.path.join(tmp, "bytorch"))
        by_torch = os.path.join(tmp, "bytorch", "save_2.pth")
        torch.save({"epoch": ck["epoch"], "arch": "resnet-10", "state_dict": model.state_dict(),
                    "optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, by_torch)
        resume_equals(st3d, videos, ann, tmp, "resume_torch", by_torch, ref)

        # plateau: ReduceLROnPlateau's state after the run's validation losses
        plat = os.path.join(tmp, "plateau")
        p = run(st3d, videos, ann, plat, ["--save-format", "pth", "--lr-scheduler", "plateau",
                                          "--plateau-patience", "0"], epochs=2)
        check(p.returncode == 0, f"plateau run exits 0 ({p.stderr.strip()[-300:]})")
        if p.returncode == 0:
            rows = open(os.path.join(plat, "val.log")).read().split("\n")[1:]
            losses = [float(r.split("\t")[1]) for r in rows if r.strip()]
            ck = torch.load(os.path.join(plat, "save_2.pth"))
            fresh, fresh_s = fresh_optimizer(torch_model().parameters(), "plateau", 2, losses)
            r = same(fresh_s.state_dict(), ck["scheduler"], "scheduler")
            check(r is None, f"plateau: scheduler state as ReduceLROnPlateau's: {r}")
            r = same(fresh.state_dict()["param_groups"], ck["optimizer"]["param_groups"], "param_groups")
            check(r is None, f"plateau: param groups as PyTorch's: {r}")

        # fine-tuning: get_fine_tuning_parameters' groups, one per trained parameter
        ft = os.path.join(tmp, "ft")
        p = run(st3d, videos, ann, ft, ["--save-format", "pth", "--pretrain-path",
                                        os.path.join(ref, "save_1.safetensors"), "--n-pretrain-classes", "2",
                                        "--ft-begin-module", "layer4"], epochs=1)
        check(p.returncode == 0, f"fine-tuning run exits 0 ({p.stderr.strip()[-300:]})")
        if p.returncode == 0:
            ck = torch.load(os.path.join(ft, "save_1.pth"))
            model = torch_model()
            model.load_state_dict(ck["state_dict"])
            named = list(model.named_parameters())
            first = [i for i, (n, _) in enumerate(named) if n.split(".")[0] == "layer4"][0]
            params = [v for _, v in named[first:]]
            groups = ck["optimizer"]["param_groups"]
            check([g["params"] for g in groups] == [[i] for i in range(len(params))],
                  f"fine-tuning: one group per parameter from layer4 on ({[g['params'] for g in groups][:3]}...)")
            opt = torch.optim.SGD([{"params": v} for v in params], lr=LR, momentum=0.9,
                                  dampening=0.0, weight_decay=1e-3, nesterov=False)
            try:
                opt.load_state_dict(ck["optimizer"])
                ok = all(opt.state[v]["momentum_buffer"].shape == v.shape for v in params)
            except (ValueError, KeyError) as e:
                ok = False
                print(e)
            check(ok, "fine-tuning: the optimizer state loads into SGD(get_fine_tuning_parameters)")

        # malformed files: one line naming the file, exit 1
        raw = open(src, "rb").read()
        trunc = os.path.join(tmp, "truncated.pth")
        open(trunc, "wb").write(raw[:len(raw) // 2])
        ck = torch.load(src)
        bad = [(trunc, "")]
        for key in ("optimizer", "scheduler"):
            path = os.path.join(tmp, f"no_{key}.pth")
            torch.save({k: v for k, v in ck.items() if k != key}, path)
            bad.append((path, key))
        for path, word in bad:
            p = run(st3d, videos, ann, os.path.join(tmp, "bad"), ["--resume-path", path])
            lines = [l for l in p.stderr.splitlines() if l.strip()]
            check(p.returncode == 1 and len(lines) == 1 and path in lines[0] and word in lines[0],
                  f"resume from {os.path.basename(path)}: exit {p.returncode}, stderr {p.stderr.strip()!r}")
    print(f"{PASSES[0]} passed, {len(FAILS)} failed")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
