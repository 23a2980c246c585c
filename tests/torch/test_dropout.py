#!/usr/bin/python3
"""st3d's C3D dropout (fc6 and fc7, p = 0.5) in training.

st3d draws its own masks (a counter-based generator with a fixed seed), so
they cannot equal PyTorch's.  With batch 1 they can be read back from st3d's
gradients: column j of dL/d(fc7.weight) is zero exactly when fc6's unit j
was dropped (or its ReLU was off), column j of dL/d(fc8.weight) when fc7's
unit j was.  Checks (C3D at batch 1, 16x112x112, weights and clip built as
test_networks.py's c3d case):

  1. reproducible: the same train-steps command twice gives identical bytes
     of loss, parameters and gradients, and a 2-step run's first step is
     that step again;
  2. statistics: among units whose ReLU is on, the kept fraction of each
     mask is 0.5 within 5 sigma (binomial), the fc6 and fc7 masks are
     independent (overlap 0.25 within 5 sigma), and the second step draws
     new masks (overlap with the first step's 0.25 within 5 sigma);
  3. the fc6 mask read from fc7's gradient columns is the one fc6's gradient
     rows show (a dropped unit gets no gradient);
  4. exact semantics: PyTorch with the masks read back (kept units scaled by
     1 / (1 - p) = 2, the mask reused in the backward) reproduces st3d's
     loss and every gradient within 1e-3 (reference float32 on PyTorch's
     oneDNN: the masks are exact, only rounding differs);
  5. the masks do not depend on the number of threads (--threads 1 vs 2);
  6. --dropout 0.5 changes the loss and gradients vs --dropout 0.

Exit status: 0 when every check passes, 1 on a failure, 2 on usage errors.
"""
import argparse
import copy
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import numpy as np  # noqa: E402
import ref_families as RF  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from test_networks import init_margin  # noqa: E402

NAME = "c3d-dropout"
NCLS = 10
SHAPE = (1, 3, 16, 112, 112)
LR = 1e-4
CASE = H.Net(NAME, "c3d", ["--model", "c3d", "--n-classes", str(NCLS)],
             lambda: RF.build("c3d", n_classes=NCLS, dropout=0.5), init_margin(RF.c3d_input),
             None, SHAPE, NCLS, make_input=RF.c3d_input, lr=LR)


def st3d_train(st3d, tmp, tag, wpath, x, labels, dropout, steps, threads):
    st3d.threads = threads
    rep = H.Report(NAME, tag)
    got = st3d.train(rep, CASE.st3d + ["--dropout", repr(dropout)], wpath, x, labels, LR, tmp,
                     tag, steps=steps)
    if got is None:
        print("st3d train-steps (%s): %s" % (tag, "; ".join(rep.failures)))
        sys.exit(1)
    raw = tuple(open(os.path.join(tmp, tag + s), "rb").read()
                for s in ("-out.safetensors", "-g.safetensors"))
    return got["losses"], got["grads"], raw


def masks_from_grads(g):
    """(fc6 mask, fc7 mask) as 'column of the next layer's weight gradient is nonzero'."""
    m6 = np.any(g["fc7.weight"] != 0, axis=0)
    m7 = np.any(g["fc8.weight"] != 0, axis=0)
    return m6, m7


