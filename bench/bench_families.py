#!/usr/bin/python3
"""st3d vs PyTorch on the other network families, side by side in one run,
same machine, same thread count.

Rows: DenseNet-121 (the original code's models/densenet.py, built for
PyTorch by tests/families/ref_families.py), R(2+1)D-18 (models/resnet2p1d.py,
same) and torchvision's r3d_18 (torchvision.models.video itself; st3d
--model tv-r3d), on 3 x 16 x 112 x 112 clips: inference at batch 1 and 8
(eval mode, no_grad) and one training step at batch 8 (forward,
cross-entropy, backward, SGD with momentum and weight decay).  PyTorch runs
with its oneDNN (mkldnn) path on, as users run it.  Each side: warm-up runs,
then the median of the timed runs (fewer for training rows).  Prints clips/s
for both and the ratio st3d / PyTorch.

  /usr/bin/python3 bench/bench_families.py [--threads 2] [--rows densenet121-infer-b1,...]
"""
import argparse
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# row name, st3d model options, PyTorch builder (see WORKER), mode, batch
NETS = {
    "densenet121": (["--model", "densenet", "--model-depth", "121"], "densenet:121"),
    "r2p1d18": (["--model", "resnet2p1d", "--model-depth", "18"], "resnet2p1d:18"),
    "tv-r3d-18": (["--model", "tv-r3d", "--model-depth", "18"], "tv:r3d_18"),
}
ROWS = [("%s-%s-b%d" % (net, mode, b), net, mode, b)
        for net in NETS for mode, b in (("infer", 1), ("infer", 8), ("train", 8))]

WORKER = r'''
import json, statistics, sys, time, torch
sys.path.insert(0, sys.argv[1])
torch.backends.mkldnn.enabled = True
spec, mode, batch, threads, warmup, runs = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
torch.set_num_threads(threads)
torch.manual_seed(0)
kind, arg = spec.split(":")
if kind == "tv":
    import torchvision.models.video as V
    model = getattr(V, arg)(num_classes=400)
else:
    import ref_families as RF
    model = RF.build(kind, int(arg), n_classes=400)
x = torch.randn(batch, 3, 16, 112, 112)
y = torch.randint(0, 400, (batch,))
opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, weight_decay=1e-3)
def once():
    if mode == "train":
        model.train()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    else:
        model.eval()
        with torch.no_grad():
            model(x)
times = []
for r in range(warmup + runs):
    t = time.perf_counter()
    once()
    if r >= warmup:
        times.append(time.perf_counter() - t)
print(json.dumps({"median_s": statistics.median(times)}))
'''


def st3d_row(st3d, opts, mode, batch, threads, warmup, runs):
    out = subprocess.run([st3d, "bench"] + opts +
                         ["--n-classes", "400", "--batch", str(batch), "--sample-duration", "16",
                          "--sample-size", "112", "--mode", mode, "--threads", str(threads),
                          "--warmup", str(warmup), "--runs", str(runs)],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"RESULT clips_per_s=([0-9.]+) gflops=([0-9.]+)", out)
    return float(m.group(1)), float(m.group(2))


def torch_env():
    """As bench_networks.py: Debian's OpenBLAS misdetects AVX-512 Xeons of
    this kind, so PyTorch's process names the core type."""
    env = dict(os.environ)
    with open("/proc/cpuinfo") as f:
        if " avx512f" in f.read():
            env["OPENBLAS_CORETYPE"] = "SkylakeX"
    return env


def torch_row(spec, mode, batch, threads, warmup, runs):
    out = subprocess.run(["/usr/bin/python3", "-c", WORKER,
                          os.path.join(ROOT, "tests", "families"), spec, mode, str(batch),
                          str(threads), str(warmup), str(runs)],
                         capture_output=True, text=True, check=True, env=torch_env()).stdout
    return batch / json.loads(out.strip().splitlines()[-1])["median_s"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--st3d", default=os.environ.get("ST3D_BIN", os.path.join(ROOT, "build", "st3d")))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rows", default=",".join(r[0] for r in ROWS))
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--train-warmup", type=int, default=1)
    ap.add_argument("--train-runs", type=int, default=3)
    args = ap.parse_args()
    wanted = args.rows.split(",")
    print("threads %d; infer: %d warm-up + median of %d; train: %d + median of %d"
          % (args.threads, args.warmup, args.runs, args.train_warmup, args.train_runs))
    print("load average at start: %s" % " ".join(open("/proc/loadavg").read().split()[:3]))
    print("%-22s %12s %12s %8s %10s" % ("row", "st3d clip/s", "torch clip/s", "ratio", "st3d GF/s"))
    for name, net, mode, batch in ROWS:
        if name not in wanted:
            continue
        opts, spec = NETS[net]
        w, r = (args.train_warmup, args.train_runs) if mode == "train" else (args.warmup, args.runs)
        s, gf = st3d_row(args.st3d, opts, mode, batch, args.threads, w, r)
        t = torch_row(spec, mode, batch, args.threads, w, r)
        print("%-22s %12.2f %12.2f %7.2fx %10.1f" % (name, s, t, s / t, gf))
        sys.stdout.flush()
    print("load average at end: %s" % " ".join(open("/proc/loadavg").read().split()[:3]))


if __name__ == "__main__":
    main()
