"""Listening and looking: a small additive synthesizer (WAV) and piano-roll PNGs.

The synthesizer needs no sound font: each note is a sum of a few harmonics of
its fundamental with an attack-release envelope, mixed and normalized to
16-bit PCM with the standard library's `wave` module. It sounds like a soft
organ, which suits chorales and is enough to hear what a model wrote.
"""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np

from rnnkit.edge import music as edge_music
from rnnkit.files import save_figure

SAMPLE_RATE = 22050
# Relative amplitudes of harmonics 1..4: a mellow, organ-like tone.
HARMONICS = (1.0, 0.5, 0.25, 0.12)


def synthesize(
    roll: np.ndarray,
    step_seconds: float = 0.6,
    sample_rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """Renders a piano roll to mono float32 audio in [-1, 1].

    Args:
        roll: (time, 88) piano roll; held keys become one sustained note.
        step_seconds: duration of one roll step (0.6 s = a quarter at 100 bpm).
        sample_rate: samples per second.

    Returns:
        float32 array of shape (samples,), with half a second of release tail.
    """
    roll = edge_music.check_roll(roll)
    step_samples = int(round(step_seconds * sample_rate))
    tail = sample_rate // 2
    audio = np.zeros(len(roll) * step_samples + tail, dtype=np.float64)
    attack = int(0.01 * sample_rate)
    release = int(0.08 * sample_rate)
    for pitch, start, end in edge_music.roll_to_notes(roll):
        frequency = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
        length = (end - start) * step_samples + release
        t = np.arange(length) / sample_rate
        tone = np.zeros(length)
        for harmonic, amplitude in enumerate(HARMONICS, start=1):
            # Harmonics above the Nyquist frequency would alias into noise.
            if frequency * harmonic < sample_rate / 2:
                tone += amplitude * np.sin(2 * np.pi * frequency * harmonic * t)
        envelope = np.ones(length)
        envelope[:attack] = np.linspace(0.0, 1.0, attack)
        envelope[-release:] = np.linspace(1.0, 0.0, release)
        begin = start * step_samples
        audio[begin : begin + length] += tone * envelope
    peak = np.max(np.abs(audio))
    if peak > 0:
        audio *= 0.8 / peak
    return audio.astype(np.float32)


def write_wav(
    roll: np.ndarray,
    path: str | os.PathLike,
    step_seconds: float = 0.6,
    sample_rate: int = SAMPLE_RATE,
) -> Path:
    """Renders `roll` with `synthesize` and writes a 16-bit mono WAV, atomically."""
    audio = synthesize(roll, step_seconds, sample_rate)
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with wave.open(str(temporary), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(sample_rate)
        handle.writeframes(pcm.tobytes())
    os.replace(temporary, path)
    return path


def plot_piano_roll(
    roll: np.ndarray,
    path: str | os.PathLike | None = None,
    primer_steps: int = 0,
    title: str = "Piano roll",
):
    """Draws a piano roll (time across, pitch up); the primer part is shaded.

    Args:
        roll: (time, 88) roll, primer first if there is one.
        path: PNG to write atomically; None returns the figure without saving.
        primer_steps: how many leading steps are the primer.
        title: figure title.

    Returns:
        The path written, or the matplotlib figure when `path` is None.
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    roll = edge_music.check_roll(roll)
    keys = np.flatnonzero(roll.any(axis=0))
    low = max(0, (keys.min() if len(keys) else 39) - 3)
    high = min(edge_music.NUM_KEYS - 1, (keys.max() if len(keys) else 48) + 3)
    figure, axis = plt.subplots(figsize=(max(6.0, min(16.0, len(roll) / 8)), 3.5))
    axis.imshow(
        roll[:, low : high + 1].T,
        aspect="auto",
        origin="lower",
        cmap="Greys",
        interpolation="nearest",
        extent=(
            -0.5,
            len(roll) - 0.5,
            low + edge_music.LOWEST_PITCH - 0.5,
            high + edge_music.LOWEST_PITCH + 0.5,
        ),
    )
    if primer_steps:
        axis.axvspan(-0.5, primer_steps - 0.5, color="tab:blue", alpha=0.12)
        axis.axvline(primer_steps - 0.5, color="tab:blue", linewidth=1)
        axis.text(0, high + edge_music.LOWEST_PITCH, "primer", color="tab:blue")
    axis.set_xlabel("time step")
    axis.set_ylabel("MIDI pitch")
    axis.set_title(title)
    figure.tight_layout()
    if path is None:
        return figure
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(figure, path, dpi=100)
    return path
