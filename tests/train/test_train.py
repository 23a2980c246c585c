#!/usr/bin/python3
"""`st3d train` end to end on a small built-in dataset (st3d make-dataset).

--part cli (quick tier)
  * a run's files: opts.json (opts.py's names), train.log / train_batch.log /
    val.log as the original Logger writes them (tab-separated, header row,
    \\r\\n; epochs 1..N; a row per step in the batch log), checkpoints every
    --checkpoint epochs and at the end; the checkpoint loads as weights;
  * fine-tuning with --pretrain-path and --ft-begin-module layer4: every
    parameter before layer4 is bit-unchanged, layer4's and fc's change;
  * bad values stop before any work with one line naming the option:
    a missing annotation file, a class count that disagrees with it, a crop
    larger than the frames, an unparsable milestone list, an unknown
    --ft-begin-module, an unknown option;
  * examples/train.c (the public header only) trains and validates.
--part resume (full tier)
  * a run killed with SIGKILL at random moments (several times), resumed
    each time from its newest checkpoint, ends with exactly the bytes of
    every tensor and the metadata of an uninterrupted run.
"""
import argparse
import json
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

FAILS = []
PASSES = [0]


def check(cond, what):
    if cond:
        PASSES[0] += 1
    else:
        FAILS.append(what)
        print("FAIL", what)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        body = f.read()
    meta = head.pop("__metadata__", {})
    dt = {"F32": np.float32, "I64": np.int64}
    out = {}
    for k, v in head.items():
        b, e = v["data_offsets"]
        out[k] = np.frombuffer(body[b:e], dtype=dt[v["dtype"]]).reshape(v["shape"])
    return out, meta


def make_dataset(st3d, root, classes=4, train=6, test=2):
    vids = os.path.join(root, "motion")
    subprocess.run([st3d, "make-dataset", "motion", vids, "--classes", str(classes),
                    "--train-per-class", str(train), "--test-per-class", str(test),
                    "--frames", "24", "--size", "64", "--threads", "2"], check=True,
                   capture_output=True)
    ann = os.path.join(root, "ann.json")
    subprocess.run([st3d, "make-annotations", "--dataset", "ucf101", "--src",
                    os.path.join(vids, "splits"), "--video-path", os.path.join(vids, "videos"),
                    "--dst", ann], check=True, capture_output=True)
    return os.path.join(vids, "videos"), ann


def train_args(videos, ann, result, n_classes=4, epochs=2, extra=()):
    return ["train", "--video-path", videos, "--annotation-path", ann, "--result-path", result,
            "--n-classes", str(n_classes), "--model", "resnet", "--model-depth", "10",
            "--resnet-widen-factor", "0.25", "--sample-size", "48", "--sample-duration", "8",
            "--batch-size", "4", "--n-epochs", str(epochs), "--checkpoint", "1",
            "--learning-rate", "0.01", "--n-val-samples", "1", "--threads", "2",
            "--n-threads", "2"] + list(extra)


def read_log(path):
    raw = open(path, "rb").read()
    check(raw.endswith(b"\r\n") and b"\n" not in raw.replace(b"\r\n", b""),
          f"{path}: rows end in \\r\\n as Python's csv writer ends them")
    rows = [r.split("\t") for r in raw.decode().split("\r\n") if r]
    return rows[0], rows[1:]


