#!/usr/bin/python3
"""st3d vs independent PyTorch networks, every family: eval forward and SGD
training (harness.py says what is compared and how).

Families and their references:
  resnet, preresnet, wideresnet, resnext   ref_resnet.py (Hara et al.'s 3D
        ResNets); weights from ref_resnet.randomize: forward with BN betas
        near 0 ("centered") up to depth 34, "margin" betas from depth 50 on
        (a 50-layer float32 forward with centered betas is ~1e-4 from float64
        in PyTorch itself, the tolerance); training always "margin" (ReLU
        inputs >= 2.5 std from 0, so two float32 runs take the same ReLU
        decisions).  Training reference float32, oneDNN off; lr at most 0.01.
  densenet, resnet2p1d, c3d               ref_families.py; torchvision: its own
        r3d_18, mc3_18, r2plus1d_18.  Weights from ref_families.randomize with
        BN beta = gamma U[2, 3]; training reference float64 (C3D: float64
        when PyTorch's float64 is fast here), lr at most 1e-3 (C3D 1e-4).
        Every lr is capped so that a step moves the logits by ~2 at most
        (harness.case_lr): a saturated softmax makes the next step's
        gradients rounding noise (the harness fails a case whose loss
        drops below 0.01).
        DenseNet trains without its stem max pool; C3D takes only 16x112x112
        clips, built so that no max-pool window is near-tied
        (ref_families.c3d_input; asserted), trains at batch 1 with
        --dropout 0 (test_dropout.py checks its dropout).

--tier quick runs each family's quick parts (a forward on a small input;
test_selfcheck.py's two small training comparisons are the quick tier's
training); --tier full the rest.  Family cases (ref_families,
torchvision) use one set of weights for both parts, calibrated on the
training input; ResNet cases draw each part's own.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import Net  # noqa: E402
import ref_families as RF  # noqa: E402
import ref_resnet as R  # noqa: E402
import torch  # noqa: E402

FAMILIES = ("resnet", "preresnet", "wideresnet", "resnext", "densenet", "resnet2p1d", "c3d",
            "torchvision")

# ref_resnet keyword -> st3d option
_OPT = {"n_classes": "--n-classes", "n_input_channels": "--n-input-channels",
        "shortcut": "--resnet-shortcut", "conv1_t_size": "--conv1-t-size",
        "conv1_t_stride": "--conv1-t-stride", "widen_factor": "--resnet-widen-factor",
        "wide_k": "--wide-resnet-k", "cardinality": "--resnext-cardinality"}


def model_args(family, depth, underscore=False, **kw):
    """st3d options for a ref_resnet network (only the options in kw)."""
    args = ["--model", family, "--model-depth", str(depth)]
    for k, v in kw.items():
        if k == "no_max_pool":
            args += ["--no-max-pool"] if v else []
        elif k == "spatial":
            args += ["--spatial-only"] if v else []
        else:
            args += [_OPT[k], str(v)]
    if underscore:  # the original's spelling: --model_depth etc.
        args = [("--" + a[2:].replace("-", "_")) if a.startswith("--") else a for a in args]
    return args


def init_hara(depth):
    def init(model, gen, shape, part):
        # running statistics from a batch of 8: deep layers of these small
        # inputs have few positions, and a variance from 2 values can be ~0
        calib = torch.randn((max(8, shape[0]),) + tuple(shape[1:]), generator=gen)
        beta = "margin" if part == "train" or depth >= 50 else "centered"
        R.randomize(model, gen, calib, bn_beta=beta)
    return init


def hara(name, family, depth, kw, fwd, train, quick=(), underscore=False):
    kw = dict(kw)
    kw.setdefault("n_classes", 400)
    return Net(name, family, model_args(family, depth, underscore, **kw),
               lambda: R.build(family, depth, **kw), init_hara(depth), fwd, train,
               kw["n_classes"], quick=quick, ref="f32", lr=0.01)


def init_margin(make_input):
    def init(model, gen, shape, part):
        calib = make_input(shape, gen)
        RF.randomize(model, gen, calib, lambda m, x: m(x), margin=(2.0, 3.0))
    return init


def fam(name, family, depth, st3d_opts, kw, fwd, train, ncls=10, quick=(), lr=1e-3,
        make_input=H.normal_input, **extra):
    args = ["--model", family] + (["--model-depth", str(depth)] if depth else []) + st3d_opts
    return Net(name, family, args + ["--n-classes", str(ncls)],
               lambda: RF.build(family, depth, n_classes=ncls, **kw), init_margin(make_input),
               fwd, train, ncls, quick=quick, ref=extra.pop("ref", "f64"), lr=lr,
               make_input=make_input, shared_weights=True, **extra)


TV = {"tv-r3d": "r3d_18", "tv-mc3": "mc3_18", "tv-r2plus1d": "r2plus1d_18"}


def tv_build(model, n_classes, device=None):
    import torchvision.models.video as V
    m = getattr(V, TV[model])(num_classes=n_classes)
    return m if device is None else m.to(device)


def tv_call(m, x):
    """torchvision's VideoResNet.forward, keeping the pooled features."""
    x = m.stem(x)
    x = m.layer4(m.layer3(m.layer2(m.layer1(x))))
    f = m.avgpool(x).flatten(1)
    return m.fc(f), f


