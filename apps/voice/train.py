"""Training the keyword classifier, with presets, and exporting its device forms.

`python -m rnnkit.apps.voice.train --preset full -o models/voice` trains the
shipped model (22 minutes on the 2-core machine, shared with one other
training). The run folder gets `model.keras`, `voice.json` (labels, feature
settings, threshold), `metrics.json`, the `rnnkit.training.fit` files, and
`model_int8.tflite`: the one-step streaming int8 model for LiteRT and TFLite
Micro, with its manifest.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
from rnnkit.apps.voice import data as voice_data
from rnnkit.apps.voice.model import ModelConfig

from rnnkit.edge.audio import FeatureConfig, LogMelFeatures
from rnnkit.errors import UsageError
from rnnkit.files import atomic_write_json

logger = logging.getLogger(__name__)
CONFIG_NAME = "voice.json"


@dataclasses.dataclass(frozen=True)
class Preset:
    """Everything one training run depends on.

    Attributes:
        name: the preset's name.
        model: classifier size.
        epochs: passes over the training clips.
        batch_size: clips per step.
        learning_rate: peak Adam learning rate (cosine decay to 5% of it).
        max_per_class: keep at most this many clips per label (None: all).
        augment: run waveform and SpecAugment augmentation.
        repeats: augmented copies of the training split per epoch.
        threshold: the default rejection / detection threshold stored with the
            model (tuned on validation speakers, see docs/voice.md).
        refit: train on training and validation speakers together and keep the
            last epoch (see `train`).
    """

    name: str
    model: ModelConfig
    epochs: int
    batch_size: int = 64
    learning_rate: float = 3e-3
    max_per_class: int | None = None
    augment: bool = True
    repeats: int = 1
    threshold: float = 0.6
    refit: bool = False


PRESETS = {
    # Tests and smoke runs: a handful of clips per class, a tiny model.
    "quick": Preset(
        "quick",
        ModelConfig(units=16, front_units=16, dropout=0.0),
        epochs=2,
        batch_size=16,
        max_per_class=6,
    ),
    # One GRU layer, 40 epochs: about 6 minutes on a busy 2-core machine.
    "shipped": Preset(
        "shipped", ModelConfig(units=64, front_units=64, dropout=0.1), epochs=40
    ),
    # The selection run of the benchmark recipe: two GRU layers of 64 (int8
    # streaming file 89 KB, under the 100 KB target), three augmented copies of
    # the training clips per epoch, 90 epochs, the best epoch by validation
    # accuracy; 44 minutes on the 2-core machine while four other trainings ran.
    # Its last ten epochs were within 1.5 points of the best on validation.
    # (An earlier version of two 96-unit layers had about twice the weights: too
    # many for a 100 KB int8 file.)
    "full-select": Preset(
        "full-select",
        ModelConfig(units=64, front_units=64, num_layers=2, dropout=0.15),
        epochs=90,
        repeats=3,
    ),
    # The benchmark recipe and the shipped model: `full-select` refit on the
    # training and validation speakers together, last epoch kept (22 minutes on
    # the 2-core machine while a music training ran).
    "full": Preset(
        "full",
        ModelConfig(units=64, front_units=64, num_layers=2, dropout=0.15),
        epochs=90,
        repeats=3,
        refit=True,
    ),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UsageError(
            f"Unknown preset. Expected one of {sorted(PRESETS)}. Received: {name!r}"
        )
    return PRESETS[name]


def clip_features(waveforms: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Numpy log-mel features of (n, samples) clips -> (n, frames, bins)."""
    front = LogMelFeatures(config)
    return np.stack([front.compute(w) for w in waveforms]).astype(np.float32)


def _training_dataset(waveforms, targets, is_silence, noise, preset, feature_config):
    import tensorflow as tf
    from rnnkit.apps.voice.features import AugmentConfig, log_mel, make_augmenter

    dataset = tf.data.Dataset.from_tensor_slices((waveforms, targets, is_silence))
    dataset = dataset.repeat(preset.repeats).shuffle(
        len(waveforms) * preset.repeats, seed=1234, reshuffle_each_iteration=True
    )
    if preset.augment:
        augment = make_augmenter(noise, AugmentConfig(), feature_config)
        dataset = dataset.map(augment, num_parallel_calls=2)
    else:
        dataset = dataset.map(lambda w, y, s: (log_mel(w, feature_config), y))
    return dataset.batch(preset.batch_size).prefetch(2)


