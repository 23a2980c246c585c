#!/usr/bin/python3
"""Where st3d's inference time goes, primitive by primitive (oneDNN's own
timing: ONEDNN_VERBOSE=1 prints every primitive run with its time).

Runs `st3d bench --mode infer` (warm-up 1, then `--runs` passes) with
verbose output on, keeps the exec lines of the timed passes, and prints
per primitive kind (convolution, reorder, batch norm, eltwise, pooling,
sum, binary, inner product ...) the milliseconds per pass and their share,
the convolutions' GFLOP/s (nominal: 2 x multiply-adds of the shape oneDNN
prints, padding included) by implementation, and the rest of the pass
(its wall time minus the primitives' own times).  Verbose output slows
the pass a little.

  /usr/bin/python3 bench/profile_primitives.py [--net resnet18] [--batch 1] [--threads 2]
      [--shapes N]   also the N convolution shapes that take longest: calls,
                     ms and nominal GFLOP/s per pass
"""
import argparse
import collections
import os
import re
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NETS = {
    "resnet18": ["--model", "resnet", "--model-depth", "18", "--resnet-shortcut", "B"],
    "resnet50": ["--model", "resnet", "--model-depth", "50", "--resnet-shortcut", "B"],
    "r2p1d18": ["--model", "resnet2p1d", "--model-depth", "18"],
    "tv-r3d-18": ["--model", "tv-r3d", "--model-depth", "18"],
}


def conv_flops(desc):
    """2 x multiply-adds of a oneDNN convolution problem string."""
    v = dict((k, int(x)) for k, x in re.findall(r"([a-z]+)(\d+)", desc))
    g = v.get("g", 1)
    od, oh, ow = v.get("od", 1), v.get("oh", 1), v.get("ow", 1)
    kd, kh, kw = v.get("kd", 1), v.get("kh", 1), v.get("kw", 1)
    return 2.0 * v.get("mb", 1) * v["oc"] * (v["ic"] // g) * od * oh * ow * kd * kh * kw


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--st3d", default=os.path.join(ROOT, "build", "st3d"))
    ap.add_argument("--net", default="resnet18", choices=sorted(NETS))
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--shapes", type=int, default=0)
    a = ap.parse_args()
    env = dict(os.environ, ONEDNN_VERBOSE="1")
    cmd = [a.st3d, "bench"] + NETS[a.net] + ["--n-classes", "400", "--batch", str(a.batch),
                                             "--sample-duration", "16", "--sample-size", "112",
                                             "--mode", "infer", "--threads", str(a.threads),
                                             "--warmup", "1", "--runs", str(a.runs)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    lines = [l for l in out.splitlines() if l.startswith("onednn_verbose,exec,")]
    wall = float(re.search(r"RESULT clips_per_s=([0-9.]+)", out).group(1))
    # every pass ends with the classifier (one inner product); the last
    # `runs` passes are the timed ones (the first also holds prepare's
    # weight reorders, so passes are cut at the classifier, not counted)
    ends = [i for i, l in enumerate(lines) if l.split(",")[3] == "inner_product"]
    first = ends[-a.runs - 1] + 1 if len(ends) > a.runs else 0
    timed = lines[first:ends[-1] + 1]
    per_pass = len(timed) // a.runs
    kinds = collections.defaultdict(float)
    impls = collections.defaultdict(lambda: [0.0, 0.0])
    shapes = collections.defaultdict(lambda: [0.0, 0.0, 0])  # (impl, shape): ms, flops, calls
    total = 0.0
    for l in timed:
        f = l.split(",")
        kind, impl, ms = f[3], f[4], float(f[-1])
        kinds[kind] += ms
        total += ms
        if kind == "convolution":
            impls[impl][0] += ms
            impls[impl][1] += conv_flops(f[-2])
            sh = shapes[(impl, f[-2])]
            sh[0] += ms
            sh[1] += conv_flops(f[-2])
            sh[2] += 1
    pass_ms = a.batch / wall * 1e3
    print(f"{a.net}, batch {a.batch}, {a.threads} threads: {wall:.2f} clips/s = {pass_ms:.1f} ms per pass "
          f"(st3d bench, verbose on); {per_pass} primitives per pass")
    print(f"{'primitive':16s} {'ms/pass':>9s} {'share':>7s}")
    for k, ms in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"{k:16s} {ms / a.runs:9.2f} {ms / total:7.1%}")
    gap = pass_ms - total / a.runs
    print(f"{'(rest)':16s} {gap:9.2f} {gap / pass_ms:7.1%} of the pass outside oneDNN's own timing "
          f"(C steps, copies, thread wake-ups, the verbose printing itself)")
    print("convolutions by implementation:")
    for impl, (ms, fl) in sorted(impls.items(), key=lambda kv: -kv[1][0]):
        print(f"  {impl:28s} {ms / a.runs:9.2f} ms/pass  {fl / (ms * 1e-3) / 1e9:7.1f} GFLOP/s nominal")
    if a.shapes:
        print(f"the {a.shapes} convolution shapes that take longest:")
        for (impl, shape), (ms, fl, n) in sorted(shapes.items(), key=lambda kv: -kv[1][0])[:a.shapes]:
            print(f"  {impl:30s} {n // a.runs:4d} calls {ms / a.runs:8.2f} ms/pass "
                  f"{fl / (ms * 1e-3) / 1e9:7.1f} GFLOP/s  {shape}")


if __name__ == "__main__":
    main()
