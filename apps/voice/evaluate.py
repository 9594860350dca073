"""Scoring a voice model: clip accuracy, rejection, false accepts, streams.

Nothing here imports TensorFlow: a `.tflite` model is evaluated with the edge
runtime only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from rnnkit.edge.audio import NON_COMMANDS, detect, match_detections


def accuracy_report(
    probs: np.ndarray, targets: np.ndarray, labels: Sequence[str], threshold: float
) -> dict:
    """Accuracy, per-class accuracy and the rejection figures of predictions.

    With a rejection threshold a clip is "accepted" as a command word only if
    the top class is a word and its probability reaches `threshold`; otherwise
    it is rejected (treated as unknown/silence).

    Returns:
        A dict with accuracy, per_class, confusion (rows: truth), and
        false_accept_rate_unknown (share of `_unknown_` clips accepted as a
        word), command_recall (share of word clips accepted as the right word)
        and threshold.
    """
    probs = np.asarray(probs)
    targets = np.asarray(targets)
    predicted = probs.argmax(axis=1)
    labels = list(labels)
    confusion = np.zeros((len(labels), len(labels)), np.int64)
    np.add.at(confusion, (targets, predicted), 1)
    per_class = {
        label: float(confusion[i, i] / confusion[i].sum())
        for i, label in enumerate(labels)
        if confusion[i].sum()
    }
    is_word = np.array([label not in NON_COMMANDS for label in labels])
    accepted = is_word[predicted] & (probs.max(axis=1) >= threshold)
    report = {
        "clips": int(len(targets)),
        "accuracy": float(np.mean(predicted == targets)) if len(targets) else 0.0,
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "threshold": float(threshold),
    }
    word_clips = is_word[targets]
    if word_clips.any():
        report["command_recall"] = float(
            np.mean((accepted & (predicted == targets))[word_clips])
        )
    if "_unknown_" in labels:
        unknown = targets == labels.index("_unknown_")
        if unknown.any():
            report["false_accept_rate_unknown"] = float(np.mean(accepted[unknown]))
    return report


def evaluate_clips(classifier, clips, threshold: float | None = None) -> dict:
    """Scores a `VoiceClassifier` on a list of `Clip`s."""
    from rnnkit.apps.voice.data import encode_labels, load_waveforms

    waveforms = load_waveforms(clips)
    targets = encode_labels(clips, classifier.labels)
    probs = classifier.predict_waveforms(waveforms)
    return accuracy_report(
        probs,
        targets,
        classifier.labels,
        classifier.threshold if threshold is None else threshold,
    )


def evaluate_stream(
    classifier,
    samples: np.ndarray,
    truth: Sequence[tuple[str, float, float]],
    threshold: float | None = None,
    smoothing: int = 2,
) -> dict:
    """Detection rate and false alarms of streaming detection on one recording."""
    times, posteriors = classifier.stream_posteriors(samples)
    detections = detect(
        posteriors,
        times,
        classifier.labels,
        threshold=classifier.threshold if threshold is None else threshold,
        smoothing=smoothing,
    )
    scores = match_detections(detections, truth)
    hours = len(samples) / classifier.features.sample_rate / 3600.0
    scores["hours"] = hours
    scores["false_alarms_per_hour"] = scores["false_alarms"] / hours if hours else 0.0
    scores["detections"] = [d.to_dict() for d in detections]
    return scores


def held_out_clips(
    data: str | os.PathLike | None, labels: Sequence[str], split: str = "test"
):
    """The clips of a split (default: held-out test speakers) for these labels.

    `data` may be the data folder (holding `speech/...`) or a `<label>/*.wav`
    folder; in the latter case every clip is used.
    """
    from pathlib import Path

    from rnnkit.apps.voice import data as voice_data

    if data is not None and not (Path(data) / voice_data.CLIPS_DIR).exists():
        clips = voice_data.list_folder(data)
        return [c for c in clips if c.label in set(labels)] or clips
    return voice_data.list_clips(split, labels, data)
