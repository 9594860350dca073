"""The voice app's commands: train, evaluate, predict, listen, and its demo part.

    rnnkit train voice [--preset quick|shipped|full-select|full] [--labels 12|8] -o RUN/
    rnnkit evaluate voice MODEL [--data DIR] [--split test] [--json]
    rnnkit predict voice MODEL FILE.wav [FILE.wav ...] [--png OUT.png]
    rnnkit listen MODEL [FILE.wav | --mic] [--threshold T]

MODEL is a `.keras` file or a `.tflite` file; a `.tflite` model runs with the
edge runtime alone (TensorFlow is never imported). Heavy imports happen inside
the handlers so that `rnnkit --help` stays fast.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_DIR = REPO_ROOT / "models" / "voice"
EXAMPLES_DIR = REPO_ROOT / "examples" / "voice"


def register(cli) -> None:
    parser = cli.app_command(
        "train", "voice", "Train a keyword spotter on Speech Commands.", _train
    )
    parser.add_argument(
        "--preset",
        default="shipped",
        choices=("quick", "shipped", "full-select", "full"),
    )
    parser.add_argument("--labels", default="12", choices=("12", "8"))
    parser.add_argument("-o", "--out", required=True, help="run folder")
    parser.add_argument("--data", default=None, help="data folder (else RNNKIT_DATA)")
    parser.add_argument(
        "--folder", default=None, help="train on your own <label>/*.wav folder"
    )
    parser.add_argument("--epochs", type=int, default=None, help="override the preset")
    add_seed_and_refit(parser)
    parser.add_argument(
        "--no-export", action="store_true", help="skip the int8 .tflite export"
    )

    parser = cli.app_command(
        "evaluate",
        "voice",
        "Accuracy and false accepts on held-out speakers.",
        _evaluate,
    )
    parser.add_argument("model", help="model.keras or model_int8.tflite")
    parser.add_argument(
        "--data",
        default=None,
        help="data folder holding speech/..., or a <label>/*.wav folder",
    )
    parser.add_argument(
        "--split", default="test", choices=("train", "validation", "test")
    )
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument("--json", action="store_true", help="print one JSON line")

    parser = cli.app_command(
        "predict", "voice", "Classify one-second WAV clips.", _predict
    )
    parser.add_argument("model", help="model.keras or model_int8.tflite")
    parser.add_argument("files", nargs="+", help="WAV files (any rate, any length)")
    parser.add_argument("--png", default=None, help="picture of the first clip")
    parser.add_argument("--json", action="store_true", help="print one JSON line")

    parser = cli.command(
        "listen",
        "Spot voice commands in a long recording (or the microphone) with times.",
        _listen,
    )
    parser.add_argument("model", help="a voice model.keras or model_int8.tflite")
    parser.add_argument("file", nargs="?", default=None, help="a WAV recording")
    parser.add_argument(
        "--mic", action="store_true", help="listen to the microphone (sounddevice)"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="mic duration")
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument("--smoothing", type=int, default=2)
    parser.add_argument("--png", default=None, help="picture of the posteriors")
    parser.add_argument("--json", action="store_true", help="print one JSON line")


def add_seed_and_refit(parser) -> None:
    """The --seed and --refit flags of `rnnkit train voice` and of the train module."""
    parser.add_argument("--seed", type=int, default=1234, help="training seed")
    parser.add_argument(
        "--refit",
        action="store_true",
        default=None,
        help="train on train + validation speakers, keep the last epoch "
        "(the `full` preset always does)",
    )


def _to_usage_errors(function):
    """Turns the edge runtime's AudioError into the CLI's UsageError."""

    def wrapper(args):
        from rnnkit.edge.audio import AudioError
        from rnnkit.errors import UsageError

        try:
            return function(args)
        except AudioError as error:
            raise UsageError(str(error)) from error

    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    return wrapper


def _train(args) -> int:
    from rnnkit.apps.voice.train import train

    metrics = train(
        args.preset,
        args.out,
        labels=args.labels,
        data_dir=args.data,
        folder=args.folder,
        epochs=args.epochs,
        export=not args.no_export,
        seed=args.seed,
        refit=args.refit,
    )
    logger.info(
        "Validation accuracy %.3f; model in %s",
        metrics["validation"]["accuracy"],
        args.out,
    )
    return 0


@_to_usage_errors
def _evaluate(args) -> int:
    from rnnkit.apps.voice.evaluate import evaluate_clips, held_out_clips
    from rnnkit.apps.voice.inference import VoiceClassifier

    from rnnkit.cli import print_json_line

    classifier = VoiceClassifier(args.model)
    clips = held_out_clips(args.data, classifier.labels, args.split)
    report = evaluate_clips(classifier, clips, args.threshold)
    logger.info(
        "%d clips: accuracy %.3f; with threshold %.2f: command recall %.3f, "
        "false accepts on _unknown_ %s",
        report["clips"],
        report["accuracy"],
        report["threshold"],
        report.get("command_recall", float("nan")),
        report.get("false_accept_rate_unknown", "n/a"),
    )
    for label, value in report["per_class"].items():
        logger.info("  %-10s %.3f", label, value)
    if args.json:
        print_json_line(
            {
                **report,
                "model": str(args.model),
                "data": str(args.data or "RNNKIT_DATA"),
            }
        )
    return 0


@_to_usage_errors
def _predict(args) -> int:
    import numpy as np
    from rnnkit.apps.voice.inference import VoiceClassifier, read_clip

    from rnnkit.cli import print_json_line
    from rnnkit.edge.audio import clip_stats

    classifier = VoiceClassifier(args.model)
    results = []
    for index, name in enumerate(args.files):
        waveform = read_clip(name, classifier.features)
        features = classifier.front_end.compute(waveform)
        posteriors = classifier.frame_posteriors(features)
        final = posteriors[-1]
        order = np.argsort(final)[::-1]
        best = classifier.labels[order[0]]
        stats = clip_stats(waveform)
        notes = [k for k in ("silent", "clipped") if stats[k]]
        logger.info(
            "%s: %s (%.2f)%s  [%s]",
            name,
            best,
            final[order[0]],
            "" if final[order[0]] >= classifier.threshold else " below threshold",
            ", ".join(f"{classifier.labels[i]} {final[i]:.2f}" for i in order[:3])
            + (f"; {' '.join(notes)} audio" if notes else ""),
        )
        results.append(
            {
                "file": name,
                "label": best,
                "score": float(final[order[0]]),
                "accepted": bool(final[order[0]] >= classifier.threshold),
                "top": {classifier.labels[i]: float(final[i]) for i in order[:3]},
            }
        )
        if index == 0 and args.png:
            from rnnkit.apps.voice.plots import plot_clip

            plot_clip(
                args.png,
                waveform,
                features,
                posteriors,
                classifier.labels,
                classifier.features,
                title=f"{Path(name).name}: {best} ({final[order[0]]:.2f})",
            )
            logger.info("Picture: %s", args.png)
    if args.json:
        print_json_line({"predictions": results, "model": str(args.model)})
    return 0


def _microphone(seconds: float, sample_rate: int):
    from rnnkit.errors import UsageError

    try:
        import sounddevice
    except ImportError as error:
        raise UsageError(
            "Microphone input needs the optional `sounddevice` package. Expected "
            "`pip install sounddevice`, or a WAV file. Received: --mic"
        ) from error
    logger.info("Recording %.1f s from the microphone...", seconds)
    recording = sounddevice.rec(
        int(seconds * sample_rate), samplerate=sample_rate, channels=1, dtype="float32"
    )
    sounddevice.wait()
    return recording.reshape(-1)


@_to_usage_errors
def _listen(args) -> int:
    from rnnkit.apps.voice.inference import VoiceClassifier, read_recording

    from rnnkit.cli import print_json_line
    from rnnkit.edge.audio import detect
    from rnnkit.errors import UsageError

    if (args.file is None) == (not args.mic):
        raise UsageError(
            "Give a WAV file or --mic (not both). Received: "
            f"file={args.file!r}, mic={args.mic}"
        )
    classifier = VoiceClassifier(args.model)
    if args.mic:
        samples = _microphone(args.seconds, classifier.features.sample_rate)
    else:
        samples = read_recording(args.file, classifier.features)
    threshold = classifier.threshold if args.threshold is None else args.threshold
    times, posteriors = classifier.stream_posteriors(samples)
    detections = detect(
        posteriors,
        times,
        classifier.labels,
        threshold=threshold,
        smoothing=args.smoothing,
    )
    seconds = samples.size / classifier.features.sample_rate
    logger.info(
        "%.1f s of audio, %d windows, %d detection(s) at threshold %.2f:",
        seconds,
        len(times),
        len(detections),
        threshold,
    )
    for detection in detections:
        logger.info(
            "  %7.2f s  %-6s %.2f", detection.time, detection.label, detection.score
        )
    if args.png:
        from rnnkit.apps.voice.plots import plot_stream

        plot_stream(
            args.png,
            samples,
            times,
            posteriors,
            classifier.labels,
            detections,
            classifier.features.sample_rate,
        )
    if args.json:
        print_json_line(
            {
                "detections": [d.to_dict() for d in detections],
                "seconds": seconds,
                "model": str(args.model),
            }
        )
    return 0


def _shipped_model() -> Path | None:
    for name in ("model_int8.tflite", "model.keras"):
        if (SHIPPED_DIR / name).is_file():
            return SHIPPED_DIR / name
    return None


def demo(out_dir: Path, data_dir: Path | None) -> None:
    """Classifies a few clips and spots commands in a short stream (int8 model).

    With data: one held-out clip per word and a stream built from held-out
    clips over held-out noise. Without: the clips and stream in examples/voice/.
    """
    import numpy as np
    from rnnkit.apps.voice.evaluate import evaluate_stream
    from rnnkit.apps.voice.inference import VoiceClassifier, read_clip, read_recording
    from rnnkit.apps.voice.plots import plot_clip, plot_stream

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = _shipped_model()
    if model_path is None:
        logger.warning("Voice demo skipped: no shipped model in %s", SHIPPED_DIR)
        return
    classifier = VoiceClassifier(model_path)
    logger.info("Voice model: %s", model_path.name)

    if data_dir is not None:
        from rnnkit.apps.voice import data as voice_data

        try:
            clips = voice_data.list_clips("test", classifier.labels, data_dir)
        except Exception as error:  # noqa: BLE001 - the demo must go on without data
            logger.warning("Speech data not usable (%s); using examples/voice", error)
            data_dir = None
    if data_dir is not None:
        by_label = {}
        for clip in clips:
            by_label.setdefault(clip.label, clip)
        chosen = [by_label[label] for label in classifier.labels if label in by_label]
        files = [c.path for c in chosen[:6]]
        truth_labels = [c.label for c in chosen[:6]]
        words = [c for c in chosen if not c.label.startswith("_")][:5]
        noise = voice_data.load_background_noise("test", data_dir)["running_tap"]
        samples, truth = voice_data.make_stream(words, noise, seed=7)
    else:
        files = sorted(EXAMPLES_DIR.glob("clip_*.wav"))
        truth_labels = [f.stem.split("_", 2)[2] for f in files]
        samples = read_recording(EXAMPLES_DIR / "stream.wav", classifier.features)
        truth = json.loads((EXAMPLES_DIR / "stream.json").read_text())["truth"]

    for index, (path, label) in enumerate(zip(files, truth_labels, strict=True)):
        waveform = read_clip(path, classifier.features)
        features = classifier.front_end.compute(waveform)
        posteriors = classifier.frame_posteriors(features)
        best = int(np.argmax(posteriors[-1]))
        logger.info(
            "  %-32s truth %-10s predicted %-10s %.2f",
            Path(path).name,
            label,
            classifier.labels[best],
            posteriors[-1][best],
        )
        if index == 0:
            plot_clip(
                out_dir / "clip.png",
                waveform,
                features,
                posteriors,
                classifier.labels,
                classifier.features,
                title=f"{label}: predicted {classifier.labels[best]}",
            )
    scores = evaluate_stream(classifier, samples, [tuple(t) for t in truth])
    logger.info(
        "Stream of %.1f s with %d commands: %d detected, %d false alarm(s)",
        samples.size / classifier.features.sample_rate,
        scores["commands"],
        scores["hits"],
        scores["false_alarms"],
    )
    for detection in scores["detections"]:
        logger.info(
            "  %6.2f s  %s (%.2f)",
            detection["time"],
            detection["label"],
            detection["score"],
        )
    times, posteriors = classifier.stream_posteriors(samples)
    from rnnkit.edge.audio import Detection

    plot_stream(
        out_dir / "stream.png",
        samples,
        times,
        posteriors,
        classifier.labels,
        [Detection(**d) for d in scores["detections"]],
        classifier.features.sample_rate,
        truth=[tuple(t) for t in truth],
    )
    logger.info(
        "Voice demo pictures: %s, %s", out_dir / "clip.png", out_dir / "stream.png"
    )
