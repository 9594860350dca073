"""Generating music: primer in, MIDI + piano-roll PNG + WAV out.

Two back ends share one sampling loop (`rnnkit.edge.music.generate`):

* a streaming .tflite model run by `rnnkit.edge.EdgeModel`, one step at a time
  with its recurrent state carried; this path imports no TensorFlow;
* a .keras model, rerun over the frames so far at each step (`KerasStep`).

Example:
    >>> from rnnkit.apps.music.generate import generate_files
    >>> generate_files("models/music/model_int8.tflite", "out/song.mid",
    ...                steps=64, seed=1)                      # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnkit.edge import music as edge_music
from rnnkit.errors import ModelFileError, UsageError

logger = logging.getLogger(__name__)


def load_edge_model(path: str | os.PathLike):
    """Loads a streaming music .tflite with the edge runtime, checking its kind."""
    from rnnkit.edge import EdgeError, EdgeModel

    path = Path(path)
    if not path.is_file():
        raise UsageError(
            f"Model file not found. Expected a .tflite file. Received: {path}"
        )
    try:
        model = EdgeModel(path)
    except EdgeError as error:
        raise ModelFileError(f"Could not load {path}: {error}") from None
    if not model.streaming:
        raise UsageError(
            f"{path} is a full-sequence model. Expected the streaming (one-step) "
            "export, e.g. models/music/model_int8.tflite."
        )
    return model


@dataclass
class Generator:
    """A loaded music model with a uniform one-step interface.

    Attributes:
        kind: "tflite" or "keras".
        info: the model's `MusicInfo` fields as a dict (step, context...).
        new_step: returns a fresh one-step callable (zero state).
    """

    kind: str
    info: dict
    new_step: object
    step_seconds: list = field(default_factory=list)


def load_generator(model_path: str | os.PathLike) -> Generator:
    """Opens a .tflite (edge runtime only) or .keras music model for generation."""
    path = Path(model_path)
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        model = load_edge_model(path)
        info = {k: v for k, v in model.metadata.items() if k != "rnnkit"}

        def new_step():
            return edge_music.stream_step(model.stream())

        return Generator("tflite", info, new_step)
    if suffix == ".keras":
        from rnnkit.apps.music.model import KerasStep, load_info, load_keras_model

        keras_model = load_keras_model(path)
        info = load_info(path).to_metadata()
        return Generator("keras", info, lambda: KerasStep(keras_model))
    raise UsageError(
        f"Unsupported model file. Expected a .keras or .tflite file. Received: {path}"
    )


def check_primer(primer: np.ndarray, context_steps: int | None) -> np.ndarray:
    """Validates a primer roll against the model's context."""
    try:
        primer = edge_music.check_roll(primer, "primer")
    except edge_music.MusicInputError as error:
        raise UsageError(str(error)) from None
    if context_steps and len(primer) > context_steps:
        raise UsageError(
            f"The primer is longer than the model's context. Expected at most "
            f"{context_steps} steps (the longest sequence it was trained on). "
            f"Received: {len(primer)} steps; use fewer bars (--primer-steps)."
        )
    return primer


def generate_roll(
    generator: Generator,
    steps: int,
    primer: np.ndarray | None = None,
    temperature: float = 1.0,
    max_notes: int | None = 4,
    seed: int = 0,
) -> np.ndarray:
    """Samples `steps` new frames after `primer`; returns only the new frames."""
    if primer is not None:
        primer = check_primer(primer, generator.info.get("context_steps"))
    step = generator.new_step()
    calls = [0]

    def timed_step(frame):
        calls[0] += 1
        return step(frame)

    started = time.perf_counter()
    try:
        roll = edge_music.generate(
            timed_step,
            steps,
            primer=primer,
            temperature=temperature,
            max_notes=max_notes,
            seed=seed,
        )
    except edge_music.MusicInputError as error:
        raise UsageError(str(error)) from None
    if calls[0]:
        generator.step_seconds.append((time.perf_counter() - started) / calls[0])
    return roll


def generate_files(
    model_path: str | os.PathLike,
    out_path: str | os.PathLike,
    steps: int = 64,
    primer_path: str | os.PathLike | None = None,
    primer: np.ndarray | None = None,
    primer_steps: int | None = None,
    temperature: float = 1.0,
    max_notes: int | None = 4,
    seed: int = 0,
    wav: bool = True,
    png: bool = True,
) -> dict:
    """Generates a continuation and writes OUT.mid, OUT.png and OUT.wav.

    Args:
        model_path: .tflite (streaming) or .keras model.
        out_path: the MIDI file to write; the PNG and WAV take its stem.
        steps: new steps to generate.
        primer_path: optional MIDI primer, quantized to the model's step.
        primer: optional primer roll (instead of `primer_path`).
        primer_steps: keep only the first N steps of the primer.
        temperature, max_notes, seed: see `rnnkit.edge.music.sample_frame`.
        wav, png: also write the rendering and the picture.

    Returns:
        A summary dict: paths written, steps, notes, seconds per step.
    """
    from rnnkit.apps.music.midi import read_midi, write_midi

    out_path = Path(out_path)
    if out_path.suffix.lower() not in (".mid", ".midi"):
        raise UsageError(f"The output must be a .mid file. Received: {out_path}")
    generator = load_generator(model_path)
    step_beats = float(generator.info.get("step_beats", 1.0))
    if primer_path is not None:
        primer = read_midi(primer_path, step=step_beats)
    if primer is not None and primer_steps is not None:
        primer = np.asarray(primer)[:primer_steps]
    new = generate_roll(generator, steps, primer, temperature, max_notes, seed)
    full = (
        new if primer is None else np.concatenate([np.asarray(primer, np.uint8), new])
    )

    written = {"midi": str(write_midi(full, out_path, step=step_beats))}
    if png:
        from rnnkit.apps.music.render import plot_piano_roll

        written["png"] = str(
            plot_piano_roll(
                full,
                out_path.with_suffix(".png"),
                primer_steps=0 if primer is None else len(primer),
                title=f"{Path(model_path).name}: T={temperature}, seed={seed}",
            )
        )
    if wav:
        from rnnkit.apps.music.render import write_wav

        written["wav"] = str(write_wav(full, out_path.with_suffix(".wav")))
    summary = {
        **written,
        "model": str(model_path),
        "backend": generator.kind,
        "primer_steps": 0 if primer is None else len(primer),
        "generated_steps": int(steps),
        "notes": len(edge_music.roll_to_notes(new)),
        "seconds_per_step": generator.step_seconds[-1]
        if generator.step_seconds
        else None,
    }
    logger.info(
        "Wrote %s (%d primer + %d generated steps, %d new notes)",
        ", ".join(written.values()),
        summary["primer_steps"],
        steps,
        summary["notes"],
    )
    return summary
