"""The encoder-decoder with attention, and its encoder / one-step decoder halves.

Architecture (Luong-style: attention reads the decoder's output, so training
runs the decoder GRU over the whole target sequence in one call):

    source ids -> Embedding(mask_zero) -> bidirectional GRU stack -> encoder outputs
    masked mean of encoder outputs -> Dense(tanh) -> decoder initial state
    previous target ids -> Embedding -> GRU (one `GRUCell`) -> decoder outputs h
    attention(h, encoder outputs, mask) -> context, weights
    Dense(tanh)([h; context]) -> Dense(vocab) -> logits

The same named layers build three models: the training model (teacher
forcing), the encoder (source ids -> outputs, mask, initial state) and the
one-step decoder (previous token, encoder outputs, mask, state -> logits, new
state, attention weights), the last calling `GRUCell` directly so that it is a
plain graph for TFLite. The attention layer is this app's own: the core's
`rnnkit.attention` changed its call signature while this app was being
written, and a shipped .keras file must not depend on a moving API. The
encoder-decoder is built here rather than with `rnnkit.models` so that the
export halves have exactly the inputs and outputs the edge decoder expects.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
from keras import ops
from rnnkit.apps.translation.runtime import Translator, read_metadata

from rnnkit.edge import translate as edge
from rnnkit.errors import UsageError
from rnnkit.layers import RecurrentStack
from rnnkit.models import load_model

ATTENTION_KINDS = ("additive", "multiplicative")


def check_attention(kind: str) -> str:
    if kind not in ATTENTION_KINDS:
        raise UsageError(
            f"Unknown attention kind. Expected one of {list(ATTENTION_KINDS)}. "
            f"Received: attention={kind!r}"
        )
    return kind


@keras.saving.register_keras_serializable(package="rnnkit.translation")
class SourceAttention(keras.layers.Layer):
    """Attention of decoder outputs over encoder outputs, with a source mask.

    Args:
        kind: "additive" (Bahdanau: v^T tanh(W_q q + W_k k)) or
            "multiplicative" (Luong "general": q^T W k).
        units: width of the additive scoring layer (ignored otherwise).

    Call arguments:
        query: (batch, target_len, query_dim) decoder outputs.
        values: (batch, source_len, value_dim) encoder outputs.
        source_mask: (batch, source_len) float, 1 for real source positions.

    Returns:
        (context (batch, target_len, value_dim), weights (batch, target_len,
        source_len)).
    """

    def __init__(self, kind: str = "additive", units: int = 128, **kwargs):
        super().__init__(**kwargs)
        self.kind = check_attention(kind)
        self.units = int(units)
        self.supports_masking = True
        if kind == "additive":
            self.query_dense = keras.layers.Dense(units, use_bias=False, name="query")
            self.key_dense = keras.layers.Dense(units, name="key")
            self.score_dense = keras.layers.Dense(1, use_bias=False, name="score")

    def compute_mask(self, inputs, mask=None):
        return None

    def build(self, query_shape, values_shape=None, source_mask_shape=None):
        query_dim, value_dim = query_shape[-1], values_shape[-1]
        if self.kind == "additive":
            self.query_dense.build((None, None, query_dim))
            self.key_dense.build((None, None, value_dim))
            self.score_dense.build((None, None, None, self.units))
        else:
            # Projects the keys to the query width: score = q . (W k).
            self.kernel = self.add_weight(
                shape=(value_dim, query_dim),
                initializer="glorot_uniform",
                name="kernel",
            )
        self.built = True

    def call(self, query, values, source_mask):
        if self.kind == "additive":
            q = ops.expand_dims(self.query_dense(query), 2)  # (B, T, 1, U)
            k = ops.expand_dims(self.key_dense(values), 1)  # (B, 1, S, U)
            scores = ops.squeeze(self.score_dense(ops.tanh(q + k)), -1)  # (B, T, S)
        else:
            keys = ops.matmul(values, self.kernel)  # (B, S, Q)
            scores = ops.matmul(query, ops.transpose(keys, (0, 2, 1)))  # (B, T, S)
        # Masked softmax as softmax, zeroing and renormalizing: the same weights as
        # adding a large negative score to padding, but every tensor keeps a small
        # range, which int8 quantization needs (a -1e4 penalty would leave the
        # real scores a few quantization steps).
        weights = ops.softmax(scores, axis=-1) * ops.expand_dims(source_mask, 1)
        weights = weights / (ops.sum(weights, axis=-1, keepdims=True) + 1e-9)
        context = ops.matmul(weights, values)  # (B, T, D)
        return context, weights

    def get_config(self):
        config = super().get_config()
        config.update(kind=self.kind, units=self.units)
        return config


class _Unmarked:
    """The `sites` of a plain Keras call: every intermediate passes unmarked."""

    @staticmethod
    def act(role, tensor):
        return tensor


_UNMARKED = _Unmarked()


@keras.saving.register_keras_serializable(package="rnnkit.translation")
class MaskedMean(keras.layers.Layer):
    """Mean over time of (batch, time, dim) values where the float mask is 1."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # The float mask is passed explicitly; the Keras mask of `values` is
        # consumed here rather than propagated.
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        return None

    def call(self, values, source_mask):
        return self.call_with_sites(_UNMARKED, values, source_mask)

    def call_with_sites(self, sites, values, source_mask):
        """The layer's math with its intermediates passed through `sites`, which
        the int8 exporter uses to mark them, so that the encoder keeps its
        recurrent loop in int8 (`rnnkit.exporters`); `call` marks nothing."""
        mask = ops.expand_dims(source_mask, -1)
        total = sites.act("total", ops.sum(sites.act("masked", values * mask), axis=1))
        count = sites.act("count", ops.maximum(ops.sum(mask, axis=1), 1.0))
        return total / count


