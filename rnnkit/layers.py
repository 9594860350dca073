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
        stateful: carry the state across batches (truncated BPTT).
        **layer_kwargs: passed to every recurrent layer (initializers, `unroll`,
            `recurrent_dropout`, `use_bias`, `reset_after`...).

    Call arguments:
        inputs: float tensor of shape (batch, time, features).
        mask: optional boolean tensor of shape (batch, time); True marks real
            steps. Usually supplied by an upstream `Embedding(mask_zero=True)`.
        training: Python bool.

    Returns:
        (batch, time, width) if `return_sequences` else (batch, width), where
        width is `units`, or `2 * units` when bidirectional.
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
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.cell = normalize_cell_name(cell)
        if not isinstance(units, int) or units < 1:
            raise UsageError(f"`units` must be a positive integer. Received: {units!r}")
        if not isinstance(num_layers, int) or num_layers < 1:
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
        self.layer_kwargs = dict(layer_kwargs or {})
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
                stateful=self.stateful,
                go_backwards=self.go_backwards,
                name=f"{self.cell}_{index}",
                **self.layer_kwargs,
            )
            if self.cell != "simple_rnn":
                cell_kwargs["recurrent_activation"] = recurrent_activation
            layer = layer_class(activation=activation, **cell_kwargs)
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

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise UsageError(
                "RecurrentStack expects inputs of rank 3 (batch, time, features). "
                f"Received: input_shape={tuple(input_shape)}"
            )
        shape = tuple(input_shape)
        for index, layer in enumerate(self.recurrent_layers):
            layer.build(shape)
            shape = (shape[0], shape[1], self.output_width)
            if index < len(self.norm_layers) and self.norm_layers[index] is not None:
                self.norm_layers[index].build(shape)
        self.built = True

    def call(self, inputs, mask=None, training=None):
        outputs = inputs
        for index, layer in enumerate(self.recurrent_layers):
            layer_inputs = outputs
            outputs = layer(layer_inputs, mask=mask, training=training)
            is_last = index == self.num_layers - 1
            if self.residual and (not is_last or self.return_sequences):
                if layer_inputs.shape[-1] == outputs.shape[-1]:
                    outputs = outputs + layer_inputs
            if not is_last:
                if self.norm_layers[index] is not None:
                    outputs = self.norm_layers[index](outputs)
                if self.dropout_layers[index] is not None:
                    outputs = self.dropout_layers[index](outputs, training=training)
        return outputs

    def compute_mask(self, inputs, mask=None):
        return mask if self.return_sequences else None

    def compute_output_shape(self, input_shape):
        if self.return_sequences:
            return (input_shape[0], input_shape[1], self.output_width)
        return (input_shape[0], self.output_width)

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
        )
        return config
