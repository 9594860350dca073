"""The `fit` wrapper: Keras `fit` with resume, checkpoints, guards, logs and curves."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import keras

from rnnkit.errors import UsageError
from rnnkit.files import save_figure
from rnnkit.training.callbacks import (
    GradientNormLog,
    HistoryLog,
    NonFiniteGuard,
    read_history,
)
from rnnkit.training.tbptt import (
    ChunkedSequences,
    ResetStatesAtSequenceStart,
    check_stateful_model,
)

logger = logging.getLogger(__name__)

TRAINERS = ("auto", "keras", "custom")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "nadam", "adagrad")


def make_optimizer(
    name: str = "adam",
    learning_rate: float = 1e-3,
    *,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    **kwargs,
) -> keras.optimizers.Optimizer:
    """Returns a Keras optimizer with gradient clipping, checked up front.

    Clipping is what keeps an exploding recurrent gradient from wrecking a run:
    `global_clipnorm` rescales all gradients together when their joint L2 norm
    exceeds the threshold (keeps the update's direction; usually the best
    choice for RNNs), `clipnorm` rescales each weight's gradient separately, and
    `clipvalue` clamps every element to [-v, v].

    Args:
        name: one of "adam", "adamw", "sgd", "rmsprop", "nadam", "adagrad".
        learning_rate: the step size.
        clipnorm, clipvalue, global_clipnorm: at most one, a positive number.
        **kwargs: passed to the Keras optimizer (e.g. `momentum` for SGD).

    Raises:
        UsageError: for an unknown name, more than one clipping option or a
            threshold that is not positive.
    """
    if not isinstance(name, str) or name.lower() not in OPTIMIZERS:
        raise UsageError(
            f"Unknown optimizer. Expected one of {list(OPTIMIZERS)}. Received: "
            f"name={name!r}"
        )
    clipping = {
        "clipnorm": clipnorm,
        "clipvalue": clipvalue,
        "global_clipnorm": global_clipnorm,
    }
    given = {k: v for k, v in clipping.items() if v is not None}
    if len(given) > 1:
        raise UsageError(
            "Gradient clipping takes one of clipnorm, clipvalue, global_clipnorm. "
            f"Received: {given}"
        )
    for key, value in given.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise UsageError(
                f"`{key}` must be a positive number. Received: {key}={value!r}"
            )
    config = {"class_name": name.lower(), "config": {"learning_rate": learning_rate}}
    config["config"].update({k: float(v) for k, v in given.items()}, **kwargs)
    return keras.optimizers.get(config)


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
                values = [float("nan") if v is None else v for v in history[key]]
                axis.plot(range(1, len(values) + 1), values, style, label=key)
        axis.set_xlabel("epoch")
        axis.set_title(name)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    save_figure(figure, path, dpi=100)
    return path


def fit(
    model,
    train_data,
    validation_data=None,
    *,
    epochs: int,
    run_dir: str | os.PathLike,
    callbacks: list | tuple = (),
    resume: bool = True,
    monitor: str | None = None,
    verbose="auto",
    strategy=None,
    nan_guard: bool = True,
    tensorboard: bool | None = None,
    gradient_norms=None,
    trainer: str = "auto",
    **fit_kwargs,
) -> dict:
    """Trains a compiled model and keeps everything a long run needs in `run_dir`.

    Writes `run_dir/backup/` (resume state, removed after a finished run),
    `run_dir/best.keras` (best epoch by `monitor`), `run_dir/last_good.weights.h5`
    (the NaN guard's checkpoint), `run_dir/logs/` (TensorBoard),
    `run_dir/history.json` and `history.csv` (every epoch, across resumes) and
    `run_dir/training_curves.png`.

    Args:
        model: a compiled `keras.Model`; with a distribution strategy, also a
            zero-argument function returning one (called in the strategy's scope).
        train_data, validation_data: anything `keras.Model.fit` accepts; a
            `ChunkedSequences` trains with truncated BPTT (states reset between
            sequence batches, no shuffling). Under a multi-worker strategy: a
            batched `tf.data.Dataset` of (x, y), or an (x, y) tuple of arrays with
            `batch_size=` given.
        epochs: total epochs; a resumed run continues to this number.
        run_dir: output folder, created if needed.
        callbacks: extra Keras callbacks (run after rnnkit's own).
        resume: restore from `run_dir/backup` if an earlier run was interrupted.
        monitor: metric selecting the best checkpoint; "val_loss" when there is
            validation data, else "loss".
        verbose: passed to Keras (progress bar by default).
        strategy: None, a `tf.distribute.Strategy`, or a name accepted by
            `get_strategy` ("default", "mirrored", "multi_worker"). Multi-worker
            runs use rnnkit's `DistributedTrainer`, since Keras' fit fails there.
            Under a strategy the model is rebuilt in its scope if needed and the
            trained weights are copied back into `model`.
        nan_guard: stop cleanly on a NaN/Inf loss, restoring the last good epoch.
        tensorboard: write TensorBoard logs; None (default) writes them when the
            `tensorboard` package is installed and logs a line when it is not.
        gradient_norms: record the global gradient norm over steps into
            `gradient_norms.json`/`.png`: an (x, y) probe batch for Keras fit, or
            True under the distributed trainer (which measures the real gradient).
        trainer: "auto" (Keras fit, or rnnkit's `DistributedTrainer` under a
            multi-worker strategy), "keras" or "custom" (`DistributedTrainer`
            under any strategy, the default one included).
        **fit_kwargs: passed to `keras.Model.fit` (e.g. `steps_per_epoch`,
            `batch_size`).

    Returns:
        The history dict (metric name -> per-epoch values, all epochs of the run
        including those before a resume).
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise UsageError(f"`epochs` must be a positive integer. Received: {epochs!r}")
    if hasattr(validation_data, "shape") and hasattr(validation_data, "dtype"):
        # fit(model, x, y) puts the targets where the validation data goes.
        raise UsageError(
            "validation_data must be an (x, y) tuple or a dataset; targets of array "
            "inputs go in y=. Expected fit(model, x, y=y, ...). Received: "
            f"validation_data of shape {tuple(validation_data.shape)}"
        )
    if trainer not in TRAINERS:
        raise UsageError(
            f"Unknown trainer. Expected one of {list(TRAINERS)}. Received: "
            f"trainer={trainer!r}"
        )
    run_dir = Path(run_dir)
    strategy, distributed = _resolve_strategy(strategy)
    if distributed and trainer == "keras":
        raise UsageError(
            "Keras fit fails under MultiWorkerMirroredStrategy "
            "(keras-team/keras#20585). Expected trainer='auto' or 'custom'. "
            "Received: trainer='keras'"
        )
    if trainer == "custom" and not distributed:
        import tensorflow as tf

        strategy, distributed = strategy or tf.distribute.get_strategy(), True
    trained = model
    if strategy is not None:
        from rnnkit.training.distribute import rebuild_in_scope

        trained = rebuild_in_scope(model, strategy)
    elif not isinstance(model, keras.Model):
        raise UsageError(
            "Expected a compiled keras.Model (a builder function is accepted only "
            f"with a strategy). Received: {type(model).__name__}"
        )
    if getattr(trained, "optimizer", None) is None:
        raise UsageError(
            "The model must be compiled before training. Expected model.compile(...)"
            f" first. Received: model {trained.name!r}, not compiled"
        )

    if distributed:
        from rnnkit.training.distribute import worker_identity

        is_chief, worker = worker_identity(strategy)
        # Workers write their own copies; only the chief's are the run's result.
        out_dir = run_dir if is_chief else run_dir / "workers" / worker
    else:
        out_dir = run_dir
    out_dir.mkdir(parents=True, exist_ok=True)

    monitor = monitor or ("val_loss" if validation_data is not None else "loss")
    own = []
    if resume:
        own.append(keras.callbacks.BackupAndRestore(str(out_dir / "backup")))
    if nan_guard:
        own.append(NonFiniteGuard(out_dir / "last_good.weights.h5"))
    own += [
        HistoryLog(out_dir),
        keras.callbacks.ModelCheckpoint(
            str(out_dir / "best.keras"), monitor=monitor, save_best_only=True
        ),
    ]
    if _want_tensorboard(tensorboard):
        own.append(
            keras.callbacks.TensorBoard(str(out_dir / "logs"), write_graph=False)
        )
    if gradient_norms is not None and gradient_norms is not False:
        probe = None if gradient_norms is True else gradient_norms
        if probe is None and not distributed:
            raise UsageError(
                "Under Keras fit the gradient norm is measured on a probe batch. "
                "Expected gradient_norms=(x, y). Received: gradient_norms=True"
            )
        own.append(GradientNormLog(out_dir, probe=probe))
    own += _tbptt_callbacks(trained, train_data, validation_data, fit_kwargs)

    if distributed:
        from rnnkit.training.distribute import DistributedTrainer

        if "y" in fit_kwargs:
            train_data = (train_data, fit_kwargs.pop("y"))
        batch_size = fit_kwargs.pop("batch_size", None)
        steps_per_epoch = fit_kwargs.pop("steps_per_epoch", None)
        if fit_kwargs:
            raise UsageError(
                "The distributed trainer takes y, batch_size and steps_per_epoch "
                f"besides fit's own arguments. Received: {sorted(fit_kwargs)}"
            )
        DistributedTrainer(trained, strategy).fit(
            train_data,
            validation_data,
            epochs=epochs,
            callbacks=[*own, *callbacks],
            verbose=verbose,
            batch_size=batch_size,
            steps_per_epoch=steps_per_epoch,
        )
    else:
        trained.fit(
            train_data,
            validation_data=validation_data,
            epochs=epochs,
            callbacks=[*own, *callbacks],
            verbose=verbose,
            **fit_kwargs,
        )
    if trained is not model and isinstance(model, keras.Model):
        model.set_weights(trained.get_weights())

    history = read_history(out_dir / "history.json")
    if history:
        plot_history(history, out_dir / "training_curves.png", title=trained.name)
    logger.info("Training finished; run folder: %s", out_dir)
    return history


def _want_tensorboard(requested: bool | None) -> bool:
    if requested is False:
        return False
    import importlib.util

    # Keras' TensorBoard callback needs the separate `tensorboard` package.
    if importlib.util.find_spec("tensorboard") is not None:
        return True
    if requested:
        raise UsageError(
            "TensorBoard logs need the `tensorboard` package. Expected it installed "
            "(pip install tensorboard). Received: tensorboard=True, not installed"
        )
    logger.info("TensorBoard logs skipped: the `tensorboard` package is not installed")
    return False


def _resolve_strategy(strategy):
    """Returns (strategy or None, whether the distributed trainer is needed)."""
    if strategy is None:
        return None, False
    from rnnkit.training.distribute import get_strategy, is_multi_worker

    if isinstance(strategy, str):
        if strategy.strip().lower() == "default":
            return None, False
        strategy = get_strategy(strategy)
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.Strategy):
        raise UsageError(
            "Expected a strategy name or a tf.distribute.Strategy. Received: "
            f"{type(strategy).__name__}"
        )
    return strategy, is_multi_worker(strategy)


def _tbptt_callbacks(model, train_data, validation_data, fit_kwargs) -> list:
    if not isinstance(train_data, ChunkedSequences):
        if isinstance(validation_data, ChunkedSequences):
            raise UsageError(
                "Chunked validation data needs chunked training data. Expected both "
                "to be ChunkedSequences. Received: train "
                f"{type(train_data).__name__}"
            )
        return []
    check_stateful_model(model, train_data.batch_size)
    if getattr(model, "steps_per_execution", 1) != 1:
        raise UsageError(
            "Truncated BPTT resets states between batches, so each batch must be "
            "its own step. Expected compile(steps_per_execution=1). Received: "
            f"steps_per_execution={model.steps_per_execution}"
        )
    if fit_kwargs.get("shuffle"):
        raise UsageError(
            "Truncated BPTT keeps chunks in time order. Expected shuffle=False. "
            "Received: shuffle=True"
        )
    # Keras would otherwise shuffle the order of the chunk batches.
    fit_kwargs["shuffle"] = False
    val_chunks = None
    if isinstance(validation_data, ChunkedSequences):
        if validation_data.batch_size != train_data.batch_size:
            raise UsageError(
                "Validation chunks must use the stateful batch size. Expected "
                f"batch_size={train_data.batch_size}. Received: "
                f"batch_size={validation_data.batch_size}"
            )
        val_chunks = validation_data.chunks_per_sequence
    return [ResetStatesAtSequenceStart(train_data.chunks_per_sequence, val_chunks)]
