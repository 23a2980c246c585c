"""The one harness of st3d's comparisons with PyTorch (tests/torch/); its
settings, basics and metrics are in harness_base.py and its PyTorch
references in harness_refs.py, both re-exported here.

A *case* (Net) is a network of an independent PyTorch reference
(ref_resnet.py, ref_families.py, torchvision) with options for st3d.  It has
up to two *parts*, each with its own random weights and input:

  forward  `st3d forward` logits and pooled features vs the reference in eval
           mode (float32, oneDNN off);
  train    `st3d train-steps` (K = 2 SGD steps: momentum 0.9, weight decay
           1e-3, dampening 0, mean cross-entropy, batch norm on batch
           statistics) vs torch.optim.SGD over model.parameters(): the loss
           of each step, every parameter and running statistic after the
           steps (value and change), every last-step gradient (dL/dp before
           weight decay), num_batches_tracked, key sets, shapes and dtypes.

Seeding: everything random in a part is drawn from generators seeded with
seed(case name, part, purpose) = crc32 of "name/part/purpose".  A part is
computed once: no input or weight is ever re-drawn.

Metrics, per tensor, b = reference, a = st3d (see *_err below):
  logits, features          max|a - b| / max|b|                        <= TOL_FWD
  loss of each step         |a - b| / |b|                              <= TOL_LOSS
  param, stat (value)       max|a - b| / max|b|                        <= TOL_TRAIN
  update, stat (change)     max|(a-p0) - (b-p0)| / (max|b-p0| + 1e-3 max|p0|)
                            (what a wrong SGD or momentum rule alters;
                            the floor is float32 rounding of the stored
                            values, ~1 ulp per step)                   <= TOL_TRAIN
  grad                      max|a - b| / den                           <= TOL_TRAIN
  num_batches_tracked       p0 + K exactly, int64
A gradient is a sum whose terms largely cancel; S = the largest entry of the
same gradient computed from the absolute values of its terms (sum |x| |dy|
over batch and positions for a conv or fc weight, sum |dy xhat| and sum |dy|
for BN weight and bias; reference, last step).  float32 resolves a gradient
only to ~eps sqrt(n) S, so den depends on the reference's precision:
  reference f32 (oneDNN off): den = max|b| + 0.05 S for every parameter
     (two float32 sums are compared; PyTorch-f32 itself is 5e-4 of max|b|
     from float64 on ResNet-50 conv weights);
  reference f64: den = max|b|, and for BN parameters max(max|b|, 1e-3 S)
     (BN weight/bias gradients are ~0 by BN's invariance where another BN
     follows: a tiny remainder of large terms); a BN gradient's tolerance is
     also at least twice what summing each channel's terms one after another
     in float32 would be off by (computed from the reference's terms, never
     from st3d).

Undecided branches.  Where the two largest inputs of a max-pool window are
within TIE_REL_GAP (relative) of each other, float32 rounding decides which
one receives the window's gradient, and a correct implementation may pick
the other; likewise a ReLU input within RELU_REL_GAP x rms(its channel) of 0
may be on or off.  For every such window of every nn.MaxPool3d and every
such input of every nn.ReLU in the reference's training run, the change that
taking the other branch makes to every upstream parameter's gradient is
computed exactly (a vector-Jacobian product through the upstream graph);
the sums of their absolute values are the elementwise slack of the last
step's gradients, and through the SGD coefficients of the parameters' values
and changes.  Nothing is re-drawn.  More than MAX_DECISIONS of them fail the
part as ill-posed.  A case built to have no max-pool near-ties
(Net(no_ties=True): C3D's constructed clips) fails on any.

Exit status of a script: 0 when everything passes, 1 on a failure, 2 on
usage errors, 77 ("skipped") when PyTorch is not installed.
"""
import sys

sys.dont_write_bytecode = True   # before the next imports: no __pycache__ in the source tree

# settings, basics and metrics (HERE, st_io and the modules among them); then
# the PyTorch references
from harness_base import *  # noqa: E402,F401,F403
from harness_refs import *  # noqa: E402,F401,F403


# ------------------------------------------------------------------ report
KINDS = ("logits", "features", "loss", "param", "update", "grad", "stat", "nbt")


