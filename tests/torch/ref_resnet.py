"""Independent PyTorch reference for the networks of Hara et al. (CVPR 2018),
"Can Spatiotemporal 3D CNNs Retrace the History of 2D CNNs and ImageNet?".

Written for st3d's tests from the architecture description (paper Table 1 and
the facts of kenshohara/3D-ResNets-PyTorch, master): same layer structure, same
state_dict key names and shapes, same forward computation.

Families:
  resnet      BasicBlock (depth 10/18/34) or Bottleneck x4 (50/101/152/200),
              widths [64,128,256,512] * widen_factor (truncated to int)
  preresnet   pre-activation versions of both blocks; stem and head as resnet
  wideresnet  Bottleneck with expansion 2, widths [64,128,256,512] * k
              (depth 50/101/152/200)
  resnext     Bottleneck with expansion 2, widths [128,256,512,1024],
              inner width cardinality*planes//32, grouped 3x3x3 convolution,
              fc input = layer4's width 2048 (the original writes
              cardinality*32*2, the same for cardinality 32; with any other
              cardinality the original cannot run) (depth 50/101/152/200)

Stem: Conv3d(n_in, w0, (t,7,7), stride (ts,2,2), pad (t//2,3,3)) + BN + ReLU
[+ MaxPool3d(3, 2, 1)], four stages (strides 1,2,2,2), AdaptiveAvgPool3d(1),
Linear.

Shortcuts where the shape changes: 'B' = 1x1x1 conv (stride s) + BN held as
`downsample.0` / `downsample.1`; 'A' = subsampling by s (avg pool with kernel
1) and zero channels appended, computed on detached data, so no gradient flows
back through an A shortcut (as in the original, which builds it from
`.data`).

Two known defects of the original master branch are NOT reproduced, because
they make those models unbuildable: (1) pre-activation and ResNeXt blocks
cannot be constructed (their constructors do not accept the `in_planes`
keyword the stage builder passes), (2) ResNeXt passes n_classes positionally
into ResNet's widen_factor slot.  Here they are built as intended: widen
factor 1 for resnext, normal construction for both.  Like the original
model.py, the widen factor applies to family 'resnet' only.
"""
import torch
import torch.nn as nn

STAGE_BLOCKS = {
    10: (1, 1, 1, 1),
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 24, 36, 3),
}
FAMILIES = ("resnet", "preresnet", "wideresnet", "resnext")
FAMILY_DEPTHS = {
    "resnet": (10, 18, 34, 50, 101, 152, 200),
    "preresnet": (10, 18, 34, 50, 101, 152, 200),
    "wideresnet": (50, 101, 152, 200),
    "resnext": (50, 101, 152, 200),
}


def _conv(cin, cout, k, stride=1, pad=0, groups=1, device=None):
    return nn.Conv3d(cin, cout, kernel_size=k, stride=stride, padding=pad,
                     groups=groups, bias=False, device=device)


def _bn(c, device=None):
    return nn.BatchNorm3d(c, device=device)


class ShortcutA:
    """Parameter-free shortcut: subsample by `stride`, append zero channels.
    Not an nn.Module (contributes no state_dict keys)."""

    def __init__(self, out_channels, stride):
        self.out_channels = out_channels
        self.stride = stride

    def __call__(self, x):
        s = self.stride
        y = x.detach()[:, :, ::s, ::s, ::s]
        n, c, d, h, w = y.shape
        z = y.new_zeros((n, self.out_channels - c, d, h, w))
        return torch.cat([y, z], dim=1)


def _shortcut(kind, cin, cout, stride, device):
    if kind == "A":
        return ShortcutA(cout, stride)
    return nn.Sequential(_conv(cin, cout, 1, stride, device=device), _bn(cout, device))


class Basic(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride, shortcut, device=None, **_):
        super().__init__()
        self.conv1 = _conv(cin, planes, 3, stride, 1, device=device)
        self.bn1 = _bn(planes, device)
        self.relu = nn.ReLU(inplace=False)
        self.conv2 = _conv(planes, planes, 3, 1, 1, device=device)
        self.bn2 = _bn(planes, device)
        self.downsample = shortcut

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        r = x if self.downsample is None else self.downsample(x)
        return self.relu(y + r)


