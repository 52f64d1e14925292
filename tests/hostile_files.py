"""Crafted hostile input files for the regression tests of issue 14 (no binary blobs: every
file the tests use is made here).

    python tests/hostile_files.py OUTDIR        writes every file below into OUTDIR

Each ``make_<name>(folder) -> Path`` writes one small file that once crashed, hung or exhausted
edgelearn (the sizes in the docstrings are what the file declares, not what it holds).
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"


def _step_graph(nodes, extra_inits=(), n: int = 4, name: str = "hostile") -> onnx.ModelProto:
    """A graph of the step convention forward(x, s) -> (out, s'), with ``out`` and ``s_out``
    produced by ``nodes`` (so the recogniser and the opaque runner both see it)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])
    s = helper.make_tensor_value_info("s", TensorProto.FLOAT, [1, n])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, n])
    s_out = helper.make_tensor_value_info("s_out", TensorProto.FLOAT, [1, n])
    graph = helper.make_graph(list(nodes) + [helper.make_node("Identity", ["s"], ["s_out"])],
                              name, [x, s], [out, s_out], initializer=list(extra_inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _save(model: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def _loop_body(n: int):
    """Loop body (i, cond, v) -> (cond, v + 1) on a [1, n] tensor."""
    return helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Add", ["v_in", "one"], ["v_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1, n])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1, n])],
        initializer=[numpy_helper.from_array(np.ones((1, n), np.float32), "one")])


def loop_model(trips: int = 10**12, n: int = 4) -> onnx.ModelProto:
    """A Loop whose inputs are all constants: ``trips`` iterations adding 1 to a [1, n] tensor,
    then out = x + loop result. Constant folding or running it never ends."""
    body = _loop_body(n)
    inits = [numpy_helper.from_array(np.array(trips, np.int64), "trips"),
             numpy_helper.from_array(np.array(True), "cond"),
             numpy_helper.from_array(np.zeros((1, n), np.float32), "v0")]
    nodes = [helper.make_node("Loop", ["trips", "cond", "v0"], ["v"], body=body),
             helper.make_node("Add", ["x", "v"], ["out"])]
    return _step_graph(nodes, inits, n, "loop")


def make_loop_onnx(folder: Path) -> Path:
    """~420 bytes; a Loop of 10^12 iterations on constants (hung info/plan/convert/run/deploy
    in the recogniser's constant folding, and run in onnxruntime)."""
    return _save(loop_model(), folder / "loop_1e12.onnx")


def make_dynamic_loop_onnx(folder: Path) -> Path:
    """A Loop whose trip count comes from the input x at run time (10^12 when x holds 10^12):
    nothing static bounds it, so only the run-time guard can."""
    n = 4
    body = _loop_body(n)
    inits = [numpy_helper.from_array(np.array(True), "cond"),
             numpy_helper.from_array(np.zeros((1, n), np.float32), "v0"),
             numpy_helper.from_array(np.array(1e12, np.float32), "big")]
    nodes = [helper.make_node("ReduceMax", ["x"], ["xm"], keepdims=0),
             helper.make_node("Mul", ["xm", "big"], ["xb"]),
             helper.make_node("Cast", ["xb"], ["trips"], to=TensorProto.INT64),
             helper.make_node("Loop", ["trips", "cond", "v0"], ["v"], body=body),
             helper.make_node("Add", ["x", "v"], ["out"])]
    return _save(_step_graph(nodes, inits, n, "dynamic_loop"), folder / "loop_dynamic.onnx")


def make_constant_of_shape_onnx(folder: Path, elements: int = 1 << 28) -> Path:
    """~260 bytes; ConstantOfShape of 2^28 float32 (1 GiB; 3.1 GB peak when folded)."""
    inits = [numpy_helper.from_array(np.array([elements], np.int64), "shape")]
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["big"]),
             helper.make_node("ReduceSum", ["big"], ["total"], keepdims=0),
             helper.make_node("Add", ["x", "total"], ["out"])]
    return _save(_step_graph(nodes, inits, 4, "const_of_shape"), folder / "constant_of_shape.onnx")