def tv(model, fwd, train, quick=(), ncls=10):
    return Net(model, "torchvision", ["--model", model, "--model-depth", "18",
                                      "--n-classes", str(ncls)],
               lambda: tv_build(model, ncls), init_margin(H.normal_input), fwd, train, ncls,
               quick=quick, call=tv_call, ref="f64", lr=1e-3, shared_weights=True)


CASES = [
    # ---- the original code's 3D ResNets (ref_resnet.py)
    hara("resnet10-A-in2", "resnet", 10, dict(shortcut="A", n_input_channels=2, n_classes=10),
         (2, 2, 16, 64, 64), (4, 2, 8, 48, 48)),
    hara("resnet18-B", "resnet", 18, {}, (2, 3, 16, 64, 64), (4, 3, 8, 48, 48)),
    # temporal Winograd's partial last tiles (conv_wino.c): conv1 r=5 over 10
    # frames as F(4, 5) (3 tiles, 12 > 10), layer1 over 5 frames as F(6, 3)
    hara("resnet18-B-t5-d10", "resnet", 18, dict(conv1_t_size=5, widen_factor=0.5, n_classes=7),
         (2, 3, 10, 40, 40), None, quick=("forward",)),
    hara("resnet18-A-t3s2-nomp-w0.5", "resnet", 18,
         dict(shortcut="A", conv1_t_size=3, conv1_t_stride=2, no_max_pool=True, widen_factor=0.5,
              n_classes=13),
         (2, 3, 16, 48, 48), (3, 3, 12, 40, 40), underscore=True),
    # the 2D control (--spatial-only): temporal kernels 1 in every conv and the max pool
    hara("resnet10-B-spatial-w0.5", "resnet", 10, dict(spatial=True, widen_factor=0.5,
                                                       conv1_t_size=3, n_classes=8),
         (2, 3, 8, 48, 48), (4, 3, 8, 40, 40), quick=("forward",)),
    hara("resnet34-B-w0.25", "resnet", 34, dict(widen_factor=0.25, n_classes=9),
         (2, 3, 8, 48, 48), (4, 3, 8, 40, 40), quick=("forward",)),
    hara("resnet50-A", "resnet", 50, dict(shortcut="A", n_classes=11),
         (2, 3, 8, 48, 48), (2, 3, 8, 48, 48)),
    hara("resnet50-B-t5s2", "resnet", 50, dict(shortcut="B", conv1_t_size=5, conv1_t_stride=2,
                                               n_classes=8),
         (2, 3, 16, 48, 48), (2, 3, 16, 48, 48)),
    hara("preresnet18-A", "preresnet", 18, dict(shortcut="A", n_classes=12),
         (2, 3, 16, 48, 48), (4, 3, 8, 48, 48), quick=("forward",)),
    hara("preresnet50-B", "preresnet", 50, dict(n_classes=10),
         (2, 3, 8, 48, 48), (4, 3, 8, 40, 40)),
    hara("wideresnet50-k1-A", "wideresnet", 50, dict(wide_k=1, shortcut="A", n_classes=10),
         (2, 3, 8, 48, 48), (2, 3, 8, 48, 48), quick=("forward",)),
    hara("wideresnet50-k2-B", "wideresnet", 50, dict(n_classes=10),
         (2, 3, 8, 32, 32), None),
    hara("resnext50-B", "resnext", 50, dict(n_classes=10),
         (2, 3, 8, 48, 48), (2, 3, 8, 48, 48)),
    hara("resnext50-c8-A-nomp", "resnext", 50,
         dict(shortcut="A", no_max_pool=True, cardinality=8, n_classes=6),
         (2, 3, 8, 32, 32), (4, 3, 8, 24, 24), quick=("forward",)),

    # ---- DenseNet, R(2+1)D, C3D (ref_families.py)
    # DenseNet-121 as the original's defaults (t=7, max pool): 16x64x64 ends at 1x2x2
    fam("densenet121", "densenet", 121, [], {}, (2, 3, 16, 64, 64), None),
    # training without the stem max pool (whose windows over 32k values per
    # channel always hold near-ties)
    fam("densenet121-nomp", "densenet", 121, ["--no-max-pool"], dict(no_max_pool=True),
        None, (2, 3, 8, 32, 32)),
    # DenseNet-169, the stem options and 2 input channels (underscores)
    fam("densenet169-t3s2-nomp", "densenet", 169,
        ["--conv1_t_size", "3", "--conv1_t_stride", "2", "--no_max_pool", "--n_input_channels", "2"],
        dict(conv1_t_size=3, conv1_t_stride=2, no_max_pool=True, n_input_channels=2),
        (2, 2, 16, 32, 32), None, ncls=7, quick=("forward",)),
    # R(2+1)D-18 shortcut A (the zero-padded, gradient-free shortcut)
    fam("r2p1d18-A", "resnet2p1d", 18, ["--resnet-shortcut", "A"], dict(shortcut="A"),
        (2, 3, 8, 48, 48), (2, 3, 8, 48, 48)),
    # R(2+1)D-50 shortcut B (bottlenecks, 1x1x1 conv + BN downsample)
    fam("r2p1d50-B", "resnet2p1d", 50, ["--resnet-shortcut", "B"], dict(shortcut="B"),
        (2, 3, 8, 48, 48), (2, 3, 8, 48, 48)),
    # the other shortcut of each depth, with stem options and widening
    fam("r2p1d18-B-t3s2-w0.5", "resnet2p1d", 18,
        ["--conv1-t-size", "3", "--conv1-t-stride", "2", "--no-max-pool",
         "--resnet-widen-factor", "0.5"],
        dict(conv1_t_size=3, conv1_t_stride=2, no_max_pool=True, widen_factor=0.5),
        (2, 3, 16, 32, 32), None, ncls=12, quick=("forward",)),
    fam("r2p1d50-A", "resnet2p1d", 50, ["--resnet-shortcut", "A"], dict(shortcut="A"),
        (2, 3, 8, 48, 48), None, ncls=9),
    # C3D: 16x112x112 only; forward at the default dropout 0.5 (identity in
    # eval), training with --dropout 0 at batch 1
    fam("c3d", "c3d", None, [], dict(dropout=0.0), (1, 3, 16, 112, 112), (1, 3, 16, 112, 112),
        ref="auto", train_args=["--dropout", "0"], lr=1e-4, make_input=RF.c3d_input,
        no_ties=True),
    # (forward on 2 clips: a batch runs conv1 to conv4b one clip at a time,
    # plan_infer.c's head, and the rest on both)
    fam("c3d-bn", "c3d", None, ["--c3d-bn"], dict(bn=True, dropout=0.0),
        (2, 3, 16, 112, 112), (1, 3, 16, 112, 112), ref="auto", train_args=["--dropout", "0"],
        lr=1e-4, make_input=RF.c3d_input, no_ties=True, quick=("forward",)),

    # ---- torchvision's video ResNets: 8x24x24 ends at 1x2x2 (mc3: 8x2x2)
    # after layer4, so the last batch statistics still see 8 values per channel
    tv("tv-r3d", (2, 3, 8, 32, 32), (2, 3, 8, 24, 24), quick=("forward",)),
    tv("tv-mc3", (2, 3, 8, 32, 32), (2, 3, 8, 24, 24), quick=("forward",)),
    tv("tv-r2plus1d", (2, 3, 8, 32, 32), (2, 3, 8, 24, 24), quick=("forward",)),
]


if __name__ == "__main__":
    sys.exit(H.main(CASES, __doc__.split("\n")[0], FAMILIES))
