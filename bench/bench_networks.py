#!/usr/bin/python3
"""st3d vs PyTorch, side by side in one run, on the same machine and thread count.

Rows, on 3 x 16 x 112 x 112 clips, each network at inference with batch 1
and 8 (eval mode, no_grad) and one training step at batch 8 (forward,
cross-entropy, backward, SGD with momentum 0.9 and weight decay 1e-3):
  resnet18, resnet50   the original code's 3D ResNets (shortcut B), built for
                       PyTorch by tests/torch/ref_resnet.py
  densenet121, r2p1d18 the original code's DenseNet and R(2+1)D, built for
                       PyTorch by tests/torch/ref_families.py
  tv-r3d-18            torchvision.models.video.r3d_18 itself (st3d --model tv-r3d)
PyTorch runs with its oneDNN (mkldnn) path on, as users run it, and with
OpenBLAS told the CPU's core type (see torch_env).  Each side: warm-up runs,
then the median of the timed runs.  Prints clips/s of both, the ratio
st3d / PyTorch, the GFLOP/s of both (st3d's FLOP count, `st3d info`: 2 x the
multiply-adds of every conv and fc; a training step counts 3 forward passes)
and their share of this CPU's fp32 peak, measured by build/fma_peak (all
cores' fused multiply-adds, registers only) rather than guessed from a clock
that a virtual machine does not show.

  /usr/bin/python3 bench/bench_networks.py [--threads 2] [--rows resnet18-infer-b1,...]
"""
import argparse
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# network: (st3d options, PyTorch builder "kind:arg" for WORKER)
NETS = {
    "resnet18": (["--model", "resnet", "--model-depth", "18", "--resnet-shortcut", "B"], "ref:resnet:18"),
    "resnet50": (["--model", "resnet", "--model-depth", "50", "--resnet-shortcut", "B"], "ref:resnet:50"),
    "densenet121": (["--model", "densenet", "--model-depth", "121"], "fam:densenet:121"),
    "r2p1d18": (["--model", "resnet2p1d", "--model-depth", "18"], "fam:resnet2p1d:18"),
    "tv-r3d-18": (["--model", "tv-r3d", "--model-depth", "18"], "tv:r3d_18"),
}
ROWS = [("%s-%s-b%d" % (net, mode, b), net, mode, b)
        for net in NETS for mode, b in (("infer", 1), ("infer", 8), ("train", 8))]

WORKER = r'''
import json, os, statistics, sys, time, torch
root, spec, mode, batch, threads, warmup, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
torch.backends.mkldnn.enabled = True
torch.set_num_threads(threads)
torch.manual_seed(0)
kind, name, *depth = spec.split(":")
if kind == "tv":
    import torchvision.models.video as V
    model = getattr(V, name)(num_classes=400)
elif kind == "ref":
    sys.path.insert(0, os.path.join(root, "tests", "torch"))
    import ref_resnet as R
    model = R.build(name, int(depth[0]), n_classes=400, shortcut="B")
else:
    sys.path.insert(0, os.path.join(root, "tests", "torch"))
    import ref_families as RF
    model = RF.build(name, int(depth[0]), n_classes=400)
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
    """(clips/s, GFLOP/s) that `st3d bench` prints on its RESULT line."""
    out = subprocess.run([st3d, "bench"] + opts +
                         ["--n-classes", "400", "--batch", str(batch), "--sample-duration", "16",
                          "--sample-size", "112", "--mode", mode, "--threads", str(threads),
                          "--warmup", str(warmup), "--runs", str(runs)],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"RESULT clips_per_s=([0-9.]+) gflops=([0-9.]+)", out)
    return float(m.group(1)), float(m.group(2))


def torch_env():
    """PyTorch at its best here: Debian's OpenBLAS 0.3.21 (scripts/setup.sh
    installs it) misdetects AVX-512 CPUs of this kind and falls back to its
    Prescott kernels, so PyTorch's process names the core type."""
    env = dict(os.environ)
    with open("/proc/cpuinfo") as f:
        if " avx512f" in f.read():
            env["OPENBLAS_CORETYPE"] = "SkylakeX"
    return env


def torch_row(spec, mode, batch, threads, warmup, runs):
    out = subprocess.run(["/usr/bin/python3", "-c", WORKER, ROOT, spec, mode, str(batch),
                          str(threads), str(warmup), str(runs)],
                         capture_output=True, text=True, check=True, env=torch_env()).stdout
    return batch / json.loads(out.strip().splitlines()[-1])["median_s"]


def measured_peak(fma_peak, threads):
    """fp32 GFLOP/s of `threads` cores, from build/fma_peak."""
    out = subprocess.run([fma_peak, str(threads)], capture_output=True, text=True,
                         check=True).stdout
    m = re.search(r"PEAK gflops=([0-9.]+) per_thread=([0-9.]+) threads=\d+ isa=(\w+)", out)
    return float(m.group(1)), m.group(3)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--st3d", default=os.environ.get("ST3D_BIN", os.path.join(ROOT, "build", "st3d")))
    ap.add_argument("--fma-peak", default=os.path.join(ROOT, "build", "fma_peak"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rows", default=",".join(r[0] for r in ROWS),
                    help="comma-separated rows, or network names (all three rows)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--train-warmup", type=int, default=1)
    ap.add_argument("--train-runs", type=int, default=3)
    args = ap.parse_args()
    wanted = set(args.rows.split(","))
    unknown = wanted - {r[0] for r in ROWS} - set(NETS)
    if unknown:
        ap.error("unknown rows: %s (rows: %s)" % (", ".join(sorted(unknown)),
                                                  ", ".join(r[0] for r in ROWS)))
    peak, isa = measured_peak(args.fma_peak, args.threads)
    print("threads %d; fp32 peak measured by fma_peak: %.0f GFLOP/s (%s); infer: %d warm-up + "
          "median of %d, train: %d + median of %d"
          % (args.threads, peak, isa, args.warmup, args.runs, args.train_warmup, args.train_runs))
    print("load average at start: %s" % " ".join(open("/proc/loadavg").read().split()[:3]))
    print("%-22s %11s %12s %8s %10s %11s %8s %8s" % (
        "row", "st3d clip/s", "torch clip/s", "ratio", "st3d GF/s", "torch GF/s", "st3d %pk",
        "torch %pk"))
    for name, net, mode, batch in ROWS:
        if name not in wanted and net not in wanted:
            continue
        opts, spec = NETS[net]
        w, r = (args.train_warmup, args.train_runs) if mode == "train" else (args.warmup, args.runs)
        s, gf = st3d_row(args.st3d, opts, mode, batch, args.threads, w, r)
        t = torch_row(spec, mode, batch, args.threads, w, r)
        tgf = gf * t / s  # the same FLOPs per clip
        print("%-22s %11.2f %12.2f %7.2fx %10.1f %11.1f %7.0f%% %7.0f%%" % (
            name, s, t, s / t, gf, tgf, 100 * gf / peak, 100 * tgf / peak))
        sys.stdout.flush()
    print("load average at end: %s" % " ".join(open("/proc/loadavg").read().split()[:3]))


if __name__ == "__main__":
    main()
