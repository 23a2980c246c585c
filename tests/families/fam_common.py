"""Harness shared by tests/families: one case = a PyTorch network with random
weights (written to safetensors), an `st3d forward` comparison in eval mode
and an `st3d train-steps` comparison after K SGD steps.

Reference truth
  "f64"     the PyTorch module in float64 on the CPU (oneDNN off, it has no
            float64 anyway).  This is the default.
  "f32dnn"  the PyTorch module in float32 with PyTorch's own oneDNN on.  Only
            for C3D: it needs 16 x 112 x 112 clips (77 GFLOPs each) and
            Debian's PyTorch does its non-oneDNN convolutions through the
            reference BLAS (about 1 GFLOP/s), so a float64 C3D run would take
            tens of minutes.

Metric, per tensor: max|st3d - ref| / max|ref| (common.rel_err).  Forward
logits and features must be within tol_fwd (1e-4); after the training steps
every parameter, running statistic and last-step gradient, and every loss,
within tol_train (1e-3); num_batches_tracked equal; key sets and dtypes as
PyTorch's state_dict.

Decision boundaries: when a training case fails, the reference run's ReLU
inputs in "few values" layers (<= 64 values per channel, where one flipped
unit moves a whole channel's batch statistics or gradient row) are checked;
if one lies within 1e-4 (relative to its tensor's RMS) of zero, the input is
re-drawn with the next seed (deterministic, at most twice) and the case
reruns; this is printed.  A failure without such a boundary is a failure.
"""
import copy
import os
import re
import sys
import time
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.join(os.path.dirname(HERE), "reference")
for p in (HERE, REF):
    if p not in sys.path:
        sys.path.insert(0, p)
import common  # noqa: E402  (tests/reference, shared helpers)
import st_io  # noqa: E402

torch.backends.mkldnn.enabled = False

FEW_VALUES = 64          # per-channel count at or below which a ReLU is "few values"
BOUNDARY = 1e-4          # relative distance to zero that counts as a decision boundary
MAX_REDRAWS = 2


def seed_for(*parts):
    return zlib.crc32("/".join(str(p) for p in parts).encode()) & 0x7FFFFFFF


class Case:
    """name; st3d_args (model options, no --n-classes); make() -> float32 module;
    call(model, x) -> (logits, features); fwd/train shapes (None = skip);
    fwd_args / train_args: extra st3d options for that part; ref: "f64" or "f32dnn"."""

    def __init__(self, name, st3d_args, make, call, fwd_shape, train_shape, n_classes,
                 ref="f64", fwd_args=(), train_args=()):
        self.name, self.st3d_args, self.make, self.call = name, list(st3d_args), make, call
        self.fwd_shape, self.train_shape, self.n_classes = fwd_shape, train_shape, n_classes
        self.ref, self.fwd_args, self.train_args = ref, list(fwd_args), list(train_args)


class Result:
    def __init__(self, name):
        self.name = name
        self.ok = True
        self.notes = []
        self.fwd = None
        self.worst = {}
        self.secs = [0.0, 0.0]

    def fail(self, msg):
        self.ok = False
        self.notes.append(msg)

    def note(self, kind, err, key):
        if kind not in self.worst or err > self.worst[kind][0]:
            self.worst[kind] = (err, key)


class ReluWatch:
    """Forward pre-hooks on every nn.ReLU: smallest |x| / rms(x) among ReLUs
    with <= FEW_VALUES values per channel (dim 1)."""

    def __init__(self, model):
        self.margin = float("inf")
        self.where = None
        self.handles = []
        for name, m in model.named_modules():
            if isinstance(m, nn.ReLU):
                self.handles.append(m.register_forward_pre_hook(self._hook(name)))

    def _hook(self, name):
        def f(_m, inp):
            x = inp[0].detach()
            if x.dim() < 2 or x.numel() // x.shape[1] > FEW_VALUES:
                return
            rms = float(x.double().pow(2).mean().sqrt()) + 1e-30
            m = float(x.abs().min()) / rms
            if m < self.margin:
                self.margin, self.where = m, name
        return f

    def close(self):
        for h in self.handles:
            h.remove()


