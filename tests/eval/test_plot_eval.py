"""`st3d plot` and `st3d eval`.

plot: train.log and val.log are written here exactly as the original
3D-ResNets-PyTorch's Logger writes them (utils.py: csv.writer with delimiter
'\\t' on a file opened with open(path, 'w'), a header row, one row per epoch);
the picture's size is checked, each panel's frame is found by its black
lines, and the training and validation colours must lie where the logged
values map to (and nowhere else in the columns of the epochs).

eval: video-level accuracy is recomputed here from the rule of the
original's util_scripts/eval_accuracy.py (ground truth = every video of the
subset; results sorted by score, stable; a missing video counts as wrong
unless --ignore) and compared exactly with st3d's JSON; the confusion
matrix picture is checked cell by cell against the row-normalised counts.

Error paths: missing and malformed logs and JSON, a results label not in
the annotation's labels: exit status 1 and one line naming the file.
"""
import csv
import json
import math
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ST3D = sys.argv[1] if len(sys.argv) > 1 else "st3d"
TRAIN_RGB = np.array([31, 119, 180])  # the plot's training colour (tab:blue)
VAL_RGB = np.array([255, 127, 14])    # validation (tab:orange)


class Checker:
    """Collects failures so that one run reports them all."""

    def __init__(self):
        self.failures, self.n = [], 0

    def check(self, ok, what):
        self.n += 1
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            self.failures.append(what)

    def finish(self):
        print("%d checks, %d failed" % (self.n, len(self.failures)))
        sys.exit(1 if self.failures else 0)


C = Checker()


def st3d(*args):
    return subprocess.run([ST3D] + [str(a) for a in args], capture_output=True, text=True)


def one_line_error(p, *needles):
    """Exit status 1, one line on stderr containing every needle."""
    lines = p.stderr.strip().splitlines()
    return p.returncode == 1 and len(lines) == 1 and all(n in lines[0] for n in needles)


def write_log(path, header, rows):
    """As the original's Logger: csv.writer(open(path, 'w'), delimiter='\\t')."""
    f = open(path, "w")
    w = csv.writer(f, delimiter="\t")
    w.writerow(header)
    for r in rows:
        w.writerow([r[c] for c in header])
        f.flush()
    f.close()


def rgb(path):
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def black(im):
    return (im < 40).all(axis=2)


def near(im, x, y, color, r=2, tol=40):
    """Some pixel within r of (x, y) has colour within tol of color."""
    x, y = int(round(x)), int(round(y))
    win = im[y - r:y + r + 1, x - r:x + r + 1]
    return (np.abs(win - color).max(axis=2) <= tol).any()


