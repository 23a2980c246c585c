#!/usr/bin/python3
"""st3d's DenseNet, R(2+1)D and C3D vs independent PyTorch modules
(ref_families.py): eval-mode forward and SGD training.

For each case a module with random weights (BN gamma/beta and running
statistics randomised, so BN is never the identity) is written to
safetensors, then

  (a) `st3d forward` logits and features vs the reference in eval mode,
      rel err <= 1e-4;
  (b) `st3d train-steps` (2 SGD steps, lr 1e-3 (C3D 1e-4), momentum 0.9,
      weight decay 1e-3, mean cross-entropy, BN on batch statistics) vs
      torch.optim.SGD: losses, every parameter, running statistic and
      last-step gradient within 1e-3; num_batches_tracked equal.

The reference is PyTorch in float64 (C3D: float64 when PyTorch has a real
BLAS, else float32 on its oneDNN).  How the cases are kept well-conditioned,
and the metric, are in fam_common.py.  Inputs are small but keep at least 8
values per channel in the last stage's batch statistics (batch 2 x 1x2x2).
C3D only takes 16x112x112 clips (its fc6 reads 8192 = 512x1x4x4 values); it
trains at batch 1 with --dropout 0 (st3d's masks are its own: see
test_dropout.py).

Exit status: 0 when every case passes, 1 on a failure, 2 on usage errors.
"""
import argparse
import os
import sys

sys.dont_write_bytecode = True   # no __pycache__ in the source tree (tests/reference)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fam_common as FC  # noqa: E402
import ref_families as RF  # noqa: E402


def ours(m, x):
    return m(x, return_features=True)


def case(name, family, depth, st3d_opts, kw, fwd, train, ncls=10, **extra):
    args = ["--model", family] + (["--model-depth", str(depth)] if depth else []) + st3d_opts
    return FC.Case(name, args, lambda: RF.build(family, depth, n_classes=ncls, **kw), ours,
                   fwd, train, ncls, **extra)


CASES = [
    # DenseNet-121 as the original's defaults (t=7, max pool): 16x64x64 ends at 1x2x2
    case("densenet121", "densenet", 121, [], {},
         (2, 3, 16, 64, 64), None),
    # training without the stem max pool: its 3x3x3 windows over 32k values per
    # channel always hold near-ties (~1e-7), which move conv1's gradient by ~1e-2
    case("densenet121-nomp", "densenet", 121, ["--no-max-pool"], dict(no_max_pool=True),
         None, (2, 3, 8, 32, 32)),
    # DenseNet-169, forward, with the stem options and 2 input channels (underscores)
    case("densenet169-t3s2-nomp", "densenet", 169,
         ["--conv1_t_size", "3", "--conv1_t_stride", "2", "--no_max_pool",
          "--n_input_channels", "2"],
         dict(conv1_t_size=3, conv1_t_stride=2, no_max_pool=True, n_input_channels=2),
         (2, 2, 16, 32, 32), None, ncls=7),
    # R(2+1)D-18 shortcut A (the zero-padded, gradient-free shortcut)
    case("r2p1d18-A", "resnet2p1d", 18, ["--resnet-shortcut", "A"], dict(shortcut="A"),
         (2, 3, 8, 48, 48), (2, 3, 8, 48, 48)),
    # R(2+1)D-50 shortcut B (bottlenecks, 1x1x1 conv + BN downsample)
    case("r2p1d50-B", "resnet2p1d", 50, ["--resnet-shortcut", "B"], dict(shortcut="B"),
         (2, 3, 8, 48, 48), (2, 3, 8, 48, 48)),
    # forward only: the other shortcut of each depth, with stem options and widening
    case("r2p1d18-B-t3s2-w0.5", "resnet2p1d", 18,
         ["--conv1-t-size", "3", "--conv1-t-stride", "2", "--no-max-pool",
          "--resnet-widen-factor", "0.5"],
         dict(conv1_t_size=3, conv1_t_stride=2, no_max_pool=True, widen_factor=0.5),
         (2, 3, 16, 32, 32), None, ncls=12),
    case("r2p1d50-A", "resnet2p1d", 50, ["--resnet-shortcut", "A"], dict(shortcut="A"),
         (2, 3, 8, 48, 48), None, ncls=9),
    # C3D: 16x112x112 only; forward at the default dropout 0.5 (identity in eval),
    # training with --dropout 0 at batch 1; clips with decisive max pools
    case("c3d", "c3d", None, [], dict(dropout=0.0),
         (2, 3, 16, 112, 112), (1, 3, 16, 112, 112), ref="auto", train_args=["--dropout", "0"],
         lr=1e-4, make_input=RF.c3d_input),
    case("c3d-bn", "c3d", None, ["--c3d-bn"], dict(bn=True, dropout=0.0),
         (2, 3, 16, 112, 112), (1, 3, 16, 112, 112), ref="auto", train_args=["--dropout", "0"],
         lr=1e-4, make_input=RF.c3d_input),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    FC.add_args(ap)
    return FC.run_all(CASES, ap.parse_args())


if __name__ == "__main__":
    sys.exit(main())
