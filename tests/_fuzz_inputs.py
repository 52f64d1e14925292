"""Hypothesis strategies that turn valid seed files into hostile ones (tests/test_fuzz_*.py).

Two kinds of mutation per format: byte-level (flip, overwrite with special bytes, truncate,
insert, delete, duplicate a span) on the file's bytes, and structure-level (the format parsed,
one field replaced by a hostile value: random JSON, absurd dims, other operators, arrays of
other dtypes/shapes/values, sizes declared beyond the data) so that mutations reach the code
behind the parser too.
"""

from __future__ import annotations

import base64
import io
import json
import zipfile

import numpy as np
from hypothesis import strategies as st

SPECIAL_BYTES = [0x00, 0xFF, 0x7F, 0x80, 0x01, ord("["), ord("{"), ord("\""), 0x0A]
HOSTILE_INTS = [0, -1, 1, 2**31 - 1, 2**31, 2**32, 2**40, 2**63 - 1, -2**63, 10**12]
HOSTILE_FLOATS = [0.0, -0.0, 1e-300, 1e-45, 3e38, 1e308, -1e308, float("nan"), float("inf"),
                  float("-inf"), 0.5, -1.0]


@st.composite
def byte_mutation(draw, seed: bytes) -> bytes:
    """``seed`` with 1..4 random byte-level edits (in-place changes more often than changes
    of length, so that more mutants get past the framing into the fields)."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        n = len(data)
        kind = draw(st.sampled_from(["flip", "flip", "flip", "special", "special", "truncate",
                                     "insert", "delete", "duplicate"]))
        pos = draw(st.integers(0, 2**32 - 1)) % max(n, 1)   # uniform over the file
        if kind == "flip" and n:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "special" and n:
            data[pos] = draw(st.sampled_from(SPECIAL_BYTES))
        elif kind == "truncate":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[pos:pos + draw(st.integers(1, 64))]
        elif kind == "duplicate" and n:
            span = data[pos:pos + draw(st.integers(1, 256))]
            data[pos:pos] = span
    return bytes(data)


def json_values():
    scalars = (st.none() | st.booleans() | st.sampled_from(HOSTILE_INTS)
               | st.integers(-2**70, 2**70) | st.sampled_from(HOSTILE_FLOATS)
               | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
    return st.recursive(scalars, lambda c: st.lists(c, max_size=4)
                        | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=12)


@st.composite
def json_mutation(draw, text: str) -> str:
    """A hostile replacement for the JSON ``text``: random JSON, deep nesting, plain garbage,
    or the original with one value (at a random path) replaced."""
    kind = draw(st.sampled_from(["random", "deep", "garbage", "replace", "replace", "replace"]))
    if kind == "random":
        return json.dumps(draw(json_values()))
    if kind == "deep":
        k = draw(st.sampled_from([65, 1000, 100000]))
        return "[" * k + "]" * k
    if kind == "garbage":
        return draw(st.text(max_size=40))
    try:
        doc = json.loads(text)
    except ValueError:
        return draw(st.text(max_size=40))
    if not isinstance(doc, (dict, list)) or not doc:
        return json.dumps(draw(json_values()))
    node = doc
    for _ in range(draw(st.integers(0, 3))):
        keys = list(node.keys()) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            break
        key = draw(st.sampled_from(keys))
        if not isinstance(node[key], (dict, list)) or not node[key]:
            break
        node = node[key]
    keys = list(node.keys()) if isinstance(node, dict) else list(range(len(node)))
    node[draw(st.sampled_from(keys))] = draw(json_values())
    return json.dumps(doc)


# -- ONNX --------------------------------------------------------------------------------------

OPS = ["Loop", "Scan", "If", "ConstantOfShape", "Expand", "Tile", "Range", "Resize", "Pad",
       "Conv", "MatMul", "Gemm", "Add", "Mul", "Reshape", "Relu", "Sigmoid", "NonZero", "TopK",
       "OneHot", "Foo", "", "Identity", "Cast", "Greater"]


@st.composite
def onnx_mutation(draw, seed: bytes) -> bytes:
    """A structural edit of the ONNX model ``seed``."""
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.ModelProto()
    m.ParseFromString(seed)
    g = m.graph
    kind = draw(st.sampled_from(["meta", "meta", "meta", "image", "dims", "dtype", "op", "attr",
                                 "io", "drop", "blowup", "raw"]))
    if kind in ("meta", "image") and m.metadata_props:
        entry = draw(st.sampled_from(list(m.metadata_props)))
        if kind == "image" and entry.key == "edgelearn.quantized":
            info = json.loads(entry.value)
            img = base64.b64decode(info["image"])
            info["image"] = base64.b64encode(draw(byte_mutation(img))).decode()
            entry.value = json.dumps(info)
        else:
            entry.value = draw(json_mutation(entry.value))
    elif kind in ("dims", "dtype", "raw") and g.initializer:
        init = draw(st.sampled_from(list(g.initializer)))
        if kind == "dims":
            del init.dims[:]
            init.dims.extend(draw(st.lists(st.sampled_from([0, 1, 2, 3, 7, 2**20, 2**31, 2**40,
                                                            -1]), max_size=4)))
        elif kind == "dtype":
            init.data_type = draw(st.integers(0, 26))
        else:
            init.raw_data = draw(byte_mutation(init.raw_data or b"\0" * 4))
    elif kind == "op" and g.node:
        node = draw(st.sampled_from(list(g.node)))
        node.op_type = draw(st.sampled_from(OPS))
    elif kind == "attr" and g.node:
        node = draw(st.sampled_from(list(g.node)))
        node.attribute.append(helper.make_attribute(
            draw(st.sampled_from(["axis", "to", "alpha", "transB", "perm", "body"])),
            draw(st.sampled_from(HOSTILE_INTS))))
    elif kind == "io":
        vis = list(g.input) + list(g.output)
        if vis:
            vi = draw(st.sampled_from(vis))
            choice = draw(st.sampled_from(["name", "dim", "elem"]))
            if choice == "name":
                vi.name = draw(st.text(max_size=8))
            elif choice == "elem":
                vi.type.tensor_type.elem_type = draw(st.integers(0, 26))
            elif vi.type.tensor_type.shape.dim:
                vi.type.tensor_type.shape.dim[0].dim_value = draw(st.sampled_from(
                    [0, 1, 2**31 - 1, 2**40]))
    elif kind == "drop" and g.node:
        del g.node[draw(st.integers(0, len(g.node) - 1))]
    elif kind == "blowup" and g.node:
        n = draw(st.sampled_from([2**10, 2**20, 2**28, 2**40]))
        name = f"fz{draw(st.integers(0, 99))}"
        g.initializer.append(numpy_helper.from_array(np.array([n], np.int64), name + "_shape"))
        pos = draw(st.integers(0, len(g.node)))
        g.node.insert(pos, helper.make_node(draw(st.sampled_from(["ConstantOfShape", "Range",
                                                                  "Expand"])),
                                            [name + "_shape"], [name]))
    return m.SerializeToString()


def onnx_file(seed: bytes):
    return byte_mutation(seed) | onnx_mutation(seed)


# -- npz / npy ---------------------------------------------------------------------------------

def hostile_arrays():
    dtypes = st.sampled_from(["<f4", "<f8", "|u1", "<i8", "<c8", "|b1", "<U3", "<f2", "<u4"])
    shapes = st.lists(st.sampled_from([0, 1, 2, 3, 5, 20, 32]), max_size=4).map(tuple)

    @st.composite
    def make(draw):
        dtype, shape = draw(dtypes), draw(shapes)
        n = int(np.prod(shape)) if shape else 1
        if dtype[1] == "U":
            vals = draw(st.lists(st.text(max_size=3), min_size=1, max_size=4))
            return np.resize(np.array(vals, dtype=dtype), n).reshape(shape)
        vals = draw(st.sampled_from(HOSTILE_FLOATS + [2.0, 255.0, 7.0]))
        with np.errstate(all="ignore"):
            return np.full(shape, vals).astype(dtype)
    return make()


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def declared_npy(shape: tuple, dtype: str, payload: int) -> bytes:
    """A .npy stream that declares ``shape`` but holds ``payload`` bytes."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False,
                                               "shape": shape})
    return buf.getvalue() + b"\0" * payload


