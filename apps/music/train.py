"""Training the piano-roll model, with presets.

Run it as a module (this is what `make models` calls):

    python -m rnnkit.apps.music.train --dataset jsb --preset full -o runs/music

or as `rnnkit train music --dataset jsb --preset full -o runs/music`. The run
folder receives `model.keras` (the best epoch on the validation split, or
the last one for a refit preset), its
sidecar `model.music.json`, `history.json`, `training_curves.png`, the
checkpoints of `rnnkit.training.fit` and `metrics.json` (valid and, where the
split exists, test NLL and frame accuracy).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from rnnkit.edge import music as edge_music

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preset:
    """Hyper-parameters of one training recipe.

    Attributes:
        cell, units, num_layers, dropout, input_dropout: see `build_model`.
        epochs: most epochs; training stops earlier after `patience` epochs
            without a better validation NLL (the best weights are kept).
        batch_size: pieces (windows) per batch.
        learning_rate: Adam's.
        window: pieces longer than this are cut into windows of this many steps
            (it is also the model's declared context for primers).
        max_pieces: use only the first N training pieces (None: all).
        transpose: augment each training window, each epoch, by a random
            transposition of up to this many semitones up or down (0: none);
            keys pushed off the keyboard are dropped.
        max_minutes: stop after the epoch that passes this wall time (None: no
            limit); the best epoch so far is kept.
        members: train this many models (seeds seed, seed+1, ...) and ship their
            ensemble (`model.build_ensemble`, the mean of their logits); the
            time limit applies to each member.
        refit: train on the training and validation pieces together for exactly
            `epochs` epochs, with no early stopping (the epoch count having been
            chosen on validation by a run without `refit`). A refit run's valid
            figures are on pieces it trained on; only test is held out.
    """

    cell: str = "gru"
    units: int = 256
    num_layers: int = 1
    dropout: float = 0.4
    input_dropout: float = 0.2
    epochs: int = 200
    batch_size: int = 16
    learning_rate: float = 2e-3
    window: int = 160
    patience: int = 20
    max_pieces: int | None = None
    transpose: int = 0
    max_minutes: float | None = None
    members: int = 1
    refit: bool = False


PRESETS = {
    # A few seconds: the tests' and the notebook's size.
    "quick": Preset(
        units=32,
        dropout=0.0,
        input_dropout=0.0,
        epochs=4,
        batch_size=4,
        learning_rate=1e-2,
        patience=4,
        max_pieces=16,
    ),
    # One model: GRU 256 with dropout, early stopping; it stopped by itself after
    # 48 epochs (7.4 min) on a loaded 2-core machine (test NLL 8.55).
    "shipped": Preset(max_minutes=13.0),
    # The selection run of the benchmark recipe: four models of the shipped
    # recipe (seeds 0-3) trained on the training chorales only, early stopping
    # on validation, and their ensemble (the mean of their logits). Each member
    # stopped by itself after 5.7-7.4 minutes on 2 busy cores, at best epochs 28,
    # 32, 33 and 38. Single models reached test NLL 8.48-8.55, the ensemble 8.43.
    "full-select": Preset(max_minutes=45.0, members=4),
    # The benchmark recipe and the shipped model: `full-select` refit on train +
    # valid (305 chorales) for 33 epochs, about its members' median best epoch,
    # no early stopping. 9.6 minutes for the four on the 2-core machine while a
    # voice training ran.
    "full": Preset(max_minutes=45.0, members=4, refit=True, epochs=33),
}


def get_preset(name: str, **overrides) -> Preset:
    from rnnkit.errors import UsageError

    if name not in PRESETS:
        raise UsageError(f"Unknown preset {name!r}. Expected one of {sorted(PRESETS)}.")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return replace(PRESETS[name], **overrides)


def _transpose_batch(x, y, w, semitones: int, seed: int):
    """tf.data map: shifts a window's inputs and targets by the same random interval."""
    import tensorflow as tf

    shift = tf.random.uniform((), -semitones, semitones + 1, dtype=tf.int32, seed=seed)
    keys = tf.range(edge_music.NUM_KEYS)
    # tf.roll wraps around; zero the keys that wrapped so nothing jumps octaves.
    valid = tf.cast((keys - shift >= 0) & (keys - shift < edge_music.NUM_KEYS), x.dtype)
    return tf.roll(x, shift, axis=-1) * valid, tf.roll(y, shift, axis=-1) * valid, w


class _WallClockLimit:
    """Builds a Keras callback that stops training after `minutes` of wall time."""

    def __new__(cls, minutes: float):
        import keras

        class WallClockLimit(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.started = time.monotonic()

            def on_epoch_end(self, epoch, logs=None):
                if time.monotonic() - self.started > 60 * minutes:
                    logger.info("Wall-clock limit of %.1f min reached", minutes)
                    self.model.stop_training = True

        return WallClockLimit()


def make_windows(rolls: list[np.ndarray], window: int):
    """Cuts pieces into training windows with inputs, targets and step weights.

    A window that starts inside a piece reads the piece's previous frame at its
    first step; only a piece's first window starts from the zero start frame.

    Returns:
        (inputs, targets, weights): float32 (n, window, 88), float32
        (n, window, 88) and float32 (n, window), padding weighted 0.
    """
    rows = []
    for roll in rolls:
        inputs = edge_music.input_frames(roll)
        for begin in range(0, len(roll), window):
            rows.append((inputs[begin : begin + window], roll[begin : begin + window]))
    x = np.zeros((len(rows), window, edge_music.NUM_KEYS), np.float32)
    y = np.zeros_like(x)
    w = np.zeros((len(rows), window), np.float32)
    for i, (inputs, targets) in enumerate(rows):
        x[i, : len(inputs)] = inputs
        y[i, : len(targets)] = targets
        w[i, : len(targets)] = 1.0
    return x, y, w


def train(
    dataset: str,
    preset: Preset,
    run_dir: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    splits: dict[str, list[np.ndarray]] | None = None,
    seed: int = 0,
    verbose="auto",
) -> dict:
    """Trains a model on `dataset` with `preset` and writes the run folder.

    Args:
        dataset: a name from `rnnkit.apps.music.data.DATASETS` or a MIDI folder.
        preset: the recipe.
        run_dir: output folder.
        data_dir: data folder (else RNNKIT_DATA).
        splits: already loaded {split: rolls}; skips loading `dataset`.
        seed: seed of Keras, numpy and Python's random.
        verbose: Keras progress-bar setting.

    Returns:
        The metrics dict also written to `run_dir/metrics.json`.
    """
    import keras
    from rnnkit.apps.music import data as music_data
    from rnnkit.apps.music import model as music_model

    from rnnkit.errors import UsageError
    from rnnkit.training import fit

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if splits is None:
        splits = music_data.load_dataset(dataset, data_dir)
    if preset.members > 1:
        return _train_ensemble(dataset, preset, run_dir, splits, seed, verbose)
    keras.utils.set_random_seed(seed)
    train_rolls = list(splits["train"][: preset.max_pieces])
    valid_rolls = splits.get("valid") or []
    if preset.refit:
        train_rolls += list(valid_rolls)
    if not train_rolls:
        raise UsageError(f"The dataset {dataset!r} has no training pieces.")
    if not valid_rolls:
        raise UsageError(
            f"The dataset {dataset!r} has no validation pieces. Expected a 'valid' "
            "split (a MIDI folder needs about ten files or more)."
        )

    x, y, w = make_windows(train_rolls, preset.window)
    vx, vy, vw = make_windows(valid_rolls, preset.window)
    logger.info(
        "Training on %d windows (%d steps), validating on %d pieces (%d steps)",
        len(x),
        int(w.sum()),
        len(valid_rolls),
        int(vw.sum()),
    )
    model = music_model.build_model(
        preset.cell,
        units=preset.units,
        num_layers=preset.num_layers,
        dropout=preset.dropout,
        input_dropout=preset.input_dropout,
    )
    music_model.set_output_bias(model, train_rolls)
    music_model.compile_model(model, preset.learning_rate)

    import tensorflow as tf

    train_data = tf.data.Dataset.from_tensor_slices((x, y, w)).shuffle(
        len(x), seed=seed, reshuffle_each_iteration=True
    )
    if preset.transpose:
        train_data = train_data.map(
            lambda a, b, c: _transpose_batch(a, b, c, preset.transpose, seed)
        )
    train_data = train_data.batch(preset.batch_size)
    extra_callbacks = (
        [_WallClockLimit(preset.max_minutes)] if preset.max_minutes else []
    )
    if not preset.refit:
        extra_callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=preset.patience,
                restore_best_weights=True,
            )
        )
    started = time.monotonic()
    history = fit(
        model,
        train_data,
        (vx, vy, vw),
        epochs=preset.epochs,
        run_dir=run_dir,
        callbacks=extra_callbacks,
        # TensorBoard logs are not needed for these small runs (and TensorBoard
        # may not be installed).
        tensorboard=False,
        verbose=verbose,
    )
    seconds = time.monotonic() - started

    # An uncompiled copy: the optimizer's moments would triple the file's size and
    # are of no use to a generator (resuming uses the run's own checkpoints).
    inference_model = keras.models.clone_model(model)
    inference_model.set_weights(model.get_weights())
    _save_model(inference_model, run_dir, preset, dataset)
    # The resume state and the checkpoints of a finished run are of no further
    # use (model.keras is the best epoch) and each is three times its size.
    shutil.rmtree(run_dir / "backup", ignore_errors=True)
    for name in ("best.keras", "last_good.weights.h5"):
        (run_dir / name).unlink(missing_ok=True)

    metrics = {
        "dataset": str(dataset),
        "preset": asdict(preset),
        "train_seconds": round(seconds, 1),
        "epochs_run": len(history.get("loss", [])),
        "training_windows": len(x),
    }
    return _score_and_write(model, run_dir, splits, metrics)


