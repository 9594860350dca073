"""The core's command-line plugin: `info`, `demo`, `task` and `bench-gradients`.

Heavy imports happen inside the handlers so that `rnnkit --help` stays fast.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import platform
from pathlib import Path

logger = logging.getLogger(__name__)

# Demo parts run in this order; a part not listed runs after these, by name.
DEMO_ORDER = ("core", "sentiment", "translation", "music", "voice")
CELLS = ("simple_rnn", "lstm", "gru")


def register(cli) -> None:
    info_parser = cli.command(
        "info", "Show versions, devices, cuDNN use and data locations.", _info
    )
    info_parser.add_argument(
        "--model", default=None, help="also check this .keras model for cuDNN use"
    )
    demo_parser = cli.command(
        "demo", "Run the suite's demonstration (every installed part).", _demo
    )
    demo_parser.add_argument("--out", default="demo_output", help="output folder")
    demo_parser.add_argument("--data", default=None, help="data folder (optional)")
    demo_parser.add_argument(
        "--only", nargs="*", default=None, help="run only these parts, e.g. core music"
    )

    task_parser = cli.command(
        "task",
        "Train one cell on a long-range task (adding problem or copy task).",
        _task,
    )
    task_parser.add_argument("task", choices=("adding", "copy"), help="which task")
    task_parser.add_argument("--cell", default="lstm", help="simple_rnn, lstm or gru")
    task_parser.add_argument("--length", type=int, default=50, help="sequence length")
    task_parser.add_argument("--samples", type=int, default=2000, help="train size")
    task_parser.add_argument("--epochs", type=int, default=10)
    task_parser.add_argument("--units", type=int, default=32)
    task_parser.add_argument("--batch-size", type=int, default=64)
    task_parser.add_argument("--learning-rate", type=float, default=3e-3)
    task_parser.add_argument("--activation", default="tanh", help="cell activation")
    task_parser.add_argument("--seed", type=int, default=0)
    task_parser.add_argument(
        "--out", default=None, help="folder for model.keras, gradients and result.json"
    )
    task_parser.add_argument(
        "--json", action="store_true", help="print the result as one JSON line"
    )

    bench_parser = cli.command(
        "bench-gradients",
        "Plot ||dL/dh_t|| over t for SimpleRNN, LSTM and GRU (vanishing gradients).",
        _bench_gradients,
    )
    bench_parser.add_argument("--length", type=int, default=100)
    bench_parser.add_argument("--task", choices=("adding", "copy"), default="adding")
    bench_parser.add_argument("--cells", nargs="+", default=list(CELLS))
    bench_parser.add_argument(
        "--epochs", type=int, default=3, help="train this long before the last record"
    )
    bench_parser.add_argument("--samples", type=int, default=1000)
    bench_parser.add_argument("--units", type=int, default=32)
    bench_parser.add_argument("--seed", type=int, default=0)
    bench_parser.add_argument(
        "--memory-bias",
        type=float,
        default=3.0,
        help="initial LSTM forget / GRU update gate bias; 0 keeps Keras' default",
    )
    bench_parser.add_argument("--out", default="gradients", help="output folder")
    bench_parser.add_argument(
        "--json", action="store_true", help="print the summary as one JSON line"
    )


def _cudnn_lines(model_path: str | None, gpus: list) -> list[str]:
    from rnnkit.cudnn import cudnn_report
    from rnnkit.layers import RecurrentStack

    lines = []
    defaults = [RecurrentStack(cell, units=8, name=cell) for cell in ("lstm", "gru")]
    eligible = all(cudnn_report(stack).eligible for stack in defaults)
    device = "GPU visible" if gpus else "no GPU visible, so the CPU kernel runs"
    lines.append(
        f"cuDNN: {device}; rnnkit's default LSTM/GRU configurations are "
        + ("cuDNN-eligible" if eligible else "NOT cuDNN-eligible")
    )
    if model_path:
        from rnnkit.models import load_model

        report = cudnn_report(load_model(model_path, compile=False))
        would = bool(gpus) and report.eligible
        lines.append(f"cuDNN for {model_path}: {report.message()}")
        lines.append(
            f"cuDNN would be used for this model here: {'yes' if would else 'no'}"
        )
    return lines


def _info(args) -> int:
    from rnnkit import __version__
    from rnnkit.data import ENV_VAR, candidate_dirs

    lines = [f"rnnkit {__version__}", f"python {platform.python_version()}"]
    for package in ("tensorflow", "keras", "ai-edge-litert", "tflite-micro", "numpy"):
        try:
            lines.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            lines.append(f"{package} not installed")
    try:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        lines.append(f"devices: CPU, {len(gpus)} GPU(s) {[g.name for g in gpus]}")
        lines.extend(_cudnn_lines(getattr(args, "model", None), gpus))
    except ImportError:
        lines.append("devices: TensorFlow not installed (edge runtime only)")
    lines.append(f"data is looked for in ({ENV_VAR} and defaults):")
    for directory in candidate_dirs():
        lines.append(
            f"  {directory} {'(found)' if directory.is_dir() else '(missing)'}"
        )
    for line in lines:
        logger.info("%s", line)
    return 0


def _demo_parts() -> list:
    entry_points = importlib.metadata.entry_points(group="rnnkit.demos")
    rank = {name: index for index, name in enumerate(DEMO_ORDER)}
    return sorted(entry_points, key=lambda e: (rank.get(e.name, len(rank)), e.name))


def _demo(args) -> int:
    from rnnkit.data import resolve_data_dir

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    data_dir = resolve_data_dir(args.data)
    logger.info(
        "Data folder: %s", data_dir or "none found (using shipped models and examples)"
    )
    for entry_point in _demo_parts():
        if args.only and entry_point.name not in args.only:
            continue
        logger.info("=== demo: %s ===", entry_point.name)
        run_part = entry_point.load()
        run_part(out_dir / entry_point.name, data_dir)
    logger.info("Demo finished; outputs are in %s", out_dir)
    return 0


def _write_json(path: Path, payload) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(payload, indent=2, sort_keys=True))
    os.replace(temporary, path)


def _task(args) -> int:
    from rnnkit.cli import print_json_line
    from rnnkit.errors import UsageError
    from rnnkit.layers import normalize_cell_name

    cell = normalize_cell_name(args.cell)
    if args.length < 7:
        raise UsageError(f"--length must be at least 7. Received: {args.length}")
    from rnnkit import diagnostics, tasks

    callbacks = []
    out_dir = Path(args.out) if args.out else None
    if out_dir is not None:
        probe = tasks.make_task_data(args.task, 32, args.length, args.seed + 1)
        callbacks.append(
            diagnostics.GradientDiagnostic(
                probe["x"],
                probe["y"],
                out_dir,
                every_n_epochs=max(1, args.epochs // 4),
                name=f"gradients_{cell}",
            )
        )
    model, result = tasks.train_on_task(
        args.task,
        cell,
        args.length,
        num_samples=args.samples,
        epochs=args.epochs,
        units=args.units,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        verbose=1,
        callbacks=callbacks,
        activation=args.activation,
    )
    logger.info(
        "%s task, %s, length %d: test accuracy %.3f (chance %.3f)",
        args.task,
        cell,
        args.length,
        result["accuracy"],
        result["chance"],
    )
    if out_dir is not None:
        from rnnkit.models import save_model

        result["model"] = str(save_model(model, out_dir / "model.keras"))
        _write_json(out_dir / "result.json", result)
        logger.info("Model, gradient plot and result.json are in %s", out_dir)
    if args.json:
        print_json_line(result)
    return 0


def bench_gradients(
    out_dir: Path,
    *,
    length: int = 100,
    task: str = "adding",
    cells=CELLS,
    epochs: int = 3,
    num_samples: int = 1000,
    units: int = 32,
    seed: int = 0,
    memory_bias: float = 3.0,
) -> dict:
    """Records ||dL/dh_t|| for each cell before and after a short training.

    Writes `gradients.png` (all cells, before and after), `gradients.json`, and
    each cell's own `gradients_<cell>.{npz,json,png}` into `out_dir`.

    `memory_bias` starts LSTM/GRU gates remembering (see
    `rnnkit.layers.memory_bias_kwargs`); 0 keeps Keras' default, with which an
    untrained LSTM's gradient also decays over a long sequence.

    Returns:
        A summary dict: per cell, the ratio ||dL/dh_0|| / ||dL/dh_T|| at each
        record and the test accuracy after training.
    """
    from rnnkit import diagnostics, tasks
    from rnnkit.layers import memory_bias_kwargs, normalize_cell_name

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    probe = tasks.make_task_data(task, 32, length, seed + 1)
    curves = {}
    summary = {
        "task": task,
        "length": length,
        "epochs": epochs,
        "memory_bias": memory_bias,
    }
    for cell in [normalize_cell_name(c) for c in cells]:
        logger.info("bench-gradients: %s on the %s task, length %d", cell, task, length)
        diagnostic = diagnostics.GradientDiagnostic(
            probe["x"],
            probe["y"],
            out_dir,
            every_n_epochs=max(1, epochs),
            name=f"gradients_{cell}",
        )
        _, result = tasks.train_on_task(
            task,
            cell,
            length,
            num_samples=num_samples,
            epochs=epochs,
            units=units,
            seed=seed,
            verbose=1,
            callbacks=[diagnostic],
            layer_kwargs=(
                memory_bias_kwargs(cell, memory_bias)
                if memory_bias and cell != "simple_rnn"
                else None
            ),
        )
        curves[f"{cell} (untrained)"] = diagnostic.norms[0]
        curves[f"{cell} (after {epochs} epochs)"] = diagnostic.norms[-1]
        summary[cell] = {
            "vanishing_ratio": [
                diagnostics.vanishing_ratio(n) for n in diagnostic.norms
            ],
            "record_epochs": diagnostic.epochs,
            "accuracy": result["accuracy"],
            "chance": result["chance"],
        }
    diagnostics.plot_gradient_curves(
        curves,
        out_dir / "gradients.png",
        title=f"||dL/dh_t|| on the {task} task, length {length}",
    )
    _write_json(out_dir / "gradients.json", summary)
    return summary


def _bench_gradients(args) -> int:
    from rnnkit.cli import print_json_line

    summary = bench_gradients(
        Path(args.out),
        length=args.length,
        task=args.task,
        cells=args.cells,
        epochs=args.epochs,
        num_samples=args.samples,
        units=args.units,
        seed=args.seed,
        memory_bias=args.memory_bias,
    )
    for cell in [key for key in summary if isinstance(summary[key], dict)]:
        ratios = ", ".join(f"{r:.2g}" for r in summary[cell]["vanishing_ratio"])
        logger.info(
            "%-10s ||dL/dh_0|| / ||dL/dh_T|| at epochs %s: %s; accuracy %.3f",
            cell,
            summary[cell]["record_epochs"],
            ratios,
            summary[cell]["accuracy"],
        )
    logger.info("Plot: %s", Path(args.out) / "gradients.png")
    if args.json:
        print_json_line(summary)
    return 0


def demo(out_dir: Path, data_dir: Path | None) -> None:
    """The core demonstration: a long-range task and the vanishing-gradient plot.

    1. Trains SimpleRNN and LSTM on the copy task (recall three symbols after
       DEMO_LENGTH steps) and reports their recall accuracy against chance.
    2. Draws ||dL/dh_t|| over t for SimpleRNN, LSTM and GRU on the adding
       problem at DEMO_GRADIENT_LENGTH steps, before and after one epoch.

    Takes a few minutes on two CPU cores; `data_dir` is not needed.
    """
    from rnnkit.layers import memory_bias_kwargs
    from rnnkit.tasks import train_on_task

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    for cell in ("simple_rnn", "lstm"):
        logger.info("Copy task, length %d: training %s", DEMO_LENGTH, cell)
        _, results[cell] = train_on_task(
            "copy",
            cell,
            DEMO_LENGTH,
            num_samples=DEMO_SAMPLES,
            epochs=DEMO_EPOCHS,
            units=24,
            verbose=1,
            layer_kwargs=None if cell == "simple_rnn" else memory_bias_kwargs(cell),
        )
    _write_json(out_dir / "copy_task.json", results)

    bench_gradients(
        out_dir,
        length=DEMO_GRADIENT_LENGTH,
        task="adding",
        epochs=1,
        num_samples=500,
    )
    for cell, result in results.items():
        logger.info(
            "Copy task, length %d, %s: recall accuracy %.2f (chance %.2f)",
            DEMO_LENGTH,
            cell,
            result["accuracy"],
            result["chance"],
        )
    logger.info("Gradient plot: %s", out_dir / "gradients.png")


DEMO_LENGTH = 40
DEMO_EPOCHS = 8
DEMO_SAMPLES = 3000
DEMO_GRADIENT_LENGTH = 100
