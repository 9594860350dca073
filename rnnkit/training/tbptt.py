"""Truncated backpropagation through time (TBPTT) with stateful recurrent layers.

A sequence too long to backpropagate through in one piece is cut into chunks of
`chunk_length` steps. The model's recurrent layers are stateful, so the state
left by one chunk is where the next chunk starts (the forward pass sees the
whole sequence), while gradients stop at chunk boundaries (memory grows with the
chunk, not the sequence). States are reset before every new batch of sequences.

`ChunkedSequences` orders the chunks for `rnnkit.training.fit`, which adds the
state resets and turns shuffling off; `predict_chunked` runs a stateful model
over long sequences chunk by chunk.

Example:
    >>> model = keras.Sequential([                                   # doctest: +SKIP
    ...     keras.Input((None, 8), batch_size=4),
    ...     keras.layers.LSTM(32, return_sequences=True, stateful=True),
    ...     keras.layers.Dense(8)])
    >>> model.compile("adam", "mse")                                  # doctest: +SKIP
    >>> data = ChunkedSequences(x, y, batch_size=4, chunk_length=50)  # doctest: +SKIP
    >>> fit(model, data, epochs=3, run_dir="runs/tbptt")             # doctest: +SKIP
"""

from __future__ import annotations

import math

import keras
import numpy as np

from rnnkit.errors import UsageError


class ChunkedSequences(keras.utils.PyDataset):
    """Batches of sequence chunks in TBPTT order.

    Batch `i` holds chunk `i % chunks_per_sequence` of sequence batch
    `i // chunks_per_sequence`: all chunks of the first `batch_size` sequences in
    time order, then those of the next `batch_size` sequences, and so on. The
    last chunk is shorter when `chunk_length` does not divide the length.

    Args:
        x: array of shape (num_sequences, time, ...).
        y: per-step targets of shape (num_sequences, time, ...), or None.
        batch_size: the stateful model's fixed batch size; `num_sequences` must
            be a multiple of it (a stateful batch cannot be partly filled).
        chunk_length: time steps per chunk (the truncation length).
    """

    def __init__(self, x, y=None, *, batch_size: int, chunk_length: int) -> None:
        super().__init__()
        x = np.asarray(x)
        if x.ndim < 2:
            raise UsageError(
                "TBPTT inputs must be sequences. Expected an array of shape "
                f"(num_sequences, time, ...). Received: shape={x.shape}"
            )
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise UsageError(
                "TBPTT inputs must hold at least one sequence of at least one step. "
                f"Received: shape={x.shape}"
            )
        batch_size, chunk_length = (
            _positive_int(batch_size, "batch_size"),
            (_positive_int(chunk_length, "chunk_length")),
        )
        if x.shape[0] % batch_size:
            raise UsageError(
                "The number of sequences must be a multiple of the stateful batch "
                f"size, since each row of a stateful batch carries one sequence's "
                f"state. Expected a multiple of {batch_size}. Received: "
                f"{x.shape[0]} sequences"
            )
        if y is not None:
            y = np.asarray(y)
            if y.ndim < 2 or y.shape[:2] != x.shape[:2]:
                raise UsageError(
                    "TBPTT targets must be per-step and aligned with the inputs. "
                    f"Expected shape {x.shape[:2]} + (...). Received: "
                    f"x.shape={x.shape}, y.shape={y.shape}"
                )
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.chunk_length = chunk_length
        self.chunks_per_sequence = math.ceil(x.shape[1] / chunk_length)
        self.sequence_batches = x.shape[0] // batch_size

    def __len__(self) -> int:
        return self.sequence_batches * self.chunks_per_sequence

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"Chunk batch {index} out of range 0..{len(self) - 1}")
        sequence_batch, chunk = divmod(index, self.chunks_per_sequence)
        rows = slice(
            sequence_batch * self.batch_size, (sequence_batch + 1) * self.batch_size
        )
        steps = slice(chunk * self.chunk_length, (chunk + 1) * self.chunk_length)
        if self.y is None:
            return (self.x[rows, steps],)
        return self.x[rows, steps], self.y[rows, steps]


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise UsageError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )
    return int(value)


