import subprocess
import sys

import pytest

from rnnkit.cli import main
from rnnkit.data import require_file, resolve_data_dir
from rnnkit.errors import DataNotFoundError


def test_missing_file_names_every_place_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path))
    with pytest.raises(DataNotFoundError) as info:
        require_file("music/nothing.mat")
    assert str(tmp_path / "music/nothing.mat") in str(info.value)
    assert ".cache/rnnkit" in str(info.value)


def test_explicit_dir_beats_environment(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x.txt").write_text("a")
    (tmp_path / "b" / "x.txt").write_text("b")
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path / "b"))
    assert require_file("x.txt", tmp_path / "a").read_text() == "a"
    assert require_file("x.txt").read_text() == "b"


def test_explicit_missing_dir_is_an_error(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        resolve_data_dir(tmp_path / "nope")


def test_info_runs(capsys):
    assert main(["info"]) == 0


def test_unknown_command_exits_2():
    result = subprocess.run(
        [sys.executable, "-m", "rnnkit", "no-such-command"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
