#!/usr/bin/python3
"""`st3d test` and `st3d eval` against an independent PyTorch computation of
the original 3D-ResNets-PyTorch inference (main.py --inference, inference.py,
util_scripts/eval_accuracy.py).

Data: the built-in motion dataset (4 classes, 3 training and 3 test videos
each, 40 frames of 64x64), of which four test videos are re-encoded here with
ffmpeg to other shapes: 80x60 (twice; Resize(32) makes them 42x32: torchvision
truncates 32 * 80 / 60 = 42.67), 48x72 (portrait, 32x48) and 96x64 (48x32)
cut to 37 frames (the last SlidingWindow clip is loop-padded).  A ResNet-10 (widen
factor 0.25) is trained for 3 epochs by `st3d train` (so that the videos get
different, unsaturated predictions), then `st3d test --inference-subset val
--inference-stride 8 --sample-duration 8 --sample-size 32
--inference-batch-size 4` runs with --inference-crop center and nocrop, each
with and without --inference-no-average.

The reference, written here from the original's code:
  * frames: decoded by the ffmpeg program (rgb24, every frame), not by st3d;
  * clips: the annotation's segment [b, e) as frame numbers b..e-1,
    TemporalSubsampling(sample_t_stride) then SlidingWindow(sample_duration,
    inference_stride) with LoopPadding of the last window, frame number i
    being decoded frame i - 1 (image_%05d.jpg numbering);
  * pixels: torchvision's Resize(sample_size) [+ CenterCrop(sample_size)] on
    PIL images (Pillow's bilinear resampler, as the original), ToTensor,
    Normalize with --mean-dataset kinetics's mean and std (the original's
    mean.py values);
  * network: tests/torch/ref_resnet.py with the weights of st3d's checkpoint
    (tests/torch/st_io.py), eval mode, float32; all clips of a video in one
    batch (nocrop's batches hold one video, as opts.py says).  PyTorch's
    oneDNN convolutions are left on (15 times faster than its own 3D
    convolution here): the network alone is compared with oneDNN off by
    tests/torch (test_networks.py); what is checked here is everything
    around it;
  * softmax per clip, mean per video (inference.py), top-k labels;
  * eval_accuracy.py's rule: top-1 / top-5 over the subset's videos, plus
    per-class top-1 and top-5 and their mean.

Checks:
  * the loader's clips (`st3d sample-clips`, the same loader `st3d test`
    uses) equal the reference tensors exactly (max |difference| 0: FFmpeg
    decodes both, and st3d's resize re-implements Pillow's fixed-point
    bilinear resampler, so there is nothing to bound); nocrop's clips have
    their video's height and width, and a nocrop batch never holds clips of
    two videos, while center-crop batches run on across videos as before;
  * every results JSON: the same videos, segments and labels in the same
    order, and scores within 1e-4 (float32 forwards of oneDNN and PyTorch;
    labels whose reference scores differ by less than that may come in
    either order);
  * `st3d eval`'s JSON and printed accuracies equal the reference's exactly
    (the same counts divided in double); eval refuses per-clip results;
  * the comparisons can fail: a perturbed results file (a score moved by
    1e-3, two labels swapped) is reported, and `st3d eval` of a results file
    whose top label was changed no longer equals the reference;
  * bad input: a results JSON naming a video the annotation lacks, and a
    malformed one, stop `st3d eval` with one line naming the file.
Run with --perturb to see the report fail (st3d's results perturbed before
the comparisons).

Usage: test_inference_vs_torch.py --st3d ST3D [--keep DIR] [--perturb]
"""
import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

try:
    import torch
    import torch.nn.functional as F
    from PIL import Image
    from torchvision import transforms
except ImportError as e:  # Debian's python3-torch / python3-torchvision / python3-pil
    print("skipped: %s" % e)
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "torch"))
import ref_resnet  # noqa: E402
import st_io  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "data"))
from common import sliding_window  # noqa: E402  (the original's SlidingWindow + LoopPadding)