def part_cli(a, tmp):
    videos, ann = make_dataset(a.st3d, tmp)
    res = os.path.join(tmp, "run")
    p = subprocess.run([a.st3d] + train_args(videos, ann, res), capture_output=True, text=True)
    check(p.returncode == 0, f"st3d train exits 0 ({p.stderr.strip()[-300:]})")
    opts = json.load(open(os.path.join(res, "opts.json")))
    for key, want in (("learning_rate", 0.01), ("batch_size", 4), ("n_epochs", 2),
                      ("multistep_milestones", [50, 100, 150]), ("lr_scheduler", "multistep"),
                      ("model", "resnet"), ("model_depth", 10), ("train_crop", "random")):
        check(opts.get(key) == want, f"opts.json {key} = {opts.get(key)!r}, expected {want!r}")
    head, rows = read_log(os.path.join(res, "train.log"))
    check(head == ["epoch", "loss", "acc", "lr"], f"train.log header {head}")
    check([r[0] for r in rows] == ["1", "2"], f"train.log epochs {[r[0] for r in rows]}")
    check(all(r[3] == "0.01" for r in rows), f"train.log lr printed as Python prints 0.01: {rows}")
    head, brows = read_log(os.path.join(res, "train_batch.log"))
    check(head == ["epoch", "batch", "iter", "loss", "acc", "lr"], f"train_batch.log header {head}")
    # 24 training clips in batches of 4: 6 steps per epoch, iter counting on
    check([(r[0], r[1], r[2]) for r in brows] ==
          [(str(e), str(b), str((e - 1) * 6 + b)) for e in (1, 2) for b in range(1, 7)],
          f"train_batch.log epoch/batch/iter columns {[r[:3] for r in brows]}")
    losses = [float(r[3]) for r in brows]
    check(all(np.isfinite(losses)) and all(0 <= float(r[4]) <= 1 for r in brows), "finite losses, acc in [0,1]")
    head, vrows = read_log(os.path.join(res, "val.log"))
    check(head == ["epoch", "loss", "acc"] and len(vrows) == 2, f"val.log {head} {vrows}")
    for e in (1, 2):
        check(os.path.exists(os.path.join(res, f"save_{e}.safetensors")), f"save_{e}.safetensors written")
    check(not [f for f in os.listdir(res) if ".tmp" in f], "no temporary file left")
    ck, meta = read_safetensors(os.path.join(res, "save_2.safetensors"))
    check(meta.get("epoch") == "2" and meta.get("arch") == "resnet-10", f"checkpoint metadata {meta}")
    check(any(k.startswith("optimizer.momentum_buffer.") for k in ck), "momentum buffers saved")
    # the checkpoint is a weights file for every command
    x = np.random.RandomState(0).rand(1, 3, 8, 48, 48).astype(np.float32)
    np.save(os.path.join(tmp, "x.npy"), x)
    p = subprocess.run([a.st3d, "forward", "--weights", os.path.join(res, "save_2.safetensors"),
                        "--input", os.path.join(tmp, "x.npy"), "--output", os.path.join(tmp, "y.npy")],
                       capture_output=True, text=True)
    check(p.returncode == 0 and np.load(os.path.join(tmp, "y.npy")).shape == (1, 4),
          f"st3d forward --weights CHECKPOINT ({p.stderr.strip()})")

    # fine-tuning: parameters before layer4 are frozen bit for bit
    ft = os.path.join(tmp, "ft")
    pre = os.path.join(res, "save_2.safetensors")
    p = subprocess.run([a.st3d] + train_args(videos, ann, ft, epochs=1,
                       extra=["--pretrain-path", pre, "--n-pretrain-classes", "4",
                              "--ft-begin-module", "layer4", "--learning-rate", "0.1"]),
                       capture_output=True, text=True)
    check(p.returncode == 0, f"fine-tuning run exits 0 ({p.stderr.strip()[-300:]})")
    after, _ = read_safetensors(os.path.join(ft, "save_1.safetensors"))
    frozen = trained = 0
    for k, v in ck.items():
        if k.startswith("optimizer.") or "running_" in k or "num_batches" in k:
            continue
        same = np.array_equal(v, after[k])
        if k.startswith("layer4") or k.startswith("fc"):
            trained += not same
            check(not same, f"fine-tuned parameter {k} changed")
        else:
            frozen += same
            check(same, f"frozen parameter {k} bit-unchanged")
    print(f"fine-tuning: {frozen} frozen tensors unchanged, {trained} trained tensors changed")

    # bad values: one line naming the option, non-zero exit, before any work
    bad = [
        (["--annotation-path", os.path.join(tmp, "missing.json")], "--annotation-path"),
        (["--n-classes", "5"], "--n-classes"),
        (["--sample-size", "96"], "--sample-size"),
        (["--multistep-milestones", "10,x"], "--multistep-milestones"),
        (["--ft-begin-module", "layer9"], "--ft-begin-module"),
        (["--train-crop", "diagonal"], "--train-crop"),
        (["--learning-rate", "-1"], "--learning-rate"),
        (["--bogus-option"], "--bogus-option"),
    ]
    for extra, name in bad:
        out = os.path.join(tmp, "bad")
        t0 = time.time()
        p = subprocess.run([a.st3d] + train_args(videos, ann, out, epochs=1, extra=extra),
                           capture_output=True, text=True)
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        check(p.returncode != 0 and len(lines) == 1 and name in lines[0] and time.time() - t0 < 10,
              f"bad {extra}: exit {p.returncode}, stderr {p.stderr.strip()!r}")
        check(not os.path.exists(os.path.join(out, "train.log")), f"bad {extra}: no work done")

    # the C example through the public header
    if a.example:
        p = subprocess.run([a.example, ann, videos, "4", "2"], capture_output=True, text=True)
        check(p.returncode == 0 and "val   epoch 2" in p.stdout and "done: 6 steps" in p.stdout,
              f"examples/train.c ran ({p.stdout.strip()[-200:]} {p.stderr.strip()})")


