#!/usr/bin/python3
"""Self-check of the harness: its comparisons must be able to fail.

1. near_ties() finds a constructed near-tied max-pool window (and its winner
   and runner-up), and nothing where the gap is clear.
2. For two small cases, one per reference precision (a narrow ResNet-10
   with a float32 reference, a narrow R(2+1)D-10 with a float64 one, both
   with a stem max pool), st3d's real forward and training results are compared: they must
   PASS.  Then each of a list of small, realistic mistakes is injected into
   a copy of st3d's results (one logit 1e-3 too large, one gradient element
   off by 1% of its tensor's largest, one running statistic, a BN momentum
   of 0.11, SGD steps 1% short, weight decay left out, a key dropped or
   added, a counter off by one, a float64 tensor, a NaN, a missing loss
   line ...) and the same comparison must report FAIL for each.

Each line shows the comparison's verdict and the error it found.
"""
import argparse
import copy
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from test_networks import fam, hara  # noqa: E402

CASES = [
    hara("selfcheck-resnet10-A-w0.25", "resnet", 10, dict(shortcut="A", widen_factor=0.25,
                                                        n_classes=7),
         (2, 3, 8, 32, 32), (4, 3, 8, 40, 40)),
    fam("selfcheck-r2p1d10-B-w0.25", "resnet2p1d", 10,
        ["--resnet-shortcut", "B", "--resnet-widen-factor", "0.25"],
        dict(shortcut="B", widen_factor=0.25), (2, 3, 8, 32, 32), (2, 3, 8, 48, 48), ncls=6),
]


def check_near_ties(C):
    pool = nn.MaxPool3d(3, 2, 1)
    x = torch.rand(1, 2, 4, 6, 6, generator=H.generator("selfcheck", "ties")) * 0.5
    g = torch.ones(1, 2, 2, 3, 3)
    C.check(H.near_ties(x, g, pool) == [], "near_ties: none in a random tensor below 0.5")
    # window (0, 1, 1) of channel 1 covers z 1..3, y 1..3, x 1..3
    x[0, 1, 2, 2, 3] = 1.0
    x[0, 1, 3, 1, 2] = 1.0 - 3e-6
    t = H.near_ties(x, g, pool)
    want = (0, 1, (2 * 6 + 2) * 6 + 3, (3 * 6 + 1) * 6 + 2, 1.0)
    C.check(t == [want], "near_ties: the near-tied window, winner and runner-up %s" % (t,))
    x[0, 1, 3, 1, 2] = 1.0 - 1e-3
    C.check(H.near_ties(x, g, pool) == [], "near_ties: a gap of 1e-3 is not a near-tie")
    g[0, 1, 1, 1, 1] = 0.0
    x[0, 1, 3, 1, 2] = 1.0
    C.check(H.near_ties(x, g, pool) == [], "near_ties: a window without gradient is ignored")


def largest(a):
    return np.unravel_index(np.argmax(np.abs(a)), a.shape)


def pick(keys, *parts):
    for k in keys:
        if all(p in k for p in parts):
            return k
    raise KeyError(parts)


def forward_mistakes(out):
    def bump_logit(o):
        o["logits"][largest(o["logits"])] *= 1 + 1e-3

    def bump_feature(o):
        o["features"][largest(o["features"])] *= 1 + 1e-3

    def drop_row(o):
        o["logits"] = o["logits"][:-1]

    def as_f64(o):
        o["logits"] = o["logits"].astype(np.float64)

    def nan(o):
        o["features"][0, 0] = np.nan
    return [("largest logit 1e-3 too large", bump_logit),
            ("largest feature 1e-3 too large", bump_feature),
            ("a logits row missing", drop_row),
            ("logits float64", as_f64),
            ("a NaN feature", nan)]