TOL = 1e-4                      # scores: two float32 forwards
SIZE, DURATION, STRIDE, T_STRIDE = 32, 8, 8, 1
TOPK = 5
MEAN = [0.4345, 0.4051, 0.3775]  # the original's mean.py, kinetics
STD = [0.2768, 0.2713, 0.2737]
# test videos re-encoded: (class, clip) -> (ffmpeg scale, frames or None)
RESHAPE = {("MoveLeft", 1): ("80:60", None), ("MoveRight", 2): ("48:72", None),
           ("MoveUp", 3): ("96:64", 37), ("MoveDown", 1): ("80:60", None)}

FAILS = []
PASSES = [0]
T0 = time.time()


def stamp(what):
    print("[%5.1f s] %s" % (time.time() - T0, what))


def check(cond, what):
    if cond:
        PASSES[0] += 1
        print("ok  ", what)
    else:
        FAILS.append(what)
        print("FAIL", what)


def run(cmd, check_rc=True):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if check_rc and p.returncode != 0:
        raise SystemExit("command failed (%d): %s\n%s" % (p.returncode, " ".join(map(str, cmd)),
                                                          p.stderr.strip()[-2000:]))
    return p


def ffmpeg(*args):
    run(["ffmpeg", "-nostdin", "-v", "error", "-y"] + list(args))


# ------------------------------------------------------------------ data


def make_data(st3d, root):
    ds = os.path.join(root, "motion")
    run([st3d, "make-dataset", "motion", ds, "--classes", "4", "--train-per-class", "3",
         "--test-per-class", "3", "--frames", "40", "--size", "64", "--threads", "1"])
    videos = os.path.join(ds, "videos")
    for (cls, c), (scale, frames) in RESHAPE.items():
        path = os.path.join(videos, cls, "v_%s_g01_c%02d.avi" % (cls, c))
        tmp = path + ".tmp.avi"
        ffmpeg("-i", path, "-vf", "scale=" + scale, *(["-frames:v", str(frames)] if frames else []),
               "-c:v", "mpeg4", "-q:v", "2", "-pix_fmt", "yuv420p", tmp)
        os.replace(tmp, path)
    ann = os.path.join(root, "ann.json")
    run([st3d, "make-annotations", "--dataset", "ucf101", "--src", os.path.join(ds, "splits"),
         "--video-path", videos, "--dst", ann])
    return videos, ann


DECODED = {}


def decode(path):
    """Every frame of path as the ffmpeg program decodes it (n x h x w x 3 uint8)."""
    if path in DECODED:
        return DECODED[path]
    p = run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
             "stream=width,height", "-of", "csv=p=0", path])
    w, h = (int(x) for x in p.stdout.strip().split(","))
    raw = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-sws_flags", "bilinear",
                          "-vsync", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    DECODED[path] = np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)
    return DECODED[path]


# ------------------------------------------------- the original's transforms


def spatial(crop):
    """main.py get_inference_utils' spatial transform (value_scale 1)."""
    t = [transforms.Resize(SIZE)]
    if crop == "center":
        t.append(transforms.CenterCrop(SIZE))
    t += [transforms.ToTensor(), transforms.Normalize(MEAN, STD)]
    return transforms.Compose(t)


def reference_clips(ann, videos, crop):
    """{video_id: (label, [(segment, C x T x H x W tensor), ...])} of the validation subset."""
    a = json.load(open(ann))
    tf = spatial(crop)
    out = {}
    for vid, v in a["database"].items():
        if v["subset"] != "validation":
            continue
        label = v["annotations"]["label"]
        frames = decode(os.path.join(videos, label, vid + ".avi"))
        b, e = v["annotations"]["segment"]
        clips = []
        # TemporalSubsampling(sample_t_stride), then SlidingWindow (main.py
        # get_inference_utils; each window is consecutive numbers from a
        # subsampled start)
        for idx in sliding_window(list(range(b, e))[::T_STRIDE], DURATION, STRIDE):
            x = torch.stack([tf(Image.fromarray(frames[i - 1])) for i in idx], 0).permute(1, 0, 2, 3)
            clips.append(([min(idx), max(idx) + 1], x))
        out[vid] = (label, clips)
    return out


