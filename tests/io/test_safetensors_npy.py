#!/usr/bin/python3
"""Tests of libst3d's safetensors and .npy readers and writers.

Usage: test_safetensors_npy.py WEIGHTS_TOOL [--seeds DIR]

WEIGHTS_TOOL is tests/io/weights_tool.c built against libst3d.  The
safetensors side is checked against an independent encoder/decoder written
here from the format's specification (struct + json + numpy; Debian has no
python3-safetensors), byte-exactly where the format leaves no freedom.  The
.npy side is checked against NumPy itself (np.save / np.load, formats 1.0,
2.0 and 3.0).  Malformed inputs must give exit status 1 and a one-line error
naming the file.  --seeds DIR also copies the inputs (valid and malformed)
to DIR/safetensors and DIR/npy, the fuzzing seed corpora.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from collections import OrderedDict

import numpy as np

TOOL = sys.argv[1]
SEEDS = sys.argv[sys.argv.index("--seeds") + 1] if "--seeds" in sys.argv else None
TMP = tempfile.mkdtemp(prefix="st3d-io-")
FAILURES = []

# ----------------------------------------------------------- independent codec

DT = OrderedDict([("F32", "<f4"), ("F16", "<f2"), ("F64", "<f8"), ("I64", "<i8"),
                  ("I32", "<i4"), ("U8", "u1"), ("I8", "i1"), ("BOOL", "?")])


def st_encode(tensors, metadata=None, pad_to=8, raw_header=None):
    """tensors: list of (name, dtype-name, shape, raw bytes)."""
    hdr = OrderedDict()
    if metadata is not None:
        hdr["__metadata__"] = metadata
    off, blobs = 0, []
    for name, dname, shape, raw in tensors:
        hdr[name] = OrderedDict([("dtype", dname), ("shape", list(shape)),
                                 ("data_offsets", [off, off + len(raw)])])
        off += len(raw)
        blobs.append(raw)
    hj = raw_header if raw_header is not None else json.dumps(hdr).encode()
    hj += b" " * ((-len(hj)) % pad_to)
    return struct.pack("<Q", len(hj)) + hj + b"".join(blobs)


def st_decode(buf):
    """Returns (header OrderedDict, data bytes) after checking the layout."""
    (n,) = struct.unpack("<Q", buf[:8])
    assert 8 + n <= len(buf)
    text = buf[8:8 + n]
    hdr = json.loads(text.decode(), object_pairs_hook=OrderedDict)
    return hdr, buf[8 + n:], text


def arr_bytes(name_dtype, arr):
    if name_dtype == "BF16":
        u = np.asarray(arr, np.float32).view(np.uint32) >> 16
        return u.astype("<u2").tobytes()
    return np.ascontiguousarray(arr, DT[name_dtype]).tobytes()


# ----------------------------------------------------------------- helpers

def seed(fname):
    if SEEDS and os.path.getsize(fname) <= 64 * 1024:
        kind = "npy" if fname.endswith(".npy") else "safetensors"
        os.makedirs(os.path.join(SEEDS, kind), exist_ok=True)
        shutil.copy(fname, os.path.join(SEEDS, kind, os.path.basename(fname)))


def run(*args):
    if args[0] in ("copy", "npy-copy", "npy-labels") and os.path.exists(args[1]):
        seed(args[1])
    p = subprocess.run([TOOL] + list(args), capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what)


def path(name):
    return os.path.join(TMP, name)


def expect_error(fname, content, needle, cmd="copy"):
    p = path(fname)
    with open(p, "wb") as f:
        f.write(content)
    args = [cmd, p] + ([path("unused.out")] if cmd in ("copy", "npy-copy") else [])
    rc, _, err = run(*args)
    lines = err.strip().splitlines()
    ok = (rc == 1 and len(lines) == 1 and lines[0].startswith("error: " + p)
          and needle in lines[0])
    check(ok, "%s: expected one-line error containing %r, got rc=%d %r"
          % (fname, needle, rc, err))


# -------------------------------------------------------- safetensors tests

def test_safetensors_roundtrip():
    rng = np.random.default_rng(0)
    tensors = [
        ("conv1.weight", "F32", (4, 3, 3, 7, 7), rng.standard_normal((4, 3, 3, 7, 7))),
        ("bn1.num_batches_tracked", "I64", (), np.array(12345678901)),
        ("half", "F16", (3, 5), rng.standard_normal((3, 5))),
        ("bf", "BF16", (7,), rng.standard_normal(7)),
        ("dbl", "F64", (2, 2), rng.standard_normal((2, 2))),
        ("i32", "I32", (3,), np.array([-1, 0, 2 ** 31 - 1])),
        ("u8", "U8", (4,), np.array([0, 1, 128, 255])),
        ("i8", "I8", (2,), np.array([-128, 127])),
        ("mask", "BOOL", (3,), np.array([True, False, True])),
        ("empty", "F32", (0, 4), np.zeros((0, 4))),
        ("caf\u00e9.\u03c9", "F32", (1,), np.array([1.5])),
    ]
    enc = [(n, d, s, arr_bytes(d, a)) for n, d, s, a in tensors]
    meta = OrderedDict([("format", "pt"), ("arch", "resnet-18"), ("note", "\u00fcml \"q\"")])
    src = path("in.safetensors")
    with open(src, "wb") as f:
        f.write(st_encode(enc, meta))
    dst = path("out.safetensors")
    rc, _, err = run("copy", src, dst)
    check(rc == 0, "copy failed: " + err)
    if rc:
        return
    buf = open(dst, "rb").read()
    hdr, data, text = st_decode(buf)
    check((8 + len(text)) % 8 == 0, "header not padded to a multiple of 8")
    check(text.rstrip(b" ") == text.rstrip(), "header padding is not spaces")
    check(text[:1] == b"{", "header does not start with '{'")
    check(hdr.get("__metadata__") == meta, "metadata lost: %r" % hdr.get("__metadata__"))
    names = [k for k in hdr if k != "__metadata__"]
    check(names == [t[0] for t in tensors], "order changed: %r" % names)
    off = 0
    for (n, d, s, raw) in enc:
        e = hdr.get(n, {})
        check(e.get("dtype") == d and e.get("shape") == list(s),
              "%s: header entry %r" % (n, e))
        b, en = e.get("data_offsets", [0, 0])
        check(b == off and data[b:en] == raw, "%s: data differs" % n)
        off = en
    check(off == len(data), "trailing bytes in the written file")
    # as the reference implementation lays files out: compact JSON with sorted
    # keys, data ordered by alignment then name, so header order != data order
    a16 = np.arange(3, dtype="<f2").tobytes()
    a32 = np.arange(4, dtype="<f4").tobytes()
    hdr = ('{"__metadata__":{"format":"pt"},"a.half":{"dtype":"F16","shape":[3],'
           '"data_offsets":[16,22]},"b.float":{"dtype":"F32","shape":[2,2],'
           '"data_offsets":[0,16]}}').encode()
    with open(src, "wb") as f:
        f.write(st_encode([], raw_header=hdr) + a32 + a16)
    rc, _, err = run("copy", src, dst)
    check(rc == 0, "reference layout: " + err)
    if rc == 0:
        hdr2, data, _ = st_decode(open(dst, "rb").read())
        check(list(hdr2) == ["__metadata__", "a.half", "b.float"] and
              data == a16 + a32, "reference layout round trip: %r" % hdr2)
    # an empty map and no metadata
    with open(src, "wb") as f:
        f.write(st_encode([]))
    rc, _, err = run("copy", src, dst)
    buf = open(dst, "rb").read()
    check(rc == 0 and json.loads(buf[8:]) == {} and len(buf) % 8 == 0,
          "empty file round trip: %r %r" % (err, buf))


def test_safetensors_errors():
    good = [("w", "F32", (2, 2), b"\0" * 16)]
    expect_error("short.safetensors", b"\1\0\0", "too short")
    expect_error("hlen.safetensors", struct.pack("<Q", 1 << 40) + b"{}", "exceeds the file size")
    expect_error("notjson.safetensors", st_encode([], raw_header=b"{nope"), "bad JSON header")
    expect_error("array.safetensors", st_encode([], raw_header=b"[1, 2]"), "does not start")
    expect_error("dup.safetensors",
                 st_encode([], raw_header=b'{"a": {"dtype": "F32", "shape": [], '
                           b'"data_offsets": [0, 4]}, "a": {}}') + b"\0" * 4, "duplicate")
    expect_error("dtype.safetensors", st_encode([("w", "C64", (1,), b"\0" * 8)]),
                 "tensor 'w': unsupported dtype 'C64'")
    expect_error("mismatch.safetensors",
                 st_encode([("fc.weight", "F32", (400, 512), b"\0" * 100)]),
                 "tensor 'fc.weight': data_offsets [0, 100] do not match shape [400, 512] of F32")
    expect_error("range.safetensors", st_encode(good)[:-4], "outside the 12 data bytes")
    hdr = (b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, '
           b'"b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}')
    expect_error("overlap.safetensors", st_encode([], raw_header=hdr) + b"\0" * 12, "overlap")
    hdr = b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}'
    expect_error("hole.safetensors", st_encode([], raw_header=hdr) + b"\0" * 8, "hole")
    expect_error("trailing.safetensors", st_encode(good) + b"xx", "not described")
    hdr = b'{"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}'
    expect_error("neg.safetensors", st_encode([], raw_header=hdr) + b"\0" * 4, "non-negative")
    hdr = b'{"a": {"dtype": "F32", "shape": [1099511627776, 1099511627776, 1048576], "data_offsets": [0, 4]}}'
    expect_error("huge.safetensors", st_encode([], raw_header=hdr) + b"\0" * 4, "do not match")
    hdr = b'{"a": {"dtype": "F32", "shape": [1,1,1,1,1,1,1,1,1], "data_offsets": [0, 4]}}'
    expect_error("rank.safetensors", st_encode([], raw_header=hdr) + b"\0" * 4, "rank 9")
    hdr = b'{"__metadata__": {"k": 3}}'
    expect_error("meta.safetensors", st_encode([], raw_header=hdr), "metadata 'k'")
    hdr = b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}'
    expect_error("offs.safetensors", st_encode([], raw_header=hdr) + b"\0" * 4, "pair")
    expect_error("missing.safetensors", b"", "too short")


# ---------------------------------------------------------------- npy tests

def test_npy():
    from numpy.lib import format as npf
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((2, 3, 4, 5, 6)).astype(np.float32),
              np.arange(7, dtype=np.float32), np.array(3.5, dtype=np.float32),
              np.zeros((0, 3), np.float32), rng.standard_normal((1, 1, 1, 1, 1, 1, 1, 9)).astype(np.float32)]
    for i, a in enumerate(arrays):
        for version in [(1, 0), (2, 0), (3, 0)]:
            src = path("a%d_%d.npy" % (i, version[0]))
            with open(src, "wb") as f:
                npf.write_array(f, a, version=version)
            dst = path("b%d.npy" % i)
            rc, _, err = run("npy-copy", src, dst)
            check(rc == 0, "npy-copy %s: %s" % (src, err))
            if rc:
                continue
            b = np.load(dst)
            check(b.dtype == np.float32 and b.shape == a.shape and np.array_equal(a, b),
                  "npy round trip %d %r" % (i, version))
        ref = path("ref%d.npy" % i)
        np.save(ref, a)
        check(open(ref, "rb").read() == open(dst, "rb").read(),
              "npy output %d differs from np.save's bytes" % i)
    # labels
    for dt in ("<i8", "<i4"):
        src = path("labels_%s.npy" % dt[1:])
        np.save(src, np.array([3, 0, -1, 399], dtype=dt))
        rc, out, err = run("npy-labels", src)
        check(rc == 0 and out.split() == ["3", "0", "-1", "399"], "labels %s: %r %r" % (dt, out, err))
    # errors
    def npy_bytes(a, **kw):
        p = path("tmp.npy")
        np.save(p, a, **kw)
        return open(p, "rb").read()
    expect_error("f8.npy", npy_bytes(np.zeros(3)), "dtype '<f8' is not float32", "npy-copy")
    expect_error("bad_magic.npy", b"\x93NUMPX" + npy_bytes(np.zeros(3, np.float32))[6:],
                 "bad magic", "npy-copy")
    expect_error("trunc.npy", npy_bytes(np.zeros(30, np.float32))[:-5], "truncated data", "npy-copy")
    expect_error("trunc_hdr.npy", npy_bytes(np.zeros(30, np.float32))[:40], "truncated header",
                 "npy-copy")
    f = np.asfortranarray(np.zeros((3, 4), np.float32))
    p = path("fortran.npy")
    np.save(p, f)
    expect_error("fortran.npy", open(p, "rb").read(), "Fortran-order", "npy-copy")
    hdr = b"{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 4), }"
    hdr += b" " * ((-(10 + len(hdr) + 1)) % 64) + b"\n"
    expect_error("huge.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr,
                 "truncated data", "npy-copy")
    hdr2 = hdr.replace(b"'shape'", b"'evil'  ")
    expect_error("key.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr2)) + hdr2,
                 "bad .npy header", "npy-copy")
    expect_error("v9.npy", b"\x93NUMPY\x09\x00\x00\x00", "version 9.0", "npy-copy")
    expect_error("labels_f4.npy", npy_bytes(np.zeros(3, np.float32)),
                 "dtype '<f4' is not int64", "npy-labels")
    expect_error("labels_2d.npy", npy_bytes(np.zeros((2, 2), np.int64)), "1-D", "npy-labels")


if __name__ == "__main__":
    test_safetensors_roundtrip()
    test_safetensors_errors()
    test_npy()
    if FAILURES:
        print("%d failure(s)" % len(FAILURES))
        sys.exit(1)
    print("safetensors/npy tests ok")