class Bottle(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride, shortcut, device=None, mid=None,
                 groups=1, **_):
        super().__init__()
        mid = planes if mid is None else mid
        self.conv1 = _conv(cin, mid, 1, device=device)
        self.bn1 = _bn(mid, device)
        self.conv2 = _conv(mid, mid, 3, stride, 1, groups=groups, device=device)
        self.bn2 = _bn(mid, device)
        self.conv3 = _conv(mid, planes * self.expansion, 1, device=device)
        self.bn3 = _bn(planes * self.expansion, device)
        self.relu = nn.ReLU(inplace=False)
        self.downsample = shortcut

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        r = x if self.downsample is None else self.downsample(x)
        return self.relu(y + r)


class WideBottle(Bottle):
    expansion = 2


class NeXtBottle(Bottle):
    expansion = 2


class PreBasic(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride, shortcut, device=None, **_):
        super().__init__()
        self.bn1 = _bn(cin, device)
        self.conv1 = _conv(cin, planes, 3, stride, 1, device=device)
        self.bn2 = _bn(planes, device)
        self.conv2 = _conv(planes, planes, 3, 1, 1, device=device)
        self.relu = nn.ReLU(inplace=False)
        self.downsample = shortcut

    def forward(self, x):
        y = self.conv1(self.relu(self.bn1(x)))
        y = self.conv2(self.relu(self.bn2(y)))
        r = x if self.downsample is None else self.downsample(x)
        return y + r


class PreBottle(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride, shortcut, device=None, **_):
        super().__init__()
        self.bn1 = _bn(cin, device)
        self.conv1 = _conv(cin, planes, 1, device=device)
        self.bn2 = _bn(planes, device)
        self.conv2 = _conv(planes, planes, 3, stride, 1, device=device)
        self.bn3 = _bn(planes, device)
        self.conv3 = _conv(planes, planes * self.expansion, 1, device=device)
        self.relu = nn.ReLU(inplace=False)
        self.downsample = shortcut

    def forward(self, x):
        y = self.conv1(self.relu(self.bn1(x)))
        y = self.conv2(self.relu(self.bn2(y)))
        y = self.conv3(self.relu(self.bn3(y)))
        r = x if self.downsample is None else self.downsample(x)
        return y + r


