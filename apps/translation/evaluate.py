"""BLEU and chrF (sacrebleu) of a translator, and attention heatmaps.

TensorFlow-free: scoring a `.tflite` pair imports only the edge runtime,
sacrebleu and (for heatmaps) matplotlib.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
from rnnkit.apps.translation.data import Pair, read_parallel

from rnnkit.edge import translate as edge
from rnnkit.files import save_figure

logger = logging.getLogger(__name__)


def corpus_scores(hypotheses: list[str], references: list[str]) -> dict:
    """Cased BLEU with sacrebleu's default 13a tokenization, and chrF."""
    import sacrebleu

    bleu = sacrebleu.corpus_bleu(hypotheses, [references])
    chrf = sacrebleu.corpus_chrf(hypotheses, [references])
    return {"bleu": round(float(bleu.score), 2), "chrf": round(float(chrf.score), 2)}


def score(
    translator,
    pairs: list[Pair],
    beam_width: int = 1,
    alpha: float = 0.6,
    batch: bool = False,
    progress: bool = False,
) -> dict:
    """Translates every pair's source and scores it against its target.

    Args:
        batch: allow a batched greedy decoder where the translator has one
            (Keras); the tokens are the same as one sentence at a time.
        progress: show a tqdm progress bar.

    Returns:
        {"bleu", "chrf", "sentences", "seconds_per_sentence", "hypotheses"}.
    """
    sources = [p.source for p in pairs]
    started = time.perf_counter()
    if batch and beam_width == 1 and hasattr(translator, "greedy_batch"):
        hypotheses = translator.greedy_batch(sources)
    else:
        iterator = sources
        if progress:
            from tqdm import tqdm

            iterator = tqdm(sources, desc="translating", unit="sentence")
        hypotheses = [translator.translate(s, beam_width, alpha).text for s in iterator]
    seconds = time.perf_counter() - started
    result = corpus_scores(hypotheses, [p.target for p in pairs])
    result.update(
        sentences=len(pairs),
        seconds_per_sentence=round(seconds / max(1, len(pairs)), 5),
        hypotheses=hypotheses,
    )
    return result


def evaluate_files(
    translator,
    source_file: str | os.PathLike,
    reference_file: str | os.PathLike,
    beam_width: int = 1,
    alpha: float = 0.6,
    out_path: str | os.PathLike | None = None,
) -> dict:
    """Scores `translator` on two aligned files; optionally writes hypotheses."""
    pairs = read_parallel(source_file, reference_file)
    result = score(translator, pairs, beam_width, alpha, batch=True, progress=True)
    if out_path is not None:
        out_path = Path(out_path)
        payload = {k: v for k, v in result.items()}
        temporary = out_path.with_name(out_path.name + ".tmp")
        temporary.write_text(json.dumps(payload, indent=2, ensure_ascii=False))
        os.replace(temporary, out_path)
    return result


def plot_attention(
    translation: edge.Translation, path: str | os.PathLike, title: str | None = None
) -> Path:
    """Saves the attention weights (target x source tokens) as a heatmap PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    source = list(translation.source_tokens) + [edge.EOS]
    target = list(translation.tokens) or ["(empty)"]
    weights = np.asarray(translation.attention, dtype=np.float32)
    if weights.size == 0:
        weights = np.zeros((1, len(source)), np.float32)
    weights = weights[:, : len(source)]
    figure, axis = plt.subplots(
        figsize=(1.0 + 0.45 * len(source), 1.0 + 0.4 * len(target))
    )
    axis.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    axis.set_xticks(range(len(source)), source, rotation=60, ha="right")
    axis.set_yticks(range(len(target)), target)
    axis.set_xlabel("source")
    axis.set_ylabel("translation")
    axis.set_title(title or translation.text, fontsize=9)
    figure.tight_layout()
    save_figure(figure, path, dpi=100)
    return path
