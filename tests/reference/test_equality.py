#!/usr/bin/python3
"""st3d vs an independent PyTorch reference: eval-mode forward and SGD training.

For each case: a network from ref_models with random weights (BN gamma/beta and
running statistics randomised too, so BN is never the identity) is written to
safetensors, then

  (a) forward: `st3d forward` logits and pooled features vs PyTorch eval mode;
      pass when rel_err <= --tol-fwd (1e-4);
  (b) train:   `st3d train-steps` for --steps (2) SGD steps (lr 0.05,
      momentum 0.9, weight decay 1e-3, mean cross-entropy, BN in train mode)
      vs torch.optim.SGD over model.parameters(); every tensor of the final
      state_dict (parameters, running_mean, running_var), every gradient of
      the last step (raw dL/dp, before weight decay) and each step's loss
      must be within --tol-train (1e-3); num_batches_tracked must be equal.

Metric, per tensor: rel_err(a, b) = max|a - b| / max|b|  (b = PyTorch), i.e.
the largest deviation measured against the tensor's own scale.

The reference runs on the CPU in float32 with oneDNN disabled
(torch.backends.mkldnn.enabled = False).  With --f64 (default on) the same
computation is also done in float64 and reported as "f32 noise"
(PyTorch-f32 vs PyTorch-f64) and "st3d vs f64"; a tensor whose PyTorch-f32
value is itself further than the tolerance from float64 passes if st3d is
within 2x PyTorch-f32's own error of the float64 result (marked "~" then).

Exit status: 0 when every case passes, 1 on any failure, 2 on usage errors.
"""
import argparse
import copy
import os
import re
import sys
import time
import zlib

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import ref_models as R  # noqa: E402
import st_io  # noqa: E402

torch.backends.mkldnn.enabled = False

# name, family, depth, model options, forward input (N,C,T,H,W), train input or None,
# extra: underscore spelling of the options
CASES = [
    ("resnet10-A-in2", "resnet", 10, dict(shortcut="A", n_input_channels=2, n_classes=10),
     (2, 2, 16, 64, 64), (4, 2, 8, 48, 48), {}),
    ("resnet18-B", "resnet", 18, dict(),
     (2, 3, 16, 64, 64), (4, 3, 8, 48, 48), {}),
    ("resnet18-A-t3s2-nomp-w0.5", "resnet", 18,
     dict(shortcut="A", conv1_t_size=3, conv1_t_stride=2, no_max_pool=True, widen_factor=0.5,
          n_classes=13),
     (2, 3, 16, 48, 48), (3, 3, 12, 40, 40), dict(underscore=True)),
    ("resnet34-B-w0.25", "resnet", 34, dict(widen_factor=0.25, n_classes=9),
     (2, 3, 8, 48, 48), (4, 3, 8, 40, 40), {}),
    ("resnet50-A", "resnet", 50, dict(shortcut="A", n_classes=11),
     (2, 3, 8, 48, 48), (4, 3, 8, 40, 40), {}),
    ("resnet50-B-t5s2", "resnet", 50, dict(shortcut="B", conv1_t_size=5, conv1_t_stride=2, n_classes=8),
     (2, 3, 16, 48, 48), (3, 3, 16, 40, 40), {}),
    ("preresnet18-A", "preresnet", 18, dict(shortcut="A", n_classes=12),
     (2, 3, 16, 48, 48), (4, 3, 8, 48, 48), {}),
    ("preresnet50-B", "preresnet", 50, dict(n_classes=10),
     (2, 3, 8, 48, 48), (4, 3, 8, 40, 40), {}),
    ("wideresnet50-k1-A", "wideresnet", 50, dict(wide_k=1, shortcut="A", n_classes=10),
     (2, 3, 8, 48, 48), (4, 3, 8, 40, 40), {}),
    ("wideresnet50-k2-B", "wideresnet", 50, dict(n_classes=10),
     (2, 3, 8, 32, 32), None, {}),
    ("resnext50-B", "resnext", 50, dict(n_classes=10),
     (2, 3, 8, 48, 48), (4, 3, 8, 40, 40), {}),
    ("resnext50-A-nomp", "resnext", 50, dict(shortcut="A", no_max_pool=True, n_classes=6),
     (2, 3, 8, 32, 32), (3, 3, 8, 24, 24), {}),
]


