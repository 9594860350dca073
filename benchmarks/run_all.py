"""Runs every benchmark at its documented size, then rewrites RESULTS.md (`make bench`).

Each script writes its own section in benchmarks/results/; `collect.py` joins
them. This takes several hours on 2 CPU cores; run one script alone to refresh
one section.

Run: python benchmarks/run_all.py [--only export music]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

BENCHMARKS = {
    "long_range": [
        "long_range_bench.py",
        "--samples",
        "6000",
        "--epochs",
        "20",
        "--units",
        "32",
        "--lengths",
        "10",
        "40",
        "100",
    ],
    "cudnn": ["cudnn_bench.py"],
    "export": ["export_bench.py"],
    "sentiment": [
        "sentiment_bench.py",
        "--presets",
        "full",
        "quick",
        "--cells",
        "lstm",
        "gru",
    ],
    "translation": [
        "translation_bench.py",
        "--model",
        "models/translation",
        "--sentences",
        "500",
        "--device-sentences",
        "100",
    ],
    "music": [
        "music_bench.py",
        "--preset",
        "full",
        "--datasets",
        "jsb",
        "nottingham",
        "--cells",
        "gru",
        "lstm",
    ],
    "voice": ["voice_bench.py", "--run", "models/voice", "--baseline"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", nargs="*", default=list(BENCHMARKS), choices=list(BENCHMARKS)
    )
    args = parser.parse_args()
    for name in args.only:
        script, *options = BENCHMARKS[name]
        subprocess.run(
            [sys.executable, str(HERE / script), *options], check=True, cwd=HERE.parent
        )
    subprocess.run([sys.executable, str(HERE / "collect.py")], check=True)


if __name__ == "__main__":
    main()
