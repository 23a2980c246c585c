"""Minimal safetensors reader/writer (numpy only), written from the format spec.

File layout:
  8 bytes   little-endian unsigned 64-bit N = length of the JSON header
  N bytes   UTF-8 JSON object: {"__metadata__": {str: str}?,
                                 name: {"dtype": "F32", "shape": [...],
                                        "data_offsets": [begin, end]}, ...}
            offsets are relative to the first byte after the header;
            the header may be padded with trailing spaces.
  rest      the raw little-endian, row-major tensor bytes.

Only what the st3d tests need: F64/F32/F16/BF16 floats, I64/I32/I16/I8/U8
integers and BOOL.  BF16 is widened to float32 on read.
"""
import json
import struct
from collections import OrderedDict

import numpy as np

_DT = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_NAME = {v: k for k, v in _DT.items()}


class SafetensorsError(ValueError):
    pass


def _dtype_name(a):
    for k, v in _DT.items():
        if a.dtype.kind == v.kind and a.dtype.itemsize == v.itemsize:
            return k
    raise SafetensorsError("unsupported dtype %s" % a.dtype)


def encode(tensors, metadata=None, align=8):
    """Returns the bytes of a safetensors file holding `tensors` (name -> array)."""
    header = OrderedDict()
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    off = 0
    for name, arr in tensors.items():
        a = np.asarray(arr)
        dname = _dtype_name(a)
        raw = np.ascontiguousarray(a.astype(_DT[dname], copy=False)).tobytes()
        header[name] = {"dtype": dname, "shape": [int(s) for s in a.shape],
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    pad = (-(8 + len(hj))) % align
    hj += b" " * pad
    return struct.pack("<Q", len(hj)) + hj + b"".join(blobs)


def save(path, tensors, metadata=None):
    with open(path, "wb") as f:
        f.write(encode(tensors, metadata))


def decode(buf):
    """Parses safetensors bytes; returns (OrderedDict name -> np.ndarray, metadata)."""
    if len(buf) < 8:
        raise SafetensorsError("file shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", buf[:8])
    if n > len(buf) - 8:
        raise SafetensorsError("header length %d exceeds file size %d" % (n, len(buf)))
    try:
        header = json.loads(buf[8:8 + n].decode("utf-8"), object_pairs_hook=OrderedDict)
    except Exception as e:  # noqa: BLE001
        raise SafetensorsError("bad JSON header: %s" % e)
    if not isinstance(header, dict):
        raise SafetensorsError("header is not a JSON object")
    data = memoryview(buf)[8 + n:]
    meta = header.pop("__metadata__", None) or {}
    out = OrderedDict()
    for name, info in header.items():
        dname = info.get("dtype")
        shape = [int(s) for s in info.get("shape", [])]
        b, e = info.get("data_offsets", [0, 0])
        if not (0 <= b <= e <= len(data)):
            raise SafetensorsError("%s: data_offsets [%d, %d] outside data of %d bytes"
                                   % (name, b, e, len(data)))
        if dname == "BF16":
            u = np.frombuffer(data[b:e], dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32)
        elif dname in _DT:
            arr = np.frombuffer(data[b:e], dtype=_DT[dname])
        else:
            raise SafetensorsError("%s: unsupported dtype %s" % (name, dname))
        count = int(np.prod(shape)) if shape else 1
        if arr.size != count:
            raise SafetensorsError("%s: %d elements for shape %s" % (name, arr.size, shape))
        out[name] = arr.reshape(shape).copy()
    return out, meta


def load(path):
    with open(path, "rb") as f:
        return decode(f.read())


def state_dict_to_numpy(sd):
    """torch state_dict -> OrderedDict of numpy arrays (float32, int64 counters)."""
    out = OrderedDict()
    for k, v in sd.items():
        v = v.detach().cpu()
        if v.is_floating_point():
            v = v.float()
        out[k] = v.numpy()
    return out


if __name__ == "__main__":
    # self-check: round trip
    t = OrderedDict(a=np.arange(6, dtype=np.float32).reshape(2, 3),
                    n=np.array(5, dtype=np.int64),
                    e=np.zeros((0, 4), dtype=np.float32))
    d, m = decode(encode(t, {"format": "pt"}))
    assert m == {"format": "pt"}
    for k in t:
        assert d[k].dtype == t[k].dtype and d[k].shape == t[k].shape
        assert np.array_equal(d[k], t[k])
    print("st_io self-check ok")
