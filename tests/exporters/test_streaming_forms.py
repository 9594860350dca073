"""Streaming export of stacked and many-to-one models, and exported file modes."""

import os
import stat

import numpy as np
import pytest
from exporter_models import padded_tokens, sentiment_model
from rnnkit.exporters import export_model

from rnnkit.edge import EdgeModel

TOLERANCE = {"float32": 1e-5, "int8": 8e-2}


def _voice_like_model(features=10):
    """The voice app's `full` form in miniature: Dense, 2-layer GRU stack, softmax."""
    import keras

    from rnnkit.layers import RecurrentStack

    inputs = keras.Input((None, features), name="features")
    x = keras.layers.Dense(12, activation="relu", name="front")(inputs)
    x = RecurrentStack(
        "gru", 16, num_layers=2, dropout=0.15, return_sequences=True, name="recurrent"
    )(x)
    x = keras.layers.Dropout(0.15)(x)
    outputs = keras.layers.Dense(4, activation="softmax")(x)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("quantize", ["float32", "int8"])
def test_two_layer_stack_streams_from_keras_file(tmp_path, rng, quantize):
    model = _voice_like_model()
    saved = tmp_path / "voice.keras"
    model.save(saved)
    frames = rng.normal(size=(4, 7, 10)).astype(np.float32)
    result = export_model(
        str(saved),
        tmp_path / "voice.tflite",
        quantize=quantize,
        representative_data=frames,
        streaming=True,
    )
    assert [entry["lowered_to"] for entry in result.parity["lowered"]] == [
        "cell_step",
        "cell_step",
    ]
    stream = EdgeModel(result.path).stream()
    steps = np.concatenate([stream.step(frames[0, t]) for t in range(7)], axis=0)
    want = model.predict(frames[:1], verbose=0)[0]
    assert np.max(np.abs(steps - want)) <= TOLERANCE[quantize]
    assert result.parity["max_abs_diff"] <= TOLERANCE[quantize]


@pytest.mark.parametrize(
    "cell, num_layers, quantize",
    [("gru", 1, "float32"), ("lstm", 2, "float32"), ("simple_rnn", 2, "int8")],
)
def test_many_to_one_step_equals_prefix(tmp_path, rng, cell, num_layers, quantize):
    import keras

    from rnnkit.layers import RecurrentStack

    inputs = keras.Input((None, 5))
    x = RecurrentStack(cell, 16, num_layers=num_layers, return_sequences=False)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    frames = rng.normal(size=(4, 6, 5)).astype(np.float32)
    result = export_model(
        model,
        tmp_path / "m.tflite",
        quantize=quantize,
        representative_data=frames,
        streaming=True,
    )
    assert result.parity["outputs"][0]["shape"] == [1, 3]
    stream = EdgeModel(result.path).stream()
    for t in range(frames.shape[1]):
        got = stream.step(frames[0, t])
        want = np.asarray(model(frames[:1, : t + 1], training=False))
        assert np.max(np.abs(got - want)) <= TOLERANCE[quantize], t
    assert result.parity["max_abs_diff"] <= TOLERANCE[quantize]
    assert "many-to-one" in result.parity["compared_with"]


def test_masked_many_to_one_parity_compares_real_steps(tmp_path, rng):
    # Padded token rows: the parity report must step over the real tokens only
    # (a one-step model has no mask), so float32 parity stays at rounding level.
    model = sentiment_model("gru", False, num_layers=2)
    tokens = padded_tokens(rng)
    result = export_model(
        model, tmp_path / "s.tflite", representative_data=tokens, streaming=True
    )
    assert result.parity["max_abs_diff"] <= TOLERANCE["float32"]
    row = tokens[0][tokens[0] != 0]
    stream = EdgeModel(result.path).stream()
    for token in row:
        got = stream.step(np.array([token], np.int32))
    want = model.predict(tokens[:1], verbose=0)
    np.testing.assert_allclose(got, want, atol=TOLERANCE["float32"])


def test_exported_files_have_the_normal_mode(tmp_path, rng):
    import keras

    inputs = keras.Input((None, 4))
    outputs = keras.layers.Dense(2)(keras.layers.GRU(8, return_sequences=True)(inputs))
    model = keras.Model(inputs, outputs)
    frames = rng.normal(size=(3, 5, 4)).astype(np.float32)
    previous = os.umask(0o022)
    try:
        result = export_model(
            model,
            tmp_path / "g.tflite",
            quantize="int8",
            representative_data=frames,
            streaming=True,
            micro=True,
        )
    finally:
        os.umask(previous)
    written = [
        result.path,
        result.manifest_path,
        result.parity_path,
        tmp_path / "g.h",
        tmp_path / "g.cc",
    ]
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in written}
    assert modes == {path.name: 0o644 for path in written}
