"""`rnnkit export` and `rnnkit inspect` end to end on a saved .keras file."""

import json

import numpy as np
import pytest
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
    # int8 LSTMs default to the int8 loop (the fused int8 kernel is slow on x86).
    assert "WHILE" in summary["ops"]
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


@pytest.mark.parametrize(
    "quantize, flag, fused",
    [
        ("int8", "--lstm-fused", True),
        ("float32", "--lstm-fused", True),
        ("float32", "--lstm-loop", False),
        ("float32", None, False),
    ],
)
def test_export_lstm_form_flags(tmp_path, rng, capsys, quantize, flag, fused):
    keras_path, samples = _saved_model_and_samples(tmp_path, rng, "lstm", False)
    out = tmp_path / "lstm.tflite"
    command = ["export", str(keras_path), "--quantize", quantize]
    command += [flag] if flag else []
    command += ["--representative-data", str(samples), "-o", str(out), "--json"]
    assert main(command) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert ("UNIDIRECTIONAL_SEQUENCE_LSTM" in summary["ops"]) == fused
    assert ("WHILE" in summary["ops"]) == (not fused)


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