def within(count, n, p, sig=5.0):
    """count ~ Binomial(n, p) within sig standard deviations."""
    sd = (n * p * (1 - p)) ** 0.5
    return abs(count - n * p) <= sig * sd, "%d of %d (expected %.0f +- %.0f at 5 sigma)" % (
        count, n, n * p, sig * sd)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    H.add_args(ap)
    args = ap.parse_args()
    H.check_binary(args.st3d)
    torch.set_num_threads(args.threads)
    C = H.Checks()
    st3d = H.St3d(args.st3d, args.threads, args.timeout)
    model = CASE.build("train")
    x, labels = CASE.data("train")

    with H.TempDir(keep=args.keep, prefix="st3ddrop-") as tmp:
        wpath = os.path.join(tmp, "w.safetensors")
        H.save_weights(model, wpath)
        # 1. reproducibility: the first step twice, then two steps, whose
        # first must be that step again (the second draw is covered below)
        l1, g1, raw_1 = st3d_train(st3d, tmp, "s1", wpath, x, labels, 0.5, 1, args.threads)
        l1b, _, raw_1b = st3d_train(st3d, tmp, "s1b", wpath, x, labels, 0.5, 1, args.threads)
        C.check(l1 == l1b and raw_1 == raw_1b,
                "same command twice: identical losses %s, parameters and gradients" % l1)
        la, ga, _ = st3d_train(st3d, tmp, "a", wpath, x, labels, 0.5, 2, args.threads)
        C.check(l1 == la[:1], "1-step run's loss %s = 2-step run's first loss %s" % (l1, la[:1]))
        # with one thread
        _, g1t, _ = st3d_train(st3d, tmp, "t1", wpath, x, labels, 0.5, 1, 1)
        l0, g0, _ = st3d_train(st3d, tmp, "z", wpath, x, labels, 0.0, 1, args.threads)

    # the ReLUs' state without dropout at fc6 (fc7's depends on the fc6 mask)
    torch.backends.mkldnn.enabled = True
    ref = copy.deepcopy(model).train()
    with torch.no_grad():
        h6 = torch.relu(ref.fc6(ref.conv_stack(x).flatten(1)))[0].numpy()
    on6 = h6 > 0
    m6, m7 = masks_from_grads(g1)

    # 3. fc6's gradient rows agree with fc7's gradient columns
    rows6 = np.any(g1["fc6.weight"] != 0, axis=1)
    C.check(np.array_equal(rows6 & on6, m6 & on6),
            "fc6 mask: zero rows of dL/dfc6.weight = zero columns of dL/dfc7.weight")
    C.check(not np.any(m6 & ~on6), "no gradient through fc6 units whose ReLU is off")

    # 2. statistics
    n6 = int(on6.sum())
    ok, msg = within(int((m6 & on6).sum()), n6, 0.5)
    C.check(ok, "fc6 kept %s" % msg)
    with torch.no_grad():
        h7 = torch.relu(ref.fc7(torch.from_numpy(h6 * m6 * 2.0)[None]))[0].numpy()
    on7 = h7 > 0
    n7 = int(on7.sum())
    ok, msg = within(int((m7 & on7).sum()), n7, 0.5)
    C.check(ok, "fc7 kept %s" % msg)
    both = on6 & on7
    ok, msg = within(int((m6 & m7 & both).sum()), int(both.sum()), 0.25)
    C.check(ok, "fc6 and fc7 masks independent: both kept %s" % msg)
    m6b, _ = masks_from_grads(ga)      # step 2 of the 2-step run
    ok, msg = within(int((m6 & m6b & on6).sum()), n6, 0.25)
    C.check(ok, "step 2 draws a new fc6 mask: kept at both steps %s" % msg)

    # 5. threads
    m6t, m7t = masks_from_grads(g1t)
    C.check(np.array_equal(m6t & on6, m6 & on6) and np.array_equal(m7t & on7, m7 & on7),
            "masks with --threads 1 = masks with --threads 2")

    # 6. dropout changes things
    dl = abs(float(l0[0]) - float(l1[0]))
    dg = H.max_err(g1["fc7.weight"], g0["fc7.weight"])
    C.check(dl > 1e-4 and dg > 0.1,
            "--dropout 0.5 vs 0: loss %s vs %s, fc7.weight gradient differs by %.2f of its max"
            % (l1[0], l0[0], dg))

    # 4. exact semantics: PyTorch with st3d's masks, one step
    ref = copy.deepcopy(model).train()
    ref.masks = {"drop6": torch.from_numpy(m6 | ~on6)[None], "drop7": torch.from_numpy(m7 | ~on7)[None]}
    loss = F.cross_entropy(ref(x), labels)
    loss.backward()
    e_loss = abs(float(loss) - float(l1[0])) / abs(float(loss))
    worst = max((H.max_err(g1[k], p.grad.double().numpy()), k) for k, p in ref.named_parameters())
    torch.backends.mkldnn.enabled = False
    C.check(e_loss <= 1e-3 and worst[0] <= 1e-3,
            "PyTorch with st3d's masks: loss rel err %.1e, worst gradient %.1e (%s); tolerance 1e-3"
            % (e_loss, worst[0], worst[1]))

    return C.close()


if __name__ == "__main__":
    sys.exit(main())
