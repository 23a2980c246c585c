"""st3d's temporal and spatial transforms against references: the temporal
rules of the original temporal_transforms.py written out again in Python,
and torchvision / PIL applied to the same JPEG frames with the same random
choices (which `st3d sample-clips` records per clip).  Also checks seeding:
same seed -> same batches, whatever the number of worker threads."""
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image

from common import Checker, run, st3d_path, tmpdir
from common import loop_padding as loop, sliding_window as ref_windows

ST3D = st3d_path()
TOOL = sys.argv[2] if len(sys.argv) > 2 else "temporal_tool"
C = Checker()

# ------------------------------------------------------------ temporal refs


def ref_center(fr, size):
    c = len(fr) // 2
    b = max(0, c - size // 2)
    return [loop(fr[b:min(b + size, len(fr))], size)]


def ref_begin(fr, size):
    return [loop(fr[:size], size)]


def ref_even(fr, size, k):
    step = max(1, math.ceil((len(fr) - 1 - size) / (k - 1))) if k > 1 else 1
    return ref_windows(fr, size, step, k)


def st3d_segment(b, e, mode, size, tstride=1, extra=(), seed=1):
    """One segment through `st3d sample-clips --segment` (the CLI's path)."""
    p = run([ST3D, "sample-clips", "--segment", "%d:%d" % (b, e), "--train-t-crop", mode,
             "--sample-duration", str(size), "--sample-t-stride", str(tstride),
             "--manual-seed", str(seed)] + [str(x) for x in extra])
    return [[int(x) for x in l.split()] for l in p.stdout.splitlines() if l.strip()]


def tool_segments(queries):
    """Many segments in one process (temporal_tool.c, st3d's own temporal
    transforms and seeding): each query is (b, e, mode, size, tstride,
    n_clips, window_stride, seed); returns the clips of each."""
    text = "".join("%d %d %s %d %d %d %d %d\n" % q for q in queries)
    p = run([TOOL], input=text)
    out, cur = [], []
    for line in p.stdout.splitlines():
        if line == "end":
            out.append(cur)
            cur = []
        elif line.strip():
            cur.append([int(x) for x in line.split()])
    assert len(out) == len(queries), (len(out), len(queries))
    return out


def temporal_tests():
    # every query and its reference; the random crop's references are the
    # set of allowed clips
    queries, refs = [], []
    for (b, e) in [(1, 2), (1, 4), (1, 17), (1, 18), (1, 40), (5, 100), (1, 301)]:
        for size in (4, 16):
            for ts in (1, 2):
                fr = list(range(b, e))[::ts]
                queries += [(b, e, "center", size, ts, 1, 0, 1), (b, e, "begin", size, ts, 1, 0, 1)]
                refs += [("exact", ref_center(fr, size)), ("exact", ref_begin(fr, size))]
                for k in (1, 3, 5):
                    queries.append((b, e, "even", size, ts, k, 0, 1))
                    refs.append(("exact", ref_even(fr, size, k)))
                for st in (0, 5):
                    queries.append((b, e, "sliding", size, ts, 1, st, 1))
                    refs.append(("exact", ref_windows(fr, size, st or size, 10 ** 9)))
                # random: must be one of the allowed starts, and seeds must vary it
                rand_end = max(0, len(fr) - size - 1)
                allowed = [loop(fr[s:min(s + size, len(fr))], size) for s in range(rand_end + 1)]
                for seed in range(1, 12):
                    queries.append((b, e, "random", size, ts, 1, 0, seed))
                    refs.append(("random", allowed, rand_end))
    got = tool_segments(queries)
    bad, seen = [], {}
    for q, ref, g in zip(queries, refs, got):
        if ref[0] == "exact" and g != ref[1]:
            bad.append(q)
        if ref[0] == "random":
            if len(g) != 1 or g[0] not in ref[1]:
                bad.append(q)
            elif ref[2] >= 3:
                seen.setdefault(q[:5], set()).add(tuple(g[0]))
    bad += [("random never varies",) + k for k, s in seen.items() if len(s) < 2]
    C.check(not bad, "temporal crops equal the reference rules, %d queries (%s)"
            % (len(queries), bad[:3]))
    # the CLI's --segment gives the same clips (a sample of the queries)
    cli_bad = [q for q, g in list(zip(queries, got))[::37]
               if st3d_segment(q[0], q[1], q[2], q[3], q[4],
                               ["--n-val-samples", q[5], "--inference-stride", q[6]], q[7]) != g]
    C.check(not cli_bad, "st3d sample-clips --segment gives the same clips (%s)" % (cli_bad[:3],))


# ------------------------------------------------------------- spatial refs

MEANS = {"kinetics": ([0.4345, 0.4051, 0.3775], [0.2768, 0.2713, 0.2737]),
         "activitynet": ([0.4477, 0.4209, 0.3906], [0.2767, 0.2695, 0.2714]),
         "0.5": ([0.5] * 3, [0.5] * 3)}


def make_folder(d, w, h, n, seed, **save):
    """n JPEG frames of smooth gradients plus noise (so resampling shows);
    save: PIL's JPEG options (subsampling, progressive) and mode="L" for
    grayscale files."""
    mode = save.pop("mode", "RGB")
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(1, n + 1):
        base = np.stack([(xx * 255 // max(w - 1, 1) + 7 * i) % 256, (yy * 255 // max(h - 1, 1)),
                         ((xx + yy) * 3 + 11 * i) % 256], -1).astype(np.int32)
        img = np.clip(base + rng.integers(-40, 41, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).convert(mode).save(d / ("image_%05d.jpg" % i), quality=90, **save)


def corner_candidates(w, h):
    scales = [1.0]
    for _ in range(4):
        scales.append(scales[-1] * (1 / (2 ** (1 / 4))))
    out = set()
    for s in scales:
        c = int(min(w, h) * s)
        out |= {(int(round((w - c) / 2.)), int(round((h - c) / 2.)), c, c), (0, 0, c, c),
                (w - c, 0, c, c), (0, h - c, c, c), (w - c, h - c, c, c)}
    return out


def reference_clip(folder, frames, rec, cfg):
    S = cfg["size"]
    x, y, cw, ch = rec["crop"]
    mean, std = MEANS[cfg["mean"]]
    vs = cfg.get("value_scale", 1)
    mean = [m * vs for m in mean] if not cfg.get("no_mean") else [0, 0, 0]
    std = [s * vs for s in std] if not cfg.get("no_std") else [1, 1, 1]
    out = []
    for f in frames:
        with Image.open(folder / ("image_%05d.jpg" % f)) as im:
            img = im.convert("RGB")
        if cfg["crop"] == "corner":
            img = img.crop((x, y, x + cw, y + ch)).resize((S, S), Image.BILINEAR)
        elif cfg["crop"] == "random":
            img = F.resized_crop(img, y, x, ch, cw, [S, S], T.InterpolationMode.BILINEAR)
        else:
            img = T.CenterCrop(S)(T.Resize(S)(img))
        if rec["flip"]:
            img = F.hflip(img)
        if cfg.get("jitter"):
            for op in rec["order"]:
                fac = rec["jitter"][op]
                if op == 0 and cfg["jitter"][0] > 0:
                    img = F.adjust_brightness(img, fac)
                elif op == 1 and cfg["jitter"][1] > 0:
                    img = F.adjust_contrast(img, fac)
                elif op == 2 and cfg["jitter"][2] > 0:
                    img = F.adjust_saturation(img, fac)
                elif op == 3 and cfg["jitter"][3] > 0:
                    img = F.adjust_hue(img, fac)
        t = F.to_tensor(img) * vs
        out.append(F.normalize(t, mean, std))
    return torch.stack(out, 0).permute(1, 0, 2, 3).numpy()


def spatial_case(name, root, ann, cfg, opts, tol=1e-5):
    out = root / ("out_" + name)
    run([ST3D, "sample-clips", "--annotation-path", ann, "--video-path", root / "videos",
         "--out-dir", out, "--batch-size", "4", "--n-threads", "2", "--sample-size",
         str(cfg["size"]), "--sample-duration", "8", "--manual-seed", "7", "--quiet"] + opts)
    recs = [json.loads(l) for l in open(out / "clips.jsonl")]
    batches = {}
    worst, n, bad_choice = 0.0, 0, []
    db = json.load(open(ann))["database"]
    for r in recs:
        if r["batch"] not in batches:
            batches[r["batch"]] = np.load(out / ("batch_%05d.npy" % r["batch"]))
        ours = batches[r["batch"]][r["index"]]
        folder = root / "videos" / db[r["video_id"]]["annotations"]["label"] / r["video_id"]
        seg = db[r["video_id"]]["annotations"]["segment"]
        fr = list(range(seg[0], seg[1]))
        if cfg["t"] == "random":
            rand_end = max(0, len(fr) - 8 - 1)
            cands = [loop(fr[s:min(s + 8, len(fr))], 8) for s in range(rand_end + 1)]
            frames = [c for c in cands if c[0] == r["begin"]][0]
        elif cfg["t"] == "even":
            frames = ref_even(fr, 8, 3)[r["clip"]]
        else:
            frames = ref_center(fr, 8)[0]
        with Image.open(folder / "image_00001.jpg") as im:
            w, h = im.size
        if cfg["crop"] == "corner" and tuple(r["crop"]) not in corner_candidates(w, h):
            bad_choice.append(r["crop"])
        if cfg["crop"] == "random":
            x, y, cw, ch = r["crop"]
            area = cw * ch / (w * h)
            ok = (0 < cw <= w and 0 < ch <= h and x + cw <= w and y + ch <= h and
                  (0.25 * 0.97 <= area <= 1.0 and 0.75 * 0.9 <= cw / ch <= 1 / 0.75 / 0.9
                   or (x, y) == ((w - cw) // 2, (h - ch) // 2)))
            if not ok:
                bad_choice.append(r["crop"])
        ref = reference_clip(folder, frames, r, cfg)
        if ref.shape != ours.shape:
            C.check(False, "%s: shape %s vs %s" % (name, ours.shape, ref.shape))
            return recs
        worst = max(worst, float(np.abs(ref - ours).max()))
        n += 1
    C.check(n > 0 and worst <= tol, "%s: %d clips equal torchvision's within %g (max %.3g)"
            % (name, n, tol, worst))
    C.check(not bad_choice, "%s: every random choice is one the original could make %s"
            % (name, bad_choice[:3]))
    return recs


def main():
    temporal_tests()
    with tmpdir() as d:
        root = Path(d)
        db = {}
        sizes = [(160, 120, 30), (90, 130, 20), (97, 55, 5), (128, 128, 12)]
        for i, (w, h, n) in enumerate(sizes * 2):
            label = "class%d" % (i % 2)
            vid = "v%02d" % i
            make_folder(root / "videos" / label / vid, w, h, n, i)
            db[vid] = {"subset": "training" if i < 6 else "validation",
                       "annotations": {"label": label, "segment": [1, n + 1]}}
        # larger pictures in every JPEG layout PIL writes: st3d decodes only
        # the crop's part of each (libjpeg-turbo's cropped and skipped
        # decoding), which must give the full decode's pixels
        layouts = [(320, 240, {"subsampling": 0}), (240, 320, {"subsampling": 1}),
                   (330, 250, {"subsampling": 2}), (300, 200, {"progressive": True}),
                   (256, 192, {"mode": "L"})]
        for i, (w, h, save) in enumerate(layouts, start=len(sizes) * 2):
            label, vid = "class%d" % (i % 2), "v%02d" % i
            make_folder(root / "videos" / label / vid, w, h, 10, i, **save)
            db[vid] = {"subset": "training", "annotations": {"label": label, "segment": [1, 11]}}
        ann = root / "ann.json"
        json.dump({"labels": ["class0", "class1"], "database": db}, open(ann, "w"))
        spatial_case("corner", root, ann, {"size": 56, "crop": "corner", "t": "random",
                                           "mean": "kinetics"},
                     ["--train-crop", "corner"])
        spatial_case("random_jitter", root, ann,
                     {"size": 48, "crop": "random", "t": "random", "mean": "activitynet",
                      "value_scale": 255, "jitter": [0.4, 0.4, 0.4, 0.1]},
                     ["--train-crop", "random", "--colorjitter", "--colorjitter-brightness", "0.4",
                      "--colorjitter-contrast", "0.4", "--colorjitter-saturation", "0.4",
                      "--colorjitter-hue", "0.1", "--value-scale", "255", "--mean-dataset",
                      "activitynet"])
        spatial_case("random_exact", root, ann,
                     {"size": 64, "crop": "random", "t": "random", "mean": "kinetics",
                      "no_std": True},
                     ["--train-crop", "random", "--no-std-norm"])
        spatial_case("center_even", root, ann,
                     {"size": 40, "crop": "center", "t": "even", "mean": "0.5", "no_mean": True},
                     ["--subset", "validation", "--train-crop", "center", "--train-t-crop", "even",
                      "--n-val-samples", "3", "--no-hflip", "--mean-dataset", "0.5",
                      "--no-mean-norm", "--no-shuffle"])
        # seeding: same seed and any thread count -> same batches; other seed -> other
        outs = []
        for threads, seed in ((1, 3), (2, 3), (2, 4)):
            o = root / ("seed_%d_%d" % (threads, seed))
            run([ST3D, "sample-clips", "--annotation-path", ann, "--video-path", root / "videos",
                 "--out-dir", o, "--batch-size", "2", "--n-threads", str(threads),
                 "--sample-size", "32", "--sample-duration", "4", "--manual-seed", str(seed),
                 "--train-crop", "corner", "--quiet", "--n-epochs", "2"])
            outs.append([np.load(p) for p in sorted(o.glob("batch_*.npy"))])
        same = len(outs[0]) == len(outs[1]) and all(np.array_equal(a, b) for a, b in zip(*outs[:2]))
        C.check(same, "same seed gives the same batches with 1 and 2 threads")
        diff = any(not np.array_equal(a, b) for a, b in zip(outs[1], outs[2]))
        C.check(diff, "another seed gives other batches")
        # epochs differ (new shuffle and new draws)
        C.check(not all(np.array_equal(a, b) for a, b in zip(outs[0][:3], outs[0][3:6])),
                "epoch 1 differs from epoch 0")
    C.finish()


main()
