"""See vanishing gradients: the norm of dL/dh_t for every time step t.

Backpropagation through time multiplies one Jacobian per step. In a SimpleRNN
those products shrink geometrically, so the loss barely reaches the early
steps: the network cannot learn what happened long ago. The LSTM and GRU add
their gates' near-identity paths through the cell state, and the gradient
survives. `hidden_state_gradients` measures this directly: it unrolls the
first recurrent layer of a model step by step under a `tf.GradientTape` and
returns the mean over the batch of ||dL/dh_t|| for every t, the *total*
derivative (through the outputs and through all later steps).

`GradientDiagnostic` is a Keras callback that records these norms on a fixed
probe batch during training and saves them as `<name>.npz` and `<name>.json`
(data) and `<name>.png` (a heatmap over epochs x steps and the curves).
`plot_gradient_curves` draws several models on one chart, e.g. SimpleRNN vs
LSTM vs GRU (what `rnnkit bench-gradients` does).

Supported models: a chain of layers (Sequential or a functional model whose
layers run one after the other, like every `rnnkit.models` many-to-one,
tagger and generator model) with one forward-only recurrent layer or
`RecurrentStack`; the first recurrent layer is the one measured.

Example:
    >>> from rnnkit import diagnostics, models, tasks
    >>> x, y = tasks.adding_problem(8, 30, seed=0)
    >>> model = models.sequence_classifier(1, input_dim=2, regression=True,
    ...                                    cell="lstm", units=8)
    >>> diagnostics.hidden_state_gradients(model, x, y).shape
    (30,)
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import keras
import numpy as np

from rnnkit.errors import UsageError
from rnnkit.files import atomic_save

logger = logging.getLogger(__name__)

_RECURRENT = (keras.layers.SimpleRNN, keras.layers.LSTM, keras.layers.GRU)


def _find_recurrent(model: keras.Model):
    from rnnkit.layers import RecurrentStack

    for index, layer in enumerate(model.layers):
        if isinstance(layer, keras.layers.Bidirectional) or (
            isinstance(layer, RecurrentStack) and layer.bidirectional
        ):
            raise UsageError(
                "The gradient diagnostic measures a forward recurrent layer; a "
                "bidirectional one mixes both directions. Received: layer "
                f"{layer.name!r} is bidirectional"
            )
        if isinstance(layer, (RecurrentStack, *_RECURRENT)):
            if getattr(layer, "go_backwards", False):
                raise UsageError(
                    f"Layer {layer.name!r} reads backwards; the diagnostic needs a "
                    "forward-reading layer."
                )
            return index, layer
    raise UsageError(
        "No recurrent layer found. Expected a model containing a SimpleRNN, LSTM, "
        f"GRU or RecurrentStack. Received layers: {[layer.name for layer in model.layers]}"
    )


def _unrolled(rnn_layer, records: list):
    """A replacement for `rnn_layer` that unrolls its cell and records every h_t."""
    from keras import ops

    def run(inputs, mask, initial_state):
        batch = ops.shape(inputs)[0]
        cell = rnn_layer.cell
        states = initial_state or cell.get_initial_state(batch_size=batch)
        states = list(states) if isinstance(states, list | tuple) else [states]
        outputs = []
        output = ops.zeros((batch, cell.units), inputs.dtype)
        for t in range(inputs.shape[1]):
            _, new_states = cell(inputs[:, t], states, training=False)
            if not isinstance(new_states, list | tuple):
                new_states = [new_states]
            if mask is not None:
                # Padded steps keep the previous state, as Keras' RNN does.
                keep = ops.cast(mask[:, t : t + 1], "bool")
                new_states = [
                    ops.where(keep, new, old)
                    for new, old in zip(new_states, states, strict=True)
                ]
            states = list(new_states)
            # h_t (the output of SimpleRNN, LSTM and GRU cells alike) is the state
            # the next step reads, so its gradient is the total derivative.
            output = states[0]
            records.append(output)
            outputs.append(output)
        result = ops.stack(outputs, axis=1) if rnn_layer.return_sequences else output
        if rnn_layer.return_state:
            return [result, *states]
        return result

    return run


def _forward_recording(model, x, records):
    """Runs `model` layer by layer, unrolling its first recurrent layer."""
    from rnnkit.layers import RecurrentStack

    _, recurrent = _find_recurrent(model)
    hidden = keras.ops.convert_to_tensor(x)
    layers = [
        layer
        for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer)
    ]
    for layer in layers:
        mask = getattr(hidden, "_keras_mask", None)
        if layer is recurrent:
            if isinstance(layer, RecurrentStack):
                layer._check_inputs(hidden, None)
                hidden = layer._forward(
                    hidden,
                    mask,
                    False,
                    None,
                    first_layer_fn=_unrolled(layer.recurrent_layers[0], records),
                )
                next_mask = layer.compute_mask(hidden, mask)
            else:
                hidden = _unrolled(layer, records)(hidden, mask, None)
                next_mask = layer.compute_mask(hidden, mask)
            if isinstance(hidden, list):
                raise UsageError(
                    "The gradient diagnostic needs a recurrent layer that returns "
                    "only its outputs (return_state=False)."
                )
            if next_mask is not None:
                hidden._keras_mask = next_mask
        else:
            hidden = layer(hidden, training=False)
    return hidden


def _loss_function(model, loss):
    loss = loss if loss is not None else getattr(model, "loss", None)
    if loss is None:
        raise UsageError(
            "The gradient diagnostic needs a loss. Compile the model or pass "
            "`loss=`. Received: an uncompiled model and loss=None"
        )
    return keras.losses.get(loss) if isinstance(loss, str | dict) else loss


def hidden_state_gradients(model: keras.Model, x, y, loss=None) -> np.ndarray:
    """Mean over the batch of ||dL/dh_t|| for every step t of the first RNN layer.

    Args:
        model: a chain-shaped model (see the module docstring).
        x: one input batch (numpy), e.g. (batch, time, features) or tokens.
        y: its targets.
        loss: a Keras loss; the model's compiled loss when None.

    Returns:
        float64 array (time,): the per-example gradient norm at each step,
        averaged over the batch.
    """
    import tensorflow as tf

    x = np.asarray(x)
    if x.ndim < 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise UsageError(
            "The gradient diagnostic needs a non-empty batch of sequences, shape "
            f"(batch, time, ...). Received: x.shape={x.shape}"
        )
    loss_fn = _loss_function(model, loss)
    records: list = []
    with tf.GradientTape() as tape:
        predictions = _forward_recording(model, x, records)
        value = loss_fn(keras.ops.convert_to_tensor(y), predictions)
        value = keras.ops.mean(value)
    gradients = tape.gradient(value, records)
    batch = x.shape[0]
    norms = []
    for gradient in gradients:
        if gradient is None:
            norms.append(0.0)
            continue
        # The loss is a batch mean; times the batch size, each row is one example's.
        per_example = np.linalg.norm(np.asarray(gradient) * batch, axis=-1)
        norms.append(float(per_example.mean()))
    reference = model(x, training=False)
    if not np.allclose(np.asarray(reference), np.asarray(predictions), atol=1e-4):
        raise UsageError(
            "The gradient diagnostic could not replay this model layer by layer "
            "(it is not a simple chain of layers). Expected a Sequential-like model."
        )
    return np.asarray(norms, np.float64)


def vanishing_ratio(norms) -> float:
    """||dL/dh_0|| / ||dL/dh_T||: how much of the gradient reaches the first step."""
    norms = np.asarray(norms, np.float64)
    return float(norms[0] / max(norms[-1], 1e-30))


def plot_gradient_curves(
    curves: dict[str, np.ndarray], path: str | os.PathLike, title: str = ""
) -> Path:
    """One log-scale chart of ||dL/dh_t|| over t for several models."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    figure, axis = plt.subplots(figsize=(7, 4))
    for name, norms in curves.items():
        axis.plot(np.arange(len(norms)), np.maximum(norms, 1e-30), label=name)
    axis.set_yscale("log")
    axis.set_xlabel("time step t")
    axis.set_ylabel("mean ||dL/dh_t||")
    axis.set_title(title or "Gradient of the loss w.r.t. the hidden state")
    axis.legend()
    figure.tight_layout()
    atomic_save(path, lambda p: figure.savefig(p, dpi=100, format="png"))
    plt.close(figure)
    return path


