"""Independent PyTorch reference modules for st3d's other network families.

Written for st3d's tests from the architecture facts of the original
3D-ResNets-PyTorch (models/densenet.py, models/resnet2p1d.py) and of C3D
(Tran et al., ICCV 2015, in the layout of the common PyTorch port of the
Sports-1M weights): same layer structure, same state_dict key names and
shapes, same forward computation.  Every module has

    features(x) -> the vector the classifier sees (N x F)
    forward(x, return_features=False) -> logits (and features)

Families:
  densenet    3D DenseNet-BC, depth 121/169/201/264: blocks (6,12,24,16),
              (6,12,32,32), (6,12,48,32), (6,12,64,48); growth 32, bottleneck
              4*32; stem Conv3d(n_in, 64, (t,7,7), (ts,2,2), (t//2,3,3)) + BN
              + ReLU [+ MaxPool3d(3,2,1)]; layer = BN, ReLU, 1x1x1 conv to
              128, BN, ReLU, 3x3x3 conv to 32, concatenated after its input;
              transition = BN, ReLU, 1x1x1 conv halving the channels,
              AvgPool3d(2,2); final norm5, ReLU, global average, Linear.
  resnet2p1d  R(2+1)D: a ResNet (BasicBlock 10/18/34, Bottleneck x4
              50/101/152/200) whose 3x3x3 convs are (1,3,3) conv to `mid`,
              BN, ReLU, (3,1,1) conv, with mid = in*out*27 // (in*9 + 3*out)
              (stride (1,s,s) on the spatial and (s,1,1) on the temporal
              part); stem (1,7,7)/(1,2,2) to mid = 3*w0*t*49 // (3*49 + t*w0)
              (the original counts 3 input channels whatever n_input_channels
              is), BN, ReLU, (t,1,1)/(ts,1,1) to w0, BN, ReLU.  Shortcuts as
              the 3D ResNet: 'A' (subsample + zero channels, no gradient) or
              'B' (1x1x1 conv + BN as downsample.0/.1).
  c3d         eight 3x3x3 convs (64,128,256,256,512,512,512,512) with bias
              (or without bias and followed by BatchNorm3d bn1, bn2, bn3a ...),
              ReLU, max pools pool1 (1,2,2), pool2..pool4 (2,2,2), pool5
              (2,2,2) with padding (0,1,1); flatten (8192 for 16x112x112),
              fc6 4096 ReLU Dropout, fc7 4096 ReLU Dropout (features), fc8.

`ReLU` modules are kept as separate, non-inplace modules so tests can hook
their inputs (pre-activations) to find decision boundaries.
"""
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

import ref_resnet as R  # noqa: E402  (shared random-init helpers)

DENSENET_BLOCKS = {121: (6, 12, 24, 16), 169: (6, 12, 32, 32),
                   201: (6, 12, 48, 32), 264: (6, 12, 64, 48)}
RESNET_BLOCKS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3),
                 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3),
                 200: (3, 24, 36, 3)}
C3D_LAYERS = (("1", 64, "p1"), ("2", 128, "p"), ("3a", 256, None), ("3b", 256, "p"),
              ("4a", 512, None), ("4b", 512, "p"), ("5a", 512, None), ("5b", 512, "p5"))


def _bn(c, device=None):
    return nn.BatchNorm3d(c, device=device)


# ---------------------------------------------------------------- DenseNet
class DenseUnit(nn.Module):
    """One dense layer: its output (32 new channels) is appended to its input."""

    def __init__(self, cin, growth, width, device=None):
        super().__init__()
        self.norm1 = _bn(cin, device)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv3d(cin, width, 1, bias=False, device=device)
        self.norm2 = _bn(width, device)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv3d(width, growth, 3, padding=1, bias=False, device=device)

    def forward(self, x):
        y = self.conv1(self.relu1(self.norm1(x)))
        y = self.conv2(self.relu2(self.norm2(y)))
        return torch.cat((x, y), dim=1)


