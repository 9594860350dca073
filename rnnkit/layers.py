"""Serializable recurrent building blocks.

`RecurrentStack` is the recurrent core of every rnnkit model: 1..N layers of
SimpleRNN, LSTM or GRU, optionally bidirectional, with dropout, residual
connections and layer normalization between layers, and masking for
variable-length batches. Its defaults keep every layer on the cuDNN kernel
when a GPU is present (see `rnnkit.cudnn`).

Example:
    >>> import keras
    >>> from rnnkit.layers import RecurrentStack
    >>> stack = RecurrentStack("gru", units=32, num_layers=2, bidirectional=True)
    >>> stack(keras.ops.zeros((4, 10, 8))).shape
    (4, 10, 64)
"""

from __future__ import annotations

import keras

from rnnkit.errors import UsageError

CELL_TYPES = {
    "simple_rnn": keras.layers.SimpleRNN,
    "lstm": keras.layers.LSTM,
    "gru": keras.layers.GRU,
}
_CELL_ALIASES = {"simplernn": "simple_rnn", "rnn": "simple_rnn", "simple": "simple_rnn"}


def normalize_cell_name(cell: str) -> str:
    """Returns the canonical cell name ('simple_rnn', 'lstm' or 'gru')."""
    if not isinstance(cell, str):
        raise UsageError(
            f"`cell` must be a string, one of {sorted(CELL_TYPES)}. Received: {cell!r}"
        )
    name = cell.strip().lower().replace("-", "_")
    name = _CELL_ALIASES.get(name.replace("_", ""), name)
    if name not in CELL_TYPES:
        raise UsageError(
            f"Unknown recurrent cell {cell!r}. Expected one of {sorted(CELL_TYPES)}."
        )
    return name


def _is_float_dtype(dtype) -> bool:
    return keras.backend.standardize_dtype(dtype).startswith(("float", "bfloat"))


