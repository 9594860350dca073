"""SimpleRNN vs LSTM vs GRU on long-range tasks, over several sequence lengths.

Trains a fresh model per (task, cell, length) with `rnnkit.tasks.train_on_task`
and measures it on a held-out set from another seed. Writes the table to
`benchmarks/results/long_range.md` and the plot to
`benchmarks/results/long_range.png`.

Run (the size used for the results section, about 10-15 minutes on 2 busy
CPU cores):

    .venv/bin/python benchmarks/long_range_bench.py

Larger runs: `--lengths 25 50 100 200 --samples 10000 --epochs 30`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS_DIR, write_section  # noqa: E402


def _plot(rows, path: Path, tasks) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(
        1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False
    )
    for axis, task in zip(axes[0], tasks, strict=True):
        task_rows = [row for row in rows if row["task"] == task]
        for cell in sorted({row["cell"] for row in task_rows}):
            points = sorted(
                (row["length"], row["accuracy"])
                for row in task_rows
                if row["cell"] == cell
            )
            axis.plot(*zip(*points, strict=True), marker="o", label=cell)
        if task_rows:
            axis.axhline(
                task_rows[0]["chance"], color="grey", linestyle=":", label="chance"
            )
        axis.set_xlabel("sequence length")
        axis.set_ylabel("test accuracy")
        axis.set_ylim(0, 1.02)
        axis.set_title(f"{task} task")
        axis.legend()
    figure.tight_layout()
    temporary = path.with_name(path.stem + ".tmp.png")
    figure.savefig(temporary, dpi=100)
    plt.close(figure)
    os.replace(temporary, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["adding", "copy"])
    parser.add_argument("--cells", nargs="+", default=["simple_rnn", "lstm", "gru"])
    parser.add_argument("--lengths", nargs="+", type=int, default=[10, 40])
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument(
        "--memory-bias",
        type=float,
        default=3.0,
        help="initial LSTM forget / GRU update gate bias (0: Keras' default)",
    )
    parser.add_argument("--units", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=14.0,
        help="start no new run after this much time (skipped runs are listed)",
    )
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from rnnkit.layers import memory_bias_kwargs
    from rnnkit.tasks import train_on_task

    started = time.monotonic()
    rows, skipped = [], []
    for task in args.tasks:
        for length in args.lengths:
            for cell in args.cells:
                if time.monotonic() - started > 60 * args.max_minutes:
                    skipped.append(f"{task}/{cell}/{length}")
                    continue
                run_start = time.monotonic()
                _, result = train_on_task(
                    task,
                    cell,
                    length,
                    num_samples=args.samples,
                    epochs=args.epochs,
                    units=args.units,
                    seed=args.seed,
                    layer_kwargs=(
                        memory_bias_kwargs(cell, args.memory_bias)
                        if args.memory_bias and cell != "simple_rnn"
                        else None
                    ),
                )
                result["seconds"] = time.monotonic() - run_start
                rows.append(result)
                print(
                    f"{task:7s} {cell:10s} length {length:4d}: accuracy "
                    f"{result['accuracy']:.3f} (chance {result['chance']:.3f}), "
                    f"loss {result['train_loss']:.4f}, {result['seconds']:.0f}s",
                    flush=True,
                )

    RESULTS_DIR.mkdir(exist_ok=True)
    plot_path = RESULTS_DIR / "long_range.png"
    _plot(rows, plot_path, args.tasks)
    (RESULTS_DIR / "long_range.json").write_text(json.dumps(rows, indent=2))

    lines = [
        f"Each cell: {args.units} units, {args.samples} training sequences, "
        f"{args.epochs} epochs, Adam 3e-3 with clipnorm 1, batch 64, seed {args.seed}, "
        f"LSTM forget / GRU update gate bias initialised to {args.memory_bias} "
        "(0 = Keras default); test accuracy on "
        "a held-out set from another seed. Adding: fraction of predictions within 0.04 "
        "of the true sum (input-blind guess: always 1.0). Copy: recall accuracy of 3 "
        "symbols from a 4-letter alphabet after the whole sequence (chance 0.25).",
        "",
        "| task | length | " + " | ".join(args.cells) + " | chance |",
        "| --- | --- | " + " | ".join("---" for _ in args.cells) + " | --- |",
    ]
    for task in args.tasks:
        for length in args.lengths:
            cells = {
                r["cell"]: r
                for r in rows
                if r["task"] == task and r["length"] == length
            }
            if not cells:
                continue
            chance = next(iter(cells.values()))["chance"]
            values = [
                f"{cells[c]['accuracy']:.3f}" if c in cells else "not run"
                for c in args.cells
            ]
            lines.append(
                f"| {task} | {length} | " + " | ".join(values) + f" | {chance:.3f} |"
            )
    total = sum(r["seconds"] for r in rows)
    lines += [
        "",
        f"Total training time {total / 60:.1f} min. Plot: `benchmarks/results/long_range.png`.",
    ]
    if skipped:
        lines.append(
            f"Not run (time budget of {args.max_minutes} min reached): {', '.join(skipped)}."
        )
    lines += [
        "",
        "This is a small, short run sized for a shared 2-core machine: read it as "
        "the trend at this training budget, not as the best each cell can do "
        "(longer training was not measured here).",
    ]
    path = write_section(
        "long_range", "Long-range tasks: SimpleRNN vs LSTM vs GRU", "\n".join(lines)
    )
    print(f"wrote {path} and {plot_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
