"""Scratch (not a test): PyTorch float32 vs float64 disagreement after K SGD
steps, as a proxy for how well-conditioned a training comparison is.
Runs on CUDA when available (TF32 off)."""
import copy
import itertools
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fam_common as FC  # noqa: E402
import ref_families as RF  # noqa: E402

dev = "cuda" if torch.cuda.is_available() else "cpu"
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def rel(a, b):
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / (b.abs().max() + 1e-12))


def train(model, x, labels, steps, lr, dtype):
    m = copy.deepcopy(model).to(dev, dtype).train()
    opt = torch.optim.SGD(m.parameters(), lr=lr, momentum=0.9, weight_decay=1e-3)
    losses = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(m(x.to(dev, dtype)), labels.to(dev))
        loss.backward()
        opt.step()
        losses.append(float(loss))
    st = {k: v.detach() for k, v in m.state_dict().items() if "num_batches" not in k}
    gr = {k: p.grad.detach() for k, p in m.named_parameters()}
    return losses, st, gr


def tv(name):
    import torchvision.models.video as V
    return lambda ncls: getattr(V, name)(num_classes=ncls)


MAKERS = {
    "r2p1d18-A": lambda n: RF.build("resnet2p1d", 18, n_classes=n, shortcut="A"),
    "r2p1d50-B": lambda n: RF.build("resnet2p1d", 50, n_classes=n),
    "densenet121": lambda n: RF.build("densenet", 121, n_classes=n),
    "densenet121-t3-nomp": lambda n: RF.build("densenet", 121, n_classes=n, conv1_t_size=3,
                                              no_max_pool=True),
    "c3d": lambda n: RF.build("c3d", n_classes=n, dropout=0.0),
    "c3d-bn": lambda n: RF.build("c3d", n_classes=n, bn=True, dropout=0.0),
    "tv-r3d": tv("r3d_18"), "tv-mc3": tv("mc3_18"), "tv-r2plus1d": tv("r2plus1d_18"),
}


def main():
    # argv: name shape[;shape] lr[,lr] draws
    name = sys.argv[1]
    shapes = [tuple(int(v) for v in s.split(",")) for s in sys.argv[2].split(";")]
    lrs = [float(v) for v in sys.argv[3].split(",")]
    draws = int(sys.argv[4])
    steps = int(sys.argv[5]) if len(sys.argv) > 5 else 2
    for shape, lr in itertools.product(shapes, lrs):
        c = FC.Case(name, [], lambda: MAKERS[name](10), None, None, shape, 10)
        model = FC.build_model(c)
        t0 = time.time()
        out = []
        for d in range(draws):
            gen = torch.Generator().manual_seed(FC.seed_for(name, "train-input", d))
            x = torch.randn(shape, generator=gen)
            labels = torch.randint(0, 10, (shape[0],), generator=gen, dtype=torch.int64)
            l64, s64, g64 = train(model, x, labels, steps, lr, torch.float64)
            l32, s32, g32 = train(model, x, labels, steps, lr, torch.float32)
            eg = max((rel(g32[k], g64[k]), k) for k in g64)
            es = max((rel(s32[k], s64[k]), k) for k in s64)
            el = max(abs(a - b) / abs(b) for a, b in zip(l32, l64))
            out.append("d%d loss %.2f->%.2f dl %.1e grad %.1e (%s) state %.1e (%s)" % (
                d, l64[0], l64[-1], el, eg[0], eg[1][-28:], es[0], es[1][-28:]))
        print("%s %s lr %g (%.0fs)" % (name, shape, lr, time.time() - t0))
        for o in out:
            print("   ", o, flush=True)


if __name__ == "__main__":
    main()