def train_mistakes(r):
    lr, m, wd = r.lr, H.MOMENTUM, H.WEIGHT_DECAY
    keys = list(r.grads)
    conv = pick(keys, "layer2", "conv", "weight")
    bnw = pick(keys, "layer3", "bn", "weight")
    fcw = pick(keys, "fc.weight")
    stat = pick(list(r.state), "layer1", "running_var")
    mean = pick(list(r.state), "layer2", "running_mean")
    nbt = pick(list(r.state), "num_batches_tracked")

    def g_elem(k):
        def f(o):
            o["grads"][k][largest(o["grads"][k])] += 1e-2 * np.max(np.abs(o["grads"][k]))
        return f

    def stat_elem(o):
        o["state"][stat][largest(o["state"][stat])] *= 1 + 1e-2

    def bn_momentum(o):   # momentum 0.11: the running statistics' change 10% larger
        for k in o["state"]:
            if "running_" in k:
                p0 = H.as64(r.init[k])
                o["state"][k] = (p0 + (o["state"][k] - p0) * 1.1).astype(np.float32)

    def sgd_short(o):     # every parameter's K-step change 1% short
        for k in o["grads"]:
            p0 = H.as64(r.init[k])
            o["state"][k] = (p0 + (o["state"][k] - p0) * 0.99).astype(np.float32)

    def no_wd(o):         # weight decay left out: its share of the change, (2 + m) lr wd p0
        for k in o["grads"]:
            p0 = H.as64(r.init[k])
            o["state"][k] = (o["state"][k] + (2 + m) * lr * wd * p0).astype(np.float32)

    def loss2(o):
        o["losses"][1] *= 1 + 1e-3

    def one_loss(o):
        o["losses"] = o["losses"][:1]

    def drop_state(o):
        del o["state"][stat]

    def drop_grad(o):
        del o["grads"][conv]

    def extra(o):
        o["state"]["layer9.weight"] = np.zeros(3, np.float32)

    def nbt_off(o):
        o["state"][nbt] = o["state"][nbt] + 1

    def nbt_i32(o):
        o["state"][nbt] = o["state"][nbt].astype(np.int32)

    def f64(o):
        o["state"][fcw] = o["state"][fcw].astype(np.float64)

    def nan(o):
        o["grads"][conv][(0,) * o["grads"][conv].ndim] = np.nan

    def shape(o):
        o["grads"][fcw] = o["grads"][fcw][:-1]

    def mean_elem(o):
        o["state"][mean][largest(o["state"][mean])] *= 1 + 1e-2

    return [("one %s gradient element +1%% of its max" % conv, g_elem(conv)),
            ("one %s gradient element +1%% of its max" % bnw, g_elem(bnw)),
            ("one %s gradient element +1%% of its max" % fcw, g_elem(fcw)),
            ("largest %s 1%% too large" % stat, stat_elem),
            ("largest %s 1%% too large" % mean, mean_elem),
            ("BN momentum 0.11 (running statistics)", bn_momentum),
            ("SGD steps 1% short", sgd_short),
            ("weight decay left out", no_wd),
            ("step 2 loss 1e-3 too large", loss2),
            ("one loss line missing", one_loss),
            ("a state key dropped (%s)" % stat, drop_state),
            ("a gradient key dropped (%s)" % conv, drop_grad),
            ("an unexpected key", extra),
            ("num_batches_tracked off by one", nbt_off),
            ("num_batches_tracked int32", nbt_i32),
            ("fc.weight stored as float64", f64),
            ("a NaN in a gradient", nan),
            ("fc.weight gradient with a row missing", shape)]


def verdict(C, what, rep, expect_ok):
    errs = "; ".join(rep.failures[:2]) if rep.failures else rep.summary()
    return C.check(rep.ok == expect_ok, "%-62s -> %s  (%s)" % (what[:62], "PASS" if rep.ok else "FAIL",
                                                           errs[:150]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    H.add_args(ap)
    args = ap.parse_args()
    H.check_binary(args.st3d)
    torch.set_num_threads(args.threads)
    C = H.Checks()
    check_near_ties(C)
    st3d = H.St3d(args.st3d, args.threads, args.timeout)
    with H.TempDir(keep=args.keep, prefix="st3dself-") as tmp:
        for case in CASES:
            print("-- %s (training reference %s)" % (case.name, case.ref))
            # forward
            rep = H.Report(case.name, "forward")
            model = case.build("forward")
            x, _ = case.data("forward")
            wpath = os.path.join(tmp, case.name + "-fwd.safetensors")
            H.save_weights(model, wpath)
            y, f = H.ref_forward(case, model, x)
            ref = {"logits": y, "features": f}
            out = st3d.forward(rep, case.st3d, wpath, x, tmp, case.name)
            if not C.check(out is not None, "st3d forward runs (%s)" % "; ".join(rep.failures)):
                continue
            H.compare_forward(rep, out, ref)
            verdict(C, "forward, st3d's own result", rep, True)
            for what, fn in forward_mistakes(out):
                o = copy.deepcopy(out)
                fn(o)
                rep = H.Report(case.name, "forward")
                H.compare_forward(rep, o, ref)
                verdict(C, "forward, " + what, rep, False)
            # training
            rep = H.Report(case.name, "train")
            wpath, x, labels, r = H.reference_train_part(case, tmp, rep=rep)
            got = st3d.train(rep, case.st3d, wpath, x, labels, r.lr, tmp, case.name)
            if not C.check(got is not None, "st3d train-steps runs (%s)" % "; ".join(rep.failures)):
                continue
            H.compare_train(rep, got, r)
            for n in rep.notes:
                print("    note: " + n)
            verdict(C, "train, st3d's own result", rep, True)
            for what, fn in train_mistakes(r):
                o = copy.deepcopy(got)
                fn(o)
                rep = H.Report(case.name, "train")
                H.compare_train(rep, o, r)
                verdict(C, "train, " + what, rep, False)
    return C.close()


if __name__ == "__main__":
    sys.exit(main())
