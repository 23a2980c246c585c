"""Shared helpers of the st3d reference tests: locating and running the st3d
binary, mapping model options to its command line, and error metrics."""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

try:  # the reference needs PyTorch; ctest treats exit 77 as "skipped"
    import torch  # noqa: F401
except ImportError:
    print("skipped: PyTorch is not installed for %s" % sys.executable)
    sys.exit(77)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

# model keyword (ref_models.Net3D) -> st3d option
_OPT = {
    "n_classes": "--n-classes",
    "n_input_channels": "--n-input-channels",
    "shortcut": "--resnet-shortcut",
    "conv1_t_size": "--conv1-t-size",
    "conv1_t_stride": "--conv1-t-stride",
    "widen_factor": "--resnet-widen-factor",
    "wide_k": "--wide-resnet-k",
    "cardinality": "--resnext-cardinality",
}


def default_binary():
    env = os.environ.get("ST3D_BIN")
    if env:
        return env
    root = os.path.dirname(os.path.dirname(HERE))
    return os.path.join(root, "build", "st3d")


def add_binary_arg(parser):
    parser.add_argument("--st3d", default=default_binary(),
                        help="path of the st3d program (default: $ST3D_BIN or build/st3d)")


def check_binary(path):
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        print("st3d binary not found or not executable: %s" % path, file=sys.stderr)
        sys.exit(2)


def model_args(family, depth, underscore=False, **kw):
    """Command-line model options for st3d; only the options given in kw."""
    args = ["--model", family, "--model-depth", str(depth)]
    for k, v in kw.items():
        if k == "no_max_pool":
            if v:
                args.append("--no-max-pool")
            continue
        args += [_OPT[k], str(v)]
    if underscore:  # the original's spelling: --model_depth etc.
        args = [("--" + a[2:].replace("-", "_")) if a.startswith("--") else a for a in args]
    return args


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


def rel_err(a, b):
    """Per-tensor normalised max error: max|a-b| / (max|b| + 1e-12); b is the
    reference.  Scale invariant, dominated by the largest elements, so tiny
    entries of a tensor do not blow it up.  Exact match of two all-zero
    tensors gives 0; shape mismatch gives inf."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    if not np.all(np.isfinite(a)):
        return float("inf")
    return float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-12))


class TempDir:
    def __init__(self, keep=False, prefix="st3dref-"):
        self.path = tempfile.mkdtemp(prefix=prefix)
        self.keep = keep

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        if not self.keep:
            shutil.rmtree(self.path, ignore_errors=True)
        return False
