"""`EdgeModel`: loads an rnnkit .tflite file, verifies it and runs it.

Needs only numpy and a TFLite interpreter (ai-edge-litert, else tflite_runtime,
else tensorflow.lite). The file is checked before any interpreter sees it: its
SHA-256 must match the manifest beside it or the checksum embedded in it, and it
must hold builtin ops only, because interpreters silently run (or crash on)
many corrupt files.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from pathlib import Path

import numpy as np

from rnnkit.edge._errors import EdgeUsageError, ModelFileError
from rnnkit.edge.flatbuffer import (
    METADATA_NAME,
    embedded_checksum,
    read_flatbuffer,
)

_INTERPRETER_MODULES = (
    "ai_edge_litert.interpreter",
    "tflite_runtime.interpreter",
    # Last resort on a machine that has full TensorFlow; imported by name so that
    # a device without it never tries.
    "tensorflow.lite",
)


def load_interpreter_class():
    """The `Interpreter` class of the first TFLite runtime that imports."""
    errors = []
    for name in _INTERPRETER_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as error:
            errors.append(f"{name}: {error}")
            continue
        return module.Interpreter
    raise ImportError(
        "No TFLite interpreter is installed. Expected one of ai-edge-litert "
        "(`pip install ai-edge-litert`), tflite-runtime or tensorflow. Tried: "
        + "; ".join(errors)
    )


def manifest_path_for(path: str | os.PathLike) -> Path:
    """`out/model.tflite` -> `out/model.manifest.json`."""
    path = Path(path)
    return path.with_name(path.stem + ".manifest.json")


def verify_model_bytes(data: bytes, path: Path | None = None) -> dict:
    """Checks a model's checksum and op set; returns what was verified.

    Args:
        data: the file's bytes.
        path: where it came from; a manifest beside it is checked too.

    Returns:
        {"sha256": ..., "checked": [...]} naming the checks that passed.

    Raises:
        ModelFileError: the checksum does not match, no checksum exists, the
            file is not a TFLite model, or it holds Flex or custom ops.
    """
    info = read_flatbuffer(data)
    checked = []
    sha256 = hashlib.sha256(data).hexdigest()
    embedded = embedded_checksum(data, info)
    if embedded is not None:
        stored, computed = embedded
        if stored != computed:
            raise ModelFileError(
                "The model file does not match its embedded checksum: it is "
                "corrupt or was modified after export. Expected SHA-256 "
                f"{stored}. Received: {computed} (file {path or '<bytes>'})"
            )
        checked.append("embedded_sha256")
    if path is not None:
        manifest_file = manifest_path_for(path)
        if manifest_file.is_file():
            try:
                manifest = json.loads(manifest_file.read_text())
                expected = manifest["sha256"]
            except (ValueError, KeyError, TypeError) as error:
                raise ModelFileError(
                    f"The manifest {manifest_file} is unreadable or has no "
                    f"'sha256'. Received: {error}"
                ) from error
            if expected != sha256:
                raise ModelFileError(
                    f"The model file {path} does not match its manifest: it is "
                    f"corrupt or was modified after export. Expected SHA-256 "
                    f"{expected}. Received: {sha256}"
                )
            checked.append("manifest_sha256")
    if not checked:
        raise ModelFileError(
            f"The model {path or '<bytes>'} carries no checksum and has no manifest "
            "beside it, so it cannot be verified. Expected a file written by "
            "`rnnkit export` (or pass verify=False to load it unchecked)."
        )
    _refuse_custom_ops(info)
    return {"sha256": sha256, "checked": checked, "info": info}


def _refuse_custom_ops(info) -> None:
    if info.custom_codes:
        flex = [code for code in info.custom_codes if code.startswith("Flex")]
        kind = "Flex (TensorFlow) ops" if flex else "custom ops"
        raise ModelFileError(
            f"The model holds {kind} {sorted(set(info.custom_codes))}, which the "
            "edge runtime does not run. Expected builtin TFLite ops only; export it "
            "with `rnnkit export` to lower recurrent layers to builtin ops."
        )


class EdgeModel:
    """A verified .tflite model with batch and streaming inference.

    Args:
        path: the .tflite file (or its bytes).
        num_threads: interpreter threads.
        verify: check the checksum before loading (leave on; a corrupt file can
            run silently or crash the interpreter).

    Example:
        >>> m = EdgeModel("out/model_int8.tflite")          # doctest: +SKIP
        >>> probs = m.run(token_ids)[0]                      # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | os.PathLike | bytes,
        num_threads: int = 1,
        verify: bool = True,
    ):
        if isinstance(path, (bytes, bytearray)):
            self.path = None
            data = bytes(path)
        else:
            self.path = Path(path)
            if not self.path.is_file():
                raise ModelFileError(
                    f"Model file not found. Expected an existing .tflite file. "
                    f"Received: {self.path}"
                )
            data = self.path.read_bytes()
        if verify:
            verified = verify_model_bytes(data, self.path)
            info = verified.pop("info")
            self.verified = verified
        else:
            info = read_flatbuffer(data)
            _refuse_custom_ops(info)
            self.verified = {"sha256": hashlib.sha256(data).hexdigest(), "checked": []}
        self.size_bytes = len(data)
        self._builtin_codes = list(info.builtin_codes)
        raw = info.metadata.get(METADATA_NAME)
        try:
            self.metadata = json.loads(raw.decode("utf-8")) if raw else {}
        except (UnicodeDecodeError, ValueError) as error:
            raise ModelFileError(
                f"The model's embedded metadata is not valid JSON. Received: {error}"
            ) from error
        self._rnnkit = self.metadata.get("rnnkit", {})

        interpreter_class = load_interpreter_class()
        try:
            self.interpreter = interpreter_class(
                model_content=data, num_threads=num_threads
            )
            signatures = self.interpreter._get_full_signature_list()
        except (RuntimeError, ValueError) as error:
            raise ModelFileError(
                f"The TFLite interpreter refused the model: {error}"
            ) from error
        if len(signatures) != 1:
            raise ModelFileError(
                "Expected a model with exactly one signature (as `rnnkit export` "
                f"writes). Received: {sorted(signatures)}"
            )
        signature = next(iter(signatures.values()))
        by_index = {
            d["index"]: d
            for d in self.interpreter.get_input_details()
            + self.interpreter.get_output_details()
        }
        input_details = {n: by_index[i] for n, i in signature["inputs"].items()}
        output_details = {n: by_index[i] for n, i in signature["outputs"].items()}
        self.input_names = self._rnnkit.get("input_names") or sorted(input_details)
        self.output_names = self._rnnkit.get("output_names") or sorted(output_details)
        if set(self.input_names) != set(input_details) or set(self.output_names) != set(
            output_details
        ):
            raise ModelFileError(
                "The model's metadata names inputs/outputs its signature lacks. "
                f"Expected {sorted(input_details)} / {sorted(output_details)}. "
                f"Received: {self.input_names} / {self.output_names}"
            )
        self._input_details = [input_details[n] for n in self.input_names]
        self._output_details = [output_details[n] for n in self.output_names]
        self._shapes: dict[str, tuple] = {}

    # Introspection ----------------------------------------------------------------

    @property
    def streaming(self) -> bool:
        return self._rnnkit.get("form") == "streaming"

    @property
    def ops(self) -> list[str]:
        """Every builtin op of the file, in all subgraphs (WHILE bodies included).

        Read from the file's operator codes rather than the interpreter, whose
        op list covers the main subgraph only and shows delegated ops as DELEGATE.
        """
        from rnnkit.edge._opcodes import op_names

        return op_names(self._builtin_codes)

    @property
    def num_data_inputs(self) -> int:
        """Inputs the caller gives (a streaming model's state inputs excluded)."""
        return int(self._rnnkit.get("num_data_inputs", len(self.input_names)))

    # Quantization -----------------------------------------------------------------

    @staticmethod
    def _to_tensor(value: np.ndarray, details: dict) -> np.ndarray:
        dtype = np.dtype(details["dtype"])
        if dtype in (np.int8, np.uint8, np.int16):
            scale, zero_point = details["quantization"]
            info = np.iinfo(dtype)
            quantized = np.round(np.asarray(value, np.float32) / scale) + zero_point
            return np.clip(quantized, info.min, info.max).astype(dtype)
        return np.asarray(value).astype(dtype)

    @staticmethod
    def _from_tensor(value: np.ndarray, details: dict) -> np.ndarray:
        if np.dtype(details["dtype"]) in (np.int8, np.uint8, np.int16):
            scale, zero_point = details["quantization"]
            return ((value.astype(np.float32) - zero_point) * scale).astype(np.float32)
        return np.asarray(value, np.float32)

    def _invoke(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        feed = {
            name: self._to_tensor(array, details)
            for name, array, details in zip(
                self.input_names, arrays, self._input_details, strict=False
            )
        }
        try:
            # The fused sequence-LSTM op keeps its state in variable tensors that
            # persist across invocations; every call must start from the zero
            # state, so resize and allocate here and reset before invoking.
            for name, details in zip(
                self.input_names, self._input_details, strict=False
            ):
                if self._shapes.get(name) != feed[name].shape:
                    self.interpreter.resize_tensor_input(
                        details["index"], feed[name].shape, strict=True
                    )
                    self._shapes[name] = feed[name].shape
            self.interpreter.allocate_tensors()
            self.interpreter.reset_all_variables()
            for name, details in zip(
                self.input_names, self._input_details, strict=False
            ):
                self.interpreter.set_tensor(details["index"], feed[name])
            self.interpreter.invoke()
            results = {
                name: self.interpreter.get_tensor(details["index"])
                for name, details in zip(
                    self.output_names, self._output_details, strict=False
                )
            }
        except (RuntimeError, ValueError) as error:
            raise EdgeUsageError(
                f"The interpreter could not run the model on these inputs: {error}. "
                f"Received shapes: {[a.shape for a in arrays]}"
            ) from error
        return [
            self._from_tensor(results[name], details)
            for name, details in zip(
                self.output_names, self._output_details, strict=False
            )
        ]

    # Input checks -----------------------------------------------------------------

    def _check_input(self, index: int, array, time_is_free: bool) -> np.ndarray:
        """Checks dtype, rank and fixed sizes of one batch-first input."""
        details = self._input_details[index]
        signature = [int(s) for s in details["shape_signature"]]
        array = np.asarray(array)
        is_int = np.dtype(details["dtype"]) == np.int32
        if is_int and not np.issubdtype(array.dtype, np.integer):
            raise EdgeUsageError(
                f"Input {index} takes integer token ids. Expected an integer array. "
                f"Received: dtype={array.dtype}"
            )
        if not is_int and not (
            np.issubdtype(array.dtype, np.floating)
            or np.issubdtype(array.dtype, np.integer)
        ):
            raise EdgeUsageError(
                f"Input {index} takes numbers. Expected a float array. "
                f"Received: dtype={array.dtype}"
            )
        if array.ndim != len(signature):
            raise EdgeUsageError(
                f"Input {index} has the wrong rank. Expected {len(signature)} "
                f"dimensions, batch first: {self._shape_text(signature)}. "
                f"Received: shape={array.shape}"
            )
        for axis in range(1, len(signature)):
            if time_is_free and axis == 1:
                continue  # resized, padded or checked against time_steps later
            if signature[axis] > 0 and signature[axis] != array.shape[axis]:
                raise EdgeUsageError(
                    f"Input {index} has the wrong shape. Expected "
                    f"{self._shape_text(signature)}. Received: shape={array.shape}"
                )
        return array

    @staticmethod
    def _shape_text(signature) -> str:
        return "(" + ", ".join("None" if s < 0 else str(s) for s in signature) + ")"

    # Inference --------------------------------------------------------------------

    def run(self, *inputs) -> list[np.ndarray]:
        """Runs the model on a batch; returns a list of float32 outputs.

        Each input is batch-first. Rows run one at a time (the exported graphs
        have batch 1): a dynamic time axis is resized to each row's length, and
        for models with masked token inputs trailing padding (id 0) is stripped,
        which gives the masked Keras result. A fixed-length (unrolled) model gets
        its rows padded or refused if too long. A streaming model is stepped
        through each row from a zero state.

        Args:
            *inputs: one array per model input (a list is accepted too).

        Returns:
            A list with one float32 array per model output, batch-first.
        """
        if len(inputs) == 1 and isinstance(inputs[0], (list, tuple)):
            inputs = tuple(inputs[0])
        count = self.num_data_inputs
        if len(inputs) != count:
            raise EdgeUsageError(
                f"The model takes {count} input(s). Received: {len(inputs)}"
            )
        if self.streaming:
            return self._run_streaming(inputs)
        arrays = [
            self._check_input(i, x, time_is_free=True) for i, x in enumerate(inputs)
        ]
        batch = arrays[0].shape[0]
        if any(a.shape[0] != batch for a in arrays):
            raise EdgeUsageError(
                "All inputs must have the same batch size. Received: "
                f"{[a.shape[0] for a in arrays]}"
            )
        rows = [
            self._invoke(self._prepare_row([a[i : i + 1] for a in arrays]))
            for i in range(batch)
        ]
        return [_stack([row[k] for row in rows]) for k in range(len(self.output_names))]

    def _prepare_row(self, row: list[np.ndarray]) -> list[np.ndarray]:
        time_steps = self._rnnkit.get("time_steps")
        pad = self._rnnkit.get("padding_value")
        prepared = []
        for index, array in enumerate(row):
            dynamic_time = (
                int(self._input_details[index]["shape_signature"][1]) < 0
                if array.ndim >= 2
                else False
            )
            if (
                (dynamic_time or time_steps)
                and array.ndim >= 2
                and pad is not None
                and np.issubdtype(array.dtype, np.integer)
            ):
                length = _unpadded_length(array[0], pad)
                array = array[:, : max(length, 1)]
            if time_steps and array.ndim >= 2:
                steps = array.shape[1]
                if steps > time_steps:
                    raise EdgeUsageError(
                        f"Input {index} is longer than this fixed-length model "
                        f"allows. Expected at most {time_steps} steps. "
                        f"Received: {steps}"
                    )
                if steps < time_steps:
                    if pad is None:
                        raise EdgeUsageError(
                            f"Input {index} must have exactly {time_steps} steps "
                            f"(a fixed-length model without masking). Received: "
                            f"{steps}"
                        )
                    width = [(0, 0)] * array.ndim
                    width[1] = (0, time_steps - steps)
                    array = np.pad(array, width, constant_values=pad)
            prepared.append(array)
        return prepared

    def _run_streaming(self, inputs) -> list[np.ndarray]:
        arrays = [np.asarray(x) for x in inputs]
        outputs = []
        for i in range(arrays[0].shape[0]):
            stream = self.stream()
            steps = [
                stream.step_all(*[a[i, t] for a in arrays])
                for t in range(arrays[0].shape[1])
            ]
            outputs.append(
                [np.stack([s[k] for s in steps], axis=1) for k in range(len(steps[0]))]
            )
        return [
            np.concatenate([o[k] for o in outputs], axis=0)
            for k in range(len(outputs[0]))
        ]

    def stream(self) -> Stream:
        """A step-by-step session over a streaming model (zero initial state)."""
        if not self.streaming:
            raise EdgeUsageError(
                "This model is a full-sequence model; only models exported with "
                "`streaming=True` can be stepped. Received: form="
                f"{self._rnnkit.get('form')!r}"
            )
        return Stream(self)


class Stream:
    """Carries the recurrent state of a streaming model between steps."""

    def __init__(self, model: EdgeModel):
        self.model = model
        self._state_details = model._input_details[model.num_data_inputs :]
        self.reset()

    def reset(self) -> None:
        """Sets the state back to zeros (the start of a new sequence)."""
        self.states = [
            np.zeros(tuple(details["shape"]), np.float32)
            for details in self._state_details
        ]

    def step_all(self, *x_t) -> list[np.ndarray]:
        """Feeds one time step; returns every (non-state) output, batch axis kept."""
        model = self.model
        count = model.num_data_inputs
        if len(x_t) != count:
            raise EdgeUsageError(
                f"The model takes {count} input(s) per step. Received: {len(x_t)}"
            )
        arrays = []
        for index, value in enumerate(x_t):
            value = np.asarray(value)
            rank = len(model._input_details[index]["shape"])
            if value.ndim == rank - 1:
                value = value[None]
            arrays.append(model._check_input(index, value, time_is_free=False))
        results = model._invoke(arrays + self.states)
        data_outputs = len(model.output_names) - len(self.states)
        self.states = results[data_outputs:]
        return results[:data_outputs]

    def step(self, *x_t):
        """Feeds one time step (batch axis optional).

        Returns:
            The output for this step, shape (1, ...): one array when the model
            has one output, else a list.
        """
        outputs = self.step_all(*x_t)
        return outputs[0] if len(outputs) == 1 else outputs


def _unpadded_length(row: np.ndarray, pad) -> int:
    """Length of `row` (time first) without its trailing padding steps."""
    flat = row.reshape(row.shape[0], -1)
    real = np.nonzero(np.any(flat != pad, axis=1))[0]
    return int(real[-1]) + 1 if real.size else 0


def _stack(arrays: list[np.ndarray]) -> np.ndarray:
    shapes = {a.shape for a in arrays}
    if len(shapes) == 1:
        return np.concatenate(arrays, axis=0)
    # Rows of different lengths (padding stripped): pad outputs back with zeros.
    longest = max(a.shape[1] for a in arrays)
    padded = []
    for a in arrays:
        width = [(0, 0)] * a.ndim
        width[1] = (0, longest - a.shape[1])
        padded.append(np.pad(a, width))
    return np.concatenate(padded, axis=0)