def train(
    preset: str | Preset,
    run_dir: str | os.PathLike,
    labels: str = "12",
    data_dir: str | os.PathLike | None = None,
    folder: str | os.PathLike | None = None,
    epochs: int | None = None,
    export: bool = True,
    seed: int = 1234,
    refit: bool | None = None,
) -> dict:
    """Trains a classifier and saves it in `run_dir`.

    It trains on the training speakers; with `refit`, on the validation
    speakers too.

    Args:
        preset: a preset name ('quick', 'shipped', 'full-select', 'full') or a
            `Preset`.
        run_dir: the output folder.
        labels: '12' (ten words, silence, unknown) or '8' (mini speech commands).
        data_dir: the data folder (else `RNNKIT_DATA`).
        folder: train on a `<label>/*.wav` folder instead (labels: its folders).
        epochs: override the preset's epoch count.
        export: also write the int8 streaming `model_int8.tflite`.
        seed: seed of Keras, numpy and Python's random (the split does not
            depend on it).
        refit: train on the training and the validation speakers together for
            the preset's fixed number of epochs and keep the last epoch (the
            recipe, epochs and threshold having been chosen on validation by an
            earlier run without `refit`). Validation figures of a refit run are
            on speakers it trained on; only the test figures are held out. None:
            the preset's `refit`.

    Returns:
        The metrics dict also written to `run_dir/metrics.json`.
    """
    import keras
    from rnnkit.apps.voice.evaluate import accuracy_report
    from rnnkit.apps.voice.model import build_model, compile_model

    from rnnkit.training import fit

    preset = get_preset(preset) if isinstance(preset, str) else preset
    if epochs is not None:
        preset = dataclasses.replace(preset, epochs=epochs)
    refit = preset.refit if refit is None else refit
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    feature_config = FeatureConfig()
    keras.utils.set_random_seed(seed)
    started = time.time()

    if folder is not None:
        label_names = tuple(sorted({c.label for c in voice_data.list_folder(folder)}))
    else:
        label_names = voice_data.labels_for(labels)
    splits = {
        split: voice_data.list_clips(
            split, label_names, data_dir, folder, preset.max_per_class
        )
        for split in ("train", "validation", "test")
    }
    for split, clips in splits.items():
        logger.info("%s: %d clips", split, len(clips))
    if not splits["train"] or not splits["validation"]:
        raise UsageError(
            "Too few speakers to split. Expected clips from several speakers per "
            f"label. Received: {len(splits['train'])} training and "
            f"{len(splits['validation'])} validation clips"
        )
    if refit:
        splits["train"] = splits["train"] + splits["validation"]
        logger.info(
            "Refit: training on %d clips (train + validation)", len(splits["train"])
        )
    waveforms = {s: voice_data.load_waveforms(c) for s, c in splits.items()}
    targets = {s: voice_data.encode_labels(c, label_names) for s, c in splits.items()}
    noise = np.concatenate(
        list(voice_data.load_background_noise("train", data_dir).values())
    )

    train_features = clip_features(waveforms["train"], feature_config)
    mean = train_features.mean(axis=(0, 1))
    variance = train_features.var(axis=(0, 1))
    is_silence = np.array([c.label == "_silence_" for c in splits["train"]])
    train_ds = _training_dataset(
        waveforms["train"], targets["train"], is_silence, noise, preset, feature_config
    )
    val_features = clip_features(waveforms["validation"], feature_config)
    val_ds = (val_features, targets["validation"])

    model = build_model(
        len(label_names), feature_config.num_mel_bins, preset.model, mean, variance
    )
    steps = -(-len(waveforms["train"]) * preset.repeats // preset.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(
        preset.learning_rate, decay_steps=max(1, steps * preset.epochs), alpha=0.05
    )
    compile_model(model, schedule)
    fit(
        model,
        train_ds,
        val_ds,
        epochs=preset.epochs,
        run_dir=run_dir,
        monitor="val_accuracy",
        tensorboard=False,
        verbose=2,
    )
    train_seconds = time.time() - started
    # A refit run has no held-out validation speakers to pick an epoch with: it
    # keeps the last one (the cosine schedule ends at 5% of the peak rate, and
    # the selection runs' last epochs were within a point of their best).
    best = model if refit else keras.saving.load_model(run_dir / "best.keras")
    # The shipped file needs no optimizer state: a fresh copy of the weights is
    # about a third of the size.
    plain = keras.models.clone_model(best)
    plain.set_weights(best.get_weights())
    temporary = run_dir / "model.tmp.keras"
    plain.save(temporary)
    os.replace(temporary, run_dir / "model.keras")

    config = {
        "app": "voice",
        "labels": list(label_names),
        "features": feature_config.to_dict(),
        "model": dataclasses.asdict(preset.model),
        "preset": preset.name,
        "threshold": preset.threshold,
        "window_frames": feature_config.frames_per_clip,
        "hop_frames": 12,
        "split_seed": voice_data.SPLIT_SEED,
    }
    atomic_write_json(run_dir / CONFIG_NAME, config, sort_keys=True)

    metrics = {"preset": preset.name, "labels": labels if folder is None else "folder"}
    metrics["refit"] = refit
    metrics["training_clips"] = len(splits["train"])
    if refit:
        metrics["note"] = (
            "refit on train + validation speakers, last epoch kept; the validation "
            "figures are on speakers seen in training, the test figures are held out"
        )
    metrics["train_seconds"] = round(train_seconds, 1)
    metrics["parameters"] = int(best.count_params())
    for split in ("validation", "test"):
        if len(waveforms[split]):
            features = (
                val_features
                if split == "validation"
                else clip_features(waveforms[split], feature_config)
            )
            probs = best.predict(features, verbose=0, batch_size=256)
            metrics[split] = accuracy_report(
                probs, targets[split], label_names, preset.threshold
            )
    atomic_write_json(run_dir / "metrics.json", metrics, sort_keys=True)
    if export:
        metrics["export"] = export_int8(best, run_dir, config, train_features)
        atomic_write_json(run_dir / "metrics.json", metrics, sort_keys=True)
    logger.info(
        "Done in %.0f s: validation accuracy %.3f, test accuracy %s",
        time.time() - started,
        metrics["validation"]["accuracy"],
        metrics.get("test", {}).get("accuracy"),
    )
    return metrics


