"""Tiny models shared by the exporter tests."""

import numpy as np


def sentiment_model(
    cell: str, bidirectional: bool, num_layers: int = 1, vocab: int = 40
):
    import keras

    from rnnkit.layers import RecurrentStack

    inputs = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(vocab, 8, mask_zero=True)(inputs)
    x = RecurrentStack(
        cell,
        8,
        num_layers=num_layers,
        bidirectional=bidirectional,
        return_sequences=False,
    )(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def frames_model(
    cell: str, num_layers: int, go_backwards: bool = False, features: int = 6
):
    import keras

    from rnnkit.layers import RecurrentStack

    inputs = keras.Input((None, features), name="frames")
    x = keras.layers.Dense(8)(inputs)
    x = RecurrentStack(
        cell,
        12,
        num_layers=num_layers,
        return_sequences=True,
        go_backwards=go_backwards,
    )(x)
    outputs = keras.layers.Dense(3)(x)
    return keras.Model(inputs, outputs)


def padded_tokens(rng, rows=12, steps=8, vocab=40):
    tokens = rng.integers(1, vocab, size=(rows, steps)).astype(np.int32)
    for row in range(rows):
        tokens[row, rng.integers(3, steps + 1) :] = 0
    return tokens
