"""Helpers every benchmark uses to describe the machine and write its section."""

from __future__ import annotations

import datetime
import os
import platform
import sys
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine_description() -> str:
    cpus = os.cpu_count()
    try:
        import tensorflow as tf

        gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
        tf_version = tf.__version__
    except ImportError:
        gpus, tf_version = [], "not installed"
    return (
        f"{platform.machine()}, {cpus} CPU cores, GPUs: {gpus or 'none'}, "
        f"Python {platform.python_version()}, TensorFlow {tf_version}"
    )


def write_section(name: str, title: str, body: str) -> Path:
    """Writes benchmarks/results/NAME.md with the command, machine and date."""
    RESULTS_DIR.mkdir(exist_ok=True)
    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    text = (
        f"## {title}\n\n"
        f"- command: `{command}`\n"
        f"- machine: {machine_description()}\n"
        f"- date: {datetime.datetime.now().isoformat(timespec='minutes')}\n\n"
        f"{body.strip()}\n"
    )
    path = RESULTS_DIR / f"{name}.md"
    temporary = path.with_suffix(".md.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
    return path