@keras.saving.register_keras_serializable(package="rnnkit.translation")
class PaddingMask(keras.layers.Layer):
    """1.0 where the token id is not padding (0), else 0.0."""

    def call(self, ids):
        return ops.cast(ops.not_equal(ids, 0), "float32")

    def call_with_sites(self, sites, ids):
        # No float intermediate: the exporter marks the output.
        return self.call(ids)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    source_vocab_size: int
    target_vocab_size: int
    embedding_dim: int = 128
    units: int = 256
    encoder_layers: int = 1
    attention: str = "additive"
    dropout: float = 0.1
    max_source_len: int = 20
    max_target_len: int = 22


def build_training_model(config: ModelConfig) -> keras.Model:
    """The teacher-forcing model: (source ids, target input ids) -> logits."""
    # Lengths are left open: training batches are bucketed by length.
    source = keras.Input((None,), dtype="int32", name="source")
    target_in = keras.Input((None,), dtype="int32", name="target_in")

    embedded = keras.layers.Embedding(
        config.source_vocab_size,
        config.embedding_dim,
        mask_zero=True,
        name="source_embedding",
    )(source)
    encoder_outputs = RecurrentStack(
        "gru",
        units=config.units // 2,
        num_layers=config.encoder_layers,
        bidirectional=True,
        dropout=config.dropout,
        name="encoder_rnn",
    )(embedded)
    source_mask = PaddingMask(name="source_mask")(source)
    summary = MaskedMean(name="encoder_summary")(encoder_outputs, source_mask)
    initial_state = keras.layers.Dense(config.units, activation="tanh", name="bridge")(
        summary
    )

    target_embedded = keras.layers.Embedding(
        config.target_vocab_size, config.embedding_dim, name="target_embedding"
    )(target_in)
    cell = keras.layers.GRUCell(config.units, name="decoder_cell")
    decoder_outputs = keras.layers.RNN(cell, return_sequences=True, name="decoder_rnn")(
        target_embedded, initial_state=[initial_state]
    )
    logits = _output_head(config, decoder_outputs, encoder_outputs, source_mask)[0]
    return keras.Model([source, target_in], logits, name="translator")


def _output_head(config, decoder_outputs, encoder_outputs, source_mask, layers=None):
    if layers is None:
        layers = (
            SourceAttention(config.attention, config.units, name="attention"),
            keras.layers.Dropout(config.dropout, name="head_dropout"),
            keras.layers.Dense(config.units, activation="tanh", name="combine"),
            keras.layers.Dense(config.target_vocab_size, name="logits"),
        )
    attention, dropout, combine, project = layers
    context, weights = attention(decoder_outputs, encoder_outputs, source_mask)
    merged = keras.layers.Concatenate(name="merge")([decoder_outputs, context])
    logits = project(combine(dropout(merged)))
    return logits, weights


def build_inference_models(
    model: keras.Model, config: ModelConfig
) -> tuple[keras.Model, keras.Model]:
    """Builds (encoder, one-step decoder) sharing `model`'s trained layers."""
    # The encoder's length is open so the edge runtime can run each sentence at
    # its own length; the decoder takes encoder outputs padded to max_source_len.
    source = keras.Input((None,), dtype="int32", name="source")
    embedded = model.get_layer("source_embedding")(source)
    encoder_outputs = model.get_layer("encoder_rnn")(embedded)
    source_mask = model.get_layer("source_mask")(source)
    summary = model.get_layer("encoder_summary")(encoder_outputs, source_mask)
    initial_state = model.get_layer("bridge")(summary)
    encoder = keras.Model(
        source, [encoder_outputs, source_mask, initial_state], name="encoder"
    )

    width = encoder_outputs.shape[-1]
    token = keras.Input((1,), dtype="int32", name="token")
    memory = keras.Input((config.max_source_len, width), name="encoder_outputs")
    memory_mask = keras.Input((config.max_source_len,), name="encoder_mask")
    state = keras.Input((config.units,), name="state")
    token_embedded = model.get_layer("target_embedding")(token)  # (B, 1, E)
    step_input = keras.layers.Reshape((config.embedding_dim,), name="squeeze")(
        token_embedded
    )
    cell = model.get_layer("decoder_rnn").cell
    output, new_states = cell(step_input, [state])
    new_state = new_states[0] if isinstance(new_states, list | tuple) else new_states
    query = keras.layers.Reshape((1, config.units), name="as_sequence")(output)
    layers = tuple(
        model.get_layer(name) for name in ("attention", "head_dropout", "combine")
    ) + (model.get_layer("logits"),)
    logits, weights = _output_head(config, query, memory, memory_mask, layers)
    logits = keras.layers.Reshape((config.target_vocab_size,), name="step_logits")(
        logits
    )
    weights = keras.layers.Reshape((config.max_source_len,), name="step_attention")(
        weights
    )
    decoder = keras.Model(
        [token, memory, memory_mask, state],
        [logits, new_state, weights],
        name="decoder_step",
    )
    return encoder, decoder