def _save_model(model, run_dir: Path, preset: Preset, dataset) -> None:
    """Writes run_dir/model.keras (temporary file, then rename) and its sidecar."""
    from rnnkit.apps.music import model as music_model

    model_path = run_dir / "model.keras"
    temporary = run_dir / "model.tmp.keras"
    model.save(str(temporary))
    os.replace(temporary, model_path)
    info = music_model.MusicInfo(
        context_steps=preset.window,
        dataset=str(dataset),
        cell=preset.cell,
        units=preset.units,
        num_layers=preset.num_layers,
    )
    music_model.save_info(info, model_path)


def _score_and_write(model, run_dir: Path, splits, metrics: dict) -> dict:
    """Adds valid/test NLL of `model` to `metrics` and writes metrics.json."""
    from rnnkit.apps.music import evaluate as music_evaluate

    for split in ("valid", "test"):
        if splits.get(split):
            metrics[split] = music_evaluate.evaluate_rolls(
                music_evaluate.KerasScorer(model), splits[split]
            )
    text = json.dumps(metrics, indent=2)
    (run_dir / "metrics.json.tmp").write_text(text)
    os.replace(run_dir / "metrics.json.tmp", run_dir / "metrics.json")
    logger.info(
        "Metrics: %s", json.dumps({k: metrics.get(k) for k in ("valid", "test")})
    )
    return metrics


