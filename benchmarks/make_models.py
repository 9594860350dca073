"""Retrains the models shipped in models/<app>/ with fixed seeds (`make models`).

Each app trains into runs/models/<app>/ with the preset that produced the
shipped model, exports its int8 .tflite files, and the shippable files are then
copied over models/<app>/ (checkpoints, resume state and logs are left behind).
The hand-written models/<app>/README.md is kept.

Run: python benchmarks/make_models.py [--apps sentiment music] [--preset-override full]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger("make_models")

# The command that produced each shipped model; {out} is the run folder. The
# presets are the ones each models/<app>/README.md names.
RECIPES = {
    "sentiment": ["-m", "rnnkit.apps.sentiment.train", "--preset", "quick", "--export"],
    "translation": [
        "-m",
        "rnnkit.apps.translation.train",
        "--direction",
        "spa-eng",
        "--preset",
        "full",
    ],
    "music": [
        "-m",
        "rnnkit.apps.music.train",
        "--dataset",
        "jsb",
        "--preset",
        "full",
    ],
    "voice": ["-m", "rnnkit.apps.voice.train", "--preset", "full"],
}
# Never shipped: resume state, checkpoints and logs of the run folder.
LEFT_BEHIND = (
    "backup",
    "logs",
    "best.keras",
    "last_good",
    ".weights.h5",
    "history.csv",
)


# Per app: files too large for the repository that the run also writes.
LEFT_BEHIND_BY_APP = {
    # The float32 pair (11 MB) and the Keras model (10.5 MB) exceed the 5 MB
    # file limit; models/translation serves its int8 pair instead.
    "translation": ("_float32.", "model.keras"),
    "music": (".cc", ".h"),  # C arrays of a 1.35 MB model
}


def _shippable(path: Path, app: str) -> bool:
    markers = LEFT_BEHIND + LEFT_BEHIND_BY_APP.get(app, ())
    return path.is_file() and not any(marker in path.name for marker in markers)


def build(app: str, preset: str | None) -> None:
    run_dir = ROOT / "runs" / "models" / app
    command = [sys.executable, *RECIPES[app], "-o", str(run_dir)]
    if preset:
        command[command.index("--preset") + 1] = preset
    logger.info("[%s] %s", app, " ".join(command))
    started = time.monotonic()
    subprocess.run(command, check=True, cwd=ROOT)
    target = ROOT / "models" / app
    target.mkdir(parents=True, exist_ok=True)
    copied = 0
    for path in sorted(run_dir.iterdir()):
        if _shippable(path, app) and path.name != "README.md":
            shutil.copy2(path, target / path.name)
            copied += 1
    logger.info(
        "[%s] done in %.1f min; %d files copied to %s",
        app,
        (time.monotonic() - started) / 60,
        copied,
        target.relative_to(ROOT),
    )


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--apps", nargs="*", default=list(RECIPES), choices=list(RECIPES)
    )
    parser.add_argument(
        "--preset-override", default=None, help="train every app with this preset"
    )
    args = parser.parse_args()
    for app in args.apps:
        build(app, args.preset_override)


if __name__ == "__main__":
    main()
