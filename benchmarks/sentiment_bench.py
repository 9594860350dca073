"""SST-2 sentiment benchmark: BiLSTM vs BiGRU, Keras vs int8 on the edge runtime.

For each cell it trains a preset (or reuses a finished run folder), exports
float32 and int8 .tflite files with real training sentences as calibration
data, and measures on the 872 SST-2 dev sentences:

* accuracy and macro-F1 of the Keras model, the float32 and the int8 file;
* file sizes (.keras, float32 .tflite, int8 .tflite) and the int8/float32 ratio;
* latency per sentence, batch 1, one thread: the edge runtime (LiteRT) and
  Keras (TensorFlow limited to one thread), median over the dev sentences.

Writes benchmarks/results/sentiment.md. Full size (what the issue's targets
ask for; about 15-30 minutes per cell on two free cores):

    python benchmarks/sentiment_bench.py --presets full quick --cells lstm gru

Add `--ship PRESET_CELL` (e.g. quick_lstm) to copy that run into models/sentiment/.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_section  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


def _latency_ms(function, inputs, repeats: int = 1) -> float:
    times = []
    for x in inputs:
        start = time.perf_counter()
        for _ in range(repeats):
            function(x)
        times.append((time.perf_counter() - start) / repeats)
    return 1000 * float(np.median(times))


def _evaluate(classifier, dev) -> dict:
    from rnnkit.apps.sentiment.evaluate import classification_metrics, map_labels

    y = map_labels(dev.labels, classifier.labels)
    return classification_metrics(
        y, classifier.predict_proba(dev.texts), classifier.labels
    )


def bench_cell(preset_name: str, cell: str, args, dev) -> dict:
    import keras
    from rnnkit.apps.sentiment.export import export_run
    from rnnkit.apps.sentiment.predict import EdgeClassifier, KerasClassifier
    from rnnkit.apps.sentiment.train import get_preset, train

    run_dir = Path(args.runs) / f"{preset_name}_{cell}"
    changes = {"cell": cell}
    if args.epochs:
        changes["epochs"] = args.epochs
    if args.max_examples:
        changes["max_examples"] = args.max_examples
    preset = get_preset(preset_name).replace(**changes)
    if args.reuse and (run_dir / "metrics.json").is_file():
        train_metrics = json.loads((run_dir / "metrics.json").read_text())
    else:
        train_metrics = train(preset, run_dir, verbose=2)

    results = {"cell": cell, "preset": preset.name, "train": train_metrics}
    files = {}
    for quantize in ("float32", "int8"):
        path = run_dir / f"model_{quantize}.tflite"
        if not (args.reuse and path.is_file()):
            export_run(run_dir, quantize)
        files[quantize] = path

    keras_classifier = KerasClassifier(run_dir / "model.keras")
    results["keras"] = _evaluate(keras_classifier, dev)
    sample = [
        keras_classifier.encode([t])[0] for t in dev.texts[: args.latency_sentences]
    ]
    batch_one = [np.asarray([ids], np.int32) for ids in sample]
    model = keras_classifier.model
    # predict_on_batch runs the compiled predict function (retracing relaxed to a
    # dynamic length after a few shapes), the fair counterpart of an interpreter.
    for x in batch_one[:20]:
        model.predict_on_batch(x)
    results["keras_ms"] = _latency_ms(model.predict_on_batch, batch_one)
    for quantize, path in files.items():
        edge = EdgeClassifier(path)
        results[quantize] = _evaluate(edge, dev)
        edge.model.run(batch_one[0])
        results[f"{quantize}_ms"] = _latency_ms(edge.model.run, batch_one)
        results[f"{quantize}_bytes"] = path.stat().st_size
        manifest = json.loads(path.with_name(path.stem + ".manifest.json").read_text())
        results[f"{quantize}_ops"] = manifest.get("ops", [])
    results["keras_bytes"] = (run_dir / "model.keras").stat().st_size
    results["parameters"] = int(model.count_params())
    keras.backend.clear_session()
    return results


def _table(rows: list[dict]) -> str:
    lines = [
        "| cell | preset | epochs | train s | Keras acc | Keras F1 | float32 acc | int8 acc "
        "| int8 - Keras (points) | params | .keras KB | float32 KB | int8 KB | int8/float32 "
        "| Keras ms/sent | float32 ms/sent | int8 ms/sent |",
        "|" + "---|" * 17,
    ]
    for r in rows:
        delta = 100 * (r["int8"]["accuracy"] - r["keras"]["accuracy"])
        lines.append(
            f"| Bi{r['cell'].upper()} | {r['preset']} | {r['train']['preset']['epochs']} "
            f"| {r['train']['train_seconds']:.0f} "
            f"| {100 * r['keras']['accuracy']:.2f} | {r['keras']['macro_f1']:.4f} "
            f"| {100 * r['float32']['accuracy']:.2f} | {100 * r['int8']['accuracy']:.2f} "
            f"| {delta:+.2f} | {r['parameters']:,} | {r['keras_bytes'] / 1024:.0f} "
            f"| {r['float32_bytes'] / 1024:.0f} | {r['int8_bytes'] / 1024:.0f} "
            f"| {r['int8_bytes'] / r['float32_bytes']:.3f} | {r['keras_ms']:.2f} "
            f"| {r['float32_ms']:.2f} | {r['int8_ms']:.2f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["full"])
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru"])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--max-examples", type=int, default=None)
    parser.add_argument("--runs", default="runs/sentiment_bench", help="run folders")
    parser.add_argument(
        "--reuse", action="store_true", help="reuse finished runs and exports"
    )
    parser.add_argument("--latency-sentences", type=int, default=200)
    parser.add_argument(
        "--note",
        default="",
        help="a sentence on the conditions of this run (machine load, reused runs)",
    )
    parser.add_argument(
        "--ship", default=None, help="copy this cell's run to models/sentiment"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import tensorflow as tf

    # One thread for both runtimes, so that the latency columns compare like with like.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    from rnnkit.apps.sentiment.data import load_sst2

    dev = load_sst2("dev")
    rows = [
        bench_cell(preset, cell, args, dev)
        for preset in args.presets
        for cell in args.cells
    ]
    for row in rows:
        print(
            json.dumps({k: v for k, v in row.items() if k != "train"}, default=str)[
                :400
            ]
        )

    size_note = (
        f"Run at: presets {', '.join(f'`{p}`' for p in args.presets)}"
        + (f", epochs {args.epochs}" if args.epochs else "")
        + (f", {args.max_examples} training examples" if args.max_examples else "")
        + "."
        + (f" {args.note}" if args.note else "")
    )
    best = max(rows, key=lambda r: r["keras"]["accuracy"])

    def name(r):
        return f"{r['preset']} Bi{r['cell'].upper()}"

    body = "\n\n".join(
        [
            size_note,
            "Dev = the 872 SST-2 dev sentences (`stsa.binary.dev`); training data = the "
            "GLUE SST-2 phrases plus the sentence-level train set. Latency: one "
            "sentence at a time (batch 1, exact length, one thread), median over "
            f"{args.latency_sentences} dev sentences.",
            _table(rows),
            f"Best: {name(best)} at {100 * best['keras']['accuracy']:.2f}% "
            f"(target 86%: {'met' if best['keras']['accuracy'] >= 0.86 else 'not met'}). "
            "int8 within 0.5 points of Keras: "
            + ", ".join(
                f"{name(r)} "
                f"{'yes' if abs(r['int8']['accuracy'] - r['keras']['accuracy']) <= 0.005 else 'no'}"
                for r in rows
            )
            + "; int8 file <= 0.30x float32: "
            + ", ".join(
                f"{name(r)} "
                f"{'yes' if r['int8_bytes'] <= 0.30 * r['float32_bytes'] else 'no'}"
                for r in rows
            )
            + ".",
            "Ops (int8): "
            + "; ".join(f"{name(r)}: {', '.join(r['int8_ops'])}" for r in rows),
        ]
    )
    path = write_section("sentiment", "Sentiment (SST-2, many-to-one)", body)
    print(f"wrote {path}")

    if args.ship:
        source = Path(args.runs) / args.ship
        target = REPO_ROOT / "models" / "sentiment"
        target.mkdir(parents=True, exist_ok=True)
        for name in (
            "model.keras",
            "vocabulary.json",
            "sentiment.json",
            "metrics.json",
            "representative.npy",
            "model_int8.tflite",
            "model_int8.manifest.json",
            "model_int8.parity.json",
            "confusion_matrix.png",
            "training_curves.png",
        ):
            if (source / name).is_file():
                shutil.copy2(source / name, target / name)
        print(f"shipped {source} to {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