def reference_context(ref):
    """(dtype, mkldnn enabled) of a reference kind."""
    return (torch.float64, False) if ref == "f64" else (torch.float32, True)


def ref_forward(case, model, x):
    dtype, dnn = reference_context(case.ref)
    m = copy.deepcopy(model).to(dtype).eval()
    torch.backends.mkldnn.enabled = dnn
    try:
        with torch.no_grad():
            y, f = case.call(m, x.to(dtype))
    finally:
        torch.backends.mkldnn.enabled = False
    return y.double().numpy(), f.double().numpy()


def ref_train(case, model, x, labels, steps, lr):
    dtype, dnn = reference_context(case.ref)
    m = copy.deepcopy(model).to(dtype).train()
    watch = ReluWatch(m)
    opt = torch.optim.SGD(m.parameters(), lr=lr, momentum=0.9, weight_decay=1e-3)
    torch.backends.mkldnn.enabled = dnn
    losses = []
    try:
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(m(x.to(dtype)), labels)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    finally:
        torch.backends.mkldnn.enabled = False
        watch.close()
    state = {k: v.detach().clone() for k, v in m.state_dict().items()}
    grads = {k: p.grad.detach().clone() for k, p in m.named_parameters()}
    return losses, state, grads, (watch.margin, watch.where)


MARGIN = None


def build_model(case):
    """The case's float32 module with random weights; BN running statistics
    calibrated on a random batch (PyTorch's oneDNN on: float32, fast)."""
    torch.manual_seed(seed_for(case.name, "torch"))
    gen = torch.Generator().manual_seed(seed_for(case.name, "weights"))
    model = case.make()
    import ref_families as RF
    shape = case.train_shape or case.fwd_shape
    calib = torch.randn(shape, generator=gen)
    torch.backends.mkldnn.enabled = True
    try:
        RF.randomize(model, gen, calib, lambda m, x: m(x), margin=MARGIN)
    finally:
        torch.backends.mkldnn.enabled = False
    return model


def _compare(res, label, mine, ref, tol):
    missing = [k for k in ref if k not in mine]
    extra = [k for k in mine if k not in ref]
    if missing:
        res.fail("%s: %d keys missing, e.g. %s" % (label, len(missing), missing[0]))
    if extra:
        res.fail("%s: %d unexpected keys, e.g. %s" % (label, len(extra), extra[0]))
    for k, rv in ref.items():
        if k not in mine:
            continue
        a = mine[k]
        if k.endswith("num_batches_tracked"):
            ok = a.shape == tuple(rv.shape) and a.dtype == np.int64 and \
                int(a.reshape(-1)[0]) == int(rv.reshape(-1)[0])
            res.note("count", 0.0 if ok else 1.0, k)
            if not ok:
                res.fail("%s: %s (%s), expected %d" % (k, a.tolist(), a.dtype, int(rv)))
            continue
        if a.dtype != np.float32:
            res.fail("%s %s: dtype %s, expected float32" % (label, k, a.dtype))
        b = rv.double().numpy()
        if a.shape != b.shape:
            res.fail("%s %s: shape %s, expected %s" % (label, k, a.shape, b.shape))
            continue
        e = common.rel_err(a, b)
        kind = label if label == "grad" else ("stat" if "running_" in k else "param")
        res.note(kind, e, k)
        if e > tol:
            res.fail("%s %s: rel err %.3g > %g" % (label, k, e, tol))


