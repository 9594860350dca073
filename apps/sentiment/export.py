"""Exporting a sentiment run to .tflite with real sentences as calibration data.

`export_run(RUN)` reads `RUN/model.keras`, `RUN/vocabulary.json`,
`RUN/sentiment.json` and `RUN/representative.npy` (256 training sentences,
written at train time) and calls `rnnkit.exporters.export_model` with:

* `representative_data`: those sentences, int32 ids 0-padded to `max_length`
  (the exporter strips the padding of each row for models that run at exact
  length, and pads to a fixed length for models it unrolls);
* `validation_data`: `validation_texts` when given, else the same sentences,
  for the exporter's parity report;
* `metadata`: the app name, the labels and the whole vocabulary, so that the
  .tflite file classifies raw text on its own (`rnnkit predict sentiment`).

The exporter's own command does the same when given the two files the run
folder holds for it:

    rnnkit export RUN/model.keras -o RUN/model_int8.tflite --quantize int8 \
        --representative-data RUN/representative.npy \
        --metadata RUN/export_metadata.json
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
from rnnkit.apps.sentiment.predict import (
    VOCABULARY_FILE,
    read_info,
    tflite_metadata,
)
from rnnkit.apps.sentiment.train import REPRESENTATIVE_FILE

from rnnkit.edge.text import WordTokenizer
from rnnkit.errors import ModelFileError

logger = logging.getLogger(__name__)


def export_run(
    run_dir: str | os.PathLike,
    quantize: str = "int8",
    path: str | os.PathLike | None = None,
    validation_texts: list[str] | None = None,
):
    """Exports `run_dir/model.keras`; returns the exporter's `ExportResult`.

    Args:
        run_dir: a run folder written by `train` (or `models/sentiment/`).
        quantize: "float32", "float16", "dynamic" or "int8".
        path: output file; default `run_dir/model_<quantize>.tflite`.
        validation_texts: sentences for the parity report (default: the
            representative sentences).
    """
    from rnnkit.exporters import export_model

    run_dir = Path(run_dir)
    model_path = run_dir / "model.keras"
    if not model_path.is_file():
        raise ModelFileError(
            f"No model.keras in the run folder. Expected a folder written by "
            f"`rnnkit train sentiment`. Received: {run_dir}"
        )
    info = read_info(model_path)
    tokenizer = WordTokenizer.load(run_dir / VOCABULARY_FILE)
    representative_path = run_dir / REPRESENTATIVE_FILE
    if not representative_path.is_file():
        raise ModelFileError(
            f"{REPRESENTATIVE_FILE} is missing from the run folder; int8 export "
            f"calibrates on it. Expected the file written at train time. Received: "
            f"{run_dir}"
        )
    representative = np.load(representative_path, allow_pickle=False)
    validation = None
    if validation_texts:
        validation = tokenizer.encode_batch(validation_texts, tokenizer.max_length)
    path = Path(path) if path else run_dir / f"model_{quantize}.tflite"
    result = export_model(
        str(model_path),
        str(path),
        quantize=quantize,
        representative_data=representative,
        metadata=tflite_metadata(info, tokenizer),
        validation_data=validation,
    )
    logger.info("Exported %s (%d bytes)", result.path, result.size_bytes)
    return result


def read_manifest(path: str | os.PathLike) -> dict:
    """The exporter's manifest beside a .tflite file (or {} when absent)."""
    path = Path(path)
    manifest = path.with_name(path.stem + ".manifest.json")
    if not manifest.is_file():
        return {}
    return json.loads(manifest.read_text(encoding="utf-8"))


__all__ = ["export_run", "read_manifest", "tflite_metadata"]
