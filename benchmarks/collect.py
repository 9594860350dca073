"""Joins every benchmarks/results/*.md section into benchmarks/RESULTS.md.

Each benchmark script writes its own section, so that benchmarks can run
separately (and on different days) without overwriting each other.

Run: python benchmarks/collect.py
"""

import datetime
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = [
    "long_range",
    "cudnn",
    "export",
    "sentiment",
    "translation",
    "translation_baseline",
    "music",
    "voice",
]


def main() -> None:
    sections = sorted(
        (HERE / "results").glob("*.md"),
        key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else len(ORDER), p.stem),
    )
    parts = [
        "# rnnkit benchmark results\n",
        "Each section below was written by the benchmark script it names, with the "
        "command, the machine and the date of that run. Regenerate this page with "
        "`python benchmarks/collect.py` after running any benchmark.\n",
        f"_Collected {datetime.date.today().isoformat()}._\n",
    ]
    parts += [section.read_text().strip() + "\n" for section in sections]
    temporary = HERE / "RESULTS.md.tmp"
    temporary.write_text("\n".join(parts))
    os.replace(temporary, HERE / "RESULTS.md")


if __name__ == "__main__":
    main()
