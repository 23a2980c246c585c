#!/usr/bin/python3
"""`st3d features` end to end (decoding included) against the network alone
and against the same job done in PyTorch, and its peak memory on a short
and a long video (issue 9's benchmark rows).

Rows, side by side in one run, ResNet-18 (shortcut B, weights from
`st3d init`), 3 x 16 x 112 x 112 clips every 16 frames, batch --batch,
--threads compute threads each:
  st3d bench infer        `st3d bench --mode infer`: the network alone
  st3d features           `st3d features` on an H.264 video (libx264, B-frames,
                          320x240, 25 fps, --seconds long, default 300: long
                          enough that one process's start-up, the plan's
                          build and prepare, about 0.35 s, is a small
                          share): wall time of the whole command over the
                          clips it wrote
  ... --conv direct       the same without temporal Winograd (oneDNN's direct
                          kernels only)
  PyTorch (companion)     the companion tool's job in one process: frames
                          decoded by PyAV (Debian's python3-av), PIL's
                          Scale(112) + CenterCrop + ToTensor + Normalize, the
                          same network (tests/torch/ref_resnet.py, the same
                          weights) in eval mode under no_grad: eager, and
                          at its best, torch.jit.optimize_for_inference of
                          the frozen traced network (oneDNN layouts)
  memory                  peak RSS of `st3d features` (ResNet-18, 8 x 32 x 32
                          clips every 250 frames) on a generated 96x64 video
                          of 1 minute and of --long-minutes minutes

usage: /usr/bin/python3 bench/classify_bench.py [--st3d build/st3d] [--seconds 300]
       [--batch 8] [--threads 2] [--long-minutes 120] [--no-torch] [--rounds 3]
(the st3d rows: interleaved rounds, the best of each, and features / bench
within each round, whose median is printed too)
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "torch"))


def sh(cmd, **kw):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise SystemExit("failed: %s\n%s" % (" ".join(map(str, cmd)), p.stderr[-2000:]))
    return p


def make_video(path, size, seconds, preset="medium"):
    sh(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
        "testsrc=size=%s:rate=25" % size, "-t", seconds, "-c:v", "libx264", "-preset", preset,
        "-bf", 3, "-pix_fmt", "yuv420p", path])


def peak_rss_mb(cmd):
    p = sh(["/usr/bin/time", "-f", "MAXRSS %M"] + cmd)
    return [int(l.split()[1]) for l in p.stderr.splitlines() if l.startswith("MAXRSS")][-1] / 1024


def torch_companion(video, weights, batch, threads, optimized=False):
    """Clips/s of the companion's pipeline in PyTorch, decoding included;
    optimized: the network frozen and optimized for inference first."""
    import av
    import torch
    from PIL import Image
    import ref_resnet
    import st_io
    torch.set_num_threads(threads)
    net = ref_resnet.build("resnet", 18, n_classes=400, shortcut="B")
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in st_io.load(weights)[0].items()})
    net.eval()
    if optimized:
        class WithFeatures(torch.nn.Module):
            def __init__(self, net):
                super().__init__()
                self.net = net

            def forward(self, x):
                return self.net(x, return_features=True)
        example = torch.zeros(batch, 3, 16, 112, 112)
        with torch.no_grad():
            net = torch.jit.optimize_for_inference(
                torch.jit.freeze(torch.jit.trace(WithFeatures(net).eval(), example)))
            net(example)  # the first call specializes; not timed
        call = net
    else:
        def call(x):
            return net(x, return_features=True)
    mean = np.array([0.4345, 0.4051, 0.3775], np.float32)
    std = np.array([0.2768, 0.2713, 0.2737], np.float32)

    def transform(img):
        w, h = img.size
        ow, oh = (112, int(112 * h / w)) if w <= h else (int(112 * w / h), 112)
        img = img.resize((ow, oh), Image.BILINEAR)
        x, y = int(round((ow - 112) / 2.0)), int(round((oh - 112) / 2.0))
        a = np.asarray(img.crop((x, y, x + 112, y + 112)), np.float32) / 255.0
        return ((a - mean) / std).transpose(2, 0, 1)

    t0 = time.time()
    clips, frames, n = [], [], 0
    with av.open(video) as c, torch.no_grad():
        for fr in c.decode(video=0):
            frames.append(transform(fr.to_image()))
            if len(frames) == 16:
                clips.append(np.stack(frames, 1))
                frames = []
            if len(clips) == batch:
                call(torch.from_numpy(np.stack(clips)))
                n += len(clips)
                clips = []
        if clips:
            call(torch.from_numpy(np.stack(clips)))
            n += len(clips)
    return n / (time.time() - t0), n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--st3d", default=os.path.join(HERE, "..", "build", "st3d"))
    ap.add_argument("--seconds", type=int, default=300)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--long-minutes", type=float, default=120)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    st3d = os.path.abspath(a.st3d)
    print("load average at start: %.2f %.2f %.2f" % os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="st3d-classify-bench-") as tmp:
        w = os.path.join(tmp, "r18.safetensors")
        sh([st3d, "init", "--model", "resnet", "--model-depth", 18, "--n-classes", 400,
            "--output", w])
        video = os.path.join(tmp, "video.mp4")
        make_video(video, "320x240", a.seconds)
        # --rounds interleaved rounds of (network alone, end to end), the
        # best of each, and the ratio within each round: this machine's
        # noise (+-10 % between runs) is the size of the margin the issue
        # asks about
        bench_rates, feat_rates, direct_rates = [], [], []
        for r in range(a.rounds):
            p = sh([st3d, "bench", "--model", "resnet", "--model-depth", 18, "--batch", a.batch,
                    "--sample-duration", 16, "--sample-size", 112, "--mode", "infer", "--threads",
                    a.threads])
            bench_rates.append(float(p.stdout.split("clips_per_s=")[1].split()[0]))
            out = os.path.join(tmp, "f%d" % r)
            t0 = time.time()
            sh([st3d, "features", "--weights", w, "--output", out, "--batch-size",
                a.batch, "--threads", a.threads, video])
            el = time.time() - t0
            n = len(json.load(open(os.path.join(out, "video.json")))["clips"])
            feat_rates.append(n / el)
            t0 = time.time()
            sh([st3d, "features", "--weights", w, "--output", out + "d", "--batch-size",
                a.batch, "--threads", a.threads, "--conv", "direct", video])
            direct_rates.append(n / (time.time() - t0))
        bench = max(bench_rates)
        rows = [("st3d bench infer (network alone)", bench,
                 "best of %s" % " ".join("%.2f" % x for x in bench_rates))]
        rows.append(("st3d features (end to end)", max(feat_rates),
                     "%.0f%% of bench; best of %s" % (100 * max(feat_rates) / bench,
                                                      " ".join("%.2f" % x for x in feat_rates))))
        # the same ratio round by round (features right after its round's
        # bench, so both saw about the same load from other tenants)
        paired = sorted(f / b for f, b in zip(feat_rates, bench_rates))
        rows.append(("  features / bench, round by round", paired[len(paired) // 2],
                     "x (median; rounds %s)" % " ".join("%.3f" % (f / b) for f, b in
                                                       zip(feat_rates, bench_rates))))
        rows.append(("st3d features --conv direct", max(direct_rates),
                     "best of %s" % " ".join("%.2f" % x for x in direct_rates)))
        if not a.no_torch:
            for name, opt in (("PyTorch companion pipeline, eager", False),
                              ("PyTorch companion pipeline, optimized", True)):
                rate, _ = torch_companion(video, w, a.batch, a.threads, opt)
                rows.append((name, rate, "st3d features %.2fx" % (rows[1][1] / rate)))
        print("resnet-18, batch %d, %d threads, %d s of 320x240 H.264 (%d clips)"
              % (a.batch, a.threads, a.seconds, n))
        for name, rate, note in rows:
            unit = "" if note.startswith("x ") else " clips/s"
            print("%-36s %8.2f%s  %s" % (name, rate, unit, note))
        rss = {}
        for name, minutes in (("1 min", 1.0), ("%g min" % a.long_minutes, a.long_minutes)):
            v = os.path.join(tmp, "m%g.mp4" % minutes)
            make_video(v, "96x64", int(minutes * 60), preset="ultrafast")
            rss[name] = peak_rss_mb([st3d, "features", "--weights", w, "--output",
                                     os.path.join(tmp, "m%g" % minutes), "--sample-size", 32,
                                     "--sample-duration", 8, "--stride", 250, "--threads",
                                     a.threads, v])
            os.remove(v)
        (s, ls), (l, ll) = list(rss.items())
        print("peak RSS of st3d features: %s %.1f MB, %s %.1f MB (%+.1f%%)"
              % (s, ls, l, ll, 100 * (ll - ls) / ls))
    print("load average at end: %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
