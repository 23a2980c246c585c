"""The loader reading MP4 files against a reference built from ffmpeg's own
decoding: every clip `st3d sample-clips` makes from H.264 videos (B-frames,
one GOP or several, portrait) must equal torchvision's transform of the
frames `ffmpeg -pix_fmt rgb24` decodes, with the crop and flip the loader
records.  The runs cover what the loader's video caches and decoder
shortcuts touch: several epochs (index cache hits, the probe skipped on
reopen), videos cut into several items (a worker reusing an open decoder),
sliding windows, 1 and 2 worker threads (identical batches).  Given a
second argument, the video_cache_test driver, runs it on every video.

usage: test_loader_video.py ST3D [VIDEO_CACHE_TEST]"""
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image

from common import Checker, ffmpeg, ffmpeg_rgb, run, st3d_path, tmpdir

ST3D = st3d_path()
C = Checker()
MEAN, STD = [0.4345, 0.4051, 0.3775], [0.2768, 0.2713, 0.2737]
S, D = 32, 8  # sample size, sample duration


def make_videos(d):
    """(path, width, height) of the test videos."""
    vids = []
    specs = [("a", "160x120", 3, []),                     # x264 defaults: one GOP, B-pyramid
             ("b", "128x96", 3, ["-g", "12"]),            # key frames every 12 frames
             ("c", "96x128", 2, ["-bf", "0"]),            # portrait, no B-frames
             ("d", "112x80", 4, ["-bf", "5", "-refs", "6"])]
    for name, size, secs, opts in specs:
        p = d / (name + ".mp4")
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=%s:rate=25:duration=%d" % (size, secs), "-vf",
               "noise=alls=20:allf=t+u", "-c:v", "libx264", "-pix_fmt", "yuv420p", *opts, p)
        w, h = map(int, size.split("x"))
        vids.append((p, w, h))
    return vids


def reference(frames, rec):
    x, y, cw, ch = rec["crop"]
    out = []
    for f in frames:
        img = F.resized_crop(Image.fromarray(f), y, x, ch, cw, [S, S], T.InterpolationMode.BILINEAR)
        if rec["flip"]:
            img = F.hflip(img)
        out.append(F.normalize(F.to_tensor(img), MEAN, STD))
    return torch.stack(out, 0).permute(1, 0, 2, 3).numpy()


def clip_frames(rec):
    """1-based frame numbers of a clip: [begin, end), loop-padded to D."""
    fr = list(range(rec["begin"], rec["end"]))
    i = 0
    while len(fr) < D:
        fr.append(fr[i])
        i += 1
    return fr


def sample_clips(vids, out, *opts):
    run([ST3D, "sample-clips", "--out-dir", out, "--sample-size", str(S), "--sample-duration",
         str(D), "--manual-seed", "5", "--quiet"] + [str(o) for o in opts] + [str(v[0]) for v in vids])
    recs = [json.loads(l) for l in open(out / "clips.jsonl")]
    batches = {p.name: np.load(p) for p in sorted(out.glob("batch_*.npy"))}
    return recs, batches


def case(name, vids, ref_frames, out, *opts):
    recs, batches = sample_clips(vids, out, *opts)
    worst, n = 0.0, 0
    for r in recs:
        ours = batches["batch_%05d.npy" % r["batch"]][r["index"]]
        allf = ref_frames[r["sample"]]
        ref = reference([allf[k - 1] for k in clip_frames(r)], r)
        worst = max(worst, float(np.abs(ref - ours).max()))
        n += 1
    C.check(n > 0 and worst <= 1e-5, "%s: %d clips equal the reference from ffmpeg's frames "
            "(max difference %.3g)" % (name, n, worst))
    return batches


def main():
    with tmpdir() as d:
        d = Path(d)
        vids = make_videos(d)
        ref_frames = [ffmpeg_rgb(p).reshape(-1, h, w, 3) for p, w, h in vids]
        b1 = case("random crop, 3 epochs, 1 thread", vids, ref_frames, d / "r1", "--batch-size",
                  "3", "--n-threads", "1", "--n-epochs", "3")
        b2 = case("random crop, 3 epochs, 2 threads", vids, ref_frames, d / "r2", "--batch-size",
                  "3", "--n-threads", "2", "--n-epochs", "3")
        C.check(b1.keys() == b2.keys() and all(np.array_equal(b1[k], b2[k]) for k in b1),
                "1 and 2 threads give the same batches")
        case("even crop, 5 clips in items of 2, 1 thread", vids, ref_frames, d / "e1",
             "--batch-size", "2", "--n-threads", "1", "--n-epochs", "2", "--train-t-crop", "even",
             "--n-val-samples", "5")
        case("sliding windows in items of 3, 2 threads", vids, ref_frames, d / "s2",
             "--batch-size", "3", "--n-threads", "2", "--train-t-crop", "sliding",
             "--inference-stride", "5", "--no-shuffle")
        case("center crop in time, 2 epochs, 2 threads", vids, ref_frames, d / "c2",
             "--batch-size", "4", "--n-threads", "2", "--n-epochs", "2", "--train-t-crop",
             "center")
        if len(sys.argv) > 2:  # the cache's own checks, on each video
            for p, _, _ in vids:
                r = run([sys.argv[2], str(p)], check=False)
                C.check(r.returncode == 0, "video_cache_test %s\n%s" % (p.name, r.stdout.strip()))
    C.finish()


main()
