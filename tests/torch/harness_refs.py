"""The PyTorch references of the comparison harness: eval-mode forwards,
the float32 decisions (max-pool near-ties, ReLU near-zeros) a comparison must
tolerate, gradient probes, and the training reference of each case
(harness.py re-exports every name here)."""
from harness_base import *  # noqa: F401,F403


# ------------------------------------------------------------------ references
def ref_forward(case, model, x, dtype=torch.float32):
    m = copy.deepcopy(model).to(dtype).eval() if dtype != torch.float32 else model.eval()
    with torch.no_grad():
        y, f = case.call(m, x.to(dtype))
    return as64(y), as64(f)


def _triple(v):
    return (v,) * 3 if isinstance(v, int) else tuple(v)


def near_ties(x, g, mod, rel_gap=TIE_REL_GAP):
    """Windows of max pool `mod` over x (N,C,D,H,W) whose two largest inputs
    are within rel_gap of each other (largest > 0) and whose output gradient
    g is not 0: a list of (n, c, flat index of the winner, flat index of the
    runner-up, g)."""
    k, s, p = _triple(mod.kernel_size), _triple(mod.stride), _triple(mod.padding)
    if _triple(mod.dilation) != (1, 1, 1) or mod.ceil_mode:
        raise ValueError("near_ties: dilation and ceil_mode are not handled")
    x = x.detach()
    n, c, d, h, w = x.shape
    xp = F.pad(x, (p[2], p[2], p[1], p[1], p[0], p[0]), value=float("-inf"))
    win = xp.unfold(2, k[0], s[0]).unfold(3, k[1], s[1]).unfold(4, k[2], s[2])
    od, oh, ow = win.shape[2:5]
    top, arg = win.reshape(n, c, od, oh, ow, -1).topk(2, dim=-1)
    gap = (top[..., 0] - top[..., 1]) / top[..., 0].abs().clamp_min(1e-30)
    near = (top[..., 0] > 0) & (gap < rel_gap) & (g != 0)
    out = []
    for ni, ci, a, b, e in near.nonzero(as_tuple=False).tolist():
        idx = []
        for j in (0, 1):
            t = int(arg[ni, ci, a, b, e, j])
            kz, r = divmod(t, k[1] * k[2])
            ky, kx = divmod(r, k[2])
            z, y, xx = a * s[0] - p[0] + kz, b * s[1] - p[1] + ky, e * s[2] - p[2] + kx
            idx.append((z * h + y) * w + xx)
        out.append((ni, ci, idx[0], idx[1], float(g[ni, ci, a, b, e])))
    return out


def near_zero(x, g, rel_gap=RELU_REL_GAP):
    """ReLU inputs x (N,C,...) within rel_gap x rms(x's channel) of 0 whose
    output gradient g is not 0: a list of (n, c, flat index, x value, g)."""
    x = x.detach()
    dims = (0,) + tuple(range(2, x.dim()))
    rms = x.pow(2).mean(dim=dims, keepdim=True).sqrt().clamp_min(1e-30)
    near = ((x.abs() / rms) < rel_gap) & (g != 0)
    if not bool(near.any()):
        return []
    n, c = x.shape[:2]
    xf, gf, nf = x.reshape(n, c, -1), g.reshape(n, c, -1), near.reshape(n, c, -1)
    return [(ni, ci, j, float(xf[ni, ci, j]), float(gf[ni, ci, j]))
            for ni, ci, j in nf.nonzero(as_tuple=False).tolist()]