class Report:
    """The checks of one part of one case."""

    def __init__(self, name, part, ref=""):
        self.name, self.part, self.ref = name, part, ref
        self.ok = True
        self.failures = []
        self.notes = []
        self.lines = []      # every compared tensor (-v)
        self.worst = {}      # kind -> (err, tol, key)
        self.secs = [0.0, 0.0]   # torch, st3d

    def fail(self, msg):
        self.ok = False
        self.failures.append(msg)

    def check(self, kind, key, err, tol):
        """err <= tol (NaN fails); keeps the worst err / tol per kind."""
        ok = err <= tol
        self.lines.append("%-4s %-8s %-44s %9.2e <= %.1e" % ("ok" if ok else "FAIL", kind,
                                                           key[-44:], err, tol))
        w = self.worst.get(kind)
        r = err / tol if tol > 0 else (0.0 if err == 0 else float("inf"))
        if w is None or not r <= w[0]:
            self.worst[kind] = (r, err, tol, key)
        if not ok:
            self.fail("%s %s: error %.3g > %.3g" % (kind, key, err, tol))
        return ok

    def summary(self):
        out = []
        for k in KINDS:
            if k not in self.worst:
                continue
            r, err, tol, key = self.worst[k]
            if k == "nbt":
                out.append("nbt %s" % ("ok" if err == 0 else "BAD"))
            elif k == "grad":
                out.append("grad %.1e (%s)" % (err, key.split(" ")[0][-28:]))
            else:
                out.append("%s %.1e" % (k, err))
        return "  ".join(out)


class Runner:
    """Prints one line per part, failures and notes under it, and the
    closing 'N passed, M failed'."""

    def __init__(self, verbose=False):
        self.verbose = verbose
        self.passed = self.failed = 0
        self.t0 = time.time()
        print("%-28s %-8s %-4s %6s+%-5s %-5s %s" % ("case", "part", "ref", "torch", "st3d",
                                                   "", "worst error per kind"), flush=True)

    def add(self, rep):
        self.passed += rep.ok
        self.failed += not rep.ok
        print("%-28s %-8s %-4s %5.1fs+%4.1fs  %-5s %s" % (
            rep.name[:28], rep.part, rep.ref[:4], rep.secs[0], rep.secs[1],
            "PASS" if rep.ok else "FAIL", rep.summary()), flush=True)
        shown = rep.failures if self.verbose else rep.failures[:8]
        for m in shown:
            print("    FAIL " + m)
        if len(shown) < len(rep.failures):
            print("    ... %d more failures (-v shows all)" % (len(rep.failures) - len(shown)))
        for m in rep.notes:
            print("    note: " + m)
        if self.verbose:
            for ln in rep.lines:
                print("    " + ln)

    def close(self):
        print("%d passed, %d failed (%.1fs)" % (self.passed, self.failed, time.time() - self.t0),
              flush=True)
        return 1 if self.failed else 0


# ------------------------------------------------------------------ cases
def _ours(m, x):
    return m(x, return_features=True)


def normal_input(shape, gen):
    return torch.randn(shape, generator=gen)


