import os

import pytest

from edgelearn.atomic import atomic_open, atomic_write_bytes


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
