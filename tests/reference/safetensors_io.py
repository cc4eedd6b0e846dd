#!/usr/bin/python3
"""safetensors_io.py -- a small, dependency-free reader and writer of the
safetensors format, for machines where the `safetensors` package is missing
(Debian's python3-torch does not ship it).

Format: 8 bytes little-endian unsigned length n, then n bytes of UTF-8 JSON,
then the data. The JSON maps each tensor name to
    {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
with offsets relative to the start of the data section, and may hold a
"__metadata__" object whose values are strings. Data is little-endian,
row-major (C order).

    load(path)                  -> (dict name -> torch.Tensor, metadata dict)
    save(path, tensors, metadata=None)

Only the standard library and torch are used.
"""
import json
import os
import struct
import sys

import torch

# safetensors dtype string -> (torch dtype, bytes per element)
DTYPES = {
    "F64": (torch.float64, 8),
    "F32": (torch.float32, 4),
    "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2),
    "I64": (torch.int64, 8),
    "I32": (torch.int32, 4),
    "I16": (torch.int16, 2),
    "I8": (torch.int8, 1),
    "U8": (torch.uint8, 1),
    "BOOL": (torch.bool, 1),
}
TORCH_TO_ST = {v[0]: k for k, v in DTYPES.items()}

MAX_HEADER = 100 * 1024 * 1024  # the reference implementation's limit


class SafetensorsError(Exception):
    pass


def _numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def load(path):
    """Read a .safetensors file. Returns (tensors, metadata): tensors is a
    dict of name -> torch.Tensor (each owning its memory, in file order),
    metadata the "__metadata__" dict (empty if absent). Raises
    SafetensorsError with a message naming the problem on a malformed file.
    Each tensor is read straight into its own memory, so loading a file
    takes the file's size once (a 10 GB model must not need 20)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 8:
            raise SafetensorsError("%s: file too short for a safetensors header (%d bytes)" % (path, size))
        (n,) = struct.unpack("<Q", f.read(8))
        if n > MAX_HEADER or 8 + n > size:
            raise SafetensorsError("%s: header length %d does not fit in a %d-byte file" % (path, n, size))
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise SafetensorsError("%s: header is not valid JSON: %s" % (path, e))
        if not isinstance(header, dict):
            raise SafetensorsError("%s: header is not a JSON object" % path)
        data_start, data_len = 8 + n, size - 8 - n
        metadata = header.pop("__metadata__", None) or {}
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise SafetensorsError("%s: __metadata__ must map names to strings" % path)
        if sys.byteorder != "little":
            raise SafetensorsError("big-endian hosts are not supported")
        tensors = {}

        def begin_of(kv):  # file order, so iteration is deterministic
            try:
                return int(kv[1]["data_offsets"][0])
            except Exception:  # noqa: BLE001 -- malformed entries are reported below
                return -1

        for name, info in sorted(header.items(), key=begin_of):
            if not isinstance(info, dict):
                raise SafetensorsError("%s: tensor %r: entry is not a JSON object" % (path, name))
            try:
                dt = info["dtype"]
                shape = [int(s) for s in info["shape"]]
                begin, end = (int(o) for o in info["data_offsets"])
            except (KeyError, TypeError, ValueError):
                raise SafetensorsError("%s: tensor %r: entry needs dtype, shape and data_offsets" % (path, name))
            if dt not in DTYPES:
                raise SafetensorsError("%s: tensor %r: unsupported dtype %r" % (path, name, dt))
            tdtype, esize = DTYPES[dt]
            if any(s < 0 for s in shape):
                raise SafetensorsError("%s: tensor %r: negative dimension in shape %s" % (path, name, shape))
            nbytes = _numel(shape) * esize
            if not (0 <= begin <= end <= data_len) or end - begin != nbytes:
                raise SafetensorsError("%s: tensor %r: offsets [%d, %d] do not hold %s %s (%d bytes; data section %d bytes)"
                                       % (path, name, begin, end, dt, shape, nbytes, data_len))
            raw = torch.empty(nbytes, dtype=torch.uint8)
            if nbytes:
                f.seek(data_start + begin)
                view, got = memoryview(raw.numpy()), 0
                while got < nbytes:  # one read(2) returns at most about 2 GB
                    k = f.readinto(view[got:])
                    if not k:
                        raise SafetensorsError("%s: tensor %r: file ended inside its data" % (path, name))
                    got += k
            tensors[name] = raw.view(tdtype).reshape(shape)
    return tensors, metadata


def _tensor_bytes(t):
    t = t.detach().cpu().contiguous()
    if t.numel() == 0:
        return b""
    # numpy has no bfloat16: view 2-byte types as int16 for the byte dump
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def save(path, tensors, metadata=None):
    """Write tensors (dict name -> torch.Tensor) to path, in the dict's
    order. metadata: optional dict of str -> str stored as __metadata__.
    The header is padded with spaces to a multiple of 8 bytes."""
    header = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise SafetensorsError("metadata must map strings to strings (got %r: %r)" % (k, v))
        header["__metadata__"] = dict(metadata)
    chunks, offset = [], 0
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise SafetensorsError("tensor %r is a %s, not a torch.Tensor" % (name, type(t).__name__))
        if t.dtype not in TORCH_TO_ST:
            raise SafetensorsError("tensor %r: dtype %s cannot be stored" % (name, t.dtype))
        b = _tensor_bytes(t)
        header[name] = {"dtype": TORCH_TO_ST[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(b)]}
        chunks.append(b)
        offset += len(b)
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in chunks:
            f.write(b)


def _selftest():
    import os
    import tempfile
    g = torch.Generator().manual_seed(0)
    ts = {
        "f32": torch.randn(3, 4, generator=g),
        "f16": torch.randn(5, generator=g).half(),
        "bf16": torch.randn(2, 2, 2, generator=g).bfloat16(),
        "u8": torch.arange(7, dtype=torch.uint8),
        "i8": torch.tensor([-3, 0, 5], dtype=torch.int8),
        "i32": torch.tensor([[1, -2], [3, 2 ** 30]], dtype=torch.int32),
        "i64": torch.tensor([2 ** 40, -1], dtype=torch.int64),
        "scalar": torch.tensor(1.5),
        "empty": torch.zeros(0, 3),
    }
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "t.safetensors")
        save(p, ts, {"format": "pt", "note": "hello"})
        with open(p, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
        assert n % 8 == 0, n
        back, meta = load(p)
        assert meta == {"format": "pt", "note": "hello"}, meta
        assert list(back) == list(ts), (list(back), list(ts))
        for k in ts:
            assert back[k].dtype == ts[k].dtype and back[k].shape == ts[k].shape, k
            assert torch.equal(back[k], ts[k]), k
    print("safetensors_io selftest: ok (%d tensors, dtypes %s)"
          % (len(ts), ", ".join(sorted({TORCH_TO_ST[t.dtype] for t in ts.values()}))))


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "selftest":
        _selftest()
    elif len(sys.argv) == 3 and sys.argv[1] == "dump":
        ts, meta = load(sys.argv[2])
        for k, v in meta.items():
            print("meta %s = %s" % (k, v))
        for k, t in ts.items():
            print("%s %s %s" % (k, TORCH_TO_ST[t.dtype], list(t.shape)))
    else:
        print("usage: safetensors_io.py selftest | dump FILE", file=sys.stderr)
        sys.exit(2)
