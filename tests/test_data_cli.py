"""``edgelearn data``: conversions and streams work; every bad input is one line and exit 2."""

import numpy as np
import pytest

from edgelearn.cli import main
from edgelearn.data import Dataset, load_npz, save_npz


def _fails(capsys, argv, match, out=None):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and match in lines[0] and "Traceback" not in err, err
    if out is not None:
        assert not out.exists()


def test_stream_and_info(tmp_path, capsys):
    src = tmp_path / "src.npz"
    save_npz(Dataset(np.ones((8, 5, 4), np.uint8), np.arange(8) % 2, 2, "toy"), src)
    out = tmp_path / "s.npz"
    assert main(["data", "stream", str(src), str(out), "--dead", "0.5", "--n", "6"]) == 0
    ds = load_npz(out)
    assert ds.x.shape == (6, 5, 4) and ds.x.sum() == 6 * 5 * 2
    assert main(["data", "info", str(out), "--json"]) == 0
    assert '"samples": 6' in capsys.readouterr().out


def test_stream_tilt_and_bank_shift_options(tmp_path):
    """--tilt DB and --bank-shift CHANNELS apply SpectralTilt and BankShift (default ramp: reached
    over the stream), after the other drifts, as make_stream does."""
    from edgelearn.data.streams import BankShift, DeadChannels, SpectralTilt, make_stream
    src = tmp_path / "src.npz"
    ds = Dataset(np.random.default_rng(0).integers(0, 6, (10, 5, 8)).astype(np.uint8),
                 np.arange(10) % 2, 2, "toy")
    save_npz(ds, src)
    out = tmp_path / "s.npz"
    assert main(["data", "stream", str(src), str(out), "--bank-shift", "1.5", "--tilt", "12",
                 "--dead", "0.25", "--seed", "4"]) == 0
    want = make_stream(load_npz(src), [DeadChannels(0.25), SpectralTilt(12.0), BankShift(1.5)],
                       seed=4).as_arrays()[0]
    assert np.array_equal(load_npz(out).x, want)


def test_stream_tilt_past_its_bound_is_one_line_exit_2(tmp_path, capsys):
    """--tilt 1e5 (dB) used to write a stream through overflowing gains (NaN cast to uint8);
    now one line, exit 2, nothing written."""
    src = tmp_path / "src.npz"
    save_npz(Dataset(np.ones((3, 5, 8), np.uint8), np.arange(3) % 2, 2, "toy"), src)
    out = tmp_path / "s.npz"
    assert main(["data", "stream", str(src), str(out), "--tilt", "1e5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "SpectralTilt severity must be [0, 200.0], got 100000.0" in err and "\n" not in err
    assert list(tmp_path.iterdir()) == [src]


def test_baseline_command_and_function_agree_on_defaults(tmp_path, capsys):
    """docs/datasets.md: `fit_logistic(train)` is the model `edgelearn data baseline` fits
    (10 time windows by default in both; the function once defaulted to 20)."""
    import json

    from edgelearn.data.baseline import fit_logistic
    from edgelearn.data.randman import randman_splits
    tr, te = randman_splits(n_classes=4, n_units=12, n_steps=40, samples_per_class=40, seed=3)
    save_npz(tr, tmp_path / "tr.npz")
    save_npz(te, tmp_path / "te.npz")
    assert main(["data", "baseline", str(tmp_path / "tr.npz"), str(tmp_path / "te.npz"),
                 "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    model = fit_logistic(tr)
    assert model.time_pools == 10
    assert cli[str(tmp_path / "te.npz")] == model.accuracy(te)
    assert cli[str(tmp_path / "tr.npz")] == model.accuracy(tr)


def test_shd_conversion(tmp_path, capsys):
    pytest.importorskip("h5py", reason="h5py is the optional 'data' extra")
    from edgelearn.data.shd import write_shd
    h5 = tmp_path / "a.h5"
    write_shd(h5, [[0.1, 0.2]], [[1, 2]], [4])
    out = tmp_path / "a.npz"
    assert main(["data", "shd", str(h5), str(out), "--bins", "10", "--downsample", "2"]) == 0
    ds = load_npz(out)
    assert ds.x.shape == (1, 10, 350) and ds.x[0, 1, 0] == 1 and ds.x[0, 2, 1] == 1


def test_bad_inputs_exit_2(tmp_path, capsys):
    junk_h5 = tmp_path / "junk.h5"
    junk_h5.write_bytes(b"garbage")
    _fails(capsys, ["data", "info", junk_h5], "not a readable HDF5 file")
    out = tmp_path / "o.npz"
    _fails(capsys, ["data", "shd", junk_h5, out], "not a readable HDF5 file", out)
    junk_npz = tmp_path / "junk.npz"
    junk_npz.write_bytes(b"PK\x03\x04 truncated")
    _fails(capsys, ["data", "stream", junk_npz, out], "not a readable npz archive", out)
    badlab = tmp_path / "badlab.npz"
    np.savez(badlab, x=np.zeros((2, 3, 4), np.uint8), y=np.array([0, 5]), n_classes=np.int64(2))
    _fails(capsys, ["data", "info", badlab], "label 5 of sample 1 is out of range [0, 2)")
    src = tmp_path / "src.npz"
    save_npz(Dataset(np.ones((3, 5, 4), np.uint8), np.zeros(3, int), 1, "toy"), src)
    _fails(capsys, ["data", "stream", src, out, "--n", "0"], "argument --n: must be an integer >= 1",
           out)
    _fails(capsys, ["data", "stream", src, out, "--dead", "2"], "DeadChannels severity", out)
    _fails(capsys, ["data", "stream", src, out, "--noise", "1e30"],
           "NoiseSpikes severity must be [0, 255.0], got 1e+30", out)
    _fails(capsys, ["data", "info", "speech:dev"], "splits 'train', 'test', 'new_user'")
    _fails(capsys, ["data", "info", "data.csv"], "unknown data source")
