"""`st3d make-dataset motion`: the built-in dataset of videos whose class is
a motion.  Checks the UCF-101 layout and split files (re-derived here from
UCF-101's naming rules), that `st3d make-annotations --dataset ucf101` turns
it into the original code's JSON with the right labels, subsets and
segments, that ffprobe decodes every video with the frame count, size and
rate asked for, byte-identical files from the same seed (and different ones
from another), resuming (also after a kill, which leaves no partial video),
--force, the bad options, and that no single frame tells the class (nearest
class mean classifiers on single-frame pixels and colour statistics score
near chance on the test videos) while the motion does (the same classifier
on the shape's translation relative to the background, from an affine motion
estimate, scores far above chance)."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

ST3D = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ST3D", "st3d")
CLASSES = ["MoveLeft", "MoveRight", "MoveUp", "MoveDown", "MoveUpLeft", "MoveUpRight",
           "MoveDownLeft", "MoveDownRight"]
PER_GROUP = 4  # clips per group


class Checker:
    """Collects failures so that one run reports them all."""

    def __init__(self):
        self.failures, self.n = [], 0

    def check(self, ok, what):
        self.n += 1
        print(("ok   " if ok else "FAIL ") + what, flush=True)
        if not ok:
            self.failures.append(what)

    def finish(self):
        print("%d checks, %d failed" % (self.n, len(self.failures)))
        sys.exit(1 if self.failures else 0)


C = Checker()


def st3d(*args):
    return subprocess.run([ST3D] + [str(a) for a in args], capture_output=True, text=True)


def make(d, *opts):
    return st3d("make-dataset", "motion", d, *opts)


def expected(n_classes, train, test):
    """{class: [(file name, is_test)]} as UCF-101 names clips: test videos in
    the first groups, training videos in the following ones."""
    out = {}
    for c in CLASSES[:n_classes]:
        names = []
        name = lambda g, j: "v_%s_g%02d_c%02d.avi" % (c, g + j // PER_GROUP + 1, j % PER_GROUP + 1)
        names += [(name(0, i), True) for i in range(test)]
        names += [(name(-(-test // PER_GROUP), j), False) for j in range(train)]
        out[c] = names
    return out


def files(d):
    """Relative path -> bytes of every file under d."""
    return {str(p.relative_to(d)): p.read_bytes()
            for p in sorted(Path(d).rglob("*")) if p.is_file()}


def videos(d):
    """Every file under d/videos (temporaries included), relative to d."""
    return sorted(str(p.relative_to(d)) for p in (Path(d) / "videos").rglob("*") if p.is_file())


def decode(path):
    with av.open(str(path)) as f:
        return np.stack([x.to_ndarray(format="rgb24") for x in f.decode(video=0)])


def one_line_error(p, what, needle):
    lines = p.stderr.strip().split("\n")
    C.check(p.returncode == 2 and len(lines) == 1 and needle in lines[0] and not p.stdout,
            "%s: exit 2, one line naming '%s' (rc %d: %s)" % (what, needle, p.returncode,
                                                                p.stderr.strip()))


# ------------------------------------------------------- layout and content

def check_small(tmp):
    a = tmp / "a"
    t = time.time()
    p = make(a, "--classes", 4, "--train-per-class", 3, "--test-per-class", 1, "--frames", 24,
             "--size", 64, "--fps", 15, "--seed", 7, "--threads", 2)
    print("  4 classes x 4 videos x 24 frames at 64x64: %.2f s" % (time.time() - t))
    C.check(p.returncode == 0, "make-dataset runs (%s)" % p.stderr.strip())
    counts = (p.stdout.split("\n") + ["", ""])[1]
    C.check("16 written, 0 already there" in counts, "summary counts: " + counts)
    cmd = ("st3d make-annotations --dataset ucf101 --src %s/splits --video-path %s/videos "
           "--dst %s/motion.json" % (a, a, a))
    C.check(cmd in p.stdout, "summary gives the make-annotations command")
    exp = expected(4, 3, 1)
    want = sorted("%s/%s" % (c, n) for c, v in exp.items() for n, _ in v)
    have = [v[len("videos/"):] for v in videos(a)]
    C.check(have == want, "videos as UCF-101 names them, nothing else (no temporary): %s..."
            % have[:2])
    C.check(sorted(x.name for x in a.iterdir()) == ["motion_params.txt", "splits", "videos"],
            "DIR holds videos/, splits/, motion_params.txt")
    s = a / "splits"
    C.check((s / "classInd.txt").read_text() == "".join("%d %s\n" % (i + 1, c)
                                                       for i, c in enumerate(CLASSES[:4])),
            "classInd.txt: '1 MoveLeft' ... '4 MoveDown'")
    train = "".join("%s/%s %d\n" % (c, n, i + 1) for i, (c, v) in enumerate(exp.items())
                    for n, is_test in v if not is_test)
    test = "".join("%s/%s\n" % (c, n) for c, v in exp.items() for n, is_test in v if is_test)
    C.check((s / "trainlist01.txt").read_text() == train,
            "trainlist01.txt: 'Class/v_...avi k' lines")
    C.check((s / "testlist01.txt").read_text() == test, "testlist01.txt: 'Class/v_...avi' lines")
    groups = lambda txt: {(l.split("/")[0], l.split("_g")[1][:2]) for l in txt.split("\n") if l}
    C.check(not groups(train) & groups(test), "no group in both the training and the test list")

    bad = []
    for v in videos(a):
        q = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                            "-show_entries", "stream=codec_name,width,height,r_frame_rate,"
                            "avg_frame_rate,nb_read_frames", "-of", "json", str(a / v)],
                           capture_output=True, text=True)
        st = json.loads(q.stdout or "{}").get("streams", [{}])[0]
        if (q.returncode or q.stderr or st.get("codec_name") != "mpeg4" or st.get("width") != 64
                or st.get("height") != 64 or st.get("r_frame_rate") != "15/1"
                or st.get("avg_frame_rate") != "15/1" or st.get("nb_read_frames") != "24"):
            bad.append((v, st, q.stderr.strip()))
    C.check(not bad, "ffprobe -count_frames: all 16 videos MPEG-4, 24 frames, 64x64, 15 fps %s"
            % bad[:1])

    js = a / "motion.json"
    p = st3d("make-annotations", "--dataset", "ucf101", "--src", s, "--video-path", a / "videos",
             "--dst", js)
    C.check(p.returncode == 0, "make-annotations --dataset ucf101 on it (%s)" % p.stderr.strip())
    ann = json.loads(js.read_text()) if js.exists() else {"labels": [], "database": {}}
    C.check(ann["labels"] == CLASSES[:4], "annotation labels: the class names in order")
    ref = {n[:-4]: {"subset": "validation" if is_test else "training",
                    "annotations": {"label": c, "segment": [1, 25]}}
           for c, v in exp.items() for n, is_test in v}
    C.check(ann["database"] == ref, "annotation database: every video, its subset, label and "
            "segment [1, 25]")
    return a


def check_determinism(tmp, a):
    opts = ["--classes", 4, "--train-per-class", 3, "--test-per-class", 1, "--frames", 24,
            "--size", 64, "--fps", 15, "--threads", 1]
    b, c = tmp / "b", tmp / "c"
    make(b, *opts, "--seed", 7)
    make(c, *opts, "--seed", 8)
    fa, fb, fc = files(a), files(b), files(c)
    fa.pop("motion.json", None)
    C.check(fa == fb, "same seed (1 thread vs 2): byte-identical videos and split files")
    vids = [k for k in fa if k.startswith("videos/")]
    C.check(all(fa[k] != fc.get(k) for k in vids) and sorted(fc) == sorted(fa),
            "another seed: same names, every video different")

    # a rerun resumes: nothing is rewritten
    mt = {v: (a / v).stat().st_mtime_ns for v in videos(a)}
    p = make(a, *opts, "--seed", 7)
    C.check(p.returncode == 0 and "0 written, 16 already there" in p.stdout
            and all((a / v).stat().st_mtime_ns == t for v, t in mt.items()),
            "rerun with the same options: keeps all 16 videos untouched (%s)"
            % (p.stdout.split("\n") + ["", ""])[1])
    one_line_error(make(a, *opts, "--seed", 8), "other options into a dataset folder", "seed 8")
    # --force replaces it, leaving nothing of the old dataset
    opts2 = opts[:]
    opts2[1] = 2
    p = make(a, *opts2, "--seed", 8, "--force")
    fa = files(a)
    C.check(p.returncode == 0 and "8 written" in p.stdout, "--force replaces the dataset")
    C.check(sorted(x.name for x in (a / "videos").iterdir()) == ["MoveLeft", "MoveRight"]
            and all(fa[k] == fc[k] for k in fa if k.startswith("videos/"))
            and (a / "splits" / "classInd.txt").read_text() == "1 MoveLeft\n2 MoveRight\n",
            "--force with 2 classes: only their videos (equal to seed 8's), old classes gone")


def check_kill(tmp):
    d = tmp / "k"
    opts = ["--classes", 8, "--train-per-class", 4, "--test-per-class", 1, "--frames", 48,
            "--threads", 2]
    proc = subprocess.Popen([ST3D, "make-dataset", "motion", str(d)] + [str(o) for o in opts],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while time.time() - t0 < 30 and proc.poll() is None and len(videos(d)) < 3:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = [v for v in videos(d) if not Path(v).name.startswith(".")]
    short = [v for v in done if decode(d / v).shape != (48, 128, 128, 3)]
    C.check(not short, "killed run (%d of 40 videos there): every video there is whole" % len(done))
    p = make(d, *opts)
    C.check(p.returncode == 0 and "%d written, %d already there" % (40 - len(done), len(done))
            in p.stdout, "rerun finishes it: " + (p.stdout.split("\n")[1:2] or [p.stderr])[0])
    C.check(len(videos(d)) == 40 and (d / "splits" / "testlist01.txt").exists(),
            "40 videos, no temporary file left, split files written")


def check_bad(tmp):
    d = tmp / "bad"
    for args, needle in [
            (["--classes", 0], "--classes"), (["--classes", 9], "--classes"),
            (["--classes", "x"], "--classes"), (["--train-per-class", 0], "--train-per-class"),
            (["--test-per-class", -1], "--test-per-class"), (["--frames", 0], "--frames"),
            (["--size", 63], "--size"), (["--size", 16], "--size"), (["--fps", 0], "--fps"),
            (["--threads", -1], "--threads"), (["--seed", "abc"], "--seed"),
            (["--seed", "-3"], "--seed"), (["--bogus"], "--bogus"), (["--frames"], "--frames")]:
        one_line_error(make(d, *args), " ".join(map(str, args)), needle)
    C.check(not d.exists(), "bad options create nothing")
    one_line_error(st3d("make-dataset", "shapes", d), "unknown kind", "'shapes'")
    f = tmp / "plainfile"
    f.write_text("x")
    one_line_error(make(f / "sub"), "DIR under a regular file", "plainfile/sub")
    one_line_error(make(f), "DIR is a regular file", "not a folder")
    (tmp / "foreign").mkdir()
    (tmp / "foreign" / "notes.txt").write_text("mine")
    one_line_error(make(tmp / "foreign"), "DIR: a non-empty folder of something else", "force")
    C.check(st3d("make-dataset").returncode == 2, "no arguments: usage, exit 2")
    h = st3d("make-dataset", "--help")
    lines = h.stdout.split("\n")
    ok = all(any(l.strip().startswith(o) and dflt in l for l in lines)
             for o, dflt in [("--classes", "(8)"), ("--train-per-class", "(100)"),
                             ("--test-per-class", "(20)"), ("--frames", "(48)"),
                             ("--size", "(128)"), ("--fps", "(25)"), ("--seed", "(1)"),
                             ("--threads", "default 0"), ("--force", "")])
    C.check(h.returncode == 0 and ok, "--help lists every option with its default")
    C.check("make-dataset" in st3d("--help").stdout, "st3d --help lists make-dataset")


# ----------------------------------------------- what frames tell the class

def ncm(xtr, ytr, xte, yte, k):
    """Accuracy of the nearest class mean (features standardised)."""
    mu = np.stack([xtr[ytr == c].mean(0) for c in range(k)])
    sd = xtr.std(0) + 1e-6
    d = (((xte[:, None, :] - mu[None]) / sd) ** 2).sum(-1)
    return float((d.argmin(1) == yte).mean())


def blur(x, s):
    r = int(3 * s)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / s) ** 2)
    k /= k.sum()
    x = sum(w * np.roll(x, i - r, -1) for i, w in enumerate(k))
    return sum(w * np.roll(x, i - r, -2) for i, w in enumerate(k))


def motion(fr):
    """Per pair of consecutive frames: the shape's motion relative to the
    background's, as (translation x, translation y, divergence, curl) of an
    affine motion.  The background's translation is fitted first to the
    brightness-constancy constraint Ix u + Iy v + It = 0 (robustly, Cauchy
    reweighting); pixels it explains badly are the shape, whose affine
    motion is then fitted around their centre (on the torus), reweighting
    pixels by which of the two motions explains them better."""
    g = blur(fr.mean(-1) / 255.0, 1.5)
    T, H, W = g.shape
    ix = (np.roll(g, -1, 2) - np.roll(g, 1, 2)) / 2
    iy = (np.roll(g, -1, 1) - np.roll(g, 1, 1)) / 2
    a = (0.5 * (ix[1:] + ix[:-1])).reshape(T - 1, -1)
    b = (0.5 * (iy[1:] + iy[:-1])).reshape(T - 1, -1)
    c = (g[1:] - g[:-1]).reshape(T - 1, -1)
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    X, Y = xs.ravel(), ys.ravel()
    G = np.stack([a, b], -1)
    w = np.ones_like(a)
    for _ in range(4):
        WG = G * w[..., None]
        bg = np.linalg.solve(WG.transpose(0, 2, 1) @ G + 1e-9 * np.eye(2),
                             -(WG.transpose(0, 2, 1) @ c[..., None]))[..., 0]
        res = (G @ bg[..., None])[..., 0] + c
        sig = 1.5 * np.median(np.abs(res), 1, keepdims=True) + 1e-9
        w = 1 / (1 + (res / sig) ** 2)
    rb2 = res ** 2
    wf = np.where(w < 0.5, 1 - w, 0)
    ang = 2 * np.pi / W
    cx = (np.angle((wf * np.exp(1j * X * ang)).sum(1)) / ang % W)[:, None]
    cy = (np.angle((wf * np.exp(1j * Y * ang)).sum(1)) / ang % H)[:, None]
    px = ((X - cx + W / 2) % W - W / 2) / W
    py = ((Y - cy + H / 2) % H - H / 2) / H
    phi = np.stack([a, a * px, a * py, b, b * px, b * py], -1)
    for _ in range(3):
        WP = phi * wf[..., None]
        p = np.linalg.solve(WP.transpose(0, 2, 1) @ phi + 1e-9 * np.eye(6),
                            -(WP.transpose(0, 2, 1) @ c[..., None]))[..., 0]
        rf2 = ((phi @ p[..., None])[..., 0] + c) ** 2
        wf = rb2 / (rb2 + rf2 + 1e-12) * (rb2 > sig ** 2)
    return np.stack([p[:, 0] - bg[:, 0], p[:, 3] - bg[:, 1], p[:, 1] + p[:, 5],
                     p[:, 4] - p[:, 2]], 1)


def translation(fr):
    """Per pair of consecutive frames: the global translation (u, v) that
    best explains the change by brightness constancy, per axis."""
    g = blur(fr.mean(-1) / 255.0, 1.0)
    it = g[1:] - g[:-1]
    ix = 0.5 * (np.gradient(g, axis=2)[1:] + np.gradient(g, axis=2)[:-1])
    iy = 0.5 * (np.gradient(g, axis=1)[1:] + np.gradient(g, axis=1)[:-1])
    u = -(ix * it).sum((1, 2)) / ((ix * ix).sum((1, 2)) + 1e-12)
    v = -(iy * it).sum((1, 2)) / ((iy * iy).sum((1, 2)) + 1e-12)
    return np.stack([u, v], 1)


def check_single_frames(tmp):
    d = tmp / "sep"
    k = 8
    t = time.time()
    p = make(d, "--train-per-class", 8, "--test-per-class", 4, "--frames", 12, "--size", 64,
             "--seed", 3)
    C.check(p.returncode == 0, "8 classes x 12 videos x 12 frames at 64x64 (%.1f s)"
            % (time.time() - t))
    t = time.time()
    sets = []
    for lst in ("trainlist01.txt", "testlist01.txt"):
        vids = []
        for line in (d / "splits" / lst).read_text().split("\n"):
            if line:
                rel = line.split()[0]
                vids.append((CLASSES.index(rel.split("/")[0]), decode(d / "videos" / rel)))
        sets.append(vids)
    tr, te = sets

    def feats(vids, f):
        x = [f(v.astype(np.float64)) for _, v in vids]
        return np.concatenate(x), np.concatenate([[c] * len(f_) for (c, _), f_ in zip(vids, x)])

    def vidfeats(vids, f):
        return (np.stack([f(v.astype(np.float64)).mean(0) for _, v in vids]),
                np.array([c for c, _ in vids]))

    pixels = lambda v: v.reshape(len(v), 16, 4, 16, 4, 3).mean((2, 4)).reshape(len(v), -1)
    edges = lambda v, ax: np.abs(np.diff(v.mean(-1), axis=ax)).mean((1, 2))[:, None]
    colour = lambda v: np.concatenate([v.mean((1, 2)), v.std((1, 2)), edges(v, 1), edges(v, 2)], 1)
    chance = 1 / k
    acc = ncm(*feats(tr, pixels), *feats(te, pixels), k)
    C.check(acc < chance + 0.15, "single frames (16x16 pixels), nearest class mean: %.3f on the "
            "test frames (chance %.3f)" % (acc, chance))
    acc = ncm(*feats(tr, colour), *feats(te, colour), k)
    C.check(acc < chance + 0.15, "single frames (colour mean, spread, edges), nearest class mean: "
            "%.3f (chance %.3f)" % (acc, chance))
    acc = ncm(*vidfeats(tr, pixels), *vidfeats(te, pixels), k)
    C.check(acc < chance + 0.2, "videos' mean frame (16x16 pixels), nearest class mean: %.3f "
            "on the 32 test videos (chance %.3f)" % (acc, chance))
    # the class is the direction of the shape's motion: the frame's global
    # translation from brightness constancy (Ix u + Iy v + It = 0, least
    # squares per axis), which the shape's strong edges dominate
    acc = ncm(*vidfeats(tr, translation), *vidfeats(te, translation), k)
    C.check(acc > 0.5, "videos' mean translation (brightness constancy), nearest class mean: "
            "%.3f (chance %.3f)" % (acc, chance))
    acc = ncm(*vidfeats(tr, motion), *vidfeats(te, motion), k)
    C.check(acc > 0.25, "videos' mean motion (shape vs background: translation, divergence, "
            "curl), nearest class mean: %.3f (chance %.3f)" % (acc, chance))
    print("  decoding and classifiers: %.1f s" % (time.time() - t))


def main():
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="st3d-make-dataset-") as tmp:
        tmp = Path(tmp)
        a = check_small(tmp)
        check_determinism(tmp, a)
        check_kill(tmp)
        check_bad(tmp)
        check_single_frames(tmp)
    print("%.1f s" % (time.time() - t0))
    C.finish()


main()
