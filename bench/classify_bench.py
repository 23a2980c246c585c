#!/usr/bin/python3
"""`st3d features` end to end (decoding included) against the network alone
and against the same job done in PyTorch, and its peak memory on a short
and a long video (issue 9's benchmark rows).

Rows, side by side in one run, ResNet-18 (shortcut B, weights from
`st3d init`), 3 x 16 x 112 x 112 clips every 16 frames, batch --batch,
--threads compute threads each:
  st3d bench infer        `st3d bench --mode infer`: the network alone, over
                          as many clips as st3d features writes, timed as
                          features is (all clips over all seconds: bench's
                          mean_clips_per_s)
  st3d features           `st3d features` on an H.264 video (libx264, B-frames,
                          320x240, 25 fps, --seconds long, default 300: long
                          enough that one process's start-up, the plan's
                          build and prepare, about 0.35 s, is a small
                          share): wall time of the whole command over the
                          clips it wrote
  ... --conv direct       the same without temporal Winograd (oneDNN's direct
                          kernels only)
  CPU ms per clip         user + system milliseconds per clip of each st3d run:
                          how much more work features does than the
                          network alone, whatever the load from other
                          tenants does to wall time
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
       [--video FILE] [--decoder av|cv2] [--no-memory] [--no-direct]
       [--pair-with "OPTIONS"]
  --video FILE    a video made beforehand (the same ffmpeg command as
                  make_video), for a machine without the ffmpeg program
  --decoder cv2   the PyTorch rows decode with OpenCV's VideoCapture (its
                  own FFmpeg) where PyAV is not installed; frames go to PIL
                  as RGB, the rest of the pipeline is the same
  --no-memory     skip the memory rows (they need ffmpeg and /usr/bin/time)
  --no-direct     skip the --conv direct row
  --pair-with "OPTIONS"  a row of st3d features with these options added
                  (leading NAME=VALUE words: environment variables), each run
                  next to a features run without them; e.g. "GOMP_SPINCOUNT=300000
                  --decode-overlap on --ffmpeg-threads 0": decoding beside the
                  network, FFmpeg's own thread count and libgomp's default spin,
                  as st3d ran before 2026-12-04 20:00 UTC
(the st3d rows: a warm-up features run, then --rounds rounds of bench and
features, and a last bench; the best of each, and each features run over
the mean of the two benches around it, whose median is the issue's ratio;
then the extra rows: --pair-with as pairs of a features run and a run with
those options, --conv direct runs)
"""
import argparse
import json
import os
import re
import shlex
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "torch"))


BENCH_WARMUP = 2  # st3d bench's untimed runs (its CPU row counts them)


def child_cpu():
    """CPU seconds (user + system) of every child process waited for so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def sh(cmd, **kw):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise SystemExit("failed: %s\n%s" % (" ".join(map(str, cmd)), p.stderr[-2000:]))
    return p


def make_video(path, size, seconds, preset="medium"):
    sh(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
        "testsrc=size=%s:rate=25" % size, "-t", seconds, "-c:v", "libx264", "-preset", preset,
        "-bf", 3, "-pix_fmt", "yuv420p", path])


def joined(values, fmt="%.2f"):
    """The values as one space-separated string."""
    return " ".join(fmt % x for x in values)


def result_field(out, key):
    """A number of st3d bench's RESULT line (clips_per_s, mean_clips_per_s)."""
    return float(re.search(r"^RESULT .*\b%s=([0-9.]+)" % key, out, re.M).group(1))


def cpu_name():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def peak_rss_mb(cmd):
    p = sh(["/usr/bin/time", "-f", "MAXRSS %M"] + cmd)
    return [int(l.split()[1]) for l in p.stderr.splitlines() if l.startswith("MAXRSS")][-1] / 1024


def decoded_frames(video, decoder):
    """The video's frames as PIL RGB images, in order."""
    from PIL import Image
    if decoder == "av":
        import av
        with av.open(video) as c:
            for fr in c.decode(video=0):
                yield fr.to_image()
        return
    import cv2
    cap = cv2.VideoCapture(video)
    if not cap.isOpened():
        raise SystemExit("cv2 cannot open %s" % video)
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        yield Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()


