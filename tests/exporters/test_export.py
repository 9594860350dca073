"""Export -> LiteRT parity, op sets, quantization and streaming, on tiny models."""

import numpy as np
import pytest
from exporter_models import frames_model, padded_tokens, sentiment_model
from rnnkit.exporters import export_model
from rnnkit.exporters.export import ops_with_input_types

from rnnkit.edge import EdgeModel

# Max abs difference vs Keras allowed per quantization (outputs are probabilities
# or small logits of untrained tiny models).
TOLERANCE = {"float32": 1e-5, "float16": 5e-3, "dynamic": 5e-2, "int8": 8e-2}


def _custom_ops(path):
    from rnnkit.edge.flatbuffer import read_flatbuffer

    return read_flatbuffer(path.read_bytes()).custom_codes


@pytest.mark.parametrize(
    "cell, bidirectional, num_layers, quantize, fuse_lstm",
    [
        ("lstm", True, 1, "float32", None),
        ("lstm", True, 1, "float32", True),
        ("lstm", True, 1, "int8", None),
        ("lstm", True, 1, "int8", True),
        ("lstm", False, 2, "float16", None),
        ("lstm", False, 2, "dynamic", True),
        ("gru", True, 1, "float32", None),
        ("gru", False, 1, "int8", None),
        ("simple_rnn", False, 2, "dynamic", None),
    ],
)
def test_sequence_export_parity(
    tmp_path, rng, cell, bidirectional, num_layers, quantize, fuse_lstm
):
    model = sentiment_model(cell, bidirectional, num_layers)
    tokens = padded_tokens(rng)
    result = export_model(
        model,
        tmp_path / "m.tflite",
        quantize=quantize,
        representative_data=tokens,
        metadata={"app": "sentiment", "labels": ["negative", "positive"]},
        fuse_lstm=fuse_lstm,
    )
    assert _custom_ops(result.path) == []
    if quantize == "int8":
        # Everything computes in int8, and GRU/SimpleRNN keep their loop (weights
        # once) instead of being unrolled over the calibration length.
        assert result.parity["float_ops"] == []
    # The default is the WHILE loop for every cell; fuse_lstm=True gives LSTMs
    # the fused op (no loop left) in every quantization.
    fused = "UNIDIRECTIONAL_SEQUENCE_LSTM" in result.ops
    assert fused == bool(fuse_lstm)
    assert ("WHILE" in result.ops) == (not fuse_lstm)
    edge = EdgeModel(result.path)
    got = edge.run(tokens)[0]
    want = model.predict(tokens, verbose=0)
    assert np.max(np.abs(got - want)) <= TOLERANCE[quantize]
    assert result.parity["max_abs_diff"] <= TOLERANCE[quantize]
    assert edge.metadata["labels"] == ["negative", "positive"]
    assert edge.metadata["rnnkit"]["quantization"] == quantize
    if quantize == "int8":
        assert result.parity["inputs"][0]["dtype"] == "int32"  # token ids stay integer
        assert result.parity["outputs"][0]["dtype"] == "int8"


@pytest.mark.parametrize(
    "cell, num_layers, quantize",
    [
        ("gru", 2, "float32"),
        ("lstm", 1, "float32"),
        ("lstm", 2, "int8"),
        ("simple_rnn", 1, "int8"),
    ],
)
def test_streaming_steps_equal_full_sequence(tmp_path, rng, cell, num_layers, quantize):
    model = frames_model(cell, num_layers)
    frames = rng.normal(size=(6, 9, 6)).astype(np.float32)
    result = export_model(
        model,
        tmp_path / "s.tflite",
        quantize=quantize,
        representative_data=frames,
        streaming=True,
    )
    assert _custom_ops(result.path) == []
    assert "WHILE" not in result.ops
    edge = EdgeModel(result.path)
    stream = edge.stream()
    steps = np.concatenate([stream.step(frames[0, t]) for t in range(9)], axis=0)
    want = model.predict(frames[:1], verbose=0)[0]
    assert np.max(np.abs(steps - want)) <= TOLERANCE[quantize]
    stream.reset()
    again = np.concatenate([stream.step(frames[0, t]) for t in range(9)], axis=0)
    np.testing.assert_array_equal(again, steps)
    np.testing.assert_allclose(edge.run(frames[:2])[0][0], steps, atol=1e-6)