class GradientDiagnostic(keras.callbacks.Callback):
    """Records ||dL/dh_t|| over t on a probe batch while a model trains.

    Args:
        x, y: the probe batch (a few dozen sequences is plenty).
        out_dir: where `<name>.npz`, `<name>.json` and `<name>.png` go.
        every_n_epochs: record before training and after every N epochs.
        name: file stem and chart title.
        loss: as in `hidden_state_gradients`.

    Attributes:
        norms: list of (time,) arrays, one per record.
        epochs: the epoch of each record (0 = before training).
    """

    def __init__(
        self, x, y, out_dir, every_n_epochs: int = 1, name="gradients", loss=None
    ):
        super().__init__()
        if every_n_epochs < 1:
            raise UsageError(
                f"`every_n_epochs` must be >= 1. Received: {every_n_epochs!r}"
            )
        self.x, self.y = np.asarray(x), np.asarray(y)
        self.out_dir = Path(out_dir)
        self.every_n_epochs = every_n_epochs
        self.name = name
        self.loss = loss
        self.norms: list[np.ndarray] = []
        self.epochs: list[int] = []

    def _record(self, epoch: int) -> None:
        norms = hidden_state_gradients(self.model, self.x, self.y, self.loss)
        self.norms.append(norms)
        self.epochs.append(epoch)
        logger.info(
            "%s epoch %d: ||dL/dh_0|| / ||dL/dh_T|| = %.3g",
            self.name,
            epoch,
            vanishing_ratio(norms),
        )
        self.save()

    def on_train_begin(self, logs=None):
        self._record(0)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs == 0 and (epoch + 1) not in self.epochs:
            self._record(epoch + 1)

    def save(self) -> dict[str, Path]:
        """Writes the data and the PNG; returns their paths."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        norms = np.stack(self.norms)
        paths = {
            "npz": self.out_dir / f"{self.name}.npz",
            "json": self.out_dir / f"{self.name}.json",
            "png": self.out_dir / f"{self.name}.png",
        }
        atomic_save(
            paths["npz"],
            lambda p: np.savez(p, norms=norms, epochs=np.asarray(self.epochs)),
        )
        payload = {
            "name": self.name,
            "epochs": self.epochs,
            "norms": norms.tolist(),
            "vanishing_ratio": [vanishing_ratio(n) for n in self.norms],
        }
        atomic_save(paths["json"], lambda p: p.write_text(json.dumps(payload)))
        self._plot(norms, paths["png"])
        return paths

    def _plot(self, norms: np.ndarray, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, (heat, curves) = plt.subplots(1, 2, figsize=(11, 3.8))
        image = heat.imshow(
            np.log10(np.maximum(norms, 1e-30)),
            aspect="auto",
            origin="lower",
            cmap="viridis",
            extent=(0, norms.shape[1], -0.5, len(self.epochs) - 0.5),
        )
        heat.set_yticks(range(len(self.epochs)), [str(e) for e in self.epochs])
        heat.set_xlabel("time step t")
        heat.set_ylabel("epoch")
        heat.set_title("log10 ||dL/dh_t||")
        figure.colorbar(image, ax=heat)
        for epoch, row in zip(self.epochs, norms, strict=True):
            curves.plot(np.maximum(row, 1e-30), label=f"epoch {epoch}")
        curves.set_yscale("log")
        curves.set_xlabel("time step t")
        curves.set_title(self.name)
        curves.legend(fontsize="small")
        figure.tight_layout()
        atomic_save(path, lambda p: figure.savefig(p, dpi=100, format="png"))
        plt.close(figure)
