#!/usr/bin/python3
"""Loader throughput: st3d's loader against a PyTorch DataLoader doing the
same work (the original code's VideoDataset: PIL frames, TemporalRandomCrop,
RandomResizedCrop(112, (0.25, 1), (3/4, 4/3)), RandomHorizontalFlip,
ToTensor, Normalize with Kinetics' mean/std), 16 x 112 x 112 clips, batch 8,
from the same JPEG folders, with 1 and 2 workers; st3d also from the MP4s.
Next to it, the network's training throughput (`st3d bench --model resnet
--model-depth 18 --batch 8 --sample-duration 16 --sample-size 112 --mode
train --threads 2 --runs 3 --warmup 1`, when it runs in time; otherwise the
issue's figure, PyTorch ResNet-18 training 3.2 clips/s).

The videos are UCF-101-like: 320x240, 25 fps, --duration seconds (5), H.264
by libx264 with its defaults (a key frame every 250 frames, so one GOP per
video up to 10 s) unless --gop sets the key frame interval.  --rows picks
what to measure (e.g. --rows st3d-mp4 to time only the MP4 rows).

On a shared machine, --repeat N runs N interleaved rounds over the rows and
keeps each row's best, and --compare PATH times a second st3d build (rows
"st3d loader before") in the same rounds.  Each row also reports the CPU
time it spent per clip (all threads and worker processes; for st3d without
the start-up, which indexes every video once), which the machine's other
load barely changes; "x PyTorch (CPU)" is PyTorch's CPU ms per clip over
the row's.

usage: /usr/bin/python3 bench/loader_bench.py [--st3d PATH] [--net-st3d PATH] [--videos N]
       [--duration S] [--gop N] [--seconds S] [--rows LIST] [--workers LIST] [--repeat N]
       [--compare PATH] [--no-net] [--results bench/RESULTS.md [--section TITLE] [--note TEXT]]
"""
import argparse
import math
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.utils.data as tud
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image

MEAN, STD = [0.4345, 0.4051, 0.3775], [0.2768, 0.2713, 0.2737]


class FolderClips(tud.Dataset):
    """The original VideoDataset + VideoLoader(PIL) + training transforms."""

    def __init__(self, folders):
        self.items = [(f, len([x for x in os.listdir(f) if "image" in x])) for f in folders]
        self.norm = T.Normalize(MEAN, STD)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        folder, n = self.items[i]
        fr = list(range(1, n + 1))
        b = random.randint(0, max(0, len(fr) - 16 - 1))
        clip_idx = fr[b:b + 16]
        for k in clip_idx:  # loop padding
            if len(clip_idx) >= 16:
                break
            clip_idx.append(k)
        imgs = []
        for k in clip_idx:
            with open(os.path.join(folder, "image_%05d.jpg" % k), "rb") as f:
                with Image.open(f) as im:
                    imgs.append(im.convert("RGB"))
        return self.transform(imgs), 0

    def transform(self, imgs):
        crop = T.RandomResizedCrop.get_params(imgs[0], (0.25, 1.0), (0.75, 1 / 0.75))
        flip = random.random() < 0.5
        out = []
        for im in imgs:
            im = TF.resized_crop(im, *crop, [112, 112], T.InterpolationMode.BILINEAR)
            if flip:
                im = TF.hflip(im)
            out.append(self.norm(TF.to_tensor(im)))
        return torch.stack(out, 0).permute(1, 0, 2, 3)


class VideoClips(FolderClips):
    """The same clips decoded from the MP4s by PyTorch's own video reader
    (torchvision.io.read_video, PyAV backend: it seeks to the key frame
    before the clip and decodes from there), then the same PIL transforms."""

    def __init__(self, files, n_frames, fps):
        self.items = [(f, n_frames) for f in files]
        self.fps = fps
        self.norm = T.Normalize(MEAN, STD)

    def __getitem__(self, i):
        import torchvision.io
        path, n = self.items[i]
        b = random.randint(0, max(0, n - 16 - 1))
        v, _, _ = torchvision.io.read_video(path, start_pts=b / self.fps,
                                            end_pts=(b + 15.5) / self.fps, pts_unit="sec")
        imgs = [Image.fromarray(f.numpy()) for f in v[:16]]
        for k in range(16 - len(imgs)):  # loop padding
            imgs.append(imgs[k])
        return self.transform(imgs), 0