class Result:
    def __init__(self, name):
        self.name = name
        self.ok = True
        self.notes = []
        self.fwd = None      # (logits err, features err)
        self.train = None    # dict kind -> (err, tensor)
        self.noise = 0.0     # worst PyTorch f32-vs-f64 error seen
        self.secs = (0.0, 0.0)  # torch, st3d

    def fail(self, msg):
        self.ok = False
        self.notes.append(msg)


def seed_for(name, what):
    return zlib.crc32(("%s/%s" % (name, what)).encode()) & 0x7FFFFFFF


def judge(res, what, err, tol, err64=None, noise=None):
    """err: st3d vs PyTorch-f32; err64: st3d vs PyTorch-f64; noise: f32 vs f64."""
    if noise is not None:
        res.noise = max(res.noise, noise)
    if err <= tol:
        return ""
    if err64 is not None and noise is not None and noise > tol and err64 <= 2 * noise:
        return "~"
    res.fail("%s: rel err %.3g > %g%s" % (what, err, tol,
             "" if err64 is None else " (vs f64 %.3g, f32 noise %.3g)" % (err64, noise)))
    return "!"


def build_case(name, family, depth, kw, fshape, tshape):
    gen = torch.Generator().manual_seed(seed_for(name, "weights"))
    torch.manual_seed(seed_for(name, "torch"))
    model = R.build(family, depth, **kw)
    cshape = tshape or fshape
    calib = torch.randn(cshape, generator=gen)
    R.randomize(model, gen, calib)
    return model


def torch_forward(model, x):
    model.eval()
    with torch.no_grad():
        y, f = model(x, return_features=True)
    return y.numpy(), f.numpy()


def torch_train(model, x, labels, steps, lr, momentum, wd, dampening, nesterov):
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                          dampening=dampening, weight_decay=wd, nesterov=nesterov)
    losses = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), labels)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    grads = {k: p.grad.detach().clone() for k, p in model.named_parameters()}
    return losses, state, grads


def np64(t):
    return t.detach().double().numpy() if t.is_floating_point() else t.numpy()


