"""The piano-roll model: a recurrent stack and 88 independent sigmoid outputs.

At step t the model reads frame t-1 (an all-zero start frame at t = 0) and
outputs 88 logits, one per key, for frame t: the keys are independent
Bernoulli variables given the past, as in the published benchmarks. The model
outputs logits rather than probabilities so that an int8 export keeps the
small probabilities of silent keys (an int8 probability would round 1e-4 to 0
and make the likelihood infinite); `rnnkit.edge.music.sigmoid` turns them into
probabilities.

Example:
    >>> from rnnkit.apps.music.model import build_model
    >>> model = build_model("gru", units=32)     # doctest: +SKIP
    >>> model.output_shape                       # doctest: +SKIP
    (None, None, 88)
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

from rnnkit.edge import music as edge_music
from rnnkit.errors import ModelFileError, UsageError
from rnnkit.layers import RecurrentStack


@keras.saving.register_keras_serializable(package="rnnkit.music")
class PianoRollNLL(keras.losses.Loss):
    """Bernoulli negative log-likelihood summed over the 88 keys of each step.

    With per-step sample weights (1 for real steps, 0 for padding) and the
    "mean_with_sample_weight" reduction, its value is exactly the benchmark's
    NLL per time step over the batch.
    """

    def __init__(self, name="piano_roll_nll", reduction="mean_with_sample_weight"):
        super().__init__(name=name, reduction=reduction)

    def call(self, y_true, y_pred):
        y_true = keras.ops.cast(y_true, y_pred.dtype)
        # softplus(z) - y*z == -[y log sigmoid(z) + (1-y) log(1 - sigmoid(z))]
        terms = keras.ops.softplus(y_pred) - y_true * y_pred
        return keras.ops.sum(terms, axis=-1)


def build_model(
    cell: str = "gru",
    units: int = 128,
    num_layers: int = 1,
    dropout: float = 0.0,
    input_dropout: float = 0.0,
    name: str | None = None,
) -> keras.Model:
    """Builds the (uncompiled) piano-roll model.

    Args:
        cell: "lstm", "gru" or "simple_rnn".
        units: hidden units of each recurrent layer.
        num_layers: recurrent layers.
        dropout: dropout between recurrent layers and before the output layer.
        input_dropout: dropout on the input frames (a strong regularizer on the
            small chorale corpus: it teaches the model not to trust one note).
        name: model name; defaults to "music_<cell>".

    Returns:
        A functional `keras.Model` mapping (batch, time, 88) frames to
        (batch, time, 88) logits.
    """
    inputs = keras.Input(shape=(None, edge_music.NUM_KEYS), name="frames")
    x = inputs
    if input_dropout:
        x = keras.layers.Dropout(input_dropout, name="input_dropout")(x)
    x = RecurrentStack(
        cell, units=units, num_layers=num_layers, dropout=dropout, name="recurrent"
    )(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="output_dropout")(x)
    logits = keras.layers.Dense(edge_music.NUM_KEYS, name="logits")(x)
    return keras.Model(inputs, logits, name=name or f"music_{cell}")


def set_output_bias(model: keras.Model, rolls: list[np.ndarray]) -> None:
    """Starts each key's output bias at the log-odds of that key in `rolls`.

    An untrained model otherwise predicts every key at probability 0.5 (an NLL
    of 88 log 2 = 61 nats per step) and spends its first epochs learning that
    most keys are silent; starting from the key frequencies skips that.
    """
    frequency = np.concatenate(rolls).mean(axis=0)
    frequency = np.clip(frequency, 1e-4, 1 - 1e-4)
    model.get_layer("logits").bias.assign(np.log(frequency / (1 - frequency)))


def compile_model(model: keras.Model, learning_rate: float = 1e-3) -> keras.Model:
    """Compiles with Adam (clipped gradients: recurrent nets need them) and the NLL."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=1.0),
        loss=PianoRollNLL(),
    )
    return model


def build_ensemble(members: list[keras.Model], name: str = "music_ensemble"):
    """One model whose logits are the mean of several trained models' logits.

    The mean of the members' logits is a normalised product of their Bernoulli
    distributions (a geometric mean), so the result is still 88 independent
    sigmoids per step and exports, streams and samples like a single model. The
    members are rebuilt without dropout (inference only) as one flat graph with
    their weights copied, so that the exporter sees plain recurrent layers.

    Args:
        members: trained models from `build_model`, any cell or size.
        name: the ensemble's model name.

    Raises:
        UsageError: fewer than two members, or a member that is not a piano-roll
            model of `build_model`'s layout.
    """
    if len(members) < 2:
        raise UsageError(
            f"An ensemble needs two or more models. Received: {len(members)}"
        )
    inputs = keras.Input(shape=(None, edge_music.NUM_KEYS), name="frames")
    member_logits = []
    for index, member in enumerate(members):
        try:
            stack = member.get_layer("recurrent")
            dense = member.get_layer("logits")
        except ValueError as error:
            raise UsageError(
                "Expected piano-roll models with 'recurrent' and 'logits' layers (as "
                f"rnnkit.apps.music.model.build_model makes). Received: {member.name} "
                f"({error})"
            ) from None
        config = stack.get_config()
        config.update(name=f"recurrent_{index}", dropout=0.0)
        copy_stack = RecurrentStack.from_config(config)
        copy_dense = keras.layers.Dense(edge_music.NUM_KEYS, name=f"logits_{index}")
        member_logits.append(copy_dense(copy_stack(inputs)))
        copy_stack.set_weights(stack.get_weights())
        copy_dense.set_weights(dense.get_weights())
    logits = keras.layers.Average(name="logits")(member_logits)
    return keras.Model(inputs, logits, name=name)


