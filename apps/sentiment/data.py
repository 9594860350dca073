"""Loaders for SST-2 and for a user's own (text, label) files.

Every loader returns `Examples`: parallel lists of texts and label names. SST-2
labels 0/1 become "negative"/"positive"; a user's file keeps its own names.

Formats read by `load_file` (chosen by the file name, then by sniffing):

* `.tsv` / `.csv`: a header row naming the columns. The text column is the
  first of `sentence`, `text`, `review`, `content`, `document`; the label
  column the first of `label`, `sentiment`, `class`, `polarity`, `target`,
  `category` (or pass `text_column` / `label_column`). Without a header, two
  columns are read as (text, label), or (label, text) when the first column
  holds the short values.
* `.jsonl` / `.ndjson`: one JSON object per line with the same keys.
* SST sentence-level files (`stsa.binary.*`, `.txt` or no extension): one
  example per line, `<label> <sentence>`.

Files are decoded strictly as UTF-8 by default (a byte-order mark is
ignored); bytes that are not valid raise a `UsageError` naming the line, and
`encoding=` reads other encodings. Empty texts are an error naming the line.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import os
from pathlib import Path

from rnnkit.data import require_file
from rnnkit.edge.text import VocabularyError, decode_text_bytes
from rnnkit.errors import UsageError

logger = logging.getLogger(__name__)

SST_LABELS = ("negative", "positive")
TEXT_COLUMNS = ("sentence", "text", "review", "content", "document")
LABEL_COLUMNS = ("label", "sentiment", "class", "polarity", "target", "category")
GLUE_FILES = {
    "train": "sentiment/sst2_glue/train.tsv",
    "dev": "sentiment/sst2_glue/dev.tsv",
}
SENTENCE_FILES = {
    "train": "sentiment/sst2_sentence_level/stsa.binary.train",
    "dev": "sentiment/sst2_sentence_level/stsa.binary.dev",
    "test": "sentiment/sst2_sentence_level/stsa.binary.test",
}


@dataclasses.dataclass
class Examples:
    """Texts and their label names, in file order."""

    texts: list[str]
    labels: list[str]
    source: str = ""

    def __len__(self) -> int:
        return len(self.texts)

    def __add__(self, other: Examples) -> Examples:
        return Examples(
            self.texts + other.texts,
            self.labels + other.labels,
            f"{self.source}+{other.source}",
        )

    def label_names(self) -> list[str]:
        """The distinct labels, SST order when they are SST's, else sorted."""
        names = set(self.labels)
        if names <= set(SST_LABELS):
            return list(SST_LABELS)
        return sorted(names)

    def subset(self, count: int, seed: int = 0) -> Examples:
        """A reproducible random subset of `count` examples (all if fewer)."""
        import random

        order = list(range(len(self)))
        random.Random(seed).shuffle(order)
        order = sorted(order[:count])
        return Examples(
            [self.texts[i] for i in order], [self.labels[i] for i in order], self.source
        )


def _read_text(path: Path, encoding: str) -> str:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UsageError(
            f"Cannot read the data file. Expected a readable file. Received: {path} "
            f"({error.strerror})"
        ) from None
    try:
        return decode_text_bytes(data, encoding)
    except VocabularyError as error:
        raise UsageError(f"{path}: {error}") from None


def _sst_label(value: str, path: Path, line: int) -> str:
    if value not in ("0", "1"):
        raise UsageError(
            f"{path}, line {line}: an SST-2 label must be 0 or 1. Received: {value!r}"
        )
    return SST_LABELS[int(value)]


def _check_text(text: str, path: Path, line: int) -> str:
    text = text.strip()
    if not text:
        raise UsageError(
            f"{path}, line {line}: the text is empty. Expected at least one word."
        )
    return text


