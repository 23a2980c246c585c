#!/usr/bin/python3
"""`st3d classify` and `st3d features` (the streamed clip pipeline,
st3d_clip_stream + st3d_classify_stream) end to end.

--part torch (quick tier)
  * an independent computation: frames decoded by the ffmpeg program (rgb24,
    every frame), clips cut here (starts 0, stride, ...; the first clip that
    runs past the end loop-padded, as the original's SlidingWindow +
    LoopPadding), Resize (PIL bilinear, short side) + CenterCrop + ToTensor +
    Normalize written here, the network of tests/torch/ref_resnet.py loaded
    with the weights `st3d init` wrote: segments and times equal, softmax
    scores, video means and pooled features within 1e-4 (the resize is PIL's
    own, which st3d reproduces exactly: no extra bound for it);
  * --overlay: every frame again, the label drawn in the top left corner;
  * frame counts equal `ffprobe -count_frames` for H.264 with B-frames
    (libx264, -bf 3), MPEG-4 part 2 with B-frames in AVI (the frames the
    decoder gives only when drained) and an H.264 file with damaged bytes.
--part corpus (quick tier)
  * a folder with good videos, a truncated MP4, a text file named .avi and
    a dangling link: the good ones are written, each bad one is named on one
    stderr line, the summary counts them, the exit code is 1;
  * --shard 0/2 and 1/2 together write exactly the files of one unsharded
    run, byte for byte; a rerun skips every finished video and rewrites
    nothing; a list file and `-` (stdin) give the same videos;
  * --live with a video piped to standard input: the clips and scores of
    the same file, one line per clip, latency reported;
  * labels and normalization from the weights file (st3d convert);
  * --output OUT.json: one JSON list in the companion tool's schema;
    --average: one vector per video (the clips' mean).
--part memory (quick tier)
  * peak RSS of `st3d features` on a 10-minute video is within 8 MB of that
    on a 30-second one (frames are streamed through a ring, never held; the
    short one's 3 clips fill no batch of 8, the long one's 60 fill several:
    every forward has one shape, so one plan and one copy of the weights).
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "torch"))
sys.path.insert(0, os.path.join(HERE, "..", "data"))
import common  # noqa: E402
from common import Checker, ffmpeg, ffmpeg_rgb  # noqa: E402

C = Checker()
check = C.check


def run(cmd, **kw):
    """common.run with every argument made a string."""
    return common.run([str(c) for c in cmd], **kw)


def ffprobe_count(path):
    p = run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
             "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path])
    return int(p.stdout.strip().strip(","))


def ffmpeg_frames(path):
    """Every frame ffmpeg decodes, rgb24, at the video's own size."""
    p = run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
             "stream=width,height", "-of", "csv=p=0", str(path)])
    w, h = map(int, p.stdout.strip().split(",")[:2])
    return ffmpeg_rgb(path).reshape(-1, h, w, 3)


def motion_videos(st3d, root, n_classes=2):
    run([st3d, "make-dataset", "motion", root, "--classes", n_classes, "--train-per-class", 2,
         "--test-per-class", 1, "--frames", 40, "--size", 64])
    out = []
    for dp, _, fs in os.walk(os.path.join(root, "videos")):
        out += [os.path.join(dp, f) for f in fs if f.endswith(".avi")]
    return sorted(out)


# ------------------------------------------------------------- reference


MEAN = np.array([0.4345, 0.4051, 0.3775], np.float32)  # kinetics, mean.py
STD = np.array([0.2768, 0.2713, 0.2737], np.float32)


def transform(frame, size):
    """Resize (short side, the other truncated, PIL bilinear) + CenterCrop +
    ToTensor + Normalize, as the companion's Scale/CenterCrop pipeline."""
    from PIL import Image
    img = Image.fromarray(frame)
    w, h = img.size
    if w <= h:
        ow, oh = size, int(size * h / w)
    else:
        ow, oh = int(size * w / h), size
    if (ow, oh) != (w, h):
        img = img.resize((ow, oh), Image.BILINEAR)
    x1, y1 = int(round((ow - size) / 2.0)), int(round((oh - size) / 2.0))
    img = img.crop((x1, y1, x1 + size, y1 + size))
    a = np.asarray(img, np.float32) / np.float32(255.0)
    return ((a - MEAN) / STD).transpose(2, 0, 1)  # C x H x W


