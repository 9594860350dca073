"""Command-line plugin of the translation app.

    rnnkit train translation --direction spa-eng [--preset quick|small|full] -o RUN/
    rnnkit evaluate translation MODEL --source FILE --reference FILE [--beam N] [--json]
    rnnkit translate MODEL "texto" [--beam N] [--attention-png PATH]

MODEL is a run folder, `models/translation`, a `.keras` file, or an
encoder/decoder `.tflite` file; `.tflite` runs on the edge runtime only.
Heavy imports happen inside the handlers.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_DIR = REPO_ROOT / "models" / "translation"
EXAMPLES_DIR = REPO_ROOT / "examples" / "translation"


def register(cli) -> None:
    from rnnkit.apps.translation.train import add_train_arguments

    parser = cli.app_command(
        "train", "translation", "Train a Spanish<->English translator.", _train
    )
    add_train_arguments(parser)

    parser = cli.app_command(
        "evaluate",
        "translation",
        "BLEU and chrF of a translator on aligned source/reference files.",
        _evaluate,
    )
    parser.add_argument("model", help="run folder, .keras or encoder/decoder .tflite")
    parser.add_argument("--source", help="source sentences, one a line")
    parser.add_argument("--reference", help="reference translations, aligned")
    parser.add_argument(
        "--split",
        choices=("valid", "test"),
        default=None,
        help="score on this part of the spa.txt split instead of files",
    )
    parser.add_argument("--limit", type=int, default=None, help="first N sentences")
    parser.add_argument("--data", default=None, help="data folder for --split")
    _decoding_arguments(parser)
    parser.add_argument("--out", default=None, help="write hypotheses and scores here")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")

    parser = cli.command(
        "translate", "Translate sentences with a trained translator.", _translate
    )
    parser.add_argument("model", help="run folder, .keras or encoder/decoder .tflite")
    parser.add_argument("text", nargs="+", help='sentences, or "-" to read stdin')
    _decoding_arguments(parser)
    parser.add_argument(
        "--attention-png", default=None, help="heatmap of the (first) translation"
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON line")


def _decoding_arguments(parser) -> None:
    parser.add_argument(
        "--beam", type=int, default=1, help="beam width (1: greedy decoding)"
    )
    parser.add_argument(
        "--alpha", type=float, default=0.6, help="length penalty exponent for beams"
    )


def _check_beam(beam: int) -> None:
    from rnnkit.errors import UsageError

    if beam < 1:
        raise UsageError(f"--beam must be 1 or more. Received: --beam {beam}")


def _train(args) -> int:
    from rnnkit.apps.translation.train import run_from_args

    metrics = run_from_args(args)
    logger.info("BLEU %.2f, chrF %.2f on valid", metrics["bleu"], metrics["chrf"])
    return 0


def _evaluate(args) -> int:
    from rnnkit.apps.translation import evaluate as evaluate_lib
    from rnnkit.apps.translation.runtime import load_translator

    from rnnkit.cli import print_json_line
    from rnnkit.errors import UsageError

    _check_beam(args.beam)
    translator = load_translator(args.model)
    if args.split:
        from rnnkit.apps.translation.data import load_split

        pairs = load_split(translator.metadata["direction"], args.data)[args.split]
        data = f"spa.txt {args.split} split"
    elif args.source and args.reference:
        from rnnkit.apps.translation.data import read_parallel

        pairs = read_parallel(args.source, args.reference)
        data = f"{args.source} | {args.reference}"
    else:
        raise UsageError(
            "Nothing to evaluate on. Expected --source FILE --reference FILE, or "
            f"--split valid|test. Received: --source {args.source} --reference "
            f"{args.reference}"
        )
    if args.limit:
        pairs = pairs[: args.limit]
    result = evaluate_lib.score(
        translator, pairs, args.beam, args.alpha, batch=True, progress=True
    )
    hypotheses = result.pop("hypotheses")
    if args.out:
        out = Path(args.out)
        temporary = out.with_name(out.name + ".tmp")
        temporary.write_text("\n".join(hypotheses) + "\n", encoding="utf-8")
        temporary.replace(out)
    logger.info(
        "BLEU %.2f  chrF %.2f  (%d sentences, %s, beam %d)",
        result["bleu"],
        result["chrf"],
        result["sentences"],
        translator.backend,
        args.beam,
    )
    if args.json:
        print_json_line(
            {
                **result,
                "beam": args.beam,
                "backend": translator.backend,
                "model": str(args.model),
                "data": data,
            }
        )
    return 0


def _translate(args) -> int:
    from rnnkit.apps.translation.runtime import load_translator

    from rnnkit.cli import print_json_line

    _check_beam(args.beam)
    texts = args.text
    if texts == ["-"]:
        texts = [line for line in sys.stdin.read().splitlines() if line.strip()]
    translator = load_translator(args.model)
    results = []
    for index, text in enumerate(texts):
        translation = translator.translate(text, args.beam, args.alpha)
        sys.stdout.write(translation.text + "\n")
        if translation.unknown:
            logger.info("  unknown source words: %s", " ".join(translation.unknown))
        if index == 0 and args.attention_png:
            from rnnkit.apps.translation.evaluate import plot_attention

            plot_attention(translation, args.attention_png)
            logger.info("  attention heatmap: %s", args.attention_png)
        results.append(
            {
                "source": text,
                "translation": translation.text,
                "tokens": list(translation.tokens),
                "source_tokens": list(translation.source_tokens),
                "attention": translation.attention.round(4).tolist(),
                "truncated_tokens": translation.truncated,
            }
        )
    if args.json:
        print_json_line(
            {
                "model": str(args.model),
                "backend": translator.backend,
                "results": results,
            }
        )
    return 0


def demo(out_dir: Path, data_dir: Path | None) -> None:
    """Translates a few Spanish sentences on the edge runtime with the shipped model.

    With data, it also scores the shipped int8 pair on 200 sentences of the
    test split. Outputs: translations.txt and one attention heatmap per sentence.
    """
    from rnnkit.apps.translation.evaluate import plot_attention
    from rnnkit.apps.translation.runtime import load_translator

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    translator = load_translator(SHIPPED_DIR / "encoder_int8.tflite")
    sentences = [
        line
        for line in (EXAMPLES_DIR / "spanish.txt").read_text("utf-8").splitlines()
        if line.strip()
    ]
    lines = []
    for index, sentence in enumerate(sentences):
        greedy = translator.translate(sentence, beam_width=1)
        beam = translator.translate(sentence, beam_width=4)
        lines.append(f"{sentence}\t{greedy.text}\t{beam.text}")
        logger.info("%s -> %s | beam 4: %s", sentence, greedy.text, beam.text)
        plot_attention(beam, out_dir / f"attention_{index:02d}.png")
    path = out_dir / "translations.txt"
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(
        "source\tgreedy (int8 edge)\tbeam 4 (int8 edge)\n" + "\n".join(lines) + "\n",
        encoding="utf-8",
    )
    temporary.replace(path)
    if data_dir is not None:
        from rnnkit.apps.translation.data import load_split
        from rnnkit.apps.translation.evaluate import score

        pairs = load_split(translator.metadata["direction"], data_dir)["test"][:200]
        result = score(translator, pairs)
        logger.info(
            "int8 edge, greedy, 200 test sentences: BLEU %.2f chrF %.2f",
            result["bleu"],
            result["chrf"],
        )
    logger.info("Translation demo outputs: %s", out_dir)
