"""Metrics and pictures for a classifier: accuracy, macro-F1, confusion matrix.

Pure numpy (plus matplotlib for the PNG), so that evaluating a .tflite file
never imports TensorFlow.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rnnkit.errors import UsageError
from rnnkit.files import save_figure

# Spellings of the SST labels that a user's file may use instead of the names.
_LABEL_ALIASES = {
    "neg": "negative",
    "pos": "positive",
    "-": "negative",
    "+": "positive",
    "-1": "negative",
}


def map_labels(values: Sequence[str], label_names: Sequence[str]) -> np.ndarray:
    """Turns label strings from a file into the model's class indices.

    A value matches a label name exactly, then case-insensitively, then as an
    integer index ("0", "1", ...), then through a few SST aliases ("pos", "neg").

    Raises:
        UsageError: some values match no label of the model; the message lists
            them and the model's labels.
    """
    lowered = {name.lower(): index for index, name in enumerate(label_names)}
    indices = []
    unseen: dict[str, int] = {}
    for value in values:
        key = str(value).strip()
        if key in label_names:
            indices.append(list(label_names).index(key))
            continue
        key = key.lower()
        key = _LABEL_ALIASES.get(key, key)
        if key in lowered:
            indices.append(lowered[key])
        elif key.isdigit() and int(key) < len(label_names):
            indices.append(int(key))
        else:
            unseen[value] = unseen.get(value, 0) + 1
            indices.append(-1)
    if unseen:
        shown = ", ".join(
            f"{name!r} ({count}x)" for name, count in list(unseen.items())[:8]
        )
        raise UsageError(
            f"The file has labels the model does not know. Expected one of "
            f"{list(label_names)} (or their indices 0..{len(label_names) - 1}). "
            f"Received: {shown}"
        )
    return np.asarray(indices, dtype=np.int64)


def confusion_matrix(
    y_true: np.ndarray, y_pred: np.ndarray, num_classes: int
) -> np.ndarray:
    """Counts (true class, predicted class) pairs: rows are the truth."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def classification_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, label_names: Sequence[str]
) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1, loss and confusion.

    Args:
        y_true: class indices, shape (n,).
        probabilities: predicted probabilities, shape (n, classes).
        label_names: the class names, in index order.
    """
    y_true = np.asarray(y_true)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    y_pred = probabilities.argmax(axis=-1)
    matrix = confusion_matrix(y_true, y_pred, len(label_names))
    per_class = {}
    f1_scores = []
    for index, name in enumerate(label_names):
        true_positive = matrix[index, index]
        predicted = matrix[:, index].sum()
        actual = matrix[index, :].sum()
        precision = true_positive / predicted if predicted else 0.0
        recall = true_positive / actual if actual else 0.0
        f1 = (
            2 * precision * recall / (precision + recall) if precision + recall else 0.0
        )
        f1_scores.append(f1)
        per_class[name] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(actual),
        }
    picked = probabilities[np.arange(len(y_true)), y_true]
    return {
        "examples": int(len(y_true)),
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else 0.0,
        "macro_f1": float(np.mean(f1_scores)),
        "loss": float(-np.log(np.clip(picked, 1e-7, 1.0)).mean()),
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "labels": list(label_names),
    }


def plot_confusion_matrix(
    matrix: Sequence[Sequence[int]],
    label_names: Sequence[str],
    path: str | os.PathLike,
    title: str = "Confusion matrix",
) -> Path:
    """Saves the confusion matrix as a PNG (rows: truth, columns: prediction)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix)
    size = max(3.2, 0.9 * len(label_names) + 1.6)
    figure, axis = plt.subplots(figsize=(size, size * 0.9))
    axis.imshow(matrix, cmap="Blues")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, column), count in np.ndenumerate(matrix):
        axis.text(
            column,
            row,
            str(count),
            ha="center",
            va="center",
            color="white" if count > threshold else "black",
        )
    axis.set_xticks(range(len(label_names)), label_names, rotation=30)
    axis.set_yticks(range(len(label_names)), label_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    figure.tight_layout()
    path = Path(path)
    save_figure(figure, path, dpi=100)
    return path