class Net:
    """A whole-network case.

    st3d      the st3d model options, including --n-classes
    make()    -> the float32 reference module
    init(model, gen, shape, part) randomizes its weights (and BN statistics)
    call(model, x) -> (logits, features)
    fwd, train: input shapes of the parts (None: no such part)
    quick     the parts in the quick tier (the others are in the full tier)
    ref       precision of the training reference: "f32", "f64" or "auto"
              (f64 when PyTorch's float64 is fast here, else f32dnn)
    lr        the largest learning rate; a case trains at lr capped so
              that one step moves the logits by ~2 at most (case_lr)
    no_ties   the inputs are built without max-pool near-ties: any fails
    """

    def __init__(self, name, family, st3d, make, init, fwd, train, n_classes, quick=(),
                 call=_ours, ref="f32", lr=0.01, make_input=normal_input,
                 fwd_args=(), train_args=(), no_ties=False, shared_weights=False):
        self.name, self.family, self.st3d, self.make, self.init = name, family, list(st3d), make, init
        self.shapes = {"forward": fwd, "train": train}
        self.n_classes, self.quick, self.call, self.ref, self.lr = n_classes, tuple(quick), call, ref, lr
        self.make_input, self.no_ties = make_input, no_ties
        self.extra = {"forward": list(fwd_args), "train": list(train_args)}
        self.shared = shared_weights
        self._model = None

    def parts(self):
        return [p for p in ("forward", "train") if self.shapes[p] is not None]

    def tier(self, part):
        return "quick" if part in self.quick else "full"

    def build(self, part):
        """The part's float32 module with its random weights (with
        shared_weights, one module for both parts, calibrated on the
        training input's shape; built once)."""
        if self.shared:
            if self._model is None:
                torch.manual_seed(seed(self.name, "torch"))
                shape = self.shapes["train"] or self.shapes["forward"]
                self._model = self._make(generator(self.name, "weights"), shape, "train")
            return self._model
        torch.manual_seed(seed(self.name, part, "torch"))
        return self._make(generator(self.name, part, "weights"), self.shapes[part], part)

    def _make(self, gen, shape, part):
        model = self.make()
        with mkldnn(True):    # calibration: only sets weights, precision is moot
            self.init(model, gen, shape, part)
        return model

    def data(self, part):
        """(input, labels) of the part."""
        gen = generator(self.name, part, "input")
        shape = self.shapes[part]
        x = self.make_input(shape, gen)
        labels = torch.randint(0, self.n_classes, (shape[0],), generator=gen, dtype=torch.int64)
        return x, labels


def resolve_refs(cases):
    if any(c.ref == "auto" for c in cases):
        g = float64_gflops()
        kind = "f64" if g >= FAST_F64_GFLOPS else "f32dnn"
        print("PyTorch float64 matmul: %.1f GFLOP/s: 'auto' training references are %s"
              % (g, kind))
        for c in cases:
            if c.ref == "auto":
                c.ref = kind


def case_lr(case, model, x, lr_max=0.01):
    """lr_max capped so that one SGD step moves the logits by about 2 at
    most: fc's own update moves them by ~ lr * mean ||f||^2; a bigger step
    saturates the softmax, after which p - y is rounding noise."""
    m = copy.deepcopy(model).train()
    with torch.no_grad(), mkldnn(True):
        _, f = case.call(m, x)
    sq = float((f.double() ** 2).sum(dim=1).mean())
    lr = min(lr_max, 2.0 / sq) if sq > 0 else lr_max
    return float("%.3g" % lr)




# ------------------------------------------------------------------ st3d
class St3d:
    def __init__(self, path, threads=2, timeout=600, conv="auto"):
        self.path, self.threads, self.timeout, self.conv = path, threads, timeout, conv

    def __call__(self, rep, args):
        t0 = time.time()
        p = run([self.path] + list(args), timeout=self.timeout)
        if rep is not None:
            rep.secs[1] += time.time() - t0
        return p

    def forward(self, rep, opts, wpath, x, tmp, tag):
        """st3d forward; returns {"logits": array, "features": array} or None
        (failure reported)."""
        xp, yp, fp = (os.path.join(tmp, tag + s) for s in ("-x.npy", "-y.npy", "-f.npy"))
        np.save(xp, x.numpy())
        p = self(rep, ["forward"] + opts + ["--threads", str(self.threads), "--conv", self.conv,
                                            "--weights", wpath,
                                            "--input", xp, "--output", yp, "--features", fp])
        if p.returncode != 0:
            rep.fail("st3d forward: exit %d: %s" % (p.returncode, p.stderr.strip()[-300:]))
            return None
        out = {}
        for what, path in (("logits", yp), ("features", fp)):
            try:
                out[what] = np.load(path)
            except Exception as ex:  # noqa: BLE001
                rep.fail("st3d forward: cannot read its %s: %s" % (what, ex))
                return None
        return out

    def train(self, rep, opts, wpath, x, labels, lr, tmp, tag, steps=STEPS):
        """st3d train-steps; returns {"losses", "state", "grads"} or None."""
        xp, lp = os.path.join(tmp, tag + "-tx.npy"), os.path.join(tmp, tag + "-tl.npy")
        op, gp = os.path.join(tmp, tag + "-out.safetensors"), os.path.join(tmp, tag + "-g.safetensors")
        np.save(xp, x.numpy())
        np.save(lp, labels.numpy())
        p = self(rep, ["train-steps"] + opts +
                 ["--threads", str(self.threads), "--weights", wpath, "--input", xp,
                  "--labels", lp, "--steps", str(steps), "--lr", repr(lr),
                  "--momentum", repr(MOMENTUM), "--weight-decay", repr(WEIGHT_DECAY),
                  "--output", op, "--grads", gp])
        if p.returncode != 0:
            rep.fail("st3d train-steps: exit %d: %s" % (p.returncode, p.stderr.strip()[-300:]))
            return None
        losses = [float(v) for v in re.findall(r"step\s+\d+\s+loss\s+(\S+)", p.stdout)]
        try:
            state, _ = st_io.load(op)
            grads, _ = st_io.load(gp)
        except Exception as ex:  # noqa: BLE001
            rep.fail("st3d train-steps: cannot read its output: %s" % ex)
            return None
        return {"losses": losses, "state": state, "grads": grads}