class Transition(nn.Module):
    def __init__(self, cin, cout, device=None):
        super().__init__()
        self.norm = _bn(cin, device)
        self.relu = nn.ReLU()
        self.conv = nn.Conv3d(cin, cout, 1, bias=False, device=device)
        self.pool = nn.AvgPool3d(2, 2)

    def forward(self, x):
        return self.pool(self.conv(self.relu(self.norm(x))))


class DenseNet3D(nn.Module):
    def __init__(self, depth=121, n_classes=400, n_input_channels=3, conv1_t_size=7,
                 conv1_t_stride=1, no_max_pool=False, device=None):
        super().__init__()
        if depth not in DENSENET_BLOCKS:
            raise ValueError("densenet: unsupported depth %r" % depth)
        growth, width, c = 32, 4 * 32, 64
        mods = OrderedDict()
        mods["conv1"] = nn.Conv3d(n_input_channels, c, (conv1_t_size, 7, 7),
                                  (conv1_t_stride, 2, 2), (conv1_t_size // 2, 3, 3),
                                  bias=False, device=device)
        mods["norm1"] = _bn(c, device)
        mods["relu1"] = nn.ReLU()
        if not no_max_pool:
            mods["pool1"] = nn.MaxPool3d(3, 2, 1)
        nblocks = DENSENET_BLOCKS[depth]
        for b, n in enumerate(nblocks):
            blk = nn.Sequential(OrderedDict(
                ("denselayer%d" % (i + 1), DenseUnit(c + i * growth, growth, width, device))
                for i in range(n)))
            mods["denseblock%d" % (b + 1)] = blk
            c += n * growth
            if b + 1 < len(nblocks):
                mods["transition%d" % (b + 1)] = Transition(c, c // 2, device)
                c //= 2
        mods["norm5"] = _bn(c, device)
        self.features = nn.Sequential(mods)
        self.head_relu = nn.ReLU()
        self.classifier = nn.Linear(c, n_classes, device=device)
        self.feature_dim = c

    def extract(self, x):
        y = self.head_relu(self.features(x))
        return F.adaptive_avg_pool3d(y, 1).flatten(1)

    def forward(self, x, return_features=False):
        f = self.extract(x)
        y = self.classifier(f)
        return (y, f) if return_features else y


# ---------------------------------------------------------------- R(2+1)D
def mid_planes(cin, cout):
    return (cin * cout * 27) // (cin * 9 + 3 * cout)


class Shortcut0(object):
    """Shortcut 'A': subsample by the stride, append zero channels; built on
    detached data as the original (no gradient through it, no state)."""

    def __init__(self, cout, stride):
        self.cout, self.stride = cout, stride

    def __call__(self, x):
        s = self.stride
        y = x.detach()[:, :, ::s, ::s, ::s]
        pad = y.new_zeros((y.shape[0], self.cout - y.shape[1]) + tuple(y.shape[2:]))
        return torch.cat((y, pad), dim=1)


def _make_shortcut(kind, cin, cout, stride, device):
    if kind == "A":
        return Shortcut0(cout, stride)
    return nn.Sequential(nn.Conv3d(cin, cout, 1, stride, bias=False, device=device),
                         _bn(cout, device))


def _add_2p1d(owner, tag, cin, cout, stride, device):
    """Adds conv{tag}_s, bn{tag}_s, conv{tag}_t, bn{tag}_t to `owner`."""
    mid = mid_planes(cin, cout)
    setattr(owner, "conv%s_s" % tag, nn.Conv3d(cin, mid, (1, 3, 3), (1, stride, stride),
                                               (0, 1, 1), bias=False, device=device))
    setattr(owner, "bn%s_s" % tag, _bn(mid, device))
    setattr(owner, "conv%s_t" % tag, nn.Conv3d(mid, cout, (3, 1, 1), (stride, 1, 1),
                                               (1, 0, 0), bias=False, device=device))
    setattr(owner, "bn%s_t" % tag, _bn(cout, device))


def _run_2p1d(owner, tag, relu, x):
    y = relu(getattr(owner, "bn%s_s" % tag)(getattr(owner, "conv%s_s" % tag)(x)))
    return getattr(owner, "bn%s_t" % tag)(getattr(owner, "conv%s_t" % tag)(y))


class Block2p1d(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride, shortcut, device=None):
        super().__init__()
        _add_2p1d(self, "1", cin, planes, stride, device)
        _add_2p1d(self, "2", planes, planes, 1, device)
        self.relu_a, self.relu_b, self.relu_out = nn.ReLU(), nn.ReLU(), nn.ReLU()
        self.relu_c = nn.ReLU()
        self.downsample = shortcut

    def forward(self, x):
        y = self.relu_b(_run_2p1d(self, "1", self.relu_a, x))
        y = _run_2p1d(self, "2", self.relu_c, y)
        r = x if self.downsample is None else self.downsample(x)
        return self.relu_out(y + r)


class Bottle2p1d(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride, shortcut, device=None):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, planes, 1, bias=False, device=device)
        self.bn1 = _bn(planes, device)
        _add_2p1d(self, "2", planes, planes, stride, device)
        self.conv3 = nn.Conv3d(planes, planes * 4, 1, bias=False, device=device)
        self.bn3 = _bn(planes * 4, device)
        self.relu_a, self.relu_b, self.relu_c, self.relu_out = (nn.ReLU(), nn.ReLU(),
                                                                nn.ReLU(), nn.ReLU())
        self.downsample = shortcut

    def forward(self, x):
        y = self.relu_a(self.bn1(self.conv1(x)))
        y = self.relu_c(_run_2p1d(self, "2", self.relu_b, y))
        y = self.bn3(self.conv3(y))
        r = x if self.downsample is None else self.downsample(x)
        return self.relu_out(y + r)


class R2p1D(nn.Module):
    def __init__(self, depth=18, n_classes=400, n_input_channels=3, shortcut="B",
                 conv1_t_size=7, conv1_t_stride=1, no_max_pool=False, widen_factor=1.0,
                 device=None):
        super().__init__()
        if depth not in RESNET_BLOCKS:
            raise ValueError("resnet2p1d: unsupported depth %r" % depth)
        block = Bottle2p1d if depth >= 50 else Block2p1d
        widths = [int(w * widen_factor) for w in (64, 128, 256, 512)]
        w0, t = widths[0], conv1_t_size
        stem_mid = (3 * w0 * t * 49) // (3 * 49 + t * w0)
        self.conv1_s = nn.Conv3d(n_input_channels, stem_mid, (1, 7, 7), (1, 2, 2), (0, 3, 3),
                                 bias=False, device=device)
        self.bn1_s = _bn(stem_mid, device)
        self.conv1_t = nn.Conv3d(stem_mid, w0, (t, 1, 1), (conv1_t_stride, 1, 1),
                                 (t // 2, 0, 0), bias=False, device=device)
        self.bn1_t = _bn(w0, device)
        self.relu_s, self.relu_t = nn.ReLU(), nn.ReLU()
        self.no_max_pool = no_max_pool
        self.maxpool = nn.MaxPool3d(3, 2, 1)
        cin = w0
        for i, planes in enumerate(widths):
            stride = 1 if i == 0 else 2
            blocks = []
            for j in range(RESNET_BLOCKS[depth][i]):
                s = stride if j == 0 else 1
                cout = planes * block.expansion
                sc = None
                if j == 0 and (s != 1 or cin != cout):
                    sc = _make_shortcut(shortcut, cin, cout, s, device)
                blocks.append(block(cin, planes, s, sc, device))
                cin = cout
            setattr(self, "layer%d" % (i + 1), nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, n_classes, device=device)
        self.feature_dim = cin

    def extract(self, x):
        x = self.relu_s(self.bn1_s(self.conv1_s(x)))
        x = self.relu_t(self.bn1_t(self.conv1_t(x)))
        if not self.no_max_pool:
            x = self.maxpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return F.adaptive_avg_pool3d(x, 1).flatten(1)

    def forward(self, x, return_features=False):
        f = self.extract(x)
        y = self.fc(f)
        return (y, f) if return_features else y


# ---------------------------------------------------------------- C3D
class C3D(nn.Module):
    def __init__(self, n_classes=400, n_input_channels=3, bn=False, dropout=0.5, device=None):
        super().__init__()
        self.use_bn = bn
        cin = n_input_channels
        self.order = []
        for tag, cout, pool in C3D_LAYERS:
            setattr(self, "conv" + tag, nn.Conv3d(cin, cout, 3, padding=1, bias=not bn,
                                                  device=device))
            if bn:
                setattr(self, "bn" + tag, _bn(cout, device))
            setattr(self, "relu" + tag, nn.ReLU())
            self.order.append((tag, pool))
            cin = cout
        self.pool1 = nn.MaxPool3d((1, 2, 2), (1, 2, 2))
        self.pool = nn.MaxPool3d(2, 2)
        self.pool5 = nn.MaxPool3d(2, 2, padding=(0, 1, 1))
        self.fc6 = nn.Linear(8192, 4096, device=device)
        self.fc7 = nn.Linear(4096, 4096, device=device)
        self.fc8 = nn.Linear(4096, n_classes, device=device)
        self.relu6, self.relu7 = nn.ReLU(), nn.ReLU()
        self.drop6, self.drop7 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.feature_dim = 4096
        # optional fixed masks (tensors of 0/1, N x 4096) replacing the random ones
        self.masks = None

    def conv_stack(self, x):
        for tag, pool in self.order:
            x = getattr(self, "conv" + tag)(x)
            if self.use_bn:
                x = getattr(self, "bn" + tag)(x)
            x = getattr(self, "relu" + tag)(x)
            if pool == "p1":
                x = self.pool1(x)
            elif pool == "p5":
                x = self.pool5(x)
            elif pool:
                x = self.pool(x)
        return x

    def _drop(self, which, x):
        if self.masks is not None and self.training:
            p = getattr(self, which).p
            return x * self.masks[which].to(x.dtype) / (1.0 - p)
        return getattr(self, which)(x)

    def extract(self, x):
        x = self.conv_stack(x).flatten(1)
        x = self._drop("drop6", self.relu6(self.fc6(x)))
        return self._drop("drop7", self.relu7(self.fc7(x)))

    def forward(self, x, return_features=False):
        f = self.extract(x)
        y = self.fc8(f)
        return (y, f) if return_features else y


# ---------------------------------------------------------------- helpers
def build(family, depth=None, **kw):
    if family == "densenet":
        return DenseNet3D(depth, **kw)
    if family == "resnet2p1d":
        return R2p1D(depth, **kw)
    if family == "c3d":
        return C3D(**kw)
    raise ValueError("unknown family %r" % family)


def count_parameters(family, depth=None, **kw):
    """sum(p.numel()) without allocating storage (meta device)."""
    m = build(family, depth, device="meta", **kw)
    return sum(p.numel() for p in m.parameters())


@torch.no_grad()
def c3d_normalize(model, calib, gen, margin, conv_bias=1.0):
    """Data-dependent part of C3D's init (see c3d_input for the why).

    Convolutions: weight = identity (output channel c copies input channel
    c mod C_in through the kernel's centre tap) + the random weights scaled
    so that their contribution varies by ~2% of a max-pool bonus; without BN
    conv1's bias is `conv_bias` and the others' 0 (all ReLU inputs positive).  fc6 and fc7: scaled
    to unit standard deviation on `calib` and their biases set so that unit c
    has mean k_c ~ U[margin] standard deviations (few ReLU inputs near 0)."""
    lo, hi = margin

    def fix(layer, x):
        y = layer(x)
        c = y.shape[1]
        # a small batch has no per-unit statistics: use the layer's
        mean, std = y.mean().expand(c), y.std(unbiased=False).expand(c) + 1e-12
        k = torch.rand((c,), generator=gen, dtype=torch.float64).to(y.dtype) * (hi - lo) + lo
        layer.weight.div_(std.reshape(-1, 1))
        layer.bias.copy_((layer.bias - mean) / std + k)
        return (y - mean) / std + k

    x = calib
    for tag, pool in model.order:
        conv = getattr(model, "conv" + tag)
        w = conv.weight
        cout, cin = w.shape[:2]
        # random part: fluctuation ~ 0.02 x (input std ~ 1) after summing 27*cin taps
        w.mul_(0.02 / (27 * cin * float(w.pow(2).mean())) ** 0.5)
        w[torch.arange(cout), torch.arange(cout) % cin, 1, 1, 1] += 1.0
        if conv.bias is not None:   # the first lifts the clip above 0, the rest stay positive
            conv.bias.fill_(conv_bias if tag == "1" else 0.0)
        x = conv(x)
        if model.use_bn:
            x = getattr(model, "bn" + tag)(x)
        x = torch.relu(x)
        x = model.pool1(x) if pool == "p1" else model.pool5(x) if pool == "p5" else \
            model.pool(x) if pool else x
    x = x.flatten(1)
    for fc in (model.fc6, model.fc7):
        x = torch.relu(fix(fc, x))


def c3d_input(shape, gen, amp=1.0, noise=0.1):
    """A C3D clip (N, C, 16, 112, 112) whose max-pool decisions are decisive.

    With random inputs every 16x112x112 clip has ~10^7 max-pool windows and
    always some whose two largest values are within float32 rounding (~1e-8
    relative), so float32 and float64 route that window's gradient to
    different inputs: a whole output channel's weight gradient moves by
    ~1e-2 (measured, PyTorch float32 vs float64 alike).  Here, for each pool
    level (pool1 ... pool5, with pool5's padding), every window gets one
    randomly placed winner child, and every input position gains `amp` for
    each level at which its ancestor cell is a winner: with the near-identity
    convolutions of c3d_normalize, each window's winner leads its siblings by
    ~amp, far beyond rounding.  Plus N(0, noise) everywhere."""
    n, c, t, h, w = shape
    if (t, h, w) != (16, 112, 112):
        raise ValueError("c3d_input: 16x112x112 clips only")
    pools = (((1, 2, 2), (0, 0, 0)), ((2, 2, 2), (0, 0, 0)), ((2, 2, 2), (0, 0, 0)),
             ((2, 2, 2), (0, 0, 0)), ((2, 2, 2), (0, 1, 1)))
    cur = (t, h, w)
    anc = [torch.arange(d) for d in cur]      # input coordinate -> cell of the current grid
    bonus = torch.zeros(shape, dtype=torch.float64)
    for k, pad in pools:
        out = tuple((cur[i] + 2 * pad[i] - k[i]) // k[i] + 1 for i in range(3))
        q = []
        for i in range(3):
            u = torch.arange(out[i])
            lo = torch.clamp(u * k[i] - pad[i], min=0)
            hi = torch.clamp(u * k[i] - pad[i] + k[i], max=cur[i])   # exclusive
            r = torch.rand((n, c) + out, generator=gen, dtype=torch.float64)
            view = [1, 1, 1, 1, 1]
            view[2 + i] = -1
            lo, cnt = lo.reshape(view), (hi - lo).reshape(view)
            q.append(lo + (r * cnt).long().clamp(max=cnt - 1))
        win = torch.zeros((n, c) + cur, dtype=torch.bool)
        ni = torch.arange(n).reshape(-1, 1, 1, 1, 1)
        ci = torch.arange(c).reshape(1, -1, 1, 1, 1)
        win[ni, ci, q[0], q[1], q[2]] = True
        bonus += amp * win[:, :, anc[0]][:, :, :, anc[1]][:, :, :, :, anc[2]]
        anc = [(a + pad[i]) // k[i] for i, a in enumerate(anc)]
        cur = out
    x = bonus + noise * torch.randn(shape, generator=gen, dtype=torch.float64)
    return x.float()


@torch.no_grad()
def randomize(model, gen, calib=None, calib_fn=None, margin=None):
    """Random weights keeping activations O(1), for any of these modules and
    torchvision's: Conv3d weights kaiming-normal (fan_out, gain sqrt 2), conv
    biases U[-0.1, 0.1]; BN gamma U[0.5, 1.5], beta U[-0.25, 0.25]; Linear
    weights U[+-sqrt(6/in)] (variance 2/in, He) for hidden fc layers and
    U[+-1/sqrt(in)] for the last one (in module order), biases U[-0.1, 0.1].

    BN running statistics: with `calib` (a batch) and `calib_fn` (model, x),
    set to that batch's cumulative statistics from one train-mode pass, then
    perturbed (mean + 0.1*std*N(0,1), var * U[0.7, 1.4]); otherwise random.
    num_batches_tracked becomes a random count in [1, 9].

    With `calib`, the classifier (the last Linear) is then divided by the RMS
    of its input on that batch, so the logits start O(1).

    margin=(lo, hi): BN beta = gamma * U[lo, hi] instead (and, for C3D, a
    data-dependent init of its BN-free layers, see c3d_normalize), so that
    ReLU inputs sit lo..hi standard deviations above zero: far fewer units lie
    within float32 rounding of a ReLU boundary, where float32 and float64 may
    legitimately take different branches."""
    def rn(t, scale=1.0):
        return R.normal(t, gen, scale)

    def ru(t, lo, hi):
        return R.uniform(t, gen, lo, hi)

    bns, linears = [], []
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            fan_out = m.weight.shape[0] * m.weight[0, 0].numel()
            m.weight.copy_(rn(m.weight, (2.0 / fan_out) ** 0.5))
            if m.bias is not None:
                m.bias.copy_(ru(m.bias, -0.1, 0.1))
        elif isinstance(m, nn.BatchNorm3d):
            m.weight.copy_(ru(m.weight, 0.5, 1.5))
            if margin:
                m.bias.copy_(m.weight * ru(m.bias, margin[0], margin[1]))
            else:
                m.bias.copy_(ru(m.bias, -0.25, 0.25))
            m.running_mean.copy_(rn(m.running_mean, 0.1))
            m.running_var.copy_(ru(m.running_var, 0.5, 1.5))
            bns.append(m)
        elif isinstance(m, nn.Linear):
            linears.append(m)
    for i, m in enumerate(linears):
        fan_in = m.weight.shape[1]
        b = (6.0 / fan_in) ** 0.5 if i + 1 < len(linears) else (1.0 / fan_in) ** 0.5
        m.weight.copy_(ru(m.weight, -b, b))
        m.bias.copy_(ru(m.bias, -0.1, 0.1))
    if calib is not None:
        if margin and isinstance(model, C3D):
            was = model.training
            model.train()
            c3d_normalize(model, calib, gen, margin)
            model.train(was)
        saved = [m.momentum for m in bns]
        for m in bns:
            m.momentum = None
            m.reset_running_stats()
        seen = []
        hook = linears[-1].register_forward_pre_hook(lambda _m, inp: seen.append(inp[0]))
        was = model.training
        model.train()
        calib_fn(model, calib)
        model.train(was)
        hook.remove()
        rms = float(seen[0].double().pow(2).mean().sqrt())
        linears[-1].weight.div_(rms + 1e-12)
        R.jitter_running_stats(bns, saved, gen)
    R.count_batches(bns, gen)
