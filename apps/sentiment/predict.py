"""Classifiers over a trained model file: `.keras` (Keras) or `.tflite` (edge runtime).

Both kinds tokenize with `rnnkit.edge.text.WordTokenizer`, so they see the
same ids. `EdgeClassifier` imports only `rnnkit.edge` and numpy: classifying
with a .tflite file never loads TensorFlow.

A run folder (or `models/sentiment/`) holds:

* `model.keras` with `vocabulary.json` and `sentiment.json` (labels, the
  vocabulary fingerprint, the preset) beside it;
* `model_int8.tflite` (or any exported .tflite), whose embedded metadata
  carries the labels and the whole vocabulary, so it needs nothing beside it.

Example:
    >>> from rnnkit.apps.sentiment.predict import load_classifier  # doctest: +SKIP
    >>> clf = load_classifier("models/sentiment/model_int8.tflite")  # doctest: +SKIP
    >>> clf.predict(["a gorgeous, witty film"])  # doctest: +SKIP
    [('positive', 0.97)]
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rnnkit.edge.text import VocabularyError, WordTokenizer
from rnnkit.errors import ModelFileError, UsageError

logger = logging.getLogger(__name__)

APP_NAME = "sentiment"
INFO_FILE = "sentiment.json"
EXPORT_METADATA_FILE = "export_metadata.json"
VOCABULARY_FILE = "vocabulary.json"


def tflite_metadata(info: dict, tokenizer: WordTokenizer) -> dict:
    """The metadata a sentiment .tflite carries (labels and vocabulary)."""
    return {
        "app": "sentiment",
        "task": "text classification (many-to-one)",
        "labels": list(info["labels"]),
        "vocabulary": tokenizer.to_dict(),
        "vocabulary_fingerprint": tokenizer.fingerprint,
        "input": "int32 token ids from rnnkit.edge.text.WordTokenizer, batch 1",
        "output": "class probabilities in label order",
    }


def _vocabulary_error(error: VocabularyError) -> UsageError:
    return UsageError(str(error))


class Classifier:
    """Common half: tokenizing, empty-text checks, batching of results."""

    labels: list[str]
    tokenizer: WordTokenizer

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text; a text without any token is a `UsageError`."""
        encoded = []
        for index, text in enumerate(texts):
            try:
                ids = self.tokenizer.encode(text)
            except VocabularyError as error:
                raise _vocabulary_error(error) from None
            if not ids:
                raise UsageError(
                    f"Text {index + 1} has no words to classify (it is empty or only "
                    f"whitespace). Expected at least one token. Received: {text!r}"
                )
            encoded.append(ids)
        return encoded

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities, shape (len(texts), len(labels))."""
        if isinstance(texts, str):
            texts = [texts]
        if not len(texts):
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return self._probabilities(self.encode(texts))

    def predict(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        """(label, probability of that label) for each text."""
        probabilities = self.predict_proba(texts)
        return [
            (self.labels[int(row.argmax())], float(row.max())) for row in probabilities
        ]

    def _probabilities(self, encoded: list[list[int]]) -> np.ndarray:
        raise NotImplementedError


def read_info(model_path: Path) -> dict:
    """Reads `sentiment.json` beside a .keras model."""
    path = model_path.with_name(INFO_FILE)
    if not path.is_file():
        raise ModelFileError(
            f"{path.name} is missing beside the model. Expected the files written by "
            f"`rnnkit train sentiment` (model.keras, {INFO_FILE}, {VOCABULARY_FILE}). "
            f"Received: {model_path}"
        )
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelFileError(
            f"{path} is not valid JSON. Expected the training run's file."
        ) from None
    if info.get("app") != APP_NAME or "labels" not in info:
        raise ModelFileError(
            f"{path} does not describe a sentiment model. Expected app='sentiment' "
            f"and labels. Received: app={info.get('app')!r}"
        )
    return info


def load_vocabulary(path: str | os.PathLike) -> WordTokenizer:
    try:
        return WordTokenizer.load(path)
    except VocabularyError as error:
        raise UsageError(f"{path}: {error}") from None


def _checked_vocabulary(
    vocabulary: WordTokenizer, fingerprint: str, vocab_size: int, source: str
) -> WordTokenizer:
    try:
        vocabulary.check_fingerprint(fingerprint, f"the model {source}")
    except VocabularyError as error:
        raise UsageError(str(error)) from None
    if len(vocabulary) != vocab_size:
        raise UsageError(
            f"The vocabulary does not fit the model {source}. Expected "
            f"{vocab_size} tokens. Received: {len(vocabulary)}"
        )
    return vocabulary


class KerasClassifier(Classifier):
    """A trained `model.keras` with the vocabulary and labels beside it.

    Args:
        path: the .keras file.
        vocabulary: a vocabulary file to use instead of the one beside the model;
            it must be the model's own (same fingerprint).
        batch_size: sentences per forward pass (grouped by length).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        vocabulary: str | os.PathLike | None = None,
        batch_size: int = 256,
    ) -> None:
        import keras

        import rnnkit.layers  # noqa: F401  (registers RecurrentStack for loading)

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelFileError(
                f"The model file does not exist. Received: {self.path}"
            )
        info = read_info(self.path)
        self.info = info
        self.labels = list(info["labels"])
        try:
            self.model = keras.saving.load_model(self.path, safe_mode=True)
        except Exception as error:  # Keras raises many kinds for a bad file
            raise ModelFileError(
                f"Cannot load the Keras model. Expected a .keras file saved by "
                f"`rnnkit train sentiment`. Received: {self.path} ({type(error).__name__}: "
                f"{str(error)[:200]})"
            ) from None
        vocab_path = (
            Path(vocabulary) if vocabulary else self.path.with_name(VOCABULARY_FILE)
        )
        embedding = self.model.get_layer("embedding")
        self.tokenizer = _checked_vocabulary(
            load_vocabulary(vocab_path),
            info["vocabulary_fingerprint"],
            int(embedding.input_dim),
            str(self.path),
        )
        self.batch_size = batch_size

    def _probabilities(self, encoded: list[list[int]]) -> np.ndarray:
        # Sorting by length keeps the padding (and the work on it) small; the mask
        # makes the padded results equal to the unpadded ones.
        order = np.argsort([len(ids) for ids in encoded], kind="stable")
        result = np.zeros((len(encoded), len(self.labels)), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = max(len(encoded[i]) for i in rows)
            batch = np.zeros((len(rows), width), dtype=np.int32)
            for position, row in enumerate(rows):
                batch[position, : len(encoded[row])] = encoded[row]
            result[rows] = np.asarray(self.model(batch, training=False))
        return result


class EdgeClassifier(Classifier):
    """An exported .tflite model run by `rnnkit.edge.EdgeModel` (no TensorFlow).

    The labels and vocabulary come from the file's metadata; a `vocabulary`
    file given explicitly must have the same fingerprint. Each sentence runs
    alone (batch 1) at its exact length, so no padding or mask is involved.
    """

    def __init__(
        self, path: str | os.PathLike, vocabulary: str | os.PathLike | None = None
    ) -> None:
        from rnnkit.edge import EdgeModel
        from rnnkit.edge._errors import EdgeError

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelFileError(
                f"The model file does not exist. Received: {self.path}"
            )
        try:
            self.model = EdgeModel(str(self.path))
        except EdgeError as error:
            raise ModelFileError(f"{self.path}: {error}") from None
        metadata = self.model.metadata or {}
        if metadata.get("app") != APP_NAME or "vocabulary" not in metadata:
            raise ModelFileError(
                f"{self.path} is not a sentiment model: its metadata lacks the app name "
                f"or the vocabulary. Expected a file exported with "
                f"rnnkit.apps.sentiment.export. Received: app={metadata.get('app')!r}"
            )
        self.labels = list(metadata["labels"])
        try:
            embedded = WordTokenizer.from_dict(metadata["vocabulary"])
        except VocabularyError as error:
            raise ModelFileError(f"{self.path}: embedded vocabulary: {error}") from None
        if vocabulary:
            self.tokenizer = _checked_vocabulary(
                load_vocabulary(vocabulary),
                embedded.fingerprint,
                len(embedded),
                str(self.path),
            )
        else:
            self.tokenizer = embedded
        self._edge_error = EdgeError

    def _probabilities(self, encoded: list[list[int]]) -> np.ndarray:
        result = np.zeros((len(encoded), len(self.labels)), dtype=np.float32)
        for row, ids in enumerate(encoded):
            try:
                outputs = self.model.run(np.asarray([ids], dtype=np.int32))
            except self._edge_error as error:
                raise UsageError(f"{self.path}: {error}") from None
            if isinstance(outputs, (list, tuple)):
                outputs = outputs[0]
            elif isinstance(outputs, dict):
                outputs = next(iter(outputs.values()))
            result[row] = np.asarray(outputs, dtype=np.float32).reshape(-1)
        return result


def load_classifier(
    path: str | os.PathLike, vocabulary: str | os.PathLike | None = None
) -> Classifier:
    """A `KerasClassifier` for .keras, an `EdgeClassifier` for .tflite.

    A folder is accepted too: its `model.keras`, else `model_int8.tflite`.
    """
    path = Path(path)
    if path.is_dir():
        for name in ("model.keras", "model_int8.tflite"):
            if (path / name).is_file():
                path = path / name
                break
    if path.suffix == ".tflite":
        return EdgeClassifier(path, vocabulary)
    if path.suffix == ".keras":
        return KerasClassifier(path, vocabulary)
    raise UsageError(
        f"Unknown model file type. Expected a .keras or .tflite file (or a run "
        f"folder). Received: {path}"
    )