def run_forward(case, model, wpath, args, tmp, res):
    gen = torch.Generator().manual_seed(seed_for(case.name, "input"))
    x = torch.randn(case.fwd_shape, generator=gen)
    xp, yp, fp = (os.path.join(tmp, case.name + s) for s in ("-x.npy", "-y.npy", "-f.npy"))
    np.save(xp, x.numpy())
    t0 = time.time()
    y, f = ref_forward(case, model, x)
    res.secs[0] += time.time() - t0
    t0 = time.time()
    p = common.run([args.st3d, "forward"] + case.st3d_args + case.fwd_args +
                   ["--n-classes", str(case.n_classes), "--threads", str(args.threads),
                    "--weights", wpath, "--input", xp, "--output", yp, "--features", fp])
    res.secs[1] += time.time() - t0
    if p.returncode != 0:
        res.fail("forward exit %d: %s" % (p.returncode, p.stderr.strip()[-300:]))
        return
    errs = []
    for what, path, ref in (("logits", yp, y), ("features", fp, f)):
        a = np.load(path)
        if a.dtype != np.float32:
            res.fail("forward %s dtype %s" % (what, a.dtype))
        if a.shape != ref.shape:
            res.fail("forward %s shape %s, expected %s" % (what, a.shape, ref.shape))
            errs.append(float("inf"))
            continue
        e = common.rel_err(a, ref)
        errs.append(e)
        if e > args.tol_fwd:
            res.fail("forward %s: rel err %.3g > %g" % (what, e, args.tol_fwd))
    res.fwd = tuple(errs)


def run_train_once(case, model, wpath, args, tmp, attempt):
    """One training comparison; returns (Result, boundary margin, where)."""
    res = Result(case.name)
    gen = torch.Generator().manual_seed(seed_for(case.name, "train-input", attempt))
    x = torch.randn(case.train_shape, generator=gen)
    labels = torch.randint(0, case.n_classes, (case.train_shape[0],), generator=gen,
                           dtype=torch.int64)
    xp, lp = os.path.join(tmp, case.name + "-tx.npy"), os.path.join(tmp, case.name + "-tl.npy")
    op, gp = (os.path.join(tmp, case.name + s) for s in ("-out.safetensors", "-g.safetensors"))
    np.save(xp, x.numpy())
    np.save(lp, labels.numpy())
    t0 = time.time()
    losses, state, grads, (margin, where) = ref_train(case, model, x, labels, args.steps, args.lr)
    res.secs[0] += time.time() - t0
    t0 = time.time()
    p = common.run([args.st3d, "train-steps"] + case.st3d_args + case.train_args +
                   ["--n-classes", str(case.n_classes), "--threads", str(args.threads),
                    "--weights", wpath, "--input", xp, "--labels", lp,
                    "--steps", str(args.steps), "--lr", repr(args.lr), "--momentum", "0.9",
                    "--weight-decay", "1e-3", "--output", op, "--grads", gp])
    res.secs[1] += time.time() - t0
    if p.returncode != 0:
        res.fail("train-steps exit %d: %s" % (p.returncode, p.stderr.strip()[-300:]))
        return res, margin, where
    got = [float(v) for v in re.findall(r"step\s+\d+\s+loss\s+(\S+)", p.stdout)]
    if len(got) != args.steps:
        res.fail("train-steps printed %d loss lines, expected %d" % (len(got), args.steps))
    else:
        for i, (a, b) in enumerate(zip(got, losses)):
            e = abs(a - b) / abs(b)
            res.note("loss", e, "step%d" % (i + 1))
            if e > args.tol_train:
                res.fail("loss step %d: %.7g vs %.7g (rel %.3g)" % (i + 1, a, b, e))
    try:
        out, _ = st_io.load(op)
        gr, _ = st_io.load(gp)
    except Exception as ex:  # noqa: BLE001
        res.fail("cannot read train-steps output: %s" % ex)
        return res, margin, where
    _compare(res, "state", out, state, args.tol_train)
    _compare(res, "grad", gr, grads, args.tol_train)
    return res, margin, where


