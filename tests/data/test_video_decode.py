"""st3d's video decoding against the ffmpeg program's: real videos are
encoded with ffmpeg (H.264/MP4, MPEG-4/AVI, VP9/WebM, MJPEG, odd sizes,
rotation metadata, variable frame rate, 3 frames), decoded by `st3d decode`
and compared byte for byte (or within 1) with ffmpeg's rgb24 output for the
same scaling, with the frame count and ffprobe's timestamps."""
import os

import numpy as np

from common import Checker, ffmpeg, ffmpeg_rgb, ffprobe_times, run, st3d_path, tmpdir

ST3D = st3d_path()
C = Checker()


def st3d_decode(path, out, *opts):
    p = run([ST3D, "decode", str(path), "--out", str(out)] + [str(o) for o in opts])
    lines = p.stdout.splitlines()
    head = lines[0].split()
    info = {head[i]: head[i + 1] for i in range(0, len(head) - 1, 2)}
    frames = [l.split() for l in lines[1:] if l.startswith("frame")]
    return info, frames, np.fromfile(out, np.uint8)


def compare(name, ours, ref, tol=0):
    if ours.size != ref.size:
        C.check(False, "%s: %d bytes, ffmpeg %d" % (name, ours.size, ref.size))
        return
    d = np.abs(ours.astype(int) - ref.astype(int)).max() if ours.size else 0
    C.check(d <= tol, "%s: max difference %d (allowed %d)" % (name, d, tol))


def case(name, path, vf=None, opts=(), flags="bilinear", tol=0, times=True):
    out = path.with_suffix(".st3d.rgb")
    info, frames, ours = st3d_decode(path, out, *opts)
    ref = ffmpeg_rgb(path, vf, flags)
    compare(name + " pixels", ours, ref, tol)
    w, h = int(info["width"]), int(info["height"])
    C.check(len(frames) * w * h * 3 == ref.size,
            "%s: %d frames of %dx%d" % (name, len(frames), w, h))
    C.check(int(info["frames"]) == len(frames), "%s: indexed frame count %s" % (name, info["frames"]))
    C.check([int(f[1]) for f in frames] == list(range(len(frames))), name + ": frame numbers 0..n-1")
    if times:
        ts = ffprobe_times(path)
        ok = len(ts) == len(frames) and all(abs(float(f[2]) - t) < 1e-4 for f, t in zip(frames, ts))
        C.check(ok, "%s: timestamps equal ffprobe's (%d)" % (name, len(ts)))
    return ref, w, h, info


with tmpdir() as d:
    from pathlib import Path
    d = Path(d)
    src = ["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25"]
    # H.264 in MP4, with B-frames (the encoder's default)
    ffmpeg(*src, "-t", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p", d / "h264.mp4")
    ref, w, h, _ = case("h264/mp4 native", d / "h264.mp4")
    case("h264/mp4 short side 64", d / "h264.mp4", "scale=-1:64", ["--short-side", 64])
    case("h264/mp4 50x37 bicubic", d / "h264.mp4", "scale=50:37", ["--width", 50, "--height", 37,
                                                                  "--scaler", "bicubic"], "bicubic")
    case("h264/mp4 frame threads", d / "h264.mp4", None, ["--threads", 2])
    # seeking to a time and frame-accurate extraction
    fsz = w * h * 3
    allf = ref.reshape(-1, fsz)
    info, frames, ours = st3d_decode(d / "h264.mp4", d / "seek.rgb", "--seek", 1.0, "--max-frames", 5)
    C.check([int(f[1]) for f in frames] == [25, 26, 27, 28, 29], "seek 1.0 s lands on frame 25")
    compare("seek 1.0 s pixels", ours, allf[25:30].ravel())
    want = [37, 5, 5, 20, 49, 0]
    info, frames, ours = st3d_decode(d / "h264.mp4", d / "pick.rgb", "--frames",
                                     ",".join(map(str, want)))
    compare("frames 37,5,5,20,49,0 pixels", ours, allf[want].ravel())
    # MPEG-4 part 2 in AVI, odd size
    ffmpeg(*src, "-t", "1", "-vf", "scale=97:55", "-c:v", "mpeg4", "-pix_fmt", "yuv420p",
           d / "mpeg4.avi")
    case("mpeg4/avi 97x55", d / "mpeg4.avi")
    case("mpeg4/avi 97x55 short side 32", d / "mpeg4.avi", "scale=-1:32", ["--short-side", 32])
    # VP9 in WebM, odd size
    ffmpeg(*src, "-t", "1", "-vf", "scale=97:55", "-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p",
           "-deadline", "realtime", "-cpu-used", "8", d / "vp9.webm")
    case("vp9/webm 97x55", d / "vp9.webm")
    # MJPEG (full-range YUV)
    ffmpeg(*src, "-t", "1", "-c:v", "mjpeg", d / "mjpeg.avi")
    case("mjpeg/avi", d / "mjpeg.avi")
    case("mjpeg/avi short side 90", d / "mjpeg.avi", "scale=-1:90", ["--short-side", 90])
    # rotation metadata: the ffmpeg program rotates (autorotate); so must st3d
    for rot in (90, 180, 270):
        ffmpeg("-i", d / "h264.mp4", "-c", "copy", "-metadata:s:v:0", "rotate=%d" % rot,
               d / ("rot%d.mp4" % rot))
        _, rw, rh, info = case("h264 rotate=%d" % rot, d / ("rot%d.mp4" % rot))
        C.check((rw, rh) == ((120, 160) if rot % 180 else (160, 120)),
                "rotate=%d: frames are %dx%d" % (rot, rw, rh))
    # variable frame rate: growing gaps between frames
    ffmpeg(*src, "-t", "2", "-vf", "setpts='(N+N*N/20)/25/TB'", "-vsync", "vfr", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", d / "vfr.mp4")
    ts = ffprobe_times(d / "vfr.mp4")
    gaps = np.diff(ts)
    C.check(gaps.max() > 1.5 * gaps.min(), "vfr input really has uneven gaps")
    case("h264 variable frame rate", d / "vfr.mp4")
    info, frames, ours = st3d_decode(d / "vfr.mp4", d / "vfr_seek.rgb", "--seek", ts[15] - 1e-3,
                                     "--max-frames", 2)
    C.check([int(f[1]) for f in frames] == [15, 16], "vfr: seek to frame 15 by its time")
    # 3-frame videos
    ffmpeg(*src, "-frames:v", "3", "-c:v", "libx264", "-pix_fmt", "yuv420p", d / "three.mp4")
    case("h264 3 frames", d / "three.mp4")
    ffmpeg(*src, "-frames:v", "3", "-c:v", "mpeg4", d / "three.avi")
    case("mpeg4 3 frames", d / "three.avi")

C.finish()
