"""RecurrentStack details and the attention layers."""

import keras
import numpy as np
import pytest

from rnnkit.attention import AdditiveAttention, MultiplicativeAttention, get_attention
from rnnkit.errors import UsageError
from rnnkit.layers import RecurrentStack

X = np.random.default_rng(0).normal(size=(3, 6, 4)).astype("float32")


@pytest.mark.parametrize(
    "cell, bidirectional", [("simple_rnn", True), ("lstm", False), ("gru", True)]
)
def test_return_state_feeds_initial_state(cell, bidirectional):
    encoder = RecurrentStack(
        cell, units=5, num_layers=2, bidirectional=bidirectional, return_state=True
    )
    outputs, *states = encoder(X)
    assert outputs.shape == (3, 6, encoder.output_width)
    assert [s.shape[-1] for s in states] == encoder.state_sizes
    decoder = RecurrentStack(cell, units=5, num_layers=2, bidirectional=bidirectional)
    started = np.asarray(decoder(X, initial_state=states))
    fresh = np.asarray(decoder(X))
    assert not np.allclose(started, fresh)  # the state was really used

    config = encoder.get_config()
    clone = RecurrentStack.from_config(config)
    assert clone.get_config() == config


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
def test_step_matches_the_sequence_call(cell):
    stack = RecurrentStack(cell, units=5, num_layers=2, residual=True, layer_norm=True)
    full = np.asarray(stack(X))
    states = [keras.ops.zeros((3, size)) for size in stack.state_sizes]
    steps = []
    for t in range(X.shape[1]):
        output, states = stack.step(keras.ops.convert_to_tensor(X[:, t]), states)
        steps.append(np.asarray(output))
    np.testing.assert_allclose(np.stack(steps, 1), full, atol=1e-5)


def test_go_backwards_stack_reads_backwards_and_keeps_time_order():
    forward = RecurrentStack("gru", units=4, num_layers=2)
    backward = RecurrentStack("gru", units=4, num_layers=2, go_backwards=True)
    forward(X)
    backward(X)
    backward.set_weights(forward.get_weights())
    reversed_input = np.ascontiguousarray(X[:, ::-1])
    np.testing.assert_allclose(
        np.asarray(backward(X)), np.asarray(forward(reversed_input))[:, ::-1], atol=1e-5
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(cell="transformer"), "Unknown recurrent cell"),
        (dict(cell=3), "must be a string"),
        (dict(units=0), "units"),
        (dict(num_layers=True), "num_layers"),
        (dict(dropout=1.5), "dropout"),
        (dict(activation="nope"), "activation"),
        (dict(bidirectional=True, go_backwards=True), "go_backwards"),
        (dict(layer_kwargs={"units": 3}), "layer_kwargs"),
    ],
)
def test_stack_rejects_bad_configuration(kwargs, message):
    with pytest.raises(UsageError, match=message):
        RecurrentStack(**kwargs)


@pytest.mark.parametrize(
    "inputs, message",
    [
        (np.zeros((3, 4), "float32"), "rank 3"),
        (np.zeros((3, 6, 4), "int32"), "float inputs"),
        (np.zeros((0, 6, 4), "float32"), "non-empty"),
        (np.zeros((3, 0, 4), "float32"), "at least one time step|non-empty"),
    ],
)
def test_stack_rejects_bad_inputs(inputs, message):
    with pytest.raises(UsageError, match=message):
        RecurrentStack("lstm", units=3)(inputs)


def test_stack_rejects_wrong_number_of_initial_states():
    stack = RecurrentStack("lstm", units=3, num_layers=2)
    with pytest.raises(UsageError, match="must hold 4 tensors"):
        stack(X, initial_state=[keras.ops.zeros((3, 3))])


ATTENTIONS = [
    AdditiveAttention(units=6, name="additive"),
    MultiplicativeAttention(name="general"),
    MultiplicativeAttention(score="dot", scale=True, name="dot"),
]


@pytest.mark.parametrize("attention", ATTENTIONS, ids=lambda a: a.name)
def test_attention_masks_padding_and_serializes(attention):
    query = np.random.default_rng(1).normal(size=(3, 2, 4)).astype("float32")
    values = np.random.default_rng(2).normal(size=(3, 5, 4)).astype("float32")
    value_mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], bool)
    context, weights = attention([query, values], value_mask=value_mask)
    weights = np.asarray(weights)
    assert context.shape == (3, 2, 4) and weights.shape == (3, 2, 5)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    assert (
        np.abs(weights[~np.broadcast_to(value_mask[:, None], weights.shape)]).max()
        < 1e-6
    )

    # Masked steps do not matter: changing them leaves the context as it was.
    changed = values.copy()
    changed[~value_mask] = 100.0
    context_changed, _ = attention([query, changed], value_mask=value_mask)
    np.testing.assert_allclose(
        np.asarray(context_changed), np.asarray(context), atol=1e-4
    )

    # One decoder step (rank-2 query) gives the same as that row of the sequence.
    one_context, one_weights = attention([query[:, 0], values], value_mask=value_mask)
    np.testing.assert_allclose(np.asarray(one_weights), weights[:, 0], atol=1e-6)

    clone = type(attention).from_config(attention.get_config())
    clone([query, values])
    clone.set_weights(attention.get_weights())
    np.testing.assert_allclose(
        np.asarray(clone([query, values], value_mask=value_mask)[0]),
        np.asarray(context),
        atol=1e-6,
    )


def test_attention_rejects_bad_inputs():
    with pytest.raises(UsageError, match="inputs=\\[query, values\\]"):
        AdditiveAttention(4)(np.zeros((2, 3, 4), "float32"))
    with pytest.raises(UsageError, match="rank"):
        AdditiveAttention(4)([np.zeros((2, 3, 4, 1), "float32"), np.zeros((2, 3, 4))])
    with pytest.raises(UsageError, match="same width"):
        MultiplicativeAttention(score="dot")(
            [np.zeros((2, 3, 4), "float32"), np.zeros((2, 3, 5), "float32")]
        )
    with pytest.raises(UsageError, match="Unknown attention"):
        get_attention("sparse")
