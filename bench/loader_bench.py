#!/usr/bin/python3
"""Loader throughput: st3d's loader against a PyTorch DataLoader doing the
same work (the original code's VideoDataset: PIL frames, TemporalRandomCrop,
RandomResizedCrop(112, (0.25, 1), (3/4, 4/3)), RandomHorizontalFlip,
ToTensor, Normalize with Kinetics' mean/std), 16 x 112 x 112 clips, batch 8,
from the same JPEG folders, with 1 and 2 workers; st3d also from the MP4s.
Next to it, the network's training throughput (`st3d bench`, when it runs
in time; otherwise the issue's figure, PyTorch ResNet-18 training 3.2 clips/s).

usage: /usr/bin/python3 bench/loader_bench.py [--st3d PATH] [--videos N] [--seconds S]
       [--results bench/RESULTS.md]
"""
import argparse
import math
import os
import random
import re
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
        crop = T.RandomResizedCrop.get_params(imgs[0], (0.25, 1.0), (0.75, 1 / 0.75))
        flip = random.random() < 0.5
        out = []
        for im in imgs:
            im = TF.resized_crop(im, *crop, [112, 112], T.InterpolationMode.BILINEAR)
            if flip:
                im = TF.hflip(im)
            out.append(self.norm(TF.to_tensor(im)))
        return torch.stack(out, 0).permute(1, 0, 2, 3), 0


def torch_rate(folders, workers, seconds):
    torch.set_num_threads(1)
    ds = FolderClips(folders)
    dl = tud.DataLoader(ds, batch_size=8, shuffle=True, num_workers=workers, drop_last=False,
                        persistent_workers=True)
    n, t0, warm = 0, None, 0
    while True:
        for x, _ in dl:
            if t0 is None:
                warm += 1
                if warm == 2:  # skip worker start-up
                    t0 = time.time()
                continue
            n += x.shape[0]
            if time.time() - t0 >= seconds:
                return n / (time.time() - t0)


def st3d_rate(st3d, inputs, threads, seconds, extra=()):
    cmd = [st3d, "loader-bench", "--batch-size", "8", "--n-threads", str(threads),
           "--sample-size", "112", "--sample-duration", "16", "--seconds", str(seconds),
           "--n-epochs", "1000", "--quiet"] + list(extra) + [str(x) for x in inputs]
    p = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return float(re.search(r"([\d.]+) clips/s", p.stdout).group(1))


def network_rate(st3d, timeout):
    cmd = [st3d, "bench", "--model", "resnet", "--model-depth", "18", "--batch", "8",
           "--sample-duration", "16", "--sample-size", "112", "--mode", "train", "--threads", "2"]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        m = re.findall(r"([\d.]+) clips/s", p.stdout + p.stderr)
        if p.returncode == 0 and m:
            return float(m[-1]), "st3d bench (ResNet-18 train, batch 8, 2 threads)"
        why = "st3d bench failed"
    except subprocess.TimeoutExpired:
        why = "st3d bench did not finish in %d s" % timeout
    return 3.2, "issue's figure for PyTorch ResNet-18 training (%s)" % why


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--st3d", default=str(Path(__file__).resolve().parent.parent / "build-data" / "st3d"))
    ap.add_argument("--videos", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--net-timeout", type=int, default=120)
    ap.add_argument("--results", default=None)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="st3d-loader-bench-") as d:
        d = Path(d)
        (d / "mp4" / "c").mkdir(parents=True)
        for i in range(a.videos):  # 320x240, 25 fps, 5 s: UCF-101-like
            subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                            "testsrc2=size=320x240:rate=25:duration=5", "-vf",
                            "noise=alls=12:allf=t+u,hue=H=%d*t" % (i + 1), "-c:v", "libx264",
                            "-pix_fmt", "yuv420p", str(d / "mp4" / "c" / ("v%02d.mp4" % i))],
                           check=True)
        subprocess.run([a.st3d, "extract-frames", str(d / "mp4"), str(d / "jpg"), "--size", "240",
                        "--n-jobs", "2"], check=True, capture_output=True)
        folders = sorted(str(p) for p in (d / "jpg" / "c").iterdir())
        mp4s = sorted(str(p) for p in (d / "mp4" / "c").iterdir())
        rows = []
        for w in (1, 2):
            rows.append(("st3d loader, JPEG folders", w, st3d_rate(a.st3d, folders, w, a.seconds)))
            rows.append(("st3d loader, MP4 (H.264)", w, st3d_rate(a.st3d, mp4s, w, a.seconds)))
            rows.append(("PyTorch DataLoader + PIL, JPEG folders", w,
                         torch_rate(folders, w, a.seconds)))
    net, net_src = network_rate(a.st3d, a.net_timeout)
    lines = ["| source | workers | clips/s | x network | x PyTorch |", "|---|---|---|---|---|"]
    ref = {w: r for (name, w, r) in rows if name.startswith("PyTorch")}
    for name, w, r in rows:
        lines.append("| %s | %d | %.1f | %.1f | %s |" % (
            name, w, r, r / net, "%.2f" % (r / ref[w]) if not name.startswith("PyTorch") else "1"))
    lines.append("")
    lines.append("Network training throughput: %.2f clips/s (%s)." % (net, net_src))
    text = "\n".join(lines)
    print(text)
    if a.results:
        head = ("\n## Loader\n\nClips of 16 x 112 x 112 with the training augmentations "
                "(TemporalRandomCrop, RandomResizedCrop(0.25, 3/4), flip, Kinetics mean/std), "
                "batch 8, %d UCF-101-like videos (320x240, 25 fps, 5 s; JPEG folders made by "
                "`st3d extract-frames --size 240`), %.0f s per row, %s, %d cores.\n"
                "Command: `/usr/bin/python3 bench/loader_bench.py --results bench/RESULTS.md`\n\n"
                % (a.videos, a.seconds, time.strftime("%Y-%m-%d"), os.cpu_count()))
        with open(a.results, "a") as f:
            f.write(head + text + "\n")


if __name__ == "__main__":
    main()