def load_glue(
    split: str = "train", data_dir: str | os.PathLike | None = None
) -> Examples:
    """GLUE SST-2 phrases and sentences (`sentence<TAB>label` with a header)."""
    if split not in GLUE_FILES:
        raise UsageError(
            f"Unknown GLUE SST-2 split. Expected one of {sorted(GLUE_FILES)} (the "
            f"GLUE test file has no labels). Received: {split!r}"
        )
    path = require_file(GLUE_FILES[split], data_dir)
    texts, labels = [], []
    lines = _read_text(path, "utf-8").splitlines()
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        text, _, value = line.rstrip("\n").rpartition("\t")
        texts.append(_check_text(text, path, number))
        labels.append(_sst_label(value.strip(), path, number))
    return Examples(texts, labels, f"glue-{split}")


def _parse_sentence_level(text: str, path: Path) -> Examples:
    texts, labels = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        value, _, sentence = line.strip().partition(" ")
        labels.append(_sst_label(value, path, number))
        texts.append(_check_text(sentence, path, number))
    return Examples(texts, labels, path.name)


def load_sentence_level(
    split: str = "train", data_dir: str | os.PathLike | None = None
) -> Examples:
    """SST-2 sentence level (Kim 2014 split): lines of `<label> <sentence>`."""
    if split not in SENTENCE_FILES:
        raise UsageError(
            f"Unknown SST-2 sentence-level split. Expected one of "
            f"{sorted(SENTENCE_FILES)}. Received: {split!r}"
        )
    path = require_file(SENTENCE_FILES[split], data_dir)
    return _parse_sentence_level(_read_text(path, "utf-8"), path)


def load_sst2(
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    include_phrases: bool = True,
) -> Examples:
    """The training or dev set the presets use.

    "train" is the sentence-level train set plus, with `include_phrases`, the
    67,349 GLUE phrases and sentences; "dev" is the 872 dev sentences.
    """
    if split == "train":
        examples = load_sentence_level("train", data_dir)
        if include_phrases:
            examples = load_glue("train", data_dir) + examples
        return examples
    return load_sentence_level(split, data_dir)


def _pick_column(names: list[str], wanted: str | None, choices: tuple, what: str, path):
    lowered = [name.strip().lower() for name in names]
    if wanted is not None:
        if wanted.lower() in lowered:
            return lowered.index(wanted.lower())
        raise UsageError(
            f"{path}: no {what} column named {wanted!r}. Expected one of the header "
            f"names {names}."
        )
    for choice in choices:
        if choice in lowered:
            return lowered.index(choice)
    return None


def _parse_delimited(
    text: str,
    path: Path,
    delimiter: str,
    text_column: str | None,
    label_column: str | None,
) -> Examples:
    rows = [row for row in csv.reader(io.StringIO(text), delimiter=delimiter) if row]
    if not rows:
        raise UsageError(
            f"{path}: the file holds no rows. Expected (text, label) rows."
        )
    header = rows[0]
    text_index = _pick_column(header, text_column, TEXT_COLUMNS, "text", path)
    label_index = _pick_column(header, label_column, LABEL_COLUMNS, "label", path)
    if text_index is not None and label_index is not None:
        body, first_line = rows[1:], 2
    elif text_index is None and label_index is None and len(header) == 2:
        # No header: the label is the column with the shorter values.
        body, first_line = rows, 1
        mean = [sum(len(row[i]) for row in rows if len(row) == 2) for i in (0, 1)]
        text_index, label_index = (0, 1) if mean[0] >= mean[1] else (1, 0)
    else:
        raise UsageError(
            f"{path}: cannot tell the text and label columns apart. Expected a header "
            f"with one of {TEXT_COLUMNS} and one of {LABEL_COLUMNS}, or pass "
            f"--text-column/--label-column. Received header: {header}"
        )
    texts, labels = [], []
    width = max(text_index, label_index) + 1
    for number, row in enumerate(body, start=first_line):
        if len(row) < width:
            raise UsageError(
                f"{path}, row {number}: expected at least {width} columns. Received: "
                f"{len(row)}"
            )
        texts.append(_check_text(row[text_index], path, number))
        labels.append(row[label_index].strip())
    return Examples(texts, labels, path.name)