@pytest.mark.parametrize("cell", ["gru", "lstm", "simple_rnn"])
def test_int8_streaming_size_and_micro(tmp_path, rng, cell):
    import keras

    layer = {"gru": keras.layers.GRU, "lstm": keras.layers.LSTM}.get(
        cell, keras.layers.SimpleRNN
    )
    inputs = keras.Input((None, 16))
    outputs = keras.layers.Dense(10)(layer(64, return_sequences=True)(inputs))
    model = keras.Model(inputs, outputs)
    frames = rng.normal(size=(4, 10, 16)).astype(np.float32)
    results = {
        q: export_model(
            model,
            tmp_path / f"{q}.tflite",
            quantize=q,
            representative_data=frames,
            streaming=True,
            micro=q == "int8",
        )
        for q in ("float32", "int8")
    }
    # The target for one-step int8 files: at most 0.40x of float32.
    assert results["int8"].size_bytes <= 0.40 * results["float32"].size_bytes
    micro = results["int8"].micro
    assert micro["runs"] is True
    assert micro["arena_bytes"] > 0
    # Reference (TFLM) and optimized (LiteRT) int8 kernels round differently.
    assert micro["max_diff_vs_litert"] <= 2


@pytest.mark.parametrize(
    "cell, return_sequences", [("gru", False), ("simple_rnn", False), ("gru", True)]
)
def test_int8_sequence_loop_is_small_and_runs_in_micro(
    tmp_path, rng, cell, return_sequences
):
    """Full-sequence int8 GRU/SimpleRNN: one WHILE loop, no float math, TFLM."""
    import keras

    layer = keras.layers.GRU if cell == "gru" else keras.layers.SimpleRNN
    inputs = keras.Input((None, 16))
    hidden = layer(64, return_sequences=return_sequences)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10)(hidden))
    frames = rng.normal(size=(16, 20, 16)).astype(np.float32)
    results = {
        q: export_model(
            model,
            tmp_path / f"{q}.tflite",
            quantize=q,
            representative_data=frames,
            micro=q == "int8",
        )
        for q in ("float32", "int8")
    }
    int8 = results["int8"]
    assert "WHILE" in int8.ops
    assert int8.parity["float_ops"] == []
    # Weights once, int8: well below float32 (SimpleRNN's weights are few, so the
    # graph's own size weighs more).
    ratio = 0.5 if cell == "gru" else 0.7
    assert int8.size_bytes < ratio * results["float32"].size_bytes
    assert int8.parity["max_abs_diff"] < 0.1
    assert int8.micro["runs"] is True
    # Many-to-many too: the loop writes its outputs with DYNAMIC_UPDATE_SLICE
    # into a fixed-shape tensor, which TFLite Micro plans like LiteRT.
    assert int8.micro["agrees_with_litert"] is True
    if return_sequences:
        assert "DYNAMIC_UPDATE_SLICE" in int8.ops
    # The same file on the edge runtime agrees with Keras on every step.
    got = EdgeModel(int8.path).run(frames[:4])[0]
    want = model.predict(frames[:4], verbose=0)
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) < 0.1


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_int8_loop_gates_use_the_fixed_activation_scales(tmp_path, rng, cell):
    """The int8 loop form (LSTM with fuse_lstm=False): integer math throughout,
    and sigmoid/tanh outputs carry TFLite's own int8 scales (no requantizing op)."""
    import keras

    layer = keras.layers.LSTM if cell == "lstm" else keras.layers.GRU
    inputs = keras.Input((None, 16))
    model = keras.Model(inputs, keras.layers.Dense(10)(layer(32)(inputs)))
    frames = rng.normal(size=(16, 12, 16)).astype(np.float32)
    result = export_model(
        model,
        tmp_path / "int8.tflite",
        quantize="int8",
        representative_data=frames,
        fuse_lstm=False,
    )
    assert "WHILE" in result.ops
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" not in result.ops
    assert result.parity["float_ops"] == []
    requantizing = [
        name
        for name, input_types in ops_with_input_types(result.path.read_bytes())
        if name == "QUANTIZE" and input_types == ["INT8"]
    ]
    assert requantizing == []
    assert result.parity["max_abs_diff"] < 0.1