# --- what travels with a model -----------------------------------------------


@dataclass(frozen=True)
class MusicInfo:
    """What a generator needs to know about a trained model besides its weights.

    Attributes:
        step_beats: one time step in beats (1.0 = a quarter note).
        context_steps: the longest sequence seen in training; a primer longer
            than this is refused (the model was never trained to carry that much).
        dataset: the training data's name.
        cell, units, num_layers: the architecture, for the record.
    """

    step_beats: float = 1.0
    context_steps: int = 160
    dataset: str = ""
    cell: str = ""
    units: int = 0
    num_layers: int = 1

    def to_metadata(self) -> dict:
        return {"app": "music", **asdict(self)}

    @classmethod
    def from_metadata(cls, metadata: dict | None) -> MusicInfo:
        metadata = dict(metadata or {})
        known = {k: metadata[k] for k in cls.__dataclass_fields__ if k in metadata}
        return cls(**known)


def info_path(model_path: str | os.PathLike) -> Path:
    """The sidecar JSON of a .keras model: `model.keras` -> `model.music.json`."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + ".music.json")


def save_info(info: MusicInfo, model_path: str | os.PathLike) -> Path:
    path = info_path(model_path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(info.to_metadata(), indent=2))
    os.replace(temporary, path)
    return path


def load_info(model_path: str | os.PathLike) -> MusicInfo:
    path = info_path(model_path)
    if not path.exists():
        return MusicInfo()
    try:
        return MusicInfo.from_metadata(json.loads(path.read_text()))
    except (ValueError, TypeError) as error:
        raise ModelFileError(
            f"{path} is not a valid music model sidecar: {error}"
        ) from None


def load_keras_model(path: str | os.PathLike) -> keras.Model:
    """Loads a .keras music model (safe mode), with a clear error if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(
            f"Model file not found. Expected a .keras file. Received: {path}"
        )
    try:
        model = keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except (ValueError, OSError, TypeError) as error:
        raise ModelFileError(
            f"Could not load {path} as a Keras model: {error}"
        ) from None
    if tuple(model.output_shape)[-1] != edge_music.NUM_KEYS:
        raise ModelFileError(
            f"{path} is not a piano-roll model. Expected 88 outputs per step. "
            f"Received: output_shape={model.output_shape}"
        )
    return model


def predict_logits(model: keras.Model, rolls: list[np.ndarray], batch_size: int = 32):
    """Next-frame logits for every step of every piece (teacher forcing).

    Pieces are padded to the longest of each batch; padding only follows the
    real steps, so a causal recurrent net's outputs on real steps are exact.

    Returns:
        A list of (time, 88) float32 arrays, one per piece.
    """
    order = np.argsort([len(r) for r in rolls])
    outputs: list[np.ndarray | None] = [None] * len(rolls)
    for begin in range(0, len(rolls), batch_size):
        indices = order[begin : begin + batch_size]
        length = max(len(rolls[i]) for i in indices)
        batch = np.zeros((len(indices), length, edge_music.NUM_KEYS), np.float32)
        for row, i in enumerate(indices):
            batch[row, : len(rolls[i])] = edge_music.input_frames(rolls[i])
        logits = np.asarray(model(batch, training=False))
        for row, i in enumerate(indices):
            outputs[i] = logits[row, : len(rolls[i])]
    return outputs


class KerasStep:
    """A one-step callable over a full-sequence Keras model, for `edge.music.generate`.

    It keeps the frames seen so far and reruns the model over all of them at
    each step (quadratic in the length, fine for the few hundred steps of a
    chorale); the result is exactly the training graph's, which makes it the
    reference the streaming .tflite is compared with.
    """

    def __init__(self, model: keras.Model):
        self.model = model
        self.frames: list[np.ndarray] = []

    def reset(self) -> None:
        self.frames = []

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        self.frames.append(np.asarray(frame, np.float32).reshape(edge_music.NUM_KEYS))
        batch = np.stack(self.frames)[None]
        return np.asarray(self.model(batch, training=False))[0, -1]
