#!/usr/bin/python3
"""Tests of libst3d's PyTorch checkpoint reader (st3d_pth_read, st3d_weights_read).

Usage: test_pth.py WEIGHTS_TOOL [--seeds DIR]

Checkpoints are written with Debian's python3-torch in the zip format and in
the legacy format, as plain state dicts and as training checkpoints
({'epoch', 'arch', 'state_dict' with 'module.' keys, 'optimizer',
'scheduler'}), in float32, float16, bfloat16 and float64, with views
(transposed, sliced, strided, expanded, shared storages).  WEIGHTS_TOOL
loads each with st3d_weights_read and writes every tensor to a safetensors
file, which is decoded here independently and compared bit for bit with what
PyTorch holds.

Hostile files (a pickle calling os.system, unknown globals and opcodes,
truncated archives, a missing data.pkl, storages smaller than their views,
absurd declared sizes, cyclic and deeply nested pickles) must each produce a
one-line error naming the file, with no crash and no hang, under a 1 GB
address-space limit.  --seeds DIR also copies small valid and invalid inputs
there (the fuzzing seed corpus).
"""
import collections
import json
import os
import pickle
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import torch
import torch.nn as nn

TOOL = sys.argv[1]
SEEDS = sys.argv[sys.argv.index("--seeds") + 1] if "--seeds" in sys.argv else None
TMP = tempfile.mkdtemp(prefix="st3d-pth-")
FAILURES = []
MARKER = os.path.join(TMP, "pwned")


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what)


def path(name):
    return os.path.join(TMP, name)


def limit_memory():
    # ST3D_TEST_NO_ULIMIT=1 for sanitizer builds, which reserve huge address ranges
    if not os.environ.get("ST3D_TEST_NO_ULIMIT"):
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def run(*args, limited=False):
    try:
        p = subprocess.run([TOOL] + list(args), capture_output=True, text=True, timeout=30,
                           preexec_fn=limit_memory if limited else None)
    except subprocess.TimeoutExpired:
        return -999, "", "timeout"
    return p.returncode, p.stdout, p.stderr


def seed(name, src):
    if SEEDS:
        os.makedirs(SEEDS, exist_ok=True)
        if os.path.getsize(src) <= 64 * 1024:
            shutil.copy(src, os.path.join(SEEDS, name))

# ------------------------------------------------- independent safetensors decoder


def st_load(fname):
    buf = open(fname, "rb").read()
    (n,) = struct.unpack("<Q", buf[:8])
    hdr = json.loads(buf[8:8 + n], object_pairs_hook=collections.OrderedDict)
    data = buf[8 + n:]
    meta = hdr.pop("__metadata__", {})
    out = collections.OrderedDict()
    for k, e in hdr.items():
        b, en = e["data_offsets"]
        out[k] = (e["dtype"], tuple(e["shape"]), data[b:en])
    return out, meta


TORCH_DT = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
            torch.float64: "F64", torch.int64: "I64", torch.int32: "I32",
            torch.uint8: "U8", torch.int8: "I8", torch.bool: "BOOL"}


def raw_bytes(t):
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def compare(fname, expected, meta=None, f32=False):
    """expected: OrderedDict name -> tensor.  Runs the tool and compares."""
    out = path("dump.safetensors")
    args = ["dump", fname, out] + (["--f32"] if f32 else [])
    rc, _, err = run(*args)
    check(rc == 0, "%s: dump failed: %s" % (fname, err.strip()))
    if rc:
        return
    got, gmeta = st_load(out)
    check(list(got) == list(expected), "%s: keys differ: %r vs %r"
          % (fname, list(got)[:5], list(expected)[:5]))
    for k, t in expected.items():
        if k not in got:
            continue
        dt, shape, data = got[k]
        if f32:
            t = t.float()
        check(dt == TORCH_DT[t.dtype], "%s: %s: dtype %s, torch has %s" % (fname, k, dt, t.dtype))
        check(shape == tuple(t.shape), "%s: %s: shape %r vs %r" % (fname, k, shape, tuple(t.shape)))
        check(data == raw_bytes(t), "%s: %s: values differ" % (fname, k))
    for mk, mv in (meta or {}).items():
        check(gmeta.get(mk) == mv, "%s: metadata %s = %r, expected %r" % (fname, mk, gmeta.get(mk), mv))


