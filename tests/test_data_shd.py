"""SHD-layout HDF5 reader on files the test writes; malformed files -> DataError."""

import numpy as np
import pytest

h5py = pytest.importorskip("h5py", reason="h5py is the optional 'data' extra")

from edgelearn.data.shd import load_shd, write_shd
from edgelearn.errors import DataError


@pytest.fixture
def shd_file(tmp_path):
    path = tmp_path / "mini_shd.h5"
    times = [np.array([0.0, 0.004, 0.0049, 0.5, 0.999, 1.2]), np.array([0.25]), np.array([])]
    units = [np.array([0, 0, 1, 699, 350, 5]), np.array([13]), np.array([], dtype=np.uint16)]
    write_shd(path, times, units, [3, 19, 0], speakers=[7, 8, 9])
    return path


def test_binning_and_layout(shd_file):
    ds = load_shd(shd_file, n_bins=100, max_time=1.0)
    assert ds.x.shape == (3, 100, 700) and ds.x.dtype == np.uint8
    assert list(ds.y) == [3, 19, 0] and ds.n_classes == 20
    assert ds.x[0, 0, 0] == 2 and ds.x[0, 0, 1] == 1          # t < 10 ms -> bin 0
    assert ds.x[0, 50, 699] == 1 and ds.x[0, 99, 350] == 1
    assert ds.x[0].sum() == 5                                 # t = 1.2 s dropped
    assert ds.x[1, 25, 13] == 1 and ds.x[2].sum() == 0
    assert list(ds.meta["speaker"]) == [7, 8, 9]


def test_downsample_and_max_time(shd_file):
    ds = load_shd(shd_file, n_bins=10, max_time=2.0, downsample=100)
    assert ds.x.shape == (3, 10, 7)
    assert ds.x[0, 0, 0] == 3 and ds.x[0, 6, 0] == 1 and ds.x[0, 2, 6] == 1
    assert ds.x[0].sum() == 6
    assert len(load_shd(shd_file, limit=2)) == 2


def _write_raw(path, build):
    with h5py.File(path, "w") as fh:
        build(fh)
    return path


def _ragged(fh, name, arrays, dtype):
    d = fh.create_dataset(name, (len(arrays),), dtype=h5py.vlen_dtype(np.dtype(dtype)))
    for i, a in enumerate(arrays):
        d[i] = np.asarray(a, dtype=dtype)


@pytest.mark.parametrize("build, match", [
    (lambda fh: fh.create_dataset("labels", data=[1]), "has no 'spikes/times' dataset"),
    (lambda fh: (_ragged(fh, "spikes/times", [[0.1]], "float32"),
                 _ragged(fh, "spikes/units", [[1]], "uint16"),
                 fh.create_dataset("labels", data=[1, 2])),
     "spikes/times has 1 samples, spikes/units 1, labels 2"),
    (lambda fh: (_ragged(fh, "spikes/times", [[0.1, 0.2]], "float32"),
                 _ragged(fh, "spikes/units", [[1]], "uint16"),
                 fh.create_dataset("labels", data=[1])), "sample 0 has 2 times but 1 units"),
    (lambda fh: (_ragged(fh, "spikes/times", [[-0.1]], "float32"),
                 _ragged(fh, "spikes/units", [[1]], "uint16"),
                 fh.create_dataset("labels", data=[1])), "negative or non-finite"),
    (lambda fh: (_ragged(fh, "spikes/times", [[0.1]], "float32"),
                 _ragged(fh, "spikes/units", [[700]], "uint16"),
                 fh.create_dataset("labels", data=[1])), "unit 700, expected units in [0, 700)"),
    (lambda fh: (_ragged(fh, "spikes/times", [[0.1]], "float32"),
                 _ragged(fh, "spikes/units", [[1]], "uint16"),
                 fh.create_dataset("labels", data=[25])), "label 25 of sample 0 is out of range"),
    (lambda fh: (_ragged(fh, "spikes/times", [[0.1]], "float32"),
                 _ragged(fh, "spikes/units", [[1]], "uint16"),
                 fh.create_dataset("labels", data=[0.5])), "'labels' must be a 1-d integer"),
    (lambda fh: (_ragged(fh, "spikes/times", [], "float32"),
                 _ragged(fh, "spikes/units", [], "uint16"),
                 fh.create_dataset("labels", data=np.zeros(0, int))), "holds no samples"),
])
def test_malformed_files(tmp_path, build, match):
    path = _write_raw(tmp_path / "bad.h5", build)
    with pytest.raises(DataError) as info:
        load_shd(path)
    assert match in str(info.value) and "\n" not in str(info.value)


def test_not_hdf5_and_missing(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x89HDF garbage" * 10)
    with pytest.raises(DataError, match="not a readable HDF5 file"):
        load_shd(junk)
    with pytest.raises(DataError, match="does not exist"):
        load_shd(tmp_path / "nope.h5")
    with pytest.raises(DataError, match="n_bins must be >= 1"):
        load_shd(junk, n_bins=0)
