"""The keyword classifier: per-frame Dense front end, GRU stack, softmax.

Everything before the recurrent stack works on one feature frame at a time
(normalization, a Dense layer), so the model stays causal and its one-step
streaming form is exact: running it frame by frame with the state carried gives
the clip model's output after the last frame.

Shapes: (batch, frames, mel bins) -> (batch, classes), probabilities.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from rnnkit.layers import RecurrentStack


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Size of the classifier.

    Attributes:
        cell: "gru" or "lstm".
        units: recurrent units per layer.
        num_layers: recurrent layers.
        front_units: width of the per-frame Dense front end (0: none).
        dropout: dropout before the classifier and between recurrent layers.
    """

    cell: str = "gru"
    units: int = 64
    num_layers: int = 1
    front_units: int = 64
    dropout: float = 0.1


def build_model(
    num_classes: int,
    num_mel_bins: int,
    config: ModelConfig,
    feature_mean: np.ndarray | None = None,
    feature_variance: np.ndarray | None = None,
    name: str = "voice_commands",
    per_frame: bool = False,
    normalize: bool = True,
) -> keras.Model:
    """Builds the (uncompiled) classifier.

    Args:
        num_classes: output classes.
        num_mel_bins: features per frame.
        config: layer sizes.
        feature_mean, feature_variance: per-bin statistics of the training
            features, baked in as a `Normalization` layer so that the device
            feeds raw log-mel frames.
        name: the model's name.
        per_frame: output the class probabilities after every frame,
            (batch, frames, classes), instead of after the last one. The weights
            are the same, so a trained model's weights load into this form.
        normalize: include the `Normalization` layer (off for the exported
            form, where `fold_normalization` moves it into the front end).
    """
    if feature_mean is None or feature_variance is None:
        feature_mean = np.zeros(num_mel_bins, np.float32)
        feature_variance = np.ones(num_mel_bins, np.float32)
    inputs = keras.Input(shape=(None, num_mel_bins), name="features")
    x = inputs
    if normalize:
        x = keras.layers.Normalization(
            axis=-1, mean=feature_mean, variance=feature_variance, name="normalize"
        )(x)
    if config.front_units:
        x = keras.layers.Dense(config.front_units, activation="relu", name="front")(x)
    x = RecurrentStack(
        config.cell,
        units=config.units,
        num_layers=config.num_layers,
        dropout=config.dropout,
        return_sequences=per_frame,
        name="recurrent",
    )(x)
    if config.dropout:
        x = keras.layers.Dropout(config.dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="classes")(x)
    return keras.Model(inputs, outputs, name=name)


def compile_model(model: keras.Model, learning_rate: float) -> keras.Model:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    return model


def fold_normalization(model: keras.Model) -> dict[str, list[np.ndarray]]:
    """Weights per layer name with the input normalization folded into `front`.

    `front` computes relu(((x - mean) / std) @ W + b), which equals
    relu(x @ (W / std) + (b - (mean / std) @ W)): the same model without a
    `Normalization` layer. The exported step model needs this because Keras keeps
    the statistics as (1, 1, bins) tensors, which turn a one-frame (1, bins)
    input into a rank-3 tensor.
    """
    norm = model.get_layer("normalize")
    mean = np.asarray(keras.ops.convert_to_numpy(norm.mean)).reshape(-1)
    variance = np.asarray(keras.ops.convert_to_numpy(norm.variance)).reshape(-1)
    std = np.maximum(np.sqrt(variance), keras.backend.epsilon())
    kernel, bias = model.get_layer("front").get_weights()
    folded = {
        "front": [kernel / std[:, None], bias - (mean / std) @ kernel],
    }
    for name in ("recurrent", "classes"):
        folded[name] = model.get_layer(name).get_weights()
    return folded


def per_frame_model(model, config: dict):
    """The same weights in the per-frame form: probabilities after every frame.

    Its one-step form is the streaming model: each step returns the posterior of
    everything heard since the last reset, and after a clip's last frame that is
    the clip model's output.
    """
    from rnnkit.edge.audio import FeatureConfig
    from rnnkit.errors import UsageError

    features = FeatureConfig.from_dict(config["features"])
    model_config = ModelConfig(**config["model"])
    if not model_config.front_units:
        raise UsageError(
            "The streaming export folds the input normalization into the front "
            "Dense layer. Expected front_units > 0. Received: front_units=0"
        )
    stepwise = build_model(
        len(config["labels"]),
        features.num_mel_bins,
        model_config,
        per_frame=True,
        normalize=False,
    )
    for name, weights in fold_normalization(model).items():
        stepwise.get_layer(name).set_weights(weights)
    return stepwise
