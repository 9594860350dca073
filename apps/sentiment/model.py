"""The sentiment network: token ids -> embedding -> bidirectional RNN -> softmax.

Padding id 0 is masked (`Embedding(mask_zero=True)`), so a padded batch gives
the same probabilities as each sentence alone at its exact length; the edge
runtime feeds one sentence at a time at its exact length, which needs no
mask at all.
"""

from __future__ import annotations

import dataclasses

import keras

from rnnkit.errors import UsageError
from rnnkit.layers import RecurrentStack

INPUT_NAME = "token_ids"
OUTPUT_NAME = "probabilities"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of the classifier.

    Attributes:
        cell: "lstm" or "gru" (or "simple_rnn").
        embedding_dim: width of the word vectors (trained from scratch).
        units: recurrent units per direction.
        num_layers: recurrent layers in the stack.
        bidirectional: read the sentence both ways.
        embedding_dropout: dropout on the word vectors.
        dropout: dropout between recurrent layers and before the classifier.
        pooling: the sentence vector: "last" (the recurrent stack's final
            state) or "max" (the maximum over every step's output; tried on
            SST-2 without gain, see benchmarks/sentiment_trials.py).
    """

    cell: str = "lstm"
    embedding_dim: int = 128
    units: int = 64
    num_layers: int = 1
    bidirectional: bool = True
    embedding_dropout: float = 0.3
    dropout: float = 0.4
    pooling: str = "last"


def build_model(vocab_size: int, num_classes: int, config: ModelConfig) -> keras.Model:
    """Builds the uncompiled classifier.

    Args:
        vocab_size: tokenizer vocabulary size (ids 0..vocab_size-1, 0 = padding).
        num_classes: number of labels.
        config: the architecture.

    Returns:
        A functional `keras.Model` from int32 ids (batch, time) to class
        probabilities (batch, num_classes).
    """
    inputs = keras.Input(shape=(None,), dtype="int32", name=INPUT_NAME)
    x = keras.layers.Embedding(
        vocab_size, config.embedding_dim, mask_zero=True, name="embedding"
    )(inputs)
    if config.embedding_dropout:
        x = keras.layers.Dropout(config.embedding_dropout, name="embedding_dropout")(x)
    if config.pooling not in ("last", "max"):
        raise UsageError(
            f"Unknown pooling. Expected 'last' or 'max'. Received: {config.pooling!r}"
        )
    x = RecurrentStack(
        config.cell,
        units=config.units,
        num_layers=config.num_layers,
        bidirectional=config.bidirectional,
        dropout=config.dropout,
        return_sequences=config.pooling == "max",
        name="encoder",
    )(x)
    if config.pooling == "max":
        # Masked steps output zeros, which only win where every real step is < 0.
        x = keras.layers.GlobalMaxPooling1D(name="pooling")(x)
    if config.dropout:
        x = keras.layers.Dropout(config.dropout, name="classifier_dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name=OUTPUT_NAME)(x)
    return keras.Model(inputs, outputs, name=f"sentiment_{config.cell}")
