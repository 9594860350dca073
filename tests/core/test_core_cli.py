"""The core's commands: `task`, `bench-gradients`, `info --model`, and the demo."""

import json

import pytest

from rnnkit.cli import main


def _last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.slow
def test_task_command_trains_and_reports(tmp_path, capsys):
    argv = "task copy --cell gru --length 8 --samples 64 --epochs 1 --units 4".split()
    status = main([*argv, "--out", str(tmp_path), "--json"])
    assert status == 0
    result = _last_json(capsys)
    assert result["task"] == "copy" and result["cell"] == "gru"
    assert 0.0 <= result["accuracy"] <= 1.0 and result["chance"] == 0.25
    assert (tmp_path / "model.keras").is_file()
    assert (tmp_path / "gradients_gru.png").is_file()
    assert json.loads((tmp_path / "result.json").read_text())["length"] == 8

    assert main(["info", "--model", str(tmp_path / "model.keras")]) == 0


@pytest.mark.slow
def test_bench_gradients_writes_plot_and_data(tmp_path, capsys):
    argv = "bench-gradients --length 12 --cells lstm --epochs 1 --samples 64 --units 4"
    status = main([*argv.split(), "--out", str(tmp_path), "--json"])
    assert status == 0
    summary = _last_json(capsys)
    assert "lstm" in summary and "simple_rnn" not in summary
    assert summary["lstm"]["record_epochs"] == [0, 1]
    assert (tmp_path / "gradients.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "gradients.json").read_text())["length"] == 12


@pytest.mark.parametrize(
    "argv",
    [
        ["task", "adding", "--cell", "transformer"],
        ["task", "adding", "--length", "3"],
        ["bench-gradients", "--cells", "cnn"],
    ],
)
def test_bad_arguments_exit_2(argv, capsys):
    assert main(argv) == 2
    assert "error:" in capsys.readouterr().err


def test_info_reports_cudnn(caplog):
    import logging

    with caplog.at_level(logging.INFO):
        assert main(["info"]) == 0
    assert "cuDNN" in caplog.text and "cuDNN-eligible" in caplog.text
