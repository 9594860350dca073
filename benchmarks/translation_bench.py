"""Translation benchmark: BLEU/chrF on unseen sentences, beam vs greedy, int8 vs Keras,
device decoding time, eng->spa, additive vs multiplicative attention.

Everything is measured on this repository's own test split of spa.txt (split by
English sentence, so no test sentence is seen in training).

Run at the size used for benchmarks/results/translation.md (the attention
comparison, --compare-pairs 50000 --compare-epochs 3, is skipped by default and
was run separately; see the notes in that file):
    python benchmarks/translation_bench.py --model models/translation \
        --eng-spa runs/eng_spa --sentences 500 --device-sentences 100
Full size (the full preset in both directions, the whole test split):
    python benchmarks/translation_bench.py --train-preset full --sentences 0
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

REPO = Path(__file__).resolve().parents[1]


def _sample(pairs, count):
    # spa.txt (and so each split) is sorted by length: a seeded sample, kept in
    # order, covers every length instead of only the shortest sentences.
    import numpy as np

    if not count or count >= len(pairs):
        return pairs
    rows = np.random.default_rng(0).choice(len(pairs), count, replace=False)
    rows = np.random.default_rng(1).permutation(rows)
    return [pairs[i] for i in rows]


def _score_row(name, translator, pairs, beam, batch=True):
    from rnnkit.apps.translation.evaluate import score

    result = score(translator, pairs, beam_width=beam, batch=batch)
    return {
        "name": name,
        "backend": translator.backend,
        "beam": beam,
        "bleu": result["bleu"],
        "chrf": result["chrf"],
        "seconds_per_sentence": result["seconds_per_sentence"],
        "sentences": result["sentences"],
    }


def _train(direction, preset_name, out, **overrides):
    from rnnkit.apps.translation import train as train_lib

    preset = train_lib.get_preset(preset_name, **overrides)
    started = time.monotonic()
    metrics = train_lib.train(direction, preset, out, export=False)
    metrics["wall_seconds"] = round(time.monotonic() - started, 1)
    return metrics


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / "models" / "translation"))
    parser.add_argument(
        "--sentences", type=int, default=500, help="0: whole test split"
    )
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--device-sentences", type=int, default=100)
    parser.add_argument("--eng-spa", default=None, help="an eng-spa run folder")
    parser.add_argument("--train-preset", default=None, help="train both directions")
    parser.add_argument("--compare-pairs", type=int, default=0)
    parser.add_argument("--compare-epochs", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from rnnkit.apps.translation.data import load_split
    from rnnkit.apps.translation.runtime import load_translator

    model_dir = Path(args.model)
    work = Path(tempfile.mkdtemp(prefix="translation_bench_"))
    if args.train_preset:
        _train("spa-eng", args.train_preset, work / "spa_eng")
        model_dir = work / "spa_eng"
    keras_translator = load_translator(model_dir)
    direction = keras_translator.metadata["direction"]
    test = _sample(load_split(direction)["test"], args.sentences)

    rows = [
        _score_row("Keras greedy", keras_translator, test, 1),
        _score_row(f"Keras beam {args.beam}", keras_translator, test, args.beam),
    ]
    device_pairs = test[: args.device_sentences]
    for quantize in ("float32", "int8"):
        path = model_dir / f"encoder_{quantize}.tflite"
        if not path.exists():
            rows.append({"name": f"edge {quantize}", "error": f"{path.name} missing"})
            continue
        edge_translator = load_translator(path)
        for beam in (1, args.beam):
            rows.append(
                _score_row(
                    f"edge {quantize} beam {beam}", edge_translator, device_pairs, beam
                )
            )
    keras_small = [
        _score_row("Keras greedy (device subset)", keras_translator, device_pairs, 1),
        _score_row(
            f"Keras beam {args.beam} (device subset)",
            keras_translator,
            device_pairs,
            args.beam,
        ),
    ]
    rows += keras_small

    extra = {}
    eng_spa_dir = Path(args.eng_spa) if args.eng_spa else None
    if args.train_preset:
        _train("eng-spa", args.train_preset, work / "eng_spa")
        eng_spa_dir = work / "eng_spa"
    if eng_spa_dir is not None:
        eng = load_translator(eng_spa_dir)
        eng_test = _sample(load_split("eng-spa")["test"], args.sentences)
        extra["eng_spa"] = [
            _score_row("eng->spa Keras greedy", eng, eng_test, 1),
            _score_row(f"eng->spa Keras beam {args.beam}", eng, eng_test, args.beam),
        ]
        extra["eng_spa_preset"] = eng.metadata.get("preset")

    if args.compare_pairs:
        compare = []
        for kind in ("additive", "multiplicative"):
            out = work / f"compare_{kind}"
            metrics = _train(
                "spa-eng",
                "small",
                out,
                attention=kind,
                max_train_pairs=args.compare_pairs,
                epochs=args.compare_epochs,
                time_budget_s=None,
            )
            translator = load_translator(out)
            row = _score_row(f"{kind} greedy", translator, test, 1)
            row["val_loss"] = metrics["final_val_loss"]
            row["train_seconds"] = metrics["train_seconds"]
            compare.append(row)
        extra["attention"] = compare

    body = _markdown(model_dir, keras_translator, rows, extra, args)
    path = write_section("translation", "Translation (spa<->eng)", body)
    (work / "rows.json").write_text(json.dumps({"rows": rows, **extra}, indent=2))
    print(body)
    print(f"written: {path}")
    return 0


def _table(rows):
    lines = [
        "| decoder | sentences | BLEU | chrF | s / sentence |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['name']} | - | {r['error']} | | |")
            continue
        lines.append(
            f"| {r['name']} | {r['sentences']} | {r['bleu']:.2f} | {r['chrf']:.2f} | "
            f"{r['seconds_per_sentence']:.4f} |"
        )
    return "\n".join(lines)


def _markdown(model_dir, translator, rows, extra, args):
    meta = translator.metadata
    by_name = {r["name"]: r for r in rows if "error" not in r}
    greedy, beam = by_name.get("Keras greedy"), by_name.get(f"Keras beam {args.beam}")
    parts = [
        f"Model: `{model_dir}` (direction {meta['direction']}, preset "
        f"`{meta.get('preset')}`, {meta['model_config']['units']} units, vocabularies "
        f"{meta['model_config']['source_vocab_size']} / "
        f"{meta['model_config']['target_vocab_size']} words). Test: "
        f"{greedy['sentences'] if greedy else '?'} pairs drawn at random (seed 0) from "
        "this repo's test split of spa.txt (split by English sentence, seed 13: no test sentence is in "
        "training). BLEU is sacrebleu corpus BLEU, cased, 13a tokenization, one "
        "reference. Edge rows use `rnnkit.edge` (LiteRT) on the first "
        f"{args.device_sentences} of them, one sentence at a time, batch 1; their "
        "time is the device decoding time per sentence on this machine.",
        "",
        _table(rows),
    ]
    if greedy and beam:
        parts += [
            "",
            f"Beam {args.beam} vs greedy (Keras): {beam['bleu'] - greedy['bleu']:+.2f} "
            "BLEU.",
        ]
    int8 = by_name.get("edge int8 beam 1")
    small = by_name.get("Keras greedy (device subset)")
    if int8 and small:
        parts.append(
            f"int8 edge vs Keras, greedy, same {small['sentences']} sentences: "
            f"{int8['bleu'] - small['bleu']:+.2f} BLEU."
        )
    if "eng_spa" in extra:
        parts += [
            "",
            f"### eng->spa (preset `{extra['eng_spa_preset']}`)",
            "",
            _table(extra["eng_spa"]),
        ]
    if "attention" in extra:
        parts += [
            "",
            f"### Additive vs multiplicative attention ({args.compare_pairs} training "
            f"pairs, {args.compare_epochs} epochs, preset `small` otherwise)",
            "",
            _table(extra["attention"]),
            "",
            "val_loss: "
            + ", ".join(
                f"{r['name'].split()[0]} {r['val_loss']:.3f} ({r['train_seconds']:.0f} s)"
                for r in extra["attention"]
            ),
        ]
    parts += [
        "",
        "The TensorFlow NMT-tutorial recipe on the same test pairs: the next section "
        "(`benchmarks/translation_baseline.py`). The issue's calibration figures for "
        "it (BLEU 14-16 on an external Tatoeba test) are not comparable with this "
        "split.",
    ]
    return "\n".join(parts)


if __name__ == "__main__":
    raise SystemExit(main())