def _train_ensemble(dataset, preset, run_dir: Path, splits, seed, verbose) -> dict:
    """Trains `preset.members` models in run_dir/member_<k> and saves their ensemble."""
    import keras
    from rnnkit.apps.music import model as music_model

    started = time.monotonic()
    single = replace(preset, members=1)
    member_metrics, members = [], []
    for index in range(preset.members):
        logger.info("Ensemble member %d of %d", index + 1, preset.members)
        member_dir = run_dir / f"member_{index}"
        member_metrics.append(
            train(
                dataset,
                single,
                member_dir,
                splits=splits,
                seed=seed + index,
                verbose=verbose,
            )
        )
        members.append(
            keras.saving.load_model(member_dir / "model.keras", compile=False)
        )
    ensemble = music_model.build_ensemble(members)
    _save_model(ensemble, run_dir, preset, dataset)
    metrics = {
        "dataset": str(dataset),
        "preset": asdict(preset),
        "train_seconds": round(time.monotonic() - started, 1),
        "epochs_run": sum(m["epochs_run"] for m in member_metrics),
        "members": member_metrics,
    }
    return _score_and_write(ensemble, run_dir, splits, metrics)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The training flags, shared by `rnnkit train music` and `python -m ...train`."""
    parser.add_argument(
        "--dataset",
        default="jsb",
        help="jsb | nottingham | musedata | piano | jsb-mat | bach-music21 | a MIDI folder",
    )
    parser.add_argument("--preset", default="quick", choices=sorted(PRESETS))
    parser.add_argument("-o", "--out", required=True, help="run folder")
    parser.add_argument("--data", default=None, help="data folder (else RNNKIT_DATA)")
    parser.add_argument("--cell", default=None, choices=["lstm", "gru", "simple_rnn"])
    parser.add_argument("--units", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--max-pieces", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-export",
        action="store_true",
        help="skip the streaming int8 export (model_int8.tflite)",
    )


def export_run(run_dir, dataset: str, data_dir=None):
    """Exports RUN/model.keras to RUN/model_int8.tflite (streaming, int8, Micro-checked)."""
    from rnnkit.apps.music.data import load_dataset
    from rnnkit.apps.music.export import export_streaming

    run_dir = Path(run_dir)
    splits = load_dataset(dataset, data_dir)
    result = export_streaming(
        run_dir / "model.keras", run_dir / "model_int8.tflite", splits["train"]
    )
    logger.info(
        "Exported %s (%d bytes); runs in TFLite Micro: %s",
        result.path,
        result.size_bytes,
        result.parity.get("runs_in_tflite_micro"),
    )
    return result


def run_from_args(args) -> int:
    """Trains, then exports unless `--no-export`; returns the exit status."""
    from rnnkit.errors import RnnkitError

    preset = get_preset(
        args.preset,
        cell=args.cell,
        units=args.units,
        epochs=args.epochs,
        max_pieces=args.max_pieces,
    )
    train(args.dataset, preset, args.out, data_dir=args.data, seed=args.seed)
    if args.no_export:
        return 0
    try:
        export_run(args.out, args.dataset, args.data)
    except (RnnkitError, ImportError) as error:
        # The trained model is worth keeping even when the export fails.
        logger.error(
            "The streaming int8 export failed (%s); %s/model.keras is kept.",
            error,
            args.out,
        )
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the rnnkit music model.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return run_from_args(args)


if __name__ == "__main__":
    raise SystemExit(main())
