#!/usr/bin/python3
"""st3d vs PyTorch, side by side in one run, on the same machine and thread count.

Rows: ResNet-18 and ResNet-50 (the original code's 3D ResNets, built for
PyTorch by the independent reference tests/reference/ref_models.py) on
3 x 16 x 112 x 112 clips: inference at batch 1 and 8 (eval mode, no_grad),
and one training step at batch 8 (forward, cross-entropy, backward, SGD with
momentum and weight decay).  PyTorch runs with its oneDNN (mkldnn) path on,
as users run it, and with OpenBLAS told the CPU's core type (see torch_env).
Each side: warm-up runs, then the median of timed runs.
Prints clips/s for both, the ratio st3d / PyTorch, and st3d's share of the
CPU's fp32 peak (cores x 2 FMA units x 16 lanes x 2 flops x clock).

  /usr/bin/python3 bench/bench_networks.py [--threads 2] [--rows resnet18-infer-b1,...]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

ROWS = [
    ("resnet18-infer-b1", "resnet", 18, "infer", 1),
    ("resnet18-infer-b8", "resnet", 18, "infer", 8),
    ("resnet18-train-b8", "resnet", 18, "train", 8),
    ("resnet50-infer-b1", "resnet", 50, "infer", 1),
    ("resnet50-infer-b8", "resnet", 50, "infer", 8),
    ("resnet50-train-b8", "resnet", 50, "train", 8),
]

TORCH_WORKER = r'''
import json, statistics, sys, time, torch
sys.path.insert(0, sys.argv[1])
import ref_models as R
torch.backends.mkldnn.enabled = True
family, depth, mode, batch, threads, warmup, runs = sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = R.build(family, depth, n_classes=400)
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


def st3d_row(st3d, family, depth, mode, batch, threads, warmup, runs):
    out = subprocess.run([st3d, "bench", "--model", family, "--model-depth", str(depth),
                          "--n-classes", "400", "--batch", str(batch), "--sample-duration", "16",
                          "--sample-size", "112", "--mode", mode, "--threads", str(threads),
                          "--warmup", str(warmup), "--runs", str(runs)],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"RESULT clips_per_s=([0-9.]+) gflops=([0-9.]+)", out)
    return float(m.group(1)), float(m.group(2))


def torch_env():
    """PyTorch at its best here: Debian's OpenBLAS (scripts/setup.sh installs
    it) misdetects AVX-512 Xeons of this kind and falls back to its Prescott
    kernels, so the worker names the core type; OPENBLAS_L2_SIZE is left
    alone.  Only this benchmark's PyTorch process gets it."""
    env = dict(os.environ)
    with open("/proc/cpuinfo") as f:
        avx512 = " avx512f" in f.read()
    if avx512:
        env["OPENBLAS_CORETYPE"] = "SkylakeX"
    return env


def torch_row(family, depth, mode, batch, threads, warmup, runs):
    out = subprocess.run(["/usr/bin/python3", "-c", TORCH_WORKER,
                          os.path.join(ROOT, "tests", "reference"), family, str(depth), mode,
                          str(batch), str(threads), str(warmup), str(runs)],
                         capture_output=True, text=True, check=True, env=torch_env()).stdout
    return batch / json.loads(out.strip().splitlines()[-1])["median_s"]


def peak_gflops(threads, clock_ghz):
    if clock_ghz:
        return threads * 2 * 16 * 2 * clock_ghz, clock_ghz * 1000.0
    mhz = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    mhz = float(line.split(":")[1])
                    break
    except OSError:
        pass
    mhz = mhz or 2000.0
    return threads * 2 * 16 * 2 * mhz / 1000.0, mhz


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--st3d", default=os.environ.get("ST3D_BIN", os.path.join(ROOT, "build", "st3d")))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rows", default=",".join(r[0] for r in ROWS))
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--clock-ghz", type=float, default=3.5,
                    help="core clock for the peak (default 3.5, a turbo clock: /proc/cpuinfo "
                         "shows the nominal one, which st3d exceeds); 0 reads /proc/cpuinfo")
    args = ap.parse_args()
    wanted = args.rows.split(",")
    peak, mhz = peak_gflops(args.threads, args.clock_ghz)
    print("threads %d; fp32 peak assumed %.0f GFLOP/s (%d cores x 2 FMA x 16 lanes x 2 x %.0f MHz)"
          % (args.threads, peak, args.threads, mhz))
    print("load average at start: %s" % open("/proc/loadavg").read().split()[:3])
    print("%-20s %12s %12s %8s %10s %8s" % ("row", "st3d clip/s", "torch clip/s", "ratio",
                                            "st3d GF/s", "of peak"))
    for name, family, depth, mode, batch in ROWS:
        if name not in wanted:
            continue
        runs = args.runs if mode == "infer" or depth < 50 else max(3, args.runs - 2)
        s, gf = st3d_row(args.st3d, family, depth, mode, batch, args.threads, args.warmup, runs)
        t = torch_row(family, depth, mode, batch, args.threads, args.warmup, runs)
        print("%-20s %12.2f %12.2f %7.2fx %10.1f %7.0f%%" % (name, s, t, s / t, gf, 100 * gf / peak))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
