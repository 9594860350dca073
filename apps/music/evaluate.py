"""Scoring a music model: NLL per time step and frame-level accuracy.

Both a .keras model (teacher-forced over whole pieces) and a streaming .tflite
model (one step at a time through `rnnkit.edge`, reset between pieces) are
scored with the same numpy metric, `rnnkit.edge.music.nll_per_step`. This
module imports neither TensorFlow nor Keras at module level: the .tflite path
stays on the edge runtime.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from rnnkit.edge import music as edge_music
from rnnkit.errors import UsageError


class KerasScorer:
    """Next-frame logits from a Keras model, whole pieces at a time."""

    kind = "keras"

    def __init__(self, model):
        self.model = model

    def logits(self, rolls: list[np.ndarray]) -> list[np.ndarray]:
        from rnnkit.apps.music.model import predict_logits

        return predict_logits(self.model, rolls)


class StreamingScorer:
    """Next-frame logits from a streaming (one-step) .tflite model, step by step."""

    kind = "tflite"

    def __init__(self, edge_model):
        self.edge_model = edge_model
        self.step_seconds: list[float] = []

    def logits(self, rolls: list[np.ndarray]) -> list[np.ndarray]:
        stream = self.edge_model.stream()
        outputs = []
        for roll in rolls:
            stream.reset()
            step = edge_music.stream_step(stream)
            piece = np.zeros(roll.shape, np.float32)
            started = time.perf_counter()
            for t, frame in enumerate(edge_music.input_frames(roll)):
                piece[t] = step(frame)
            self.step_seconds.append((time.perf_counter() - started) / len(roll))
            outputs.append(piece)
        return outputs


def evaluate_rolls(scorer, rolls: list[np.ndarray]) -> dict:
    """NLL per step and frame accuracy of `scorer` on `rolls`."""
    if not rolls:
        raise UsageError("No pieces to evaluate. Received: an empty split.")
    logits = scorer.logits(rolls)
    return {
        "nll_per_step": round(edge_music.nll_per_step(logits, rolls), 4),
        "frame_accuracy": round(edge_music.frame_accuracy(logits, rolls), 4),
        "pieces": len(rolls),
        "steps": int(sum(len(r) for r in rolls)),
    }


def load_scorer(model_path: str | os.PathLike):
    """A scorer for a .keras or a streaming .tflite music model."""
    path = Path(model_path)
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        from rnnkit.apps.music.generate import load_edge_model

        return StreamingScorer(load_edge_model(path))
    if suffix == ".keras":
        from rnnkit.apps.music.model import load_keras_model

        return KerasScorer(load_keras_model(path))
    raise UsageError(
        f"Unsupported model file. Expected a .keras or .tflite file. Received: {path}"
    )


def load_split(file: str | os.PathLike, split: str, step: float = 1.0):
    """The pieces of `split` in a dataset file (.pickle, .mat) or folder of MIDI."""
    from rnnkit.apps.music import data as music_data

    path = Path(file)
    if path.is_dir():
        splits = music_data.load_midi_folder(path, step=step)
    elif path.suffix.lower() == ".pickle" or path.suffix.lower() == ".pkl":
        splits = music_data.load_pitch_pickle(path)
    elif path.suffix.lower() == ".mat":
        splits = music_data.load_mat(path)
    elif path.suffix.lower() in (".mid", ".midi"):
        from rnnkit.apps.music.midi import read_midi

        return [read_midi(path, step=step)]
    elif not path.exists():
        from rnnkit.errors import DataNotFoundError

        raise DataNotFoundError(f"Dataset file not found. Received: {path}")
    else:
        raise UsageError(
            "Unsupported dataset file. Expected a .pickle, .mat, .mid file or a "
            f"folder of MIDI files. Received: {path}"
        )
    if split not in splits:
        raise UsageError(f"Unknown split {split!r}. Expected one of {sorted(splits)}.")
    return splits[split]
