"""Loading the Tatoeba/Anki Spanish-English pairs and splitting them reproducibly.

The split is by English sentence: every pair whose English side is the same
sentence lands in the same part, so the test sentences are unseen in training
even though spa.txt repeats many English sentences with several Spanish
translations.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from pathlib import Path

from rnnkit.data import require_file
from rnnkit.errors import UsageError

logger = logging.getLogger(__name__)

SPA_ENG_FILE = "translation/spa-eng/spa.txt"
DIRECTIONS = ("spa-eng", "eng-spa")


@dataclasses.dataclass(frozen=True)
class Pair:
    """One aligned sentence pair, source first for the chosen direction."""

    source: str
    target: str


def check_direction(direction: str) -> tuple[str, str]:
    """Returns (source language, target language) for 'spa-eng' or 'eng-spa'."""
    if direction not in DIRECTIONS:
        raise UsageError(
            f"Unknown translation direction. Expected one of {list(DIRECTIONS)}. "
            f"Received: direction={direction!r}"
        )
    source, target = direction.split("-")
    return source, target


def read_tatoeba(path: str | os.PathLike) -> list[tuple[str, str]]:
    """Reads English<TAB>Spanish lines (extra columns, if any, are ignored)."""
    pairs = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            columns = line.split("\t")
            if len(columns) < 2:
                raise UsageError(
                    f"Line {number} of {path} is not a sentence pair. Expected "
                    f"English<TAB>Spanish. Received: {line[:80]!r}"
                )
            pairs.append((columns[0].strip(), columns[1].strip()))
    return pairs


def _bucket(english: str, seed: int) -> float:
    # A hash of the sentence, not a shuffle of positions: the split of a sentence
    # does not change when other pairs are added or the file is reordered.
    digest = hashlib.sha256(f"{seed}:{english}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_pairs(
    pairs: list[tuple[str, str]],
    valid_fraction: float = 0.02,
    test_fraction: float = 0.02,
    seed: int = 13,
) -> dict[str, list[tuple[str, str]]]:
    """Splits (english, spanish) pairs into train/valid/test by English sentence."""
    parts = {"train": [], "valid": [], "test": []}
    for english, spanish in pairs:
        value = _bucket(english, seed)
        if value < test_fraction:
            parts["test"].append((english, spanish))
        elif value < test_fraction + valid_fraction:
            parts["valid"].append((english, spanish))
        else:
            parts["train"].append((english, spanish))
    return parts


def load_split(
    direction: str, data_dir: str | os.PathLike | None = None, seed: int = 13
) -> dict[str, list[Pair]]:
    """Returns {"train", "valid", "test"} lists of `Pair` for `direction`."""
    check_direction(direction)
    path = require_file(SPA_ENG_FILE, data_dir)
    parts = split_pairs(read_tatoeba(path), seed=seed)
    flip = direction == "spa-eng"
    out = {
        name: [Pair(s, e) if flip else Pair(e, s) for e, s in rows]
        for name, rows in parts.items()
    }
    logger.info(
        "spa.txt split by English sentence (seed %d): %s",
        seed,
        ", ".join(f"{k} {len(v)}" for k, v in out.items()),
    )
    return out


def read_parallel(
    source_file: str | os.PathLike, reference_file: str | os.PathLike
) -> list[Pair]:
    """Reads two aligned files, one sentence a line, into pairs.

    Raises:
        UsageError: a file is missing, or the files differ in line count.
    """
    texts = []
    for path in (source_file, reference_file):
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"Expected a text file. Received: {path} (not found)")
        texts.append(path.read_text(encoding="utf-8").splitlines())
    sources, references = texts
    if len(sources) != len(references):
        raise UsageError(
            "The source and reference files must have the same number of lines (one "
            f"sentence a line, aligned). Received: {len(sources)} lines in "
            f"{source_file} and {len(references)} in {reference_file}"
        )
    empty = [i + 1 for i, line in enumerate(sources) if not line.strip()]
    if empty:
        raise UsageError(
            f"The source file has empty lines, which cannot be translated. Expected "
            f"one sentence a line. Received: empty line(s) {empty[:5]} in {source_file}"
        )
    return [
        Pair(s.strip(), r.strip()) for s, r in zip(sources, references, strict=True)
    ]
