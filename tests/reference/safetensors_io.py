"""Reading and writing safetensors files for the NumPy reference tools (not the product).

The format: an 8-byte little-endian header length, a JSON header mapping each tensor name
to {"dtype", "shape", "data_offsets": [begin, end]} (offsets from the end of the header),
then the raw little-endian data.
"""
import json
import os
import struct

import numpy as np


def read_safetensors(path):
    """{name: float64 ndarray} of one safetensors file (F32, F16, BF16)."""
    with open(path, "rb") as f:
        data = f.read()
    (hlen,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + hlen].decode("utf-8"))
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        raw = data[base + lo:base + hi]
        dt = info["dtype"]
        if dt == "F32":
            a = np.frombuffer(raw, dtype="<f4")
        elif dt == "F16":
            a = np.frombuffer(raw, dtype="<f2")
        elif dt == "BF16":  # the upper 16 bits of an IEEE float32
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << np.uint32(16)).view("<f4")
        else:
            raise ValueError("%s: unsupported dtype %s for %s" % (path, dt, name))
        out[name] = a.astype(np.float64).reshape(info["shape"])
    return out


def read_folder_tensors(folder):
    """All tensors of a Hugging Face folder: model.safetensors or the shards of its index."""
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        out = {}
        for shard in sorted(set(weight_map.values())):
            t = read_safetensors(os.path.join(folder, shard))
            out.update({k: v for k, v in t.items() if weight_map.get(k) == shard})
        return out
    return read_safetensors(os.path.join(folder, "model.safetensors"))


def to_bytes(a, dtype):
    """Little-endian bytes of `a` as F32, F16 or BF16 (rounded to nearest even)."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    if dtype == "F32":
        return a.astype("<f4").tobytes()
    if dtype == "F16":
        return a.astype("<f2").tobytes()
    u = a.view(np.uint32).astype(np.uint64)  # BF16: round to nearest even
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype("<u2").tobytes()


def write_safetensors(path, tensors, dtype, names=None):
    """Writes tensors[name] for each of `names` (default: all, sorted) in one dtype."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors) if names is None else names:
        b = to_bytes(tensors[name], dtype)
        header[name] = {"dtype": dtype, "shape": list(tensors[name].shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((-len(h)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
