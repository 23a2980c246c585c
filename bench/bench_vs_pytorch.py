#!/usr/bin/python3
"""st3d vs PyTorch, side by side, on 3D ResNets at 3 x 16 x 112 x 112.

Rows (--rows picks a subset): for ResNet-18 and ResNet-50 (shortcut B, 400
classes): inference at batch 1 and batch 8 (PyTorch: eval() + no_grad) and
one training step at batch 8 (PyTorch: train(), forward, mean cross-entropy,
backward, torch.optim.SGD step with lr 0.1, momentum 0.9, weight decay 1e-3
over all parameters).

st3d:    `st3d bench --model resnet --model-depth D --batch B --sample-duration 16
          --sample-size 112 --mode infer|train --threads T [--runs R --warmup W]`,
          its last line `RESULT clips_per_s=... gflops=...`.
PyTorch: the network of tests/reference/ref_models.py (same architecture as
         st3d's), torch.set_num_threads(T), oneDNN path ON (PyTorch's default),
         float32; W untimed warm-up runs, then the median of R timed runs.

GFLOP/s of both are computed from one FLOP count (this script's: 2 x
multiply-adds of every conv and fc, forward; a training step counted as 3 x
forward), and compared with the fp32 peak of the cores used:
    threads x 2 FMA units x 16 fp32 lanes (AVX-512) x 2 flops x clock,
clock read from /proc/cpuinfo ("cpu MHz"; the nominal clock, not the turbo).
PyTorch gets OPENBLAS_CORETYPE=SkylakeX on AVX-512 CPUs (Debian's OpenBLAS
misdetects this one).

  /usr/bin/python3 bench/bench_vs_pytorch.py [--threads 2] [--rows r18-infer-b1,...] [--quick]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))


def _openblas_coretype():
    """Debian's OpenBLAS (PyTorch's BLAS here) misdetects AVX-512 Xeons under
    KVM and falls back to generic kernels; name the core type before torch
    loads it, unless the caller already did."""
    try:
        with open("/proc/cpuinfo") as f:
            if " avx512f" in f.read():
                os.environ.setdefault("OPENBLAS_CORETYPE", "SkylakeX")
    except OSError:
        pass


_openblas_coretype()
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import ref_models as R  # noqa: E402

ALL_ROWS = ["r18-infer-b1", "r18-infer-b8", "r18-train-b8",
            "r50-infer-b1", "r50-infer-b8", "r50-train-b8"]
SHAPE = (3, 16, 112, 112)


def parse_row(row):
    m = re.fullmatch(r"r(\d+)-(infer|train)-b(\d+)", row)
    if not m:
        raise SystemExit("bad row %r (expected like r18-infer-b8)" % row)
    return int(m.group(1)), m.group(2), int(m.group(3))


def cpu_mhz():
    try:
        with open("/proc/cpuinfo") as f:
            vals = [float(v) for v in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", f.read(), re.M)]
        if vals:
            return max(vals), "/proc/cpuinfo 'cpu MHz'"
    except OSError:
        pass
    try:
        out = subprocess.run(["lscpu"], stdout=subprocess.PIPE, text=True).stdout
        m = re.search(r"CPU max MHz:\s*([\d.]+)", out) or re.search(r"CPU MHz:\s*([\d.]+)", out)
        if m:
            return float(m.group(1)), "lscpu"
    except OSError:
        pass
    return 2000.0, "assumed (no clock found)"


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
            return m.group(1).strip() if m else "unknown CPU"
    except OSError:
        return "unknown CPU"


def forward_gflop(depth):
    """GFLOP (2 x MACs) of one clip's forward pass, conv + fc."""
    m = R.build("resnet", depth, n_classes=400)
    total = [0]

    def conv_hook(mod, inp, out):
        k = mod.weight.shape[1] * mod.weight.shape[2] * mod.weight.shape[3] * mod.weight.shape[4]
        total[0] += 2 * out.numel() * k

    def fc_hook(mod, inp, out):
        total[0] += 2 * out.numel() * mod.weight.shape[1]

    for mod in m.modules():
        if isinstance(mod, torch.nn.Conv3d):
            mod.register_forward_hook(conv_hook)
        elif isinstance(mod, torch.nn.Linear):
            mod.register_forward_hook(fc_hook)
    m.eval()
    with torch.no_grad():
        m(torch.zeros((1,) + SHAPE))
    return total[0] / 1e9


