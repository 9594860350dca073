"""Pictures of a clip: waveform, log-mel features and per-frame posteriors."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rnnkit.edge.audio import FeatureConfig
from rnnkit.files import save_figure


def plot_clip(
    path: str | os.PathLike,
    waveform: np.ndarray,
    features: np.ndarray,
    posteriors: np.ndarray,
    labels: Sequence[str],
    config: FeatureConfig,
    title: str = "",
    top: int = 4,
) -> Path:
    """Saves a three-panel PNG and returns its path (written atomically).

    Args:
        path: the PNG to write.
        waveform: (samples,) the clip.
        features: (frames, bins) its log-mel features.
        posteriors: (frames, classes) the model's probabilities after each frame.
        labels: class names.
        config: the feature settings (for the time axes).
        title: the figure title (e.g. the file name and prediction).
        top: how many classes to draw (those with the highest final scores).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    seconds = np.arange(waveform.size) / config.sample_rate
    frame_times = (
        np.arange(len(features)) * config.frame_step + config.frame_length
    ) / config.sample_rate
    figure, axes = plt.subplots(3, 1, figsize=(7, 6.5), sharex=True)
    axes[0].plot(seconds, waveform, linewidth=0.5)
    axes[0].set_ylabel("amplitude")
    axes[0].set_ylim(-1.05, 1.05)
    axes[1].imshow(
        features.T,
        origin="lower",
        aspect="auto",
        extent=(0, seconds[-1] if seconds.size else 1, 0, features.shape[1]),
        cmap="magma",
    )
    axes[1].set_ylabel("mel band")
    order = np.argsort(posteriors[-1])[::-1][:top]
    for index in order:
        # matplotlib hides legend labels that start with "_", as _silence_ does.
        name = labels[index].strip("_") or labels[index]
        axes[2].plot(frame_times, posteriors[:, index], label=name)
    axes[2].set_ylim(0, 1.02)
    axes[2].set_ylabel("probability")
    axes[2].set_xlabel("time (s)")
    axes[2].legend(loc="upper left", fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    save_figure(figure, path, dpi=90)
    return path


def plot_stream(
    path: str | os.PathLike,
    samples: np.ndarray,
    times: np.ndarray,
    posteriors: np.ndarray,
    labels: Sequence[str],
    detections,
    sample_rate: int,
    truth=None,
) -> Path:
    """Saves a PNG of a recording, its window posteriors and the detections."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    figure, axes = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    axes[0].plot(np.arange(samples.size) / sample_rate, samples, linewidth=0.3)
    for label, start, end in truth or []:
        axes[0].axvspan(start, end, color="tab:green", alpha=0.15)
        axes[0].text(start, 0.9, label, fontsize=7)
    axes[0].set_ylabel("amplitude")
    for index, label in enumerate(labels):
        if label.startswith("_"):
            continue
        axes[1].plot(times, posteriors[:, index], linewidth=0.8, label=label)
    for detection in detections:
        axes[1].axvline(detection.time, color="k", linestyle=":", linewidth=0.8)
        axes[1].text(detection.time, 1.0, detection.label, fontsize=7, rotation=90)
    axes[1].set_ylim(0, 1.1)
    axes[1].set_ylabel("window posterior")
    axes[1].set_xlabel("time (s)")
    axes[1].legend(loc="upper right", fontsize=6, ncol=5)
    figure.tight_layout()
    save_figure(figure, path, dpi=90)
    return path
