"""Loading a trained translator, on Keras or on the edge runtime.

This module imports no TensorFlow: the `.tflite` path of the command line
runs through it with `rnnkit.edge` and numpy only. The Keras translator is in
`model.py` and is imported only when a `.keras` model is asked for.

A MODEL argument may be a run folder or `models/translation` (the Keras model
inside it is used; a folder without one, like `models/translation`, uses its
exported encoder/decoder pair on the edge runtime), a `.keras` file, or an
encoder or decoder `.tflite` file (its partner is the file with the other
role's name in the same folder).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from rnnkit.edge import translate as edge
from rnnkit.errors import ModelFileError, UsageError

logger = logging.getLogger(__name__)

METADATA_FILE = "translation.json"
SOURCE_VOCAB_FILE = "source_vocab.json"
TARGET_VOCAB_FILE = "target_vocab.json"


def _usage(error: edge.TranslationInputError) -> UsageError:
    return UsageError(str(error))


class Translator:
    """Shared decoding logic over `encode` / `step` callables.

    Attributes:
        metadata: the model's translation metadata (see train.py).
        source_vocab, target_vocab: `rnnkit.edge.translate.Vocabulary`.
    """

    backend = "abstract"

    def __init__(
        self,
        metadata: dict,
        source_vocab: edge.Vocabulary,
        target_vocab: edge.Vocabulary,
    ):
        try:
            edge.check_fingerprints(metadata, source_vocab, target_vocab)
        except edge.TranslationInputError as error:
            raise _usage(error) from error
        self.metadata = metadata
        self.source_vocab = source_vocab
        self.target_vocab = target_vocab
        self.max_source_len = int(metadata["max_source_len"])
        self.max_target_len = int(metadata["max_target_len"])

    def encode(self, source_ids: np.ndarray):
        raise NotImplementedError

    def step(self, tokens, encoder_outputs, encoder_mask, state):
        raise NotImplementedError

    def translate(
        self, text: str, beam_width: int = 1, alpha: float = 0.6
    ) -> edge.Translation:
        """Translates one sentence; see `rnnkit.edge.translate.translate`."""
        try:
            return edge.translate(
                text,
                self.encode,
                self.step,
                self.source_vocab,
                self.target_vocab,
                self.max_source_len,
                self.max_target_len,
                beam_width=beam_width,
                alpha=alpha,
            )
        except edge.TranslationInputError as error:
            raise _usage(error) from error

    def translate_many(
        self, texts: list[str], beam_width: int = 1, alpha: float = 0.6
    ) -> list[str]:
        return [self.translate(t, beam_width, alpha).text for t in texts]


def read_metadata(folder: Path) -> tuple[dict, edge.Vocabulary, edge.Vocabulary]:
    """Reads translation.json and the two vocabularies of a run folder."""
    path = folder / METADATA_FILE
    if not path.is_file():
        raise ModelFileError(
            f"Not a translation model folder. Expected {METADATA_FILE} beside the "
            f"model. Received: {folder}"
        )
    metadata = json.loads(path.read_text(encoding="utf-8"))
    try:
        source = edge.Vocabulary.load(folder / SOURCE_VOCAB_FILE)
        target = edge.Vocabulary.load(folder / TARGET_VOCAB_FILE)
    except edge.TranslationInputError as error:
        raise UsageError(str(error)) from error
    return metadata, source, target


class EdgeTranslator(Translator):
    """Runs exported encoder and one-step decoder `.tflite` files with `EdgeModel`.

    The vocabularies come from the files' embedded metadata, so a `.tflite`
    pair is self-contained.
    """

    backend = "tflite"

    def __init__(
        self, encoder_path: str | os.PathLike, decoder_path: str | os.PathLike
    ):
        from rnnkit.edge import EdgeModel

        self.encoder_path, self.decoder_path = Path(encoder_path), Path(decoder_path)
        self.encoder_model = EdgeModel(str(self.encoder_path))
        self.decoder_model = EdgeModel(str(self.decoder_path))
        metadata = dict(self.decoder_model.metadata)
        encoder_metadata = dict(self.encoder_model.metadata)
        for key in ("source_vocab_fingerprint", "target_vocab_fingerprint"):
            if encoder_metadata.get(key) != metadata.get(key):
                raise UsageError(
                    "The encoder and decoder files do not belong together: their "
                    f"{key} differ. Expected the same value. Received: "
                    f"{encoder_metadata.get(key)} and {metadata.get(key)}"
                )
        try:
            source = edge.Vocabulary(
                tuple(metadata["source_vocabulary"]), metadata["source_language"]
            )
            target = edge.Vocabulary(
                tuple(metadata["target_vocabulary"]), metadata["target_language"]
            )
        except (KeyError, edge.TranslationInputError) as error:
            raise ModelFileError(
                "The .tflite metadata lacks the translation vocabularies. Expected "
                f"files written by `rnnkit train translation`. Received: "
                f"{self.decoder_path} ({error})"
            ) from error
        super().__init__(metadata, source, target)

    def encode(self, source_ids):
        outputs = _as_list(self.encoder_model.run(np.asarray(source_ids, np.int32)))
        memory, mask, state = _order(outputs, ("encoder_outputs", "mask", "state"))
        # The edge runtime strips trailing padding before running a masked encoder
        # (that is what the Keras mask computes); the decoder takes the full width.
        width = self.max_source_len - memory.shape[1]
        if width > 0:
            memory = np.pad(memory, ((0, 0), (0, width), (0, 0)))
            mask = np.pad(mask, ((0, 0), (0, width)))
        return memory, mask, state

    def step(self, tokens, encoder_outputs, encoder_mask, state):
        outputs = self.decoder_model.run(
            np.asarray(tokens, np.int32),
            np.asarray(encoder_outputs, np.float32),
            np.asarray(encoder_mask, np.float32),
            np.asarray(state, np.float32),
        )
        return _order(_as_list(outputs), ("logits", "state", "attention"))


def _as_list(outputs) -> list:
    if isinstance(outputs, dict):
        return [outputs[k] for k in outputs]
    if isinstance(outputs, list | tuple):
        return list(outputs)
    return [outputs]


def _order(outputs: list, roles: tuple[str, ...]) -> tuple:
    # The exporter keeps the Keras output order; the float parity test checks it.
    if len(outputs) != len(roles):
        raise ModelFileError(
            f"The .tflite model has the wrong outputs. Expected {len(roles)} "
            f"({', '.join(roles)}). Received: {len(outputs)}"
        )
    return tuple(np.asarray(o) for o in outputs)


def partner_paths(path: Path) -> tuple[Path, Path]:
    """Returns (encoder, decoder) paths for either one of an exported pair."""
    name = path.name
    if name.startswith("encoder"):
        return path, path.with_name("decoder" + name[len("encoder") :])
    if name.startswith("decoder"):
        return path.with_name("encoder" + name[len("decoder") :]), path
    raise UsageError(
        "A translation .tflite file is named encoder_*.tflite or decoder_*.tflite "
        f"(one of a pair). Received: {path}"
    )


def load_translator(model: str | os.PathLike, quantize: str = "int8") -> Translator:
    """Loads MODEL (a folder, a .keras file, or a .tflite of an exported pair)."""
    path = Path(model)
    if not path.exists():
        raise UsageError(
            "Model not found. Expected a run folder, models/translation, a .keras "
            f"file or an encoder/decoder .tflite file. Received: {model}"
        )
    if path.suffix == ".tflite":
        encoder, decoder = partner_paths(path)
        for part in (encoder, decoder):
            if not part.is_file():
                raise ModelFileError(
                    f"The other half of the exported pair is missing. Expected "
                    f"{part.name} beside {path.name}. Received: no such file"
                )
        return EdgeTranslator(encoder, decoder)
    if path.is_dir() and not (path / "model.keras").is_file():
        # A shipped folder keeps the device files only (the Keras model is too
        # large for the repository): use its exported pair.
        exported = path / f"encoder_{quantize}.tflite"
        if exported.is_file():
            return load_translator(exported, quantize)
        raise ModelFileError(
            f"The folder {path} holds neither model.keras nor {exported.name}. "
            "Expected a run folder written by `rnnkit train translation`."
        )
    from rnnkit.apps.translation.model import KerasTranslator

    if path.is_dir():
        return KerasTranslator.from_dir(path)
    if path.suffix == ".keras":
        return KerasTranslator.from_dir(path.parent, path)
    raise UsageError(
        "Unknown model file type. Expected a folder, .keras or .tflite. "
        f"Received: {model}"
    )