def save_weights(model, path):
    st_io.save(path, st_io.state_dict_to_numpy(model.state_dict()), {"format": "pt"})


# ------------------------------------------------------------------ comparisons
def compare_forward(rep, out, ref, tol=TOL_FWD):
    """out: {"logits", "features"} of st3d; ref: the same of the reference."""
    for what in ("logits", "features"):
        if what not in out:
            rep.fail("forward: no %s" % what)
            continue
        a, b = out[what], ref[what]
        if a.dtype != np.float32:
            rep.fail("forward %s: dtype %s, expected float32" % (what, a.dtype))
        if a.shape != b.shape:
            rep.fail("forward %s: shape %s, expected %s" % (what, a.shape, b.shape))
            continue
        rep.check(what, what, max_err(a, b), tol)


def _keys(rep, label, mine, ref):
    missing = [k for k in ref if k not in mine]
    extra = [k for k in mine if k not in ref]
    if missing:
        rep.fail("%s: %d keys missing, e.g. %s" % (label, len(missing), missing[0]))
    if extra:
        rep.fail("%s: %d unexpected keys, e.g. %s" % (label, len(extra), extra[0]))


def _same_shape(rep, what, k, a, ref):
    """False (and a failure) when st3d's tensor k has another shape."""
    if tuple(a.shape) == tuple(ref.shape):
        return True
    rep.fail("%s %s: shape %s, expected %s" % (what, k, a.shape, tuple(ref.shape)))
    return False


def _is_float32(rep, what, k, a):
    if a.dtype != np.float32:
        rep.fail("%s %s: dtype %s, expected float32" % (what, k, a.dtype))


def compare_train(rep, got, r, tol_loss=TOL_LOSS, tol=TOL_TRAIN):
    """got: st3d's {"losses", "state", "grads"}; r: a TrainRef."""
    steps = len(r.losses)
    if len(got["losses"]) != steps:
        rep.fail("train-steps printed %d 'step k loss X' lines, expected %d"
                 % (len(got["losses"]), steps))
    else:
        for i, (a, b) in enumerate(zip(got["losses"], r.losses)):
            rep.check("loss", "step %d" % (i + 1), abs(a - b) / (abs(b) + 1e-30), tol_loss)
    state, grads = got["state"], got["grads"]
    _keys(rep, "state", state, r.state)
    _keys(rep, "grads", grads, r.grads)
    for k, rv in r.state.items():
        if k not in state or not _same_shape(rep, "state", k, state[k], rv):
            continue
        a = state[k]
        if k.endswith("num_batches_tracked"):
            ok = a.dtype == np.int64 and int(a.reshape(-1)[0]) == int(rv)
            rep.check("nbt", k, 0.0 if ok else 1.0, 0.0)
            if not ok:
                rep.failures[-1] += " (got %s %s, expected int64 %d)" % (
                    a.dtype, a.reshape(-1).tolist(), int(rv))
            continue
        _is_float32(rep, "state", k, a)
        kind = "stat" if "running_" in k else "param"
        slack = r.slack_param.get(k)
        rep.check(kind, k, max_err(a, rv, slack=slack), tol)
        rep.check("update" if kind == "param" else "stat", k + " (change)",
                  update_err(a, rv, r.init[k], slack), tol)
    for k, rv in r.grads.items():
        if k not in grads or not _same_shape(rep, "grads", k, grads[k], rv):
            continue
        a = grads[k]
        _is_float32(rep, "grads", k, a)
        rep.check("grad", k, *grad_err(a, rv, k, r, tol))