def reference_scores(net, clips):
    """inference.py: softmax per clip; {vid: (label, segments, clip scores, mean)}."""
    out = {}
    torch.backends.mkldnn.enabled = True  # see the top: 15x faster here, float32 all the same
    with torch.no_grad():
        for vid, (label, cl) in clips.items():
            x = torch.stack([c for _, c in cl], 0)  # one video per batch (nocrop's rule)
            s = F.softmax(net(x), dim=1)
            out[vid] = (label, [seg for seg, _ in cl], s.numpy(), s.mean(0).numpy())
    return out


# -------------------------------------------------------------- comparisons


def compare_ranking(got, scores, labels, where):
    """got: [{"label", "score"}] from st3d; scores: the reference's (per class).
    Problems: another length, a label out of order beyond TOL, a score off by
    more than TOL."""
    want = sorted(range(len(labels)), key=lambda j: -scores[j])[:min(TOPK, len(labels))]
    if len(got) != len(want):
        return ["%s: %d labels, reference %d" % (where, len(got), len(want))]
    bad = []
    for i, g in enumerate(got):
        if g["label"] not in labels:
            bad.append("%s: unknown label %r" % (where, g["label"]))
            continue
        ref_at_i = scores[want[i]]                 # the i-th best reference score
        mine = scores[labels.index(g["label"])]    # the reference score of st3d's i-th label
        if abs(mine - ref_at_i) > TOL:
            bad.append("%s: rank %d is %s, reference %s (%.6f vs %.6f)" % (
                where, i + 1, g["label"], labels[want[i]], mine, ref_at_i))
        if abs(g["score"] - ref_at_i) > TOL:
            bad.append("%s: rank %d score %.7f, reference %.7f" % (where, i + 1, g["score"], ref_at_i))
    return bad


def compare_results(res, ref, labels, average):
    """Problems between st3d's results JSON (parsed) and the reference."""
    bad = []
    got = res.get("results", {})
    if sorted(got) != sorted(ref):
        return ["videos %s, reference %s" % (sorted(got), sorted(ref))]
    for vid, (_, segs, clip_s, mean_s) in ref.items():
        if average:
            bad += compare_ranking(got[vid], mean_s, labels, vid)
            continue
        if len(got[vid]) != len(segs):
            bad.append("%s: %d clips, reference %d" % (vid, len(got[vid]), len(segs)))
            continue
        for c, (entry, seg) in enumerate(zip(got[vid], segs)):
            if entry.get("segment") != seg:
                bad.append("%s clip %d: segment %s, reference %s" % (vid, c, entry.get("segment"), seg))
            bad += compare_ranking(entry.get("result", []), clip_s[c], labels, "%s clip %d" % (vid, c))
    return bad


def ranked_labels(res, ref, labels):
    """Each video's labels best first: the reference's order, or st3d's where
    it agrees with the reference within TOL (near-ties broken either way).
    Also returns how many videos took st3d's near-tie order."""
    out, ties = {}, 0
    for vid, (_, _, _, mean_s) in ref.items():
        got = res["results"].get(vid, [])
        order = [labels[j] for j in sorted(range(len(labels)), key=lambda j: -mean_s[j])[:TOPK]]
        if got and not compare_ranking(got, mean_s, labels, vid):
            out[vid] = [e["label"] for e in got]
            ties += out[vid] != order
        else:
            out[vid] = order
    return out, ties