class Net3D(nn.Module):
    """One of the four families; attribute names match the original's."""

    def __init__(self, family="resnet", depth=18, n_classes=400, n_input_channels=3,
                 shortcut="B", conv1_t_size=7, conv1_t_stride=1, no_max_pool=False,
                 widen_factor=1.0, wide_k=2, cardinality=32, device=None):
        super().__init__()
        if family not in FAMILIES:
            raise ValueError("unknown family %r" % family)
        if depth not in FAMILY_DEPTHS[family]:
            raise ValueError("%s: unsupported depth %r" % (family, depth))
        if shortcut not in ("A", "B"):
            raise ValueError("shortcut must be A or B")
        deep = depth >= 50
        extra = {}
        if family == "resnet":
            block = Bottle if deep else Basic
            widths = [int(w * widen_factor) for w in (64, 128, 256, 512)]
        elif family == "preresnet":
            block = PreBottle if deep else PreBasic
            widths = [64, 128, 256, 512]
        elif family == "wideresnet":
            block = WideBottle
            widths = [w * wide_k for w in (64, 128, 256, 512)]
        else:
            block = NeXtBottle
            widths = [128, 256, 512, 1024]
        self.family, self.depth = family, depth
        self.no_max_pool = no_max_pool

        cin = widths[0]
        self.conv1 = _conv(n_input_channels, cin, (conv1_t_size, 7, 7),
                           (conv1_t_stride, 2, 2), (conv1_t_size // 2, 3, 3), device=device)
        self.bn1 = _bn(cin, device)
        self.relu = nn.ReLU(inplace=False)
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        for i, (planes, nblocks) in enumerate(zip(widths, STAGE_BLOCKS[depth])):
            stride = 1 if i == 0 else 2
            blocks = []
            for j in range(nblocks):
                s = stride if j == 0 else 1
                cout = planes * block.expansion
                sc = None
                if j == 0 and (s != 1 or cin != cout):
                    sc = _shortcut(shortcut, cin, cout, s, device)
                if family == "resnext":
                    extra = dict(mid=cardinality * planes // 32, groups=cardinality)
                blocks.append(block(cin, planes, s, sc, device=device, **extra))
                cin = cout
            setattr(self, "layer%d" % (i + 1), nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        # The original sizes ResNeXt's fc as cardinality*32*expansion, which is
        # layer4's width only for cardinality 32; for any other cardinality its
        # forward fails.  fc takes layer4's width here (identical for 32).
        self.feature_dim = cin
        self.fc = nn.Linear(cin, n_classes, device=device)

        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def features(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        if not self.no_max_pool:
            x = self.maxpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)

    def forward(self, x, return_features=False):
        f = self.features(x)
        y = self.fc(f)
        return (y, f) if return_features else y


def spatial_only(model):
    """The 2D control of a 3D network (st3d's --spatial-only): every Conv3d's
    and MaxPool3d's temporal kernel becomes 1 (temporal padding 0, strides
    kept), so that each frame is seen alone."""
    for parent in list(model.modules()):
        for name, m in list(parent.named_children()):
            if isinstance(m, nn.Conv3d):
                parent.add_module(name, nn.Conv3d(
                    m.in_channels, m.out_channels, (1,) + tuple(m.kernel_size[1:]), m.stride,
                    (0,) + tuple(m.padding[1:]), groups=m.groups, bias=m.bias is not None))
            elif isinstance(m, nn.MaxPool3d):
                k = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size,) * 3
                p = m.padding if isinstance(m.padding, tuple) else (m.padding,) * 3
                parent.add_module(name, nn.MaxPool3d((1,) + k[1:], m.stride, (0,) + p[1:]))
    return model


def build(family="resnet", depth=18, spatial=False, **kw):
    model = Net3D(family, depth, **kw)
    return spatial_only(model) if spatial else model


def count_parameters(family, depth, **kw):
    """sum(p.numel()) without allocating storage (meta device)."""
    m = Net3D(family, depth, device="meta", **kw)
    return sum(p.numel() for p in m.parameters())


def _stream_bns(model):
    """BatchNorms whose output joins the residual stream: the stem's bn1, the B
    shortcut's BN, in post-activation blocks the block's last BN, in
    pre-activation blocks the BN before the last conv.  Returns
    (all of them, the subset followed by residual-add + ReLU)."""
    stream, positive = {id(model.bn1)}, set()
    for m in model.modules():
        if isinstance(m, (Basic, Bottle)):
            positive.add(id(m.bn2 if isinstance(m, Basic) else m.bn3))
            if isinstance(m.downsample, nn.Sequential):
                positive.add(id(m.downsample[1]))
        elif isinstance(m, (PreBasic, PreBottle)):
            # the BN before the block's last conv: that conv adds to the stream
            stream.add(id(m.bn2 if isinstance(m, PreBasic) else m.bn3))
            if isinstance(m.downsample, nn.Sequential):
                stream.add(id(m.downsample[1]))
    return stream | positive, positive


def normal(t, gen, scale=1.0):
    """N(0, scale^2) values shaped as t (drawn in float64)."""
    return torch.randn(t.shape, generator=gen, dtype=torch.float64).to(t.dtype) * scale


def uniform(t, gen, lo, hi):
    """U[lo, hi) values shaped as t (drawn in float64)."""
    return (torch.rand(t.shape, generator=gen, dtype=torch.float64) * (hi - lo) + lo).to(t.dtype)


def jitter_running_stats(bns, saved_momenta, gen):
    """After a calibration pass: restores each BN's momentum and perturbs its
    running statistics (mean + 0.1*std*N(0,1), var * U[0.7, 1.4])."""
    for m, mom in zip(bns, saved_momenta):
        m.momentum = mom
        std = m.running_var.sqrt()
        m.running_mean.add_(normal(m.running_mean, gen, 0.1) * std)
        m.running_var.mul_(uniform(m.running_var, gen, 0.7, 1.4))


def count_batches(bns, gen):
    """num_batches_tracked: a random count in [1, 9] per BN."""
    for m in bns:
        m.num_batches_tracked.fill_(int(torch.randint(1, 10, (1,), generator=gen)))


@torch.no_grad()
def randomize(model, gen, calib_input=None, bn_beta="centered"):
    """Random weights that keep activations O(1).

    Convolutions: normal with std sqrt(2/fan_in) (the original uses fan_out;
    fan_in keeps activations O(1) into BN-free sums and keeps the first SGD
    steps small relative to the weights).  BN gamma U[0.5, 1.5].  fc weight and
    bias U(+-1/sqrt(in)).

    BN beta:
      "centered": U[-0.25, 0.25] -- the usual situation, many ReLU inputs near 0;
      "margin":   beta = +-gamma*U[2.5, 3.5] with a random sign per channel (so
                  about half the channels are nearly dead, half nearly linear:
                  the ReLU masks matter).  BNs whose output joins the residual
                  stream (stem, shortcut, post-activation block ends) get
                  gamma U[0.02, 0.04], and a positive beta where a residual
                  add + ReLU follows (the sum stays positive).  This keeps fc's
                  input small, so that an SGD step moves the logits by O(1)
                  rather than saturating the softmax.  Few ReLU inputs then lie within
                  float32 rounding distance of 0, so two correct float32
                  implementations take the same ReLU decisions and their
                  gradients agree to rounding level (see test_networks.py).

    Running statistics: with calib_input, that batch's statistics (one
    train-mode pass, cumulative averaging) perturbed (mean + 0.1*std*N(0,1),
    var * U[0.7, 1.4]); otherwise random (mean 0.1*N(0,1), var U[0.5, 1.5]).
    num_batches_tracked: a random count in [1, 9]."""
    def rn(t, scale=1.0):
        return normal(t, gen, scale)

    def ru(t, lo, hi):
        return uniform(t, gen, lo, hi)

    stream, positive = _stream_bns(model)
    bns = []
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            m.weight.copy_(rn(m.weight, (2.0 / m.weight[0].numel()) ** 0.5))
        elif isinstance(m, nn.BatchNorm3d):
            if bn_beta == "margin":
                # beta = +-gamma * U[2.5, 3.5]: ReLU inputs sit >= 2.5 std from 0
                small = id(m) in stream  # keeps the stream (hence fc's input) small
                g = ru(m.weight, 0.02, 0.04) if small else ru(m.weight, 0.5, 1.5)
                b = g * ru(m.bias, 2.5, 3.5)
                if id(m) not in positive:
                    b = b * (ru(m.bias, 0, 1) < 0.5).to(g.dtype).mul(2).sub(1)
                m.weight.copy_(g)
            else:
                m.weight.copy_(ru(m.weight, 0.5, 1.5))
                b = ru(m.bias, -0.25, 0.25)
            m.bias.copy_(b)
            m.running_mean.copy_(rn(m.running_mean, 0.1))
            m.running_var.copy_(ru(m.running_var, 0.5, 1.5))
            bns.append(m)
        elif isinstance(m, nn.Linear):
            b = 1.0 / m.weight.shape[1] ** 0.5
            m.weight.copy_(ru(m.weight, -b, b))
            m.bias.copy_(ru(m.bias, -b, b))
    if calib_input is not None:
        saved = [m.momentum for m in bns]
        for m in bns:
            m.momentum = None
            m.reset_running_stats()
        was = model.training
        model.train()
        model.features(calib_input)
        model.train(was)
        jitter_running_stats(bns, saved, gen)
    count_batches(bns, gen)
