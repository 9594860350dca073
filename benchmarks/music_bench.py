"""Music benchmark: NLL per time step on JSB Chorales (and Nottingham), GRU vs LSTM,
and the streaming int8 .tflite against Keras (NLL gap, time per generated step,
TFLite Micro).

Small run (what fits on a loaded machine; reuses an already trained JSB model):

    python benchmarks/music_bench.py --reuse models/music --preset shipped \
        --max-minutes 6 --datasets jsb nottingham --cells gru lstm

Full size (the issue's target: JSB test NLL <= 8.4 in under an hour on 2 cores):

    python benchmarks/music_bench.py --preset full --datasets jsb nottingham \
        --cells gru lstm
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_section  # noqa: E402


def _train(dataset, cell, preset_name, max_minutes, run_dir, splits):
    from rnnkit.apps.music.train import get_preset, train

    preset = get_preset(preset_name, cell=cell, max_minutes=max_minutes)
    return train(dataset, preset, run_dir, splits=splits, verbose=2)


def _form(preset: dict) -> str:
    """' x4 ensemble, refit on train+valid' and the like, from a run's preset."""
    members = preset.get("members", 1)
    text = f" x{members} ensemble" if members > 1 else ""
    if preset.get("refit"):
        text += (
            ", " if text else " "
        ) + "refit on train+valid (valid NLL not held out)"
    return text


def _edge_figures(run_dir: Path, splits, micro: bool, work: Path) -> dict:
    """Exports the streaming int8 model (into `work`) and compares it with Keras."""
    import numpy as np
    from rnnkit.apps.music.evaluate import evaluate_rolls, load_scorer
    from rnnkit.apps.music.export import export_streaming
    from rnnkit.apps.music.generate import generate_roll, load_generator

    # A fresh export beside the benchmark's other files, so a reused model folder
    # (models/music) is never rewritten.
    tflite = work / "jsb_streaming_int8.tflite"
    result = export_streaming(
        run_dir / "model.keras", tflite, splits["train"], micro=micro
    )
    micro_runs = result.parity.get("runs_in_tflite_micro")
    keras_metrics = evaluate_rolls(load_scorer(run_dir / "model.keras"), splits["test"])
    scorer = load_scorer(tflite)
    edge_metrics = evaluate_rolls(scorer, splits["test"])
    generator = load_generator(tflite)
    started = time.perf_counter()
    generate_roll(generator, 200, seed=0)
    per_step = (time.perf_counter() - started) / 201
    return {
        "keras": keras_metrics,
        "int8": edge_metrics,
        "nll_gap": round(
            abs(edge_metrics["nll_per_step"] - keras_metrics["nll_per_step"]), 4
        ),
        "ms_per_generated_step": round(1000 * per_step, 3),
        "ms_per_scored_step": round(1000 * float(np.mean(scorer.step_seconds)), 3),
        "size_bytes": tflite.stat().st_size,
        "runs_in_tflite_micro": micro_runs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="shipped")
    parser.add_argument("--datasets", nargs="+", default=["jsb", "nottingham"])
    parser.add_argument("--cells", nargs="+", default=["gru", "lstm"])
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument(
        "--reuse", default=None, help="an existing JSB GRU run folder (model.keras)"
    )
    parser.add_argument("--data", default=None)
    parser.add_argument("--no-micro", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from rnnkit.apps.music.data import load_dataset

    rows = []
    edge = None
    work = Path(tempfile.mkdtemp(prefix="music_bench_"))
    for dataset in args.datasets:
        splits = load_dataset(dataset, args.data)
        for cell in args.cells:
            reuse = args.reuse and dataset == "jsb" and cell == "gru"
            if reuse:
                run_dir = Path(args.reuse)
                metrics = json.loads((run_dir / "metrics.json").read_text())
            else:
                run_dir = work / f"{dataset}_{cell}"
                metrics = _train(
                    dataset, cell, args.preset, args.max_minutes, run_dir, splits
                )
            rows.append(
                {
                    "dataset": dataset,
                    "cell": cell,
                    "reused": bool(reuse),
                    "units": metrics["preset"]["units"],
                    "dropout": "{dropout}/{input_dropout}".format(**metrics["preset"]),
                    "epochs": metrics["epochs_run"],
                    "minutes": round(metrics["train_seconds"] / 60, 1),
                    "valid": metrics["valid"]["nll_per_step"],
                    "test": metrics["test"]["nll_per_step"],
                    "acc": metrics["test"]["frame_accuracy"],
                    "form": _form(metrics["preset"]),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
            edge_cell = "gru" if "gru" in args.cells else args.cells[0]
            if dataset == "jsb" and cell == edge_cell and edge is None:
                edge = _edge_figures(run_dir, splits, not args.no_micro, work)
                print(json.dumps(edge), flush=True)

    lines = [
        f"Preset `{args.preset}`"
        + (f", capped at {args.max_minutes} min per model" if args.max_minutes else "")
        + (
            f" for the trained rows; the reused JSB run ({args.reuse}) keeps its own"
            " recipe (its row says which)"
            if args.reuse
            else ""
        )
        + ". NLL per time step: nats, summed over the 88 keys, mean over every time "
        "step of the split. Published JSB test figures: GRU 8.54, LSTM 8.67 "
        "(Chung et al. 2014); LSTM 8.45, GRU 8.43 (Bai et al. 2018). Target: <= 8.4.",
        "",
        "| dataset | cell | units | dropout/input | epochs | train min | valid NLL "
        "| test NLL | test frame acc |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        note = row["form"] + (" (shipped model)" if row["reused"] else "")
        lines.append(
            f"| {row['dataset']} | {row['cell']}{note} | {row['units']} | {row['dropout']} "
            f"| {row['epochs']} "
            f"| {row['minutes']} | {row['valid']:.3f} | {row['test']:.3f} | {row['acc']:.3f} |"
        )
    if edge:
        lines += [
            "",
            "Streaming int8 .tflite (one step per call, state in/out) vs Keras, JSB test set:",
            "",
            f"- Keras test NLL {edge['keras']['nll_per_step']:.4f}, int8 streaming "
            f"{edge['int8']['nll_per_step']:.4f}: gap {edge['nll_gap']:.4f} (target < 0.1)",
            f"- frame accuracy: Keras {edge['keras']['frame_accuracy']:.4f}, int8 "
            f"{edge['int8']['frame_accuracy']:.4f}",
            f"- time per generated step (LiteRT interpreter + numpy sampling, 1 thread): "
            f"{edge['ms_per_generated_step']} ms; per scored step {edge['ms_per_scored_step']} ms",
            f"- file size: {edge['size_bytes']} bytes; runs in TFLite Micro: "
            f"{edge['runs_in_tflite_micro']}",
        ]
    path = write_section(
        "music", "Music: polyphonic piano-roll models", "\n".join(lines)
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
