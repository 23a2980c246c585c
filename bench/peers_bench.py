#!/usr/bin/python3
"""st3d against every CPU peer at its best, side by side in one run.

Peers, each on the same weights and the same 3 x 16 x 112 x 112 clips,
`--threads` threads each (2):
  torch-eager  PyTorch (Debian's python3-torch), eval mode, no_grad, oneDNN on
  torch-opt    torch.jit.optimize_for_inference(torch.jit.freeze(traced
               model)): batch norm folded, oneDNN layouts, the fastest way
               to run PyTorch on a CPU
  ort          ONNX Runtime (npm onnxruntime-node, bench/setup_peers.sh) on
               torch.onnx.export's graph of the same model, every graph
               optimization on
Networks: the original code's ResNet-18 and ResNet-50 (shortcut B) and
R(2+1)D-18 (tests/torch/ref_*.py, written independently), and
torchvision's r3d_18 itself; batch 1 and 8.

Each row first checks that the four agree (logits within 1e-3 of PyTorch
eager's largest, st3d through `st3d forward` on the exported weights), then
runs interleaved rounds (st3d, eager, opt, ort, st3d, ...), each a fresh
process timing `--runs` passes after `--warmup`, and prints the medians
over rounds: clips/s of each, st3d / the best peer, and GFLOP/s of real
work (multiply-adds that do not touch the zero padding, which oneDNN
skips; the nominal count is printed too) against the fp32 peak that
build/fma_peak measures.

  bench/setup_peers.sh && /usr/bin/python3 bench/peers_bench.py [--rows resnet18-b1,...]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "torch"))

# network: (st3d options, PyTorch builder)
NETS = {
    "resnet18": (["--model", "resnet", "--model-depth", "18", "--resnet-shortcut", "B"], "ref:resnet:18"),
    "resnet50": (["--model", "resnet", "--model-depth", "50", "--resnet-shortcut", "B"], "ref:resnet:50"),
    "r2p1d18": (["--model", "resnet2p1d", "--model-depth", "18"], "fam:resnet2p1d:18"),
    "tv-r3d-18": (["--model", "tv-r3d", "--model-depth", "18"], "tv:r3d_18"),
}
ROWS = [(f"{n}-b{b}", n, b) for n in NETS for b in (1, 8)]
PEERS = ["st3d", "torch-eager", "torch-opt", "ort"]

# Runs one PyTorch peer: eager or optimized, timing or writing its logits.
WORKER = r'''
import json, os, statistics, sys, time, torch, numpy as np
root, spec, mode, wpath, xpath, threads, warmup, runs, out = sys.argv[1:10]
threads, warmup, runs = int(threads), int(warmup), int(runs)
sys.path.insert(0, os.path.join(root, "bench"))
import peers_bench as P
torch.set_num_threads(threads)
torch.backends.mkldnn.enabled = True
model = P.build(spec)
model.load_state_dict(P.load_weights(wpath))
model.eval()
x = torch.from_numpy(np.load(xpath))
with torch.no_grad():
    if mode == "opt":
        model = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, x)))
    first = model(x)
    for _ in range(warmup):
        model(x)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - t)
if out != "-":
    np.save(out, first.numpy())
print(json.dumps({"clips_per_s": x.shape[0] / statistics.median(times)}))
'''


def build(spec):
    """The PyTorch model of a builder spec, seeded."""
    import torch
    torch.manual_seed(0)
    kind, name, *depth = spec.split(":")
    if kind == "tv":
        import torchvision.models.video as V
        return getattr(V, name)(num_classes=400)
    if kind == "ref":
        import ref_resnet as R
        return R.build(name, int(depth[0]), n_classes=400, shortcut="B")
    import ref_families as RF
    return RF.build(name, int(depth[0]), n_classes=400)


def load_weights(path):
    import torch
    import st_io
    sd, _ = st_io.load(path)
    return {k: torch.from_numpy(np.array(v)) for k, v in sd.items()}


def real_flops(model, x):
    """(real, nominal) FLOPs of one forward: 2 x multiply-adds of every
    Conv3d and Linear; real ones leave out the taps that fall on padding."""
    import torch
    counts = [0, 0]

    def valid(L, k, s, p, d, out):
        # kernel taps inside [0, L) summed over the output positions
        return sum(sum(1 for j in range(k) if 0 <= o * s - p + j * d < L) for o in range(out))

    def hook(m, inp, outp):
        if isinstance(m, torch.nn.Conv3d):
            n, cin = inp[0].shape[:2]
            per = n * m.out_channels * (cin // m.groups)
            real, nom = per, per
            for a in range(3):
                L, out = inp[0].shape[2 + a], outp.shape[2 + a]
                k, s, p, d = m.kernel_size[a], m.stride[a], m.padding[a], m.dilation[a]
                real *= valid(L, k, s, p, d, out)
                nom *= k * out
            counts[0] += 2 * real
            counts[1] += 2 * nom
        elif isinstance(m, torch.nn.Linear):
            f = 2 * inp[0].shape[0] * m.in_features * m.out_features
            counts[0] += f
            counts[1] += f

    hs = [m.register_forward_hook(hook) for m in model.modules()
          if isinstance(m, (torch.nn.Conv3d, torch.nn.Linear))]
    with torch.no_grad():
        model(x)
    for h in hs:
        h.remove()
    return counts[0], counts[1]


def prepare(net, work):
    """Weights (safetensors) and the ONNX graph (dynamic batch) of a network,
    made once; (weights path, onnx path, real and nominal FLOPs per clip)."""
    import torch
    import st_io
    w, onnx, meta = (os.path.join(work, net + e) for e in (".safetensors", ".onnx", ".json"))
    if not os.path.exists(meta):
        model = build(NETS[net][1]).eval()
        st_io.save(w, {k: v.detach().numpy() for k, v in model.state_dict().items()})
        x = torch.randn(1, 3, 16, 112, 112)
        torch.onnx.export(model, x, onnx, input_names=["x"], output_names=["logits"], opset_version=13,
                          dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})
        real, nom = real_flops(model, x)
        json.dump({"real": real, "nominal": nom}, open(meta, "w"))
    f = json.load(open(meta))
    return w, onnx, f["real"], f["nominal"]


def run_peer(peer, net, batch, files, a, check_out=None):
    """clips/s of one peer (a fresh process); with check_out, its logits go there."""
    w, onnx, xnpy, xbin = files
    warm, runs = (1, 1) if check_out else (a.warmup, a.runs)
    if peer == "st3d":
        if check_out:
            subprocess.run([a.st3d, "forward", "--weights", w, "--input", xnpy, "--output", check_out,
                            "--threads", str(a.threads)], check=True, capture_output=True)
            return None
        out = subprocess.run([a.st3d, "bench", "--weights", w, "--batch", str(batch), "--sample-duration",
                              "16", "--sample-size", "112", "--mode", "infer", "--threads", str(a.threads),
                              "--warmup", str(warm), "--runs", str(runs)],
                             check=True, capture_output=True, text=True).stdout
        return float(re.search(r"RESULT clips_per_s=([0-9.]+)", out).group(1))
    if peer == "ort":
        cmd = ["node", os.path.join(HERE, "peers", "ort_run.js"), onnx, xbin, str(batch), "3", "16", "112",
               "112", str(a.threads), str(warm), str(runs)] + ([check_out + ".bin"] if check_out else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        if check_out:
            np.save(check_out, np.fromfile(check_out + ".bin", dtype=np.float32).reshape(batch, -1))
        return json.loads(out.strip().splitlines()[-1])["clips_per_s"]
    mode = "opt" if peer == "torch-opt" else "eager"
    out = subprocess.run(["/usr/bin/python3", "-c", WORKER, ROOT, NETS[net][1], mode, w, xnpy, str(a.threads),
                          str(warm), str(runs), check_out or "-"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["clips_per_s"]


def cpu_name():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--st3d", default=os.path.join(ROOT, "build", "st3d"))
    ap.add_argument("--fma-peak", default=os.path.join(ROOT, "build", "fma_peak"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rows", default=",".join(r[0] for r in ROWS))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", default="/tmp/st3d-peers")
    a = ap.parse_args()
    wanted = a.rows.split(",")
    bad = [r for r in wanted if r not in {x[0] for x in ROWS}]
    if bad:
        ap.error(f"unknown rows {bad}; rows: {', '.join(r[0] for r in ROWS)}")
    if not os.path.exists(os.path.join(HERE, "peers", "node_modules", "onnxruntime-node")):
        sys.exit("peers_bench: ONNX Runtime is missing: run bench/setup_peers.sh")
    os.makedirs(a.work, exist_ok=True)
    peak = subprocess.run([a.fma_peak, str(a.threads)], check=True, capture_output=True, text=True).stdout
    gpk = float(re.search(r"PEAK gflops=([0-9.]+)", peak).group(1))
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; threads {a.threads} per peer")
    print(peak.strip())
    print(f"rounds {a.rounds} (interleaved), each: warm-up {a.warmup} + median of {a.runs}; "
          f"clips/s: median over rounds")
    print(f"{'row':14s} {'st3d':>7s} {'eager':>7s} {'opt':>7s} {'ort':>7s}   {'best peer':>9s} "
          f"{'st3d/best':>9s}  {'real GF/clip':>12s} {'st3d GF/s':>9s} {'%peak':>6s}")
    for name, net, batch in ROWS:
        if name not in wanted:
            continue
        w, onnx, real, nom = prepare(net, a.work)
        rng = np.random.default_rng(batch)
        x = rng.standard_normal((batch, 3, 16, 112, 112), dtype=np.float32)
        xnpy, xbin = (os.path.join(a.work, f"x{batch}{e}") for e in (".npy", ".bin"))
        np.save(xnpy, x)
        x.tofile(xbin)
        files = (w, onnx, xnpy, xbin)
        # agreement first
        outs = {}
        for p in PEERS:
            path = os.path.join(a.work, f"out-{p}.npy")
            run_peer(p, net, batch, files, a, check_out=path)
            outs[p] = np.load(path).reshape(batch, -1)
        ref = outs["torch-eager"]
        scale = float(np.abs(ref).max())
        errs = {p: float(np.abs(o - ref).max()) / scale for p, o in outs.items()}
        agree = all(e <= 1e-3 for e in errs.values())
        rates = {p: [] for p in PEERS}
        for _ in range(a.rounds):
            for p in PEERS:
                rates[p].append(run_peer(p, net, batch, files, a))
        med = {p: statistics.median(v) for p, v in rates.items()}
        best = max(("torch-opt", "ort", "torch-eager"), key=lambda p: med[p])
        gfs = med["st3d"] * real / 1e9
        print(f"{name:14s} {med['st3d']:7.2f} {med['torch-eager']:7.2f} {med['torch-opt']:7.2f} "
              f"{med['ort']:7.2f}   {best:>9s} {med['st3d'] / med[best]:8.2f}x  "
              f"{real / 1e9:6.1f} ({real / nom:.0%}) {gfs:9.1f} {100 * gfs / gpk:5.0f}%"
              + ("" if agree else "  OUTPUTS DISAGREE " + json.dumps(errs)))
        print(f"{'':14s} rounds: " + "  ".join(f"{p} " + "/".join(f"{v:.2f}" for v in rates[p]) for p in PEERS)
              + "  max |diff| / max |logit|: " + " ".join(f"{p} {e:.1e}" for p, e in errs.items() if p != "torch-eager"))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
