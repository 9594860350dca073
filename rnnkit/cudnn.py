"""Will these recurrent layers run on the fast cuDNN kernel? And if not, why not?

On a GPU, Keras 3 (TensorFlow backend) runs an LSTM or GRU layer with NVIDIA's
cuDNN kernel only when its configuration is one cuDNN implements: activation
tanh, recurrent activation sigmoid, no recurrent dropout, `unroll=False`,
`use_bias=True`, for GRU also `reset_after=True`, and `use_cudnn` not False.
Anything else silently falls back to the generic kernel, often several times
slower. SimpleRNN has no cuDNN kernel at all. At run time a mask that is not
right-padded (padding only at the end) also forces the generic kernel.

`check_cudnn` inspects a layer, a `RecurrentStack` or a whole model (nested
models, `Bidirectional` wrappers included) and emits ONE warning that lists every
layer that falls off the cuDNN path and why. It needs no GPU: it reads the
configuration, so it works the same on a laptop before training on a cluster.

Example:
    >>> import keras
    >>> from rnnkit.cudnn import cudnn_report
    >>> cudnn_report(keras.layers.LSTM(8, activation="relu")).eligible
    False
"""

from __future__ import annotations

import dataclasses
import logging
import warnings

import keras

logger = logging.getLogger(__name__)


class CudnnFallbackWarning(UserWarning):
    """A recurrent layer will run on the generic kernel instead of cuDNN."""


@dataclasses.dataclass(frozen=True)
class CudnnReport:
    """What `cudnn_report` found.

    Attributes:
        checked: names of the LSTM/GRU/SimpleRNN layers inspected.
        reasons: layer name -> why that layer cannot use cuDNN (empty when all can).
    """

    checked: tuple[str, ...]
    reasons: dict[str, tuple[str, ...]]

    @property
    def eligible(self) -> bool:
        """True when every recurrent layer inspected can use cuDNN."""
        return bool(self.checked) and not self.reasons

    def message(self) -> str:
        """One human-readable paragraph: which layers fall back, and why."""
        if not self.checked:
            return "No recurrent layers found; cuDNN does not apply."
        if not self.reasons:
            return f"All {len(self.checked)} recurrent layer(s) are cuDNN-eligible."
        parts = [f"{name}: {', '.join(why)}" for name, why in self.reasons.items()]
        return (
            f"{len(self.reasons)} of {len(self.checked)} recurrent layer(s) will not "
            "use the cuDNN kernel on GPU and run on the slower generic kernel - "
            + "; ".join(parts)
            + ". For cuDNN use activation='tanh', recurrent_activation='sigmoid', "
            "recurrent_dropout=0, unroll=False, use_bias=True (GRU: "
            "reset_after=True), and LSTM or GRU rather than SimpleRNN."
        )


def _activation_name(activation) -> str:
    try:
        return keras.activations.serialize(activation)
    except (ValueError, TypeError):
        return getattr(activation, "__name__", repr(activation))


def _layer_reasons(layer: keras.layers.RNN) -> list[str]:
    """Why one Keras recurrent layer cannot use cuDNN (empty when it can)."""
    if isinstance(layer, keras.layers.SimpleRNN):
        return ["SimpleRNN has no cuDNN kernel"]
    cell = layer.cell
    reasons = []
    activation = _activation_name(cell.activation)
    if activation != "tanh":
        reasons.append(f"activation={activation!r} (needs 'tanh')")
    recurrent = _activation_name(cell.recurrent_activation)
    if recurrent != "sigmoid":
        reasons.append(f"recurrent_activation={recurrent!r} (needs 'sigmoid')")
    if getattr(cell, "recurrent_dropout", 0.0):
        reasons.append(f"recurrent_dropout={cell.recurrent_dropout} (needs 0)")
    if layer.unroll:
        reasons.append("unroll=True (needs False)")
    if not cell.use_bias:
        reasons.append("use_bias=False (needs True)")
    if isinstance(layer, keras.layers.GRU) and not cell.reset_after:
        reasons.append("reset_after=False (needs True)")
    if getattr(layer, "use_cudnn", "auto") is False:
        reasons.append("use_cudnn=False")
    return reasons


def _recurrent_layers(obj, prefix: str = ""):
    """Yields (path, layer) for every Keras recurrent layer inside `obj`."""
    from rnnkit.layers import RecurrentStack

    name = f"{prefix}{obj.name}"
    if isinstance(obj, keras.layers.Bidirectional):
        yield from _recurrent_layers(obj.forward_layer, f"{name}/")
        yield from _recurrent_layers(obj.backward_layer, f"{name}/")
    elif isinstance(obj, keras.layers.SimpleRNN | keras.layers.LSTM | keras.layers.GRU):
        yield name, obj
    elif isinstance(obj, RecurrentStack):
        for layer in obj.recurrent_layers:
            yield from _recurrent_layers(layer, f"{name}/")
    elif isinstance(obj, keras.Model):
        for layer in obj.layers:
            yield from _recurrent_layers(layer, f"{name}/")
    elif isinstance(obj, keras.layers.RNN):
        # A generic RNN around a custom cell: never cuDNN.
        yield name, obj


def cudnn_report(obj) -> CudnnReport:
    """Inspects a Keras layer, `RecurrentStack` or model; warns about nothing.

    Args:
        obj: a `keras.layers.Layer` or `keras.Model`.

    Returns:
        A `CudnnReport`.
    """
    if not isinstance(obj, keras.layers.Layer):
        from rnnkit.errors import UsageError

        raise UsageError(
            "cudnn_report expects a Keras layer or model. "
            f"Received: {type(obj).__name__}"
        )
    checked, reasons = [], {}
    for path, layer in _recurrent_layers(obj):
        checked.append(path)
        if isinstance(
            layer, keras.layers.SimpleRNN | keras.layers.LSTM | keras.layers.GRU
        ):
            why = _layer_reasons(layer)
        else:
            why = [f"custom cell {type(layer.cell).__name__} has no cuDNN kernel"]
        if why:
            reasons[path] = tuple(why)
    return CudnnReport(checked=tuple(checked), reasons=reasons)


def check_cudnn(obj, warn: bool = True) -> CudnnReport:
    """Like `cudnn_report`, and emits one `CudnnFallbackWarning` when needed.

    All the layers that fall off the cuDNN path are named in that single
    warning, with the reasons, so a model with twenty layers does not print
    twenty warnings.

    Args:
        obj: a Keras layer, `RecurrentStack` or model.
        warn: emit the warning (and log it); False only returns the report.

    Returns:
        The `CudnnReport`.
    """
    report = cudnn_report(obj)
    if warn and report.reasons:
        message = report.message()
        logger.warning("%s", message)
        warnings.warn(message, CudnnFallbackWarning, stacklevel=2)
    return report


def gpu_available() -> bool:
    """True when TensorFlow sees a GPU (so cuDNN kernels can run at all)."""
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))
