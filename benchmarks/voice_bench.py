"""Voice commands benchmark: held-out speakers, int8, streaming cost, detection.

Measures, for trained run folders (from `rnnkit train voice`):
  * clip accuracy on the held-out test speakers of this repository's split, for
    the Keras model and the int8 streaming .tflite (12-class and 8-word runs);
  * false accepts on `_unknown_` at the stored threshold;
  * per-frame streaming cost on this CPU and the real-time factor;
  * detection rate and false alarms per hour on a stream made of every held-out
    word and unknown clip, with held-out background noise between them;
  * the TensorFlow simple-audio tutorial recipe (STFT image, resize to 32x32,
    two convolutions, 1.6 M parameters) trained on the same split, if asked.

Run (what produced benchmarks/results/voice.md; sizes are stated there):
    python benchmarks/voice_bench.py --run models/voice --run8 RUN8/ --baseline
Full size: train the full preset first (`rnnkit train voice --preset full -o RUN`,
and `--labels 8 -o RUN8`), then pass those folders.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_section  # noqa: E402
from rnnkit.apps.voice import data as voice_data  # noqa: E402
from rnnkit.apps.voice.evaluate import accuracy_report  # noqa: E402
from rnnkit.apps.voice.inference import VoiceClassifier  # noqa: E402

from rnnkit.edge.audio import detect, match_detections  # noqa: E402


def _clip_scores(path: Path, labels, waveforms, targets) -> dict:
    classifier = VoiceClassifier(path)
    started = time.perf_counter()
    probs = classifier.predict_waveforms(waveforms)
    seconds = time.perf_counter() - started
    report = accuracy_report(probs, targets, classifier.labels, classifier.threshold)
    report["seconds"] = seconds
    report["size_bytes"] = path.stat().st_size
    return report


def _streaming_cost(path: Path, samples: np.ndarray) -> dict:
    """Per-step cost of the one-step model and real-time factor of a stream."""
    classifier = VoiceClassifier(path)
    features = classifier.front_end.compute(samples[:16000])
    stepper = classifier._stepper()
    for frame in features[:10]:
        stepper.step(frame)
    started = time.perf_counter()
    count = 0
    for _ in range(4):
        for frame in features:
            stepper.step(frame)
            count += 1
    step_ms = (time.perf_counter() - started) / count * 1000

    started = time.perf_counter()
    stream_frames = len(classifier.front_end.compute(samples))
    feature_seconds = time.perf_counter() - started
    started = time.perf_counter()
    classifier.stream_posteriors(samples)
    stream_seconds = time.perf_counter() - started
    duration = samples.size / classifier.features.sample_rate
    copies = -(-classifier.window_frames // classifier.hop_frames)
    return {
        "step_ms": step_ms,
        "copies": copies,
        "frame_ms": step_ms * copies,
        "feature_ms_per_frame": feature_seconds * 1000 / max(1, stream_frames),
        "real_time_factor": stream_seconds / duration,
        "stream_seconds": duration,
    }


def _baseline(labels, data, epochs: int) -> dict:
    """The TF simple-audio tutorial's CNN on the same split (its recipe, our data)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(1234)

    def spectrogram(w):
        s = tf.abs(tf.signal.stft(w, frame_length=255, frame_step=128))
        return s[..., tf.newaxis]

    x = {k: spectrogram(tf.constant(v[0])).numpy() for k, v in data.items()}
    norm = keras.layers.Normalization()
    norm.adapt(x["train"])
    model = keras.Sequential(
        [
            keras.Input(shape=x["train"].shape[1:]),
            keras.layers.Resizing(32, 32),
            norm,
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.Conv2D(64, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Dropout(0.25),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(len(labels)),
        ]
    )
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    started = time.time()
    model.fit(
        x["train"],
        data["train"][1],
        validation_data=(x["validation"], data["validation"][1]),
        epochs=epochs,
        batch_size=64,
        verbose=2,
        callbacks=[keras.callbacks.EarlyStopping(verbose=1, patience=2)],
    )
    _, accuracy = model.evaluate(x["test"], data["test"][1], verbose=0)
    return {
        "accuracy": float(accuracy),
        "parameters": int(model.count_params()),
        "seconds": time.time() - started,
    }


def _split_data(labels):
    out = {}
    for split in ("train", "validation", "test"):
        clips = voice_data.list_clips(split, labels)
        out[split] = (
            voice_data.load_waveforms(clips),
            voice_data.encode_labels(clips, labels),
        )
    return out


def _run_rows(run: Path, name: str) -> tuple[list[str], dict]:
    config = json.loads((run / "voice.json").read_text())
    labels = config["labels"]
    clips = voice_data.list_clips("test", labels)
    waveforms = voice_data.load_waveforms(clips)
    targets = voice_data.encode_labels(clips, labels)
    metrics = {}
    if (run / "metrics.json").exists():
        metrics = json.loads((run / "metrics.json").read_text())
    trained = (
        f"{metrics['train_seconds']:.0f} s"
        if "train_seconds" in metrics
        else "time not recorded in the run folder"
    )
    if (run / "history.json").exists():
        epochs = len(json.loads((run / "history.json").read_text()).get("loss", []))
        trained += f", {epochs} epochs"
    rows, scores = [], {}
    for model_name in ("model.keras", "model_int8.tflite"):
        path = run / model_name
        if not path.exists():
            rows.append(f"| {name} | {model_name} | not present | | | |")
            continue
        report = _clip_scores(path, labels, waveforms, targets)
        scores[model_name] = report
        far = report.get("false_accept_rate_unknown")
        rows.append(
            f"| {name} | {model_name} | {report['accuracy']:.3f} ({report['clips']} clips) "
            f"| {'n/a (no unknown class)' if far is None else f'{far:.3f}'} "
            f"| {report['size_bytes'] / 1024:.0f} KB | {trained}, preset "
            f"{config.get('preset')} |"
        )
    return rows, scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run", action="append", default=[], help="12-class run folder"
    )
    parser.add_argument("--run8", action="append", default=[], help="8-word run folder")
    parser.add_argument(
        "--baseline", action="store_true", help="train the tutorial CNN"
    )
    parser.add_argument("--baseline-epochs", type=int, default=10)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    lines = [
        "Split: by speaker (hash of the speaker id, seed 20180409), 80/10/10; the "
        "test speakers below never trained or tuned anything. The data folder lacks "
        "about one speaker in five of the official test set (held out elsewhere).",
        "",
        "| run | file | accuracy, held-out speakers | false accepts on _unknown_ "
        "| size | training |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    all_scores = {}
    for run in args.run:
        rows, scores = _run_rows(Path(run), f"12-class {Path(run).name}")
        lines += rows
        all_scores[run] = scores
    for run in args.run8:
        rows, _ = _run_rows(Path(run), f"8-word {Path(run).name}")
        lines += rows

    if args.run:
        run = Path(args.run[0])
        config = json.loads((run / "voice.json").read_text())
        labels = config["labels"]
        clips = voice_data.list_clips("test", labels)
        clips = [c for c in clips if c.label != "_silence_"]
        rng = np.random.default_rng(0)
        clips = [clips[i] for i in rng.permutation(len(clips))]
        noise = voice_data.load_background_noise("test")
        bed = np.concatenate(list(noise.values()))
        samples, truth = voice_data.make_stream(clips, bed, seed=0, noise_gain=0.1)
        words = [t for t in truth if t[0] in voice_data.WORDS]
        lines += [
            "",
            f"Stream: every held-out word and unknown clip ({len(words)} words, "
            f"{len(truth) - len(words)} unknown) in random order, 1-2 s gaps, over the "
            f"held-out 10% of all six noise recordings (gain 0.1): "
            f"{samples.size / 16000 / 60:.1f} minutes. Windows of 1 s every 240 ms, "
            "posteriors averaged over 2 windows, one report per word per second; a "
            "detection counts if it has the right label and fires between the word's "
            "start and 0.5 s after its end. Anything else is a false alarm.",
            "",
            "| file | threshold | detection rate | false alarms | false alarms per hour |",
            "| --- | --- | --- | --- | --- |",
        ]
        for model_name in ("model.keras", "model_int8.tflite"):
            path = run / model_name
            if not path.exists():
                continue
            classifier = VoiceClassifier(path)
            times, posteriors = classifier.stream_posteriors(samples)
            hours = samples.size / 16000 / 3600
            for threshold in (classifier.threshold, 0.8):
                found = detect(
                    posteriors,
                    times,
                    classifier.labels,
                    threshold=threshold,
                    smoothing=2,
                )
                scores = match_detections(found, words)
                lines.append(
                    f"| {model_name} | {threshold:.2f} | {scores['detection_rate']:.3f} "
                    f"({scores['hits']}/{scores['commands']}) | {scores['false_alarms']} "
                    f"| {scores['false_alarms'] / hours:.0f} |"
                )
        tflite = run / "model_int8.tflite"
        if tflite.exists():
            cost = _streaming_cost(tflite, samples)
            lines += [
                "",
                f"Streaming cost (int8 one-step model, LiteRT, 1 thread, this shared CPU): "
                f"{cost['step_ms']:.3f} ms per model step; {cost['copies']} staggered "
                f"copies, so {cost['frame_ms']:.3f} ms of model time per 20 ms feature "
                f"frame, plus {cost['feature_ms_per_frame']:.3f} ms of numpy log-mel per "
                f"frame. Real-time factor of the whole stream (features, {cost['copies']} "
                f"copies, Python loop): {cost['real_time_factor']:.3f}.",
            ]
        else:
            lines += [
                "",
                "Streaming cost: no int8 .tflite in the run folder; not measured.",
            ]

    if args.baseline:
        lines += [
            "",
            "TensorFlow simple-audio recipe on the same split (STFT 255/128, resize to "
            f"32x32, 2 conv layers, dense 128; up to {args.baseline_epochs} epochs, early "
            "stopping with patience 2, as in the tutorial):",
            "",
            "| labels | accuracy, held-out speakers | parameters | training time |",
            "| --- | --- | --- | --- |",
        ]
        for name, labels in (("12", voice_data.LABELS_12), ("8", voice_data.LABELS_8)):
            result = _baseline(labels, _split_data(labels), args.baseline_epochs)
            lines.append(
                f"| {name} | {result['accuracy']:.3f} | {result['parameters']:,} "
                f"| {result['seconds']:.0f} s |"
            )
    else:
        lines += [
            "",
            "TensorFlow simple-audio recipe: not run this time (`--baseline`).",
        ]

    path = write_section("voice", "Voice commands (keyword spotting)", "\n".join(lines))
    print(path.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