def run_case(case, args, tmp):
    name, family, depth, kw, fshape, tshape, extra = case
    res = Result(name)
    margs = common.model_args(family, depth, underscore=extra.get("underscore", False), **kw)
    margs += ["--threads", str(args.threads)]
    t_torch = t_st3d = 0.0

    t0 = time.time()
    model = build_case(name, family, depth, kw, fshape, tshape)
    wpath = os.path.join(tmp, name + ".safetensors")
    st_io.save(wpath, st_io.state_dict_to_numpy(model.state_dict()), {"format": "pt"})
    t_torch += time.time() - t0

    # ---------------------------------------------------------- (a) forward
    if not args.no_forward:
        gen = torch.Generator().manual_seed(seed_for(name, "input"))
        x = torch.randn(fshape, generator=gen)
        xpath = os.path.join(tmp, name + "-x.npy")
        ypath = os.path.join(tmp, name + "-y.npy")
        fpath = os.path.join(tmp, name + "-f.npy")
        np.save(xpath, x.numpy())
        t0 = time.time()
        y32, f32 = torch_forward(model, x)
        y64 = f64 = None
        if args.f64:
            m64 = copy.deepcopy(model).double()
            y64, f64 = torch_forward(m64, x.double())
            del m64
        t_torch += time.time() - t0
        t0 = time.time()
        p = common.run([args.st3d, "forward"] + margs + ["--weights", wpath, "--input", xpath,
                                                         "--output", ypath, "--features", fpath])
        t_st3d += time.time() - t0
        if p.returncode != 0:
            res.fail("forward exit %d: %s" % (p.returncode, p.stderr.strip()[-300:]))
        else:
            ys, fs = np.load(ypath), np.load(fpath)
            if ys.dtype != np.float32 or fs.dtype != np.float32:
                res.fail("forward outputs dtype %s/%s, expected float32" % (ys.dtype, fs.dtype))
            errs = []
            for what, a, b, b64 in (("logits", ys, y32, y64), ("features", fs, f32, f64)):
                if a.shape != b.shape:
                    res.fail("%s shape %s, expected %s" % (what, a.shape, b.shape))
                    errs.append(float("inf"))
                    continue
                e = common.rel_err(a, b)
                e64 = common.rel_err(a, b64) if b64 is not None else None
                nz = common.rel_err(b, b64) if b64 is not None else None
                judge(res, "forward " + what, e, args.tol_fwd, e64, nz)
                errs.append(e)
            res.fwd = tuple(errs)

    # ---------------------------------------------------------- (b) training
    if tshape is not None and not args.no_train:
        gen = torch.Generator().manual_seed(seed_for(name, "train-input"))
        x = torch.randn(tshape, generator=gen)
        ncls = kw.get("n_classes", 400)
        labels = torch.randint(0, ncls, (tshape[0],), generator=gen, dtype=torch.int64)
        xpath = os.path.join(tmp, name + "-tx.npy")
        lpath = os.path.join(tmp, name + "-tl.npy")
        opath = os.path.join(tmp, name + "-out.safetensors")
        gpath = os.path.join(tmp, name + "-grads.safetensors")
        np.save(xpath, x.numpy())
        np.save(lpath, labels.numpy())
        hp = dict(steps=args.steps, lr=args.lr, momentum=0.9, wd=1e-3, dampening=0.0,
                  nesterov=False)
        t0 = time.time()
        m32 = copy.deepcopy(model)
        loss32, st32, gr32 = torch_train(m32, x, labels, **hp)
        del m32
        loss64 = st64 = gr64 = None
        if args.f64:
            m64 = copy.deepcopy(model).double()
            loss64, st64, gr64 = torch_train(m64, x.double(), labels, **hp)
            del m64
        t_torch += time.time() - t0
        t0 = time.time()
        p = common.run([args.st3d, "train-steps"] + margs +
                       ["--weights", wpath, "--input", xpath, "--labels", lpath,
                        "--steps", str(args.steps), "--lr", repr(args.lr), "--momentum", "0.9",
                        "--weight-decay", "1e-3", "--output", opath, "--grads", gpath])
        t_st3d += time.time() - t0
        if p.returncode != 0:
            res.fail("train-steps exit %d: %s" % (p.returncode, p.stderr.strip()[-300:]))
        else:
            worst = {}

            def note(kind, e, key, mark):
                if kind not in worst or e > worst[kind][0]:
                    worst[kind] = (e, key + mark)

            # losses printed by st3d
            got = [float(v) for v in re.findall(r"step\s+\d+\s+loss\s+(\S+)", p.stdout)]
            if len(got) != args.steps:
                res.fail("train-steps printed %d 'step k loss X' lines, expected %d"
                         % (len(got), args.steps))
            else:
                for i, (a, b) in enumerate(zip(got, loss32)):
                    e = abs(a - b) / abs(b)
                    nz = e64 = None
                    if loss64:
                        nz = abs(b - loss64[i]) / abs(loss64[i])
                        e64 = abs(a - loss64[i]) / abs(loss64[i])
                    note("loss", e, "step%d" % (i + 1),
                         judge(res, "loss step %d" % (i + 1), e, args.tol_train, e64, nz))
            try:
                out, _ = st_io.load(opath)
                grads, _ = st_io.load(gpath)
            except Exception as ex:  # noqa: BLE001
                res.fail("cannot read st3d train-steps output: %s" % ex)
                out, grads = {}, {}
            for label, mine, ref, ref64 in (("state", out, st32, st64), ("grad", grads, gr32, gr64)):
                if not mine:
                    continue
                missing = [k for k in ref if k not in mine]
                extra_k = [k for k in mine if k not in ref]
                if missing:
                    res.fail("%s: %d keys missing, e.g. %s" % (label, len(missing), missing[0]))
                if extra_k:
                    res.fail("%s: %d unexpected keys, e.g. %s" % (label, len(extra_k), extra_k[0]))
                for k, rv in ref.items():
                    if k not in mine:
                        continue
                    a = mine[k]
                    if k.endswith("num_batches_tracked"):
                        if a.shape != tuple(rv.shape) or int(a.reshape(-1)[0]) != int(rv.reshape(-1)[0]):
                            res.fail("%s: %s, expected %d" % (k, a.tolist(), int(rv)))
                            note("count", 1.0, k, "!")
                        else:
                            note("count", 0.0, k, "")
                        if a.dtype != np.int64:
                            res.fail("%s: dtype %s, expected int64" % (k, a.dtype))
                        continue
                    if a.dtype != np.float32:
                        res.fail("%s %s: dtype %s, expected float32" % (label, k, a.dtype))
                    b = rv.numpy()
                    if a.shape != b.shape:
                        res.fail("%s %s: shape %s, expected %s" % (label, k, a.shape, b.shape))
                        continue
                    e = common.rel_err(a, b)
                    e64 = nz = None
                    if ref64 is not None:
                        e64 = common.rel_err(a, np64(ref64[k]))
                        nz = common.rel_err(b, np64(ref64[k]))
                    kind = label
                    if label == "state":
                        kind = "stat" if ("running_" in k) else "param"
                    note(kind, e, k, judge(res, "%s %s" % (label, k), e, args.tol_train, e64, nz))
            res.train = worst
    res.secs = (t_torch, t_st3d)
    return res