def run_st3d(binary, depth, mode, batch, threads, runs, warmup):
    cmd = [binary, "bench", "--model", "resnet", "--model-depth", str(depth), "--n-classes", "400",
           "--batch", str(batch), "--sample-duration", str(SHAPE[1]),
           "--sample-size", str(SHAPE[2]), "--mode", mode, "--threads", str(threads),
           "--runs", str(runs), "--warmup", str(warmup)]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    m = re.search(r"RESULT\s+clips_per_s=([\d.eE+-]+)\s+gflops=([\d.eE+-]+)", p.stdout)
    if p.returncode != 0 or not m:
        tail = (p.stderr.strip() or p.stdout.strip())[-300:]
        print("  st3d failed (exit %d): %s" % (p.returncode, tail), file=sys.stderr)
        return None, None, " ".join(cmd)
    return float(m.group(1)), float(m.group(2)), " ".join(cmd)


def run_torch(depth, mode, batch, runs, warmup):
    torch.manual_seed(0)
    model = R.build("resnet", depth, n_classes=400)
    x = torch.randn((batch,) + SHAPE)
    times = []
    if mode == "infer":
        model.eval()
        with torch.no_grad():
            for i in range(warmup + runs):
                t0 = time.perf_counter()
                model(x)
                t = time.perf_counter() - t0
                if i >= warmup:
                    times.append(t)
    else:
        model.train()
        labels = torch.randint(0, 400, (batch,))
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
        for i in range(warmup + runs):
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), labels).backward()
            opt.step()
            t = time.perf_counter() - t0
            if i >= warmup:
                times.append(t)
    del model
    return batch / statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--st3d", default=os.environ.get("ST3D_BIN", os.path.join(ROOT, "build", "st3d")))
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rows", default=",".join(ALL_ROWS),
                    help="comma-separated subset of: " + ",".join(ALL_ROWS))
    ap.add_argument("--runs", type=int, default=5, help="timed runs (median)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="--runs 2 --warmup 1")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-st3d", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.warmup = 2, 1
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    for r in rows:
        parse_row(r)

    torch.set_num_threads(args.threads)
    mhz, src = cpu_mhz()
    peak = args.threads * 2 * 16 * 2 * mhz / 1e3
    print("CPU: %s; %d thread(s); torch %s (oneDNN %s, mkldnn enabled=%s, OPENBLAS_CORETYPE=%s)"
          % (cpu_name(), args.threads, torch.__version__,
             "available" if torch.backends.mkldnn.is_available() else "absent",
             torch.backends.mkldnn.enabled, os.environ.get("OPENBLAS_CORETYPE", "-")))
    print("fp32 peak = %d cores x 2 FMA units x 16 lanes x 2 flops x %.0f MHz (%s) = %.1f GFLOP/s"
          % (args.threads, mhz, src, peak))
    print("input 3 x 16 x 112 x 112, resnet shortcut B, 400 classes; %d warm-up + median of %d runs"
          % (args.warmup, args.runs))
    gf = {}
    results = []
    for row in rows:
        depth, mode, batch = parse_row(row)
        if depth not in gf:
            gf[depth] = forward_gflop(depth)
        flop_clip = gf[depth] * (3 if mode == "train" else 1)
        s_cps = s_gf = t_cps = None
        cmd = ""
        if not args.no_st3d:
            s_cps, s_gf, cmd = run_st3d(args.st3d, depth, mode, batch, args.threads,
                                        args.runs, args.warmup)
        if not args.no_torch:
            t_cps = run_torch(depth, mode, batch, args.runs, args.warmup)
        results.append((row, flop_clip, s_cps, s_gf, t_cps))
        print("  %-14s st3d %s clips/s, PyTorch %s clips/s" % (
            row, "%.3f" % s_cps if s_cps else "-", "%.3f" % t_cps if t_cps else "-"), flush=True)
        if cmd:
            print("      " + cmd)

    print()
    print("GFLOP per clip (forward, 2 x MAC): " +
          ", ".join("ResNet-%d %.2f" % (d, g) for d, g in sorted(gf.items())) +
          "; a training step counts 3 x forward")
    hdr = ("row", "st3d clips/s", "PyTorch clips/s", "st3d/PyTorch", "st3d GFLOP/s",
           "PyTorch GFLOP/s", "st3d %peak", "PyTorch %peak", "st3d says GFLOP/s")
    print("| " + " | ".join(hdr) + " |")
    print("|" + "|".join("---" for _ in hdr) + "|")
    for row, fc, s, sg, t in results:
        def f(v, fmt):
            return fmt % v if v else "-"
        print("| " + " | ".join([
            row, f(s, "%.3f"), f(t, "%.3f"), f(s / t if s and t else None, "%.2fx"),
            f(s * fc if s else None, "%.1f"), f(t * fc if t else None, "%.1f"),
            f(100 * s * fc / peak if s else None, "%.1f%%"),
            f(100 * t * fc / peak if t else None, "%.1f%%"), f(sg, "%.1f")]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
