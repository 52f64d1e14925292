import os

import pytest

from edgelearn.atomic import atomic_open, atomic_save_png, atomic_write_bytes


def test_atomic_write_leaves_old_file_on_error(tmp_path):
    p = tmp_path / "f.bin"
    atomic_write_bytes(p, b"old")
    with pytest.raises(RuntimeError):
        with atomic_open(p) as fh:
            fh.write(b"partial")
            raise RuntimeError("boom")
    assert p.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["f.bin"]


def test_atomic_write_uses_normal_file_mode(tmp_path):
    p = tmp_path / "g.bin"
    atomic_write_bytes(p, b"x")
    mask = os.umask(0)
    os.umask(mask)
    assert (p.stat().st_mode & 0o777) == (0o666 & ~mask)


def test_atomic_save_png_writes_a_png_or_keeps_the_old_file(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    path = tmp_path / "plot.png"
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    atomic_save_png(fig, path)
    plt.close(fig)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    class Broken:
        def savefig(self, fh, **kw):
            fh.write(b"half")
            raise RuntimeError("renderer failed")

    old = path.read_bytes()
    with pytest.raises(RuntimeError):
        atomic_save_png(Broken(), path)
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]
