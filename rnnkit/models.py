"""Ready-made models for every recurrent shape, each a plain compiled `keras.Model`.

| shape | builder | input -> output |
| --- | --- | --- |
| many-to-one | `sequence_classifier` | sequence -> class probabilities or a value |
| many-to-many, aligned | `sequence_tagger` | sequence -> one label per step |
| one-to-many | `sequence_generator` + `generate` | primer -> continuation |
| many-to-many, encoder-decoder | `encoder_decoder` + `greedy_decode` | source -> target |

Every model is built from registered, serializable layers, so it saves to and
loads from `.keras` files (`load_model` keeps `safe_mode` on), and masks
padding: token inputs use id 0 as padding (`Embedding(mask_zero=True)`), float
inputs use `mask_value` (`keras.layers.Masking`).

The generator and the encoder-decoder train on whole sequences (teacher
forcing) and infer step by step: `generator_step_model` and
`inference_models` build one-step Keras models that call the trained cells
directly, sharing their weights, so that an exporter converts them as plain
graphs with the state as explicit inputs and outputs.

Example:
    >>> import numpy as np
    >>> from rnnkit import models
    >>> model = models.sequence_classifier(num_classes=2, vocab_size=50, units=8)
    >>> tokens = np.array([[3, 4, 5, 0], [6, 7, 0, 0]])
    >>> model.predict(tokens, verbose=0).shape
    (2, 2)
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import keras
import numpy as np

from rnnkit.attention import get_attention
from rnnkit.errors import ModelFileError, UsageError
from rnnkit.layers import RecurrentStack

__all__ = [
    "sequence_classifier",
    "sequence_tagger",
    "sequence_generator",
    "generator_step_model",
    "generate",
    "run_step",
    "encoder_decoder",
    "inference_models",
    "greedy_decode",
    "save_model",
    "load_model",
    "check_tokens",
]


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise UsageError(f"`{name}` must be a positive integer. Received: {value!r}")
    return int(value)


def _stack_kwargs(**kwargs) -> dict:
    """The RecurrentStack arguments every builder shares."""
    return dict(
        cell=kwargs["cell"],
        units=kwargs["units"],
        num_layers=kwargs["num_layers"],
        dropout=kwargs["dropout"],
        residual=kwargs["residual"],
        layer_norm=kwargs["layer_norm"],
        activation=kwargs["activation"],
        recurrent_activation=kwargs["recurrent_activation"],
        layer_kwargs=kwargs["layer_kwargs"],
    )


def _sequence_input(vocab_size, input_dim, embed_dim, mask_value):
    """Input plus masking front end: tokens (id 0 = padding) or float features."""
    if (vocab_size is None) == (input_dim is None):
        raise UsageError(
            "Give exactly one of `vocab_size` (integer token inputs) and "
            "`input_dim` (float feature inputs). Received: "
            f"vocab_size={vocab_size!r}, input_dim={input_dim!r}"
        )
    if vocab_size is not None:
        vocab_size = _positive_int("vocab_size", vocab_size)
        inputs = keras.Input(shape=(None,), dtype="int32", name="tokens")
        features = keras.layers.Embedding(
            vocab_size,
            _positive_int("embed_dim", embed_dim),
            mask_zero=True,
            name="embedding",
        )(inputs)
    else:
        input_dim = _positive_int("input_dim", input_dim)
        inputs = keras.Input(shape=(None, input_dim), dtype="float32", name="features")
        features = keras.layers.Masking(mask_value=mask_value, name="masking")(inputs)
    return inputs, features


def sequence_classifier(
    num_classes: int,
    *,
    vocab_size: int | None = None,
    input_dim: int | None = None,
    embed_dim: int = 32,
    cell: str = "lstm",
    units: int = 64,
    num_layers: int = 1,
    bidirectional: bool = False,
    dropout: float = 0.0,
    residual: bool = False,
    layer_norm: bool = False,
    activation: str = "tanh",
    recurrent_activation: str = "sigmoid",
    regression: bool = False,
    mask_value: float = 0.0,
    layer_kwargs: dict | None = None,
    learning_rate: float = 1e-3,
    name: str = "sequence_classifier",
) -> keras.Model:
    """Many-to-one: reads a whole sequence, outputs one prediction.

    Args:
        num_classes: classes (softmax output; 1 means binary with a sigmoid),
            or the number of regression targets when `regression`.
        vocab_size: for integer token inputs (0 is padding).
        input_dim: for float feature inputs of shape (batch, time, input_dim);
            steps whose features all equal `mask_value` are padding.
        embed_dim: embedding width for token inputs.
        cell, units, num_layers, bidirectional, dropout, residual, layer_norm,
            activation, recurrent_activation, layer_kwargs: see
            `rnnkit.layers.RecurrentStack`.
        regression: linear outputs and mean squared error instead of classes.
        learning_rate: of the Adam optimizer it is compiled with.
        name: the model's name.

    Returns:
        A compiled `keras.Model`.
    """
    num_classes = _positive_int("num_classes", num_classes)
    inputs, features = _sequence_input(vocab_size, input_dim, embed_dim, mask_value)
    encoded = RecurrentStack(
        bidirectional=bidirectional,
        return_sequences=False,
        name="recurrent_stack",
        **_stack_kwargs(**locals()),
    )(features)
    if regression:
        head_activation, loss, metrics = None, "mse", ["mae"]
    elif num_classes == 1:
        head_activation, loss, metrics = "sigmoid", "binary_crossentropy", ["accuracy"]
    else:
        head_activation = "softmax"
        loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
    outputs = keras.layers.Dense(num_classes, activation=head_activation, name="head")(
        encoded
    )
    model = keras.Model(inputs, outputs, name=name)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=metrics
    )
    return model


def sequence_tagger(
    num_tags: int,
    *,
    vocab_size: int | None = None,
    input_dim: int | None = None,
    embed_dim: int = 32,
    cell: str = "lstm",
    units: int = 64,
    num_layers: int = 1,
    bidirectional: bool = False,
    dropout: float = 0.0,
    residual: bool = False,
    layer_norm: bool = False,
    activation: str = "tanh",
    recurrent_activation: str = "sigmoid",
    mask_value: float = 0.0,
    layer_kwargs: dict | None = None,
    learning_rate: float = 1e-3,
    name: str = "sequence_tagger",
) -> keras.Model:
    """Many-to-many, aligned: one label per input step (tagging, per-frame labels).

    Arguments as `sequence_classifier`; `num_tags` is the number of labels.
    Padded steps are masked out of the loss and the metrics.

    Returns:
        A compiled `keras.Model` with outputs (batch, time, num_tags) that are
        per-step probabilities.
    """
    num_tags = _positive_int("num_tags", num_tags)
    inputs, features = _sequence_input(vocab_size, input_dim, embed_dim, mask_value)
    encoded = RecurrentStack(
        bidirectional=bidirectional,
        return_sequences=True,
        name="recurrent_stack",
        **_stack_kwargs(**locals()),
    )(features)
    outputs = keras.layers.Dense(num_tags, activation="softmax", name="tags")(encoded)
    model = keras.Model(inputs, outputs, name=name)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def sequence_generator(
    vocab_size: int,
    *,
    embed_dim: int = 32,
    cell: str = "lstm",
    units: int = 64,
    num_layers: int = 1,
    dropout: float = 0.0,
    residual: bool = False,
    layer_norm: bool = False,
    activation: str = "tanh",
    recurrent_activation: str = "sigmoid",
    layer_kwargs: dict | None = None,
    learning_rate: float = 1e-3,
    name: str = "sequence_generator",
) -> keras.Model:
    """One-to-many: a next-token model that `generate` unrolls from a primer.

    Trained with teacher forcing on (tokens[:, :-1], tokens[:, 1:]) pairs; it is
    forward-only (a generator cannot look ahead). Token 0 is padding.

    Returns:
        A compiled `keras.Model` mapping (batch, time) tokens to (batch, time,
        vocab_size) next-token logits.
    """
    vocab_size = _positive_int("vocab_size", vocab_size)
    inputs, features = _sequence_input(vocab_size, None, embed_dim, 0.0)
    encoded = RecurrentStack(
        return_sequences=True, name="recurrent_stack", **_stack_kwargs(**locals())
    )(features)
    logits = keras.layers.Dense(vocab_size, name="logits")(encoded)
    model = keras.Model(inputs, logits, name=name)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _state_inputs(stack: RecurrentStack, prefix: str) -> list:
    return [
        keras.Input(shape=(size,), name=f"{prefix}_{index}")
        for index, size in enumerate(stack.state_sizes)
    ]


def _embed_one_step(embedding: keras.layers.Embedding, token):
    """(batch, 1) ids -> (batch, embed_dim) vectors, with no mask attached."""
    # A plain squeeze rather than a Reshape layer: the embedding's padding mask
    # means nothing for a single step, and Reshape would warn that it drops it.
    return keras.ops.squeeze(embedding(token), axis=1)


def generator_step_model(model: keras.Model) -> keras.Model:
    """The one-step form of a `sequence_generator`, sharing its weights.

    Inputs `[token (batch, 1) int32, *states]`, outputs `[logits (batch,
    vocab), *new_states]`; the state layout is `RecurrentStack.state_sizes`.
    """
    embedding = _get_layer(model, "embedding")
    stack = _get_layer(model, "recurrent_stack")
    head = _get_layer(model, "logits")
    token = keras.Input(shape=(1,), dtype="int32", name="token")
    states = _state_inputs(stack, "state")
    outputs, new_states = stack.step(_embed_one_step(embedding, token), states)
    return keras.Model(
        [token, *states], [head(outputs), *new_states], name=f"{model.name}_step"
    )


def _get_layer(model, name: str):
    try:
        return model.get_layer(name)
    except ValueError as error:
        raise UsageError(
            f"Expected a model built by rnnkit.models with a layer named {name!r}. "
            f"Received: a model {model.name!r} with layers "
            f"{[layer.name for layer in model.layers]}"
        ) from error


def check_tokens(tokens, name: str = "tokens", vocab_size: int | None = None):
    """Validates a (batch, time) integer token array; returns it as int32 numpy."""
    array = np.asarray(tokens)
    if array.ndim != 2:
        raise UsageError(
            f"`{name}` must be a 2-D array (batch, time). "
            f"Received: {name}.shape={array.shape}"
        )
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise UsageError(
            f"`{name}` must hold integer token ids. Received: dtype={array.dtype}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise UsageError(
            f"`{name}` must hold at least one sequence of at least one token. "
            f"Received: {name}.shape={array.shape}"
        )
    if vocab_size is not None and (array.min() < 0 or array.max() >= vocab_size):
        raise UsageError(
            f"`{name}` ids must be in [0, {vocab_size}). "
            f"Received: ids from {array.min()} to {array.max()}"
        )
    return array.astype("int32")


def run_step(step_model: keras.Model, inputs: list) -> list[np.ndarray]:
    """Calls a one-step model eagerly on numpy or tensor inputs; returns numpy."""
    tensors = [keras.ops.convert_to_tensor(value) for value in inputs]
    outputs = step_model(tensors[0] if len(tensors) == 1 else tensors)
    return [keras.ops.convert_to_numpy(value) for value in outputs]


def _zero_states(step_model: keras.Model, batch: int, first_state_input: int):
    return [
        np.zeros((batch, tensor.shape[-1]), "float32")
        for tensor in step_model.inputs[first_state_input:]
    ]


def generate(
    model: keras.Model,
    primer,
    num_steps: int,
    *,
    temperature: float = 1.0,
    seed: int | None = 0,
    step_model: keras.Model | None = None,
) -> np.ndarray:
    """Unrolls a `sequence_generator` from a primer, one sampled token at a time.

    Args:
        model: a trained `sequence_generator`.
        primer: (batch, primer_length) token ids, no padding; the seed sequence.
        num_steps: how many tokens to append.
        temperature: divides the logits; 0 means greedy (argmax).
        seed: of the sampling random generator.
        step_model: reuse a `generator_step_model(model)` across calls.

    Returns:
        (batch, primer_length + num_steps) int32 tokens, primer included.
    """
    vocab_size = model.output_shape[-1]
    primer = check_tokens(primer, "primer", vocab_size)
    num_steps = _positive_int("num_steps", num_steps)
    if temperature < 0:
        raise UsageError(f"`temperature` must be >= 0. Received: {temperature!r}")
    step_model = step_model or generator_step_model(model)
    rng = np.random.default_rng(seed)
    states = _zero_states(step_model, primer.shape[0], 1)

    tokens = [primer[:, index] for index in range(primer.shape[1])]
    for index in range(primer.shape[1] + num_steps - 1):
        logits, *states = run_step(step_model, [tokens[index][:, None], *states])
        if index + 1 < primer.shape[1]:
            continue  # still reading the primer: only the state matters
        tokens.append(_sample(logits, temperature, rng))
    return np.stack(tokens, axis=1).astype("int32")


def _sample(logits: np.ndarray, temperature: float, rng) -> np.ndarray:
    if temperature == 0:
        return logits.argmax(-1)
    scaled = logits / temperature
    scaled = scaled - scaled.max(-1, keepdims=True)
    probabilities = np.exp(scaled)
    probabilities /= probabilities.sum(-1, keepdims=True)
    return np.array([rng.choice(len(row), p=row) for row in probabilities])


def encoder_decoder(
    source_vocab_size: int,
    target_vocab_size: int,
    *,
    embed_dim: int = 32,
    cell: str = "lstm",
    units: int = 64,
    num_layers: int = 1,
    attention: str = "bahdanau",
    attention_units: int | None = None,
    dropout: float = 0.0,
    residual: bool = False,
    layer_norm: bool = False,
    activation: str = "tanh",
    recurrent_activation: str = "sigmoid",
    layer_kwargs: dict | None = None,
    learning_rate: float = 1e-3,
    name: str = "encoder_decoder",
) -> keras.Model:
    """Many-to-many with different lengths: an encoder-decoder with attention.

    The encoder's final states start the decoder; at every target step the
    decoder's output queries the encoder outputs through attention (Bahdanau
    additive or Luong multiplicative scores), and the context and the decoder
    output together predict the next token (Luong's attentional layer). The
    model trains with teacher forcing: inputs `[source, target_in]`, where
    `target_in` is the target shifted right behind a start token, and labels
    the unshifted target. Id 0 is padding on both sides.

    Returns:
        A compiled `keras.Model` mapping `[source (batch, S), target_in
        (batch, T)]` to (batch, T, target_vocab_size) logits. Use
        `inference_models` for step-wise decoding.
    """
    stack_args = _stack_kwargs(**locals())
    source = keras.Input(shape=(None,), dtype="int32", name="source")
    target_in = keras.Input(shape=(None,), dtype="int32", name="target_in")
    source_embedding = keras.layers.Embedding(
        _positive_int("source_vocab_size", source_vocab_size),
        _positive_int("embed_dim", embed_dim),
        mask_zero=True,
        name="source_embedding",
    )
    target_embedding = keras.layers.Embedding(
        _positive_int("target_vocab_size", target_vocab_size),
        embed_dim,
        mask_zero=True,
        name="target_embedding",
    )
    encoder = RecurrentStack(
        return_sequences=True, return_state=True, name="encoder", **stack_args
    )
    decoder = RecurrentStack(return_sequences=True, name="decoder", **stack_args)
    attention_layer = get_attention(
        attention, units=attention_units or units, name="attention"
    )
    projection = keras.layers.Dense(units, activation="tanh", name="attentional")
    head = keras.layers.Dense(target_vocab_size, name="logits")

    memory, *states = encoder(source_embedding(source))
    decoded = decoder(target_embedding(target_in), initial_state=states)
    context, _ = attention_layer([decoded, memory])
    combined = keras.layers.Concatenate(name="decoder_and_context")([decoded, context])
    logits = head(projection(combined))

    model = keras.Model([source, target_in], logits, name=name)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def inference_models(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """Splits a trained `encoder_decoder` into an encoder and a one-step decoder.

    Both share the trained weights. The encoder maps `source (batch, S)` to
    `[memory (batch, S, units), *states]`. The decoder maps `[token (batch, 1),
    memory, memory_mask (batch, S) float 0/1, *states]` to `[logits (batch,
    vocab), attention_weights (batch, S), *new_states]`; it calls the decoder
    cells directly (no loop), so it exports as a plain graph.

    Returns:
        `(encoder, decoder)` Keras models.
    """
    source_embedding = _get_layer(model, "source_embedding")
    target_embedding = _get_layer(model, "target_embedding")
    encoder_stack = _get_layer(model, "encoder")
    decoder_stack = _get_layer(model, "decoder")
    attention_layer = _get_layer(model, "attention")
    projection = _get_layer(model, "attentional")
    head = _get_layer(model, "logits")

    source = keras.Input(shape=(None,), dtype="int32", name="source")
    memory, *states = encoder_stack(source_embedding(source))
    encoder = keras.Model(source, [memory, *states], name="encoder")

    token = keras.Input(shape=(1,), dtype="int32", name="token")
    memory_in = keras.Input(shape=(None, encoder_stack.output_width), name="memory")
    memory_mask = keras.Input(shape=(None,), name="memory_mask")
    state_in = _state_inputs(decoder_stack, "state")
    outputs, new_states = decoder_stack.step(
        _embed_one_step(target_embedding, token), state_in
    )
    context, weights = attention_layer([outputs, memory_in], value_mask=memory_mask)
    combined = keras.layers.Concatenate(name="decoder_and_context")([outputs, context])
    logits = head(projection(combined))
    decoder = keras.Model(
        [token, memory_in, memory_mask, *state_in],
        [logits, weights, *new_states],
        name="decoder_step",
    )
    return encoder, decoder


def greedy_decode(
    encoder: keras.Model,
    decoder: keras.Model,
    source,
    *,
    start_id: int,
    end_id: int,
    max_length: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Decodes a batch step by step, always taking the most likely token.

    Args:
        encoder, decoder: from `inference_models`.
        source: (batch, S) source ids, 0-padded.
        start_id: the token that starts every target.
        end_id: the token that ends one; later steps of that row are 0.
        max_length: the most tokens to produce per row.

    Returns:
        `(tokens, attention)`: (batch, steps) int32 tokens without the start
        token, and (batch, steps, S) attention weights.
    """
    source = check_tokens(source, "source")
    max_length = _positive_int("max_length", max_length)
    memory, *states = run_step(encoder, [source])
    memory_mask = (source != 0).astype("float32")
    batch = source.shape[0]
    token = np.full((batch, 1), start_id, "int32")
    finished = np.zeros(batch, bool)
    tokens, attention = [], []
    for _ in range(max_length):
        logits, weights, *states = run_step(
            decoder, [token, memory, memory_mask, *states]
        )
        next_token = logits.argmax(-1).astype("int32")
        next_token[finished] = 0
        tokens.append(next_token)
        attention.append(weights)
        finished |= next_token == end_id
        if finished.all():
            break
        token = next_token[:, None]
    return np.stack(tokens, 1), np.stack(attention, 1)


def save_model(model: keras.Model, path: str | os.PathLike) -> Path:
    """Saves `model` to a `.keras` file atomically (temporary file, then rename)."""
    path = Path(path)
    if path.suffix != ".keras":
        raise UsageError(f"Model files end in '.keras'. Received: path={str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.stem + ".tmp.keras")
    model.save(temporary)
    os.replace(temporary, path)
    return path


def load_model(path: str | os.PathLike, compile: bool = True) -> keras.Model:
    """Loads a `.keras` model with `safe_mode=True`, so no file can run code.

    Raises:
        ModelFileError: the file is missing, is not a `.keras` archive, is
            truncated, or holds something that is not a Keras model.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"Model file not found. Expected a .keras file at {path}")
    if path.suffix != ".keras":
        raise ModelFileError(
            f"Expected a Keras 3 '.keras' model file. Received: {path.name}"
        )
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"{path} is not a .keras archive (a zip file): it is truncated, corrupt "
            "or of another kind."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            broken = archive.testzip()
    except (zipfile.BadZipFile, OSError) as error:
        raise ModelFileError(f"{path} is a damaged .keras archive: {error}") from error
    if broken is not None or "config.json" not in names:
        raise ModelFileError(
            f"{path} is not a complete Keras model: expected config.json and intact "
            f"weights. Received: members {sorted(names)}"
            + (f", damaged member {broken!r}" if broken else "")
        )
    # Importing the layer modules registers rnnkit's classes for deserialization.
    import rnnkit.attention  # noqa: F401
    import rnnkit.layers  # noqa: F401

    try:
        model = keras.saving.load_model(path, compile=compile, safe_mode=True)
    except Exception as error:  # Keras raises many types for bad archives.
        raise ModelFileError(
            f"{path} could not be loaded as a Keras model "
            f"({type(error).__name__}: {str(error).splitlines()[0][:300]})"
        ) from error
    if not isinstance(model, keras.Model):
        raise ModelFileError(
            f"{path} holds a {type(model).__name__}, not a keras.Model."
        )
    return model