def grad_err(a, b, k, r, tol):
    """(err, tolerance) of one gradient tensor, see the header."""
    b = as64(b)
    mb = float(np.max(np.abs(b))) if b.size else 0.0
    S = r.S.get(k)
    den = mb
    if S is not None:
        den = mb + r.kind.grad_floor * S
        if k in r.bn:
            den = max(den, r.kind.bn_floor * S)
    err = max_err(a, b, den_floor=den - mb, slack=r.slack_grad.get(k))
    limit = tol
    if k in r.seq:
        limit = max(tol, 2.0 * r.seq[k])
    return err, limit


# ------------------------------------------------------------------ parts
def run_forward(case, st3d, tmp, f64_noise=False):
    rep = Report(case.name, "forward", "f32")
    t0 = time.time()
    model = case.build("forward")
    x, _ = case.data("forward")
    wpath = os.path.join(tmp, case.name + "-fwd.safetensors")
    save_weights(model, wpath)
    y, f = ref_forward(case, model, x)
    model.train()
    if f64_noise:
        y64, f64 = ref_forward(case, model, x, torch.float64)
        rep.notes.append("PyTorch-f32 vs f64: logits %.1e features %.1e"
                         % (max_err(y, y64), max_err(f, f64)))
    rep.secs[0] += time.time() - t0
    out = st3d.forward(rep, case.st3d + case.extra["forward"], wpath, x, tmp, case.name)
    if out is not None:
        compare_forward(rep, out, {"logits": y, "features": f})
    return rep


def decision_note(r):
    if not (r.ties or r.flips):
        return None
    worst, wk = 0.0, "-"
    for k, v in r.slack_grad.items():
        w = float(v.max()) / (float(r.grads[k].abs().max()) + 1e-30)
        if w > worst:
            worst, wk = w, k
    return ("%d near-tied max-pool window(s), %d near-zero ReLU input(s) over the %d steps: "
            "their exact effect is slack; largest share of a last-step gradient's max: %.2g (%s)"
            % (r.ties, r.flips, len(r.losses), worst, wk))


def reference_train_part(case, tmp, f64_noise=False, rep=None):
    """Builds the train part's weights and data and computes the reference:
    (wpath, x, labels, TrainRef)."""
    t0 = time.time()
    model = case.build("train")
    x, labels = case.data("train")
    wpath = os.path.join(tmp, case.name + "-train.safetensors")
    save_weights(model, wpath)
    lr = case_lr(case, model, x, case.lr)
    r = ref_train(case, model, x, labels, lr, case.ref)
    if rep is not None:
        if r.ties + r.flips > MAX_DECISIONS:
            rep.fail("reference: more than %d undecided ReLUs and max-pool windows: the case "
                     "is ill-posed, build a better conditioned one" % MAX_DECISIONS)
        if r.bn_values and r.bn_values[0] < MIN_BN_VALUES:
            rep.fail("reference: batch norm %s sees %d value(s) per channel (< %d): its batch "
                     "statistics are ill-conditioned; use a larger input" % (
                         r.bn_values[1], r.bn_values[0], MIN_BN_VALUES))
        if min(r.losses) < MIN_LOSS:
            rep.fail("reference: loss %.3g after a step: the softmax saturates and the next "
                     "step's gradients are rounding noise; lower the case's lr" % min(r.losses))
        if r.ties and case.no_ties:
            rep.fail("reference: %d near-tied max-pool window(s) in a case built to have none"
                     % r.ties)
        note = decision_note(r)
        if note:
            rep.notes.append(note)
        if f64_noise and case.ref != "f64":
            r64 = ref_train(case, model, x, labels, lr, "f64")
            noise = Report(case.name, "train")
            compare_train(noise, {"losses": r.losses, "state": {k: as64(v).astype(
                np.int64 if k.endswith("tracked") else np.float32) for k, v in r.state.items()},
                "grads": {k: as64(v).astype(np.float32) for k, v in r.grads.items()}}, r64)
            rep.notes.append("PyTorch-%s vs f64: %s" % (case.ref, noise.summary()))
        rep.secs[0] += time.time() - t0
    return wpath, x, labels, r