def _numpy(outputs) -> list:
    return [np.asarray(o) for o in outputs]


class KerasTranslator(Translator):
    """Decodes with the Keras encoder and one-step decoder of a trained model."""

    backend = "keras"

    def __init__(self, model: keras.Model, metadata, source_vocab, target_vocab):
        super().__init__(metadata, source_vocab, target_vocab)
        self.model = model
        self.config = ModelConfig(**metadata["model_config"])
        self.encoder, self.decoder = build_inference_models(model, self.config)
        import tensorflow as tf

        # Compiled once per input shape: eager calls of a functional model run op
        # by op, which made beam search several times slower.
        self._encode_fn = tf.function(
            lambda ids: self.encoder(ids, training=False), reduce_retracing=True
        )
        self._step_fn = tf.function(
            lambda *inputs: self.decoder(list(inputs), training=False),
            reduce_retracing=True,
        )

    @classmethod
    def from_dir(cls, folder, keras_path=None) -> KerasTranslator:
        folder = Path(folder)
        metadata, source_vocab, target_vocab = read_metadata(folder)
        model = load_model(keras_path or folder / "model.keras", compile=False)
        return cls(model, metadata, source_vocab, target_vocab)

    def encode(self, source_ids):
        return tuple(_numpy(self._encode_fn(np.asarray(source_ids, np.int32))))

    def step(self, tokens, encoder_outputs, encoder_mask, state):
        inputs = [
            np.asarray(tokens, np.int32),
            np.asarray(encoder_outputs, np.float32),
            np.asarray(encoder_mask, np.float32),
            np.asarray(state, np.float32),
        ]
        return tuple(_numpy(self._step_fn(*inputs)))

    def greedy_batch(self, texts: list[str], batch_size: int = 256) -> list[str]:
        """Greedy translations of many sentences, decoded a batch at a time.

        Gives the same tokens as `translate(text)` (same argmax per row); only
        faster, since each decoder call serves the whole batch.
        """
        out = []
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            sources = []
            for text in chunk:
                try:
                    sources.append(
                        edge.encode_source(text, self.source_vocab, self.max_source_len)
                    )
                except edge.TranslationInputError as error:
                    raise UsageError(str(error)) from error
            ids = np.concatenate([s.ids for s in sources])
            memory, mask, state = self.encode(ids)
            token = np.full((len(chunk), 1), edge.BOS_ID, np.int32)
            produced = np.zeros((len(chunk), 0), np.int32)
            attention = []
            done = np.zeros(len(chunk), bool)
            for _ in range(self.max_target_len):
                logits, state, weights = self.step(token, memory, mask, state)
                best = logits.argmax(-1).astype(np.int32)
                best[done] = edge.PAD_ID
                produced = np.concatenate([produced, best[:, None]], 1)
                attention.append(weights)
                done |= best == edge.EOS_ID
                if done.all():
                    break
                token = best[:, None]
            attention = np.stack(attention, 1)  # (B, T, S)
            for row, source in enumerate(sources):
                ids_row = []
                for token_id in produced[row]:
                    if token_id in (edge.EOS_ID, edge.PAD_ID):
                        break
                    ids_row.append(int(token_id))
                tokens = edge.replace_unknown(
                    ids_row, attention[row], self.target_vocab, source.tokens
                )
                out.append(edge.detokenize(tokens))
        return out

    def translate_many(self, texts, beam_width=1, alpha=0.6):
        if beam_width == 1:
            return self.greedy_batch(texts)
        return super().translate_many(texts, beam_width, alpha)

    def record_step_inputs(self, source_ids: np.ndarray) -> list[np.ndarray]:
        """The decoder's real inputs over greedy decoding of `source_ids` (a batch).

        Used as representative data for int8 export: one row per (sentence, step).
        """
        memory, mask, state = self.encode(source_ids)
        token = np.full((len(source_ids), 1), edge.BOS_ID, np.int32)
        rows = [[], [], [], []]
        for _ in range(self.max_target_len):
            for store, value in zip(rows, (token, memory, mask, state), strict=True):
                store.append(value)
            logits, state, _ = self.step(token, memory, mask, state)
            token = logits.argmax(-1).astype(np.int32)[:, None]
        return [np.concatenate(store) for store in rows]
