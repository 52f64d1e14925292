"""The boundary layer's parts, one by one (edgelearn.boundary, edgelearn.io.onnx_guard)."""

from __future__ import annotations

import argparse
import io
import warnings
import zipfile

import numpy as np
import pytest

import hostile_files as hf
from edgelearn.atomic import check_folder
from edgelearn.boundary import (Limits, limits, options, parse_json, read_npy, read_npz,
                                run_command, use_limits)
from edgelearn.errors import (DataError, DepthLimitError, EdgelearnError, InputError,
                              ModelFileError, ParameterError, SizeLimitError, WorkLimitError)
from edgelearn.memory.profiles import parse_bytes


def _npy(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def test_read_npy_reads_plain_arrays_and_refuses_what_the_file_cannot_hold(tmp_path):
    good = tmp_path / "a.npy"
    np.save(good, np.arange(12, dtype=np.int16).reshape(3, 4))
    arr = read_npy(good)
    assert arr.dtype == np.int16 and arr.tolist() == np.arange(12).reshape(3, 4).tolist()
    assert arr.flags.writeable
    short = tmp_path / "short.npy"
    short.write_bytes(good.read_bytes()[:-2])
    with pytest.raises(SizeLimitError, match=r"declares shape \(3, 4\) of int16 \(24 bytes\) "
                                             r"but holds at most 22 bytes"):
        read_npy(short)
    with use_limits(array_bytes=16):
        with pytest.raises(SizeLimitError, match="limit 16 bytes per array"):
            read_npy(good)
    rec = tmp_path / "rec.npy"
    np.save(rec, np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]))
    with pytest.raises(InputError, match="only plain numbers and strings"):
        read_npy(rec)
    with pytest.raises(InputError, match="is not a regular file"):
        read_npy(tmp_path)


def test_read_npz_refuses_zip_bombs_and_odd_members():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.npy", _npy(np.zeros(1 << 20, np.uint8)))      # 1 MiB of zeros
    data = buf.getvalue()
    assert read_npz(data)["x"].size == 1 << 20
    with use_limits(compression_ratio=4):
        with pytest.raises(SizeLimitError, match=r"member 'x.npy' declares 1048704 bytes from "
                                                 r"\d+ compressed bytes"):
            read_npz(data)
    for name, member, needle in (("notes.txt", b"hello", "is not an .npy array"),
                                 ("x.npy", b"\x80\x04K\x01.", "a pickle stream")):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr(name, member)
        with pytest.raises(DataError, match=needle):
            read_npz(buf.getvalue(), error=DataError)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_BZIP2) as zf:
        zf.writestr("x.npy", _npy(np.zeros(3)))
    with pytest.raises(ModelFileError, match="compression method 12"):
        read_npz(buf.getvalue(), error=ModelFileError)


def test_parse_json_depth_is_measured_before_parsing():
    assert parse_json('{"a": "[[[[[[", "b": [1, [2]]}', "doc") == {"a": "[[[[[[", "b": [1, [2]]}
    with use_limits(json_depth=3):
        assert parse_json("[[[1]]]", "doc") == [[[1]]]
        with pytest.raises(DepthLimitError, match="doc is nested 4 deep, limit 3"):
            parse_json("[[[[1]]]]", "doc")
    with pytest.raises(DepthLimitError, match="nested 100000 deep"):
        parse_json("[" * 100000 + "]" * 100000, "doc")
    for bad in ('{"dt": NaN}', "[Infinity]", "[-Infinity]", "{", b"\xff"):
        with pytest.raises(ModelFileError):
            parse_json(bad, "doc")


def test_limits_are_validated_and_scoped():
    before = limits()
    with use_limits(run_seconds=0.5) as inner:
        assert limits() is inner and inner.run_seconds == 0.5
    assert limits() is before
    for bad in (0, -1, float("nan"), float("inf"), True):
        with pytest.raises(ParameterError):
            Limits(json_depth=bad)