def run_train(case, st3d, tmp, f64_noise=False):
    rep = Report(case.name, "train", case.ref)
    wpath, x, labels, r = reference_train_part(case, tmp, f64_noise, rep)
    got = st3d.train(rep, case.st3d + case.extra["train"], wpath, x, labels, r.lr, tmp, case.name)
    if got is not None:
        compare_train(rep, got, r)
    return rep


def add_args(ap):
    ap.add_argument("--st3d", default=default_binary(),
                    help="the st3d program (default: $ST3D_BIN or build/st3d)")
    ap.add_argument("--tier", choices=("quick", "full", "all"), default="all",
                    help="quick: the parts marked quick; full: all others; all: both")
    ap.add_argument("--threads", type=int, default=2,
                    help="PyTorch's and st3d's threads (they never run at once)")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per st3d run")
    ap.add_argument("--keep", action="store_true", help="keep the temporary files")
    ap.add_argument("--conv", choices=("auto", "direct"), default="auto",
                    help="st3d forward's --conv: temporal Winograd where it pays (auto), or "
                         "the direct kernels only")
    ap.add_argument("--verbose", "-v", action="store_true", help="one line per compared tensor")


def main(cases, description, families=None):
    ap = argparse.ArgumentParser(description=description)
    add_args(ap)
    ap.add_argument("--family", action="append", choices=families,
                    help="only these families (repeatable)")
    ap.add_argument("--case", action="append", help="only cases whose name contains this")
    ap.add_argument("--part", choices=("forward", "train"), help="only this part")
    ap.add_argument("--list", action="store_true", help="list the selected parts and exit")
    ap.add_argument("--f64-noise", action="store_true",
                    help="also run float32 references in float64 and print their own error")
    args = ap.parse_args()
    todo = []
    for c in cases:
        if args.family and c.family not in args.family:
            continue
        if args.case and not any(s in c.name for s in args.case):
            continue
        for part in c.parts():
            if args.part and part != args.part:
                continue
            if args.tier != "all" and c.tier(part) != args.tier:
                continue
            todo.append((c, part))
    if args.list:
        for c, part in todo:
            print("%-28s %-10s %-8s %-5s %-18s %s" % (c.name, c.family, part, c.tier(part),
                                                      "x".join(map(str, c.shapes[part])),
                                                      " ".join(c.st3d + c.extra[part])))
        return 0
    if not todo:
        print("no case selected", file=sys.stderr)
        return 2
    check_binary(args.st3d)
    torch.set_num_threads(args.threads)
    resolve_refs([c for c, _ in todo])
    st3d = St3d(args.st3d, args.threads, args.timeout, args.conv)
    print("tolerances: logits/features %g, loss %g, parameters/statistics/gradients %g; "
          "metrics in tests/torch/harness.py; time = PyTorch + st3d" % (TOL_FWD, TOL_LOSS, TOL_TRAIN))
    out = Runner(args.verbose)
    with TempDir(keep=args.keep) as tmp:
        for c, part in todo:
            fn = run_forward if part == "forward" else run_train
            out.add(fn(c, st3d, tmp, args.f64_noise))
    return out.close()


class Checks:
    """Named pass/fail checks of a script that are not tensor comparisons:
    one line each, and the closing 'N passed, M failed'."""

    def __init__(self):
        self.passed = self.failed = 0
        self.t0 = time.time()

    def check(self, ok, what):
        print("%s  %s" % ("PASS" if ok else "FAIL", what), flush=True)
        self.passed += bool(ok)
        self.failed += not ok
        return ok

    def close(self):
        print("%d passed, %d failed (%.1fs)" % (self.passed, self.failed, time.time() - self.t0),
              flush=True)
        return 1 if self.failed else 0
