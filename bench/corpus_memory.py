#!/usr/bin/python3
"""Memory over a long corpus run: `st3d features` over 1,000 short videos,
its resident memory sampled while it runs (issue 9's row: RSS after the last
video within 5 % of RSS after the 100th).

The videos are the built-in motion dataset (`st3d make-dataset motion`,
MPEG-4, --size pixels, --frames frames each, 8 classes x 125); the network
a ResNet-18 (`st3d init`, random weights) on 16 x --clip x --clip clips.
A sampler reads /proc/PID/status (VmRSS) every 20 ms and counts the
finished outputs (NAME.npy) in the output folder: the row gives RSS when
100 and when all 1,000 videos were done, and the peak (VmHWM).

usage: /usr/bin/python3 bench/corpus_memory.py [--st3d build/st3d] [--videos 1000]
       [--size 64] [--frames 32] [--clip 32] [--threads 2] [--work DIR]
"""
import argparse
import os
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def status_kb(pid, key):
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--st3d", default=os.path.join(HERE, "..", "build", "st3d"))
    ap.add_argument("--videos", type=int, default=1000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--clip", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", help="keep the dataset here (default: a temporary folder)")
    a = ap.parse_args()
    per_class = (a.videos + 7) // 8
    work = a.work or tempfile.mkdtemp(prefix="st3d-corpus-")
    data = os.path.join(work, "motion")
    if not os.path.isdir(os.path.join(data, "videos")):
        subprocess.run([a.st3d, "make-dataset", "motion", data, "--train-per-class", str(per_class),
                        "--test-per-class", "1", "--size", str(a.size), "--frames", str(a.frames)],
                       check=True, capture_output=True)
    videos = sorted(os.path.join(r, f) for r, _, fs in os.walk(os.path.join(data, "videos"))
                    for f in fs if f.endswith(".avi"))[:a.videos]
    listing = os.path.join(work, "list.txt")
    open(listing, "w").write("\n".join(videos) + "\n")
    weights = os.path.join(work, "r18.safetensors")
    subprocess.run([a.st3d, "init", "--model", "resnet", "--model-depth", "18", "--n-classes", "8",
                    "--output", weights], check=True, capture_output=True)
    out = os.path.join(work, "features")
    subprocess.run(["rm", "-rf", out])
    os.makedirs(out)
    t0 = time.time()
    p = subprocess.Popen([a.st3d, "features", "--weights", weights, "--output", out,
                          "--sample-size", str(a.clip), "--threads", str(a.threads), listing],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    at = {}          # videos done -> RSS (kB) when first seen
    hwm = 0
    while p.poll() is None:
        rss = status_kb(p.pid, "VmRSS")
        hwm = max(hwm, status_kb(p.pid, "VmHWM") or 0)
        done = sum(1 for f in os.listdir(out) if f.endswith(".npy"))
        if rss is not None and done not in at:
            at[done] = rss
        time.sleep(0.02)
    secs = time.time() - t0
    if p.returncode != 0:
        raise SystemExit("st3d features exited with %d" % p.returncode)
    n = len(videos)
    cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][0]
    print("CPU: %s; %d videos (%dx%d, %d frames, MPEG-4), ResNet-18, 16x%dx%d clips, %d threads, %.0f s"
          % (cpu, n, a.size, a.size, a.frames, a.clip, a.clip, a.threads, secs))
    # RSS when each hundredth video was first seen done (the last sample may
    # fall in the process's tear-down, so the one before the end is shown too)
    counts = sorted(at)
    marks = [next((c for c in counts if c >= k), None) for k in range(100, n + 1, 100)]
    marks = [m for m in marks if m is not None]
    before_end = [c for c in counts if c < n]
    if before_end and before_end[-1] not in marks:
        marks.append(before_end[-1])
    marks = sorted(set(marks))
    print("| videos done | " + " | ".join(str(m) for m in marks) + " |")
    print("| --- | " + " | ".join("---" for _ in marks) + " |")
    print("| RSS (MiB) | " + " | ".join("%.1f" % (at[m] / 1024) for m in marks) + " |")
    r100, rend = at[marks[0]] / 1024, at[before_end[-1] if before_end else marks[-1]] / 1024
    print("RSS near the end / after video %d: %.3f; peak (VmHWM) %.1f MiB"
          % (marks[0], rend / r100, hwm / 1024))


if __name__ == "__main__":
    main()
