"""Bad input: an empty file, a text file named .mp4, truncated files, a
header declaring 100000x100000 pixels, a missing frame in a folder, a label
not in "labels", malformed JSON.  Each must give one clear message naming
the file, and the loader must go on with the other videos (counting the
skipped ones) instead of crashing or hanging."""
import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from common import Checker, ffmpeg, run, st3d_path, tmpdir

ST3D = st3d_path()
C = Checker()


def decode_fails(path, what):
    p = run([ST3D, "decode", str(path)], check=False, timeout=60)
    msg = p.stderr.strip()
    C.check(p.returncode != 0 and str(path) in msg and "\n" not in msg,
            "%s: refused with one line naming the file: %r" % (what, msg))


def folder(d, n, w=64, h=48):
    d.mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        a = np.full((h, w, 3), (i * 20) % 256, np.uint8)
        Image.fromarray(a).save(d / ("image_%05d.jpg" % i))


with tmpdir() as d:
    d = Path(d)
    good = ["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25", "-t", "1", "-c:v", "libx264",
            "-pix_fmt", "yuv420p"]
    ffmpeg(*good, d / "good.mp4")
    ffmpeg(*good, "-movflags", "+faststart", d / "fast.mp4")
    (d / "empty.mp4").write_bytes(b"")
    (d / "text.mp4").write_text("this is not a video, just some text\n" * 20)
    data = (d / "good.mp4").read_bytes()
    (d / "trunc.mp4").write_bytes(data[: len(data) // 2])   # moov at the end: lost
    fast = (d / "fast.mp4").read_bytes()
    (d / "trunc_fast.mp4").write_bytes(fast[: len(fast) // 3])  # index kept, frames lost
    (d / "huge.y4m").write_bytes(b"YUV4MPEG2 W100000 H100000 F25:1 Ip A1:1 C420jpeg\nFRAME\n"
                                 + b"\x80" * 4096)
    decode_fails(d / "missing.mp4", "a file that does not exist")
    decode_fails(d / "empty.mp4", "an empty file")
    decode_fails(d / "text.mp4", "a text file named .mp4")
    decode_fails(d / "trunc.mp4", "a truncated MP4 (index at the end)")
    p = run([ST3D, "decode", str(d / "trunc_fast.mp4"), "--frames", "0,24"], check=False, timeout=60)
    C.check(p.returncode != 0 and str(d / "trunc_fast.mp4") in p.stderr,
            "a truncated faststart MP4: asking for its last frame fails naming it: %r"
            % p.stderr.strip())
    decode_fails(d / "huge.y4m", "a Y4M header declaring 100000x100000")
    # an AVI whose headers (avih and the stream's BITMAPINFOHEADER) say 100000x100000
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25", "-frames:v", "3", "-c:v",
           "rawvideo", "-pix_fmt", "bgr24", d / "raw.avi")
    b = bytearray((d / "raw.avi").read_bytes())
    i = b.find(b"avih") + 8 + 4 * 8
    b[i:i + 8] = struct.pack("<II", 100000, 100000)
    i = b.find(b"strf") + 8 + 4
    b[i:i + 8] = struct.pack("<ii", 100000, 100000)
    (d / "huge.avi").write_bytes(bytes(b))
    decode_fails(d / "huge.avi", "an AVI header declaring 100000x100000")
    p = run([ST3D, "decode", str(d / "huge.avi")], check=False, timeout=60)
    C.check("100000x100000" in p.stderr, "the message says what was declared: %r" % p.stderr.strip())

    # a dataset mixing good and bad videos; the loader must skip the bad ones
    root = d / "videos"
    folder(root / "a" / "ok1", 10)
    folder(root / "a" / "gap", 10)
    os.remove(root / "a" / "gap" / "image_00004.jpg")
    folder(root / "b" / "ok2", 6)
    folder(root / "b" / "badjpeg", 6)
    (root / "b" / "badjpeg" / "image_00002.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    folder(root / "b" / "mixed", 8)  # frame 5 of another size than the clip's first
    Image.fromarray(np.zeros((60, 80, 3), np.uint8)).save(root / "b" / "mixed" / "image_00005.jpg")
    folder(root / "b" / "hugejpeg", 3)
    j = bytearray((root / "b" / "hugejpeg" / "image_00001.jpg").read_bytes())
    k = j.find(b"\xff\xc0")
    j[k + 5:k + 9] = b"\xff\xff\xff\xff"  # SOF0 height and width 65535
    (root / "b" / "hugejpeg" / "image_00001.jpg").write_bytes(bytes(j))
    for name in ("good", "empty", "text", "trunc", "trunc_fast"):
        shutil.copy(d / (name + ".mp4"), root / "a" / (name + "_v.mp4"))
    db = {
        "ok1": {"subset": "training", "annotations": {"label": "a", "segment": [1, 11]}},
        "gap": {"subset": "training", "annotations": {"label": "a", "segment": [1, 11]}},
        "ok2": {"subset": "training", "annotations": {"label": "b", "segment": [1, 7]}},
        "badjpeg": {"subset": "training", "annotations": {"label": "b", "segment": [1, 7]}},
        "hugejpeg": {"subset": "training", "annotations": {"label": "b", "segment": [1, 4]}},
        "mixed": {"subset": "training", "annotations": {"label": "b", "segment": [1, 9]}},
        "good_v": {"subset": "training", "annotations": {"label": "a", "segment": [1, 26]}},
        "empty_v": {"subset": "training", "annotations": {"label": "a", "segment": [1, 26]}},
        "text_v": {"subset": "training", "annotations": {"label": "a", "segment": [1, 26]}},
        "trunc_v": {"subset": "training", "annotations": {"label": "a", "segment": [1, 26]}},
        "trunc_fast_v": {"subset": "training", "annotations": {"label": "a", "segment": [1, 26]}},
        "strange": {"subset": "training", "annotations": {"label": "zebra", "segment": [1, 11]}},
        "absent": {"subset": "training", "annotations": {"label": "a", "segment": [1, 11]}},
    }
    ann = d / "ann.json"
    ann.write_text(json.dumps({"labels": ["a", "b"], "database": db}))
    for threads in (1, 2):
        p = run([ST3D, "sample-clips", "--annotation-path", ann, "--video-path", root,
                 "--out-dir", d / ("out%d" % threads), "--batch-size", "3", "--n-threads",
                 str(threads), "--sample-size", "32", "--sample-duration", "16",
                 "--train-crop", "center", "--n-epochs", "2"], check=False, timeout=120)
        err = p.stderr
        C.check(p.returncode == 0, "loader (%d threads) finishes despite bad videos (rc %d)"
                % (threads, p.returncode))
        lines = [l for l in open(d / ("out%d" % threads) / "clips.jsonl")]
        ids = sorted({json.loads(l)["video_id"] for l in lines})
        C.check(ids == ["good_v", "ok1", "ok2"], "only the good videos are delivered: %s" % ids)
        C.check("picture is 80x60, frame 1 of the clip 64x48" in err,
                "a frame of another size is named with both sizes")
        C.check(len(lines) == 6, "3 good videos x 2 epochs = 6 clips (%d)" % len(lines))
        for bad, what in (("gap/image_00004.jpg", "missing frame"),
                          ("badjpeg/image_00002.jpg", "corrupt JPEG"),
                          ("hugejpeg/image_00001.jpg", "65535x65535 JPEG header"),
                          ("mixed/image_00005.jpg", "frame of another size"),
                          ("empty_v.mp4", "empty video"), ("text_v.mp4", "text as .mp4"),
                          ("trunc_v.mp4", "truncated video"),
                          ("trunc_fast_v.mp4", "truncated faststart video")):
            n = sum(1 for l in err.splitlines() if "skipped" in l and bad in l)
            C.check(n == 1, "%s (%s) reported exactly once over 2 epochs (%d)" % (bad, what, n))
        C.check("label 'zebra' is not in \"labels\"" in err and str(ann) in err,
                "unknown label reported naming the annotation file")
        C.check("absent" in err and "no frame folder or video" in err, "missing video reported")
        C.check(err.count("8 videos skipped") == 2,
                "each epoch ends with the count of skipped videos")
    # malformed JSON
    bad = d / "broken.json"
    bad.write_text('{"labels": ["a"], "database": {"x": {"subset": "training",, }}}')
    p = run([ST3D, "sample-clips", "--annotation-path", bad, "--video-path", root, "--out-dir",
             d / "outb"], check=False, timeout=60)
    C.check(p.returncode != 0 and str(bad) in p.stderr and "line 1" in p.stderr,
            "malformed JSON: %r" % p.stderr.strip())
C.finish()