def make_expand_onnx(folder: Path) -> Path:
    """Expand of a scalar to [2^14, 2^14] float32 (1 GiB) computed from constants."""
    inits = [numpy_helper.from_array(np.array(1.0, np.float32), "one"),
             numpy_helper.from_array(np.array([1 << 14, 1 << 14], np.int64), "shape")]
    nodes = [helper.make_node("Expand", ["one", "shape"], ["big"]),
             helper.make_node("ReduceSum", ["big"], ["total"], keepdims=0),
             helper.make_node("Add", ["x", "total"], ["out"])]
    return _save(_step_graph(nodes, inits, 4, "expand"), folder / "expand.onnx")


def make_runtime_blowup_onnx(folder: Path) -> Path:
    """An opaque graph whose ConstantOfShape size depends on the input x: 2^28 floats when
    x holds 2^28 (nothing static bounds it)."""
    inits = [numpy_helper.from_array(np.array([0], np.int64), "zero")]
    nodes = [helper.make_node("ReduceMax", ["x"], ["xm"], keepdims=1),
             helper.make_node("Cast", ["xm"], ["xi"], to=TensorProto.INT64),
             helper.make_node("Reshape", ["xi", "one_dim"], ["shape"]),
             helper.make_node("ConstantOfShape", ["shape"], ["big"]),
             helper.make_node("ReduceSum", ["big"], ["total"], keepdims=0),
             helper.make_node("Add", ["x", "total"], ["out"])]
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "one_dim"))
    return _save(_step_graph(nodes, inits, 4, "runtime_blowup"), folder / "runtime_blowup.onnx")


# -- quantized ONNX with hostile metadata -------------------------------------------------------

def quantized_randman() -> onnx.ModelProto:
    """The bundled randman_small model quantized with its calibration side file."""
    from edgelearn.adapt.bundle import load_bundle
    from edgelearn.io.onnx_quant import build_quant_model

    bundle = load_bundle(MODELS / "randman_small.onnx")
    return build_quant_model(bundle.qnet)


def _set_meta(model: onnx.ModelProto, key: str, value: str) -> onnx.ModelProto:
    from edgelearn.io import onnx_meta as M

    M.write_metadata(model, {key: value})
    return model


def make_quantized_onnx(folder: Path) -> Path:
    """A valid quantized ONNX file (the seed of the hostile variants)."""
    return _save(quantized_randman(), folder / "quantized.onnx")


def make_quantized_weights_list(folder: Path) -> Path:
    """edgelearn.quantized 'weights' is a JSON list where a dict is expected."""
    from edgelearn.io import onnx_meta as M

    model = quantized_randman()
    info = json.loads(M.read_metadata(model)[M.KEY_QUANTIZED])
    info["weights"] = list(info["weights"].values())
    return _save(_set_meta(model, M.KEY_QUANTIZED, json.dumps(info)),
                 folder / "quantized_weights_list.onnx")


def make_quantized_deep_json(folder: Path, depth: int = 5000) -> Path:
    """edgelearn.quantized nested 5,000 deep (RecursionError in the JSON parser)."""
    from edgelearn.io import onnx_meta as M

    model = quantized_randman()
    return _save(_set_meta(model, M.KEY_QUANTIZED, "[" * depth + "]" * depth),
                 folder / "quantized_deep_json.onnx")