@keras.saving.register_keras_serializable(package="rnnkit")
class RecurrentStack(keras.layers.Layer):
    """A stack of recurrent layers with the usual regularizers between them.

    Args:
        cell: "simple_rnn", "lstm" or "gru".
        units: hidden units per direction of each layer.
        num_layers: how many recurrent layers to stack (1 or more).
        bidirectional: wrap each layer in `keras.layers.Bidirectional` (concat).
        dropout: dropout rate applied to the output of every layer but the last.
            Recurrent dropout is deliberately not offered: it disables cuDNN.
        residual: add each layer's input to its output where the widths agree.
        layer_norm: apply `LayerNormalization` to the output of every layer but
            the last.
        return_sequences: whether the last layer returns the whole sequence
            (many-to-many) or only its final output (many-to-one). Inner layers
            always return sequences.
        activation, recurrent_activation: cell activations. Anything but
            "tanh"/"sigmoid" runs on the generic kernel instead of cuDNN.
        go_backwards: process the sequence in reverse (unidirectional only).
            Every layer reads the sequence backwards, and returned sequences are
            in the original time order (unlike a single Keras layer, whose
            output sequence is reversed).
        stateful: carry the state across batches (truncated BPTT).
        layer_kwargs: passed to every recurrent layer (initializers, `unroll`,
            `recurrent_dropout`, `use_bias`, `reset_after`...).
        return_state: also return the final states of every layer, e.g. for an
            encoder whose states start a decoder.

    Call arguments:
        inputs: float tensor of shape (batch, time, features).
        mask: optional boolean tensor of shape (batch, time); True marks real
            steps. Usually supplied by an upstream `Embedding(mask_zero=True)`.
        training: Python bool.
        initial_state: optional flat list of state tensors, laid out like the
            states this stack returns with `return_state=True` (see
            `state_sizes`). Each has shape (batch, size).

    Returns:
        (batch, time, width) if `return_sequences` else (batch, width), where
        width is `units`, or `2 * units` when bidirectional. With
        `return_state`, a list `[outputs, *states]` where `states` holds every
        layer's final states in layer order: `[h]` for SimpleRNN/GRU, `[h, c]`
        for LSTM, forward states then backward states when bidirectional.
    """

    def __init__(
        self,
        cell: str = "lstm",
        units: int = 64,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        residual: bool = False,
        layer_norm: bool = False,
        return_sequences: bool = True,
        activation: str = "tanh",
        recurrent_activation: str = "sigmoid",
        go_backwards: bool = False,
        stateful: bool = False,
        layer_kwargs: dict | None = None,
        return_state: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.cell = normalize_cell_name(cell)
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise UsageError(f"`units` must be a positive integer. Received: {units!r}")
        if (
            isinstance(num_layers, bool)
            or not isinstance(num_layers, int)
            or num_layers < 1
        ):
            raise UsageError(
                f"`num_layers` must be a positive integer. Received: {num_layers!r}"
            )
        if not 0.0 <= float(dropout) < 1.0:
            raise UsageError(f"`dropout` must be in [0, 1). Received: {dropout!r}")
        if go_backwards and bidirectional:
            raise UsageError(
                "`go_backwards=True` only applies to a unidirectional stack; a "
                "bidirectional stack already reads both ways."
            )
        layer_kwargs = dict(layer_kwargs or {})
        reserved = {"units", "return_sequences", "return_state", "stateful", "name"}
        clash = sorted(reserved & set(layer_kwargs))
        if clash:
            raise UsageError(
                f"`layer_kwargs` may not set {clash}: the stack sets them itself. "
                f"Received: layer_kwargs={layer_kwargs!r}"
            )
        for name in ("activation", "recurrent_activation"):
            value = locals()[name]
            try:
                keras.activations.get(value)
            except (ValueError, TypeError) as error:
                raise UsageError(
                    f"Unknown `{name}`. Expected a Keras activation name such as "
                    f"'tanh', 'sigmoid' or 'relu'. Received: {name}={value!r}"
                ) from error
        self.units = units
        self.num_layers = num_layers
        self.bidirectional = bool(bidirectional)
        self.dropout = float(dropout)
        self.residual = bool(residual)
        self.layer_norm = bool(layer_norm)
        self.return_sequences = bool(return_sequences)
        self.activation = activation
        self.recurrent_activation = recurrent_activation
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.layer_kwargs = layer_kwargs
        self.return_state = bool(return_state)
        self.supports_masking = True

        layer_class = CELL_TYPES[self.cell]
        self.recurrent_layers = []
        self.norm_layers = []
        self.dropout_layers = []
        for index in range(num_layers):
            is_last = index == num_layers - 1
            cell_kwargs = dict(
                units=units,
                return_sequences=self.return_sequences or not is_last,
                return_state=self.return_state,
                stateful=self.stateful,
                go_backwards=self.go_backwards,
                name=f"{self.cell}_{index}",
                **self.layer_kwargs,
            )
            if self.cell != "simple_rnn":
                cell_kwargs["recurrent_activation"] = recurrent_activation
            layer = layer_class(activation=activation, **cell_kwargs)
            # Keras names every cell "<kind>_cell"; one-step models call the cells
            # directly, and a functional graph needs unique names.
            layer.cell.name = f"{self.cell}_cell_{index}"
            if self.bidirectional:
                layer = keras.layers.Bidirectional(layer, name=f"bidirectional_{index}")
            self.recurrent_layers.append(layer)
            if not is_last:
                self.norm_layers.append(
                    keras.layers.LayerNormalization(name=f"layer_norm_{index}")
                    if self.layer_norm
                    else None
                )
                self.dropout_layers.append(
                    keras.layers.Dropout(self.dropout, name=f"dropout_{index}")
                    if self.dropout
                    else None
                )

    @property
    def output_width(self) -> int:
        return self.units * (2 if self.bidirectional else 1)

    @property
    def states_per_layer(self) -> int:
        """How many state tensors one layer carries (both directions together)."""
        per_direction = 2 if self.cell == "lstm" else 1
        return per_direction * (2 if self.bidirectional else 1)

    @property
    def state_sizes(self) -> list[int]:
        """The width of every state tensor, in the order `return_state` gives them."""
        return [self.units] * (self.states_per_layer * self.num_layers)

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise UsageError(
                "RecurrentStack expects inputs of rank 3 (batch, time, features). "
                f"Received: input_shape={tuple(input_shape)}"
            )
        if input_shape[1] == 0 or input_shape[-1] is None:
            raise UsageError(
                "RecurrentStack expects at least one time step and a known feature "
                f"size. Received: input_shape={tuple(input_shape)}"
            )
        shape = tuple(input_shape)
        for index, layer in enumerate(self.recurrent_layers):
            layer.build(shape)
            shape = (shape[0], shape[1], self.output_width)
            if index < len(self.norm_layers) and self.norm_layers[index] is not None:
                self.norm_layers[index].build(shape)
        self.built = True

    def _check_inputs(self, inputs, initial_state):
        shape = tuple(inputs.shape)
        if len(shape) != 3:
            raise UsageError(
                "RecurrentStack expects inputs of rank 3 (batch, time, features). "
                f"Received: inputs.shape={shape}"
            )
        if not _is_float_dtype(inputs.dtype):
            raise UsageError(
                "RecurrentStack expects float inputs; embed integer tokens first "
                "(e.g. `keras.layers.Embedding(..., mask_zero=True)`). "
                f"Received: inputs.dtype={keras.backend.standardize_dtype(inputs.dtype)}"
            )
        if shape[0] == 0 or shape[1] == 0:
            raise UsageError(
                "RecurrentStack expects a non-empty batch of non-empty sequences. "
                f"Received: inputs.shape={shape}"
            )
        if initial_state is not None and len(initial_state) != len(self.state_sizes):
            raise UsageError(
                f"`initial_state` must hold {len(self.state_sizes)} tensors "
                f"({self.states_per_layer} per layer for {self.num_layers} "
                f"{'bidirectional ' if self.bidirectional else ''}{self.cell} "
                f"layer(s)). Received: {len(initial_state)} tensors"
            )

    def call(self, inputs, mask=None, training=None, initial_state=None):
        if initial_state is not None and not isinstance(initial_state, list | tuple):
            initial_state = [initial_state]
        self._check_inputs(inputs, initial_state)
        return self._forward(inputs, mask, training, initial_state)

    def _forward(self, inputs, mask, training, initial_state, first_layer_fn=None):
        """Runs the stack; `first_layer_fn` may replace layer 0 (diagnostics)."""
        outputs = inputs
        final_states = []
        per_layer = self.states_per_layer
        for index, layer in enumerate(self.recurrent_layers):
            layer_inputs = outputs
            is_last = index == self.num_layers - 1
            layer_state = None
            if initial_state is not None:
                layer_state = list(
                    initial_state[index * per_layer : (index + 1) * per_layer]
                )
            if index == 0 and first_layer_fn is not None:
                result = first_layer_fn(layer_inputs, mask, layer_state)
            elif layer_state is not None:
                result = layer(
                    layer_inputs,
                    mask=mask,
                    training=training,
                    initial_state=layer_state,
                )
            else:
                result = layer(layer_inputs, mask=mask, training=training)
            if self.return_state:
                outputs, states = result[0], list(result[1:])
                final_states.extend(states)
            else:
                outputs = result
            if self.go_backwards and (self.return_sequences or not is_last):
                # Keras returns a backwards layer's sequence in reading order; flip
                # it back so the next layer also reads backwards and the stack's
                # output stays aligned with its input steps.
                outputs = keras.ops.flip(outputs, axis=1)
            if self.residual and (not is_last or self.return_sequences):
                if layer_inputs.shape[-1] == outputs.shape[-1]:
                    outputs = outputs + layer_inputs
            if not is_last:
                if self.norm_layers[index] is not None:
                    outputs = self.norm_layers[index](outputs)
                if self.dropout_layers[index] is not None:
                    outputs = self.dropout_layers[index](outputs, training=training)
        if self.return_state:
            return [outputs, *final_states]
        return outputs

    def step(self, inputs, states):
        """Advances the stack by one time step by calling the cells directly.

        This is the inference path of generators and decoders: a plain graph of
        matmuls and activations with no loop, which exporters convert as is.
        Dropout is off (inference).

        Args:
            inputs: float tensor of shape (batch, features), one time step.
            states: flat list of state tensors, laid out as `state_sizes`.

        Returns:
            `(outputs, new_states)`: outputs of shape (batch, units) and the flat
            list of new states.
        """
        if self.bidirectional or self.go_backwards:
            raise UsageError(
                "`step` needs a forward-only stack: a bidirectional or backwards "
                "stack must see the whole sequence first. Received: "
                f"bidirectional={self.bidirectional}, go_backwards={self.go_backwards}"
            )
        if len(states) != len(self.state_sizes):
            raise UsageError(
                f"`states` must hold {len(self.state_sizes)} tensors. "
                f"Received: {len(states)} tensors"
            )
        per_layer = self.states_per_layer
        outputs = inputs
        new_states = []
        for index, layer in enumerate(self.recurrent_layers):
            layer_inputs = outputs
            is_last = index == self.num_layers - 1
            layer_state = list(states[index * per_layer : (index + 1) * per_layer])
            outputs, layer_new_state = layer.cell(layer_inputs, layer_state)
            if not isinstance(layer_new_state, list | tuple):
                layer_new_state = [layer_new_state]
            new_states.extend(layer_new_state)
            if self.residual and (not is_last or self.return_sequences):
                if layer_inputs.shape[-1] == outputs.shape[-1]:
                    outputs = outputs + layer_inputs
            if not is_last and self.norm_layers[index] is not None:
                outputs = self.norm_layers[index](outputs)
        return outputs, new_states

    def compute_mask(self, inputs, mask=None):
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * len(self.state_sizes)
        return output_mask

    def compute_output_shape(self, input_shape):
        if self.return_sequences:
            output_shape = (input_shape[0], input_shape[1], self.output_width)
        else:
            output_shape = (input_shape[0], self.output_width)
        if self.return_state:
            return [output_shape] + [
                (input_shape[0], size) for size in self.state_sizes
            ]
        return output_shape

    def reset_states(self):
        """Clears the carried state of a stateful stack (between sequences)."""
        for layer in self.recurrent_layers:
            if isinstance(layer, keras.layers.Bidirectional):
                layer.forward_layer.reset_states()
                layer.backward_layer.reset_states()
            else:
                layer.reset_states()

    def get_config(self):
        config = super().get_config()
        config.update(
            cell=self.cell,
            units=self.units,
            num_layers=self.num_layers,
            bidirectional=self.bidirectional,
            dropout=self.dropout,
            residual=self.residual,
            layer_norm=self.layer_norm,
            return_sequences=self.return_sequences,
            activation=self.activation,
            recurrent_activation=self.recurrent_activation,
            go_backwards=self.go_backwards,
            stateful=self.stateful,
            layer_kwargs=self.layer_kwargs,
            return_state=self.return_state,
        )
        return config


# Where the gate that decides "keep the old state" sits in each cell's bias
# vector: Keras orders LSTM gates (input, forget, cell, output) and GRU gates
# (update, reset, candidate). A large bias there makes the cell remember by
# default, the standard remedy for long-range tasks (Gers et al. 2000).
_MEMORY_GATE = {"lstm": (1, 4), "gru": (0, 3)}


@keras.saving.register_keras_serializable(package="rnnkit")
class GateBias(keras.initializers.Initializer):
    """Bias initializer: zeros, except `value` on one gate's slice.

    Args:
        gate: index of the gate in the bias vector.
        num_gates: how many gates share the vector.
        value: the initial bias of that gate.
    """

    def __init__(self, gate: int, num_gates: int, value: float):
        self.gate, self.num_gates, self.value = int(gate), int(num_gates), float(value)

    def __call__(self, shape, dtype=None):
        units = shape[-1] // self.num_gates
        bias = keras.ops.zeros(shape, dtype=dtype or "float32")
        gate = keras.ops.concatenate(
            [
                keras.ops.zeros((self.gate * units,)),
                keras.ops.full((units,), self.value),
                keras.ops.zeros(((self.num_gates - self.gate - 1) * units,)),
            ]
        )
        if len(shape) == 1:
            return keras.ops.cast(gate, bias.dtype)
        # GRU with reset_after keeps an input bias row and a recurrent bias row:
        # only the input row carries the gate bias.
        rest = keras.ops.zeros((shape[0] - 1, shape[-1]))
        return keras.ops.cast(keras.ops.concatenate([gate[None], rest], 0), bias.dtype)

    def get_config(self):
        return {"gate": self.gate, "num_gates": self.num_gates, "value": self.value}


def memory_bias_kwargs(cell: str, value: float = 3.0) -> dict:
    """`layer_kwargs` that start an LSTM (forget gate) or GRU (update gate) remembering.

    Keras' default LSTM forget bias is 1.0, so an untrained LSTM keeps only
    sigmoid(1) = 73% of its cell state per step and its gradient still decays
    over 100 steps. A bias of 3 keeps 95%. The GRU's update gate plays the same
    role. SimpleRNN has no such gate.

    Example:
        >>> stack = RecurrentStack("lstm", 16, layer_kwargs=memory_bias_kwargs("lstm"))
    """
    name = normalize_cell_name(cell)
    if name not in _MEMORY_GATE:
        raise UsageError(
            "Only LSTM and GRU cells have a gate that keeps the state. "
            f"Received: cell={cell!r}"
        )
    gate, num_gates = _MEMORY_GATE[name]
    kwargs = {"bias_initializer": GateBias(gate, num_gates, value)}
    if name == "lstm":
        kwargs["unit_forget_bias"] = False  # else Keras overrides the initializer
    return kwargs
