"""Passes over a converted .tflite flatbuffer that make it smaller, not different.

The converter's output is correct but carries what no interpreter needs, and in
a small int8 model that overhead is a tenth of the file (a 64-unit LSTM loop:
22 KB of weights, 8 KB of structure). The passes work on the flatbuffer's
object tree (`schema.ModelT`) and keep every computed value bit for bit:

1. `carry_int8_loop_state`: a WHILE loop whose float32 state is quantized at
   the top of every iteration and dequantized at the bottom with the same scale
   (rnnkit's int8 loops give the state one range for both ends) carries the
   int8 values instead; the QUANTIZE and DEQUANTIZE ops leave the loop body.
   A many-to-many loop's collected outputs (written by DYNAMIC_UPDATE_SLICE)
   are collected in int8 the same way.
   `fill_splat_loop_inputs`: a constant loop input of one repeated value (the
   zeros a collecting loop starts from) becomes a FILL op.
2. `drop_dead_loop_variables`: loop variables that nothing reads, such as the
   iteration counter every TensorFlow while loop adds beside rnnkit's own time
   index, leave the WHILE op and both of its subgraphs.
3. `drop_dead_ops`, `drop_unused_tensors` and `drop_unused_opcodes`: data ops
   whose results nothing reads any more, tensors no op, subgraph or signature
   refers to, and operator codes no op uses (the file's op list is read from
   them).
4. `drop_intermediate_names`: the converter's TensorFlow op names on
   intermediate tensors (model inputs and outputs keep theirs).
5. `share_empty_buffers`: every tensor without constant data points at the
   schema's empty buffer 0 instead of a buffer of its own.

`pack_model` then writes the tree with identical vectors, strings, quantization
and option tables stored once (a flatbuffer table may be referred to from many
places) and every constant buffer aligned to 16 bytes, which TFLite Micro wants
for reading int32 biases and float weights in place.
"""

from __future__ import annotations

import copy
import logging

import flatbuffers
import numpy as np
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

logger = logging.getLogger(__name__)

_OPS = schema.BuiltinOperator
_TYPES = schema.TensorType
_FILE_IDENTIFIER = b"TFL3"
_BUFFER_ALIGNMENT = 16


def compact(model_bytes: bytes) -> bytes:
    """Returns `model_bytes` rewritten by every pass, then packed with sharing."""
    model = load_model(model_bytes)
    compact_model(model)
    packed = pack_model(model)
    logger.debug(
        "Compacted the model from %d to %d bytes", len(model_bytes), len(packed)
    )
    return packed


