"""`export_model`: one entry point from a Keras model to a verified .tflite file."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from rnnkit.errors import ExportError, UsageError
from rnnkit.files import atomic_write

logger = logging.getLogger(__name__)

QUANTIZE_MODES = ("float32", "float16", "dynamic", "int8")
PADDING_VALUE = 0  # token id that Embedding(mask_zero=True) masks out


@dataclasses.dataclass
class ExportResult:
    """What `export_model` wrote and measured.

    Attributes:
        path: the .tflite file.
        manifest_path: the JSON manifest beside it (SHA-256, metadata, ops).
        parity_path: the parity report beside it.
        parity: the parity report as a dict.
        ops: sorted builtin op names in the file.
        size_bytes: file size.
        micro: the TFLite Micro check (dict) when `micro=True`, else None.
    """

    path: Path
    manifest_path: Path
    parity_path: Path
    parity: dict
    ops: list[str]
    size_bytes: int
    micro: dict | None = None


def sibling(path: Path, suffix: str) -> Path:
    """`out/m.tflite`, '.parity.json' -> `out/m.parity.json`."""
    return path.with_name(path.stem + suffix)


def _load_model(model):
    import keras

    import rnnkit.layers  # noqa: F401  (registers RecurrentStack for loading)

    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file() or path.suffix != ".keras":
            raise UsageError(
                f"Expected a path to an existing .keras file. Received: {path}"
            )
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    if not isinstance(model, keras.Model):
        raise UsageError(
            "`model` must be a keras.Model or a path to a .keras file. "
            f"Received: {type(model).__name__}"
        )
    return model


@dataclasses.dataclass
class _InputSpec:
    name: str
    dtype: str  # "float32" or "int32"
    shape: tuple  # without batch; None for dynamic axes


def _input_specs(model) -> list[_InputSpec]:
    specs = []
    for index, tensor in enumerate(model.inputs):
        dtype = "int32" if "int" in str(tensor.dtype) else "float32"
        specs.append(_InputSpec(f"input_{index}", dtype, tuple(tensor.shape[1:])))
    return specs


def _normalize_samples(data, specs, what: str) -> list[np.ndarray] | None:
    if data is None:
        return None
    arrays = list(data) if isinstance(data, (list, tuple)) else [data]
    if len(arrays) != len(specs):
        raise UsageError(
            f"`{what}` must hold one array per model input. Expected "
            f"{len(specs)} array(s). Received: {len(arrays)}"
        )
    result = []
    for spec, array in zip(specs, arrays, strict=False):
        array = np.asarray(array)
        if spec.dtype == "int32":
            if not np.issubdtype(array.dtype, np.integer):
                raise UsageError(
                    f"`{what}` for {spec.name} must hold integer token ids. "
                    f"Expected an integer array. Received: dtype={array.dtype}"
                )
        elif not np.issubdtype(array.dtype, np.floating):
            raise UsageError(
                f"`{what}` for {spec.name} must be floating point. Expected "
                f"float32 samples. Received: dtype={array.dtype}"
            )
        expected_rank = len(spec.shape) + 1
        ok = array.ndim == expected_rank and all(
            want is None or want == got
            for want, got in zip(spec.shape, array.shape[1:], strict=False)
        )
        if not ok or array.shape[0] < 1:
            raise UsageError(
                f"`{what}` for {spec.name} has the wrong shape. Expected a batch of "
                f"shape (n, {', '.join('None' if s is None else str(s) for s in spec.shape)}). "
                f"Received: shape={array.shape}"
            )
        result.append(array.astype(np.int32 if spec.dtype == "int32" else np.float32))
    if len({a.shape[0] for a in result}) != 1:
        raise UsageError(
            f"Every array in `{what}` must have the same batch size. Received: "
            f"{[a.shape[0] for a in result]}"
        )
    return result


def _strip_row(row: list[np.ndarray], strip: bool, specs) -> list[np.ndarray]:
    """Drops trailing padding of token inputs whose time axis is dynamic."""
    if not strip:
        return row
    out = []
    for array, spec in zip(row, specs, strict=True):
        dynamic_time = bool(spec.shape) and spec.shape[0] is None
        if dynamic_time and array.ndim >= 2 and np.issubdtype(array.dtype, np.integer):
            flat = array[0].reshape(array.shape[1], -1)
            real = np.nonzero(np.any(flat != PADDING_VALUE, axis=1))[0]
            array = array[:, : max(int(real[-1]) + 1 if real.size else 0, 1)]
        out.append(array)
    return out


def _fit_length(row: list[np.ndarray], steps: int) -> list[np.ndarray]:
    out = []
    for array in row:
        if array.ndim >= 2:
            if array.shape[1] >= steps:
                array = array[:, :steps]
            else:
                width = [(0, 0)] * array.ndim
                width[1] = (0, steps - array.shape[1])
                array = np.pad(array, width, constant_values=PADDING_VALUE)
        out.append(array)
    return out


def _convert(fn, specs_tf, quantize: str, representative, keras_model, carried=False):
    """Saves `fn` as a SavedModel (keeps the LSTM composite) and converts it.

    With `carried`, the graph holds its own int8 ranges (fake-quant nodes from
    `rnnkit.exporters.qat`) and no representative dataset is run.
    """
    import contextlib

    import tensorflow as tf
    from rnnkit.exporters.qat import carried_ranges

    function = tf.function(fn, input_signature=specs_tf, autograph=False)
    module = tf.Module()
    module.serve = function
    # Layers called as they are read the model's variables; SavedModel needs them
    # tracked (the converter then freezes them into constants).
    module.tracked_variables = [v.value for v in keras_model.weights]
    with tempfile.TemporaryDirectory(prefix="rnnkit_export_") as saved:
        tf.saved_model.save(
            module,
            saved,
            signatures={"serving_default": function.get_concrete_function()},
        )
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantize == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif quantize == "dynamic":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        elif quantize == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        try:
            with carried_ranges() if carried else contextlib.nullcontext():
                return converter.convert()
        except Exception as error:  # the converter raises many unrelated types
            raise ExportError(
                f"The TFLite converter failed ({quantize}): {str(error)[-600:]}"
            ) from error


def export_model(
    model,
    path,
    quantize: str = "float32",
    representative_data=None,
    streaming: bool = False,
    micro: bool = False,
    metadata: dict | None = None,
    validation_data=None,
    fuse_lstm: bool | None = None,
) -> ExportResult:
    """Exports a Keras recurrent model to a builtin-only .tflite file.

    Args:
        model: a `keras.Model`, or a path to a .keras file (loaded with
            `safe_mode=True`).
        path: the .tflite file to write. The manifest (`*.manifest.json`) and
            the parity report (`*.parity.json`) are written beside it.
        quantize: "float32", "float16", "dynamic" (int8 weights, float
            activations) or "int8" (full integer; float inputs and outputs
            become int8, integer token inputs stay int32).
        representative_data: batch-first samples, one array per model input
            (or one array); required for "int8". Streaming exports take whole
            sequences here and step through them for calibration.
        streaming: export the one-step model: inputs [x_t, *states], outputs
            [y_t, *new_states]. Needs unidirectional, forward recurrent layers.
        micro: also check the file in TFLite Micro (child process), report the
            tensor arena, and write a C source/header pair beside it.
        metadata: JSON-serializable dict stored in the file and the manifest.
        validation_data: held-out inputs for the parity report (defaults to the
            representative data).
        fuse_lstm: True lowers eligible LSTMs to the fused
            UNIDIRECTIONAL_SEQUENCE_LSTM op (for runtimes and tools that
            expect it); False to a WHILE loop like GRUs. None (the default)
            uses the loop in every quantization: LiteRT runs the float32
            loop in 0.34-0.88x the fused op's time (one model running,
            32-256 units), and the fused op's int8 kernel is 4-8x slower
            than float32 on x86 (benchmarks/results/export.md). The one
            exception is a full-integer int8 model with a custom layer
            rnnkit cannot calibrate (`lowering.unmarked_layers`): its LSTMs
            are fused, and the converter calibrates them.

    Returns:
        An `ExportResult`.

    Raises:
        UsageError: bad arguments or sample data.
        ExportError: a layer cannot be lowered, or the converter failed.

    Example:
        >>> result = export_model(model, "out/m.tflite", quantize="int8",
        ...                       representative_data=x)        # doctest: +SKIP
        >>> result.ops                                          # doctest: +SKIP
        ['ADD', 'FULLY_CONNECTED', 'GATHER', ..., 'WHILE']
    """
    import rnnkit
    from rnnkit.edge import EdgeModel

    if quantize not in QUANTIZE_MODES:
        raise UsageError(
            f"Unknown quantization {quantize!r}. Expected one of {list(QUANTIZE_MODES)}."
        )
    path = Path(path)
    if path.suffix != ".tflite":
        raise UsageError(f"The output must be a .tflite file. Received: {path}")
    if metadata is not None and not isinstance(metadata, dict):
        raise UsageError(
            f"`metadata` must be a dict. Received: {type(metadata).__name__}"
        )
    keras_model = _load_model(model)
    specs = _input_specs(keras_model)
    samples = _normalize_samples(representative_data, specs, "representative_data")
    if quantize == "int8" and samples is None:
        raise UsageError(
            "Full-integer int8 export needs `representative_data` (real samples, "
            "batch first) to calibrate activation ranges. Received: None"
        )
    held_out = _normalize_samples(validation_data, specs, "validation_data")
    if held_out is None:
        held_out = samples

    if streaming:
        model_bytes, info = _build_streaming(keras_model, specs, quantize, samples)
    else:
        model_bytes, info = _build_sequence(
            keras_model,
            specs,
            quantize,
            samples,
            static_length=micro,
            fuse_lstm=fuse_lstm,
        )

    rnnkit_info = {
        "version": rnnkit.__version__,
        "quantization": quantize,
        **info,
    }
    full_metadata = dict(metadata or {})
    full_metadata["rnnkit"] = rnnkit_info
    from rnnkit.exporters.compact import compact_model, load_model
    from rnnkit.exporters.metadata import pack_with_metadata

    # One parse and one pack: compaction, then metadata and checksum.
    tree = load_model(model_bytes)
    compact_model(tree)
    model_bytes = pack_with_metadata(tree, full_metadata)

    edge = EdgeModel(model_bytes)
    ops = edge.ops
    float_compute, float_movement = _float_ops(tree) if quantize == "int8" else ([], [])
    parity = _parity(keras_model, edge, held_out, quantize, streaming)
    parity.update(
        ops=ops,
        size_bytes=len(model_bytes),
        quantization=quantize,
        form=rnnkit_info["form"],
        inputs=_io_quantization(edge._input_details, edge.input_names),
        outputs=_io_quantization(edge._output_details, edge.output_names),
        float_ops=float_compute,
        float_data_ops=float_movement,
        lowered=info.get("lowered", []),
    )

    micro_report = None
    if micro:
        from rnnkit.exporters.micro import check_micro

        micro_report = check_micro(model_bytes, path, quantize, rnnkit_info)
    parity["runs_in_tflite_micro"] = micro_report.get("runs") if micro_report else None
    if micro_report:
        parity["micro"] = micro_report

    sha256 = hashlib.sha256(model_bytes).hexdigest()
    manifest = {
        "file": path.name,
        "sha256": sha256,
        "size_bytes": len(model_bytes),
        "ops": ops,
        "quantization": quantize,
        "form": rnnkit_info["form"],
        "metadata": full_metadata,
        "inputs": parity["inputs"],
        "outputs": parity["outputs"],
    }
    manifest_path = sibling(path, ".manifest.json")
    parity_path = sibling(path, ".parity.json")
    # The model goes last: a reader that finds it also finds a matching manifest.
    atomic_write(parity_path, _json_bytes(parity))
    atomic_write(manifest_path, _json_bytes(manifest))
    atomic_write(path, model_bytes)
    logger.info(
        "Wrote %s (%d bytes, %s, ops %s); max abs diff vs Keras %.3g",
        path,
        len(model_bytes),
        quantize,
        ", ".join(ops),
        parity.get("max_abs_diff", float("nan")),
    )
    return ExportResult(
        path=path,
        manifest_path=manifest_path,
        parity_path=parity_path,
        parity=parity,
        ops=ops,
        size_bytes=len(model_bytes),
        micro=micro_report,
    )


def _json_bytes(payload: dict) -> bytes:
    return (
        json.dumps(payload, indent=2, sort_keys=True, default=_json_default) + "\n"
    ).encode()


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _io_quantization(details: list[dict], names: list[str]) -> list[dict]:
    result = []
    for name, d in zip(names, details, strict=False):
        scale, zero_point = d["quantization"]
        result.append(
            {
                "name": name,
                "dtype": np.dtype(d["dtype"]).name,
                "shape": [int(s) for s in d["shape_signature"]],
                "scale": float(scale),
                "zero_point": int(zero_point),
            }
        )
    return result


# Ops that only move or reshape values: float inputs to them cost no float math.
_DATA_MOVEMENT_OPS = {
    "CONCATENATION",
    "DYNAMIC_UPDATE_SLICE",
    "EXPAND_DIMS",
    "GATHER",
    "PACK",
    "RESHAPE",
    "SLICE",
    "SPLIT",
    "SQUEEZE",
    "STRIDED_SLICE",
    "TRANSPOSE",
    "UNPACK",
}


def _float_ops(model) -> tuple[list[str], list[str]]:
    """Ops of an int8 model (bytes or `compact.load_model` tree) with a float32
    input, in every subgraph.

    Returns:
        (compute, movement): ops that do float arithmetic, and ops that only
        move float values (a many-to-many loop's collected outputs stay float32
        between iterations, like its state). QUANTIZE/DEQUANTIZE and control flow
        (WHILE) are neither.
    """
    carried = {"QUANTIZE", "DEQUANTIZE", "WHILE", "IF", "CALL_ONCE"}
    floats = {
        name
        for name, input_types in ops_with_input_types(model)
        if name not in carried and "FLOAT32" in input_types
    }
    return sorted(floats - _DATA_MOVEMENT_OPS), sorted(floats & _DATA_MOVEMENT_OPS)


def ops_with_input_types(model):
    """(op name, [input tensor type names]) for every op of every subgraph.

    `model` is .tflite bytes or the object tree of `compact.load_model` (an
    export passes the tree it already has). Type names are the schema's
    TensorType names ("FLOAT32", "INT8", ...); omitted optional inputs are
    left out.
    """
    from rnnkit.exporters.compact import load_model
    from tensorflow.lite.python import schema_py_generated as schema

    from rnnkit.edge._opcodes import BUILTIN_OPERATORS

    type_names = {
        value: name
        for name, value in vars(schema.TensorType).items()
        if not name.startswith("_")
    }
    if isinstance(model, (bytes, bytearray)):
        model = load_model(bytes(model))
    codes = [max(c.deprecatedBuiltinCode, c.builtinCode) for c in model.operatorCodes]
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            inputs = [i for i in op.inputs if i >= 0]
            yield (
                BUILTIN_OPERATORS.get(codes[op.opcodeIndex], "CUSTOM"),
                [type_names.get(subgraph.tensors[i].type) for i in inputs],
            )


def _tf_specs(specs, time_steps=None, step=False):
    import tensorflow as tf

    result = []
    for spec in specs:
        shape = list(spec.shape)
        if step:
            shape = shape[1:]
        elif shape and shape[0] is None and time_steps is not None:
            shape[0] = time_steps
        result.append(
            tf.TensorSpec([1, *shape], getattr(tf, spec.dtype), name=spec.name)
        )
    return result


def _has_time_axis(spec) -> bool:
    return len(spec.shape) >= 1


def _serving(fn):
    """The lowered sequence function as a serving signature: named float outputs."""
    import tensorflow as tf

    def serve(*inputs):
        outputs = fn(list(inputs))
        return {
            f"output_{i}": tf.cast(o, tf.float32) if o.dtype != tf.float32 else o
            for i, o in enumerate(outputs)
        }

    return serve


def _build_sequence(
    keras_model, specs, quantize, samples, static_length=False, fuse_lstm=None
):
    import tensorflow as tf
    from rnnkit.exporters.lowering import (
        LoweringOptions,
        lower_sequence,
        unmarked_layers,
    )

    # Layers rnnkit's int8 loop calibration cannot mark. They decide both the
    # default LSTM form (fused, for the converter to calibrate) and whether
    # the remaining loops are calibrated by rnnkit or unrolled.
    unknown = unmarked_layers(keras_model) if quantize == "int8" else []
    if fuse_lstm is None:
        fuse_lstm = bool(unknown)

    def make(options):
        fn, report = lower_sequence(keras_model, options)
        return _serving(fn), report

    options = LoweringOptions(fuse_lstm=fuse_lstm)
    serve, report = make(options)
    tf_specs = _tf_specs(specs)
    tf.function(
        serve, input_signature=tf_specs, autograph=False
    ).get_concrete_function()
    loops = [entry for entry in report.layers if entry["lowered_to"] == "while_loop"]
    time_steps = None
    if quantize == "int8" and loops:
        # The converter cannot calibrate a WHILE loop (it crashes). rnnkit
        # calibrates the loop itself and hands the ranges over as fake-quant
        # nodes (qat.py), for the layers it knows how to mark; any other model
        # is unrolled over the calibration length instead (larger file).
        if not unknown:
            return _build_sequence_carried(keras_model, specs, samples, static_length)
        time_steps = int(samples[0].shape[1])
        logger.info(
            "int8: unrolling %s over %d steps (the length of the representative "
            "data), because the int8 loop form does not cover %s; for a graph "
            "that does not grow with length, export the streaming form.",
            ", ".join(e["layer"] for e in loops),
            time_steps,
            ", ".join(unknown),
        )
        options = LoweringOptions(time_steps=time_steps, fuse_lstm=fuse_lstm)
        serve, report = make(options)
        tf_specs = _tf_specs(specs, time_steps=time_steps)
        tf.function(
            serve, input_signature=tf_specs, autograph=False
        ).get_concrete_function()

    def representative():
        for i in range(min(samples[0].shape[0], 200)):
            row = [a[i : i + 1] for a in samples]
            row = (
                _strip_row(row, report.uses_mask, specs)
                if time_steps is None
                else _fit_length(row, time_steps)
            )
            yield {spec.name: array for spec, array in zip(specs, row, strict=False)}

    model_bytes = _convert(
        serve, tf_specs, quantize, representative if samples else None, keras_model
    )
    return model_bytes, _sequence_info(keras_model, specs, report, time_steps)


def _sequence_info(keras_model, specs, report, time_steps) -> dict:
    """What the edge runtime needs to know about a full-sequence file."""
    return {
        "form": "sequence",
        "time_steps": time_steps,
        "padding_value": PADDING_VALUE if report.uses_mask else None,
        "input_names": [s.name for s in specs],
        "output_names": [f"output_{i}" for i in range(len(keras_model.outputs))],
        "input_dtypes": [s.dtype for s in specs],
        "num_data_inputs": len(specs),
        "lowered": list(report.layers),
    }


def _build_sequence_carried(keras_model, specs, samples, static_length=False):
    """int8 sequence graph with its WHILE loops kept, calibrated by rnnkit.

    With `static_length` the time axis is fixed to the representative data's
    length (TFLite Micro allocates static shapes only); the loop stays a loop.
    """
    from rnnkit.exporters.lowering import LoweringOptions, lower_sequence
    from rnnkit.exporters.qat import FakeQuantSites, calibrate

    rows = [a[:200] for a in samples]
    time_steps = int(rows[0].shape[1])
    ranges = calibrate(keras_model, rows)
    sites = FakeQuantSites(ranges)
    fn, report = lower_sequence(
        keras_model, LoweringOptions(fuse_lstm=False, sites=sites)
    )
    serve = _serving(fn)
    tf_specs = _tf_specs(specs, time_steps=time_steps if static_length else None)
    # The conversion traces `serve`, which fills `report` and `sites.missing`.
    model_bytes = _convert(serve, tf_specs, "int8", None, keras_model, carried=True)
    if sites.missing:
        logger.info("int8: no calibrated range for %s", sorted(sites.missing))
    info = _sequence_info(
        keras_model, specs, report, time_steps if static_length else None
    )
    info["int8_calibration"] = "rnnkit (WHILE loop kept, ranges as fake-quant nodes)"
    return model_bytes, info


def _build_streaming(keras_model, specs, quantize, samples):
    import tensorflow as tf
    from rnnkit.exporters.lowering import discover_step_states, lower_step

    for spec in specs:
        if len(spec.shape) < 1:
            raise UsageError(
                "A streaming export needs inputs with a time axis, shape (batch, "
                f"time, ...). Received: {spec.name} of shape (batch, {spec.shape})"
            )
    step_specs = _tf_specs(specs, step=True)
    zeros = [tf.zeros(s.shape, s.dtype) for s in step_specs]
    layout = discover_step_states(keras_model, zeros)
    state_sizes = [size for _, sizes in layout for size in sizes]
    if not state_sizes:
        raise ExportError(
            "The model has no recurrent layer to stream. Expected at least one "
            "keras.layers.LSTM/GRU/SimpleRNN or rnnkit RecurrentStack. Received: "
            f"{[type(layer).__name__ for layer in keras_model.layers]}"
        )
    state_specs = [
        tf.TensorSpec([1, size], tf.float32, name=f"state_{i}")
        for i, size in enumerate(state_sizes)
    ]
    fn, report = lower_step(keras_model, layout)
    num_inputs = len(specs)
    num_outputs = len(keras_model.outputs)

    def serve(*tensors):
        outputs, new_states = fn(list(tensors[:num_inputs]), list(tensors[num_inputs:]))
        result = {f"output_{i}": tf.cast(o, tf.float32) for i, o in enumerate(outputs)}
        for i, state in enumerate(new_states):
            result[f"new_state_{i}"] = state
        return result

    step_fn = tf.function(
        serve, input_signature=step_specs + state_specs, autograph=False
    )

    def representative():
        count = 0
        for i in range(samples[0].shape[0]):
            states = [np.zeros((1, size), np.float32) for size in state_sizes]
            for t in range(samples[0].shape[1]):
                x_t = [a[i : i + 1, t] for a in samples]
                feed = {spec.name: x for spec, x in zip(specs, x_t, strict=False)}
                feed.update(
                    {s.name: v for s, v in zip(state_specs, states, strict=False)}
                )
                yield feed
                result = step_fn(*x_t, *states)
                states = [result[f"new_state_{k}"].numpy() for k in range(len(states))]
                count += 1
                if count >= 500:
                    return

    model_bytes = _convert(
        serve,
        step_specs + state_specs,
        quantize,
        representative if samples else None,
        keras_model,
    )
    info = {
        "form": "streaming",
        "time_steps": None,
        "padding_value": None,
        "input_names": [s.name for s in specs] + [s.name for s in state_specs],
        "output_names": [f"output_{i}" for i in range(num_outputs)]
        + [f"new_state_{i}" for i in range(len(state_sizes))],
        "input_dtypes": [s.dtype for s in specs] + ["float32"] * len(state_sizes),
        "num_data_inputs": num_inputs,
        "states": [{"layer": name, "sizes": sizes} for name, sizes in layout],
        "state_sizes": state_sizes,
        "lowered": list(report.layers),
    }
    return model_bytes, info


def _masks_padding(model) -> bool:
    """Whether the model masks padding (Embedding(mask_zero=True) or Masking)."""
    import keras

    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.Model) and _masks_padding(layer):
            return True
        if isinstance(layer, keras.layers.Embedding) and layer.mask_zero:
            return True
        if isinstance(layer, keras.layers.Masking):
            return True
    return False


def _keras_outputs(keras_model, inputs) -> list[np.ndarray]:
    expected = keras_model(inputs if len(inputs) > 1 else inputs[0], training=False)
    return [
        np.asarray(e)
        for e in (expected if isinstance(expected, (list, tuple)) else [expected])
    ]


def _parity(keras_model, edge, held_out, quantize, streaming) -> dict:
    """Max abs difference between the file (via EdgeModel) and Keras."""
    if held_out is None:
        return {"max_abs_diff": None, "samples": 0, "note": "no held-out data given"}
    count = min(held_out[0].shape[0], 16)
    inputs = [a[:count] for a in held_out]
    if streaming:
        return _streaming_parity(keras_model, edge, inputs)
    expected = _keras_outputs(keras_model, inputs)
    got = edge.run(*inputs)
    diffs = []
    for want, have in zip(expected, got, strict=False):
        if want.shape != have.shape:
            # Stripped padding makes sequence outputs shorter; compare real steps.
            steps = min(want.shape[1], have.shape[1])
            want, have = want[:, :steps], have[:, :steps]
        diffs.append(float(np.max(np.abs(want - have))))
    return {
        "max_abs_diff": max(diffs),
        "max_abs_diff_per_output": diffs,
        "samples": count,
        "compared_with": "Keras model on held-out inputs",
    }


def _streaming_parity(keras_model, edge, inputs) -> dict:
    """Steps the one-step file through each held-out row and compares like with like.

    A sequence output (batch, time, ...) is compared step by step with the Keras
    sequence. A many-to-one output has no time axis: the step output after
    step t is the answer for the prefix x[:, :t+1], so the last step is compared
    with Keras on the whole row. Rows of a masked model are stepped over their
    real (unpadded) steps only, since a one-step model has no mask: a device
    stops feeding at the end of the input instead.
    """
    pad = PADDING_VALUE if _masks_padding(keras_model) else None
    expected = _keras_outputs(keras_model, inputs)
    diffs = [0.0] * len(expected)
    for row in range(inputs[0].shape[0]):
        arrays = [a[row : row + 1] for a in inputs]
        steps = arrays[0].shape[1]
        if pad is not None:
            lengths = [
                _unpadded_length(a[0], pad)
                for a in arrays
                if np.issubdtype(a.dtype, np.integer) and a.ndim >= 2
            ]
            if lengths:
                steps = max(max(lengths), 1)
        stream = edge.stream()
        outputs = [stream.step_all(*[a[0, t] for a in arrays]) for t in range(steps)]
        for k, want in enumerate(expected):
            want = want[row : row + 1]
            have = np.stack([o[k] for o in outputs], axis=1)
            if have.ndim == want.ndim + 1:
                have = have[:, -1]  # many-to-one: the answer after the last step
            else:
                want = want[:, :steps]
            diffs[k] = max(diffs[k], float(np.max(np.abs(want - have))))
    return {
        "max_abs_diff": max(diffs),
        "max_abs_diff_per_output": diffs,
        "samples": inputs[0].shape[0],
        "compared_with": (
            "Keras model on held-out inputs; the file stepped over each row"
            + (" (trailing padding not fed)" if pad is not None else "")
            + "; sequence outputs compared at every step, outputs without a time "
            "axis (many-to-one) at the row's last step"
        ),
    }


def _unpadded_length(row: np.ndarray, pad) -> int:
    """Length of `row` (time first) without its trailing padding steps."""
    flat = row.reshape(row.shape[0], -1)
    real = np.nonzero(np.any(flat != pad, axis=1))[0]
    return int(real[-1]) + 1 if real.size else 0