def _parse_jsonl(
    text: str, path: Path, text_column: str | None, label_column: str | None
) -> Examples:
    texts, labels = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise UsageError(
                f"{path}, line {number}: not valid JSON ({error.msg}). Expected one "
                "JSON object per line."
            ) from None
        if not isinstance(record, dict):
            raise UsageError(
                f"{path}, line {number}: expected a JSON object. Received: "
                f"{type(record).__name__}"
            )
        keys = list(record)
        text_index = _pick_column(keys, text_column, TEXT_COLUMNS, "text", path)
        label_index = _pick_column(keys, label_column, LABEL_COLUMNS, "label", path)
        if text_index is None or label_index is None:
            raise UsageError(
                f"{path}, line {number}: expected keys for the text ({TEXT_COLUMNS}) "
                f"and the label ({LABEL_COLUMNS}). Received: {keys}"
            )
        value = record[keys[text_index]]
        if not isinstance(value, str):
            raise UsageError(
                f"{path}, line {number}: the text must be a string. Received: "
                f"{type(value).__name__}"
            )
        texts.append(_check_text(value, path, number))
        labels.append(str(record[keys[label_index]]).strip())
    return Examples(texts, labels, path.name)


def load_file(
    path: str | os.PathLike,
    text_column: str | None = None,
    label_column: str | None = None,
    encoding: str = "utf-8",
) -> Examples:
    """Reads (text, label) examples from CSV, TSV, JSONL or the SST line format."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(
            f"The data file does not exist. Expected a CSV, TSV, JSONL or SST file. "
            f"Received: {path}"
        )
    text = _read_text(path, encoding)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        examples = _parse_jsonl(text, path, text_column, label_column)
    elif suffix == ".csv":
        examples = _parse_delimited(text, path, ",", text_column, label_column)
    elif suffix == ".tsv" or "\t" in text.split("\n", 1)[0]:
        examples = _parse_delimited(text, path, "\t", text_column, label_column)
    else:
        examples = _parse_sentence_level(text, path)
    if not examples.texts:
        raise UsageError(f"{path}: no examples found. Expected (text, label) rows.")
    return examples


def load_tfds(
    name: str = "glue/sst2", split: str = "train"
) -> Examples:  # pragma: no cover
    """Loads `glue/sst2` or `imdb_reviews` through tensorflow-datasets (online).

    Not used offline or in the tests; tensorflow-datasets downloads and caches
    the data on first use.
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise UsageError(
            "Loading from tensorflow-datasets needs the package. Expected `pip "
            "install tensorflow-datasets`."
        ) from None
    keys = {"glue/sst2": "sentence", "imdb_reviews": "text"}
    if name not in keys:
        raise UsageError(
            f"Unsupported dataset. Expected one of {sorted(keys)}. Received: {name!r}"
        )
    if name == "glue/sst2" and split == "dev":
        split = "validation"
    texts, labels = [], []
    for record in tfds.as_numpy(tfds.load(name, split=split)):
        value = int(record["label"])
        if value < 0:  # the GLUE test split has no labels
            continue
        texts.append(record[keys[name]].decode("utf-8", errors="replace"))
        labels.append(SST_LABELS[value])
    return Examples(texts, labels, f"tfds-{name}-{split}")


def load_named(name: str, data_dir: str | os.PathLike | None = None) -> Examples:
    """Resolves a `--file` argument: a path, or `sst2-dev`, `sst2-train`, `glue-dev`."""
    named = {
        "sst2-dev": lambda: load_sentence_level("dev", data_dir),
        "sst2-train": lambda: load_sentence_level("train", data_dir),
        "glue-dev": lambda: load_glue("dev", data_dir),
        "glue-train": lambda: load_glue("train", data_dir),
    }
    if name in named and not Path(name).exists():
        return named[name]()
    if name.startswith("tfds:"):
        dataset, _, split = name[5:].partition(":")
        return load_tfds(dataset, split or "train")
    return load_file(name)