@pytest.mark.parametrize("kind, text, ok", [
    (options.SEED, "0", 0), (options.SEED, "2147483647", 2147483647), (options.SEED, "-1", None),
    (options.SEED, "2147483648", None), (options.SEED, "1" * 400, None),
    (options.SEED, "1e3", None),
    (options.SEED, "٣", None), (options.COUNT, "0", None), (options.COUNT, " 7 ", 7),
    (options.FRACTION, "1", 1.0), (options.FRACTION, "1.0000001", None),
    (options.FRACTION, "nan", None), (options.POSITIVE, "0", None),
    (options.POSITIVE, "1e-300", 1e-300), (options.POSITIVE, "inf", None),
    (options.POSITIVE, "x", None),
])
def test_option_types(kind, text, ok):
    if ok is None:
        with pytest.raises(argparse.ArgumentTypeError):
            kind(text)
    else:
        assert kind(text) == ok


def test_parse_bytes_is_exact_and_bounded():
    assert parse_bytes("1.5MiB") == 1572864 and parse_bytes("0001KiB") == 1024
    assert parse_bytes("262144") == 262144 and parse_bytes(4096) == 4096
    for bad, needle in (("9" * 400, "above the largest"), ("2PiB", "cannot read size"),
                        ("0", "> 0 bytes"), ("1e9", "cannot read size"), ("-5", "cannot read")):
        with pytest.raises(EdgelearnError, match=needle):
            parse_bytes(bad)


def test_run_command_one_line_and_warnings(capsys):
    def bad():
        warnings.warn("overflow encountered", RuntimeWarning)
        raise DataError("the data are bad\nsecond line")

    assert run_command("prog", bad) == 2
    assert capsys.readouterr().err == "prog: error: the data are bad\n"

    def good():
        warnings.warn("something to know", UserWarning)
        return 0

    with pytest.warns(UserWarning, match="something to know"):    # shown after a success
        assert run_command(lambda: "prog sub", good) == 0
    with pytest.raises(ZeroDivisionError):      # a bug keeps its traceback
        run_command("prog", lambda: 1 / 0)


def test_check_folder_creates_nothing(tmp_path):
    target = tmp_path / "a" / "b"
    assert check_folder(target) == target
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    (tmp_path / "f").write_text("x")
    with pytest.raises(EdgelearnError, match="is a file"):
        check_folder(tmp_path / "f" / "sub")


# -- ONNX ------------------------------------------------------------------------------------

def test_constant_folding_is_bounded_before_it_computes(tmp_path):
    from edgelearn.io.onnx_symbolic import NotRecognised, SymbolicGraph

    model = hf.loop_model(trips=3)
    with pytest.raises(NotRecognised, match="constant op 'Loop' .* is not evaluated"):
        SymbolicGraph(model.graph, ["x", "s"])
    import onnx
    big = onnx.load(str(hf.make_constant_of_shape_onnx(tmp_path)))
    with pytest.raises(SizeLimitError, match="would make 268435456 elements"):
        SymbolicGraph(big.graph, ["x", "s"])
    small = onnx.load(str(hf.make_constant_of_shape_onnx(tmp_path, elements=1000)))
    SymbolicGraph(small.graph, ["x", "s"])
    with use_limits(fold_work=500):
        with pytest.raises(WorkLimitError, match="more than 500 element operations"):
            SymbolicGraph(small.graph, ["x", "s"])


def test_graph_bounds(tmp_path):
    import onnx

    from edgelearn.io.onnx_guard import check_graph_bounds

    check_graph_bounds(hf.loop_model(trips=1000), "ok")
    with use_limits(loop_iterations=999):
        with pytest.raises(WorkLimitError, match="runs 1000 iterations, limit 999"):
            check_graph_bounds(hf.loop_model(trips=1000), "m")
    model = onnx.load(str(hf.make_expand_onnx(tmp_path)))
    with pytest.raises(SizeLimitError, match="tensor 'big' would take 1073741824 bytes"):
        check_graph_bounds(model, "m")
    with use_limits(tensor_bytes=2 << 30):
        check_graph_bounds(model, "m")
