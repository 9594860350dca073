"""Exporting the music model to its streaming int8 .tflite form."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def representative_windows(
    rolls: list[np.ndarray], count: int = 24, window: int = 32, seed: int = 0
) -> np.ndarray:
    """Real input sequences for int8 calibration: `count` windows of `window` steps.

    Windows start at the beginning of pieces (the zero start frame included) so
    the calibration sees the states of a fresh stream as well as later ones.
    """
    from rnnkit.edge import music as edge_music

    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(rolls), size=min(count, len(rolls)), replace=False)
    batch = np.zeros((len(chosen), window, edge_music.NUM_KEYS), np.float32)
    for row, index in enumerate(chosen):
        frames = edge_music.input_frames(rolls[index])[:window]
        batch[row, : len(frames)] = frames
    return batch


def export_streaming(
    model_path: str | os.PathLike,
    out_path: str | os.PathLike,
    calibration_rolls: list[np.ndarray],
    quantize: str = "int8",
    micro: bool = True,
    keep_c_arrays: bool = False,
):
    """Exports a .keras music model as a streaming .tflite (one step, state in/out).

    Args:
        model_path: the trained .keras model (its `.music.json` sidecar is
            embedded as the file's metadata).
        out_path: the .tflite to write.
        calibration_rolls: real pieces for int8 calibration (training split).
        quantize: "int8" (default), "dynamic", "float16" or "float32".
        micro: also check the file in TFLite Micro.
        keep_c_arrays: keep the C source/header pair that the Micro check
            writes beside the file (about six times the model's size).

    Returns:
        The exporter's `ExportResult`.
    """
    from rnnkit.apps.music.model import load_info, load_keras_model
    from rnnkit.exporters import export_model

    model = load_keras_model(model_path)
    samples = representative_windows(calibration_rolls)
    result = export_model(
        model,
        Path(out_path),
        quantize=quantize,
        representative_data=samples,
        streaming=True,
        micro=micro,
        metadata=load_info(model_path).to_metadata(),
    )
    if micro and not keep_c_arrays and result.micro:
        for key in ("c_source", "c_header"):
            if result.micro.get(key):
                Path(result.micro[key]).unlink(missing_ok=True)
    return result
