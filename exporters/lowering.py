"""Lowering of Keras 3 recurrent models to TensorFlow graphs of builtin-convertible ops.

Keras 3 recurrent layers trace to TensorList loops that the TFLite converter
turns into Flex ops or crashes on. This module re-expresses a model as a plain
TensorFlow function whose recurrent layers are rewritten from their weights:

* LSTM (zero initial state, standard activations, no returned state) becomes a
  function carrying the `tf.api_implements="lstm_..."` attribute, which the
  converter's `prepare_composite_functions_tf` pass fuses into one
  UNIDIRECTIONAL_SEQUENCE_LSTM op whose weights are stored once.
* GRU, SimpleRNN and the other LSTMs become a `tf.while_loop` whose input
  projection for all time steps is hoisted into one matmul (builtin WHILE; the
  loop body holds only the recurrent matmul and the gates), or, when a fixed
  length is asked for (full-integer int8, which the converter cannot quantize
  inside a WHILE), a loop unrolled in Python.
* In `step` mode (streaming) every recurrent layer becomes one cell step whose
  state is an explicit input and output of the graph.

Every other layer is called as it is on TensorFlow tensors (Keras 3 layers run
on TF tensors under the TensorFlow backend), so Dense, Embedding,
LayerNormalization, attention and `keras.ops` nodes keep their own code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid

import keras
import numpy as np
import tensorflow as tf

# TensorFlow's only DynamicUpdateSlice op; the converter maps it to the builtin.
from tensorflow.compiler.tf2xla.python import xla

from rnnkit.errors import ExportError

RECURRENT_TYPES = (keras.layers.LSTM, keras.layers.GRU, keras.layers.SimpleRNN)
_IDENTITY_TYPES = (
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
    keras.layers.ActivityRegularization,
)
# Layers that act on each time step alone, so that a one-step graph may apply them
# to a (batch, features) tensor.
_STEPWISE_TYPES = (
    keras.layers.Dense,
    keras.layers.EinsumDense,
    keras.layers.Embedding,
    keras.layers.LayerNormalization,
    keras.layers.BatchNormalization,
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.Softmax,
    keras.layers.LeakyReLU,
    keras.layers.Add,
    keras.layers.Subtract,
    keras.layers.Multiply,
    keras.layers.Average,
    keras.layers.Maximum,
    keras.layers.Minimum,
    keras.layers.Rescaling,
    keras.layers.Normalization,
    keras.layers.InputLayer,
)


def cell_kind(layer) -> str:
    """'lstm', 'gru' or 'simple_rnn' for a Keras recurrent layer."""
    if isinstance(layer, keras.layers.LSTM):
        return "lstm"
    if isinstance(layer, keras.layers.GRU):
        return "gru"
    return "simple_rnn"


def state_size(layer) -> list[int]:
    """Sizes of the recurrent state tensors of one recurrent layer."""
    units = layer.cell.units
    return [units, units] if isinstance(layer, keras.layers.LSTM) else [units]


@dataclasses.dataclass
class LoweringOptions:
    """How to lower the recurrent layers.

    Attributes:
        step: build the one-step (streaming) graph instead of the sequence graph.
        time_steps: unroll sequence loops to this fixed length; None keeps a
            WHILE loop over a dynamic time axis.
        fuse_lstm: lower eligible LSTMs to the fused TFLite op.
    """

    step: bool = False
    time_steps: int | None = None
    fuse_lstm: bool = True
    sites: Sites | None = None

    @property
    def q(self) -> Sites:
        return self.sites or _PLAIN


class Sites:
    """Where int8 quantization ranges are recorded or applied.

    The lowering passes every intermediate tensor of a recurrent step (and every
    layer output, and every weight) through `act` / `weight` under a stable name
    (layer name and role, the same at every time step). This base class changes
    nothing; `rnnkit.exporters.qat` subclasses it to record ranges eagerly over
    real data and then to insert fake-quantization nodes with those ranges, which
    is how the converter is told the int8 ranges of a WHILE loop it cannot
    calibrate itself.
    """

    def act(self, name: str, tensor):
        return tensor

    def bounded(self, name: str, tensor, low: float, high: float):
        """An activation output whose int8 range TFLite fixes (sigmoid, tanh).

        TFLite's int8 LOGISTIC and TANH kernels always output with one scale
        (1/256 and 1/128); a recorded range that differs makes the converter
        add a requantizing QUANTIZE op after each of them.
        """
        return self.act(name, tensor)

    def weight(self, name: str, array: np.ndarray):
        """A weight as a graph constant."""
        return tf.constant(array)


_PLAIN = Sites()


@dataclasses.dataclass
class LoweringReport:
    """What happened to each recurrent layer (for the manifest and errors)."""

    layers: list[dict] = dataclasses.field(default_factory=list)
    uses_mask: bool = False
    # In step mode: (layer name, state sizes) in the order of the state inputs.
    states: list[tuple[str, list[int]]] = dataclasses.field(default_factory=list)


class _CellWeights:
    """The weights of one Keras 3 recurrent cell as float32 constants."""

    def __init__(self, layer):
        # Read the variables eagerly even while a tf.function is being traced.
        with tf.init_scope():
            self._read(layer)

    def _read(self, layer):
        cell = layer.cell
        self.kind = cell_kind(layer)
        self.units = cell.units
        self.kernel = np.asarray(keras.ops.convert_to_numpy(cell.kernel), np.float32)
        self.recurrent = np.asarray(
            keras.ops.convert_to_numpy(cell.recurrent_kernel), np.float32
        )
        gates = {"lstm": 4, "gru": 3, "simple_rnn": 1}[self.kind]
        self.reset_after = bool(getattr(cell, "reset_after", False))
        if cell.use_bias:
            bias = np.asarray(keras.ops.convert_to_numpy(cell.bias), np.float32)
        else:
            shape = (
                (2, gates * self.units) if self.reset_after else (gates * self.units,)
            )
            bias = np.zeros(shape, np.float32)
        if self.kind == "gru" and self.reset_after:
            self.input_bias, self.recurrent_bias = bias[0], bias[1]
        else:
            self.input_bias, self.recurrent_bias = bias, None
        self.activation = cell.activation
        self.recurrent_activation = getattr(cell, "recurrent_activation", None)

    def standard_activations(self) -> bool:
        return (
            self.activation is keras.activations.tanh
            and self.recurrent_activation is keras.activations.sigmoid
        )


def _project_inputs(weights: _CellWeights, inputs, q: Sites = _PLAIN, name=""):
    """x @ W + b for every time step at once: (B, T, F) -> (B, T, G*H)."""
    kernel = q.weight(f"{name}/kernel", weights.kernel)
    return q.act(f"{name}/projected", tf.matmul(inputs, kernel) + weights.input_bias)


# The fixed output ranges of TFLite's int8 LOGISTIC (scale 1/256, zero point
# -128) and TANH (scale 1/128, zero point 0), as fake-quantization min/max.
_INT8_ACTIVATION_RANGES = {"sigmoid": (0.0, 255 / 256), "tanh": (-1.0, 127 / 128)}


def _step(
    weights: _CellWeights,
    projected,
    states,
    recurrent_included=False,
    q: Sites = _PLAIN,
    name="",
):
    """One cell step from the projected input (B, G*H); returns (output, states).

    With `recurrent_included`, `projected` already holds h @ U (LSTM and
    SimpleRNN one-step graphs compute [x, h] @ [W; U] as one matmul). `q` sees
    every intermediate under `name/<role>` (see `Sites`).
    """
    act, rec_act = weights.activation, weights.recurrent_activation
    h = states[0]
    units = weights.units

    def site(role, tensor):
        return q.act(f"{name}/{role}", tensor)

    def activated(role, function, tensor):
        bounds = _INT8_ACTIVATION_RANGES.get(getattr(function, "__name__", ""))
        if bounds is None:
            return site(role, function(tensor))
        return q.bounded(f"{name}/{role}", function(tensor), *bounds)

    if weights.kind == "lstm":
        if recurrent_included:
            z = projected
        else:
            h_proj = site(
                "h_proj", tf.matmul(h, q.weight(f"{name}/rec", weights.recurrent))
            )
            z = site("z", projected + h_proj)
        i, f, g, o = tf.split(z, 4, axis=-1)
        i = activated("i", rec_act, i)
        f = activated("f", rec_act, f)
        o = activated("o", rec_act, o)
        g = activated("g", act, g)
        c = site("c", site("fc", f * states[1]) + site("ig", i * g))
        h = site("h", o * activated("tanh_c", act, c))
        return h, [h, c]
    if weights.kind == "gru":
        x_z, x_r, x_h = tf.split(projected, 3, axis=-1)
        if weights.reset_after:
            rec = q.weight(f"{name}/rec", weights.recurrent)
            h_proj = site("h_proj", tf.matmul(h, rec) + weights.recurrent_bias)
            h_z, h_r, h_h = tf.split(h_proj, 3, axis=-1)
            z = activated("z", rec_act, site("z_in", x_z + h_z))
            r = activated("r", rec_act, site("r_in", x_r + h_r))
            candidate = activated(
                "candidate", act, site("c_in", x_h + site("rh", r * h_h))
            )
        else:
            rec_zr = q.weight(f"{name}/rec_zr", weights.recurrent[:, : 2 * units])
            rec_h = q.weight(f"{name}/rec_h", weights.recurrent[:, 2 * units :])
            h_zr = site("h_proj", tf.matmul(h, rec_zr))
            h_z, h_r = tf.split(h_zr, 2, axis=-1)
            z = activated("z", rec_act, site("z_in", x_z + h_z))
            r = activated("r", rec_act, site("r_in", x_r + h_r))
            reset_h = tf.matmul(site("rh", r * h), rec_h)
            candidate = activated(
                "candidate", act, site("c_in", x_h + site("rh_proj", reset_h))
            )
        keep = site("keep", z * h)
        h = site("h", keep + site("new", site("one_minus_z", 1.0 - z) * candidate))
        return h, [h]
    if not recurrent_included:
        rec = q.weight(f"{name}/rec", weights.recurrent)
        projected = site("pre", projected + site("h_proj", tf.matmul(h, rec)))
    h = site("h", act(projected))
    return h, [h]


def _fused_lstm_fn(go_backwards: bool):
    """A function the converter replaces by UNIDIRECTIONAL_SEQUENCE_LSTM.

    The converter matches the attribute `api_implements="lstm_*"` and reads the
    argument order (inputs, init_h, init_c, kernel, recurrent_kernel, bias) and
    the five results (last output, sequence, final h, final c, runtime) that
    tf_keras' `standard_lstm` defined; it only fuses when the final h and c are
    unused. The body is the reference semantics, used when not converting.
    """

    def lstm(inputs, init_h, init_c, kernel, recurrent_kernel, bias):
        time_major = tf.transpose(inputs, [1, 0, 2])
        if go_backwards:
            time_major = tf.reverse(time_major, [0])
        steps = tf.shape(time_major)[0]
        outputs = tf.TensorArray(tf.float32, size=steps)

        def body(t, h, c, outputs):
            z = tf.matmul(time_major[t], kernel) + tf.matmul(h, recurrent_kernel) + bias
            i, f, g, o = tf.split(z, 4, axis=1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            h = tf.sigmoid(o) * tf.tanh(c)
            return t + 1, h, c, outputs.write(t, h)

        _, h, c, outputs = tf.while_loop(
            lambda t, *_: t < steps, body, [0, init_h, init_c, outputs]
        )
        sequence = tf.transpose(outputs.stack(), [1, 0, 2])
        return h, sequence, h, c, tf.constant(0.0)

    attributes = {
        "api_implements": f"lstm_{uuid.uuid4()}",
        "api_preferred_device": "CPU",
        "time_major": False,
        "go_backwards": go_backwards,
    }
    return tf.function(lstm, autograph=False, experimental_attributes=attributes)


def _run_sequence(layer, inputs, initial_state, mask, options: LoweringOptions, report):
    """Lowers one unidirectional recurrent layer over a whole sequence."""
    weights = _CellWeights(layer)
    batch = tf.shape(inputs)[0]
    sizes = state_size(layer)
    zero_state = initial_state is None
    if zero_state:
        initial_state = [tf.zeros((batch, size), tf.float32) for size in sizes]
    initial_state = list(initial_state)
    zero_output = bool(getattr(layer, "zero_output_for_mask", False))

    fusable = (
        options.fuse_lstm
        and weights.kind == "lstm"
        and zero_state
        and not layer.return_state
        and weights.standard_activations()
    )
    if fusable:
        fused = _fused_lstm_fn(bool(layer.go_backwards))
        bias = weights.input_bias
        last, sequence, _, _, _ = fused(
            inputs,
            initial_state[0],
            initial_state[1],
            tf.constant(weights.kernel),
            tf.constant(weights.recurrent),
            tf.constant(bias),
        )
        report.layers.append({"layer": layer.name, "lowered_to": "fused_lstm"})
        return sequence if layer.return_sequences else last

    q, name = options.q, layer.name
    state_roles = ["h", "c"][: len(initial_state)]
    initial_state = [
        q.act(f"{name}/{role}", state)
        for role, state in zip(state_roles, initial_state, strict=True)
    ]
    # Steps are gathered along the time axis of the batch-major (B, T, G*H)
    # projection: no transpose, so no extra op or tensor in the file.
    projected = _project_inputs(weights, inputs, q, name)
    mask_tm = None
    if mask is not None:
        mask_tm = q.act(f"{name}/mask", tf.cast(mask[:, :, None], tf.float32))
    if layer.go_backwards:
        # Re-marked after the reverse so that int8 files keep it in int8.
        projected = q.act(f"{name}/projected", tf.reverse(projected, [1]))
        if mask_tm is not None:
            mask_tm = q.act(f"{name}/mask", tf.reverse(mask_tm, [1]))

    # The output is the new h, except under a mask where Keras repeats the
    # previous output (zeros at first) or writes zeros: then it is carried
    # beside the state; otherwise the loop carries h once.
    separate_output = mask_tm is not None and (zero_output or not zero_state)

    def advance(t, states, previous_output):
        # The carried state enters each step through the same range as it leaves.
        if previous_output is not None:
            previous_output = q.act(f"{name}/h", previous_output)
        states = [
            q.act(f"{name}/{role}", state)
            for role, state in zip(state_roles, states, strict=True)
        ]
        # GATHER, not a slice: a slice with a loop-dependent begin becomes a
        # STRIDED_SLICE with runtime bounds, which TFLite Micro cannot prepare.
        projected_t = tf.gather(projected, t, axis=1)
        output, new_states = _step(weights, projected_t, states, q=q, name=name)
        if mask_tm is not None:
            m = q.act(f"{name}/mask", tf.gather(mask_tm, t, axis=1))

            def held(role, new, old):
                delta = q.act(f"{name}/{role}_delta", new - old)
                return q.act(
                    f"{name}/{role}", old + q.act(f"{name}/{role}_step", m * delta)
                )

            new_states = [
                held(role, n, o)
                for role, n, o in zip(state_roles, new_states, states, strict=True)
            ]
            if previous_output is None:
                output = new_states[0]
            elif zero_output:
                output = q.act(f"{name}/h", m * output)
            else:
                output = held("h", output, previous_output)
        return output, new_states

    units = weights.units
    if options.time_steps is not None:
        states = initial_state
        output = q.act(f"{name}/h", tf.zeros((batch, units)))
        outputs = []
        for t in range(options.time_steps):
            output, states = advance(t, states, output)
            outputs.append(output)
        sequence = tf.stack(outputs, axis=1)
        report.layers.append({"layer": layer.name, "lowered_to": "unrolled"})
    else:
        steps = tf.shape(projected)[1]
        collect = layer.return_sequences
        # The outputs are written into a (steps, 1, units) tensor carried by the
        # loop with DYNAMIC_UPDATE_SLICE: a fixed shape at every step. (A
        # TensorArray lowers to slices and a concatenation whose shapes change
        # with the step, which TFLite Micro cannot plan: its outputs were wrong.)
        collected = tf.zeros(tf.stack([steps if collect else 1, batch, units]))

        # Under `separate_output` the previous output rides as a last loop
        # variable; otherwise the output is h and the loop carries it once.
        previous = (
            [q.act(f"{name}/h", tf.zeros((batch, units)))] if separate_output else []
        )

        def body(t, states, collected, *previous):
            output, states = advance(t, states, previous[0] if previous else None)
            if collect:
                collected = xla.dynamic_update_slice(
                    collected, output[None], tf.stack([t, 0, 0])
                )
            return (t + 1, states, collected, *([output] if previous else []))

        _, states, collected, *last = tf.while_loop(
            lambda t, *_: t < steps, body, [0, initial_state, collected, *previous]
        )
        output = last[0] if last else states[0]
        sequence = (
            tf.transpose(q.act(f"{name}/h", collected), [1, 0, 2]) if collect else None
        )
        report.layers.append({"layer": layer.name, "lowered_to": "while_loop"})
    result = sequence if layer.return_sequences else output
    if layer.return_state:
        return [result, *states]
    return result


def _keep_mask(source, tensor):
    """Carries a Keras mask from `source` over to `tensor` (a new TF tensor)."""
    mask = _get_mask(source)
    if mask is not None and tensor is not source:
        tensor._keras_mask = mask
    return tensor


def _drop_time(tensor):
    return tensor[:, 0] if tensor.shape.rank == 3 else tensor


def _get_mask(tensor):
    mask = getattr(tensor, "_keras_mask", None)
    return mask


class _Lowerer:
    """Walks a Keras model and evaluates it on TF tensors with recurrent layers replaced."""

    def __init__(
        self,
        options: LoweringOptions,
        report: LoweringReport,
        states=None,
        discover=False,
    ):
        self.options = options
        self.report = report
        # Discovery walk: make zero states of each layer's own sizes on the way.
        self.discover = discover
        # Step mode: the state tensors, consumed in graph order; new ones collected.
        self.state_inputs = list(states or [])
        self.state_outputs: list = []
        self.state_layers: list[tuple[str, list[int]]] = []

    # Recurrent layers ---------------------------------------------------------------

    def _recurrent(self, layer, inputs, initial_state=None, mask=None):
        if layer.stateful:
            raise ExportError(
                f"Layer {layer.name!r} is stateful, which an exported graph cannot "
                "carry. Expected a stateless layer; export with `streaming=True` to "
                "get the state as explicit inputs and outputs. Received: "
                "stateful=True"
            )
        if mask is None:
            mask = _get_mask(inputs)
        if mask is not None:
            self.report.uses_mask = True
        if not self.options.step:
            return _run_sequence(
                layer, inputs, initial_state, mask, self.options, self.report
            )
        if layer.go_backwards:
            raise ExportError(
                f"Layer {layer.name!r} reads the sequence backwards, which a "
                "streaming (one-step) model cannot do: its output at step t depends "
                "on later steps. Expected a forward recurrent layer; export the "
                "full-sequence model with `streaming=False`. Received: "
                "go_backwards=True"
            )
        sizes = state_size(layer)
        if initial_state is not None:
            states = list(initial_state)
        elif self.discover:
            states = [tf.zeros((1, size)) for size in sizes]
            self.state_layers.append((layer.name, sizes))
        else:
            taken = self.state_inputs[: len(sizes)]
            self.state_inputs = self.state_inputs[len(sizes) :]
            if len(taken) != len(sizes):
                raise ExportError(
                    "Internal error: fewer state inputs than recurrent layers."
                )
            states = taken
            self.state_layers.append((layer.name, sizes))
        weights = _CellWeights(layer)
        with_time = inputs.shape.rank == 3
        if with_time:
            inputs = inputs[:, 0]
        if weights.kind == "gru":
            projected = tf.matmul(inputs, weights.kernel) + weights.input_bias
            output, new_states = _step(weights, projected, states)
        else:
            # One matmul over [x, h]: fewer tensors and quantization parameters,
            # which is most of an int8 one-step file beside the weights.
            stacked = np.concatenate([weights.kernel, weights.recurrent], axis=0)
            joined = tf.concat([inputs, states[0]], axis=-1)
            projected = tf.matmul(joined, stacked) + weights.input_bias
            output, new_states = _step(
                weights, projected, states, recurrent_included=True
            )
        if with_time and layer.return_sequences:
            output = output[:, None]
        if initial_state is None:
            self.state_outputs.extend(new_states)
        self.report.layers.append({"layer": layer.name, "lowered_to": "cell_step"})
        if layer.return_state:
            return [output, *new_states]
        return output

    def _bidirectional(self, layer, inputs, initial_state=None, mask=None):
        if self.options.step:
            raise ExportError(
                f"Layer {layer.name!r} is bidirectional, which a streaming "
                "(one-step) model cannot be: its backward half needs the whole "
                "sequence. Expected unidirectional recurrent layers; export with "
                "`streaming=False`. Received: Bidirectional"
            )
        if mask is None:
            mask = _get_mask(inputs)
        forward_state = backward_state = None
        if initial_state is not None:
            half = len(initial_state) // 2
            forward_state, backward_state = initial_state[:half], initial_state[half:]
        y = self._recurrent(layer.forward_layer, inputs, forward_state, mask)
        y_rev = self._recurrent(layer.backward_layer, inputs, backward_state, mask)
        states = ()
        if layer.return_state:
            states = tuple(y[1:]) + tuple(y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        if layer.return_sequences:
            y_rev = tf.reverse(y_rev, [1])
        mode = layer.merge_mode
        if mode == "concat":
            output = tf.concat([y, y_rev], axis=-1)
        elif mode == "sum":
            output = y + y_rev
        elif mode == "ave":
            output = (y + y_rev) / 2.0
        elif mode == "mul":
            output = y * y_rev
        else:
            output = [y, y_rev]
        if layer.return_state:
            return (output if isinstance(output, list) else [output]) + list(states)
        return output

    @contextlib.contextmanager
    def _lowered_sublayers(self, stack):
        """Temporarily routes a RecurrentStack's recurrent layers to the lowering.

        The stack's own `call` then runs unchanged (flips, residuals, norms and
        state plumbing stay the stack's code) while every recurrent layer it
        calls is replaced; Keras' `__call__` looks `call` up on the instance.
        """
        patched = []
        for layer in stack.recurrent_layers:
            if isinstance(layer, keras.layers.Bidirectional):

                def call(
                    inputs, initial_state=None, mask=None, training=None, _l=layer
                ):
                    return self._bidirectional(_l, inputs, initial_state, mask)

            else:

                def call(
                    inputs, initial_state=None, mask=None, training=None, _l=layer
                ):
                    return self._recurrent(_l, inputs, initial_state, mask)

            patched.append((layer, layer.__dict__.get("call")))
            layer.call = call
        try:
            yield
        finally:
            for layer, previous in patched:
                if previous is None:
                    del layer.call
                else:
                    layer.call = previous

    # Graph walk ----------------------------------------------------------------------

    def replacement(self, operation):
        """The callable that stands in for `operation` in the lowered graph."""
        from rnnkit.layers import RecurrentStack

        if isinstance(operation, keras.Model):

            def run_nested(inputs, *args, **kwargs):
                outputs = self.run(operation, tf.nest.flatten(inputs))
                return outputs[0] if len(outputs) == 1 else outputs

            return run_nested
        if isinstance(operation, RecurrentStack):

            def run_stack(inputs, *args, **kwargs):
                if not self.options.step:
                    with self._lowered_sublayers(operation):
                        return operation(inputs, *args, **kwargs)
                # One step: the stack checks for (batch, time, features), so give
                # it a time axis of length 1 and take it away again.
                kwargs.pop("mask", None)
                with self._lowered_sublayers(operation):
                    result = operation(tf.expand_dims(inputs, 1), *args, **kwargs)
                if isinstance(result, (list, tuple)):
                    return [_drop_time(result[0]), *result[1:]]
                return _drop_time(result)

            return self._marked(operation, run_stack)
        if isinstance(operation, keras.layers.Bidirectional):

            def run_bidirectional(inputs, initial_state=None, mask=None, training=None):
                return self._bidirectional(operation, inputs, initial_state, mask)

            return self._marked(operation, run_bidirectional)
        if isinstance(operation, RECURRENT_TYPES):

            def run_recurrent(inputs, initial_state=None, mask=None, training=None):
                return self._recurrent(operation, inputs, initial_state, mask)

            return self._marked(operation, run_recurrent)
        if isinstance(operation, keras.layers.RNN):
            raise ExportError(
                f"Layer {operation.name!r} is a generic keras.layers.RNN around "
                f"{type(operation.cell).__name__}, which the exporter cannot lower. "
                "Expected keras.layers.LSTM, GRU or SimpleRNN (or "
                "rnnkit.layers.RecurrentStack), or the cell called directly in a "
                f"one-step model. Received: {type(operation).__name__}"
            )
        if isinstance(operation, _IDENTITY_TYPES):
            return lambda inputs, *args, **kwargs: inputs
        if self.options.step and isinstance(operation, keras.layers.Layer):
            if not isinstance(operation, (*_STEPWISE_TYPES, keras.layers.Concatenate)):
                raise ExportError(
                    f"Layer {operation.name!r} ({type(operation).__name__}) mixes "
                    "time steps or is not known to act on each step alone, so it "
                    "cannot go into a streaming (one-step) model. Expected only "
                    "per-step layers (Dense, Embedding, LayerNormalization, "
                    "activations, merges) around unidirectional recurrent layers; "
                    "export with `streaming=False` for the full-sequence model. "
                    f"Received: {type(operation).__name__}"
                )
        if self.options.sites is not None and isinstance(operation, keras.layers.Layer):
            return self._with_sites(operation)
        return operation

    def _output_sites(self, layer, result):
        q = self.options.sites
        flat = tf.nest.flatten(result)
        # A recurrent layer's output is its h: under h's own range it leaves
        # the loop with the scale it had inside, and the int8 file needs no
        # requantizing op after the loop.
        names = [f"{layer.name}/out{i}" for i in range(len(flat))]
        if isinstance(layer, RECURRENT_TYPES):
            names[0] = f"{layer.name}/h"
        marked = [
            _keep_mask(t, q.act(names[i], t))
            if getattr(t, "dtype", None) == tf.float32
            else t
            for i, t in enumerate(flat)
        ]
        return tf.nest.pack_sequence_as(result, marked)

    def _marked(self, layer, fn):
        """`fn` (a lowered layer) with its outputs under `Sites`, when there are any."""
        if self.options.sites is None:
            return fn
        return lambda *args, **kwargs: self._output_sites(layer, fn(*args, **kwargs))

    def _with_sites(self, layer):
        """`layer` with its output (and a Dense/Embedding's weights) under `Sites`."""
        q = self.options.sites

        def output_sites(result):
            return self._output_sites(layer, result)

        if isinstance(layer, keras.layers.Dense):
            with tf.init_scope():
                kernel = np.asarray(keras.ops.convert_to_numpy(layer.kernel))
                bias = (
                    np.asarray(keras.ops.convert_to_numpy(layer.bias))
                    if layer.use_bias
                    else None
                )

            def dense(inputs, *args, **kwargs):
                y = tf.tensordot(inputs, q.weight(f"{layer.name}/kernel", kernel), 1)
                if bias is not None:
                    y = y + bias
                if layer.activation not in (None, keras.activations.linear):
                    y = layer.activation(q.act(f"{layer.name}/pre", y))
                return _keep_mask(inputs, q.act(f"{layer.name}/out0", y))

            return dense
        if isinstance(layer, keras.layers.Embedding):
            with tf.init_scope():
                table = np.asarray(keras.ops.convert_to_numpy(layer.embeddings))

            def embed(inputs, *args, **kwargs):
                ids = tf.cast(inputs, tf.int32)
                vectors = tf.gather(q.weight(f"{layer.name}/table", table), ids)
                vectors = q.act(f"{layer.name}/out0", vectors)
                if layer.mask_zero:
                    vectors._keras_mask = tf.not_equal(ids, 0)
                return vectors

            return embed

        if hasattr(layer, SITES_METHOD):
            scoped = LayerSites(q, layer.name)

            def run_custom(*args, **kwargs):
                kwargs.pop("training", None)
                kwargs.pop("mask", None)
                return output_sites(
                    getattr(layer, SITES_METHOD)(scoped, *args, **kwargs)
                )

            return run_custom

        def run_layer(*args, **kwargs):
            return output_sites(layer(*args, **kwargs))

        return run_layer

    def run(self, model, inputs: list):
        """Evaluates `model` on TF tensors `inputs`; returns a flat list of outputs."""
        if self.options.sites is not None:
            inputs = [
                self.options.sites.act(f"input{i}", t) if t.dtype == tf.float32 else t
                for i, t in enumerate(inputs)
            ]
        if isinstance(model, keras.Sequential):
            layers = [layer for layer in model.layers]
            value = inputs[0]
            for layer in layers:
                value = self.replacement(layer)(value)
            return [value]
        outputs = model._run_through_graph(inputs, operation_fn=self.replacement)
        return list(tf.nest.flatten(outputs))


# A custom layer keeps a model in the int8 loop form by defining this method:
# `call_with_sites(self, sites, *args, **kwargs)` computes what `call` does and
# passes each float intermediate through `sites.act(role, tensor)` (and each
# weight it uses as a constant through `sites.weight(role, array)`); the roles
# are names local to the layer. Its output is marked by the exporter.
SITES_METHOD = "call_with_sites"


class LayerSites:
    """The `sites` a custom layer's `call_with_sites` receives: names scoped to
    the layer (`<layer name>/<role>`)."""

    def __init__(self, sites: Sites, layer_name: str):
        self._sites = sites
        self._prefix = layer_name

    def act(self, role: str, tensor):
        return self._sites.act(f"{self._prefix}/{role}", tensor)

    def weight(self, role: str, array):
        return self._sites.weight(f"{self._prefix}/{role}", np.asarray(array))


# Layers whose int8 ranges the carried (loop-kept) int8 path marks completely:
# their own math is lowered with `Sites`, or they only move values.
_MARKED_TYPES = (
    keras.layers.InputLayer,
    keras.layers.Dense,
    keras.layers.Embedding,
    keras.layers.Concatenate,
    keras.layers.Flatten,
    keras.layers.Reshape,
    *_IDENTITY_TYPES,
)


def unmarked_layers(model) -> list[str]:
    """Layers of `model` that the int8 loop form cannot mark (see `Sites`)."""
    from rnnkit.layers import RecurrentStack

    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.extend(unmarked_layers(layer))
        elif isinstance(layer, RecurrentStack):
            if layer.residual or layer.layer_norm:
                found.append(f"{layer.name} (residual/layer norm)")
        elif isinstance(layer, (*RECURRENT_TYPES, keras.layers.Bidirectional)):
            continue
        elif not isinstance(layer, _MARKED_TYPES) and not hasattr(layer, SITES_METHOD):
            found.append(f"{layer.name} ({type(layer).__name__})")
    return found


def lower_sequence(model, options: LoweringOptions):
    """Returns (fn, report): fn(list of tensors) -> list of output tensors."""
    report = LoweringReport()

    def fn(inputs):
        lowerer = _Lowerer(options, report)
        report.layers.clear()
        return lowerer.run(model, list(inputs))

    return fn, report


def discover_step_states(model, step_inputs) -> list[tuple[str, list[int]]]:
    """Runs the one-step walk eagerly on `step_inputs` to find the state layout."""
    report = LoweringReport()
    # The walk's order is the graph's, not `model.layers`' (parallel branches may
    # differ), so each layer gets zero states of its own sizes as it is reached.
    lowerer = _Lowerer(LoweringOptions(step=True), report, discover=True)
    lowerer.run(model, list(step_inputs))
    return lowerer.state_layers


def lower_step(model, state_layout):
    """Returns (fn, report): fn(step inputs, states) -> (outputs, new states)."""
    report = LoweringReport(states=state_layout)

    def fn(inputs, states):
        lowerer = _Lowerer(LoweringOptions(step=True), report, list(states))
        report.layers.clear()
        outputs = lowerer.run(model, list(inputs))
        return outputs, lowerer.state_outputs

    return fn, report