def make_quantized_deep_image_meta(folder: Path, depth: int = 5000) -> Path:
    """The device image inside the metadata carries a 5,000-deep JSON meta (from_image)."""
    import base64

    from edgelearn.io import onnx_meta as M
    from edgelearn.kernels.image import _NET

    model = quantized_randman()
    info = json.loads(M.read_metadata(model)[M.KEY_QUANTIZED])
    image = base64.b64decode(info["image"])
    fields = list(_NET.unpack(image[:_NET.size]))
    name_len, meta_len = fields[8], fields[9]
    body = image[_NET.size:]
    name = body[:name_len]
    rest = body[(name_len + meta_len + 3) // 4 * 4:]
    meta = ("{\"a\":" * depth + "1" + "}" * depth).encode()
    fields[9] = len(meta)
    head = name + meta
    head += b"\0" * (-len(head) % 4)
    new = _NET.pack(*fields) + head + rest
    info["image"] = base64.b64encode(new).decode()
    return _save(_set_meta(model, M.KEY_QUANTIZED, json.dumps(info)),
                 folder / "quantized_deep_image_meta.onnx")


def make_quantized_nan_dt(folder: Path) -> Path:
    """A quantized file whose device image says dt = NaN (info printed "dt nan")."""
    import base64

    from edgelearn.io import onnx_meta as M
    from edgelearn.kernels.image import _NET

    model = quantized_randman()
    info = json.loads(M.read_metadata(model)[M.KEY_QUANTIZED])
    image = base64.b64decode(info["image"])
    fields = list(_NET.unpack(image[:_NET.size]))
    fields[5] = float("nan")                                  # dt
    info["image"] = base64.b64encode(_NET.pack(*fields) + image[_NET.size:]).decode()
    return _save(_set_meta(model, M.KEY_QUANTIZED, json.dumps(info)),
                 folder / "quantized_nan_dt.onnx")


def make_quantized_renamed_io(folder: Path) -> Path:
    """The graph input 'input' and output 'output' renamed (verify_quant fed them by name)."""
    model = quantized_randman()
    g = model.graph
    for vi in list(g.input) + list(g.output):
        if vi.name in ("input", "output"):
            old, vi.name = vi.name, vi.name + "_renamed"
            for node in g.node:
                for k, v in enumerate(node.input):
                    if v == old:
                        node.input[k] = vi.name
                for k, v in enumerate(node.output):
                    if v == old:
                        node.output[k] = vi.name
    return _save(model, folder / "quantized_renamed_io.onnx")


# -- float profile files ---------------------------------------------------------------------

def make_profile_nan_dt(folder: Path) -> Path:
    """An edgelearn profile file whose network JSON says "dt": NaN (info printed "dt nan")."""
    from edgelearn.io import onnx_meta as M

    model = onnx.load(str(MODELS / "randman_small.onnx"))
    info = json.loads(M.read_metadata(model)[M.KEY_NETWORK])
    info["dt"] = float("nan")
    return _save(_set_meta(model, M.KEY_NETWORK, json.dumps(info)), folder / "nan_dt.onnx")


def make_profile_nan_weight(folder: Path) -> Path:
    """A float profile file with one NaN weight (quantize.py said 'quantize it first')."""
    from edgelearn.io import onnx_meta as M

    model = onnx.load(str(MODELS / "randman_small.onnx"))
    layers = json.loads(M.read_metadata(model)[M.KEY_LAYERS])
    wname = layers[0]["tensors"]["weight"]
    for k, init in enumerate(model.graph.initializer):
        if init.name == wname:
            arr = numpy_helper.to_array(init).copy()
            arr.flat[0] = np.nan
            model.graph.initializer[k].CopyFrom(numpy_helper.from_array(arr, wname))
    return _save(model, folder / "nan_weight.onnx")


# -- npz / npy -------------------------------------------------------------------------------

def _npy_header(shape: tuple, dtype: str) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False,
                                               "shape": tuple(shape)})
    return buf.getvalue()


def make_huge_npz(folder: Path) -> Path:
    """A few KB .npz whose 'x' declares [10^6, 1000, 64] uint8 (64 GB) and holds 4 KB."""
    path = folder / "huge_declared.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.npy", _npy_header((10**6, 1000, 64), "|u1") + b"\0" * 4096)
        zf.writestr("y.npy", _npy_header((10**6,), "<i8") + b"\0" * 4096)
    return path


def make_huge_npy(folder: Path) -> Path:
    """A .npy declaring 2^40 float32 (4 TiB) with 64 bytes of data."""
    path = folder / "huge_declared.npy"
    path.write_bytes(_npy_header((1 << 20, 1 << 20), "<f4") + b"\0" * 64)
    return path


def make_broken_zip(folder: Path) -> Path:
    """A valid .npz with its central directory cut off (a broken zip)."""
    buf = io.BytesIO()
    np.savez(buf, x=np.zeros((2, 3, 4), np.float32))
    path = folder / "broken.npz"
    path.write_bytes(buf.getvalue()[:-30])
    return path


def make_object_npy(folder: Path) -> Path:
    """A .npy of dtype object (pickled payload; refused without unpickling)."""
    path = folder / "object.npy"
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    return path


