"""Scratch: is the gradient discontinuous (ReLU flips) or ill-conditioned
(cancellation)?  f64 grads at x vs x*(1+eps) for eps 1e-12..1e-6, and f32."""
import copy, os, sys, torch, torch.nn.functional as F
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import explore_conditioning as E, fam_common as FC
dev = E.dev
FC.MARGIN = tuple(float(v) for v in sys.argv[3].split(",")) if len(sys.argv) > 3 else None
name = sys.argv[1]; shape = tuple(int(v) for v in sys.argv[2].split(","))
c = FC.Case(name, [], lambda: E.MAKERS[name](10), None, None, shape, 10)
model = FC.build_model(c)
gen = torch.Generator().manual_seed(FC.seed_for(name, "train-input", 0))
x = torch.randn(shape, generator=gen); labels = torch.randint(0, 10, (shape[0],), generator=gen)
def grads(x, dtype):
    m = copy.deepcopy(model).to(dev, dtype).train()
    F.cross_entropy(m(x.to(dev, dtype)), labels.to(dev)).backward()
    return {k: p.grad.detach().double() for k, p in m.named_parameters()}
g0 = grads(x.double(), torch.float64)
for eps in (1e-12, 1e-9, 1e-7):
    xp = x.double() * (1 + eps * torch.randn(shape, generator=gen, dtype=torch.float64))
    g = grads(xp, torch.float64)
    print("f64 eps %g: worst %s" % (eps, max((E.rel(g[k], g0[k]), k) for k in g0)))
g = grads(x, torch.float32)
print("f32: worst %s" % (max((E.rel(g[k], g0[k]), k) for k in g0),))
for lr in (0.01, 0.001):
    l64, s64, g64 = E.train(model, x, labels, 2, lr, torch.float64)
    l32, s32, g32 = E.train(model, x, labels, 2, lr, torch.float32)
    print("2 steps lr %g: loss %.3f->%.3f grad %s state %s" % (lr, l64[0], l64[1],
          max((E.rel(g32[k], g64[k]), k) for k in g64), max((E.rel(s32[k], s64[k]), k) for k in s64)))