def cpu_seconds(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def torch_rate(ds, workers, seconds):
    """(clips/s, CPU ms per clip of the main process and its workers)."""
    torch.set_num_threads(1)
    dl = tud.DataLoader(ds, batch_size=8, shuffle=True, num_workers=workers, drop_last=False,
                        persistent_workers=True)
    c0 = cpu_seconds(resource.RUSAGE_SELF) + cpu_seconds(resource.RUSAGE_CHILDREN)
    n, total, t0, warm, rate = 0, 0, None, 0, None
    while rate is None:
        for x, _ in dl:
            total += x.shape[0]
            if t0 is None:
                warm += 1
                if warm == 2:  # skip worker start-up
                    t0 = time.time()
                continue
            n += x.shape[0]
            if time.time() - t0 >= seconds:
                rate = n / (time.time() - t0)
                break
    if getattr(dl, "_iterator", None) is not None:  # join the workers: their CPU time counts
        dl._iterator._shutdown_workers()
    c1 = cpu_seconds(resource.RUSAGE_SELF) + cpu_seconds(resource.RUSAGE_CHILDREN)
    return rate, (c1 - c0) * 1000 / total


def st3d_cpu(cmd):
    """(printed clip count, CPU seconds) of an st3d loader-bench run."""
    c0 = cpu_seconds(resource.RUSAGE_CHILDREN)
    p = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return (int(re.search(r"loader: (\d+) clips", p.stdout).group(1)),
            cpu_seconds(resource.RUSAGE_CHILDREN) - c0, p.stdout)


def st3d_rate(st3d, inputs, threads, seconds, extra=()):
    """(clips/s, CPU ms per clip, not counting the start-up: reading the
    dataset, which indexes every video once, measured by a run of 0 epochs)."""
    def cmd(epochs):
        return [st3d, "loader-bench", "--batch-size", "8", "--n-threads", str(threads),
                "--sample-size", "112", "--sample-duration", "16", "--seconds", str(seconds),
                "--n-epochs", str(epochs), "--quiet"] + list(extra) + [str(x) for x in inputs]
    _, startup, _ = st3d_cpu(cmd(0))
    n, cpu, out = st3d_cpu(cmd(1000))
    return float(re.search(r"([\d.]+) clips/s", out).group(1)), (cpu - startup) * 1000 / n


NET_ARGS = ["bench", "--model", "resnet", "--model-depth", "18", "--batch", "8",
            "--sample-duration", "16", "--sample-size", "112", "--mode", "train",
            "--threads", "2", "--runs", "3", "--warmup", "1"]


def network_rate(st3d, timeout):
    cmd = [st3d] + NET_ARGS
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        m = re.findall(r"clips_per_s=([\d.]+)", p.stdout) or \
            re.findall(r"([\d.]+) clips/s", p.stdout + p.stderr)
        if p.returncode == 0 and m:
            return float(m[-1]), "`st3d %s`, median of 3 runs" % " ".join(NET_ARGS)
        why = "st3d bench failed"
    except subprocess.TimeoutExpired:
        why = "st3d bench did not finish in %d s" % timeout
    return 3.2, "issue's figure for PyTorch ResNet-18 training (%s)" % why


def load_average():
    return os.getloadavg()[0]


def replace_section(path, title, body):
    """Replaces the section `## title` of path (up to the next `## `) with
    body, or appends it when there is none."""
    text = Path(path).read_text() if os.path.exists(path) else ""
    head = "## " + title + "\n"
    i = text.find(head)
    if i < 0:
        text = text.rstrip("\n") + "\n\n" + head + body
    else:
        j = text.find("\n## ", i + len(head))
        text = text[:i] + head + body + (text[j:] if j >= 0 else "")
    Path(path).write_text(text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--st3d", default=str(Path(__file__).resolve().parent.parent / "build-data" / "st3d"))
    ap.add_argument("--net-st3d", default=None, help="st3d for the network row (default --st3d)")
    ap.add_argument("--videos", type=int, default=24)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--gop", type=int, default=0, help="x264 key frame interval (0: x264's 250)")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rows", default="st3d-jpeg,st3d-mp4,torch",
                    help="comma-separated subset of st3d-jpeg, st3d-mp4, torch (JPEG folders), "
                         "torch-mp4 (torchvision.io.read_video, needs python3-av)")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--net-timeout", type=int, default=300)
    ap.add_argument("--no-net", action="store_true", help="use the issue's figure, skip st3d bench")
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds over all rows; each row reports its best round")
    ap.add_argument("--compare", default=None,
                    help="another st3d build (e.g. the previous commit's) timed in the same rounds")
    ap.add_argument("--results", default=None)
    ap.add_argument("--section", default="Loader")
    ap.add_argument("--note", default="", help="text appended to the section")
    a = ap.parse_args()
    rows_wanted = set(a.rows.split(","))
    loads = [load_average()]
    with tempfile.TemporaryDirectory(prefix="st3d-loader-bench-") as d:
        d = Path(d)
        (d / "mp4" / "c").mkdir(parents=True)
        gop = ["-g", str(a.gop)] if a.gop > 0 else []
        for i in range(a.videos):  # 320x240, 25 fps: UCF-101-like
            subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                            "testsrc2=size=320x240:rate=25:duration=%g" % a.duration, "-vf",
                            "noise=alls=12:allf=t+u,hue=H=%d*t" % (i + 1), "-c:v", "libx264",
                            "-pix_fmt", "yuv420p"] + gop +
                           [str(d / "mp4" / "c" / ("v%02d.mp4" % i))], check=True)
        subprocess.run([a.st3d, "extract-frames", str(d / "mp4"), str(d / "jpg"), "--size", "240",
                        "--n-jobs", "2"], check=True, capture_output=True)
        folders = sorted(str(p) for p in (d / "jpg" / "c").iterdir())
        mp4s = sorted(str(p) for p in (d / "mp4" / "c").iterdir())
        builds = [("st3d loader", a.st3d)] + ([("st3d loader before", a.compare)] if a.compare else [])
        jobs = []  # (row name, workers, measurement)
        for w in (int(x) for x in a.workers.split(",")):
            for label, exe in builds:
                if "st3d-jpeg" in rows_wanted:
                    jobs.append((label + ", JPEG folders", w,
                                 lambda w=w, exe=exe: st3d_rate(exe, folders, w, a.seconds)))
                if "st3d-mp4" in rows_wanted:
                    jobs.append((label + ", MP4 (H.264)", w,
                                 lambda w=w, exe=exe: st3d_rate(exe, mp4s, w, a.seconds)))
            if "torch" in rows_wanted:
                jobs.append(("PyTorch DataLoader + PIL, JPEG folders", w,
                             lambda w=w: torch_rate(FolderClips(folders), w, a.seconds)))
            if "torch-mp4" in rows_wanted:
                n_frames = int(round(a.duration * 25))
                jobs.append(("PyTorch DataLoader + read_video (PyAV), MP4 (H.264)", w,
                             lambda w=w: torch_rate(VideoClips(mp4s, n_frames, 25), w,
                                                    a.seconds)))
        best, cpu = {}, {}
        for _ in range(max(1, a.repeat)):  # rounds interleave the rows: load hits all alike
            for name, w, measure in jobs:
                loads.append(load_average())
                r, c = measure()
                best[(name, w)] = max(best.get((name, w), 0.0), r)
                cpu[(name, w)] = min(cpu.get((name, w), float("inf")), c)
        rows = [(name, w, best[(name, w)], cpu[(name, w)]) for name, w, _ in jobs]
    loads.append(load_average())
    if a.no_net:
        net, net_src = 3.2, "issue's figure for PyTorch ResNet-18 training"
    else:
        net, net_src = network_rate(a.net_st3d or a.st3d, a.net_timeout)
    lines = ["| source | workers | clips/s | x network | x PyTorch | CPU ms/clip | x PyTorch (CPU) |",
             "|---|---|---|---|---|---|---|"]
    # "x PyTorch": against the PyTorch row reading the same kind of files
    # (JPEG folders or MP4s) with as many workers
    def key(name, w):
        return ("MP4" in name, w)
    ref = {key(name, w): (r, c) for (name, w, r, c) in rows if name.startswith("PyTorch")}
    for name, w, r, c in rows:
        torch_row, k = name.startswith("PyTorch"), key(name, w)
        vs = "1" if torch_row else ("%.2f" % (r / ref[k][0]) if k in ref else "-")
        vc = "1" if torch_row else ("%.2f" % (ref[k][1] / c) if k in ref else "-")
        lines.append("| %s | %d | %.1f | %.1f | %s | %.1f | %s |" % (name, w, r, r / net, vs, c, vc))
    lines.append("")
    lines.append("Network training throughput: %.2f clips/s (%s)." % (net, net_src))
    text = "\n".join(lines)
    print(text)
    print("load average (1 min) during the run: %.1f .. %.1f" % (min(loads), max(loads)))
    if a.results:
        cmd = "/usr/bin/python3 bench/loader_bench.py " + " ".join(sys.argv[1:])
        body = ("\nClips of 16 x 112 x 112 with the training augmentations "
                "(TemporalRandomCrop, RandomResizedCrop(0.25, 3/4), flip, Kinetics mean/std), "
                "batch 8, %d UCF-101-like videos (320x240, 25 fps, %g s, H.264 with %s; JPEG "
                "folders made by `st3d extract-frames --size 240`), %.0f s per row%s, %s, "
                "%d cores, 1-minute load average %.1f .. %.1f during the run.\n"
                "Command: `%s`\n\n"
                % (a.videos, a.duration, "a key frame every %d frames" % a.gop if a.gop > 0
                   else "x264's default GOP (250 frames)", a.seconds,
                   ", best of %d interleaved rounds" % a.repeat if a.repeat > 1 else "",
                   time.strftime("%Y-%m-%d"), os.cpu_count(), min(loads), max(loads),
                   cmd.strip()))
        replace_section(a.results, a.section,
                        body + text + "\n" + (("\n" + a.note + "\n") if a.note else ""))


if __name__ == "__main__":
    main()