def make_pickle_file(folder: Path) -> Path:
    """A plain pickle stream named .npy (never unpickled)."""
    path = folder / "pickled.npy"
    path.write_bytes(b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01.")
    return path


def make_calib_npz(folder: Path) -> Path:
    """An .npz (several arrays) given where one .npy calibration array is expected."""
    path = folder / "calib.npz"
    np.savez(path, x=np.zeros((10, 4, 32), np.float32))
    return path


def make_calib_3e38(folder: Path, n_in: int = 32) -> Path:
    """Calibration data of the randman model's shape whose values are 3e38 (overflow)."""
    path = folder / "calib_3e38.npz"
    np.savez(path, x=np.full((8, 20, n_in), 3e38, np.float32))
    return path


def make_nan_voice_stream(folder: Path) -> Path:
    """A data set whose per-sample 'voice' metadata is all NaN (ZeroDivisionError)."""
    from edgelearn.data import Dataset
    from edgelearn.data.dataset import save_npz

    rng = np.random.default_rng(0)
    x = (rng.random((12, 20, 32)) < 0.2).astype(np.uint8)
    y = np.arange(12) % 4
    path = folder / "nan_voice.npz"
    save_npz(Dataset(x, y, 4, "nan_voice", {"voice": np.full(12, np.nan)}), path)
    return path


def make_damaged_checkpoint(folder: Path) -> Path:
    """A report folder whose checkpoint.npz is garbage."""
    report = folder / "damaged_report"
    report.mkdir(exist_ok=True)
    (report / "checkpoint.npz").write_bytes(b"PK\x03\x04 this is not a checkpoint")
    return report


# -- NIR --------------------------------------------------------------------------------------

def _nir_graph(weight: np.ndarray, tau: float = 1e-2):
    import nir

    n_out, n_in = weight.shape
    return nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([n_in])}),
               "fc": nir.Linear(weight=weight),
               "lif": nir.LIF(tau=np.full(n_out, tau), r=np.full(n_out, 1.0),
                              v_leak=np.zeros(n_out), v_threshold=np.ones(n_out),
                              v_reset=np.zeros(n_out)),
               "output": nir.Output(output_type={"output": np.array([n_out])})},
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")])


def make_nir(folder: Path) -> Path:
    """A valid 8 -> 4 LIF NIR file (the seed of the hostile variants)."""
    import nir

    path = folder / "small.nir"
    nir.write(path, _nir_graph(np.random.default_rng(0).normal(size=(4, 8))))
    return path


def make_nir_huge_dataset(folder: Path) -> Path:
    """A small NIR file whose weight dataset declares [2^14, 2^14] float64 (2 GiB) but stores
    nothing (a chunked HDF5 dataset reads as its fill value)."""
    import h5py

    import nir

    path = folder / "huge_dataset.nir"
    nir.write(path, _nir_graph(np.random.default_rng(0).normal(size=(4, 8))))
    with h5py.File(path, "r+") as f:
        group = f["node/nodes/fc"]
        del group["weight"]
        group.create_dataset("weight", shape=(1 << 14, 1 << 14), dtype="<f8", chunks=(256, 256),
                             fillvalue=0.5)
    return path


def make_nir_complex(folder: Path) -> Path:
    """A NIR file whose weights are complex numbers."""
    import nir

    path = folder / "complex.nir"
    w = np.random.default_rng(0).normal(size=(4, 8)) * (1 + 1j)
    nir.write(path, _nir_graph(w))
    return path


FILES = [make_loop_onnx, make_dynamic_loop_onnx, make_constant_of_shape_onnx, make_expand_onnx,
         make_runtime_blowup_onnx, make_quantized_onnx, make_quantized_weights_list,
         make_quantized_deep_json, make_quantized_deep_image_meta, make_quantized_nan_dt,
         make_quantized_renamed_io,
         make_profile_nan_dt, make_profile_nan_weight, make_huge_npz, make_huge_npy,
         make_broken_zip, make_object_npy, make_pickle_file, make_calib_npz, make_calib_3e38,
         make_nan_voice_stream, make_damaged_checkpoint, make_nir, make_nir_huge_dataset,
         make_nir_complex]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tests/hostile_files.py OUTDIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for make in FILES:
        path = make(out)
        size = path.stat().st_size if path.is_file() else 0
        print(f"{path}  {size} B")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