def reference_eval(ref, ranked, labels):
    """eval_accuracy.py's rule (every validation video counted), per class too."""
    per = {l: [0, 0, 0] for l in labels}  # videos, top-1 right, top-k right
    for vid, (label, _, _, _) in ref.items():
        per[label][0] += 1
        per[label][1] += ranked[vid][0] == label
        per[label][2] += label in ranked[vid][:TOPK]
    n = sum(p[0] for p in per.values())
    classes = [{"label": l, "n_videos": per[l][0], "n_missing": 0,
                "top1": per[l][1] / per[l][0] if per[l][0] else None,
                "top%d" % TOPK: per[l][2] / per[l][0] if per[l][0] else None} for l in labels]
    with_videos = [c["top1"] for c in classes if c["top1"] is not None]
    return {"n_videos": n, "n_missing": 0, "n_top1": sum(p[1] for p in per.values()),
            "n_topk": sum(p[2] for p in per.values()),
            "top1": sum(p[1] for p in per.values()) / n,
            "top%d" % TOPK: sum(p[2] for p in per.values()) / n,
            "mean_class_top1": sum(with_videos) / len(with_videos), "per_class": classes}


def compare_eval(st3d, results_path, ann, want, out_json):
    """Problems between `st3d eval` (JSON and printed lines) and want."""
    p = run([st3d, "eval", "--results", results_path, "--annotation-path", ann, "--top-k", TOPK,
             "--output-json", out_json], check_rc=False)
    if p.returncode != 0:
        return ["st3d eval failed: %s" % p.stderr.strip()]
    got = json.load(open(out_json))
    bad = ["eval %s: %r, reference %r" % (k, got.get(k), want[k])
           for k in ("n_videos", "n_missing", "top1", "top%d" % TOPK, "mean_class_top1", "per_class")
           if got.get(k) != want[k]]
    lines = ["top-1 accuracy: %.4f (%d / %d)" % (want["top1"], want["n_top1"], want["n_videos"]),
             "top-%d accuracy: %.4f (%d / %d)" % (TOPK, want["top%d" % TOPK], want["n_topk"],
                                                  want["n_videos"]),
             "mean class top-1 accuracy: %.4f" % want["mean_class_top1"]]
    bad += ["eval prints no %r" % l for l in lines if l not in p.stdout.splitlines()]
    return bad


def perturb(res):
    """A copy of an averaged results JSON with one score moved by 1e-3 and
    the first two labels of another video swapped."""
    r = copy.deepcopy(res)
    vids = sorted(r["results"])
    r["results"][vids[0]][0]["score"] += 1e-3
    e = r["results"][vids[1]]
    e[0]["label"], e[1]["label"] = e[1]["label"], e[0]["label"]
    return r


def one_line_error(p, *words):
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    return p.returncode != 0 and len(lines) == 1 and all(str(w) in lines[0] for w in words)


# ------------------------------------------------------------------- steps