def export_int8(
    model,
    run_dir: Path,
    config: dict,
    features: np.ndarray,
    micro: bool = True,
    quantize: str = "int8",
    name: str = "model_int8.tflite",
) -> dict:
    """Writes the int8 one-step streaming model (LiteRT and TFLite Micro).

    Args:
        model: the trained clip model.
        run_dir: where `model_int8.tflite` and its manifest go.
        config: the voice settings, embedded as metadata.
        features: real training feature sequences (n, frames, bins); 200 of them
            calibrate the int8 ranges.
        micro: also check the file in TFLite Micro.
        quantize: the exporter's quantization mode ("float32" gives the exact
            streaming form the tests compare with the clip model).
        name: the file name inside `run_dir`.

    Returns:
        What the exporter reported, or the reason it could not export: the
        Keras model stays usable either way.
    """
    from rnnkit.errors import RnnkitError

    try:
        from rnnkit.exporters import export_model
    except ImportError as error:
        logger.warning("Exporter not available; no .tflite written: %s", error)
        return {"error": f"exporter not available: {error}"}
    rng = np.random.default_rng(0)
    count = min(200, len(features))
    chosen = features[rng.choice(len(features), size=count, replace=False)]
    from rnnkit.apps.voice.model import per_frame_model

    stepwise = per_frame_model(model, config)
    micro_note = None
    try:
        try:
            result = export_model(
                stepwise,
                run_dir / name,
                quantize=quantize,
                representative_data=chosen,
                streaming=True,
                micro=micro,
                metadata=config,
            )
        except ImportError as error:
            if not micro:
                raise
            # The TFLite Micro check is optional; the LiteRT file is still wanted.
            micro_note = f"TFLite Micro check unavailable: {error}"
            logger.warning("%s; exporting without it", micro_note)
            result = export_model(
                stepwise,
                run_dir / name,
                quantize=quantize,
                representative_data=chosen,
                streaming=True,
                micro=False,
                metadata=config,
            )
    except (RnnkitError, ImportError, ValueError, NotImplementedError) as error:
        logger.warning("int8 streaming export failed: %s", error)
        return {"error": str(error)}
    return {
        "path": str(result.path),
        "size_bytes": int(result.size_bytes),
        "parity": result.parity,
        "ops": sorted(result.ops) if result.ops else None,
        "micro": result.micro if micro_note is None else micro_note,
    }


def export_run(run_dir: str | os.PathLike, data_dir=None, micro: bool = True) -> dict:
    """Exports the int8 streaming model of an existing run folder again."""
    import keras

    import rnnkit.layers  # noqa: F401 - registers RecurrentStack for loading

    run_dir = Path(run_dir)
    config = json.loads((run_dir / CONFIG_NAME).read_text())
    model = keras.saving.load_model(run_dir / "model.keras")
    clips = voice_data.list_clips("train", config["labels"], data_dir)
    features = clip_features(
        voice_data.load_waveforms(clips), FeatureConfig.from_dict(config["features"])
    )
    return export_int8(model, run_dir, config, features, micro=micro)


def main(argv: list[str] | None = None) -> int:
    from rnnkit.apps.voice.cli import add_seed_and_refit

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="shipped", choices=sorted(PRESETS))
    parser.add_argument("--labels", default="12", choices=sorted(voice_data.LABEL_SETS))
    parser.add_argument("-o", "--out", required=True, help="run folder")
    parser.add_argument("--data", default=None, help="data folder")
    parser.add_argument("--epochs", type=int, default=None)
    add_seed_and_refit(parser)
    parser.add_argument(
        "--export-only", action="store_true", help="re-export the run's model.keras"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.export_only:
        report = export_run(args.out, args.data)
        logger.info("%s", json.dumps(report, default=str)[:2000])
        return 0 if "error" not in report else 1
    train(
        args.preset,
        args.out,
        args.labels,
        args.data,
        epochs=args.epochs,
        seed=args.seed,
        refit=args.refit,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