def part_resume(a, tmp):
    videos, ann = make_dataset(a.st3d, tmp)
    epochs = 4
    ref = os.path.join(tmp, "ref")
    t0 = time.time()
    subprocess.run([a.st3d] + train_args(videos, ann, ref, epochs=epochs), check=True, capture_output=True)
    full_time = time.time() - t0
    want, want_meta = read_safetensors(os.path.join(ref, f"save_{epochs}.safetensors"))
    seed = int(os.environ.get("ST3D_TEST_SEED", time.time()))
    rng = random.Random(seed)
    print(f"uninterrupted run: {full_time:.1f} s; kill points drawn with seed {seed}")
    run = os.path.join(tmp, "killed")
    kills = 0
    for attempt in range(20):
        done = sorted(int(f[5:-12]) for f in os.listdir(run) if f.startswith("save_")
                      and f.endswith(".safetensors")) if os.path.isdir(run) else []
        extra = ["--resume-path", os.path.join(run, f"save_{done[-1]}.safetensors")] if done else []
        if done and done[-1] == epochs:
            break
        proc = subprocess.Popen([a.st3d] + train_args(videos, ann, run, epochs=epochs, extra=extra),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if kills < 3:
            time.sleep(rng.uniform(0.3, full_time * 0.6))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
                print(f"killed after epoch checkpoints {done} (kill {kills})")
        proc.wait()
        err = proc.stderr.read().decode()
        if proc.returncode not in (0, -signal.SIGKILL):
            check(False, f"resumed run failed: {err.strip()[-300:]}")
            return
    check(kills >= 1, f"at least one run was killed ({kills})")
    got, got_meta = read_safetensors(os.path.join(run, f"save_{epochs}.safetensors"))
    check(sorted(got) == sorted(want), "same tensors in both final checkpoints")
    diff = [k for k in want if k in got and not np.array_equal(got[k], want[k])]
    check(not diff, f"final tensors bit-identical after {kills} kills (differ: {diff[:5]})")
    check(got_meta == want_meta, f"final metadata equal ({set(got_meta.items()) ^ set(want_meta.items())})")
    for log in ("train.log", "val.log"):
        check(open(os.path.join(run, log), "rb").read() == open(os.path.join(ref, log), "rb").read(),
              f"{log} of the resumed run equals the uninterrupted run's")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--st3d", required=True)
    ap.add_argument("--example")
    ap.add_argument("--part", choices=["cli", "resume"], required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        (part_cli if a.part == "cli" else part_resume)(a, tmp)
    print(f"{PASSES[0]} passed, {len(FAILS)} failed")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