def expect_error(fname, needle, limited=True):
    rc, out, err = run("read", fname, limited=limited)
    lines = err.strip().splitlines()
    ok = rc == 1 and len(lines) == 1 and lines[0].startswith("error: " + fname + ": ") and \
        needle in lines[0]
    check(ok, "%s: expected a one-line error containing %r, got rc=%d out=%r err=%r"
          % (os.path.basename(fname), needle, rc, out, err[-400:]))
    if os.environ.get("ST3D_TEST_VERBOSE"):
        print(err.strip().replace(TMP + "/", ""))


def write(name, data):
    p = path(name)
    with open(p, "wb") as f:
        f.write(data)
    return p

# ------------------------------------------------------------ valid checkpoints


def small_net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv3d(3, 8, 3, padding=1, bias=False), nn.BatchNorm3d(8), nn.ReLU(),
                        nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(8, 5))
    net.train()
    net(torch.randn(2, 3, 4, 6, 6))  # running stats and num_batches_tracked move
    return net


def test_state_dicts():
    net = small_net()
    sd = net.state_dict()
    for legacy in (False, True):
        tag = "legacy" if legacy else "zip"
        fmt = "pth-legacy" if legacy else "pth-zip"
        for dname, conv in (("f32", None), ("f16", torch.float16), ("bf16", torch.bfloat16),
                            ("f64", torch.float64)):
            d = collections.OrderedDict(
                (k, v.to(conv) if conv is not None and v.is_floating_point() else v)
                for k, v in sd.items())
            p = path("sd_%s_%s.pth" % (dname, tag))
            torch.save(d, p, _use_new_zipfile_serialization=not legacy)
            compare(p, d, {"format": fmt})
            seed("sd_%s_%s.pth" % (dname, tag), p)
        compare(path("sd_f16_%s.pth" % tag), collections.OrderedDict(
            (k, v.half()) if v.is_floating_point() else (k, v) for k, v in sd.items()), f32=True)

    # views, shared storages, scalars, empty tensors, integer dtypes
    base = torch.arange(60, dtype=torch.float32).reshape(3, 4, 5)
    views = collections.OrderedDict([
        ("transposed", base.transpose(0, 2)),
        ("sliced", base[1:, 2:4, ::2]),
        ("row", base[2, 1]),
        ("expanded", torch.arange(3.0).expand(4, 3)),
        ("permuted5d", torch.randn(2, 3, 4, 5, 6).permute(4, 2, 0, 3, 1)),
        ("shared_full", base),
        ("scalar", torch.tensor(3.5)),
        ("empty", torch.zeros(0, 3)),
        ("empty_view", base[:, :0]),
        ("i32", torch.tensor([-5, 7], dtype=torch.int32)),
        ("u8", torch.tensor([0, 200], dtype=torch.uint8)),
        ("i8", torch.tensor([-128, 127], dtype=torch.int8)),
        ("mask", torch.tensor([True, False, True])),
        ("half_view", torch.randn(6, 4).half()[::2, 1:]),
    ])
    for legacy in (False, True):
        p = path("views_%s.pth" % ("legacy" if legacy else "zip"))
        torch.save(views, p, _use_new_zipfile_serialization=not legacy)
        compare(p, views)
        seed(os.path.basename(p), p)

    # a training checkpoint as 3D-ResNets-PyTorch writes it, from DataParallel
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    net(torch.randn(2, 3, 4, 6, 6)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [50, 100, 150])
    wrapped = nn.DataParallel(net)
    ck = {"epoch": 3, "arch": "resnet-18", "state_dict": wrapped.state_dict(),
          "optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
    expected = collections.OrderedDict((k, v) for k, v in net.state_dict().items())
    for legacy in (False, True):
        p = path("train_%s.pth" % ("legacy" if legacy else "zip"))
        torch.save(ck, p, _use_new_zipfile_serialization=not legacy)
        compare(p, expected, {"arch": "resnet-18", "epoch": "3",
                              "format": "pth-legacy" if legacy else "pth-zip"})
        seed(os.path.basename(p), p)
    # st3d_pth_read keeps the keys as stored
    rc, out, err = run("pth-keys", path("train_zip.pth"))
    want = ["module." + k for k in expected] + ["meta format=pth-zip", "meta arch=resnet-18",
                                                 "meta epoch=3"]
    check(rc == 0 and out.splitlines() == want, "pth-keys: %r %r" % (out[:300], err))
    # 'model' instead of 'state_dict', and a top-level dict of parameters
    p = path("model_key.pth")
    torch.save({"model": net.state_dict(), "epoch": 7}, p)
    compare(p, net.state_dict(), {"epoch": "7"})
    p = path("params.pth")
    params = collections.OrderedDict((k, nn.Parameter(v.float())) for k, v in sd.items()
                                     if v.is_floating_point())
    torch.save(params, p)
    compare(p, params)
    # legacy pickles longer than the reader's first 1 MiB read
    big = {"state_dict": views, "history": [float(i) for i in range(300000)], "epoch": 9}
    for legacy in (False, True):
        p = path("bigpickle_%d.pth" % legacy)
        torch.save(big, p, _use_new_zipfile_serialization=not legacy)
        compare(p, views, {"epoch": "9"})
        os.remove(p)
    # protocol 4 (STACK_GLOBAL, FRAME, MEMOIZE, SHORT_BINUNICODE)
    p = path("proto4.pth")
    torch.save(views, p, pickle_protocol=4)
    compare(p, views)
    seed("proto4.pth", p)


def test_r3d18():
    try:
        import torchvision
    except ImportError:
        print("skip: no torchvision")
        return
    torch.manual_seed(1)
    m = torchvision.models.video.r3d_18(num_classes=7)
    p = path("r3d18.pth")
    torch.save(m.state_dict(), p)
    compare(p, m.state_dict(), {"format": "pth-zip"})
    os.remove(p)

# ------------------------------------------------------------ hostile inputs


def P_str(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def P_int(i):
    if 0 <= i < 256:
        return b"K" + bytes([i])
    if -2 ** 31 <= i < 2 ** 31:
        return b"J" + struct.pack("<i", i)
    n = (i.bit_length() + 8) // 8
    return b"\x8a" + bytes([n]) + i.to_bytes(n, "little", signed=True)


def P_tuple(items):
    return b"(" + b"".join(items) + b"t"


def P_global(mod, name):
    return b"c" + mod.encode() + b"\n" + name.encode() + b"\n"


def P_tensor(key, numel, offset, size, stride, stype="FloatStorage", legacy=False):
    pid = [P_str("storage"), P_global("torch", stype), P_str(key), P_str("cpu"), P_int(numel)]
    if legacy:
        pid.append(b"N")
    return (P_global("torch._utils", "_rebuild_tensor_v2") + b"(" + P_tuple(pid) + b"Q" +
            P_int(offset) + P_tuple([P_int(s) for s in size]) +
            P_tuple([P_int(s) for s in stride]) + b"\x89" +
            P_global("collections", "OrderedDict") + b")R" + b"tR")


def P_dict(items):
    return b"\x80\x02}(" + b"".join(P_str(k) + v for k, v in items) + b"u."


def make_zip(name, records, compress=zipfile.ZIP_STORED):
    p = path(name)
    with zipfile.ZipFile(p, "w", compress) as z:
        for rn, data in records:
            z.writestr(rn, data)
    return p


LEGACY_HEAD = (pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2) + pickle.dumps(1001, protocol=2) +
               pickle.dumps({"protocol_version": 1001, "little_endian": True,
                             "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2))


def make_legacy(name, main_pickle, storages):
    """storages: list of (key, declared count, raw bytes)."""
    body = LEGACY_HEAD + main_pickle + pickle.dumps([k for k, _, _ in storages], protocol=2)
    for _, n, raw in storages:
        body += struct.pack("<q", n) + raw
    return write(name, body)


class Evil:
    def __reduce__(self):
        return (os.system, ("touch " + MARKER,))


def test_hostile():
    evil2 = pickle.dumps({"w": Evil()}, protocol=2)
    evil4 = pickle.dumps({"w": Evil()}, protocol=4)
    p = make_zip("evil.pth", [("archive/data.pkl", evil2), ("archive/version", b"3\n")])
    expect_error(p, "pickle refers to global 'posix.system', which is not allowed")
    seed("evil.pth", p)
    p = make_zip("evil4.pth", [("archive/data.pkl", evil4)])
    expect_error(p, "global 'posix.system'")
    p = make_legacy("evil_legacy.pth", evil2, [])
    expect_error(p, "global 'posix.system'")
    p = make_zip("eval.pth", [("archive/data.pkl", b"\x80\x02" + P_global("builtins", "eval") +
                               P_tuple([P_str("1")]) + b"R.")])
    expect_error(p, "global 'builtins.eval'")
    p = make_zip("module.pth", [("archive/data.pkl", pickle.dumps(nn.Linear(2, 2), protocol=2))])
    expect_error(p, "global 'torch.nn.modules.linear.Linear'")
    p = make_zip("call_storage.pth", [("archive/data.pkl", b"\x80\x02" +
                                       P_global("torch", "FloatStorage") + b")R.")])
    expect_error(p, "calling 'FloatStorage' is not allowed")
    p = make_zip("inst.pth", [("archive/data.pkl", b"\x80\x02(i__main__\nEvil\n.")])
    expect_error(p, "opcode 0x69 ('i') is not allowed")
    check(not os.path.exists(MARKER), "os.system ran: the marker file exists")

    # a valid crafted checkpoint, then variations of it
    good_pkl = P_dict([("w", P_tensor("0", 6, 0, (2, 3), (3, 1)))])
    raw6 = np.arange(6, dtype=np.float32).tobytes()
    p = make_zip("crafted.pth", [("archive/data.pkl", good_pkl), ("archive/data/0", raw6)])
    compare(p, collections.OrderedDict(w=torch.arange(6.0).reshape(2, 3)))
    seed("crafted.pth", p)
    # storages deflated (torch.save stores them; a re-zipped copy may not):
    # read through libzip instead of in place from the mapped file
    p = make_zip("deflated.pth", [("archive/data.pkl", good_pkl), ("archive/data/0", raw6)],
                 compress=zipfile.ZIP_DEFLATED)
    compare(p, collections.OrderedDict(w=torch.arange(6.0).reshape(2, 3)))
    p = make_legacy("crafted_legacy.pth",
                    P_dict([("w", P_tensor("0", 6, 0, (2, 3), (3, 1), legacy=True))]),
                    [("0", 6, raw6)])
    compare(p, collections.OrderedDict(w=torch.arange(6.0).reshape(2, 3)))
    seed("crafted_legacy.pth", p)

    good = open(path("train_zip.pth"), "rb").read()
    for cut in (10, 100, len(good) // 2, len(good) - 30, len(good) - 1):
        expect_error(write("trunc_zip_%d.pth" % cut, good[:cut]), "")
    legacy = open(path("train_legacy.pth"), "rb").read()
    for cut in (20, 60, 200, len(legacy) // 2, len(legacy) - 1):
        expect_error(write("trunc_legacy_%d.pth" % cut, legacy[:cut]), "")
    expect_error(write("trunc_legacy_data.pth", legacy[:-1]), "bytes remain")
    p = make_zip("no_pickle.pth", [("archive/data/0", raw6), ("archive/version", b"3\n")])
    expect_error(p, "without a data.pkl")
    p = make_zip("missing_storage.pth", [("archive/data.pkl", good_pkl)])
    expect_error(p, "storage record 'archive/data/0' is missing")
    p = make_zip("small_record.pth", [("archive/data.pkl", good_pkl), ("archive/data/0", raw6[:8])])
    expect_error(p, "record 'archive/data/0' holds 8 bytes, the pickle declares 24")
    p = make_zip("view_past_storage.pth", [
        ("archive/data.pkl", P_dict([("w", P_tensor("0", 6, 2, (2, 3), (3, 1)))])),
        ("archive/data/0", raw6)])
    expect_error(p, "tensor 'w': view (offset 2, shape [2, 3], stride [3, 1]) reaches beyond")
    p = make_zip("huge_shape.pth", [
        ("archive/data.pkl", P_dict([("w", P_tensor("0", 6, 0, (1 << 40,), (1,)))])),
        ("archive/data/0", raw6)])
    expect_error(p, "reaches beyond storage '0'")
    p = make_zip("huge_broadcast.pth", [
        ("archive/data.pkl", P_dict([("w", P_tensor("0", 6, 0, (1 << 40,), (0,)))])),
        ("archive/data/0", raw6)])
    expect_error(p, "elements viewed from a storage of 6")
    p = make_zip("huge_overflow.pth", [
        ("archive/data.pkl", P_dict([("w", P_tensor("0", 6, 0, (1 << 40, 1 << 40), (1, 1)))])),
        ("archive/data/0", raw6)])
    expect_error(p, "overflows")
    p = make_zip("huge_numel.pth", [
        ("archive/data.pkl", P_dict([("w", P_tensor("0", 1 << 40, 0, (1 << 40,), (1,)))])),
        ("archive/data/0", raw6)])
    expect_error(p, "the pickle declares 4398046511104")
    p = make_legacy("huge_legacy.pth",
                    P_dict([("w", P_tensor("0", 1 << 40, 0, (1 << 40,), (1,), legacy=True))]),
                    [("0", 1 << 40, raw6)])
    expect_error(p, "needs 1099511627776 elements of F32")
    p = make_legacy("legacy_count.pth",
                    P_dict([("w", P_tensor("0", 6, 0, (6,), (1,), legacy=True))]),
                    [("0", 5, raw6)])
    expect_error(p, "holds 5 elements, the pickle declares 6")
    p = make_zip("rank9.pth", [("archive/data.pkl", P_dict([("w", P_tensor("0", 6, 0, (1,) * 9, (1,) * 9))])),
                               ("archive/data/0", raw6)])
    expect_error(p, "rank 9 exceeds 8")
    p = make_zip("short_storage.pth", [("archive/data.pkl",
                                        P_dict([("w", P_tensor("0", 3, 0, (3,), (1,), "ShortStorage"))])),
                                       ("archive/data/0", raw6)])
    expect_error(p, "global 'torch.ShortStorage'")

    # cycles and depth
    d = {}
    d["self"] = d
    p = make_zip("cycle.pth", [("archive/data.pkl", pickle.dumps({"state_dict": d}, protocol=2))])
    expect_error(p, "state dict entry 'self' is a dict, not a tensor")
    lst = []
    lst.append(lst)
    p = make_zip("cycle_list.pth", [("archive/data.pkl", pickle.dumps(lst, protocol=2))])
    expect_error(p, "checkpoint holds a list")
    self_append = b"\x80\x02]q\x00" + b"h\x00a" * 5000 + b"."
    p = make_zip("self_append.pth", [("archive/data.pkl", self_append)])
    expect_error(p, "nested deeper than 1000")
    nested = b"\x80\x02" + b"]" * 100000 + b"a" * 99999 + b"."
    p = make_zip("nested.pth", [("archive/data.pkl", nested)])
    expect_error(p, "nested deeper than 1000")
    p = make_zip("marks.pth", [("archive/data.pkl", b"\x80\x02" + b"(" * 100000 + b".")])
    expect_error(p, "too many nested MARKs")
    p = make_zip("memo.pth", [("archive/data.pkl", b"\x80\x02}r\xff\xff\xff\xff.")])
    expect_error(p, "memo index")
    p = make_zip("memo_get.pth", [("archive/data.pkl", b"\x80\x02h\x05.")])
    expect_error(p, "unset memo entry")
    p = make_zip("bigstr.pth", [("archive/data.pkl", b"\x80\x02X\xff\xff\xff\x7fabc.")])
    expect_error(p, "pickle truncated")
    p = make_zip("many_objects.pth", [("archive/data.pkl", b"\x80\x02]" + b"]a" * 5000000 + b".")])
    expect_error(p, "objects")
    p = make_zip("stray.pth", [("archive/data.pkl", good_pkl + b"N"), ("archive/data/0", raw6)])
    expect_error(p, "stray bytes")
    p = make_zip("no_state_dict.pth", [("archive/data.pkl", pickle.dumps({"epoch": 3, "x": [1]}, protocol=2))])
    expect_error(p, "no state dict found")
    p = make_zip("two_pickles.pth", [("a/data.pkl", good_pkl), ("b/data.pkl", good_pkl)])
    expect_error(p, "more than one data.pkl")
    # a deflated data.pkl bigger than the pickle limit (a zip bomb)
    p = path("bomb.pth")
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("archive/data.pkl", "w", force_zip64=True) as f:
            chunk = b"\0" * (1 << 20)
            for _ in range(300):
                f.write(chunk)
    expect_error(p, "exceeds the limit")
    os.remove(p)
    # corrupt data: CRC mismatch in a storage record
    c = bytearray(open(path("crafted.pth"), "rb").read())
    at = bytes(c).find(raw6)
    c[at + 5] ^= 0xFF
    expect_error(write("crc.pth", bytes(c)), "archive/data/0")
    expect_error(write("empty.pth", b""), "not a weights file")
    expect_error(write("junk.pth", os.urandom(4096)), "")
    expect_error(write("plain_pickle.pth", pickle.dumps({"a": 1}, protocol=2)), "")
    expect_error(path("does_not_exist.pth"), "cannot open")
    if SEEDS:
        for name in ("evil.pth", "cycle.pth", "memo.pth", "small_record.pth", "view_past_storage.pth"):
            seed(name, path(name))


if __name__ == "__main__":
    test_state_dicts()
    test_r3d18()
    test_hostile()
    shutil.rmtree(TMP, ignore_errors=True)
    if FAILURES:
        print("%d failure(s)" % len(FAILURES))
        sys.exit(1)
    print("pth tests ok")