def ref_clips(n, duration, stride):
    """(first, last, frame indices) per clip, 0-based indices."""
    out = []
    for b in range(0, n, stride):
        e = min(b + duration, n)
        idx = [b + i % (e - b) for i in range(duration)]
        out.append((b + 1, e, idx))
        if e - b < duration:
            break
    return out


def check_bad_option(st3d, weights, out, video, option, value):
    """st3d features with a bad option value: exit 2, a message naming it."""
    p = run([st3d, "features", "--weights", weights, "--output", out, option, value, video],
            check=False)
    check(p.returncode == 2 and option in p.stderr,
          "%s %s: exit 2 and a message naming it (%d, %s)"
          % (option, value, p.returncode, p.stderr.strip()))


def part_torch(st3d, tmp):
    import torch
    import ref_resnet
    import st_io
    torch.set_num_threads(2)
    vids = motion_videos(st3d, os.path.join(tmp, "ds"))[:2]
    # a 4:3 H.264 video with B-frames: the resize and the crop both act
    h264 = os.path.join(tmp, "bframes.mp4")
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-frames:v", "45", "-c:v",
           "libx264", "-bf", "3", "-g", "12", "-pix_fmt", "yuv420p", h264)
    vids.append(h264)
    w = os.path.join(tmp, "w.safetensors")
    run([st3d, "init", "--model", "resnet", "--model-depth", 10, "--n-classes", 3, "--output", w])
    labels = os.path.join(tmp, "labels.txt")
    with open(labels, "w") as f:
        f.write("alpha\nbeta\ngamma\n")
    net = ref_resnet.build("resnet", 10, n_classes=3, shortcut="B")
    sd = {k: torch.from_numpy(np.array(v)) for k, v in st_io.load(w)[0].items()}
    net.load_state_dict(sd)
    net.eval()
    T, S, stride = 16, 112, 12
    out_c, out_f = os.path.join(tmp, "scores"), os.path.join(tmp, "feats")
    # 12 clips in batches of 5: the last holds 2 (run padded to the full shape)
    common = ["--sample-duration", T, "--sample-size", S, "--stride", stride, "--batch-size", 5,
              "--threads", 2] + vids
    run([st3d, "classify", "--weights", w, "--labels", labels, "--output", out_c] + common)
    run([st3d, "features", "--weights", w, "--output", out_f] + common)
    names = ["alpha", "beta", "gamma"]
    for v in vids:
        name = os.path.splitext(os.path.basename(v))[0]  # absolute paths: the file name
        js = json.load(open(os.path.join(out_c, name + ".json")))
        ix = json.load(open(os.path.join(out_f, name + ".json")))
        feats = np.load(os.path.join(out_f, name + ".npy"))
        frames = ffmpeg_frames(v)
        n = len(frames)
        clips = ref_clips(n, T, stride)
        tag = os.path.basename(v)
        check(js["n_frames"] == n and ix["n_frames"] == n,
              "%s: %d frames, ffmpeg %d" % (tag, js["n_frames"], n))
        check([c["segment"] for c in js["clips"]] == [[a, b] for a, b, _ in clips] and
              [c["segment"] for c in ix["clips"]] == [[a, b] for a, b, _ in clips],
              "%s: segments %s, expected %s" % (tag, [c["segment"] for c in js["clips"]],
                                                [[a, b] for a, b, _ in clips]))
        fps = js["fps"]
        check(all(abs(c["start"] - (a - 1) / fps) < 1e-6 and abs(c["end"] - b / fps) < 1e-6
                  for c, (a, b, _) in zip(js["clips"], clips)), "%s: clip times" % tag)
        x = np.stack([np.stack([transform(frames[i], S) for i in idx], 1)
                      for _, _, idx in clips])  # N x C x T x H x W
        with torch.no_grad():
            logits, f = net(torch.from_numpy(x), return_features=True)
        p = torch.softmax(logits, 1).numpy()
        got = np.array([c["scores"] for c in js["clips"]], np.float32)
        check(got.shape == p.shape and np.abs(got - p).max() < 1e-4,
              "%s: clip scores differ by %.3g" % (tag, np.abs(got - p).max()))
        check([c["label"] for c in js["clips"]] == [names[k] for k in p.argmax(1)],
              "%s: clip labels" % tag)
        mean = np.array(js["scores"], np.float32)
        check(np.abs(mean - p.mean(0)).max() < 1e-4 and js["label"] == names[p.mean(0).argmax()],
              "%s: video mean differs by %.3g" % (tag, np.abs(mean - p.mean(0)).max()))
        fr = f.numpy()
        check(feats.shape == fr.shape and np.abs(feats - fr).max() < 1e-4,
              "%s: features %s differ by %.3g" % (tag, feats.shape, np.abs(feats - fr).max()))
        print("%s: %d frames, %d clips, scores %.2g, features %.2g" % (
            tag, n, len(clips), np.abs(got - p).max(), np.abs(feats - fr).max()))
    # the H.264 video alone: st3d's default for one video (CPUs - 1 FFmpeg
    # threads), FFmpeg's own choice (0: frame threads), 1 and 3 threads;
    # every run the same bytes as above, where the video was one of three
    # (one FFmpeg thread each)
    want = open(os.path.join(out_f, "bframes.npy"), "rb").read()
    for extra in ([], ["--ffmpeg-threads", 0], ["--ffmpeg-threads", 1], ["--ffmpeg-threads", 3]):
        alone = os.path.join(tmp, "alone%s" % "".join(map(str, extra[1:])))
        run([st3d, "features", "--weights", w, "--output", alone] + extra + common[:-len(vids)] +
            [h264])
        got = open(os.path.join(alone, "bframes.npy"), "rb").read()
        check(got == want, "features of bframes.mp4 alone %s: the same bytes as among three"
              % (" ".join(map(str, extra)) or "(the default)"))
    check_bad_option(st3d, w, os.path.join(tmp, "bad"), h264, "--ffmpeg-threads", -1)
    # --overlay: the video again, every frame, the label drawn at the top left
    ov = os.path.join(tmp, "overlay.mp4")
    run([st3d, "classify", "--weights", w, "--labels", labels, "--overlay", ov,
         "--sample-size", 32, h264])
    a, b = ffmpeg_frames(h264).astype(np.float32), ffmpeg_frames(ov).astype(np.float32)
    box, rest = np.abs(a - b)[:, :8, :40].mean(), np.abs(a - b)[:, 60:].mean()
    check(a.shape == b.shape and box > 20 and rest < 8,
          "--overlay: %s frames (source %s), label box differs by %.1f, the rest by %.1f"
          % (b.shape, a.shape, box, rest))
    # frame counts against ffprobe -count_frames
    avi_b = os.path.join(tmp, "mpeg4_bframes.avi")
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=96x64:rate=25", "-frames:v", "37", "-c:v", "mpeg4",
           "-bf", "2", avi_b)
    damaged = os.path.join(tmp, "damaged.mp4")
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=96x64:rate=25", "-frames:v", "60", "-c:v",
           "libx264", "-bf", "3", "-g", "15", "-pix_fmt", "yuv420p", damaged)
    data = bytearray(open(damaged, "rb").read())
    for k in range(len(data) // 3, len(data) // 3 + 400, 7):
        data[k] ^= 0x5A
    open(damaged, "wb").write(bytes(data))
    cnt = os.path.join(tmp, "counts")
    p = run([st3d, "features", "--weights", w, "--output", cnt, "--sample-size", 32,
             "--sample-duration", 8, h264, avi_b, damaged], check=False)
    for v in (h264, avi_b, damaged):
        name = os.path.splitext(os.path.basename(v))[0]
        want = ffprobe_count(v)
        path = os.path.join(cnt, name + ".json")
        got = json.load(open(path))["n_frames"] if os.path.exists(path) else None
        check(got == want, "%s: %s frames decoded, ffprobe -count_frames %d%s"
              % (name, got, want, "" if got == want else " (%s)" % p.stderr.strip()))


# ---------------------------------------------------------------- corpus


def tree(d):
    """{relative path: bytes} of every file under d."""
    out = {}
    for dp, _, fs in os.walk(d):
        for f in fs:
            q = os.path.join(dp, f)
            out[os.path.relpath(q, d)] = open(q, "rb").read()
    return out


def part_corpus(st3d, tmp):
    good = motion_videos(st3d, os.path.join(tmp, "ds"), n_classes=3)
    corpus = os.path.join(tmp, "corpus")
    os.makedirs(os.path.join(corpus, "sub"))
    for i, v in enumerate(good):
        shutil.copy(v, os.path.join(corpus, "sub" if i % 2 else "", os.path.basename(v)))
    mp4 = os.path.join(tmp, "t.mp4")
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=25", "-frames:v", "30", "-c:v",
           "libx264", "-pix_fmt", "yuv420p", mp4)
    data = open(mp4, "rb").read()
    open(os.path.join(corpus, "truncated.mp4"), "wb").write(data[: len(data) // 2])
    open(os.path.join(corpus, "notes.avi"), "w").write("not a video at all\n" * 20)
    os.symlink(os.path.join(tmp, "nowhere.mp4"), os.path.join(corpus, "gone.mp4"))
    bad = ["truncated.mp4", "notes.avi", "gone.mp4"]
    w = os.path.join(tmp, "w.safetensors")
    run([st3d, "init", "--model", "resnet", "--model-depth", 10, "--n-classes", 3, "--output", w])
    small = ["--sample-size", 32, "--sample-duration", 8, "--batch-size", 4, "--threads", 2]
    full = os.path.join(tmp, "full")
    p = run([st3d, "classify", "--weights", w, "--output", full, corpus] + small, check=False)
    check(p.returncode == 1, "a corpus with bad files exits 1, got %d" % p.returncode)
    lines = [l for l in p.stderr.splitlines() if l.startswith("st3d: skipped")]
    for b in bad:
        check(sum(b in l for l in lines) == 1, "%s named on one 'skipped' line: %s" % (b, lines))
    check("%d videos done, 3 failed" % len(good) in p.stderr, "summary: %s" % p.stderr[-300:])
    files = tree(full)
    check(len(files) == len(good) and all(f.endswith(".json") for f in files),
          "one JSON per good video: %s" % sorted(files))
    # shards
    sh = os.path.join(tmp, "sharded")
    for k in (0, 1):
        run([st3d, "classify", "--weights", w, "--output", sh, "--shard", "%d/2" % k, corpus]
            + small, check=False)
    check(tree(sh) == files, "shards 0/2 + 1/2 = the unsharded run, byte for byte")
    # resume: nothing redone, nothing rewritten
    mt = {f: os.stat(os.path.join(full, f)).st_mtime_ns for f in files}
    p = run([st3d, "classify", "--weights", w, "--output", full, corpus] + small, check=False)
    check("%d of %d videos already done" % (len(good), len(good) + 3) in p.stderr and
          all(os.stat(os.path.join(full, f)).st_mtime_ns == mt[f] for f in files),
          "a rerun skips the finished videos: %s" % p.stderr[-300:])
    # a killed run: the temporary files of the video it was on are not outputs
    part = os.path.join(tmp, "partial")
    q = subprocess.Popen([str(c) for c in [st3d, "classify", "--weights", w, "--output", part,
                                           corpus] + small],
                         stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    q.stderr.readline()
    q.kill()
    q.wait()
    run([st3d, "classify", "--weights", w, "--output", part, corpus] + small, check=False)
    got = {k: v for k, v in tree(part).items() if ".tmp." not in k}
    check(got == files, "killed and resumed = one run (%d of %d files)" % (len(got), len(files)))
    # list file and stdin
    lst = os.path.join(tmp, "list.txt")
    with open(lst, "w") as f:
        f.write("# videos\n" + "\n".join(good) + "\n")
    a = run([st3d, "classify", "--weights", w, lst] + small).stdout
    b = run([st3d, "classify", "--weights", w, "-"] + small, input="\n".join(good)).stdout
    # rows come as videos finish (decoder threads race): compared as sets
    check(sorted(a.splitlines()) == sorted(b.splitlines()) and len(a.splitlines()) == len(good),
          "list file and stdin: %d rows" % len(a.splitlines()))
    # combined output (the companion's list) and --average
    comb = os.path.join(tmp, "all.json")
    run([st3d, "classify", "--weights", w, "--output", comb, "--labels", "/dev/null"] + small
        + good, check=False)
    labels = os.path.join(tmp, "l.json")
    json.dump({"labels": ["a", "b", "c"]}, open(labels, "w"))
    run([st3d, "classify", "--weights", w, "--output", comb, "--labels", labels] + small + good)
    js = json.load(open(comb))
    check(isinstance(js, list) and len(js) == len(good) and
          all(set(v) >= {"video", "clips"} and all(set(c) >= {"segment", "label", "scores"}
                                                   for c in v["clips"]) for v in js) and
          js[0]["clips"][0]["label"] in "abc", "combined JSON in the companion's schema")
    # --live: a video piped to standard input, classified as it comes: the
    # clips and scores of the same file read as a file, one line per clip
    mkv = os.path.join(tmp, "live.mkv")
    ffmpeg("-i", good[0], "-c", "copy", mkv)
    byfile = os.path.join(tmp, "byfile")
    run([st3d, "classify", "--weights", w, "--output", byfile] + small + [mkv])
    ref = json.load(open(os.path.join(byfile, "live.json")))
    live = os.path.join(tmp, "live")
    with open(mkv, "rb") as f:
        p = subprocess.run([str(c) for c in [st3d, "classify", "--weights", w, "--live",
                                              "--output", live] + small[:4] + ["-"]],
                           stdin=f, capture_output=True, text=True)
    got = json.load(open(os.path.join(live, "stdin.json"))) if p.returncode == 0 else None
    rows = [l for l in p.stdout.splitlines() if "latency" in l]
    check(got is not None and [c["segment"] for c in got["clips"]] ==
          [c["segment"] for c in ref["clips"]] and
          np.abs(np.array([c["scores"] for c in got["clips"]]) -
                 np.array([c["scores"] for c in ref["clips"]])).max() < 1e-6 and
          len(rows) == len(ref["clips"]) and "latency" in p.stderr,
          "--live from a pipe: the file's clips and scores, a line per clip (%s)" % p.stderr[-200:])
    # bad options stop before any work, exit code 2, one line naming them
    for args, what in ((["classify", good[0]], "--weights"),
                       (["features", "--weights", w, good[0]], "--output"),
                       (["classify", "--weights", w, "--shard", "2/2", good[0]], "--shard"),
                       (["classify", "--weights", w, "--bogus", "1", good[0]], "--bogus")):
        p = run([st3d] + args, check=False)
        check(p.returncode == 2 and what in p.stderr and len(p.stderr.splitlines()) == 1,
              "st3d %s: exit %d, %r" % (" ".join(args[:1] + args[-3:-1]), p.returncode, p.stderr))
    # labels and normalization from the weights file's metadata (st3d convert)
    w2 = os.path.join(tmp, "w2.safetensors")
    run([st3d, "convert", w, w2, "--labels", labels, "--mean-dataset", "0.5"])
    a = run([st3d, "classify", "--weights", w2] + small + good[:2]).stdout
    b = run([st3d, "classify", "--weights", w, "--labels", labels, "--mean-dataset", "0.5"]
            + small + good[:2]).stdout
    c = run([st3d, "classify", "--weights", w, "--labels", labels] + small + good[:2]).stdout
    check(sorted(a.splitlines()) == sorted(b.splitlines()) and a != c and " a " in a,
          "labels and mean/std from the weights' metadata:\n%s%s" % (a, b))
    avg, per = os.path.join(tmp, "avg"), os.path.join(tmp, "per")
    run([st3d, "features", "--weights", w, "--output", avg, "--average"] + small + good[:1])
    run([st3d, "features", "--weights", w, "--output", per] + small + good[:1])
    n = os.path.splitext(os.path.basename(good[0]))[0]
    va, vp = np.load(os.path.join(avg, n + ".npy")), np.load(os.path.join(per, n + ".npy"))
    check(va.shape == (vp.shape[1],) and np.abs(va - vp.mean(0)).max() < 1e-6,
          "--average: the clips' mean, shape %s" % (va.shape,))


# ---------------------------------------------------------------- memory


def peak_rss_mb(cmd):
    p = run(["/usr/bin/time", "-f", "MAXRSS %M"] + cmd)
    kb = [int(l.split()[1]) for l in p.stderr.splitlines() if l.startswith("MAXRSS")][-1]
    return kb / 1024.0


def part_memory(st3d, tmp):
    w = os.path.join(tmp, "w.safetensors")
    run([st3d, "init", "--model", "resnet", "--model-depth", 10, "--n-classes", 3, "--output", w])
    vids = {}
    for name, secs in (("short", 30), ("long", 600)):
        vids[name] = os.path.join(tmp, name + ".mp4")
        ffmpeg("-f", "lavfi", "-i", "testsrc=size=96x64:rate=25", "-t", secs, "-c:v", "libx264",
               "-preset", "ultrafast", "-bf", "2", "-pix_fmt", "yuv420p", vids[name])
    rss = {}
    for name, v in vids.items():
        rss[name] = peak_rss_mb([st3d, "features", "--weights", w, "--output",
                                 os.path.join(tmp, name), "--sample-size", 32,
                                 "--sample-duration", 8, "--stride", 250, "--threads", 2, v])
        idx = json.load(open(os.path.join(tmp, name, name + ".json")))
        print("%s: %d frames, %d clips, peak RSS %.1f MB" % (name, idx["n_frames"],
                                                             len(idx["clips"]), rss[name]))
    check(rss["long"] <= rss["short"] + 8, "peak RSS %.1f MB for 10 min, %.1f MB for 30 s"
          % (rss["long"], rss["short"]))


# ---------------------------------------------------------------- stream


def part_stream(st3d, hold_tool, tmp):
    """The decoders held while the network runs (--decode-overlap off, the
    default where the compute threads take every CPU): the same bytes as
    decoding beside it; st3d_clip_stream_hold itself (stream_hold.c)."""
    v = os.path.join(tmp, "long.mp4")
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-frames:v", 1000, "-c:v",
           "libx264", "-bf", "3", "-pix_fmt", "yuv420p", v)
    p = run([hold_tool, v, 1000], check=False)
    print(p.stdout, end="")
    check(p.returncode == 0, "stream_hold: exit %d %s" % (p.returncode, p.stderr.strip()))
    w = os.path.join(tmp, "w.safetensors")
    run([st3d, "init", "--model", "resnet", "--model-depth", 10, "--n-classes", 3, "--output", w])
    outs = {}
    for mode in ("on", "off", "auto"):
        out = os.path.join(tmp, mode)
        run([st3d, "features", "--weights", w, "--output", out, "--sample-size", 32,
             "--batch-size", 4, "--threads", 2, "--decode-overlap", mode, v])
        outs[mode] = open(os.path.join(out, "long.npy"), "rb").read()
    check(outs["on"] == outs["off"] == outs["auto"],
          "--decode-overlap on, off, auto: the same feature bytes")
    check_bad_option(st3d, w, os.path.join(tmp, "bad"), v, "--decode-overlap", "sometimes")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--st3d", required=True)
    ap.add_argument("--part", choices=("torch", "corpus", "memory", "stream"), required=True)
    ap.add_argument("--hold-tool", help="build/tests/classify/stream_hold (--part stream)")
    a = ap.parse_args()
    parts = {"torch": part_torch, "corpus": part_corpus, "memory": part_memory,
             "stream": lambda st3d, tmp: part_stream(st3d, a.hold_tool, tmp)}
    with tempfile.TemporaryDirectory(prefix="st3d-classify-") as tmp:
        parts[a.part](os.path.abspath(a.st3d), tmp)
    C.finish()
    sys.exit(1 if C.failures else 0)


if __name__ == "__main__":
    main()
