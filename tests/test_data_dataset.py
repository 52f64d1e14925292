"""Dataset validation and the npz format: round trip, byte-reproducible, bad files -> DataError."""

import zipfile

import numpy as np
import pytest

from edgelearn.data.dataset import Dataset, load_npz, save_npz
from edgelearn.errors import DataError


def _ds(n=6, t=5, c=3, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return Dataset(rng.integers(0, 4, (n, t, c)).astype(np.uint8), np.arange(n) % k, k, "toy",
                   {"note": "hi", "speaker": np.arange(n) // 2})


def test_fields_are_validated_and_read_only():
    ds = _ds()
    assert ds.x.dtype == np.uint8 and ds.y.dtype == np.int64
    assert (len(ds), ds.n_steps, ds.n_channels) == (6, 5, 3)
    with pytest.raises(ValueError):
        ds.x[0, 0, 0] = 1
    assert ds.time_major().shape == (5, 6, 3)


@pytest.mark.parametrize("x, y, k, match", [
    (np.zeros((2, 3, 4), np.uint8), [0, 3], 3, "label 3 of sample 1 is out of range [0, 3)"),
    (np.zeros((2, 3, 4), np.uint8), [0, -1], 3, "label -1 of sample 1 is out of range"),
    (np.zeros((0, 3, 4), np.uint8), np.zeros(0, int), 3, "is empty"),
    (np.zeros((2, 3), np.uint8), [0, 1], 3, "must have shape [N, T, C], got shape (2, 3)"),
    (np.zeros((2, 3, 4), np.uint8), [0, 1, 2], 3, "y must have shape [2], got shape (3,)"),
    (np.full((2, 3, 4), np.nan, np.float32), [0, 1], 3, "NaN or Inf"),
    (np.full((2, 3, 4), 300), [0, 1], 3, "spike counts in [0, 255]"),
    (np.zeros((2, 3, 4), np.uint8), [0.5, 1], 3, "labels y must be integers"),
    (np.zeros((2, 3, 4), np.uint8), [0, 1], 0, "n_classes must be >= 1"),
])
def test_bad_datasets_raise_one_line_data_errors(x, y, k, match):
    with pytest.raises(DataError) as info:
        Dataset(x, np.asarray(y), k, "bad")
    msg = str(info.value)
    assert match in msg and "'bad'" in msg and "\n" not in msg


def test_npz_round_trip_and_same_bytes(tmp_path):
    ds = _ds()
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    save_npz(ds, a)
    save_npz(ds, b)
    assert a.read_bytes() == b.read_bytes()
    back = load_npz(a)
    assert np.array_equal(back.x, ds.x) and np.array_equal(back.y, ds.y)
    assert back.n_classes == 3 and back.name == "toy" and back.meta["note"] == "hi"
    assert np.array_equal(back.meta["speaker"], ds.meta["speaker"])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_subset_carries_per_sample_meta():
    ds = _ds()
    sub = ds.subset(ds.y == 1)
    assert np.all(sub.y == 1) and np.array_equal(sub.meta["speaker"], [0, 2])
    with pytest.raises(DataError, match="selects no samples"):
        ds.subset(np.zeros(len(ds), bool))


def test_bad_npz_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_npz(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(DataError, match="not a readable npz archive"):
        load_npz(junk)
    good = tmp_path / "good.npz"
    save_npz(_ds(), good)
    trunc = tmp_path / "trunc.npz"
    trunc.write_bytes(good.read_bytes()[:200])
    with pytest.raises(DataError, match="not a readable npz"):
        load_npz(trunc)
    nox = tmp_path / "nox.npz"
    np.savez(nox, y=np.zeros(3, int))
    with pytest.raises(DataError, match="missing key 'x'"):
        load_npz(nox)
    badlab = tmp_path / "badlab.npz"
    np.savez(badlab, x=np.zeros((2, 3, 4), np.uint8), y=np.array([0, 7]),
             n_classes=np.int64(5))
    with pytest.raises(DataError, match="label 7 of sample 1 is out of range"):
        load_npz(badlab)
    pickled = tmp_path / "obj.npz"
    np.savez(pickled, x=np.array([{"a": 1}], dtype=object), y=np.zeros(1, int))
    with pytest.raises(DataError, match="holds Python objects"):
        load_npz(pickled)


def test_npz_is_a_plain_zip_of_npy(tmp_path):
    path = tmp_path / "a.npz"
    save_npz(_ds(), path)
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == sorted(
            ["x.npy", "y.npy", "n_classes.npy", "name.npy", "meta.npy", "meta__speaker.npy"])


def test_a_plain_npz_of_x_and_y_loads_with_the_documented_defaults(tmp_path, monkeypatch):
    """docs/datasets.md: without n_classes, name and meta a file loads as max(y) + 1 classes,
    named after the file's stem, with empty meta (a relative path once gave the name
    "data file 'plain", a piece of the error text)."""
    monkeypatch.chdir(tmp_path)
    np.savez("plain.npz", x=np.ones((3, 4, 2), np.uint8), y=np.array([0, 2, 1], np.int32))
    ds = load_npz("plain.npz")
    assert (ds.name, ds.n_classes, ds.meta) == ("plain", 3, {})
    assert ds.y.dtype == np.int64 and ds.y.tolist() == [0, 2, 1]
