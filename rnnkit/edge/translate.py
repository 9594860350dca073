"""The device half of the translation app: tokenizer, vocabulary and decoding.

Everything here is the standard library and numpy only, so the same code runs
in training (with Keras models behind the callables) and on a device (with
`rnnkit.edge.EdgeModel` behind them). Tokens are words and punctuation marks,
case kept, so sacrebleu's cased BLEU scores the raw output.

Decoding is written against two small callables:

* `encode(source_ids)` with `source_ids` an int32 array (1, max_source_len)
  returns `(encoder_outputs (1, S, D), encoder_mask (1, S), state (1, H))`.
* `step(tokens, encoder_outputs, encoder_mask, state)` with `tokens` an int32
  array (B, 1) returns `(logits (B, V), new_state (B, H), attention (B, S))`.

Example:
    >>> vocab = Vocabulary.build([["Hola", "."], ["Hola", "amigo", "."]], size=10)
    >>> vocab.encode(tokenize("¡Hola, amigo!"))
    [1, 5, 1, 6, 1]
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPECIALS = (PAD, UNK, BOS, EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
VOCAB_FORMAT = "rnnkit.translate.vocabulary/1"

# A word is letters with inner apostrophes ("don't", "Tom's"), or a number, or one
# other visible character (punctuation such as "¿", "," or "."). Case is kept.
_TOKEN_RE = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*|\d+(?:[.,]\d+)*|[^\w\s]|_")
_NO_SPACE_BEFORE = set(".,!?;:%)]}»…")
_NO_SPACE_AFTER = set("¿¡([{«")


class TranslationInputError(ValueError):
    """Bad input to the tokenizer or decoder (empty text, wrong vocabulary...).

    The app turns it into `rnnkit.errors.UsageError`; the edge runtime cannot
    import that class, since it imports no other rnnkit module.
    """


def normalize(text: str) -> tuple[str, int]:
    """Returns NFC-normalized text without control characters, and how many went.

    Characters the vocabulary has never seen are not removed here: they end up
    in `<unk>` tokens. Only invisible control characters (other than white
    space) are dropped, since no sentence means them.
    """
    if not isinstance(text, str):
        raise TranslationInputError(
            f"Expected the text to translate as a string. Received: {type(text)!r}"
        )
    text = unicodedata.normalize("NFC", text)
    kept = []
    dropped = 0
    for char in text:
        if char.isspace():
            kept.append(" ")
        elif unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            dropped += 1
        else:
            kept.append(char)
    return " ".join("".join(kept).split()), dropped


def tokenize(text: str) -> list[str]:
    """Splits a sentence into word and punctuation tokens (case kept)."""
    cleaned, _ = normalize(text)
    return _TOKEN_RE.findall(cleaned)


def detokenize(tokens: Sequence[str]) -> str:
    """Joins tokens into a sentence with the usual spacing around punctuation."""
    out = ""
    previous = ""
    for token in tokens:
        if not out or token in _NO_SPACE_BEFORE or previous in _NO_SPACE_AFTER:
            out += token
        else:
            out += " " + token
        previous = token
    return out


def _fingerprint(tokens: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(tokens).encode("utf-8")).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """A word vocabulary with the four special tokens at ids 0..3.

    Attributes:
        tokens: id -> token; `tokens[:4]` are `<pad>`, `<unk>`, `<s>`, `</s>`.
        language: a free label such as "spa" or "eng".
    """

    tokens: tuple[str, ...]
    language: str = ""

    def __post_init__(self):
        if tuple(self.tokens[:4]) != SPECIALS:
            raise TranslationInputError(
                f"A vocabulary must start with the special tokens {list(SPECIALS)}. "
                f"Received: {list(self.tokens[:4])}"
            )
        if len(set(self.tokens)) != len(self.tokens):
            raise TranslationInputError("A vocabulary holds a token twice.")
        object.__setattr__(
            self, "_index", {token: i for i, token in enumerate(self.tokens)}
        )

    @classmethod
    def build(
        cls, sentences: Iterable[Sequence[str]], size: int, language: str = ""
    ) -> Vocabulary:
        """Keeps the `size - 4` most frequent tokens (ties broken alphabetically)."""
        if size <= len(SPECIALS):
            raise TranslationInputError(
                f"Expected a vocabulary size above {len(SPECIALS)}. Received: {size}"
            )
        counts = Counter(token for sentence in sentences for token in sentence)
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        words = [w for w, _ in ranked if w not in SPECIALS][: size - len(SPECIALS)]
        return cls(tuple(SPECIALS) + tuple(words), language)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def fingerprint(self) -> str:
        """A short SHA-256 of the token list; models record it to catch mix-ups."""
        return _fingerprint(self.tokens)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        return [self._index.get(token, UNK_ID) for token in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[int(i)] for i in ids]

    def to_json(self) -> dict:
        return {
            "format": VOCAB_FORMAT,
            "language": self.language,
            "fingerprint": self.fingerprint,
            "tokens": list(self.tokens),
        }

    @classmethod
    def from_json(cls, payload: dict) -> Vocabulary:
        if not isinstance(payload, dict) or payload.get("format") != VOCAB_FORMAT:
            raise TranslationInputError(
                f"Not a translation vocabulary. Expected a JSON object with "
                f"format={VOCAB_FORMAT!r}. Received: format="
                f"{payload.get('format') if isinstance(payload, dict) else payload!r}"
            )
        vocab = cls(tuple(payload["tokens"]), payload.get("language", ""))
        if payload.get("fingerprint") != vocab.fingerprint:
            raise TranslationInputError(
                "The vocabulary file is damaged: its fingerprint does not match its "
                f"tokens. Expected {vocab.fingerprint}. Received: "
                f"{payload.get('fingerprint')}"
            )
        return vocab

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(self.to_json(), ensure_ascii=False))
        os.replace(temporary, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocabulary:
        path = Path(path)
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise TranslationInputError(
                f"Cannot read the vocabulary file. Expected a JSON file written by "
                f"rnnkit. Received: {path} ({error})"
            ) from error
        return cls.from_json(payload)


@dataclasses.dataclass(frozen=True)
class EncodedSource:
    """A source sentence as the encoder takes it.

    Attributes:
        ids: int32 array (1, max_len), `</s>`-terminated and zero-padded.
        tokens: the source tokens kept (after any truncation), without `</s>`.
        truncated: how many tokens were cut off the end to fit `max_len`.
        unknown: the source tokens that map to `<unk>`.
        dropped_characters: control characters removed from the input.
    """

    ids: np.ndarray
    tokens: tuple[str, ...]
    truncated: int
    unknown: tuple[str, ...]
    dropped_characters: int


def encode_source(text: str, vocab: Vocabulary, max_len: int) -> EncodedSource:
    """Tokenizes one sentence for the encoder, truncating it to `max_len` ids.

    Raises:
        TranslationInputError: the text is empty or holds no token.
    """
    cleaned, dropped = normalize(text)
    tokens = _TOKEN_RE.findall(cleaned)
    if not tokens:
        raise TranslationInputError(
            "Nothing to translate. Expected a sentence with at least one word or "
            f"punctuation mark. Received: {text!r}"
        )
    # One position is kept for the end-of-sentence marker the model was trained with.
    room = max_len - 1
    truncated = max(0, len(tokens) - room)
    if truncated:
        logger.warning(
            "The sentence has %d tokens; the model reads at most %d, so the last %d "
            "are not translated (split long text into sentences first).",
            len(tokens),
            room,
            truncated,
        )
        tokens = tokens[:room]
    ids = vocab.encode(tokens) + [EOS_ID]
    array = np.zeros((1, max_len), dtype=np.int32)
    array[0, : len(ids)] = ids
    unknown = tuple(t for t, i in zip(tokens, ids, strict=False) if i == UNK_ID)
    return EncodedSource(array, tuple(tokens), truncated, unknown, dropped)


@dataclasses.dataclass(frozen=True)
class Hypothesis:
    """One decoded translation.

    Attributes:
        ids: target ids without `<s>` and `</s>`.
        score: sum of token log-probabilities (the `</s>` included if reached).
        attention: float array (len(ids), source_len), one row per output token.
        finished: whether `</s>` was produced before the length limit.
    """

    ids: tuple[int, ...]
    score: float
    attention: np.ndarray
    finished: bool


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def length_penalty(length: int, alpha: float) -> float:
    """GNMT length normalization ((5 + length) / 6) ** alpha; 1 when alpha is 0."""
    return ((5.0 + length) / 6.0) ** alpha


EncodeFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]
StepFn = Callable[
    [np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    tuple[np.ndarray, np.ndarray, np.ndarray],
]


def greedy_decode(
    encode: EncodeFn, step: StepFn, source_ids: np.ndarray, max_len: int
) -> Hypothesis:
    """Picks the most likely token at every step until `</s>` or `max_len` tokens.

    Ties go to the lowest id (numpy argmax), so Keras and device runs that
    produce the same logits produce the same tokens.
    """
    encoder_outputs, encoder_mask, state = encode(source_ids)
    token = np.full((1, 1), BOS_ID, dtype=np.int32)
    ids, rows, score = [], [], 0.0
    for _ in range(max_len):
        logits, state, attention = step(token, encoder_outputs, encoder_mask, state)
        log_probs = _log_softmax(logits[0])
        best = int(np.argmax(logits[0]))
        score += float(log_probs[best])
        if best == EOS_ID:
            return Hypothesis(tuple(ids), score, _stack(rows, source_ids), True)
        ids.append(best)
        rows.append(np.asarray(attention[0], dtype=np.float32))
        token = np.full((1, 1), best, dtype=np.int32)
    return Hypothesis(tuple(ids), score, _stack(rows, source_ids), False)


def _stack(rows: list, source_ids: np.ndarray) -> np.ndarray:
    if rows:
        return np.stack(rows)
    return np.zeros((0, source_ids.shape[-1]), dtype=np.float32)


def beam_search(
    encode: EncodeFn,
    step: StepFn,
    source_ids: np.ndarray,
    max_len: int,
    beam_width: int = 4,
    alpha: float = 0.6,
) -> list[Hypothesis]:
    """Beam search with GNMT length normalization; best hypothesis first.

    Args:
        encode, step: the model callables (see the module docstring). `step` is
            called with a batch of up to `beam_width` rows.
        source_ids: int32 (1, max_source_len).
        max_len: the most target tokens to produce.
        beam_width: hypotheses kept per step; 1 is greedy decoding.
        alpha: length penalty exponent; 0 ranks by raw log-probability, larger
            values favour longer translations.

    Returns:
        Up to `beam_width` hypotheses, sorted by normalized score.
    """
    if int(beam_width) < 1:
        raise TranslationInputError(
            f"Expected a beam width of 1 or more. Received: {beam_width!r}"
        )
    encoder_outputs, encoder_mask, state = encode(source_ids)
    # Each live beam: (score, ids, attention rows); states kept in one batch array.
    beams = [(0.0, (), ())]
    states = np.asarray(state)
    finished: list[Hypothesis] = []

    def normalized(hyp_score: float, length: int) -> float:
        return hyp_score / length_penalty(length, alpha)

    for _ in range(max_len):
        count = len(beams)
        tokens = np.array(
            [[b[1][-1] if b[1] else BOS_ID] for b in beams], dtype=np.int32
        )
        logits, new_states, attention = step(
            tokens,
            np.repeat(encoder_outputs, count, axis=0),
            np.repeat(encoder_mask, count, axis=0),
            states,
        )
        log_probs = _log_softmax(logits)
        candidates = []
        for row, (score, ids, rows) in enumerate(beams):
            top = np.argsort(-log_probs[row], kind="stable")[: beam_width + 1]
            for token in top:
                candidates.append(
                    (score + float(log_probs[row, token]), row, int(token), ids, rows)
                )
        candidates.sort(key=lambda c: -c[0])
        next_beams, next_rows = [], []
        for score, row, token, ids, rows in candidates:
            if token == EOS_ID:
                finished.append(
                    Hypothesis(
                        ids,
                        score,
                        _stack(list(rows), source_ids),
                        True,
                    )
                )
            else:
                step_rows = rows + (np.asarray(attention[row], dtype=np.float32),)
                next_beams.append((score, ids + (token,), step_rows))
                next_rows.append(row)
            if len(next_beams) == beam_width:
                break
        finished.sort(key=lambda h: -normalized(h.score, len(h.ids) + 1))
        finished = finished[:beam_width]
        best_live = max(
            (normalized(b[0], len(b[1]) + 1) for b in next_beams), default=-math.inf
        )
        # A heuristic stop (GNMT's): once a full beam of finished hypotheses all
        # rank above the best live one, further steps rarely change the winner.
        if len(finished) >= beam_width and (
            normalized(finished[-1].score, len(finished[-1].ids) + 1) >= best_live
        ):
            break
        if not next_beams:
            break
        beams = next_beams
        states = np.asarray(new_states)[next_rows]
    if not finished:
        finished = [
            Hypothesis(ids, score, _stack(list(rows), source_ids), False)
            for score, ids, rows in beams
        ]
    return sorted(finished, key=lambda h: -normalized(h.score, len(h.ids) + 1))


def replace_unknown(
    ids: Sequence[int],
    attention: np.ndarray,
    target_vocab: Vocabulary,
    source_tokens: Sequence[str],
) -> list[str]:
    """Turns ids into tokens, copying the most attended source word for `<unk>`.

    Names and rare words the target vocabulary lacks are usually best left as
    they are; the attention row says which source word the model was reading.
    """
    tokens = []
    for position, token_id in enumerate(ids):
        if token_id == UNK_ID and source_tokens and position < len(attention):
            weights = np.asarray(attention[position][: len(source_tokens)])
            tokens.append(source_tokens[int(np.argmax(weights))])
        else:
            tokens.append(target_vocab.tokens[int(token_id)])
    return tokens


def check_fingerprints(metadata: dict, source: Vocabulary, target: Vocabulary) -> None:
    """Raises if the vocabularies are not the ones the model was trained with."""
    for role, vocab in (("source", source), ("target", target)):
        expected = metadata.get(f"{role}_vocab_fingerprint")
        if expected and expected != vocab.fingerprint:
            raise TranslationInputError(
                f"The {role} vocabulary does not belong to this model. Expected "
                f"fingerprint {expected}. Received: {vocab.fingerprint} "
                f"({vocab.language or 'unnamed'}, {len(vocab)} tokens)"
            )


@dataclasses.dataclass(frozen=True)
class Translation:
    """A translated sentence with everything needed to inspect it.

    Attributes:
        text: the detokenized translation.
        tokens: its target tokens.
        source_tokens: the source tokens the model read.
        attention: float array (len(tokens), len(source_tokens) + 1), the last
            column being the source `</s>`.
        score: log-probability of the hypothesis.
        truncated: source tokens dropped to fit the model's maximum.
        unknown: source tokens outside the source vocabulary.
    """

    text: str
    tokens: tuple[str, ...]
    source_tokens: tuple[str, ...]
    attention: np.ndarray
    score: float
    truncated: int
    unknown: tuple[str, ...]


def translate(
    text: str,
    encode: EncodeFn,
    step: StepFn,
    source_vocab: Vocabulary,
    target_vocab: Vocabulary,
    max_source_len: int,
    max_target_len: int,
    beam_width: int = 1,
    alpha: float = 0.6,
    copy_unknown: bool = True,
) -> Translation:
    """Translates one sentence with greedy (beam_width=1) or beam search decoding."""
    source = encode_source(text, source_vocab, max_source_len)
    if beam_width == 1:
        best = greedy_decode(encode, step, source.ids, max_target_len)
    else:
        best = beam_search(
            encode, step, source.ids, max_target_len, beam_width=beam_width, alpha=alpha
        )[0]
    if copy_unknown:
        tokens = replace_unknown(best.ids, best.attention, target_vocab, source.tokens)
    else:
        tokens = target_vocab.decode(best.ids)
    width = len(source.tokens) + 1
    return Translation(
        text=detokenize(tokens),
        tokens=tuple(tokens),
        source_tokens=source.tokens,
        attention=np.asarray(best.attention)[:, :width],
        score=best.score,
        truncated=source.truncated,
        unknown=source.unknown,
    )