def load_model(model_bytes: bytes):
    """The flatbuffer's object tree, with index vectors as Python lists."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))
    for subgraph in model.subgraphs:
        subgraph.inputs = _ints(subgraph.inputs)
        subgraph.outputs = _ints(subgraph.outputs)
        subgraph.operators = list(subgraph.operators or [])
        subgraph.tensors = list(subgraph.tensors or [])
        for op in subgraph.operators:
            op.inputs = _ints(op.inputs)
            op.outputs = _ints(op.outputs)
            op.intermediates = (
                _ints(op.intermediates) if op.intermediates is not None else None
            )
    return model


def compact_model(model) -> None:
    """Runs every pass on `model` (a tree from `load_model`), in place."""
    carried = carry_int8_loop_state(model)
    filled = fill_splat_loop_inputs(model)
    dead = drop_dead_loop_variables(model)
    drop_dead_ops(model)
    unused = drop_unused_tensors(model)
    drop_unused_opcodes(model)
    drop_intermediate_names(model)
    share_empty_buffers(model)
    logger.debug(
        "Compaction: %d loop states carried as int8, %d constant loop inputs "
        "filled, %d dead loop variables and %d unused tensors removed",
        carried,
        filled,
        dead,
        unused,
    )


# ----------------------------------------------------------------------------
# Graph helpers


def _ints(values) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def _code(model, op) -> int:
    entry = model.operatorCodes[op.opcodeIndex]
    return max(entry.builtinCode, entry.deprecatedBuiltinCode)


def _opcode_index(model, code: int) -> int | None:
    for index, entry in enumerate(model.operatorCodes):
        if max(entry.builtinCode, entry.deprecatedBuiltinCode) == code:
            return index
    return None


def _consumers(subgraph, tensor: int) -> list:
    return [op for op in subgraph.operators if tensor in op.inputs]


def _producer(subgraph, tensor: int):
    for op in subgraph.operators:
        if tensor in op.outputs:
            return op
    return None


def _replace_input(subgraph, old: int, new: int) -> None:
    for op in subgraph.operators:
        op.inputs = [new if i == old else i for i in op.inputs]


def _signature_tensors(model, subgraph_index: int) -> set[int]:
    tensors = set()
    for signature in model.signatureDefs or []:
        if signature.subgraphIndex == subgraph_index:
            for entry in (signature.inputs or []) + (signature.outputs or []):
                tensors.add(entry.tensorIndex)
    return tensors


def _same_quantization(a, b) -> bool:
    if a.type != b.type or a.quantization is None or b.quantization is None:
        return False
    qa, qb = a.quantization, b.quantization
    if qa.scale is None or qb.scale is None or len(qa.scale) != 1 or len(qb.scale) != 1:
        return False
    return np.float32(qa.scale[0]) == np.float32(qb.scale[0]) and int(
        qa.zeroPoint[0]
    ) == int(qb.zeroPoint[0])


def _loops(model):
    """(parent subgraph index, WHILE op, cond, body) for each loop whose cond and
    body subgraphs belong to it alone (a shared subgraph is left untouched)."""
    found = []
    for index, subgraph in enumerate(model.subgraphs):
        for op in subgraph.operators:
            if _code(model, op) == _OPS.WHILE:
                found.append((index, op))
    uses: dict[int, int] = {}
    for _, op in found:
        for sub in (
            op.builtinOptions.condSubgraphIndex,
            op.builtinOptions.bodySubgraphIndex,
        ):
            uses[sub] = uses.get(sub, 0) + 1
    for index, op in found:
        cond, body = (
            op.builtinOptions.condSubgraphIndex,
            op.builtinOptions.bodySubgraphIndex,
        )
        if uses[cond] == 1 and uses[body] == 1 and cond != body:
            yield index, op, model.subgraphs[cond], model.subgraphs[body]


# ----------------------------------------------------------------------------
# Pass 1: int8 loop state


def carry_int8_loop_state(model) -> int:
    """Carries int8 values through WHILE loops whose state only round-trips float.

    Returns:
        The number of loop variables changed.
    """
    changed = 0
    for parent_index, loop, cond, body in list(_loops(model)):
        for k in range(len(loop.inputs)):
            changed += _carry_int8(model, parent_index, loop, cond, body, k)
    return changed


def _carry_int8(model, parent_index, loop, cond, body, k) -> bool:
    parent = model.subgraphs[parent_index]
    body_in, body_out = body.inputs[k], body.outputs[k]
    if body.tensors[body_in].type != _TYPES.FLOAT32 or body_in in body.outputs:
        return False
    if _consumers(body, body_out) or body.outputs.count(body_out) != 1:
        return False
    if _consumers(cond, cond.inputs[k]):
        return False
    plan = _state_plan(model, body, body_in, body_out) or _collected_plan(
        model, body, body_in, body_out
    )
    if plan is None:
        return False
    like, rewrite_body = plan
    params = like.quantization

    # Parent: the loop's result must not be a model output (signatures name
    # those tensors). Readers that requantize to the same scale (directly or
    # behind a RESHAPE) read the int8 result; others get a DEQUANTIZE after
    # the loop.
    result = loop.outputs[k]
    if result in parent.outputs or result in _signature_tensors(model, parent_index):
        return False
    same_quantize, reshapes, float_readers = [], [], []
    for op in _consumers(parent, result):
        code = _code(model, op)
        if code == _OPS.QUANTIZE and _same_quantization(
            parent.tensors[op.outputs[0]], like
        ):
            same_quantize.append(op)
            continue
        if code in (_OPS.RESHAPE, _OPS.TRANSPOSE) and op.inputs[0] == result:
            after = _consumers(parent, op.outputs[0])
            if (
                after
                and op.outputs[0] not in parent.outputs
                and all(
                    _code(model, q) == _OPS.QUANTIZE
                    and _same_quantization(parent.tensors[q.outputs[0]], like)
                    for q in after
                )
            ):
                reshapes.append(op)
                same_quantize.extend(after)
                continue
        float_readers.append(op)
    dequantize_code = _opcode_index(model, _OPS.DEQUANTIZE)
    quantize_code = _opcode_index(model, _OPS.QUANTIZE)
    initial = loop.inputs[k]
    initial_values = _constant(model, parent.tensors[initial])
    filled = _producer(parent, initial)
    fill_value = None
    if (
        initial_values is None
        and filled is not None
        and _code(model, filled) == _OPS.FILL
    ):
        fill_value = _constant(model, parent.tensors[filled.inputs[1]])
    if float_readers and dequantize_code is None:
        return False
    if initial_values is None and quantize_code is None:
        return False

    # Rewrite the body and cond.
    rewrite_body()
    for tensor in (body.tensors[body_in], cond.tensors[cond.inputs[k]]):
        tensor.type = _TYPES.INT8
        tensor.quantization = copy.deepcopy(params)

    # Rewrite the parent: an int8 initial value, an int8 result.
    loop_position = parent.operators.index(loop)
    if initial_values is not None:
        loop.inputs[k] = _add_constant(
            model,
            parent,
            _quantize(initial_values, params),
            _TYPES.INT8,
            params,
            like=parent.tensors[initial],
        )
    elif fill_value is not None:
        # A FILL of a run-time shape (a loop of any length): fill int8 instead.
        value = _add_constant(
            model,
            parent,
            _quantize(fill_value, params).reshape(()),
            _TYPES.INT8,
            params,
        )
        quantized = _add_tensor(parent, parent.tensors[initial], _TYPES.INT8, params)
        parent.operators.insert(
            loop_position,
            _operator(
                _fill_opcode(model, _TYPES.INT8), [filled.inputs[0], value], [quantized]
            ),
        )
        loop.inputs[k] = quantized
    else:
        quantized = _add_tensor(parent, parent.tensors[initial], _TYPES.INT8, params)
        parent.operators.insert(
            loop_position, _operator(quantize_code, [initial], [quantized])
        )
        loop.inputs[k] = quantized
    float_result = None
    if float_readers:
        float_result = _add_tensor(parent, parent.tensors[result], _TYPES.FLOAT32, None)
        for op in float_readers:
            op.inputs = [float_result if i == result else i for i in op.inputs]
    for index in [result] + [op.outputs[0] for op in reshapes]:
        parent.tensors[index].type = _TYPES.INT8
        parent.tensors[index].quantization = copy.deepcopy(params)
    for op in same_quantize:
        source = op.inputs[0]
        _replace_input(parent, op.outputs[0], source)
        parent.outputs = [source if i == op.outputs[0] else i for i in parent.outputs]
        parent.operators.remove(op)
    if float_result is not None:
        position = parent.operators.index(loop) + 1
        parent.operators.insert(
            position, _operator(dequantize_code, [result], [float_result])
        )
    return True


def _state_plan(model, body, body_in, body_out):
    """A state that enters through one QUANTIZE and leaves through a DEQUANTIZE
    of a tensor with exactly that quantization: (int8 tensor, body rewrite)."""
    users = _consumers(body, body_in)
    if len(users) != 1 or _code(model, users[0]) != _OPS.QUANTIZE:
        return None
    quantize = users[0]
    entered = body.tensors[quantize.outputs[0]]
    leaving = _producer(body, body_out)
    if leaving is None or _code(model, leaving) != _OPS.DEQUANTIZE:
        return None
    left = leaving.inputs[0]
    if entered.type != _TYPES.INT8 or not _same_quantization(
        body.tensors[left], entered
    ):
        return None

    def rewrite():
        _replace_input(body, quantize.outputs[0], body_in)
        body.operators.remove(quantize)
        body.outputs[body.outputs.index(body_out)] = left
        body.operators.remove(leaving)

    return entered, rewrite


def _collected_plan(model, body, body_in, body_out):
    """A many-to-many loop's collected outputs: a float tensor that only
    DYNAMIC_UPDATE_SLICE writes, each step with a DEQUANTIZE of an int8 output.
    The int8 output is written instead: (int8 tensor, body rewrite)."""
    users = _consumers(body, body_in)
    if len(users) != 1 or _code(model, users[0]) != _OPS.DYNAMIC_UPDATE_SLICE:
        return None
    update = users[0]
    if update.inputs[0] != body_in or update.outputs != [body_out]:
        return None
    dequantize = _producer(body, update.inputs[1])
    if dequantize is None or _code(model, dequantize) != _OPS.DEQUANTIZE:
        return None
    written = body.tensors[dequantize.inputs[0]]
    scale = None if written.quantization is None else written.quantization.scale
    if written.type != _TYPES.INT8 or scale is None or len(scale) != 1:
        return None  # the collected tensor needs one scale for every step

    def rewrite():
        dequantized = update.inputs[1]
        update.inputs[1] = dequantize.inputs[0]
        if not _consumers(body, dequantized) and dequantized not in body.outputs:
            body.operators.remove(dequantize)
        body.tensors[body_out].type = _TYPES.INT8
        body.tensors[body_out].quantization = copy.deepcopy(written.quantization)

    return written, rewrite


def _constant(model, tensor) -> np.ndarray | None:
    """The float32 values of a constant tensor, or None."""
    data = model.buffers[tensor.buffer].data
    if tensor.type != _TYPES.FLOAT32 or data is None or len(data) == 0:
        return None
    return np.frombuffer(bytes(np.asarray(data, np.uint8)), "<f4")


def _quantize(values: np.ndarray, params) -> np.ndarray:
    scale, zero_point = float(params.scale[0]), int(params.zeroPoint[0])
    return np.clip(np.round(values / scale) + zero_point, -128, 127).astype(np.int8)


def _add_tensor(subgraph, like, tensor_type, params, buffer: int = 0) -> int:
    """A new tensor shaped like the tensor `like` (data in `buffer`, if any)."""
    tensor = schema.TensorT()
    tensor.shape = None if like.shape is None else list(like.shape)
    tensor.shapeSignature = (
        None if like.shapeSignature is None else list(like.shapeSignature)
    )
    tensor.hasRank = like.hasRank
    tensor.type = tensor_type
    tensor.buffer = buffer
    tensor.quantization = copy.deepcopy(params) if params is not None else None
    subgraph.tensors.append(tensor)
    return len(subgraph.tensors) - 1


def _add_constant(model, subgraph, values: np.ndarray, tensor_type, params, like=None):
    """A constant tensor holding `values` (shaped like `like`, if given)."""
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(values.tobytes(), np.uint8).copy()
    model.buffers.append(buffer)
    if like is None:
        like = schema.TensorT()
        like.shape, like.hasRank = list(values.shape), True
    return _add_tensor(subgraph, like, tensor_type, params, len(model.buffers) - 1)


def _operator(opcode_index: int, inputs: list[int], outputs: list[int]):
    op = schema.OperatorT()
    op.opcodeIndex = opcode_index
    op.inputs = list(inputs)
    op.outputs = list(outputs)
    return op


# ----------------------------------------------------------------------------
# Pass 1b: constant loop inputs of one repeated value

# A FILL op with its shape and value costs about 200 bytes of flatbuffer.
_SPLAT_MIN_BYTES = 1024
_NUMPY_TYPES = {_TYPES.FLOAT32: "<f4", _TYPES.INT8: "i1", _TYPES.INT32: "<i4"}


def fill_splat_loop_inputs(model) -> int:
    """Computes constant WHILE inputs of one repeated value with a FILL op.

    A many-to-many loop starts from a (steps, batch, units) tensor of zeros
    that the converter stores as a constant (12.8 KB for 50 x 64 floats); a
    FILL of its shape and one value computes it at run time instead.

    Returns:
        The number of constants replaced.
    """
    replaced = 0
    for subgraph in model.subgraphs:
        loop_inputs = {
            i
            for op in subgraph.operators
            if _code(model, op) == _OPS.WHILE
            for i in op.inputs
        }
        for index in sorted(loop_inputs):
            tensor = subgraph.tensors[index]
            data = model.buffers[tensor.buffer].data
            dtype = _NUMPY_TYPES.get(tensor.type)
            if dtype is None or data is None or len(data) < _SPLAT_MIN_BYTES:
                continue
            if index in subgraph.outputs or any(
                _code(model, op) != _OPS.WHILE for op in _consumers(subgraph, index)
            ):
                continue
            values = np.frombuffer(bytes(np.asarray(data, np.uint8)), dtype)
            if not np.all(values == values[0]):
                continue
            dims = _add_constant(
                model, subgraph, np.asarray(tensor.shape, np.int32), _TYPES.INT32, None
            )
            value = _add_constant(
                model,
                subgraph,
                values[:1].reshape(()),
                tensor.type,
                tensor.quantization,
            )
            tensor.buffer = 0  # now FILL's output; the old buffer is dropped later
            fill = _operator(_fill_opcode(model, tensor.type), [dims, value], [index])
            fill.builtinOptionsType = schema.BuiltinOptions.FillOptions
            fill.builtinOptions = schema.FillOptionsT()
            subgraph.operators.insert(0, fill)
            replaced += 1
    return replaced


def _fill_opcode(model, tensor_type) -> int:
    # FILL version 3 is the one that takes int8 values (TFLite's op versioning).
    version = 3 if tensor_type == _TYPES.INT8 else 1
    index = _opcode_index(model, _OPS.FILL)
    if index is not None:
        entry = model.operatorCodes[index]
        entry.version = max(entry.version, version)
        return index
    entry = schema.OperatorCodeT()
    entry.builtinCode = _OPS.FILL
    entry.deprecatedBuiltinCode = min(_OPS.FILL, 127)
    entry.version = version
    model.operatorCodes.append(entry)
    return len(model.operatorCodes) - 1


# ----------------------------------------------------------------------------
# Pass 2: dead loop variables


def drop_dead_loop_variables(model) -> int:
    """Removes loop variables whose values nothing outside their own update reads.

    A variable is dead when the cond does not read it, the loop's result is not
    read after the loop, and in the body it is either passed through untouched
    or feeds exactly one op whose only output is its next value (the counter
    `i + 1`).

    Returns:
        The number of loop variables removed.
    """
    removed = 0
    for parent_index, loop, cond, body in list(_loops(model)):
        parent = model.subgraphs[parent_index]
        outside = set(parent.outputs) | _signature_tensors(model, parent_index)
        for k in reversed(range(len(loop.inputs))):
            if len(loop.inputs) == 1:
                break
            body_in, body_out = body.inputs[k], body.outputs[k]
            result = loop.outputs[k]
            if _consumers(cond, cond.inputs[k]) or _consumers(parent, result):
                continue
            if result in outside or body.outputs.count(body_out) != 1:
                continue
            users = _consumers(body, body_in)
            update = None
            if body_out == body_in:
                if users:
                    continue
            else:
                if body_in in body.outputs or len(users) != 1:
                    continue
                update = users[0]
                if update.outputs != [body_out] or _consumers(body, body_out):
                    continue
            if update is not None:
                body.operators.remove(update)
            for vector in (
                loop.inputs,
                loop.outputs,
                cond.inputs,
                body.inputs,
                body.outputs,
            ):
                del vector[k]
            removed += 1
    return removed


# ----------------------------------------------------------------------------
# Passes 3-5: tensors, names, buffers


# Ops without side effects that the passes above may leave without readers.
_PURE_OPS = {
    _OPS.FILL,
    _OPS.QUANTIZE,
    _OPS.DEQUANTIZE,
    _OPS.RESHAPE,
    _OPS.TRANSPOSE,
    _OPS.SHAPE,
    _OPS.STRIDED_SLICE,
    _OPS.PACK,
    _OPS.CAST,
}


def drop_dead_ops(model) -> int:
    """Removes pure data ops (`_PURE_OPS`) whose outputs nothing reads.

    Returns:
        The number of ops removed.
    """
    removed = 0
    for index, subgraph in enumerate(model.subgraphs):
        outside = set(subgraph.outputs) | _signature_tensors(model, index)
        changed = True
        while changed:
            read = {i for op in subgraph.operators for i in op.inputs} | outside
            dead = [
                op
                for op in subgraph.operators
                if _code(model, op) in _PURE_OPS and not set(op.outputs) & read
            ]
            for op in dead:
                subgraph.operators.remove(op)
            removed += len(dead)
            changed = bool(dead)
    return removed


def drop_unused_tensors(model) -> int:
    """Removes tensors nothing refers to and renumbers the rest.

    Returns:
        The number of tensors removed.
    """
    removed = 0
    for index, subgraph in enumerate(model.subgraphs):
        used = set(subgraph.inputs) | set(subgraph.outputs)
        used |= _signature_tensors(model, index)
        for op in subgraph.operators:
            used |= {i for i in op.inputs if i >= 0}
            used |= set(op.outputs)
            used |= set(op.intermediates or [])
        keep = sorted(used)
        if len(keep) == len(subgraph.tensors):
            continue
        new_index = {old: new for new, old in enumerate(keep)}
        removed += len(subgraph.tensors) - len(keep)
        subgraph.tensors = [subgraph.tensors[i] for i in keep]
        subgraph.inputs = [new_index[i] for i in subgraph.inputs]
        subgraph.outputs = [new_index[i] for i in subgraph.outputs]
        for op in subgraph.operators:
            op.inputs = [new_index[i] if i >= 0 else i for i in op.inputs]
            op.outputs = [new_index[i] for i in op.outputs]
            if op.intermediates is not None:
                op.intermediates = [new_index[i] for i in op.intermediates]
        for signature in model.signatureDefs or []:
            if signature.subgraphIndex == index:
                for entry in (signature.inputs or []) + (signature.outputs or []):
                    entry.tensorIndex = new_index[entry.tensorIndex]
    return removed


def drop_unused_opcodes(model) -> None:
    """Drops operator codes no op uses any more (readers list ops from them)."""
    used = sorted({op.opcodeIndex for sg in model.subgraphs for op in sg.operators})
    if len(used) == len(model.operatorCodes):
        return
    new_index = {old: new for new, old in enumerate(used)}
    model.operatorCodes = [model.operatorCodes[i] for i in used]
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            op.opcodeIndex = new_index[op.opcodeIndex]


def drop_intermediate_names(model) -> None:
    """Empties the names of tensors other than the model's inputs and outputs."""
    for index, subgraph in enumerate(model.subgraphs):
        named = _signature_tensors(model, index)
        if index == 0:
            named |= set(subgraph.inputs) | set(subgraph.outputs)
        for position, tensor in enumerate(subgraph.tensors):
            if position not in named:
                tensor.name = None


