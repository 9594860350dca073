"""Command-line plugin of the sentiment app and its demo part.

    rnnkit train sentiment [--preset quick|full] [--data DIR] -o RUN/
    rnnkit evaluate sentiment MODEL(.keras|.tflite) --file PATH [--json]
    rnnkit predict sentiment MODEL "text" ...      (or one text a line on stdin)

Heavy imports happen inside the handlers: `predict`/`evaluate` on a .tflite
file use the edge runtime only and never load TensorFlow.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_SENTENCES = (
    "A gorgeous, witty and deeply moving film.",
    "It's a dull, lifeless mess that never earns its two hours.",
    "The acting isn't bad, but the script is painfully predictable.",
    "One of the best films of the year!",
)


def register(cli) -> None:
    train = cli.app_command(
        "train",
        "sentiment",
        "Train the SST-2 sentiment classifier (embedding + bidirectional RNN).",
        _train,
    )
    train.add_argument(
        "--preset", default="quick", choices=["quick", "compact", "full"]
    )
    train.add_argument(
        "--data", default=None, help="data folder (default: RNNKIT_DATA)"
    )
    train.add_argument("-o", "--out", required=True, help="run folder to write")
    train.add_argument(
        "--cell",
        choices=["lstm", "gru"],
        default=None,
        help="override the preset's cell",
    )
    train.add_argument(
        "--epochs", type=int, default=None, help="override the preset's epochs"
    )
    train.add_argument(
        "--train-file",
        default=None,
        help="your own CSV/TSV/JSONL of (text, label) to train on",
    )
    train.add_argument(
        "--dev-file",
        default=None,
        help="dev file (default: SST-2 dev, or a tenth of --train-file)",
    )
    train.add_argument(
        "--max-examples",
        type=int,
        default=None,
        help="train on a random subset of this size",
    )

    evaluate = cli.app_command(
        "evaluate",
        "sentiment",
        "Accuracy and macro-F1 of a model on a labelled file.",
        _evaluate,
    )
    evaluate.add_argument("model", help="model.keras, a .tflite file, or a run folder")
    evaluate.add_argument(
        "--file",
        default="sst2-dev",
        help="CSV/TSV/JSONL/SST file, or sst2-dev (default), sst2-train, glue-dev",
    )
    evaluate.add_argument("--data", default=None, help="data folder for the named sets")
    evaluate.add_argument(
        "--vocab", default=None, help="vocabulary file (must match the model)"
    )
    evaluate.add_argument("--encoding", default="utf-8", help="text encoding of --file")
    evaluate.add_argument("--text-column", default=None)
    evaluate.add_argument("--label-column", default=None)
    evaluate.add_argument(
        "--out", default=None, help="write metrics JSON and the confusion PNG here"
    )
    evaluate.add_argument(
        "--json", action="store_true", help="print one JSON line at the end"
    )

    predict = cli.app_command(
        "predict",
        "sentiment",
        "Classify texts given as arguments or on stdin.",
        _predict,
    )
    predict.add_argument("model", help="model.keras, a .tflite file, or a run folder")
    predict.add_argument(
        "texts", nargs="*", help="texts; none: read one text a line from stdin"
    )
    predict.add_argument(
        "--vocab", default=None, help="vocabulary file (must match the model)"
    )
    predict.add_argument("--encoding", default="utf-8", help="text encoding of stdin")
    predict.add_argument("--json", action="store_true", help="one JSON object per text")


def _train(args) -> int:
    from rnnkit.apps.sentiment.train import get_preset, train

    preset = get_preset(args.preset)
    changes = {
        "cell": args.cell,
        "epochs": args.epochs,
        "max_examples": args.max_examples,
    }
    preset = preset.replace(**{k: v for k, v in changes.items() if v})
    metrics = train(
        preset,
        args.out,
        data_dir=args.data,
        train_file=args.train_file,
        dev_file=args.dev_file,
    )
    logger.info(
        "dev accuracy %.4f, macro-F1 %.4f; wrote %s",
        metrics["accuracy"],
        metrics["macro_f1"],
        Path(args.out) / "model.keras",
    )
    return 0


def _evaluate(args) -> int:
    from rnnkit.apps.sentiment.data import load_file, load_named
    from rnnkit.apps.sentiment.evaluate import (
        classification_metrics,
        map_labels,
        plot_confusion_matrix,
    )
    from rnnkit.apps.sentiment.predict import load_classifier

    from rnnkit.cli import print_json_line

    classifier = load_classifier(args.model, args.vocab)
    if Path(args.file).exists() and (
        args.encoding != "utf-8" or args.text_column or args.label_column
    ):
        examples = load_file(
            args.file, args.text_column, args.label_column, args.encoding
        )
    else:
        examples = load_named(args.file, args.data)
    y_true = map_labels(examples.labels, classifier.labels)
    probabilities = classifier.predict_proba(examples.texts)
    metrics = classification_metrics(y_true, probabilities, classifier.labels)
    logger.info(
        "%s on %s (%d examples): accuracy %.4f, macro-F1 %.4f, loss %.4f",
        Path(args.model).name,
        examples.source,
        metrics["examples"],
        metrics["accuracy"],
        metrics["macro_f1"],
        metrics["loss"],
    )
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        temporary = out / "metrics.json.tmp"
        temporary.write_text(json.dumps(metrics, indent=2), encoding="utf-8")
        os.replace(temporary, out / "metrics.json")
        plot_confusion_matrix(
            metrics["confusion_matrix"], classifier.labels, out / "confusion_matrix.png"
        )
        logger.info("Wrote %s", out / "metrics.json")
    if args.json:
        print_json_line({**metrics, "model": str(args.model), "data": examples.source})
    return 0


def _read_stdin(encoding: str) -> list[str]:
    from rnnkit.edge.text import VocabularyError, decode_text_bytes
    from rnnkit.errors import UsageError

    try:
        text = decode_text_bytes(sys.stdin.buffer.read(), encoding)
    except VocabularyError as error:
        raise UsageError(f"stdin: {error}") from None
    # Blank lines are skipped: there is nothing in them to classify.
    return [line for line in text.splitlines() if line.strip()]


def _predict(args) -> int:
    from rnnkit.apps.sentiment.predict import load_classifier

    from rnnkit.errors import UsageError

    texts = list(args.texts) or _read_stdin(args.encoding)
    if not texts:
        raise UsageError(
            "No text to classify. Expected texts as arguments or one per line on stdin."
        )
    classifier = load_classifier(args.model, args.vocab)
    for text, (label, probability) in zip(
        texts, classifier.predict(texts), strict=True
    ):
        if args.json:
            sys.stdout.write(
                json.dumps({"text": text, "label": label, "probability": probability})
                + "\n"
            )
        else:
            sys.stdout.write(f"{label}\t{probability:.4f}\t{text}\n")
    sys.stdout.flush()
    return 0


def demo(out_dir: Path, data_dir: Path | None) -> None:
    """With data: train the quick preset, export int8, classify on the edge runtime.

    Without data: classify the example sentences with the shipped int8 model.
    """
    from rnnkit.apps.sentiment.predict import EdgeClassifier

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    examples = REPO_ROOT / "examples" / "sentiment" / "sentences.txt"
    sentences = list(DEMO_SENTENCES)
    if examples.is_file():
        sentences = [
            s for s in examples.read_text(encoding="utf-8").splitlines() if s.strip()
        ]
    if data_dir is not None:
        from rnnkit.apps.sentiment.export import export_run
        from rnnkit.apps.sentiment.train import get_preset, train

        run_dir = out_dir / "run"
        metrics = train(get_preset("quick"), run_dir, data_dir=data_dir, verbose=2)
        logger.info("quick preset: dev accuracy %.2f%%", 100 * metrics["accuracy"])
        model_path = export_run(run_dir, "int8").path
    else:
        model_path = REPO_ROOT / "models" / "sentiment" / "model_int8.tflite"
        logger.info("No data folder: using the shipped model %s", model_path)
    classifier = EdgeClassifier(model_path)
    lines = []
    for text, (label, probability) in zip(
        sentences, classifier.predict(sentences), strict=True
    ):
        lines.append(f"{label}\t{probability:.3f}\t{text}")
        logger.info("  %-8s %.3f  %s", label, probability, text)
    (out_dir / "predictions.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