def run_case(case, args, tmp):
    res = Result(case.name)
    t0 = time.time()
    model = build_model(case)
    wpath = os.path.join(tmp, case.name + ".safetensors")
    st_io.save(wpath, st_io.state_dict_to_numpy(model.state_dict()), {"format": "pt"})
    res.secs[0] += time.time() - t0
    if case.fwd_shape and not args.no_forward:
        run_forward(case, model, wpath, args, tmp, res)
    if case.train_shape and not args.no_train:
        for attempt in range(MAX_REDRAWS + 1):
            r, margin, where = run_train_once(case, model, wpath, args, tmp, attempt)
            res.secs[0] += r.secs[0]
            res.secs[1] += r.secs[1]
            if r.ok:
                break
            if margin < BOUNDARY and attempt < MAX_REDRAWS:
                res.notes.append("training input %d: %s; reference ReLU input %.2g x rms from 0 at "
                                 "%s (few-values layer) -> input re-drawn with seed %d"
                                 % (attempt, r.notes[0] if r.notes else "?", margin, where,
                                    attempt + 1))
                continue
            if margin < BOUNDARY:
                r.notes.append("reference has a ReLU input %.2g x rms from 0 at %s" % (margin, where))
            else:
                r.notes.append("no decision boundary in the reference (closest ReLU input in a "
                               "few-values layer: %.2g x rms at %s)" % (margin, where))
            break
        res.worst.update(r.worst)
        res.notes.extend(r.notes)
        res.ok = res.ok and r.ok
    return res


def fmt(e):
    return "-" if e is None else ("%.1e" % e)


def add_args(ap, lr=0.01):
    common.add_binary_arg(ap)
    ap.add_argument("--case", action="append", help="only cases whose name contains this")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tol-fwd", type=float, default=1e-4)
    ap.add_argument("--tol-train", type=float, default=1e-3)
    ap.add_argument("--no-forward", action="store_true")
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temporary files")


def run_all(cases, args):
    cases = [c for c in cases if not args.case or any(s in c.name for s in args.case)]
    if args.list:
        for c in cases:
            print("%-22s ref %-6s fwd %s train %s  st3d %s" % (
                c.name, c.ref, c.fwd_shape, c.train_shape, " ".join(c.st3d_args)))
        return 0
    if not cases:
        print("no case selected", file=sys.stderr)
        return 2
    common.check_binary(args.st3d)
    torch.set_num_threads(args.threads)
    results = []
    with common.TempDir(keep=args.keep, prefix="st3dfam-") as tmp:
        if args.keep:
            print("files in", tmp)
        for c in cases:
            r = run_case(c, args, tmp)
            results.append(r)
            print("%-22s %s  (torch %.1fs, st3d %.1fs)" % (r.name, "PASS" if r.ok else "FAIL",
                                                        r.secs[0], r.secs[1]), flush=True)
            for n in r.notes[:10]:
                print("    " + n)
            if len(r.notes) > 10:
                print("    ... %d more" % (len(r.notes) - 10))
    print()
    print("metric: per tensor max|st3d - ref| / max|ref|; tolerances: forward %g, train %g; "
          "lr %g, %d steps" % (args.tol_fwd, args.tol_train, args.lr, args.steps))
    hdr = ("case", "ref", "logits", "features", "loss", "param", "grad", "run stats", "nbt",
           "worst tensor", "result")
    print("%-22s %-6s %8s %8s %8s %8s %8s %9s %4s  %-40s %s" % hdr)
    nfail = 0
    byname = {c.name: c for c in cases}
    for r in results:
        lg, ft = r.fwd if r.fwd else (None, None)
        w = r.worst
        wn, we = "-", -1.0
        for kind in ("param", "grad", "stat"):
            if kind in w and w[kind][0] > we:
                we, wn = w[kind][0], w[kind][1]
        nbt = "-" if "count" not in w else ("ok" if w["count"][0] == 0 else "BAD")
        print("%-22s %-6s %8s %8s %8s %8s %8s %9s %4s  %-40s %s" % (
            r.name, byname[r.name].ref, fmt(lg), fmt(ft),
            fmt(w["loss"][0]) if "loss" in w else "-",
            fmt(w["param"][0]) if "param" in w else "-",
            fmt(w["grad"][0]) if "grad" in w else "-",
            fmt(w["stat"][0]) if "stat" in w else "-",
            nbt, wn[-40:], "PASS" if r.ok else "FAIL"))
        nfail += not r.ok
    print()
    print("%d/%d cases passed" % (len(results) - nfail, len(results)))
    return 1 if nfail else 0
