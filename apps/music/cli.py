"""Command-line plugin of the music app: `rnnkit train|evaluate|generate music`.

Nothing heavy is imported at module level; the .tflite paths of `evaluate` and
`generate` import only `rnnkit.edge`, numpy, mido and matplotlib, never
TensorFlow.
"""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = REPO_ROOT / "models" / "music"
EXAMPLES_DIR = REPO_ROOT / "examples" / "music"


def register(cli) -> None:
    from rnnkit.apps.music.train import add_arguments

    parser = cli.app_command(
        "train",
        "music",
        "Train the polyphonic piano-roll model (88 sigmoids per step) and export "
        "its streaming int8 .tflite.",
        _train,
    )
    add_arguments(parser)

    parser = cli.app_command(
        "evaluate",
        "music",
        "NLL per time step and frame accuracy of a .keras or streaming .tflite model.",
        _evaluate,
    )
    parser.add_argument("model", help="model.keras or model_int8.tflite")
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--file", help="dataset file (.pickle, .mat, .mid) or a folder of MIDI files"
    )
    source.add_argument(
        "--dataset", default=None, help="a dataset name instead (jsb, nottingham, ...)"
    )
    parser.add_argument("--data", default=None, help="data folder for --dataset")
    parser.add_argument("--split", default="test", choices=["train", "valid", "test"])
    parser.add_argument("--limit", type=int, default=None, help="first N pieces only")
    parser.add_argument("--json", action="store_true", help="print one JSON line")

    parser = cli.app_command(
        "generate",
        "music",
        "Generate a continuation (or a new piece) as MIDI, with a PNG and a WAV.",
        _generate,
    )
    parser.add_argument("model", help="model.keras or model_int8.tflite")
    parser.add_argument("--primer", default=None, help="MIDI file to continue")
    parser.add_argument(
        "--primer-steps", type=int, default=None, help="use the first N primer steps"
    )
    parser.add_argument("--steps", type=int, default=64, help="steps to generate")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument(
        "--max-notes", type=int, default=4, help="cap on simultaneous notes (0: none)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--out", required=True, help="output .mid file")
    parser.add_argument("--no-wav", action="store_true")
    parser.add_argument("--no-png", action="store_true")
    parser.add_argument("--json", action="store_true", help="print one JSON line")


def _train(args) -> int:
    from rnnkit.apps.music.train import run_from_args

    return run_from_args(args)


def _evaluate(args) -> int:
    from rnnkit.apps.music.evaluate import evaluate_rolls, load_scorer, load_split

    if args.file:
        rolls = load_split(args.file, args.split)
        source = args.file
    else:
        from rnnkit.apps.music.data import load_dataset

        name = args.dataset or "jsb"
        rolls = load_dataset(name, args.data)[args.split]
        source = name
    rolls = rolls[: args.limit]
    scorer = load_scorer(args.model)
    metrics = evaluate_rolls(scorer, rolls)
    step_seconds = getattr(scorer, "step_seconds", None)
    if step_seconds:
        metrics["ms_per_step"] = round(1000 * sum(step_seconds) / len(step_seconds), 4)
    logger.info(
        "%s on %s (%s): NLL per step %.4f, frame accuracy %.4f over %d steps",
        args.model,
        source,
        args.split,
        metrics["nll_per_step"],
        metrics["frame_accuracy"],
        metrics["steps"],
    )
    if args.json:
        from rnnkit.cli import print_json_line

        print_json_line(
            {
                **metrics,
                "model": str(args.model),
                "data": str(source),
                "split": args.split,
            }
        )
    return 0


def _generate(args) -> int:
    from rnnkit.apps.music.generate import generate_files

    summary = generate_files(
        args.model,
        args.out,
        steps=args.steps,
        primer_path=args.primer,
        primer_steps=args.primer_steps,
        temperature=args.temperature,
        max_notes=args.max_notes or None,
        seed=args.seed,
        wav=not args.no_wav,
        png=not args.no_png,
    )
    if args.json:
        from rnnkit.cli import print_json_line

        print_json_line(summary)
    return 0


def shipped_model() -> Path:
    """The shipped streaming model, else the shipped Keras model."""
    for name in ("model_int8.tflite", "model.keras"):
        if (MODELS_DIR / name).is_file():
            return MODELS_DIR / name
    from rnnkit.errors import ModelFileError

    raise ModelFileError(
        f"No shipped music model found. Expected {MODELS_DIR}/model_int8.tflite "
        "(run `python -m rnnkit.apps.music.train --dataset jsb --preset full -o models/music`)."
    )


def demo(out_dir: Path, data_dir: Path | None) -> None:
    """Generates a short chorale continuation: MIDI, piano-roll PNG and WAV.

    With a data folder, the primer is the first two bars of a JSB test chorale;
    without, it is `examples/music/primer.mid` (from a music21 chorale).
    """
    import numpy as np
    from rnnkit.apps.music.generate import generate_files

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    primer = None
    primer_path = None
    if (
        data_dir is not None
        and (Path(data_dir) / "music/JSB_Chorales.pickle").is_file()
    ):
        from rnnkit.apps.music.data import load_dataset

        test = load_dataset("jsb", data_dir)["test"]
        primer = np.asarray(test[0][:8])
        source = "the first two bars of JSB test chorale 0"
    else:
        primer_path = EXAMPLES_DIR / "primer.mid"
        source = str(primer_path)
    model = shipped_model()
    summary = generate_files(
        model,
        out_dir / "continuation.mid",
        steps=48,
        primer=primer,
        primer_path=primer_path,
        temperature=1.0,
        seed=0,
    )
    logger.info(
        "Music demo: %s continued by %s (%s, %.3f ms per step); wrote %s",
        source,
        model.name,
        summary["backend"],
        1000 * (summary["seconds_per_step"] or 0.0),
        ", ".join(summary[k] for k in ("midi", "png", "wav")),
    )