def share_empty_buffers(model) -> None:
    """Points data-less tensors at buffer 0 and drops the buffers left unused."""
    if not model.buffers or _has_data(model.buffers[0]):
        return  # the schema's empty sentinel is missing: leave the file as it is
    tensors = [t for subgraph in model.subgraphs for t in subgraph.tensors]
    for tensor in tensors:
        if not tensor.isVariable and not _has_data(model.buffers[tensor.buffer]):
            tensor.buffer = 0
    used = {0} | {t.buffer for t in tensors}
    used |= {entry.buffer for entry in model.metadata or []}
    keep = sorted(used)
    new_index = {old: new for new, old in enumerate(keep)}
    model.buffers = [model.buffers[i] for i in keep]
    for tensor in tensors:
        tensor.buffer = new_index[tensor.buffer]
    for entry in model.metadata or []:
        entry.buffer = new_index[entry.buffer]


def _has_data(buffer) -> bool:
    return (buffer.data is not None and len(buffer.data) > 0) or bool(buffer.offset)


# ----------------------------------------------------------------------------
# Packing


class _SharingBuilder(flatbuffers.Builder):
    """A builder that writes each distinct vector, string and leaf table once."""

    def __init__(self):
        super().__init__(1024)
        self.vectors: dict = {}
        self.strings: dict = {}
        self.tables: dict = {}

    def CreateNumpyVector(self, x):  # noqa: N802 (flatbuffers' method name)
        key = (x.dtype.str, x.shape, x.tobytes())
        if key not in self.vectors:
            self.vectors[key] = super().CreateNumpyVector(x)
        return self.vectors[key]

    def CreateString(self, s, encoding="utf-8", errors="strict"):  # noqa: N802
        key = s if isinstance(s, bytes) else s.encode(encoding, errors)
        if key not in self.strings:
            self.strings[key] = super().CreateString(s, encoding, errors)
        return self.strings[key]

    def create_aligned_bytes(self, data: bytes) -> int:
        key = ("buffer", data)
        if key not in self.vectors:
            self.StartVector(1, len(data), _BUFFER_ALIGNMENT)
            self.head = self.head - len(data)
            self.Bytes[self.head : self.head + len(data)] = data
            self.vectors[key] = self.EndVector()
        return self.vectors[key]