@st.composite
def npz_mutation(draw, seed: bytes) -> bytes:
    """A structural edit of the npz archive ``seed``: a member's bytes mutated (the archive
    rebuilt, so its CRC holds), replaced by a hostile array, a huge declared shape, an object
    array or a pickle, or removed; a JSON member rewritten."""
    with zipfile.ZipFile(io.BytesIO(seed)) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    name = draw(st.sampled_from(sorted(members) + ["extra.npy"]))
    kind = draw(st.sampled_from(["array", "array", "declared", "object", "pickle", "remove",
                                 "json", "text", "bytes", "bytes", "bytes"]))
    if kind == "bytes" and name in members:     # a member's bytes edited, its CRC kept valid
        members[name] = draw(byte_mutation(members[name]))
    elif kind == "array":
        members[name] = npy_bytes(draw(hostile_arrays()))
    elif kind == "declared":
        members[name] = declared_npy(draw(st.sampled_from([(10**6, 1000, 64), (2**31,),
                                                           (3, 2**40)])), "<f4", 64)
    elif kind == "object":
        buf = io.BytesIO()
        np.save(buf, np.array([None, {"a": 1}], dtype=object), allow_pickle=True)
        members[name] = buf.getvalue()
    elif kind == "pickle":
        members[name] = b"\x80\x04K\x01."
    elif kind == "remove":
        members.pop(name, None)
    elif kind == "json":
        text = draw(json_mutation('{"a": [1, 2], "b": "x"}'))
        arr = np.frombuffer(text.encode(), np.uint8) if name.startswith("__json__") \
            else np.asarray(text)
        members[name] = npy_bytes(arr)
    else:
        members[name] = draw(st.binary(max_size=64))
    out = io.BytesIO()
    method = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    with zipfile.ZipFile(out, "w", method) as zf:
        for key, data in members.items():
            zf.writestr(key, data)
    return out.getvalue()


