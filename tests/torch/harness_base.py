"""Imports, settings, basics and metrics of the PyTorch comparison harness
(harness.py, which re-exports every name here; tests import harness)."""
import argparse
import copy
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
import zlib

sys.dont_write_bytecode = True   # no __pycache__ in the source tree

import numpy as np  # noqa: E402

try:  # ctest treats exit 77 as "skipped"
    import torch  # noqa: E402
except ImportError:
    print("skipped: PyTorch is not installed for %s" % sys.executable)
    sys.exit(77)
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
import st_io  # noqa: E402

torch.backends.mkldnn.enabled = False

TOL_FWD = 1e-4
TOL_LOSS = 1e-4
TOL_TRAIN = 1e-3
STEPS = 2
MOMENTUM, WEIGHT_DECAY = 0.9, 1e-3
# max-pool windows whose two largest inputs are this close (relative) count as
# near-ties: st3d's values before a pool differ from the reference's by ~1e-6
# relative, so a gap of 1e-5 covers them with margin
TIE_REL_GAP = 1e-5
# ReLU inputs this close to 0, relative to their channel's rms, count as
# undecided: float32 may put them on the other side
RELU_REL_GAP = 1e-5
MAX_DECISIONS = 200
# a train-mode batch norm over fewer values per channel normalizes a handful
# of numbers (with 2, to +-1 whatever they are): ill-conditioned
MIN_BN_VALUES = 8
# a loss below this is a saturated softmax (p - y is rounding noise), and
# st3d prints losses to 6 decimals
MIN_LOSS = 0.01


class RefKind:
    """Precision of a training reference and the gradient floors it needs."""

    def __init__(self, name, dtype, mkldnn, grad_floor, bn_floor, bn_seq):
        self.name, self.dtype, self.mkldnn = name, dtype, mkldnn
        self.grad_floor, self.bn_floor, self.bn_seq = grad_floor, bn_floor, bn_seq


REFS = {
    "f32": RefKind("f32", torch.float32, False, 0.05, 0.0, False),
    "f64": RefKind("f64", torch.float64, False, 0.0, 1e-3, True),
    # float32 on PyTorch's oneDNN: only where float64 would be too slow (a
    # reference BLAS), with the float32 floors
    "f32dnn": RefKind("f32dnn", torch.float32, True, 0.05, 0.0, False),
}
FAST_F64_GFLOPS = 4.0


# ------------------------------------------------------------------ basics
def seed(*parts):
    return zlib.crc32("/".join(str(p) for p in parts).encode()) & 0x7FFFFFFF


def generator(*parts):
    return torch.Generator().manual_seed(seed(*parts))


class mkldnn:
    """with mkldnn(True): PyTorch's oneDNN on for the block (fast float32 for
    values whose rounding does not matter: calibration, magnitudes)."""

    def __init__(self, on):
        self.on = on

    def __enter__(self):
        self.was = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = self.on

    def __exit__(self, *exc):
        torch.backends.mkldnn.enabled = self.was
        return False


def default_binary():
    env = os.environ.get("ST3D_BIN")
    if env:
        return env
    return os.path.join(os.path.dirname(os.path.dirname(HERE)), "build", "st3d")


def check_binary(path):
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        print("st3d binary not found or not executable: %s" % path, file=sys.stderr)
        sys.exit(2)


def run(cmd, timeout=600):
    """Runs cmd; returns CompletedProcess (text).  A timeout gives returncode
    -9 and a note on stderr instead of an exception."""
    try:
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        def s(v):
            return v.decode(errors="replace") if isinstance(v, bytes) else (v or "")
        return subprocess.CompletedProcess(cmd, -9, s(e.stdout),
                                           s(e.stderr) + "\n(timed out after %ds)" % timeout)


class TempDir:
    def __init__(self, keep=False, prefix="st3dtorch-"):
        self.path = tempfile.mkdtemp(prefix=prefix)
        self.keep = keep

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        if self.keep:
            print("files kept in", self.path)
        else:
            shutil.rmtree(self.path, ignore_errors=True)
        return False


def float64_gflops():
    a = torch.randn(384, 384, dtype=torch.float64)
    a @ a
    t0 = time.time()
    for _ in range(4):
        a @ a
    return 4 * 2 * 384 ** 3 / 1e9 / max(time.time() - t0, 1e-9)


# ------------------------------------------------------------------ metrics
def as64(t):
    if torch.is_tensor(t):
        t = t.detach().double().numpy()
    return np.asarray(t, dtype=np.float64)


def _excess(a, b, slack):
    d = np.abs(a - b)
    return d if slack is None else np.maximum(d - as64(slack), 0.0)


def _degenerate(a, b):
    """The error of a against b when it needs no arithmetic: inf on a shape
    mismatch or a non-finite a, 0 for empty tensors; else None."""
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    if not np.all(np.isfinite(a)):
        return float("inf")
    return None


def max_err(a, b, den_floor=0.0, slack=None):
    """max(|a - b| less the slack) / (max|b| + den_floor); inf on a shape
    mismatch or a non-finite a."""
    a, b = as64(a), as64(b)
    early = _degenerate(a, b)
    if early is not None:
        return early
    return float(np.max(_excess(a, b, slack)) / (np.max(np.abs(b)) + den_floor + 1e-30))


def update_err(a, b, p0, slack=None):
    """max|(a-p0) - (b-p0)| / (max|b-p0| + 1e-3 max|p0|)."""
    a, b, p0 = as64(a), as64(b), as64(p0)
    early = _degenerate(a, b)
    if early is not None:
        return early
    den = np.max(np.abs(b - p0)) + 1e-3 * np.max(np.abs(p0)) + 1e-30
    return float(np.max(_excess(a, b, slack)) / den)