def torch_companion(video, weights, batch, threads, optimized=False, decoder="av"):
    """Clips/s of the companion's pipeline in PyTorch, decoding included;
    optimized: the network frozen and optimized for inference first."""
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
    with torch.no_grad():
        for img in decoded_frames(video, decoder):
            frames.append(transform(img))
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


def memory_rows(st3d, w, tmp, long_minutes, threads):
    """Peak RSS of st3d features on a generated 1-minute and a long video."""
    rss = {}
    for name, minutes in (("1 min", 1.0), ("%g min" % long_minutes, long_minutes)):
        v = os.path.join(tmp, "m%g.mp4" % minutes)
        make_video(v, "96x64", int(minutes * 60), preset="ultrafast")
        rss[name] = peak_rss_mb([st3d, "features", "--weights", w, "--output",
                                 os.path.join(tmp, "m%g" % minutes), "--sample-size", 32,
                                 "--sample-duration", 8, "--stride", 250, "--threads",
                                 threads, v])
        os.remove(v)
    (s, ls), (l, ll) = list(rss.items())
    print("peak RSS of st3d features: %s %.1f MB, %s %.1f MB (%+.1f%%)"
          % (s, ls, l, ll, 100 * (ll - ls) / ls))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--st3d", default=os.path.join(HERE, "..", "build", "st3d"))
    ap.add_argument("--seconds", type=int, default=300)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--long-minutes", type=float, default=120)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--video")
    ap.add_argument("--decoder", choices=("av", "cv2"), default="av")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--no-direct", action="store_true")
    ap.add_argument("--pair-with", default="")
    a = ap.parse_args()
    st3d = os.path.abspath(a.st3d)
    print("load average at start: %.2f %.2f %.2f" % os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="st3d-classify-bench-") as tmp:
        w = os.path.join(tmp, "r18.safetensors")
        sh([st3d, "init", "--model", "resnet", "--model-depth", 18, "--n-classes", 400,
            "--output", w])
        if a.video:
            video = os.path.abspath(a.video)
        else:
            video = os.path.join(tmp, "video.mp4")
            make_video(video, "320x240", a.seconds)
        stem = os.path.splitext(os.path.basename(video))[0]

        def features(out, *extra, env=None):
            """Clips/s of one `st3d features` run, start-up included, and
            its clip count; env: variables added to the environment."""
            t0, c0 = time.time(), child_cpu()
            p = sh([st3d, "features", "--weights", w, "--output", out, "--batch-size",
                    a.batch, "--threads", a.threads, *extra, video],
                   env={**os.environ, **(env or {})})
            el = time.time() - t0
            n = len(json.load(open(os.path.join(out, stem + ".json")))["clips"])
            if not extra and not env:
                cpu["features"].append((child_cpu() - c0) / n)
                # the summary line: "...; network N s, waiting for clips W s)"
                m = re.search(r"network ([0-9.]+) s, waiting for clips ([0-9.]+) s", p.stderr)
                spans.append((el, float(m.group(1)), float(m.group(2))))
            return n / el, n

        def bench(clips):
            """`st3d bench --mode infer` over as many clips as features ran:
            (median, mean) clips/s."""
            c0 = child_cpu()
            runs = max(5, -(-clips // a.batch))
            p = sh([st3d, "bench", "--model", "resnet", "--model-depth", 18, "--batch", a.batch,
                    "--sample-duration", 16, "--sample-size", 112, "--mode", "infer", "--threads",
                    a.threads, "--runs", runs, "--warmup", BENCH_WARMUP])
            cpu["bench"].append((child_cpu() - c0) / ((runs + BENCH_WARMUP) * a.batch))
            return result_field(p.stdout, "clips_per_s"), result_field(p.stdout, "mean_clips_per_s")

        # CPU seconds per clip of each run: bench's over its warm-up runs too
        # (and its random initialization); features' with its start-up
        cpu = {"bench": [], "features": []}
        # wall, network and waiting seconds of each plain features run
        spans = []
        # a warm-up run (page cache, clip count), then --rounds rounds of
        # bench, features, each bench over as many clips as features ran,
        # and one more bench: each features run is compared with the mean
        # of the two benches around it.  Both are timed the same way, all
        # clips over all seconds (bench's mean; its median, the number it
        # prints first, drops the slow runs, which an end-to-end job cannot),
        # over about the same length of time, so that load from other
        # tenants (+-15-35 % between runs here) weighs on both alike.  One
        # difference stays: features' wall time includes its start-up (the
        # plan's build and prepare, about 0.35 s, 2% of a 300 s video),
        # bench's mean does not.  The extra rows run after these rounds.
        _, n = features(os.path.join(tmp, "warm"))
        benches, feat_rates = [bench(n)], []
        for r in range(a.rounds):
            feat_rates.append(features(os.path.join(tmp, "f%d" % r))[0])
            benches.append(bench(n))
        # --pair-with: pairs of (features, features OPTIONS)
        pair_opts = shlex.split(a.pair_with)
        pair_env = {}
        while pair_opts and re.match(r"^[A-Z_][A-Z0-9_]*=", pair_opts[0]):
            k, v = pair_opts.pop(0).split("=", 1)
            pair_env[k] = v
        pair_rates, pair_ratios, direct_rates = [], [], []
        for r in range(a.rounds if a.pair_with else 0):
            f = features(os.path.join(tmp, "p%d" % r))[0]
            pair_rates.append(features(os.path.join(tmp, "o%d" % r), *pair_opts, env=pair_env)[0])
            pair_ratios.append(pair_rates[-1] / f)
        for r in range(0 if a.no_direct else a.rounds):
            direct_rates.append(features(os.path.join(tmp, "d%d" % r), "--conv", "direct")[0])
        means = [b[1] for b in benches]
        around = [(means[r] + means[r + 1]) / 2 for r in range(a.rounds)]
        ratios = [f / b for f, b in zip(feat_rates, around)]
        med = statistics.median
        rows = [("st3d bench infer (network alone)", max(means),
                 "mean over %d clips, best of %s; medians %s"
                 % (n, joined(means), joined(b[0] for b in benches)))]
        rows.append(("st3d features (end to end)", max(feat_rates),
                     "best of %s" % joined(feat_rates)))
        rows.append(("  features / bench around it", med(ratios),
                     "x (median; rounds %s)" % joined(ratios, "%.3f")))
        ms_b, ms_f = ([1000 * x for x in cpu[k]] for k in ("bench", "features"))
        rows.append(("CPU ms per clip: bench, features", med(ms_b),
                     "ms, %.1f ms (medians; bench %s, features %s): features / bench %.3f"
                     % (med(ms_f), joined(ms_b, "%.1f"), joined(ms_f, "%.1f"),
                        med(ms_f) / med(ms_b))))
        walls, nets, waits = zip(*spans)
        others = [wall - net - wait for wall, net, wait in spans]
        rows.append(("  features: network, waiting", med(nets),
                     "s in the network, %.2f s waiting for clips, %.2f s else (start-up, "
                     "writing), of %.2f s (medians)" % (med(waits), med(others), med(walls))))
        if pair_rates:
            rows.append(("st3d features " + a.pair_with, max(pair_rates),
                         "best of %s; over the features run just before it %s (median %.3f)"
                         % (joined(pair_rates), joined(pair_ratios, "%.3f"),
                            med(pair_ratios))))
        if direct_rates:
            rows.append(("st3d features --conv direct", max(direct_rates),
                         "best of %s" % joined(direct_rates)))
        if not a.no_torch:
            for name, opt in (("PyTorch companion pipeline, eager", False),
                              ("PyTorch companion pipeline, optimized", True)):
                rate, _ = torch_companion(video, w, a.batch, a.threads, opt, a.decoder)
                rows.append((name, rate, "st3d features %.2fx" % (max(feat_rates) / rate)))
        print("CPU: %s, %d cores" % (cpu_name(), os.cpu_count()))
        print("resnet-18, batch %d, %d threads, %s (%d clips)"
              % (a.batch, a.threads, os.path.basename(a.video) if a.video else
                 "%d s of 320x240 H.264" % a.seconds, n))
        for name, rate, note in rows:
            unit = "" if note.startswith(("x ", "ms", "s ")) else " clips/s"
            print("%-36s %8.2f%s  %s" % (name, rate, unit, note))
        if not a.no_memory:
            memory_rows(st3d, w, tmp, a.long_minutes, a.threads)
    print("load average at end: %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
