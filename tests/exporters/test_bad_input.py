"""Bad input: tampered or corrupt files, Flex ops, wrong data, unlowerable layers."""

import numpy as np
import pytest
from exporter_models import frames_model, padded_tokens, sentiment_model
from rnnkit.exporters import export_model

from rnnkit.edge import EdgeModel, EdgeUsageError, ModelFileError
from rnnkit.errors import ExportError, UsageError


@pytest.fixture(scope="module")
def int8_file(tmp_path_factory):
    rng = np.random.default_rng(3)
    model = frames_model("gru", 1)
    frames = rng.normal(size=(4, 6, 6)).astype(np.float32)
    out = tmp_path_factory.mktemp("bad") / "small_int8.tflite"
    export_model(
        model,
        out,
        quantize="int8",
        representative_data=frames,
        streaming=True,
        micro=True,
        metadata={"app": "voice", "labels": ["yes", "no", "up"]},
    )
    return out


def test_micro_check_and_c_files(int8_file):
    import json

    parity = json.loads(int8_file.with_name("small_int8.parity.json").read_text())
    assert parity["runs_in_tflite_micro"] is True
    assert parity["micro"]["arena_bytes"] > 0
    source = int8_file.with_name("small_int8.cc").read_text()
    assert source.count("0x") == int8_file.stat().st_size
    assert int8_file.with_name("small_int8.h").is_file()


def test_metadata_round_trip_without_manifest(int8_file, tmp_path):
    moved = tmp_path / "moved.tflite"
    moved.write_bytes(int8_file.read_bytes())  # no manifest beside it
    model = EdgeModel(moved)
    assert model.metadata["labels"] == ["yes", "no", "up"]
    assert model.verified["checked"] == ["embedded_sha256"]


def test_tampered_file_is_refused_by_loader_and_cli(int8_file, tmp_path):
    from rnnkit.cli import main

    data = bytearray(int8_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="checksum"):
        EdgeModel(bad)
    assert main(["inspect", str(bad)]) != 0
    assert main(["inspect", str(int8_file), "--json"]) == 0


def test_seeded_fuzz_never_runs_a_corrupt_file(int8_file):
    original = int8_file.read_bytes()
    rng = np.random.default_rng(2024)
    outcomes = {"refused": 0}
    for trial in range(300):
        data = bytearray(original)
        kind = trial % 3
        if kind == 0:
            data = data[: int(rng.integers(0, len(data) - 1))]
        elif kind == 1:
            for _ in range(int(rng.integers(1, 8))):
                position = int(rng.integers(0, len(data)))
                data[position] ^= int(rng.integers(1, 256))
        else:
            position = int(rng.integers(0, max(1, len(data) - 4)))
            data[position : position + 4] = rng.integers(
                0, 256, 4, dtype=np.uint8
            ).tobytes()
            if bytes(data) == original:
                continue
        with pytest.raises(ModelFileError):
            EdgeModel(bytes(data))
        outcomes["refused"] += 1
    assert outcomes["refused"] >= 290


def test_flex_ops_are_refused(int8_file):
    from rnnkit.exporters.metadata import embed_metadata
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(
        bytearray(int8_file.read_bytes())
    )
    model.operatorCodes[0].builtinCode = 32
    model.operatorCodes[0].deprecatedBuiltinCode = 32
    model.operatorCodes[0].customCode = "FlexTensorListReserve"
    flex = embed_metadata(flatbuffer_utils.convert_object_to_bytearray(model), {})
    with pytest.raises(ModelFileError, match="Flex"):
        EdgeModel(flex)


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        EdgeModel(tmp_path / "nothing.tflite")


def test_wrong_inputs_at_inference(int8_file):
    stream = EdgeModel(int8_file).stream()
    with pytest.raises(EdgeUsageError, match="wrong shape"):
        stream.step(np.zeros(5, np.float32))
    with pytest.raises(EdgeUsageError, match="integer|float"):
        stream.step(np.array(["a"] * 6))


@pytest.mark.parametrize(
    "data, message",
    [
        (np.zeros((4, 8, 2), np.int32), "wrong shape"),
        (np.zeros((4, 8), np.float32), "integer token ids"),
        ([np.zeros((4, 8), np.int32)] * 2, "one array per model input"),
    ],
)
def test_bad_representative_data(tmp_path, data, message):
    model = sentiment_model("gru", False)
    with pytest.raises(UsageError, match=message):
        export_model(
            model, tmp_path / "m.tflite", quantize="int8", representative_data=data
        )
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_int8_needs_representative_data(tmp_path):
    with pytest.raises(UsageError, match="representative_data"):
        export_model(
            sentiment_model("lstm", False), tmp_path / "m.tflite", quantize="int8"
        )


def test_unlowerable_layers_are_named(tmp_path, rng):
    import keras

    inputs = keras.Input((None, 4))
    x = keras.layers.RNN(keras.layers.GRUCell(4), name="generic_rnn")(inputs)
    model = keras.Model(inputs, x)
    with pytest.raises(ExportError, match="generic_rnn.*Expected keras.layers.LSTM"):
        export_model(model, tmp_path / "m.tflite")

    bidirectional = sentiment_model("gru", True)
    with pytest.raises(ExportError, match="bidirectional.*streaming=False"):
        export_model(bidirectional, tmp_path / "s.tflite", streaming=True)
    assert not (tmp_path / "s.tflite").exists()


def test_padded_rows_match_masked_keras(tmp_path, rng):
    model = sentiment_model("gru", True)
    tokens = padded_tokens(rng, rows=5)
    result = export_model(model, tmp_path / "m.tflite", representative_data=tokens)
    got = EdgeModel(result.path).run(tokens)[0]
    np.testing.assert_allclose(got, model.predict(tokens, verbose=0), atol=1e-5)
