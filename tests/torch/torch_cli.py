#!/usr/bin/python3
"""A stand-in for the st3d program built on PyTorch and ref_resnet, speaking
the same command line (forward, train-steps, info; model options with '-' or
'_') for the four ResNet families.  It is NOT st3d: it checks the harness's
tolerances by hand (test_selfcheck.py is the test that runs in ctest):

    # a second, independent float32 implementation (PyTorch's oneDNN path)
    TORCH_CLI_MKLDNN=1 /usr/bin/python3 tests/torch/test_networks.py \
        --family resnet --family preresnet --family wideresnet --family resnext \
        --st3d tests/torch/torch_cli.py

must pass; with TORCH_CLI_BUG=fwd|grad|nbt|momentum|bnmom|wd it must fail
(each injects one small, realistic mistake).
"""
import os
import sys

sys.dont_write_bytecode = True

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_resnet as R  # noqa: E402
import st_io  # noqa: E402

FLAGS = ("no-max-pool", "nesterov")


def main(argv):
    if len(argv) < 2:
        print("usage: torch_cli.py forward|train-steps|info [options]", file=sys.stderr)
        return 2
    cmd, a = argv[1], argv[2:]
    o, i = {}, 0
    while i < len(a):
        k = a[i][2:].replace("_", "-")
        if k in FLAGS:
            o[k] = True
            i += 1
        else:
            o[k] = a[i + 1]
            i += 2
    torch.backends.mkldnn.enabled = os.environ.get("TORCH_CLI_MKLDNN") == "1"
    torch.set_num_threads(int(o.get("threads", 2)))
    bug = os.environ.get("TORCH_CLI_BUG", "")
    kw = dict(n_classes=int(o.get("n-classes", 400)),
              n_input_channels=int(o.get("n-input-channels", 3)),
              shortcut=o.get("resnet-shortcut", "B"), conv1_t_size=int(o.get("conv1-t-size", 7)),
              conv1_t_stride=int(o.get("conv1-t-stride", 1)),
              no_max_pool=o.get("no-max-pool", False),
              widen_factor=float(o.get("resnet-widen-factor", 1.0)),
              wide_k=int(o.get("wide-resnet-k", 2)),
              cardinality=int(o.get("resnext-cardinality", 32)))
    m = R.build(o["model"], int(o["model-depth"]), **kw)
    if cmd == "info":
        print("parameters: %d" % sum(p.numel() for p in m.parameters()))
        return 0
    sd, _ = st_io.load(o["weights"])
    m.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    x = torch.from_numpy(np.load(o["input"]))
    if cmd == "forward":
        m.eval()
        with torch.no_grad():
            y, f = m(x, return_features=True)
        if bug == "fwd":
            y = y * (1 + 3e-4)
        np.save(o["output"], y.numpy())
        if "features" in o:
            np.save(o["features"], f.numpy())
        return 0
    if cmd == "train-steps":
        labels = torch.from_numpy(np.load(o["labels"]))
        mom = float(o.get("momentum", 0.9))
        opt = torch.optim.SGD(m.parameters(), lr=float(o["lr"]),
                              momentum=mom * (0.99 if bug == "momentum" else 1.0),
                              weight_decay=float(o.get("weight-decay", 1e-3)) * (0 if bug == "wd" else 1),
                              dampening=float(o.get("dampening", 0.0)),
                              nesterov=o.get("nesterov", False))
        if bug == "bnmom":
            for b in m.modules():
                if isinstance(b, torch.nn.BatchNorm3d):
                    b.momentum = 0.11
        m.train()
        for s in range(int(o["steps"])):
            opt.zero_grad()
            loss = F.cross_entropy(m(x), labels)
            loss.backward()
            opt.step()
            print("step %d loss %.7f" % (s + 1, loss.item()))
        out = st_io.state_dict_to_numpy(m.state_dict())
        if bug == "nbt":
            k = [k for k in out if k.endswith("num_batches_tracked")][0]
            out[k] = out[k] + 1
        st_io.save(o["output"], out)
        if "grads" in o:
            g = {k: p.grad.numpy().copy() for k, p in m.named_parameters()}
            if bug == "grad":
                k = [k for k in g if k.endswith("conv2.weight")][0]
                g[k] *= 1.01
            st_io.save(o["grads"], g)
        return 0
    print("unknown command %s" % cmd, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