def check_loader_clips(st3d, tmp, videos, ann, crop, ref_clips):
    """The loader's clips (sample-clips) against the reference tensors."""
    out = os.path.join(tmp, "clips_" + crop)
    run([st3d, "sample-clips", "--annotation-path", ann, "--video-path", videos, "--subset",
         "validation", "--train-t-crop", "sliding", "--inference-stride", STRIDE,
         "--sample-duration", DURATION, "--sample-size", SIZE, "--sample-t-stride", T_STRIDE,
         "--train-crop", crop, "--no-hflip", "--no-shuffle", "--batch-size", 4, "--n-threads", 2,
         "--out-dir", out, "--quiet"])
    rows = [json.loads(l) for l in open(os.path.join(out, "clips.jsonl"))]
    batches = {}
    for r in rows:
        batches.setdefault(r["batch"], []).append(r)
    worst, n, shapes, mixed = 0.0, 0, {}, 0
    for b, rs in batches.items():
        x = np.load(os.path.join(out, "batch_%05d.npy" % b))
        mixed += len({r["video_id"] for r in rs}) > 1
        for r in rs:
            seg, want = ref_clips[r["video_id"]][1][r["clip"]]
            got = x[r["index"]]
            if got.shape != tuple(want.shape) or [r["begin"], r["end"]] != seg:
                worst = float("inf")
                print("  %s clip %d: %s %s, reference %s %s" % (r["video_id"], r["clip"], got.shape,
                                                                [r["begin"], r["end"]],
                                                                tuple(want.shape), seg))
                continue
            worst = max(worst, float(np.abs(got - want.numpy()).max()))
            shapes[r["video_id"]] = got.shape[2:]
            n += 1
    total = sum(len(c) for _, c in ref_clips.values())
    check(n == total and worst == 0.0,
          "%s: the loader's %d clips equal the reference's %d exactly (max |difference| %g)"
          % (crop, n, total, worst))
    if crop == "nocrop":
        want = {"v_MoveLeft_g01_c01": (32, 42), "v_MoveRight_g01_c02": (48, 32),
                "v_MoveUp_g01_c03": (32, 48), "v_MoveUp_g01_c01": (32, 32)}
        check(all(shapes.get(v) == s for v, s in want.items()),
              "nocrop: clips are as wide and high as their video's resized frames (80x60 -> "
              "42x32, 48x72 -> 32x48, 96x64 -> 48x32, 64x64 -> 32x32); (H, W): %s"
              % {v: shapes.get(v) for v in want})
        check(mixed == 0, "nocrop: no batch holds clips of two videos (%d do)" % mixed)
    else:
        check(mixed > 0, "center: batches run on across videos as before (%d of %d mix)"
              % (mixed, len(batches)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--st3d", required=True)
    ap.add_argument("--keep", help="work in this folder and leave it")
    ap.add_argument("--perturb", action="store_true",
                    help="perturb st3d's results before comparing (the test must then fail)")
    a = ap.parse_args()
    torch.set_num_threads(2)
    tmp = a.keep or tempfile.mkdtemp(prefix="st3d-inference-")
    os.makedirs(tmp, exist_ok=True)
    st3d = a.st3d
    videos, ann = make_data(st3d, tmp)
    labels = json.load(open(ann))["labels"]

    # a briefly trained network: videos get different, unsaturated predictions
    train = os.path.join(tmp, "train")
    run([st3d, "train", "--video-path", videos, "--annotation-path", ann, "--result-path", train,
         "--dataset", "ucf101", "--n-classes", 4, "--model", "resnet", "--model-depth", 10,
         "--resnet-widen-factor", 0.25, "--sample-size", SIZE, "--sample-duration", DURATION,
         "--batch-size", 4, "--n-epochs", 3, "--checkpoint", 3, "--learning-rate", 0.001,
         "--no-hflip", "--no-val", "--threads", 2, "--n-threads", 2])
    ckpt = os.path.join(train, "save_3.safetensors")
    stamp("data made, network trained")
    net = ref_resnet.build("resnet", 10, n_classes=4, widen_factor=0.25)
    sd, _ = st_io.load(ckpt)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()
                         if not k.startswith("optimizer.")})
    net.eval()

    for crop in ("center", "nocrop"):
        ref_clips = reference_clips(ann, videos, crop)
        stamp("%s: reference clips" % crop)
        check_loader_clips(st3d, tmp, videos, ann, crop, ref_clips)
        ref = reference_scores(net, ref_clips)
        stamp("%s: reference scores" % crop)
        for average in (True, False):
            tag = "%s%s" % (crop, "" if average else " --inference-no-average")
            res_dir = os.path.join(tmp, "test_%s_%d" % (crop, average))
            p = run([st3d, "test", "--video-path", videos, "--annotation-path", ann,
                     "--resume-path", ckpt, "--result-path", res_dir, "--dataset", "ucf101",
                     "--inference-subset", "val", "--inference-stride", STRIDE,
                     "--sample-duration", DURATION, "--sample-size", SIZE,
                     "--sample-t-stride", T_STRIDE, "--inference-crop", crop,
                     "--inference-batch-size", 4, "--output-topk", TOPK, "--threads", 2,
                     "--n-threads", 2] + ([] if average else ["--inference-no-average"]))
            n_clips = sum(len(s) for _, s, _, _ in ref.values())
            check("12 videos, %d clips, 0 skipped" % n_clips in p.stdout,
                  "%s: st3d test: %s" % (tag, p.stdout.strip()))
            res_path = os.path.join(res_dir, "val.json")
            res = json.load(open(res_path))
            if a.perturb:
                res = perturb(res) if average else res
                if not average:
                    res["results"][sorted(res["results"])[0]][0]["segment"][0] += 1
                json.dump(res, open(res_path, "w"))
            stamp("%s: st3d test" % tag)
            bad = compare_results(res, ref, labels, average)
            for b in bad[:10]:
                print("  ", b)
            check(not bad, "%s: results equal PyTorch's (%d videos, labels in order, scores "
                  "within %g)" % (tag, len(ref), TOL))
            if not average:
                p = run([st3d, "eval", "--results", res_path, "--annotation-path", ann], check_rc=False)
                check(one_line_error(p, "val.json", "per-clip"),
                      "%s: st3d eval refuses per-clip results: %r" % (tag, p.stderr.strip()))
                continue
            ranked, ties = ranked_labels(res, ref, labels)
            if ties:
                print("   (%d videos with near-tied scores ranked as st3d did)" % ties)
            want = reference_eval(ref, ranked, labels)
            bad = compare_eval(st3d, res_path, ann, want, os.path.join(tmp, "eval_%s.json" % crop))
            for b in bad:
                print("  ", b)
            check(not bad, "%s: st3d eval equals the reference: top-1 %.4f, top-5 %.4f, per class %s"
                  % (tag, want["top1"], want["top5"], [c["top1"] for c in want["per_class"]]))
            if crop != "center" or a.perturb:
                continue
            # the comparisons can fail
            pert = perturb(res)
            bad = compare_results(pert, ref, labels, True)
            check(len(bad) >= 2, "self-check: a perturbed results file is reported (%s)"
                  % "; ".join(bad[:2]))
            vid = sorted(pert["results"])[2]  # its top-1 made right if wrong, wrong if right
            true, first = ref[vid][0], pert["results"][vid][0]
            first["label"] = next(l for l in labels if l != true) if first["label"] == true else true
            pert_path = os.path.join(tmp, "perturbed.json")
            json.dump(pert, open(pert_path, "w"))
            bad = compare_eval(st3d, pert_path, ann, want, os.path.join(tmp, "eval_pert.json"))
            check(bool(bad), "self-check: st3d eval of changed results differs from the "
                  "reference (%s)" % "; ".join(bad[:1]))
            # bad input: one line naming the file, non-zero exit
            odd = copy.deepcopy(res)
            odd["results"]["v_NoSuchVideo_g09_c09"] = odd["results"][sorted(odd["results"])[0]]
            odd_path = os.path.join(tmp, "unknown_video.json")
            json.dump(odd, open(odd_path, "w"))
            p = run([st3d, "eval", "--results", odd_path, "--annotation-path", ann], check_rc=False)
            check(one_line_error(p, "unknown_video.json", "v_NoSuchVideo_g09_c09"),
                  "a results video the annotation lacks: %r" % p.stderr.strip())
            broken = os.path.join(tmp, "broken.json")
            open(broken, "w").write(open(res_path).read()[:150])
            p = run([st3d, "eval", "--results", broken, "--annotation-path", ann], check_rc=False)
            check(one_line_error(p, "broken.json"), "a malformed results JSON: %r" % p.stderr.strip())
    stamp("done")
    if not a.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{PASSES[0]} passed, {len(FAILS)} failed")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