def npz_file(seed: bytes):
    return byte_mutation(seed) | npz_mutation(seed) | npz_mutation(seed)


def npy_file(seed: bytes):
    return byte_mutation(seed) | hostile_arrays().map(npy_bytes) | st.sampled_from([
        declared_npy((2**20, 2**20), "<f4", 64), declared_npy((5, 32), "<f4", 10),
        declared_npy((5, 32), "|O", 8), b"\x80\x04K\x01.", b""])


# -- NIR (HDF5) ---------------------------------------------------------------------------------

NIR_TYPES = ["LIF", "CubaLIF", "LI", "CubaLI", "IF", "Affine", "Linear", "Input", "Output",
             "Conv2d", "NIRGraph", "Threshold", "Foo", ""]


@st.composite
def nir_mutation(draw, seed: bytes) -> bytes:
    """A structural edit of the NIR (HDF5) file ``seed``: one dataset replaced by a hostile
    array, a node type renamed, a dataset removed, or a huge fill-value dataset."""
    import h5py

    src = io.BytesIO(seed)
    names: list[str] = []
    with h5py.File(src, "r") as f:
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    name = draw(st.sampled_from(sorted(names)))
    kind = draw(st.sampled_from(["array", "array", "type", "remove", "huge", "edges"]))
    out = io.BytesIO(seed)
    with h5py.File(out, "r+") as f:
        if kind == "type":
            types = [n for n in names if n.endswith("/type")]
            target = draw(st.sampled_from(types)) if types else name
            del f[target]
            f[target] = draw(st.sampled_from(NIR_TYPES))
        elif kind == "remove":
            del f[name]
        elif kind == "huge":
            del f[name]
            f.create_dataset(name, shape=draw(st.sampled_from([(1 << 14, 1 << 14), (1 << 31,),
                                                               (4, 1 << 28)])),
                             dtype="<f8", chunks=True, fillvalue=0.5)
        elif kind == "edges":
            del f["node/edges"]
            ends = st.sampled_from(["input", "fc", "lif", "output", "x", ""])
            pairs = draw(st.lists(st.tuples(ends, ends), max_size=6))
            f["node/edges"] = np.array(pairs, dtype="S8").reshape(len(pairs), 2)
        else:
            arr = draw(hostile_arrays())
            del f[name]
            f[name] = np.char.encode(arr, "utf-8") if arr.dtype.kind == "U" else arr
    return out.getvalue()


def nir_file(seed: bytes):
    return byte_mutation(seed) | nir_mutation(seed) | nir_mutation(seed)


# -- flash file --------------------------------------------------------------------------------

@st.composite
def flash_mutation(draw, seed: bytes) -> bytes:
    """Edits aimed at the slot headers (first 64 bytes of each half) and the file size."""
    data = bytearray(seed)
    half = len(data) // 2
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["header", "header", "size", "data"]))
        if kind == "header":
            base = draw(st.sampled_from([0, half]))
            pos = base + draw(st.integers(0, 63))
            data[pos:pos + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\0\0\0\0",
                                                      b"ELSL", b"\x01\0\0\0"]))
        elif kind == "size":
            data = data[:draw(st.sampled_from([0, 10, half, len(data) - 1]))] \
                if draw(st.booleans()) else data + b"\xff" * 17
        elif data:
            data[draw(st.integers(0, 2**32 - 1)) % len(data)] ^= 0xFF
    return bytes(data)
