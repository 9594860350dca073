"""Callbacks for long recurrent runs: a NaN/Inf guard, a resumable history log
and a gradient-norm recorder.

They are plain Keras callbacks, so they work with `keras.Model.fit` and with
rnnkit's distributed trainer alike.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from pathlib import Path

import keras
import numpy as np

from rnnkit.files import atomic_write, save_figure

logger = logging.getLogger(__name__)


def _finite_or_none(value):
    value = float(value)
    return value if math.isfinite(value) else None


class NonFiniteGuard(keras.callbacks.Callback):
    """Stops training cleanly when the loss turns NaN or Inf, keeping the last good state.

    After every epoch whose logged values are all finite, the weights are saved to
    `checkpoint_path` (a `.weights.h5` file, written atomically) and kept in memory
    together with the optimizer's variables. When a batch or an epoch reports a
    non-finite loss, the guard puts the last good weights and optimizer state back
    into the model, stops training and logs one warning line naming the epoch
    restored. Unlike `keras.callbacks.TerminateOnNaN`, the model that `fit` returns
    is therefore usable, and the checkpoint on disk is never poisoned.

    Args:
        checkpoint_path: where the last good weights go; must end in `.weights.h5`.

    Attributes:
        tripped: True once the guard has stopped a run.
        good_epoch: number of epochs completed in the state kept (0 = the start).
    """

    def __init__(self, checkpoint_path: str | os.PathLike) -> None:
        super().__init__()
        self.checkpoint_path = Path(checkpoint_path)
        if not self.checkpoint_path.name.endswith(".weights.h5"):
            raise ValueError(
                "The guard's checkpoint must be a Keras weights file. Expected a "
                f"name ending in '.weights.h5'. Received: {checkpoint_path}"
            )
        self.tripped = False
        self.good_epoch = 0
        self._weights = None
        self._optimizer_values = None

    def on_train_begin(self, logs=None):
        # Runs after BackupAndRestore (it comes first in rnnkit's list), so a
        # resumed run keeps the state it was restored to.
        self.tripped = False
        self.good_epoch = getattr(self.model, "_initial_epoch", None) or 0
        self._snapshot()

    def on_train_batch_end(self, batch, logs=None):
        if not self.tripped and not _all_finite(logs, keys=("loss",)):
            self._trip(f"batch {batch + 1} of epoch {self.good_epoch + 1}", logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.tripped:
            return
        if not _all_finite(logs) or not self._weights_finite():
            self._trip(f"the end of epoch {epoch + 1}", logs)
            return
        self.good_epoch = epoch + 1
        self._snapshot()

    def _snapshot(self) -> None:
        self._weights = [np.array(w) for w in self.model.get_weights()]
        optimizer = getattr(self.model, "optimizer", None)
        self._optimizer_values = (
            [np.array(v) for v in optimizer.variables]
            if optimizer is not None and optimizer.built
            else None
        )
        self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.checkpoint_path.with_name(
            self.checkpoint_path.name.removesuffix(".weights.h5") + ".tmp.weights.h5"
        )
        self.model.save_weights(str(temporary))
        os.replace(temporary, self.checkpoint_path)

    def _weights_finite(self) -> bool:
        return all(np.all(np.isfinite(w)) for w in self.model.get_weights())

    def _trip(self, where: str, logs) -> None:
        self.tripped = True
        self.model.set_weights(self._weights)
        optimizer = getattr(self.model, "optimizer", None)
        if self._optimizer_values is not None and optimizer is not None:
            for variable, value in zip(
                optimizer.variables, self._optimizer_values, strict=True
            ):
                variable.assign(value)
        self.model.stop_training = True
        loss = (logs or {}).get("loss")
        logger.warning(
            "Non-finite loss (%s) at %s: training stopped; restored the weights of "
            "epoch %d (last good), saved in %s",
            loss,
            where,
            self.good_epoch,
            self.checkpoint_path,
        )


def _all_finite(logs, keys=None) -> bool:
    for key, value in (logs or {}).items():
        if keys is not None and key not in keys:
            continue
        try:
            if not math.isfinite(float(value)):
                return False
        except (TypeError, ValueError):
            continue
    return True


class HistoryLog(keras.callbacks.Callback):
    """Keeps `history.json` and `history.csv` holding every epoch, across resumes.

    Keras' own `History` only holds the epochs of the current call to `fit`; after
    a resume the earlier epochs would be lost. This log is rewritten atomically
    after each epoch: the values of epoch `e` replace whatever an earlier
    (interrupted) run had written for epochs `e` and later. Non-finite values are
    stored as JSON `null`.

    Args:
        run_dir: the folder holding `history.json` and `history.csv`.
    """

    def __init__(self, run_dir: str | os.PathLike) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.json_path = self.run_dir / "history.json"
        self.history: dict[str, list] = {}

    def on_train_begin(self, logs=None):
        initial_epoch = getattr(self.model, "_initial_epoch", None) or 0
        self.history = read_history(self.json_path) if initial_epoch else {}
        self.history = {k: v[:initial_epoch] for k, v in self.history.items()}

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            try:
                value = _finite_or_none(value)
            except (TypeError, ValueError):
                continue
            values = self.history.setdefault(key, [])
            del values[epoch:]
            values.extend([None] * (epoch - len(values)))
            values.append(value)
        for values in self.history.values():
            values.extend([None] * (epoch + 1 - len(values)))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.json_path, json.dumps(self.history, indent=2))
        atomic_write(self.run_dir / "history.csv", _history_csv(self.history))


def read_history(path: str | os.PathLike) -> dict[str, list]:
    """Reads a `history.json` written by `HistoryLog` ({} when there is none)."""
    path = Path(path)
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def _history_csv(history: dict[str, list]) -> str:
    keys = sorted(history)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["epoch", *keys])
    epochs = max((len(v) for v in history.values()), default=0)
    for epoch in range(epochs):
        row = [history[k][epoch] if epoch < len(history[k]) else None for k in keys]
        writer.writerow([epoch + 1, *("" if v is None else repr(v) for v in row)])
    return buffer.getvalue()


class GradientNormLog(keras.callbacks.Callback):
    """Records the global gradient norm over training steps; saves JSON and a PNG.

    `keras.Model.fit` does not expose its gradients to callbacks, so this callback
    measures the global L2 norm of the loss gradient on a fixed probe batch every
    `every` steps, at the current weights and before any clipping. The distributed
    trainer records the norm of the true (all-reduced) training gradient instead
    and passes it in `logs["grad_norm"]`, which this callback then uses directly.

    Writes `run_dir/gradient_norms.json` ({"step": [...], "grad_norm": [...]}) and
    `run_dir/gradient_norms.png` at the end of training.

    Args:
        run_dir: output folder.
        probe: `(x, y)` batch used when the trainer does not report norms itself.
        every: measure every this many steps.
    """

    def __init__(self, run_dir: str | os.PathLike, probe=None, every: int = 1) -> None:
        super().__init__()
        if int(every) < 1:
            raise ValueError(f"`every` must be a positive integer. Received: {every}")
        self.run_dir = Path(run_dir)
        self.probe = probe
        self.every = int(every)
        self.steps: list[int] = []
        self.norms: list[float | None] = []
        self._step = 0
        self._probe_fn = None

    def on_train_begin(self, logs=None):
        path = self.run_dir / "gradient_norms.json"
        initial_epoch = getattr(self.model, "_initial_epoch", None) or 0
        if initial_epoch and path.exists():
            saved = json.loads(path.read_text())
            self.steps, self.norms = saved["step"], saved["grad_norm"]
            self._step = self.steps[-1] if self.steps else 0
        else:
            self.steps, self.norms, self._step = [], [], 0

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self._step % self.every:
            return
        logs = logs or {}
        if "grad_norm" in logs:
            norm = logs["grad_norm"]
        elif self.probe is not None:
            norm = self._probe_norm()
        else:
            return
        self.steps.append(self._step)
        self.norms.append(_finite_or_none(norm))

    def on_train_end(self, logs=None):
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(
            self.run_dir / "gradient_norms.json",
            json.dumps({"step": self.steps, "grad_norm": self.norms}),
        )
        if self.steps:
            plot_gradient_norms(
                self.steps, self.norms, self.run_dir / "gradient_norms.png"
            )

    def _probe_norm(self) -> float:
        import tensorflow as tf

        if self._probe_fn is None:
            x, y = self.probe
            loss_fn = keras.losses.get(self.model.loss)
            model = self.model

            @tf.function
            def probe_fn():
                with tf.GradientTape() as tape:
                    loss = tf.reduce_mean(loss_fn(y, model(x, training=True)))
                grads = tape.gradient(loss, model.trainable_variables)
                return tf.linalg.global_norm([g for g in grads if g is not None])

            self._probe_fn = probe_fn
        return float(self._probe_fn())


def plot_gradient_norms(steps, norms, path: str | os.PathLike) -> Path:
    """Saves a log-scale plot of the global gradient norm over steps as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    values = [np.nan if v is None else v for v in norms]
    figure, axis = plt.subplots(figsize=(6, 3.2))
    axis.plot(steps, values, lw=1)
    if any(v is not None and v > 0 for v in norms):
        axis.set_yscale("log")
    axis.set_xlabel("training step")
    axis.set_ylabel("global gradient norm")
    axis.set_title("Gradient norm (before clipping)")
    figure.tight_layout()
    save_figure(figure, path, dpi=100)
    return path