class DecisionWatch:
    """Records every nn.ReLU and nn.MaxPool3d call of a training step (its
    input, with the graph, and its output's gradient) to bound the effect of
    the decisions that float32 rounding may take the other way: a ReLU input
    within RELU_REL_GAP x rms of its channel from 0 (a flip passes or stops
    that element's gradient) and a near-tied max-pool window (its gradient
    goes to the runner-up)."""

    def __init__(self, model):
        self.calls = []
        self.handles = []
        for name, m in model.named_modules():
            if isinstance(m, nn.ReLU):
                m.inplace = False   # keeps its input (numerically the same)
            elif not isinstance(m, nn.MaxPool3d):
                continue
            self.handles.append(m.register_forward_hook(self._hook(name)))
        self.params = [(k, p) for k, p in model.named_parameters()]
        self.batched = True

    def _hook(self, name):
        def f(mod, inp, out):
            if out.requires_grad and inp[0].requires_grad:
                rec = {"name": name, "mod": mod, "x": inp[0]}
                out.register_hook(lambda g, rec=rec: rec.__setitem__("g", g.detach()))
                self.calls.append(rec)
        return f

    def effect(self, limit):
        """Per parameter: the sum over the step's uncertain decisions of
        |the change of its gradient| had the decision gone the other way (a
        vector-Jacobian product through the upstream graph each); and the
        numbers of near-tied pool windows and near-zero ReLU inputs.  No
        VJP is computed past `limit` decisions."""
        total, ties, flips = {}, 0, 0
        for rec in self.calls:
            if "g" not in rec:
                continue
            x = rec["x"]
            if isinstance(rec["mod"], nn.MaxPool3d):
                found = [(n, c, [(p1, -g), (p2, g)]) for n, c, p1, p2, g in
                         near_ties(x, rec["g"], rec["mod"])]
                ties += len(found)
            else:
                # on in the reference: a flip stops g; off: a flip passes it
                found = [(n, c, [(j, -g if v > 0 else g)]) for n, c, j, v, g in
                         near_zero(x, rec["g"])]
                flips += len(found)
            if ties + flips > limit:
                break
            if found:
                self._vjps(x, found, total)
        self.calls = []
        return total, ties, flips

    def _vjps(self, x, found, total):
        """Adds |J^T delta| of each decision to total; batched (vmap over
        the decisions) where PyTorch can, one by one otherwise."""
        params = [p for _, p in self.params]
        chunk = max(1, min(16, int(2e8 // (x.numel() * x.element_size()))))
        for i in range(0, len(found), chunk):
            part = found[i:i + chunk]
            delta = torch.zeros((len(part),) + tuple(x.shape), dtype=x.dtype)
            flat = delta.view(len(part), x.shape[0], x.shape[1], -1)
            for t, (ni, ci, entries) in enumerate(part):
                for j, v in entries:
                    flat[t, ni, ci, j] = v
            if self.batched:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        gs = torch.autograd.grad(x, params, delta, retain_graph=True,
                                                 allow_unused=True, is_grads_batched=True)
                    gs = [None if gk is None else gk.detach().abs().sum(0) for gk in gs]
                except RuntimeError:
                    self.batched = False
            if not self.batched:
                gs = [None] * len(params)
                for t in range(len(part)):
                    g1 = torch.autograd.grad(x, params, delta[t], retain_graph=True,
                                             allow_unused=True)
                    gs = [a if b is None else (b.detach().abs() if a is None else a + b.detach().abs())
                          for a, b in zip(gs, g1)]
            for (k, _), gk in zip(self.params, gs):
                if gk is not None:
                    total[k] = total.get(k, 0) + gk

    def close(self):
        for h in self.handles:
            h.remove()


class GradProbes:
    """Last-step hooks giving, per parameter, S = the largest entry of its
    gradient computed from the absolute values of its terms (convs and fc
    only when `convs`), and for BN parameters (when `bn_seq`) what a
    sequential float32 sum of each channel's terms would be off by, relative
    to max(max|grad|, bn_floor S)."""

    def __init__(self, model, convs, bn_seq, bn_floor):
        self.S, self.seq, self.bn = {}, {}, set()
        self.bn_seq, self.bn_floor = bn_seq, bn_floor
        self.active = True    # off while other backward passes run (tie VJPs)
        self.handles = []
        for name, m in model.named_modules():
            if isinstance(m, nn.BatchNorm3d):
                self.bn.update((name + ".weight", name + ".bias"))
            elif not (convs and isinstance(m, (nn.Conv3d, nn.Linear))):
                continue
            self.handles.append(m.register_forward_hook(self._hook(name)))

    def _hook(self, name):
        def fwd(mod, inp, out):
            if not out.requires_grad:
                return None
            x = inp[0].detach()
            out.register_hook(lambda dy: self._bwd(name, mod, x, dy.detach()) if self.active else None)
            return out * 1   # a copy: an in-place ReLU after the module leaves `out` alone
        return fwd

    def _bwd(self, name, mod, x, dy):
        with torch.no_grad():
            if isinstance(mod, nn.BatchNorm3d):
                xd = x.double()
                dims = (0, 2, 3, 4)
                mean = xd.mean(dims, keepdim=True)
                var = xd.var(dims, unbiased=False, keepdim=True)
                xh = (xd - mean) / (var + mod.eps).sqrt()
                g = dy.double()
                for key, t in ((".weight", g * xh), (".bias", g)):
                    t = t.transpose(0, 1).reshape(t.shape[1], -1)
                    S = float(t.abs().sum(1).max())
                    self.S[name + key] = S
                    if self.bn_seq:
                        exact = t.sum(1).numpy()
                        seq = np.add.accumulate(t.float().numpy(), axis=1, dtype=np.float32)[:, -1]
                        scale = max(float(np.max(np.abs(exact))), self.bn_floor * S)
                        self.seq[name + key] = float(np.max(np.abs(seq - exact))) / (scale + 1e-300)
            elif isinstance(mod, nn.Conv3d):
                if True:
                    sw = torch.nn.grad.conv3d_weight(x.abs().float(), mod.weight.shape,
                                                     dy.abs().float(), mod.stride, mod.padding,
                                                     mod.dilation, mod.groups)
                self.S[name + ".weight"] = float(sw.max())
                if mod.bias is not None:
                    self.S[name + ".bias"] = float(dy.abs().sum((0, 2, 3, 4)).max())
            else:
                self.S[name + ".weight"] = float((dy.abs().t() @ x.abs()).max())
                if mod.bias is not None:
                    self.S[name + ".bias"] = float(dy.abs().sum(0).max())
        return None

    def close(self):
        for h in self.handles:
            h.remove()


class TrainRef:
    """A training reference: losses, state after the steps, last-step
    gradients, initial state, gradient floors and tie slack."""


def ref_train(case, model, x, labels, lr, kind, steps=STEPS):
    ref = REFS[kind]
    m = copy.deepcopy(model).to(ref.dtype).train()
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(m.parameters(), lr=lr, momentum=MOMENTUM, dampening=0.0,
                          weight_decay=WEIGHT_DECAY)
    watch = DecisionWatch(m)
    bn_values = []   # values per channel each train-mode batch norm sees
    bn_hooks = [b.register_forward_pre_hook(
        lambda mod, inp, name=name: bn_values.append((inp[0].numel() // inp[0].shape[1], name)))
        for name, b in m.named_modules() if isinstance(b, nn.BatchNorm3d)]
    xs = x.to(ref.dtype)
    losses, effects, ties, flips = [], [], 0, 0
    probes = None
    with mkldnn(ref.mkldnn):
        for step in range(steps):
            if step == steps - 1:
                probes = GradProbes(m, ref.grad_floor > 0, ref.bn_seq, ref.bn_floor)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(case.call(m, xs)[0], labels)
            loss.backward(retain_graph=True)
            for h in bn_hooks:
                h.remove()
            bn_hooks = []
            losses.append(float(loss.detach()))
            del loss
            if probes is not None:
                probes.active = False
            eff, nt, nf = watch.effect(MAX_DECISIONS - ties - flips)
            ties += nt
            flips += nf
            effects.append(eff)
            opt.step()
    watch.close()
    probes.close()
    r = TrainRef()
    r.kind = ref
    r.lr = lr
    r.losses = losses
    r.init = init
    r.state = {k: v.detach().clone() for k, v in m.state_dict().items()}
    r.grads = {k: p.grad.detach().clone() for k, p in m.named_parameters()}
    r.S, r.seq, r.bn = probes.S, probes.seq, probes.bn
    r.ties, r.flips = ties, flips
    r.bn_values = min(bn_values) if bn_values else None
    r.slack_grad = effects[-1] if effects else {}
    r.slack_param = {}
    # SGD (dampening 0): step s's gradient enters p_K with weight
    # lr * (1 + m + ... + m^(K-1-s))
    for s_, eff in enumerate(effects):
        c = lr * sum(MOMENTUM ** j for j in range(steps - s_))
        for k, e in eff.items():
            r.slack_param[k] = r.slack_param.get(k, 0) + c * e
    return r
