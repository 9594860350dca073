"""Word tokenizer and vocabulary, applied identically in training and on device.

Pure Python and numpy: the training code and the edge runtime call this same
module, so a sentence becomes the same token ids in both places.

The tokenizer follows the Penn Treebank conventions of the Stanford Sentiment
Treebank (SST), so raw text such as "It's not bad!" and the already tokenized
SST text "it 's not bad !" give the same tokens:

* Unicode is NFKD-normalized, accents are stripped ("café" -> "cafe"), curly
  quotes and dashes become their ASCII forms, and everything is lower-cased.
* PTB bracket tokens (`-lrb-`, `-rrb-`, ...) become the brackets themselves;
  the PTB quotes ` `` ` and `''` become `"`, a lone backtick becomes `'`, and
  the PTB escapes `\\/` and `\\*` become `/` and `*`.
* Punctuation is split off words, except inside them: hyphens, slashes,
  apostrophes and `&` join word pieces ("re-imagining", "and/or", "o'brien"),
  digits keep their separators ("1/2", "3.5", "1,000"), acronyms keep their
  dots ("e.t."), a few abbreviations keep theirs ("mr.", "vs."), and a single
  letter followed by a dot stays one token ("j.") except at the end of the
  text. Runs of dots become "...", runs of hyphens "--".
* Clitics are split as in the PTB: "don't" -> "do n't", "can't" -> "ca n't",
  "it's" -> "it 's", "we're" -> "we 're" (also 've, 'll, 'd, 'm).

Ids: 0 is padding, 1 is the out-of-vocabulary token; words follow by
decreasing training count (ties by the word itself), so fitting is
deterministic. `encode` keeps the first `max_length` tokens of a text
(`truncation="end"`, the default, drops the tail) or the last ones
(`truncation="start"`). `encode_batch` pads with 0 at the end.

The vocabulary file is JSON (`format: "rnnkit.word_vocabulary"`, version 1)
with the tokenizer settings, the token list and a SHA-256 fingerprint of both;
loading recomputes the fingerprint, so an edited or truncated file is caught,
and a model stores the fingerprint of its vocabulary so that a vocabulary
that does not belong to it is caught too.

Example:
    >>> from rnnkit.edge.text import WordTokenizer, tokenize
    >>> tokenize("It's NOT bad... (really)!")
    ['it', "'s", 'not', 'bad', '...', '(', 'really', ')', '!']
    >>> tok = WordTokenizer.fit(["a good film", "a bad film"], max_size=10)
    >>> tok.encode("a good, good film")
    [2, 5, 1, 5, 3]
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = [
    "PAD_ID",
    "OOV_ID",
    "PAD_TOKEN",
    "OOV_TOKEN",
    "VocabularyError",
    "WordTokenizer",
    "decode_text_bytes",
    "normalize",
    "tokenize",
]

PAD_ID = 0
OOV_ID = 1
PAD_TOKEN = "<pad>"
OOV_TOKEN = "<unk>"
FORMAT_NAME = "rnnkit.word_vocabulary"
FORMAT_VERSION = 1
TRUNCATION_MODES = ("end", "start")


class VocabularyError(ValueError):
    """A vocabulary file or tokenizer argument is invalid.

    Lives here rather than in `rnnkit.errors` because the edge runtime may not
    import the rest of rnnkit; callers that can turn it into a `UsageError`.
    """


# Characters NFKD leaves alone but that the SST text writes in ASCII.
_CHAR_MAP = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u00ab": '"',
        "\u00bb": '"',
        "\u2013": "--",
        "\u2014": "--",
        "\u2015": "--",
        "\u2212": "-",
        "\u2026": "...",
        "\u00a0": " ",
    }
)
_PTB_BRACKETS = {
    "-lrb-": "(",
    "-rrb-": ")",
    "-lsb-": "[",
    "-rsb-": "]",
    "-lcb-": "{",
    "-rcb-": "}",
}
_PTB_BRACKET_RE = re.compile("|".join(map(re.escape, _PTB_BRACKETS)))
_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "vs", "jr", "sr", "st", "etc", "prof", "mt"}
)
# One scanner for a whitespace-free chunk; the order of the alternatives matters.
_TOKEN_RE = re.compile(
    r"""
      (?:[a-z]\.){2,}                      # acronyms: e.t., u.s.
    | \d+(?:[.,/:]\d+)+                    # 1/2, 3.5, 1,000, 10:30
    | '\d0s                                # '70s
    | (?:n't|'s|'re|'ve|'ll|'d|'m)(?![^\W_])  # a clitic already split off (SST)
    | [^\W_]+(?:[-/'&][^\W_]+)*            # words, with internal - / ' &
    | \.{2,}                               # ellipsis
    | -{2,}                                # dash
    | ``|''                                # PTB quotes
    | \S                                   # any other single character
    """,
    re.VERBOSE,
)
_CLITIC_RE = re.compile(r"^(.+?)('s|'re|'ve|'ll|'d|'m)$")


def decode_text_bytes(data: bytes, encoding: str = "utf-8") -> str:
    """Decodes raw bytes to text, with an error that says where decoding failed.

    A UTF-8 byte-order mark is removed.

    Raises:
        VocabularyError: the bytes are not valid in `encoding`.
    """
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise VocabularyError(
            f"The text is not valid {encoding}: byte {data[error.start]:#04x} at "
            f"offset {error.start} (line {line}). Expected {encoding} text; "
            "re-encode the file or pass its real encoding (e.g. latin-1)."
        ) from None
    except LookupError:
        raise VocabularyError(
            f"Unknown text encoding. Expected a Python codec name such as "
            f"'utf-8' or 'latin-1'. Received: encoding={encoding!r}"
        ) from None
    return text.removeprefix("\ufeff")


def normalize(text: str) -> str:
    """Returns the lower-cased, accent-free, ASCII-punctuated form of `text`."""
    if not isinstance(text, str):
        raise VocabularyError(
            f"Expected text as a str (decode bytes first, e.g. with "
            f"decode_text_bytes). Received: {type(text).__name__}"
        )
    text = unicodedata.normalize("NFKD", text.translate(_CHAR_MAP))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    # The sentence-level SST files keep the PTB escapes of "/" and "*".
    text = text.translate(_CHAR_MAP).lower().replace("\\/", "/").replace("\\*", "*")
    return _PTB_BRACKET_RE.sub(lambda m: f" {_PTB_BRACKETS[m.group(0)]} ", text)


def _split_clitics(word: str) -> list[str]:
    if word.endswith("n't") and len(word) > 3:
        return [word[:-3], "n't"]
    match = _CLITIC_RE.match(word)
    if match:
        return [match.group(1), match.group(2)]
    return [word]


def tokenize(text: str) -> list[str]:
    """Splits text into SST-style word tokens (see the module docstring)."""
    tokens: list[str] = []
    chunks = normalize(text).split()
    for chunk_index, chunk in enumerate(chunks):
        pieces = _TOKEN_RE.findall(chunk)
        index = 0
        while index < len(pieces):
            piece = pieces[index]
            followed_by_dot = index + 1 < len(pieces) and pieces[index + 1] == "."
            at_text_end = chunk_index == len(chunks) - 1 and index + 2 == len(pieces)
            if followed_by_dot and (
                piece in _ABBREVIATIONS
                or (len(piece) == 1 and piece.isalpha() and not at_text_end)
            ):
                tokens.append(piece + ".")
                index += 2
                continue
            if piece.startswith(".."):
                tokens.append("...")
            elif piece.startswith("--"):
                tokens.append("--")
            elif piece in ("``", "''"):
                tokens.append('"')
            elif piece == "`":
                tokens.append("'")
            elif piece[0].isalnum():
                tokens.extend(_split_clitics(piece))
            else:
                tokens.append(piece)
            index += 1
    return tokens


def _fingerprint(settings: dict, tokens: Sequence[str]) -> str:
    canonical = json.dumps(
        {"settings": settings, "tokens": list(tokens)},
        sort_keys=True,
        ensure_ascii=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


class WordTokenizer:
    """A word vocabulary with the tokenizer settings it was built with.

    Args:
        tokens: the vocabulary in id order, starting with `PAD_TOKEN` and
            `OOV_TOKEN` (they are added when missing).
        max_length: the most tokens `encode` returns; None means no limit.
        truncation: "end" keeps the first `max_length` tokens, "start" keeps
            the last ones.

    Example:
        >>> tok = WordTokenizer.fit(["fine film", "dull film"], max_size=100)
        >>> WordTokenizer.from_json(tok.to_json()).fingerprint == tok.fingerprint
        True
    """

    def __init__(
        self,
        tokens: Sequence[str],
        max_length: int | None = None,
        truncation: str = "end",
    ) -> None:
        tokens = list(tokens)
        if tokens[:2] != [PAD_TOKEN, OOV_TOKEN]:
            tokens = [PAD_TOKEN, OOV_TOKEN] + [
                t for t in tokens if t not in (PAD_TOKEN, OOV_TOKEN)
            ]
        if len(set(tokens)) != len(tokens):
            duplicates = sorted(
                t for t, n in collections.Counter(tokens).items() if n > 1
            )
            raise VocabularyError(
                f"A vocabulary lists each token once. Received duplicates: "
                f"{duplicates[:5]}"
            )
        if max_length is not None and (
            not isinstance(max_length, int) or max_length < 1
        ):
            raise VocabularyError(
                f"`max_length` must be a positive integer or None. Received: "
                f"{max_length!r}"
            )
        if truncation not in TRUNCATION_MODES:
            raise VocabularyError(
                f"`truncation` must be one of {TRUNCATION_MODES}. Received: "
                f"{truncation!r}"
            )
        self.tokens = tokens
        self.max_length = max_length
        self.truncation = truncation
        self._ids = {token: index for index, token in enumerate(tokens)}

    @classmethod
    def fit(
        cls,
        texts: Iterable[str],
        max_size: int = 20000,
        min_count: int = 1,
        max_length: int | None = None,
        truncation: str = "end",
    ) -> WordTokenizer:
        """Builds a vocabulary of the most frequent tokens of `texts`.

        Args:
            texts: training texts (raw or already tokenized).
            max_size: vocabulary size including the padding and OOV ids.
            min_count: leave out tokens seen fewer times than this.
            max_length, truncation: see the class.
        """
        if not isinstance(max_size, int) or max_size < 3:
            raise VocabularyError(
                f"`max_size` must be an integer of at least 3 (padding, OOV and one "
                f"word). Received: {max_size!r}"
            )
        counts = collections.Counter()
        for text in texts:
            counts.update(tokenize(text))
        ranked = sorted(
            (item for item in counts.items() if item[1] >= min_count),
            key=lambda item: (-item[1], item[0]),
        )
        words = [word for word, _ in ranked[: max_size - 2]]
        return cls([PAD_TOKEN, OOV_TOKEN, *words], max_length, truncation)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    @property
    def settings(self) -> dict:
        """The tokenizer settings that the fingerprint covers."""
        return {
            "lowercase": True,
            "strip_accents": True,
            "scheme": "ptb-sst-v1",
            "max_length": self.max_length,
            "truncation": self.truncation,
            "pad_id": PAD_ID,
            "oov_id": OOV_ID,
        }

    @property
    def fingerprint(self) -> str:
        """SHA-256 (hex) of the settings and token list."""
        return _fingerprint(self.settings, self.tokens)

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text)

    def encode(self, text: str) -> list[int]:
        """Returns the ids of `text`, truncated to `max_length`; may be empty."""
        ids = [self._ids.get(token, OOV_ID) for token in tokenize(text)]
        if self.max_length is not None and len(ids) > self.max_length:
            ids = (
                ids[: self.max_length]
                if self.truncation == "end"
                else ids[-self.max_length :]
            )
        return ids

    def encode_batch(
        self, texts: Sequence[str], length: int | None = None
    ) -> np.ndarray:
        """Encodes texts into an int32 array (len(texts), length), 0-padded at the end.

        Args:
            texts: the texts.
            length: the padded width; by default the longest encoded text (at
                least 1). Longer texts are cut with the same truncation rule.
        """
        encoded = [self.encode(text) for text in texts]
        if length is None:
            length = max([1, *map(len, encoded)])
        batch = np.full((len(encoded), length), PAD_ID, dtype=np.int32)
        for row, ids in enumerate(encoded):
            if len(ids) > length:
                ids = ids[:length] if self.truncation == "end" else ids[-length:]
            batch[row, : len(ids)] = ids
        return batch

    def decode(self, ids: Iterable[int]) -> str:
        """Joins the tokens of `ids` with spaces, leaving out padding."""
        words = []
        for index in ids:
            index = int(index)
            if index == PAD_ID:
                continue
            if not 0 <= index < len(self.tokens):
                raise VocabularyError(
                    f"Token id out of range. Expected 0 <= id < {len(self.tokens)}. "
                    f"Received: {index}"
                )
            words.append(self.tokens[index])
        return " ".join(words)

    def oov_rate(self, texts: Iterable[str]) -> float:
        """Fraction of the tokens of `texts` that map to the OOV id."""
        total = oov = 0
        for text in texts:
            ids = [self._ids.get(token, OOV_ID) for token in tokenize(text)]
            total += len(ids)
            oov += sum(1 for i in ids if i == OOV_ID)
        return oov / total if total else 0.0

    def to_dict(self) -> dict:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "settings": self.settings,
            "tokens": self.tokens,
            "fingerprint": self.fingerprint,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, payload: dict) -> WordTokenizer:
        if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
            raise VocabularyError(
                f"Not an rnnkit word vocabulary. Expected a JSON object with "
                f"format={FORMAT_NAME!r}. Received: format="
                f"{payload.get('format') if isinstance(payload, dict) else type(payload).__name__!r}"
            )
        if payload.get("version") != FORMAT_VERSION:
            raise VocabularyError(
                f"Unsupported vocabulary version. Expected {FORMAT_VERSION}. "
                f"Received: {payload.get('version')!r}"
            )
        try:
            settings = payload["settings"]
            tokens = payload["tokens"]
            stored = payload["fingerprint"]
        except KeyError as error:
            raise VocabularyError(
                f"The vocabulary lacks the field {error.args[0]!r}. Expected "
                "settings, tokens and fingerprint."
            ) from None
        if settings.get("scheme") != "ptb-sst-v1":
            raise VocabularyError(
                f"Unknown tokenizer scheme. Expected 'ptb-sst-v1'. Received: "
                f"{settings.get('scheme')!r}"
            )
        tokenizer = cls(
            tokens,
            max_length=settings.get("max_length"),
            truncation=settings.get("truncation", "end"),
        )
        if tokenizer.fingerprint != stored:
            raise VocabularyError(
                "The vocabulary's fingerprint does not match its content: the file "
                f"was edited or damaged. Expected {stored[:16]}..., computed "
                f"{tokenizer.fingerprint[:16]}..."
            )
        return tokenizer

    @classmethod
    def from_json(cls, text: str) -> WordTokenizer:
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as error:
            raise VocabularyError(
                f"The vocabulary is not valid JSON ({error.msg} at line "
                f"{error.lineno}). Expected a file written by WordTokenizer.save."
            ) from None
        return cls.from_dict(payload)

    def save(self, path: str | os.PathLike) -> None:
        """Writes the vocabulary JSON atomically."""
        path = os.fspath(path)
        temporary = path + ".tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(self.to_json())
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> WordTokenizer:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as error:
            raise VocabularyError(
                f"Cannot read the vocabulary file. Expected a readable JSON file. "
                f"Received: {os.fspath(path)} ({error.strerror})"
            ) from None
        return cls.from_json(decode_text_bytes(data))

    def check_fingerprint(self, expected: str, what: str = "the model") -> None:
        """Raises `VocabularyError` unless this vocabulary has fingerprint `expected`."""
        if expected != self.fingerprint:
            raise VocabularyError(
                f"This vocabulary does not belong to {what}: fingerprints differ. "
                f"Expected {str(expected)[:16]}..., received "
                f"{self.fingerprint[:16]}... Use the vocabulary saved with the model."
            )