def _freeze(value):
    if isinstance(value, np.ndarray):
        return (value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if value is None or isinstance(value, (bool, int, float, str, bytes, np.generic)):
        return value
    raise TypeError  # a nested table: not shared


class _SharedTable:
    """Mixin: `Pack` returns the offset of an identical table packed before."""

    def Pack(self, builder):  # noqa: N802
        try:
            key = (
                type(self).__name__,
                tuple(sorted((k, _freeze(v)) for k, v in vars(self).items())),
            )
        except TypeError:
            return super().Pack(builder)
        if key not in builder.tables:
            builder.tables[key] = super().Pack(builder)
        return builder.tables[key]


class _AlignedBuffer(schema.BufferT):
    def Pack(self, builder):  # noqa: N802
        data = None
        if self.data is not None:
            data = builder.create_aligned_bytes(bytes(np.asarray(self.data, np.uint8)))
        schema.BufferStart(builder)
        if data is not None:
            schema.BufferAddData(builder, data)
        schema.BufferAddOffset(builder, self.offset)
        schema.BufferAddSize(builder, self.size)
        return schema.BufferEnd(builder)


_SHARED_CLASSES: dict[type, type] = {}


def _shared(obj) -> None:
    cls = type(obj)
    if cls not in _SHARED_CLASSES:
        _SHARED_CLASSES[cls] = type(cls.__name__, (_SharedTable, cls), {})
    obj.__class__ = _SHARED_CLASSES[cls]


def pack_model(model) -> bytes:
    """Serializes a model tree with shared vectors, strings and leaf tables."""
    for subgraph in model.subgraphs:
        subgraph.inputs = np.asarray(subgraph.inputs, np.int32)
        subgraph.outputs = np.asarray(subgraph.outputs, np.int32)
        for tensor in subgraph.tensors:
            if (
                tensor.quantization is not None
                and type(tensor.quantization) is schema.QuantizationParametersT
            ):
                _shared(tensor.quantization)
            for name in ("shape", "shapeSignature"):
                value = getattr(tensor, name)
                if value is not None:
                    setattr(tensor, name, np.asarray(value, np.int32))
        for op in subgraph.operators:
            op.inputs = np.asarray(op.inputs, np.int32)
            op.outputs = np.asarray(op.outputs, np.int32)
            if op.intermediates is not None:
                op.intermediates = np.asarray(op.intermediates, np.int32)
            if op.builtinOptions is not None and not isinstance(
                op.builtinOptions, _SharedTable
            ):
                _shared(op.builtinOptions)
    for buffer in model.buffers:
        if type(buffer) is schema.BufferT:
            buffer.__class__ = _AlignedBuffer
    builder = _SharingBuilder()
    builder.Finish(model.Pack(builder), file_identifier=_FILE_IDENTIFIER)
    packed = bytes(builder.Output())
    # Leave the tree as `load_model` gives it, so that it can be edited again.
    for subgraph in model.subgraphs:
        subgraph.inputs = _ints(subgraph.inputs)
        subgraph.outputs = _ints(subgraph.outputs)
        for op in subgraph.operators:
            op.inputs = _ints(op.inputs)
            op.outputs = _ints(op.outputs)
            if op.intermediates is not None:
                op.intermediates = _ints(op.intermediates)
    return packed
