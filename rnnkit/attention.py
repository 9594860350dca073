"""Attention for encoder-decoders: additive (Bahdanau) and multiplicative (Luong).

Both layers score every encoder step (the "values", or memory) against a
decoder query, mask out padded encoder steps, and return the attention-weighted
sum of the values (the context) together with the weights themselves, so that a
user can plot what the decoder looked at.

A query may be one decoder step, shape (batch, query_dim), or a whole decoder
sequence, shape (batch, target_time, query_dim); the context has the matching
rank. The one-step form is what the step-wise decoders of `rnnkit.models` use.

Example:
    >>> import keras
    >>> from rnnkit.attention import AdditiveAttention
    >>> attention = AdditiveAttention(units=16)
    >>> query, values = keras.ops.ones((2, 5, 8)), keras.ops.ones((2, 7, 8))
    >>> context, weights = attention([query, values])
    >>> context.shape, weights.shape
    ((2, 5, 8), (2, 5, 7))
"""

from __future__ import annotations

import keras
from keras import ops

from rnnkit.errors import UsageError

# Added to the scores of padded steps. Large enough that softmax gives them zero
# weight, small enough to stay finite in float16.
_MASK_PENALTY = -1e4


class _Attention(keras.layers.Layer):
    """Shared call logic; subclasses implement `_scores(query, values)`."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def _split(self, inputs):
        if not isinstance(inputs, list | tuple) or len(inputs) != 2:
            raise UsageError(
                f"{type(self).__name__} expects `inputs=[query, values]`. "
                f"Received: {type(inputs).__name__} of length "
                f"{len(inputs) if isinstance(inputs, list | tuple) else 1}"
            )
        return inputs

    def _check_shapes(self, query_shape, values_shape):
        if len(query_shape) not in (2, 3) or len(values_shape) != 3:
            raise UsageError(
                f"{type(self).__name__} expects a query of rank 2 (batch, dim) or 3 "
                "(batch, time, dim) and values of rank 3 (batch, time, dim). "
                f"Received: query.shape={tuple(query_shape)}, "
                f"values.shape={tuple(values_shape)}"
            )

    def build(self, input_shape):
        query_shape, values_shape = self._split(input_shape)
        self._check_shapes(query_shape, values_shape)
        self._build(query_shape, values_shape)
        self.built = True

    def call(self, inputs, mask=None, value_mask=None):
        """Attends from the query over the values.

        Args:
            inputs: `[query, values]`: query (batch, query_dim) or (batch,
                target_time, query_dim); values (batch, source_time,
                value_dim), the encoder outputs.
            mask: `[query_mask, values_mask]`, which Keras fills in from
                upstream masking layers; only the values mask is used.
            value_mask: explicit (batch, source_time) mask, bool or 0/1 floats;
                True/1 marks real encoder steps. Overrides `mask`.

        Returns:
            `(context, weights)`: context (batch, [target_time,] value_dim) and
            weights (batch, [target_time,] source_time), which sum to 1 over
            the real encoder steps.
        """
        query, values = self._split(inputs)
        self._check_shapes(query.shape, values.shape)
        if value_mask is None and isinstance(mask, list | tuple):
            value_mask = mask[1]
        single_step = len(query.shape) == 2
        if single_step:
            query = ops.expand_dims(query, 1)

        scores = self._scores(query, values)  # (batch, target_time, source_time)
        if value_mask is not None:
            keep = ops.cast(value_mask, scores.dtype)[:, None, :]
            scores = scores + (1.0 - keep) * _MASK_PENALTY
        weights = ops.softmax(scores, axis=-1)
        context = ops.matmul(weights, values)  # (batch, target_time, value_dim)

        if single_step:
            return ops.squeeze(context, 1), ops.squeeze(weights, 1)
        return context, weights

    def compute_mask(self, inputs, mask=None):
        # The context is aligned with the query, so it inherits the query's mask.
        query_mask = mask[0] if isinstance(mask, list | tuple) else None
        return [query_mask, query_mask]

    def compute_output_shape(self, input_shape):
        query_shape, values_shape = self._split(input_shape)
        prefix = tuple(query_shape[:-1])
        return prefix + (values_shape[-1],), prefix + (values_shape[1],)


@keras.saving.register_keras_serializable(package="rnnkit")
class AdditiveAttention(_Attention):
    """Bahdanau (additive) attention: score = v . tanh(W_q q + W_k k).

    Args:
        units: width of the hidden scoring layer.
        **kwargs: base `Layer` arguments (name, dtype...).

    Call arguments: see `_Attention.call`: `inputs=[query, values]`, optional
    `value_mask`.

    Returns:
        `(context, weights)`.
    """

    def __init__(self, units: int = 64, **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise UsageError(f"`units` must be a positive integer. Received: {units!r}")
        self.units = units
        self.query_dense = keras.layers.Dense(units, use_bias=False, name="query")
        self.key_dense = keras.layers.Dense(units, use_bias=True, name="key")
        self.score_dense = keras.layers.Dense(1, use_bias=False, name="score")

    def _build(self, query_shape, values_shape):
        self.query_dense.build((None, query_shape[-1]))
        self.key_dense.build((None, values_shape[-1]))
        self.score_dense.build((None, self.units))

    def _scores(self, query, values):
        projected_query = self.query_dense(query)[:, :, None, :]  # (B, Tq, 1, U)
        projected_keys = self.key_dense(values)[:, None, :, :]  # (B, 1, Tv, U)
        hidden = ops.tanh(projected_query + projected_keys)  # (B, Tq, Tv, U)
        return ops.squeeze(self.score_dense(hidden), -1)

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units)
        return config


@keras.saving.register_keras_serializable(package="rnnkit")
class MultiplicativeAttention(_Attention):
    """Luong (multiplicative) attention: score = q . W k ("general") or q . k ("dot").

    Args:
        score: "general" (a learned matrix W; query and value widths may
            differ) or "dot" (no weights; widths must agree).
        scale: divide the scores by sqrt(value_dim), which keeps the softmax
            from saturating for wide states.
        **kwargs: base `Layer` arguments.

    Returns:
        `(context, weights)`.
    """

    def __init__(self, score: str = "general", scale: bool = False, **kwargs):
        super().__init__(**kwargs)
        if score not in ("general", "dot"):
            raise UsageError(
                f"`score` must be 'general' or 'dot'. Received: score={score!r}"
            )
        self.score = score
        self.scale = bool(scale)
        # Created in build(): its width is the query's, known only then.
        self.key_dense = None

    def _build(self, query_shape, values_shape):
        if self.score == "general":
            self.key_dense = keras.layers.Dense(
                query_shape[-1], use_bias=False, name="key"
            )
            self.key_dense.build((None, values_shape[-1]))
        elif query_shape[-1] != values_shape[-1]:
            raise UsageError(
                "Dot-product attention needs query and values of the same width; "
                "use score='general' otherwise. Received: "
                f"query width {query_shape[-1]}, values width {values_shape[-1]}"
            )

    def _scores(self, query, values):
        keys = self.key_dense(values) if self.key_dense is not None else values
        scores = ops.matmul(query, ops.transpose(keys, (0, 2, 1)))
        if self.scale:
            scores = scores / ops.sqrt(ops.cast(ops.shape(keys)[-1], scores.dtype))
        return scores

    def get_config(self):
        config = super().get_config()
        config.update(score=self.score, scale=self.scale)
        return config


ATTENTION_TYPES = {
    "bahdanau": AdditiveAttention,
    "additive": AdditiveAttention,
    "luong": MultiplicativeAttention,
    "multiplicative": MultiplicativeAttention,
}


def get_attention(kind: str, units: int = 64, **kwargs) -> keras.layers.Layer:
    """Makes an attention layer from its kind ('bahdanau' or 'luong')."""
    key = str(kind).strip().lower()
    if key not in ATTENTION_TYPES:
        raise UsageError(
            f"Unknown attention {kind!r}. Expected one of {sorted(ATTENTION_TYPES)}."
        )
    if ATTENTION_TYPES[key] is AdditiveAttention:
        return AdditiveAttention(units=units, **kwargs)
    return MultiplicativeAttention(**kwargs)