def stateful_layers(model: keras.Model) -> list:
    """Returns every stateful recurrent layer inside `model`, nested ones included."""
    # `_flatten_layers` is the walk Keras itself uses to reset states; it reaches
    # layers inside wrappers (Bidirectional) and custom blocks (RecurrentStack).
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if getattr(layer, "stateful", False) and hasattr(layer, "reset_state")
    ]


def reset_states(model: keras.Model) -> None:
    """Zeroes the state of every stateful recurrent layer of `model`."""
    for layer in stateful_layers(model):
        layer.reset_state()


def check_stateful_model(model: keras.Model, batch_size: int) -> None:
    """Raises `UsageError` unless `model` can run TBPTT with `batch_size` rows.

    The model needs stateful recurrent layers (else no state crosses chunk
    boundaries and TBPTT silently becomes independent short sequences), and its
    fixed batch size must equal the data's.
    """
    if not stateful_layers(model):
        raise UsageError(
            "Truncated BPTT needs a model with stateful recurrent layers. Expected "
            "layers built with stateful=True and a fixed batch size. Received: "
            f"model {model.name!r} with no stateful layer"
        )
    inputs = getattr(model, "inputs", None) or []
    fixed = {int(t.shape[0]) for t in inputs if t.shape[0] is not None}
    if fixed and fixed != {batch_size}:
        raise UsageError(
            "The data's batch size must equal the stateful model's fixed batch "
            f"size. Expected batch_size={sorted(fixed)[0]}. Received: "
            f"batch_size={batch_size}"
        )


class ResetStatesAtSequenceStart(keras.callbacks.Callback):
    """Resets recurrent states before each new batch of sequences.

    Args:
        train_chunks: chunks per sequence in the training data.
        val_chunks: chunks per sequence in the validation data (None: reset only
            before validation starts).
    """

    def __init__(self, train_chunks: int, val_chunks: int | None = None) -> None:
        super().__init__()
        self.train_chunks = train_chunks
        self.val_chunks = val_chunks

    def on_epoch_begin(self, epoch, logs=None):
        reset_states(self.model)

    def on_train_batch_begin(self, batch, logs=None):
        if batch % self.train_chunks == 0:
            reset_states(self.model)

    def on_test_begin(self, logs=None):
        reset_states(self.model)

    def on_test_batch_begin(self, batch, logs=None):
        if self.val_chunks and batch % self.val_chunks == 0:
            reset_states(self.model)

    def on_test_end(self, logs=None):
        # Training resumes with a new epoch, which resets again; this keeps a
        # validation state from leaking into anything run in between.
        reset_states(self.model)


def predict_chunked(model: keras.Model, x, *, chunk_length: int) -> np.ndarray:
    """Runs a stateful model over long sequences chunk by chunk.

    The state is carried across chunks and reset between batches of sequences,
    so the outputs equal those of the same (non-stateful) model run on the whole
    sequences at once, while only one chunk is in memory.

    Args:
        model: a stateful model with `return_sequences=True` outputs.
        x: array of shape (num_sequences, time, ...), `num_sequences` a multiple
            of the model's batch size.
        chunk_length: time steps per chunk.

    Returns:
        The outputs of shape (num_sequences, time, ...).
    """
    batch_size = _model_batch_size(model)
    chunks = ChunkedSequences(x, batch_size=batch_size, chunk_length=chunk_length)
    check_stateful_model(model, batch_size)
    outputs, row = [], []
    for index in range(len(chunks)):
        if index % chunks.chunks_per_sequence == 0:
            reset_states(model)
            if row:
                outputs.append(np.concatenate(row, axis=1))
            row = []
        row.append(keras.ops.convert_to_numpy(model(chunks[index][0], training=False)))
    outputs.append(np.concatenate(row, axis=1))
    reset_states(model)
    return np.concatenate(outputs, axis=0)


def _model_batch_size(model: keras.Model) -> int:
    inputs = getattr(model, "inputs", None) or []
    for tensor in inputs:
        if tensor.shape[0] is not None:
            return int(tensor.shape[0])
    raise UsageError(
        "A stateful model needs a fixed batch size. Expected keras.Input(..., "
        f"batch_size=N). Received: model {model.name!r} with batch size None"
    )
