"""Helpers shared by the video-and-data tests: locating the st3d program,
running ffmpeg to make inputs, and comparing arrays.  Every test makes its
inputs at run time in a temporary folder."""
import os
import subprocess
import sys
import tempfile

import numpy as np


def st3d_path():
    """The st3d program: $ST3D, or argv[1] when given."""
    if len(sys.argv) > 1:
        return sys.argv[1]
    return os.environ.get("ST3D", "st3d")


def run(cmd, check=True, **kw):
    """Runs cmd, returning the CompletedProcess (text output)."""
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        raise AssertionError("command failed (%d): %s\nstdout: %s\nstderr: %s"
                             % (p.returncode, " ".join(map(str, cmd)), p.stdout, p.stderr))
    return p


def loop_padding(frames, size):
    """The original temporal_transforms.py's LoopPadding: the run repeated
    from its start until it has size entries."""
    out = list(frames)
    i = 0
    while len(out) < size:
        out.append(out[i])
        i += 1
    return out


def sliding_window(frames, size, step, limit=None):
    """The original's SlidingWindow(size, step) over the frame numbers frames:
    a window of consecutive numbers from every step-th entry, the first one
    cut short by the end loop-padded and last; at most limit windows
    (TemporalEvenCrop's use)."""
    out = []
    for b in frames[::step]:
        if limit is not None and len(out) >= limit:
            break
        e = min(frames[-1] + 1, b + size)
        s = list(range(b, e))
        if len(s) < size:
            out.append(loop_padding(s, size))
            break
        out.append(s)
    return out


def ffmpeg(*args):
    run(["ffmpeg", "-nostdin", "-v", "error", "-y"] + [str(a) for a in args])


def ffmpeg_rgb(path, vf=None, flags="bilinear"):
    """ffmpeg's own RGB24 frames of path (every frame, no duplication)."""
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path)]
    if vf:
        cmd += ["-vf", vf]
    cmd += ["-sws_flags", flags, "-vsync", "passthrough", "-f", "rawvideo",
            "-pix_fmt", "rgb24", "-"]
    p = subprocess.run(cmd, capture_output=True, check=True)
    return np.frombuffer(p.stdout, np.uint8)


def ffprobe_times(path):
    """Presentation times (s) of the frames ffprobe decodes, in order."""
    p = run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
             "frame=best_effort_timestamp_time", "-of", "csv=p=0", str(path)])
    return [float(x.strip().strip(",")) for x in p.stdout.split() if x.strip().strip(",")]


def tmpdir():
    return tempfile.TemporaryDirectory(prefix="st3d-data-test-")


class Checker:
    """Collects failures so that one run reports them all."""

    def __init__(self):
        self.failures = []
        self.n = 0

    def check(self, ok, what):
        self.n += 1
        if ok:
            print("ok   " + what)
        else:
            print("FAIL " + what)
            self.failures.append(what)

    def finish(self):
        print("%d checks, %d failed" % (self.n, len(self.failures)))
        sys.exit(1 if self.failures else 0)