def test_custom_layer_with_sites_keeps_the_int8_loop(tmp_path, rng):
    """A custom layer that marks its intermediates (`call_with_sites`) is
    calibrated like a built-in one: the GRU keeps its loop, all in int8."""
    import keras

    class ScaledSquare(keras.layers.Layer):
        def call(self, x):
            return 0.5 * (x * x)

        def call_with_sites(self, sites, x):
            return 0.5 * sites.act("square", x * x)

    inputs = keras.Input((None, 6))
    hidden = ScaledSquare()(keras.layers.GRU(8)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3)(hidden))
    frames = rng.normal(size=(8, 7, 6)).astype(np.float32)
    result = export_model(
        model, tmp_path / "m.tflite", quantize="int8", representative_data=frames
    )
    assert {e["lowered_to"] for e in result.parity["lowered"]} == {"while_loop"}
    assert result.parity["float_ops"] == []
    assert result.parity["max_abs_diff"] < 0.1


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_int8_loop_form_falls_back_for_unmarked_layers(tmp_path, rng, cell):
    """A layer whose own math the int8 loop form cannot mark: a GRU is unrolled,
    an LSTM fused (the converter calibrates the fused op); both still int8."""
    import keras

    layer = keras.layers.GRU if cell == "gru" else keras.layers.LSTM
    inputs = keras.Input((None, 6))
    hidden = layer(8, return_sequences=True)(inputs)
    hidden = keras.layers.LayerNormalization()(hidden)
    model = keras.Model(inputs, keras.layers.Dense(3)(hidden))
    frames = rng.normal(size=(8, 7, 6)).astype(np.float32)
    result = export_model(
        model, tmp_path / "m.tflite", quantize="int8", representative_data=frames
    )
    lowered = {e["lowered_to"] for e in result.parity["lowered"]}
    assert lowered == ({"unrolled"} if cell == "gru" else {"fused_lstm"})
    assert "WHILE" not in result.ops
    assert ("UNIDIRECTIONAL_SEQUENCE_LSTM" in result.ops) == (cell == "lstm")
    assert result.parity["max_abs_diff"] < 0.3


def test_go_backwards_sequence(tmp_path, rng):
    model = frames_model("lstm", 1, go_backwards=True)
    frames = rng.normal(size=(3, 7, 6)).astype(np.float32)
    for fuse_lstm in (True, False):
        result = export_model(
            model,
            tmp_path / "b.tflite",
            representative_data=frames,
            fuse_lstm=fuse_lstm,
        )
        assert ("UNIDIRECTIONAL_SEQUENCE_LSTM" in result.ops) == fuse_lstm
        got = EdgeModel(result.path).run(frames)[0]
        np.testing.assert_allclose(got, model.predict(frames, verbose=0), atol=1e-5)


def test_encoder_with_states(tmp_path, rng):
    import keras

    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(30, 8, mask_zero=True)(inputs)
    sequence, h_fwd, h_bwd = keras.layers.Bidirectional(
        keras.layers.GRU(8, return_sequences=True, return_state=True)
    )(x)
    state = keras.layers.Concatenate()([h_fwd, h_bwd])
    model = keras.Model(inputs, [sequence, state])
    tokens = rng.integers(1, 30, size=(3, 6)).astype(np.int32)
    result = export_model(model, tmp_path / "enc.tflite", representative_data=tokens)
    got = EdgeModel(result.path).run(tokens)
    for have, want in zip(got, model.predict(tokens, verbose=0), strict=True):
        np.testing.assert_allclose(have, want, atol=1e-5)


def test_one_step_decoder_with_cell_and_attention(tmp_path, rng):
    import keras

    units = 8
    token = keras.Input((1,), dtype="int32")
    state = keras.Input((units,))
    memory = keras.Input((None, units))
    x = keras.layers.Reshape((6,))(keras.layers.Embedding(20, 6)(token))
    output, new_state = keras.layers.GRUCell(units)(x, [state])
    query = keras.layers.Reshape((1, units))(output)
    context = keras.layers.Reshape((units,))(keras.layers.Attention()([query, memory]))
    logits = keras.layers.Dense(20)(keras.layers.Concatenate()([output, context]))
    new_state = new_state[0] if isinstance(new_state, (list, tuple)) else new_state
    model = keras.Model([token, state, memory], [logits, new_state])
    data = [
        rng.integers(1, 20, size=(3, 1)).astype(np.int32),
        rng.normal(size=(3, units)).astype(np.float32),
        rng.normal(size=(3, 5, units)).astype(np.float32),
    ]
    result = export_model(model, tmp_path / "decoder.tflite", representative_data=data)
    assert result.parity["max_abs_diff"] <= TOLERANCE["float32"]
    got = EdgeModel(result.path).run(*data)
    for have, want in zip(got, model.predict(data, verbose=0), strict=True):
        np.testing.assert_allclose(have, want, atol=1e-5)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_reset_after_variants(tmp_path, rng, reset_after):
    import keras

    inputs = keras.Input((None, 5))
    outputs = keras.layers.GRU(8, return_sequences=True, reset_after=reset_after)(
        inputs
    )
    model = keras.Model(inputs, outputs)
    frames = rng.normal(size=(2, 6, 5)).astype(np.float32)
    for streaming in (False, True):
        result = export_model(
            model,
            tmp_path / f"g{streaming}.tflite",
            representative_data=frames,
            streaming=streaming,
        )
        assert result.parity["max_abs_diff"] <= TOLERANCE["float32"]
