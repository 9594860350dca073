"""The `fit` wrapper: Keras `fit` with resume, checkpoints, logs and curves."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import keras

logger = logging.getLogger(__name__)


def _atomic_write_text(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def plot_history(
    history: dict, path: str | os.PathLike, title: str = "Training"
) -> Path:
    """Saves the loss and metric curves of a Keras history dict as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    names = sorted({key.removeprefix("val_") for key in history})
    figure, axes = plt.subplots(
        1, len(names), figsize=(4 * len(names), 3.2), squeeze=False
    )
    for axis, name in zip(axes[0], names, strict=True):
        for key, style in ((name, "-"), (f"val_{name}", "--")):
            if key in history:
                values = history[key]
                axis.plot(range(1, len(values) + 1), values, style, label=key)
        axis.set_xlabel("epoch")
        axis.set_title(name)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    temporary = path.with_name(path.stem + ".tmp.png")
    figure.savefig(temporary, dpi=100)
    plt.close(figure)
    os.replace(temporary, path)
    return path


def fit(
    model: keras.Model,
    train_data,
    validation_data=None,
    *,
    epochs: int,
    run_dir: str | os.PathLike,
    callbacks: list | tuple = (),
    resume: bool = True,
    monitor: str | None = None,
    verbose="auto",
    **fit_kwargs,
) -> dict:
    """Trains a compiled model and keeps everything a long run needs in `run_dir`.

    Writes `run_dir/backup/` (resume state, removed after a finished run),
    `run_dir/best.keras` (best epoch by `monitor`), `run_dir/logs/`
    (TensorBoard), `run_dir/history.json` and `run_dir/training_curves.png`.

    Args:
        model: a compiled `keras.Model`.
        train_data, validation_data: anything `keras.Model.fit` accepts.
        epochs: total epochs; a resumed run continues to this number.
        run_dir: output folder, created if needed.
        callbacks: extra Keras callbacks.
        resume: restore from `run_dir/backup` if an earlier run was interrupted.
        monitor: metric selecting the best checkpoint; "val_loss" when there is
            validation data, else "loss".
        verbose: passed to Keras (progress bar by default).
        **fit_kwargs: passed to `keras.Model.fit` (e.g. `steps_per_epoch`).

    Returns:
        The history dict (metric name -> list of per-epoch values).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    monitor = monitor or ("val_loss" if validation_data is not None else "loss")
    all_callbacks = [keras.callbacks.TerminateOnNaN()]
    if resume:
        all_callbacks.append(keras.callbacks.BackupAndRestore(str(run_dir / "backup")))
    all_callbacks += [
        keras.callbacks.ModelCheckpoint(
            str(run_dir / "best.keras"), monitor=monitor, save_best_only=True
        ),
        keras.callbacks.TensorBoard(str(run_dir / "logs"), write_graph=False),
        *callbacks,
    ]
    keras_history = model.fit(
        train_data,
        validation_data=validation_data,
        epochs=epochs,
        callbacks=all_callbacks,
        verbose=verbose,
        **fit_kwargs,
    )
    history = {k: [float(v) for v in vs] for k, vs in keras_history.history.items()}
    _atomic_write_text(run_dir / "history.json", json.dumps(history, indent=2))
    if history:
        plot_history(history, run_dir / "training_curves.png", title=model.name)
    logger.info("Training finished; run folder: %s", run_dir)
    return history
