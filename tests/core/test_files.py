import json
import os

import pytest

from rnnkit.files import atomic_save, atomic_write, atomic_write_json


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out" / "metrics.json"
    atomic_write_json(path, {"accuracy": 0.5})
    atomic_write_json(path, {"accuracy": 0.9}, sort_keys=True)
    assert json.loads(path.read_text()) == {"accuracy": 0.9}
    assert sorted(p.name for p in path.parent.iterdir()) == ["metrics.json"]


def test_atomic_write_gives_the_mode_open_would(tmp_path):
    previous = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "model.bin", b"\x00\x01")
    finally:
        os.umask(previous)
    assert path.read_bytes() == b"\x00\x01"
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_failed_save_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "curves.png"
    path.write_bytes(b"old")

    def broken(temporary):
        temporary.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_save(path, broken)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]
