"""`rnnkit export` and `rnnkit inspect` end to end on a saved .keras file."""

import json

import numpy as np
from exporter_models import padded_tokens, sentiment_model

from rnnkit.cli import main


def _saved_model_and_samples(tmp_path, rng, cell, bidirectional):
    """A small sentiment model saved as .keras and token samples saved as .npy."""
    keras_path = tmp_path / "model.keras"
    sentiment_model(cell, bidirectional).save(keras_path)
    samples = tmp_path / "samples.npy"
    np.save(samples, padded_tokens(rng))
    return keras_path, samples


def test_export_then_inspect(tmp_path, rng, capsys):
    keras_path, samples = _saved_model_and_samples(tmp_path, rng, "lstm", True)
    metadata = tmp_path / "meta.json"
    metadata.write_text(json.dumps({"labels": ["negative", "positive"]}))
    out = tmp_path / "out" / "model_int8.tflite"

    status = main(
        [
            "export",
            str(keras_path),
            "--quantize",
            "int8",
            "--representative-data",
            str(samples),
            "--metadata",
            str(metadata),
            "-o",
            str(out),
            "--json",
        ]
    )
    assert status == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in summary["ops"]
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "model_int8.manifest.json",
        "model_int8.parity.json",
        "model_int8.tflite",
    ]

    assert main(["inspect", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["metadata"]["labels"] == ["negative", "positive"]
    assert report["checks"] == ["embedded_sha256", "manifest_sha256"]
    assert report["inputs"][0]["dtype"] == "int32"


def test_export_lstm_loop_flag(tmp_path, rng, capsys):
    keras_path, samples = _saved_model_and_samples(tmp_path, rng, "lstm", False)
    out = tmp_path / "loop_int8.tflite"
    command = ["export", str(keras_path), "--quantize", "int8", "--lstm-loop"]
    command += ["--representative-data", str(samples), "-o", str(out), "--json"]
    assert main(command) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "WHILE" in summary["ops"]
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" not in summary["ops"]


def test_export_refuses_pickled_or_missing_samples(tmp_path, rng):
    keras_path, _ = _saved_model_and_samples(tmp_path, rng, "gru", False)
    pickled = tmp_path / "objects.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for samples in (pickled, tmp_path / "missing.npy"):
        status = main(
            [
                "export",
                str(keras_path),
                "--quantize",
                "int8",
                "--representative-data",
                str(samples),
                "-o",
                str(tmp_path / "m.tflite"),
            ]
        )
        assert status == 2
    assert not (tmp_path / "m.tflite").exists()
