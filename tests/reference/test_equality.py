#!/usr/bin/python3
"""st3d vs an independent PyTorch reference: eval-mode forward and SGD training.

For each case a network from ref_models gets random weights (BN gamma, beta
and running statistics randomised too, so BN is never the identity), is
written to safetensors, and

  (a) forward: `st3d forward` logits and pooled features are compared with
      PyTorch in eval mode.  Metric: max|a - b| / max|b| (b = PyTorch), per
      tensor; pass when <= --tol-fwd (1e-4).

  (b) train: `st3d train-steps` runs --steps (2) SGD steps (lr --lr = 0.01,
      capped per case at 2 / mean ||features||^2 so that a step cannot
      saturate the softmax, see case_lr; momentum 0.9, weight decay 1e-3,
      dampening 0, mean cross-entropy, BN in train mode) and is compared with torch.optim.SGD over
      model.parameters().  Per tensor, pass when <= --tol-train (1e-3):
        loss of each step      |a - b| / |b|                    (--tol-loss 1e-4)
        gradient (last step)   max|a - b| / (max|b| + 0.05 S), where S is the
                               largest entry of the same gradient computed
                               from the absolute values of its terms
                               (sum |x| |dy| over batch and positions for a
                               conv or fc weight, sum |dy xhat| and sum |dy|
                               for BN weight and bias), from the reference.
                               A gradient is a sum whose terms largely cancel
                               (train-mode BN removes the mean and the xhat
                               component of dy; BN-bias gradients upstream
                               of a BN are ~0 analytically), so float32 can
                               only get it to ~eps*sqrt(n)*S; measured:
                               PyTorch-f32 vs float64 reaches 5e-4 of max|b|
                               on ResNet-50 conv weights.  Where S >> max|b|
                               the check is an absolute one, 5e-5 S.
        parameter, running_mean, running_var
                               max|a - b| / max|b|  on the values, and
                               max|da - db| / (max|db| + 1e-3 max|p0|) on the
                               change da = a - p0 made by the K steps, which
                               is what a wrong SGD / BN-momentum rule alters
                               (the 1e-3 max|p0| floor allows for float32
                               rounding of the stored values, ~1 ulp per step)
        num_batches_tracked    exactly p0 + K, int64.
      The gradients st3d writes are compared with p.grad, i.e. dL/dp before
      weight decay is added.

Why the training networks use bn_beta="margin" (ref_models.randomize): a
gradient of a ReLU network is discontinuous where a ReLU input (or a max-pool
near-tie) sits at 0.  With BN betas near 0, a few of the millions of ReLU
inputs lie within float32 rounding distance of 0, two correct float32
implementations decide them differently, and gradients of some tensors then
differ by 1e-2..1e-1 (measured here between PyTorch's own oneDNN and native
float32 paths, and vs float64).  With |beta| >= 2.5 gamma no ReLU input is
that close to 0 and float32 gradients agree to ~1e-5; about half the channels
are then nearly dead, so the ReLU masks still matter.

The forward test uses ordinary betas near 0 (bn_beta="centered") for depths
10-34.  For depth >= 50 it uses "margin" weights as well: with centered betas
the float32 error of a 50-layer eval forward grows through the residual
stream to ~1e-4 of max|logits| (PyTorch's own oneDNN path: 1.2e-4 vs float64
on resnet50-B-t5s2, native path 5e-5), i.e. to the tolerance itself; with
margin weights it stays ~3e-6.

The reference runs on the CPU in float32 with oneDNN disabled
(torch.backends.mkldnn.enabled = False).  --f64 also runs it in float64 and
prints, per case, how far PyTorch-float32 itself is from float64 under the
same metrics, which shows how much headroom the tolerances have.

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
# extra ({"underscore": True} spells the options as the original: --model_depth ...)
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
     (2, 3, 8, 48, 48), (2, 3, 8, 48, 48), {}),
    ("resnet50-B-t5s2", "resnet", 50, dict(shortcut="B", conv1_t_size=5, conv1_t_stride=2, n_classes=8),
     (2, 3, 16, 48, 48), (2, 3, 16, 48, 48), {}),
    ("preresnet18-A", "preresnet", 18, dict(shortcut="A", n_classes=12),
     (2, 3, 16, 48, 48), (4, 3, 8, 48, 48), {}),
    ("preresnet50-B", "preresnet", 50, dict(n_classes=10),
     (2, 3, 8, 48, 48), (4, 3, 8, 40, 40), {}),
    ("wideresnet50-k1-A", "wideresnet", 50, dict(wide_k=1, shortcut="A", n_classes=10),
     (2, 3, 8, 48, 48), (2, 3, 8, 48, 48), {}),
    ("wideresnet50-k2-B", "wideresnet", 50, dict(n_classes=10),
     (2, 3, 8, 32, 32), None, {}),
    ("resnext50-B", "resnext", 50, dict(n_classes=10),
     (2, 3, 8, 48, 48), (2, 3, 8, 48, 48), {}),
    ("resnext50-c8-A-nomp", "resnext", 50,
     dict(shortcut="A", no_max_pool=True, cardinality=8, n_classes=6),
     (2, 3, 8, 32, 32), (4, 3, 8, 24, 24), {}),
]

GRAD_FLOOR = 0.05  # see "gradient" in the header

KINDS = ("logits", "features", "loss", "param", "update", "grad", "stat", "nbt")


class Result:
    def __init__(self, name):
        self.name = name
        self.ok = True
        self.notes = []
        self.worst = {}   # kind -> (err, tensor name)
        self.noise = {}   # kind -> worst PyTorch-f32 vs f64 error
        self.secs = [0.0, 0.0]  # torch, st3d

    def fail(self, msg):
        self.ok = False
        self.notes.append(msg)

    def check(self, kind, key, err, tol):
        if kind not in self.worst or err > self.worst[kind][0]:
            self.worst[kind] = (err, key)
        if not err <= tol:  # NaN fails too
            self.fail("%s %s: error %.3g > %g" % (kind, key, err, tol))

    def note_noise(self, kind, err):
        self.noise[kind] = max(self.noise.get(kind, 0.0), err)


def seed_for(name, what):
    return zlib.crc32(("%s/%s" % (name, what)).encode()) & 0x7FFFFFFF


def build_case(name, family, depth, kw, shape, bn_beta, what):
    gen = torch.Generator().manual_seed(seed_for(name, what))
    torch.manual_seed(seed_for(name, what + "/torch"))
    model = R.build(family, depth, **kw)
    # running statistics from a batch of 8: deep layers of these small inputs
    # have few positions, and a variance from 2 values can be ~0
    calib = torch.randn((max(8, shape[0]),) + tuple(shape[1:]), generator=gen)
    R.randomize(model, gen, calib, bn_beta=bn_beta)
    return model


def torch_forward(model, x):
    model.eval()
    with torch.no_grad():
        y, f = model(x, return_features=True)
    return y.double().numpy(), f.double().numpy()


# max-pool windows whose two largest inputs are this close (relative) count as
# near-ties: st3d's conv1 + BN output differs from PyTorch's by ~1e-6 relative
# (a 1029-term float32 dot product, normalised), so a gap of 1e-5 covers it
# with margin; at the test sizes that is a handful of windows per step.
TIE_REL_GAP = 1e-5


def torch_train(model, x, labels, steps, lr, momentum, wd, dampening, nesterov):
    """K SGD steps; returns (losses, state_dict, grads of the last step, scales,
    allowance).
    scales[parameter name] = largest entry of the gradient computed with the
    absolute values of its terms (last step), see _scale_hooks.
    allowance = {"grad": {name: tensor}, "param": {name: tensor}, "ties": n}:
    how much the stem's gradients (conv1, bn1), and through the SGD steps its
    parameters, would change if the max pool routed the gradient of its
    near-tie windows to the runner-up element, see _tie_effect."""
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                          dampening=dampening, weight_decay=wd, nesterov=nesterov)
    losses = []
    scales = {}
    effects = []
    ties = 0
    for step in range(steps):
        hooks = []
        if step == steps - 1:
            hooks = _scale_hooks(model, scales)
        pool = {}

        def pool_hook(mod, inp, out, pool=pool):
            pool["x"] = inp[0].detach()
            if out.requires_grad:
                out.register_hook(lambda g: pool.update(g=g.detach()))

        if not model.no_max_pool:
            hooks.append(model.maxpool.register_forward_hook(pool_hook))
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), labels)
        loss.backward()
        for h in hooks:
            h.remove()
        eff, n = _tie_effect(model, x, pool) if pool else ({}, 0)
        effects.append(eff)
        ties += n
        opt.step()
        losses.append(float(loss.detach()))
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    grads = {k: p.grad.detach().clone() for k, p in model.named_parameters()}
    # SGD (dampening 0): the step-s gradient enters p_K with weight
    # lr * (1 + m + ... + m^(K-s))
    allow = {"grad": effects[-1] if effects else {}, "param": {}, "ties": ties}
    for s_, eff in enumerate(effects):
        c = lr * sum(momentum ** j for j in range(steps - s_))
        for k, e in eff.items():
            allow["param"][k] = allow["param"].get(k, 0) + c * e
    return losses, state, grads, scales, allow


def _tie_effect(model, x, pool):
    """Max pooling picks the largest of 27 inputs; where the two largest are
    within TIE_REL_GAP of each other (relative), float32 rounding decides which
    one receives the gradient, and a correct implementation may pick the other.
    For each such window, the change of the stem parameters' gradients that
    routing its incoming gradient to the runner-up would make is computed (a
    vector-Jacobian product through conv1 + bn1 + relu, BN in train mode); the
    sum of their absolute values is returned per parameter."""
    s_in, g_out = pool["x"], pool.get("g")
    if g_out is None:
        return {}, 0
    n, c, d, h, w = s_in.shape
    neg = torch.finfo(s_in.dtype).min
    pad = F.pad(s_in, (1, 1, 1, 1, 1, 1), value=neg)
    pos = F.pad(torch.arange(d * h * w, dtype=torch.float64).reshape(1, 1, d, h, w),
                (1, 1, 1, 1, 1, 1), value=-1.0).expand(n, c, -1, -1, -1)
    win = pad.unfold(2, 3, 2).unfold(3, 3, 2).unfold(4, 3, 2)
    wpos = pos.unfold(2, 3, 2).unfold(3, 3, 2).unfold(4, 3, 2)
    od, oh, ow = win.shape[2:5]
    win = win.reshape(n, c, od, oh, ow, 27)
    wpos = wpos.reshape(n, c, od, oh, ow, 27)
    top, arg = win.topk(2, dim=-1)
    gap = (top[..., 0] - top[..., 1]) / top[..., 0].abs().clamp_min(1e-30)
    near = (top[..., 0] > 0) & (gap < TIE_REL_GAP) & (g_out != 0)
    idx = near.nonzero(as_tuple=False)
    if idx.numel() == 0:
        return {}, 0
    params = {"conv1.weight": model.conv1.weight, "bn1.weight": model.bn1.weight,
              "bn1.bias": model.bn1.bias}
    with torch.enable_grad():
        stem = F.relu(F.batch_norm(model.conv1(x), None, None, model.bn1.weight,
                                   model.bn1.bias, True, 0.0, model.bn1.eps))
    total = {k: torch.zeros_like(p) for k, p in params.items()}
    delta = torch.zeros_like(stem)  # one window's re-routing, cleared after each
    flat = delta.view(n, c, -1)
    for t in idx.tolist():
        ni, ci, a, b, e = t
        p1 = int(wpos[ni, ci, a, b, e, arg[ni, ci, a, b, e, 0]])
        p2 = int(wpos[ni, ci, a, b, e, arg[ni, ci, a, b, e, 1]])
        gv = g_out[ni, ci, a, b, e]
        flat[ni, ci, p1] = -gv
        flat[ni, ci, p2] = gv
        gs = torch.autograd.grad(stem, list(params.values()), delta, retain_graph=True)
        flat[ni, ci, p1] = flat[ni, ci, p2] = 0.0
        for k, gk in zip(params, gs):
            total[k] += gk.detach().abs()
    return total, int(idx.shape[0])


def _scale_hooks(model, scales):
    """Hooks recording, for every parameter, the largest entry of the sum of
    the absolute values of the terms its gradient is a sum of."""
    hooks = []
    for name, m in model.named_modules():
        if not isinstance(m, (torch.nn.BatchNorm3d, torch.nn.Conv3d, torch.nn.Linear)):
            continue
        saved = {}

        def fwd(mod, inp, out, saved=saved):
            x = inp[0].detach()
            if isinstance(mod, torch.nn.BatchNorm3d):
                mean = x.mean(dim=(0, 2, 3, 4), keepdim=True)
                var = x.var(dim=(0, 2, 3, 4), unbiased=False, keepdim=True)
                saved["x"] = ((x - mean) / torch.sqrt(var + mod.eps)).abs()
            else:
                saved["x"] = x.abs()

        def bwd(mod, gin, gout, saved=saved, name=name):
            dy = gout[0].detach().abs()
            x = saved.pop("x")
            if isinstance(mod, torch.nn.BatchNorm3d):
                scales[name + ".bias"] = float(dy.sum(dim=(0, 2, 3, 4)).max())
                scales[name + ".weight"] = float((dy * x).sum(dim=(0, 2, 3, 4)).max())
            elif isinstance(mod, torch.nn.Conv3d):
                sw = torch.nn.grad.conv3d_weight(x, mod.weight.shape, dy, mod.stride,
                                                 mod.padding, mod.dilation, mod.groups)
                scales[name + ".weight"] = float(sw.max())
            else:
                scales[name + ".weight"] = float((dy.t() @ x).max())
                scales[name + ".bias"] = float(dy.sum(dim=0).max())

        hooks.append(m.register_forward_hook(fwd))
        hooks.append(m.register_full_backward_hook(bwd))
    return hooks


def case_lr(model, x, lr_max):
    """--lr capped so that one SGD step moves the logits by about 2 at most.
    fc's own update moves logit j of clip n by lr * (p - y) . f_n^2 / N-ish,
    i.e. ~ lr * mean ||f||^2; a bigger step saturates the softmax (loss ~0),
    after which p - y is pure float32 rounding and step 2 is ill-posed."""
    m = copy.deepcopy(model).train()
    with torch.no_grad():
        _, f = m(x, return_features=True)
    sq = float((f.double() ** 2).sum(dim=1).mean())
    lr = min(lr_max, 2.0 / sq) if sq > 0 else lr_max
    return float("%.3g" % lr)


def as64(t):
    return np.asarray(t.detach().double().numpy() if torch.is_tensor(t) else t, dtype=np.float64)


def _excess(a, b, slack):
    """|a - b| less the elementwise slack (max-pool near-ties), not below 0."""
    d = np.abs(a - b)
    return d if slack is None else np.maximum(d - as64(slack), 0.0)


def update_err(a, b, p0, slack=None):
    """max|(a-p0) - (b-p0)| / (max|b-p0| + 1e-3 max|p0|)."""
    a, b, p0 = as64(a), as64(b), as64(p0)
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    den = np.max(np.abs(b - p0)) + 1e-3 * np.max(np.abs(p0)) + 1e-30
    return float(np.max(_excess(a, b, slack)) / den)


def max_err(a, b, floor=0.0, slack=None):
    """max|a - b| / (max|b| + floor), |a - b| less the slack where given."""
    a, b = as64(a), as64(b)
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    return float(np.max(_excess(a, b, slack)) / (np.max(np.abs(b)) + floor + 1e-30))


def train_errors(losses, state, grads, rl, rs, rg, init, scales, allow):
    """Yields (kind, key, err) of a training result vs a reference one
    (state / grads as dicts of arrays or tensors)."""
    for i, (a, b) in enumerate(zip(losses, rl)):
        yield "loss", "step %d" % (i + 1), abs(a - b) / (abs(b) + 1e-30)
    G = max(float(np.max(np.abs(as64(v)))) for v in rg.values())
    for k, rv in rs.items():
        if k not in state or k.endswith("num_batches_tracked"):
            continue
        kind = "stat" if "running_" in k else "param"
        slack = allow["param"].get(k)
        yield kind, k, max_err(state[k], rv, slack=slack)
        yield ("update" if kind == "param" else "stat"), k + " (change)", \
            update_err(state[k], rv, init[k], slack)
    for k, rv in rg.items():
        if k in grads:
            yield "grad", k, max_err(grads[k], rv, GRAD_FLOOR * scales.get(k, G),
                                     allow["grad"].get(k))


def run_case(case, args, tmp):
    name, family, depth, kw, fshape, tshape, extra = case
    res = Result(name)
    margs = common.model_args(family, depth, underscore=extra.get("underscore", False), **kw)
    margs += ["--threads", str(args.threads)]

    def st3d(cmd):
        t0 = time.time()
        p = common.run([args.st3d] + cmd, timeout=args.timeout)
        res.secs[1] += time.time() - t0
        return p

    # ---------------------------------------------------------- (a) forward
    if not args.no_forward:
        t0 = time.time()
        beta = "centered" if depth < 50 else "margin"
        model = build_case(name, family, depth, kw, fshape, beta, "forward-weights")
        wpath = os.path.join(tmp, name + "-fwd.safetensors")
        st_io.save(wpath, st_io.state_dict_to_numpy(model.state_dict()), {"format": "pt"})
        gen = torch.Generator().manual_seed(seed_for(name, "input"))
        x = torch.randn(fshape, generator=gen)
        xpath = os.path.join(tmp, name + "-x.npy")
        ypath = os.path.join(tmp, name + "-y.npy")
        fpath = os.path.join(tmp, name + "-f.npy")
        np.save(xpath, x.numpy())
        y32, f32 = torch_forward(model, x)
        if args.f64:
            y64, f64 = torch_forward(copy.deepcopy(model).double(), x.double())
            res.note_noise("logits", common.rel_err(y32, y64))
            res.note_noise("features", common.rel_err(f32, f64))
        del model
        res.secs[0] += time.time() - t0
        p = st3d(["forward"] + margs + ["--weights", wpath, "--input", xpath,
                                        "--output", ypath, "--features", fpath])
        if p.returncode != 0:
            res.fail("forward: exit %d: %s" % (p.returncode, p.stderr.strip()[-300:]))
        else:
            for what, path, ref in (("logits", ypath, y32), ("features", fpath, f32)):
                try:
                    a = np.load(path)
                except Exception as ex:  # noqa: BLE001
                    res.fail("forward: cannot read %s output: %s" % (what, ex))
                    continue
                if a.dtype != np.float32:
                    res.fail("forward: %s dtype %s, expected float32" % (what, a.dtype))
                if a.shape != ref.shape:
                    res.fail("forward: %s shape %s, expected %s" % (what, a.shape, ref.shape))
                    continue
                res.check(what, what, common.rel_err(a, ref), args.tol_fwd)

    # ---------------------------------------------------------- (b) training
    if tshape is not None and not args.no_train:
        t0 = time.time()
        model = build_case(name, family, depth, kw, tshape, "margin", "train-weights")
        wpath = os.path.join(tmp, name + "-train.safetensors")
        init = {k: v.detach().clone() for k, v in model.state_dict().items()}
        st_io.save(wpath, st_io.state_dict_to_numpy(init), {"format": "pt"})
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
        lr = case_lr(model, x, args.lr)
        hp = dict(steps=args.steps, lr=lr, momentum=0.9, wd=1e-3, dampening=0.0,
                  nesterov=False)
        rl, rs, rg, scales, allow = torch_train(copy.deepcopy(model), x, labels, **hp)
        if allow["ties"]:
            worst = max(float(v.max()) / (float(rg[k].abs().max()) + 1e-30)
                        for k, v in allow["grad"].items()) if allow["grad"] else 0.0
            res.notes.append("(reference: %d max-pool window(s) with near-tied maxima over the "
                             "%d steps; the stem's gradients get up to %.2g of their max as "
                             "slack, its parameters the matching SGD share)"
                             % (allow["ties"], args.steps, worst))
        if args.f64:
            l64, s64, g64, _, _ = torch_train(copy.deepcopy(model).double(), x.double(), labels, **hp)
            for kind, _, e in train_errors(rl, rs, rg, l64, s64, g64, init, scales, allow):
                res.note_noise(kind, e)
        del model
        res.secs[0] += time.time() - t0
        p = st3d(["train-steps"] + margs +
                 ["--weights", wpath, "--input", xpath, "--labels", lpath,
                  "--steps", str(args.steps), "--lr", repr(lr), "--momentum", "0.9",
                  "--weight-decay", "1e-3", "--output", opath, "--grads", gpath])
        if p.returncode != 0:
            res.fail("train-steps: exit %d: %s" % (p.returncode, p.stderr.strip()[-300:]))
        else:
            got = [float(v) for v in re.findall(r"step\s+\d+\s+loss\s+(\S+)", p.stdout)]
            if len(got) != args.steps:
                res.fail("train-steps printed %d 'step k loss X' lines, expected %d"
                         % (len(got), args.steps))
                got = []
            try:
                out, _ = st_io.load(opath)
                grads, _ = st_io.load(gpath)
            except Exception as ex:  # noqa: BLE001
                res.fail("train-steps: cannot read its output: %s" % ex)
                out, grads = {}, {}
            # key sets, dtypes, shapes, counters
            for label, mine, ref in (("state", out, rs), ("grads", grads, rg)):
                missing = [k for k in ref if k not in mine]
                extra_k = [k for k in mine if k not in ref]
                if missing:
                    res.fail("%s: %d keys missing, e.g. %s" % (label, len(missing), missing[0]))
                if extra_k:
                    res.fail("%s: %d unexpected keys, e.g. %s" % (label, len(extra_k), extra_k[0]))
                for k in list(mine):
                    if k not in ref:
                        continue
                    a, b = mine[k], ref[k]
                    if tuple(a.shape) != tuple(b.shape):
                        res.fail("%s %s: shape %s, expected %s" % (label, k, a.shape, tuple(b.shape)))
                        del mine[k]
                    elif k.endswith("num_batches_tracked"):
                        ok = a.dtype == np.int64 and int(a.reshape(-1)[0]) == int(b)
                        res.check("nbt", k, 0.0 if ok else 1.0, 0.0)
                        if not ok:
                            res.notes[-1] += " (got %s %s, expected int64 %d)" % (
                                a.dtype, a.reshape(-1).tolist(), int(b))
                    elif a.dtype != np.float32:
                        res.fail("%s %s: dtype %s, expected float32" % (label, k, a.dtype))
            if got:
                for i, (a, b) in enumerate(zip(got, rl)):
                    res.check("loss", "step %d" % (i + 1), abs(a - b) / abs(b), args.tol_loss)
            if out and grads:
                for kind, key, e in train_errors([], out, grads, [], rs, rg, init, scales, allow):
                    res.check(kind, key, e, args.tol_train)
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
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--threads", type=int, default=2, help="torch and st3d threads")
    ap.add_argument("--tol-fwd", type=float, default=1e-4)
    ap.add_argument("--tol-loss", type=float, default=1e-4)
    ap.add_argument("--tol-train", type=float, default=1e-3)
    ap.add_argument("--f64", action="store_true",
                    help="also run the reference in float64 and print PyTorch-f32's own error")
    ap.add_argument("--no-forward", action="store_true")
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per st3d run")
    ap.add_argument("--keep", action="store_true", help="keep the temporary files")
    ap.add_argument("--verbose", "-v", action="store_true")
    args = ap.parse_args()

    cases = [c for c in CASES
             if (not args.family or c[1] in args.family)
             and (not args.depths or c[2] in args.depths)
             and (not args.case or any(s in c[0] for s in args.case))]
    if args.list:
        for c in cases:
            print("%-28s %-10s %3d %s forward %s train %s" % c[:6])
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
            notes = r.notes if args.verbose else r.notes[:6]
            for n in notes:
                print("    " + n)
            if len(notes) < len(r.notes):
                print("    ... %d more (-v shows all)" % (len(r.notes) - len(notes)))

    print()
    print("worst error per case (metrics in the header of %s); tolerances: logits/features %g,"
          " loss %g, train tensors %g" % (os.path.basename(__file__), args.tol_fwd, args.tol_loss,
                                          args.tol_train))
    cols = ("logits", "features", "loss", "param", "update", "grad", "stat")
    print("%-28s " % "case" + " ".join("%8s" % c for c in cols) + " %4s  %-34s %s"
          % ("nbt", "worst train tensor", "result"))
    nfail = 0
    for r in results:
        w = r.worst
        worst_key, worst_e = "-", -1.0
        for kind in ("param", "update", "grad", "stat"):
            if kind in w and w[kind][0] > worst_e:
                worst_e, worst_key = w[kind]
        nbt = "-" if "nbt" not in w else ("ok" if w["nbt"][0] == 0 else "BAD")
        print("%-28s " % r.name + " ".join("%8s" % fmt(w[c][0] if c in w else None) for c in cols)
              + " %4s  %-34s %s" % (nbt, worst_key[:34], "PASS" if r.ok else "FAIL"))
        if args.f64:
            print("%-28s " % "  (PyTorch-f32 vs f64)" +
                  " ".join("%8s" % fmt(r.noise.get(c)) for c in cols))
        nfail += not r.ok
    print()
    print("%d/%d cases passed" % (len(results) - nfail, len(results)))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
