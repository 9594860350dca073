"""The flatbuffer passes of `rnnkit.exporters.compact`: smaller files, same outputs."""

import numpy as np
import pytest
from rnnkit.exporters import compact
from rnnkit.exporters.export import _build_sequence, _input_specs, ops_with_input_types


def _loop_model(cell: str, return_sequences: bool):
    import keras

    layer = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[cell]
    inputs = keras.Input((None, 6))
    hidden = layer(16, return_sequences=return_sequences)(inputs)
    return keras.Model(inputs, keras.layers.Dense(3)(hidden))


def _run(model_bytes: bytes, frames: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes)
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], [1, *frames.shape[1:]])
    interpreter.allocate_tensors()
    results = []
    for row in frames:
        value = row[None]
        if detail["dtype"] == np.int8:
            scale, zero = detail["quantization"]
            value = np.clip(np.round(value / scale + zero), -128, 127).astype(np.int8)
        interpreter.set_tensor(detail["index"], value)
        interpreter.invoke()
        output = interpreter.get_output_details()[0]
        results.append(interpreter.get_tensor(output["index"]).copy())
    return np.stack(results)


def _loop_body(model):
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            if compact._code(model, op) == compact._OPS.WHILE:
                return op, model.subgraphs[op.builtinOptions.bodySubgraphIndex]
    raise AssertionError("no WHILE op")


@pytest.mark.parametrize("quantize", ["float32", "int8"])
@pytest.mark.parametrize("cell,return_sequences", [("lstm", False), ("gru", True)])
def test_compaction_keeps_outputs_bit_for_bit(rng, quantize, cell, return_sequences):
    model = _loop_model(cell, return_sequences)
    frames = rng.normal(size=(6, 20, 6)).astype(np.float32)
    raw, _ = _build_sequence(
        model, _input_specs(model), quantize, [frames], fuse_lstm=False
    )
    packed = compact.compact(raw)

    assert len(packed) < len(raw)
    np.testing.assert_array_equal(_run(packed, frames), _run(raw, frames))

    before, after = compact.load_model(raw), compact.load_model(packed)
    loop_before, _ = _loop_body(before)
    loop_after, body = _loop_body(after)
    # The TensorFlow iteration counter is gone; rnnkit's time index stays.
    assert len(loop_after.inputs) == len(loop_before.inputs) - 1
    body_ops = [compact._code(after, op) for op in body.operators]
    if return_sequences and quantize == "float32":
        # The (20, 1, 16) float zeros the outputs are collected in: a FILL.
        codes = {compact._code(after, op) for op in after.subgraphs[0].operators}
        assert compact._OPS.FILL in codes
    if quantize == "int8":
        # The state (and collected outputs) are carried as int8: no per-step
        # QUANTIZE or DEQUANTIZE.
        assert compact._OPS.QUANTIZE not in body_ops
        assert compact._OPS.DEQUANTIZE not in body_ops
        float_ops = {
            name
            for name, types in ops_with_input_types(packed)
            if "FLOAT32" in types and name not in ("QUANTIZE", "DEQUANTIZE")
        }
        assert float_ops == set()
        # The op list read from the operator codes names only ops still used.
        used = {
            compact._code(after, op) for sg in after.subgraphs for op in sg.operators
        }
        listed = {
            max(c.builtinCode, c.deprecatedBuiltinCode) for c in after.operatorCodes
        }
        assert listed == used


def test_packed_buffers_are_aligned_and_shared(rng):
    from tensorflow.lite.python import schema_py_generated as schema

    model = _loop_model("lstm", False)
    frames = rng.normal(size=(4, 5, 6)).astype(np.float32)
    raw, _ = _build_sequence(model, _input_specs(model), "float32", [frames])
    packed = compact.compact(raw)

    root = schema.Model.GetRootAsModel(packed, 0)
    base = np.frombuffer(packed, np.uint8).ctypes.data
    offsets = []
    for index in range(root.BuffersLength()):
        data = root.Buffers(index).DataAsNumpy()
        if isinstance(data, np.ndarray) and data.size:
            offsets.append(data.ctypes.data - base)
    assert len(offsets) >= 3  # weights, biases, the converter's metadata
    assert [offset % 16 for offset in offsets] == [0] * len(offsets)
    tree = compact.load_model(packed)
    # Only buffer 0 is empty: data-less tensors share it.
    empty = [b for b in tree.buffers if b.data is None or len(b.data) == 0]
    assert len(empty) == 1 and tree.buffers.index(empty[0]) == 0
    # Identical quantization tables and shape vectors are written once.
    tables, shapes, tensors = set(), set(), 0
    for s in range(root.SubgraphsLength()):
        subgraph = root.Subgraphs(s)
        for t in range(subgraph.TensorsLength()):
            tensor = subgraph.Tensors(t)
            tensors += 1
            if tensor.Quantization() is not None:
                tables.add(tensor.Quantization()._tab.Pos)
            shapes.add(tensor.ShapeAsNumpy().ctypes.data if tensor.ShapeLength() else 0)
    assert len(tables) < tensors / 4
    assert len(shapes) < tensors / 2