def fmt(e):
    return "-" if e is None else ("%.1e" % e)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_binary_arg(ap)
    ap.add_argument("--family", action="append", choices=R.FAMILIES,
                    help="only these families (repeatable)")
    ap.add_argument("--depths", type=int, nargs="+", help="only these depths")
    ap.add_argument("--case", action="append", help="only cases whose name contains this")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tol-fwd", type=float, default=1e-4)
    ap.add_argument("--tol-train", type=float, default=1e-3)
    ap.add_argument("--f64", dest="f64", action="store_true", default=True,
                    help="also compute the reference in float64 (default)")
    ap.add_argument("--no-f64", dest="f64", action="store_false")
    ap.add_argument("--no-forward", action="store_true")
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temporary files")
    ap.add_argument("--verbose", "-v", action="store_true")
    args = ap.parse_args()

    cases = [c for c in CASES
             if (not args.family or c[1] in args.family)
             and (not args.depths or c[2] in args.depths)
             and (not args.case or any(s in c[0] for s in args.case))]
    if args.list:
        for c in cases:
            print("%-28s %-10s %3d %s fwd %s train %s" % (c[0], c[1], c[2], c[3], c[4], c[5]))
        return 0
    if not cases:
        print("no case selected", file=sys.stderr)
        return 2
    common.check_binary(args.st3d)
    torch.set_num_threads(args.threads)

    results = []
    with common.TempDir(keep=args.keep) as tmp:
        if args.keep:
            print("files in", tmp)
        for c in cases:
            r = run_case(c, args, tmp)
            results.append(r)
            print("%-28s %s  (torch %.1fs, st3d %.1fs)" % (r.name, "PASS" if r.ok else "FAIL",
                                                        r.secs[0], r.secs[1]), flush=True)
            for n in (r.notes if args.verbose else r.notes[:8]):
                print("    " + n)
            if not args.verbose and len(r.notes) > 8:
                print("    ... %d more (use -v)" % (len(r.notes) - 8))

    print()
    print("metric: per tensor max|st3d - torch| / max|torch|; tolerances: forward %g, train %g"
          % (args.tol_fwd, args.tol_train))
    hdr = ("case", "logits", "features", "loss", "param", "grad", "run stats", "nbt", "f32 noise",
           "worst tensor", "result")
    print("%-28s %8s %8s %8s %8s %8s %9s %4s %9s  %-36s %s" % hdr)
    nfail = 0
    for r in results:
        lg = ft = None
        if r.fwd:
            lg, ft = r.fwd
        w = r.train or {}
        worst_name, worst_e = "-", -1.0
        for kind in ("param", "grad", "stat"):
            if kind in w and w[kind][0] > worst_e:
                worst_e, worst_name = w[kind][0], w[kind][1]
        nbt = "-"
        if "count" in w:
            nbt = "ok" if w["count"][0] == 0 else "BAD"
        print("%-28s %8s %8s %8s %8s %8s %9s %4s %9s  %-36s %s" % (
            r.name, fmt(lg), fmt(ft),
            fmt(w["loss"][0]) if "loss" in w else "-",
            fmt(w["param"][0]) if "param" in w else "-",
            fmt(w["grad"][0]) if "grad" in w else "-",
            fmt(w["stat"][0]) if "stat" in w else "-",
            nbt, fmt(r.noise) if args.f64 else "-", worst_name[:36],
            "PASS" if r.ok else "FAIL"))
        nfail += not r.ok
    print()
    print("%d/%d cases passed" % (len(results) - nfail, len(results)))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
