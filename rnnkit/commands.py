"""The core's command-line plugin: `rnnkit info` and `rnnkit demo`.

Heavy imports happen inside the handlers so that `rnnkit --help` stays fast.
"""

from __future__ import annotations

import importlib.metadata
import logging
import platform
from pathlib import Path

logger = logging.getLogger(__name__)

# Demo parts run in this order; a part not listed runs after these, by name.
DEMO_ORDER = ("core", "sentiment", "translation", "music", "voice")


def register(cli) -> None:
    cli.command("info", "Show versions, devices, cuDNN use and data locations.", _info)
    demo_parser = cli.command(
        "demo", "Run the suite's demonstration (every installed part).", _demo
    )
    demo_parser.add_argument("--out", default="demo_output", help="output folder")
    demo_parser.add_argument("--data", default=None, help="data folder (optional)")
    demo_parser.add_argument(
        "--only", nargs="*", default=None, help="run only these parts, e.g. core music"
    )


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
        lines.append(
            "cuDNN kernels: "
            + ("used for eligible layers" if gpus else "not used (no GPU visible)")
        )
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


def demo(out_dir: Path, data_dir: Path | None) -> None:
    """The core's demo part; extended by the core issue's long-range task demo."""
    out_dir.mkdir(parents=True, exist_ok=True)
    logger.info("Core demo: nothing yet beyond `rnnkit info`.")