def frames_of_panels(im):
    """Plot-area frames (x0, y0, x1, y1) of the two panels: in each half of
    the picture, the two columns and the two rows with long black runs."""
    out = []
    h, w = im.shape[:2]
    for half in (slice(0, w // 2), slice(w // 2, w)):
        b = black(im[:, half])
        cols = np.nonzero(b.sum(axis=0) > 0.5 * h)[0] + half.start
        rows = np.nonzero(b.sum(axis=1) > 0.3 * w // 2)[0]
        if len(cols) != 2 or len(rows) != 2:
            return None
        out.append((cols[0], rows[0], cols[1], rows[1]))
    return out


# ----------------------------------------------------------------------- plot

def curves(n):
    """Per-epoch values, far enough apart that training never hides under
    validation: validation loss 4.0 at epoch 1 and training loss 3.6 (so
    the loss axis is exactly [0, 4] with or without val.log), accuracy in
    [0, 1] (axis [0, 1])."""
    tr, va = [], []
    for e in range(1, n + 1):
        tl = 3.3 * math.exp(-(e - 1) / 8.0) + 0.3
        ta = 0.8 * (1 - math.exp(-(e - 1) / 6.0)) + 0.15
        tr.append({"epoch": e, "loss": tl, "acc": ta, "lr": 0.1 if e < 15 else 0.01})
        va.append({"epoch": e, "loss": tl + 0.4, "acc": ta - 0.1})
    return tr, va


def check_curve_pixels(im, frames, rows, color, other, name):
    """Every logged point is drawn in `color` where its value maps, and no
    pixel of that colour lies elsewhere in that epoch's column."""
    n = len(rows)
    bad_at, stray = [], []
    for panel, key, top in ((0, "loss", 4.0), (1, "acc", 1.0)):
        x0, y0, x1, y1 = frames[panel]
        for r in rows:
            x = x0 + (r["epoch"] - 1) / (n - 1) * (x1 - x0)
            y = y1 - r[key] / top * (y1 - y0)
            if not near(im, x, y, color):
                bad_at.append((key, r["epoch"]))
            col = im[y0 + 2:y1 - 1, int(round(x))]
            hit = np.nonzero(np.abs(col - color).max(axis=1) <= 40)[0] + y0 + 2
            if len(hit) and (np.abs(hit - y) > 7).any():
                stray.append((key, r["epoch"]))
    C.check(not bad_at, "%s: %d points of each panel at their (epoch, value) pixels%s"
            % (name, n, "" if not bad_at else "; missing at %s" % bad_at[:5]))
    C.check(not stray, "%s: nothing of that colour elsewhere in the epochs' columns%s"
            % (name, "" if not stray else " (%s)" % stray[:5]))


def test_plot(root):
    run = root / "run"
    run.mkdir()
    tr, va = curves(30)
    write_log(run / "train.log", ["epoch", "loss", "acc", "lr"], tr)
    write_log(run / "val.log", ["epoch", "loss", "acc"], va)
    C.check(open(run / "train.log", "rb").read().split(b"\n")[0] == b"epoch\tloss\tacc\tlr\r",
            "train.log as the Logger writes it (tabs, \\r\\n)")
    p = st3d("plot", run)
    png = run / "curves.png"
    C.check(p.returncode == 0 and png.exists(), "st3d plot RESULT_PATH writes curves.png: %s"
            % p.stderr.strip())
    if not png.exists():
        return
    im = rgb(png)
    C.check(im.shape == (520, 1200, 3), "1200 x 520 pixels: %s" % (im.shape,))
    nonwhite = (im < 250).any(axis=2).mean()
    C.check(0.02 < nonwhite < 0.5, "not blank: %.3f of the pixels drawn" % nonwhite)
    fr = frames_of_panels(im)
    C.check(fr is not None, "a black frame around each panel's plot area: %s" % (fr,))
    if fr is None:
        return
    C.check(fr[0][1] == fr[1][1] and fr[0][3] == fr[1][3], "both panels at the same height")
    check_curve_pixels(im, fr, tr, TRAIN_RGB, VAL_RGB, "training")
    check_curve_pixels(im, fr, va, VAL_RGB, TRAIN_RGB, "validation")
    C.check(not [f for f in run.iterdir() if ".tmp" in f.name], "no temporary file left")

    # train.log alone: no validation colour anywhere; --output elsewhere
    (run / "val.log").unlink()
    out = root / "alone.png"
    p = st3d("plot", run, "--output", out)
    ok = p.returncode == 0 and out.exists()
    C.check(ok, "train.log alone, --output FILE: %s" % p.stderr.strip())
    if ok:
        im2 = rgb(out)
        orange = (np.abs(im2 - VAL_RGB).max(axis=2) <= 40).sum()
        x0, y0, x1, y1 = fr[0]  # epoch 1's training loss, 3.6 of [0, 4]
        C.check(orange == 0 and near(im2, x0, y1 - 0.9 * (y1 - y0), TRAIN_RGB),
                "train only: no validation colour (%d pixels), training drawn" % orange)

    # errors: one line naming the file (and the line)
    bad = root / "bad"
    bad.mkdir()
    p = st3d("plot", bad)
    C.check(one_line_error(p, "train.log"), "missing train.log: %r" % p.stderr.strip())
    write_log(bad / "train.log", ["epoch", "loss", "acc", "lr"], tr[:5])
    text = open(bad / "train.log").read().split("\n")
    text[3] = "3\tabc\t0.5\t0.1\r"
    open(bad / "train.log", "w").write("\n".join(text))
    p = st3d("plot", bad)
    C.check(one_line_error(p, "train.log: line 4", "abc"), "a value that is no number: %r"
            % p.stderr.strip())
    write_log(bad / "train.log", ["epoch", "loss", "acc", "lr"], tr[:5])
    with open(bad / "val.log", "w") as f:
        f.write("epoch\tloss\tacc\r\n1\t2.0\t0.5\r\n2\t1.5\r\n")
    p = st3d("plot", bad)
    C.check(one_line_error(p, "val.log: line 3", "2 fields"), "a short row in val.log: %r"
            % p.stderr.strip())
    with open(bad / "val.log", "w") as f:
        f.write("epoch\tloss\r\n1\t2.0\r\n")
    p = st3d("plot", bad)
    C.check(one_line_error(p, "val.log: line 1", "acc"), "a header without acc: %r"
            % p.stderr.strip())
    C.check(not (bad / "curves.png").exists(), "nothing written on error")


# ----------------------------------------------------------------------- eval

def make_eval_inputs(root, n_classes, seed):
    """An annotation JSON (the original's layout) and inference results
    (main.py --inference: top-5 label/score lists), with missing videos,
    results for other subsets, unsorted lists and tied scores."""
    rnd = random.Random(seed)
    labels = ["class %02d %s" % (i, "abcdefgh"[i % 8] * (3 + i % 9)) for i in range(n_classes)]
    db, results, truth = {}, {}, {}
    for i in range(n_classes * 12):
        vid = "v_%05d" % i
        c = rnd.randrange(n_classes - 1)  # the last class has no video
        subset = "training" if i % 4 == 0 else "validation"
        db[vid] = {"subset": subset, "annotations": {"label": labels[c], "segment": [1, 50]}}
        truth[vid] = c
        if subset == "validation" and rnd.random() < 0.08:
            continue  # missing from the results
        # scores: the true class likely high; some ties
        scores = [rnd.random() for _ in range(n_classes)]
        scores[c] += rnd.choice([0.0, 0.3, 0.8, 1.5])
        order = sorted(range(n_classes), key=lambda k: -scores[k])[:5]
        ent = [{"label": labels[k], "score": scores[k]} for k in order]
        if rnd.random() < 0.15:  # a tie between the first two, in file order
            ent[1]["score"] = ent[0]["score"]
        rnd.shuffle(ent)  # eval_accuracy.py sorts them itself
        results[vid] = ent
    ann = root / ("ann%d.json" % n_classes)
    res = root / ("res%d.json" % n_classes)
    ann.write_text(json.dumps({"labels": labels, "database": db}))
    res.write_text(json.dumps({"results": results}))
    return ann, res, labels, db, results


def reference(labels, db, results, k, ignore):
    """eval_accuracy.py's rule, written out again, plus per class."""
    index = {l: i for i, l in enumerate(labels)}
    gt = [(v, index[e["annotations"]["label"]]) for v, e in db.items()
          if e["subset"] == "validation"]
    ranked = {}
    for v, ent in results.items():
        s = sorted(((index[e["label"]], e["score"]) for e in ent), key=lambda t: t[1],
                   reverse=True)  # stable: ties keep file order
        ranked[v] = [t[0] for t in s]
    n = len(labels)
    out = {"n_videos": len(gt), "n_missing": sum(1 for v, _ in gt if v not in ranked)}
    counted = [(v, c) for v, c in gt if v in ranked] if ignore else gt
    present = [(v, c) for v, c in gt if v in ranked]
    out["top1"] = sum(1 for v, c in present if ranked[v][0] == c) / len(counted)
    out["top%d" % k] = sum(1 for v, c in present if c in ranked[v][:k]) / len(counted)
    per, accs = [], []
    for ci in range(n):
        vids = [v for v, c in gt if c == ci]
        miss = sum(1 for v in vids if v not in ranked)
        den = len(vids) - (miss if ignore else 0)
        t1 = sum(1 for v in vids if v in ranked and ranked[v][0] == ci)
        tk = sum(1 for v in vids if v in ranked and ci in ranked[v][:k])
        per.append({"label": labels[ci], "n_videos": len(vids), "n_missing": miss,
                    "top1": t1 / den if den else None, "top%d" % k: tk / den if den else None})
        if den:
            accs.append(t1 / den)
    s = 0.0
    for a in accs:
        s += a
    out["mean_class_top1"] = s / len(accs)
    out["per_class"] = per
    conf = [[0] * n for _ in range(n)]
    for v, c in present:
        conf[c][ranked[v][0]] += 1
    out["confusion"] = conf
    return out


def matrix_frame(im):
    """(x0, y0, side) of the cells inside the longest black horizontal lines."""
    b = black(im)
    best = []
    for y in range(b.shape[0]):
        row = np.concatenate([[0], b[y].astype(int), [0]])
        d = np.diff(row)
        starts, ends = np.nonzero(d == 1)[0], np.nonzero(d == -1)[0]
        if len(starts):
            j = np.argmax(ends - starts)
            best.append((ends[j] - starts[j], y, starts[j]))
    longest = max(best)[0]
    rows = [t for t in best if t[0] == longest]
    if len(rows) != 2:
        return None
    (_, ya, xa), (_, yb, _) = rows
    return xa + 1, ya + 1, longest - 2, yb - ya - 1


def check_confusion_png(path, ref, n, name):
    if not path.exists():
        C.check(False, "%s: confusion PNG written" % name)
        return
    im = rgb(path)
    fr = matrix_frame(im)
    C.check(fr is not None and fr[2] == fr[3] and fr[2] % n == 0,
            "%s: %s picture, matrix framed, square, %d whole cells a side: %s"
            % (name, im.shape[1::-1], n, fr))
    if fr is None or fr[2] % n:
        return
    x0, y0, side, _ = fr
    cell = side // n
    lum, vals, wrong_grey = [], [], 0
    for i in range(n):
        tot = sum(ref["confusion"][i])
        for j in range(n):
            px = im[y0 + i * cell + min(2, cell // 3), x0 + j * cell + min(2, cell // 3)]
            if tot == 0:
                wrong_grey += int(np.abs(px - 209).max() > 3)
                continue
            lum.append(px.mean())
            vals.append(ref["confusion"][i][j] / tot)
    lum, vals = np.array(lum), np.array(vals)
    # darker exactly where the fraction is higher: compare every pair that differs clearly
    o = np.argsort(vals, kind="stable")
    v, l = vals[o], lum[o]
    inversions = 0
    for a in range(len(v)):
        later = v > v[a] + 0.05
        inversions += int((l[later] > l[a] + 1).sum())
    C.check(inversions == 0 and lum[vals == 0].min() > 240 and lum[vals == 1].max(initial=0) < 80,
            "%s: every cell's shade follows its row-normalised fraction (%d inversions)"
            % (name, inversions))
    C.check(wrong_grey == 0, "%s: rows without videos grey" % name)


def test_eval(root):
    ann, res, labels, db, results = make_eval_inputs(root, 8, 3)
    for ignore in (False, True):
        out = root / ("summary%d.json" % ignore)
        conf = root / ("confusion8_%d.png" % ignore)
        args = ["eval", "--results", res, "--annotation-path", ann, "--subset", "validation",
                "--top-k", "5", "--confusion", conf, "--output-json", out]
        p = st3d(*(args + (["--ignore"] if ignore else [])))
        tag = "--ignore" if ignore else "missing count as wrong"
        C.check(p.returncode == 0, "st3d eval (%s): %s" % (tag, p.stderr.strip()))
        if p.returncode:
            continue
        got = json.loads(out.read_text())
        ref = reference(labels, db, results, 5, ignore)
        for key in ("n_videos", "n_missing", "top1", "top5", "mean_class_top1", "per_class",
                    "confusion"):
            C.check(got.get(key) == ref[key], "%s: %s equals eval_accuracy.py's rule%s"
                    % (tag, key, "" if got.get(key) == ref[key] else
                       ": %r vs %r" % (got.get(key), ref[key])))
        if not ignore:
            C.check(ref["n_missing"] > 0 and "top-1 accuracy: %.4f" % ref["top1"] in p.stdout,
                    "prints top-1 %.4f with %d missing videos" % (ref["top1"], ref["n_missing"]))
            check_confusion_png(conf, ref, 8, "8 classes")

    # many classes: names in small type, still whole cells
    ann101, res101, l101, db101, r101 = make_eval_inputs(root, 101, 5)
    conf = root / "confusion101.png"
    p = st3d("eval", "--results", res101, "--annotation-path", ann101, "--confusion", conf,
             "--quiet")
    C.check(p.returncode == 0, "101 classes: %s" % p.stderr.strip())
    if p.returncode == 0:
        check_confusion_png(conf, reference(l101, db101, r101, 5, False), 101, "101 classes")

    # errors
    base = ["eval", "--annotation-path", ann, "--results"]
    p = st3d(*(base + [root / "absent.json"]))
    C.check(one_line_error(p, "absent.json"), "missing results file: %r" % p.stderr.strip())
    broken = root / "broken.json"
    broken.write_text(res.read_text()[:200])
    p = st3d(*(base + [broken]))
    C.check(one_line_error(p, "broken.json", "line"), "malformed results JSON: %r"
            % p.stderr.strip())
    stranger = json.loads(res.read_text())
    vid = sorted(v for v, e in db.items() if e["subset"] == "validation" and v in results)[0]
    stranger["results"][vid][0]["label"] = "no such class"
    odd = root / "stranger.json"
    odd.write_text(json.dumps(stranger))
    p = st3d(*(base + [odd, "--output-json", root / "never.json"]))
    C.check(one_line_error(p, "stranger.json", vid, "no such class"),
            "a results label not in the annotation's labels: %r" % p.stderr.strip())
    C.check(not (root / "never.json").exists(), "nothing written on error")
    p = st3d("eval", "--annotation-path", broken, "--results", res)
    C.check(one_line_error(p, "broken.json", "line"), "malformed annotation JSON: %r"
            % p.stderr.strip())


def main():
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="st3d-eval-test-") as d:
        test_plot(Path(d))
        test_eval(Path(d))
    print("%.1f s" % (time.time() - t0))
    C.finish()


main()
