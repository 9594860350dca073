"""Truncated BPTT checked against full BPTT on short sequences."""

import keras
import numpy as np
import pytest

from rnnkit.errors import UsageError
from rnnkit.training import ChunkedSequences, fit, predict_chunked

BATCH, STEPS, FEATURES = 2, 12, 3
CELLS = {
    "simple_rnn": keras.layers.SimpleRNN,
    "lstm": keras.layers.LSTM,
    "gru": keras.layers.GRU,
}


def _sequences(n=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, STEPS, FEATURES)).astype("float32")
    y = np.cumsum(x[:, :, :1], axis=1) / 4.0  # per-step target with memory
    return x, y


def _pair(cell):
    """A stateful model and a plain one with identical weights."""
    models = []
    for stateful in (True, False):
        keras.utils.set_random_seed(3)
        model = keras.Sequential(
            [
                keras.Input((None, FEATURES), batch_size=BATCH if stateful else None),
                CELLS[cell](5, return_sequences=True, stateful=stateful, name="rnn"),
                keras.layers.Dense(1, name="head"),
            ],
            name=f"{cell}_{'stateful' if stateful else 'plain'}",
        )
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        models.append(model)
    models[1].set_weights(models[0].get_weights())
    return models


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_whole_sequence_chunk_trains_exactly_like_full_bptt(tmp_path, cell):
    x, y = _sequences()
    stateful, plain = _pair(cell)
    plain.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    fit(
        stateful,
        ChunkedSequences(x, y, batch_size=BATCH, chunk_length=STEPS),
        epochs=2,
        run_dir=tmp_path,
        verbose=0,
        tensorboard=False,
    )
    for a, b in zip(stateful.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("chunk_length", [1, 5, 6])
def test_chunked_forward_pass_equals_the_full_sequence(cell, chunk_length):
    x, _ = _sequences(seed=1)
    stateful, plain = _pair(cell)
    expected = plain.predict(x, batch_size=BATCH, verbose=0)
    np.testing.assert_allclose(
        predict_chunked(stateful, x, chunk_length=chunk_length),
        expected,
        rtol=1e-5,
        atol=1e-6,
    )


def test_short_chunks_truncate_the_gradient(tmp_path):
    # With chunks shorter than the sequence the forward pass is the same but the
    # gradient stops at chunk boundaries, so the trained weights must differ.
    x, y = _sequences()
    results = []
    for chunk_length in (STEPS, 3):
        stateful, _ = _pair("gru")
        fit(
            stateful,
            ChunkedSequences(x, y, batch_size=BATCH, chunk_length=chunk_length),
            epochs=1,
            run_dir=tmp_path / str(chunk_length),
            verbose=0,
            tensorboard=False,
        )
        results.append(stateful.get_weights())
    assert any(not np.allclose(a, b, atol=1e-6) for a, b in zip(*results, strict=True))


def test_chunk_order_carries_each_sequence_batch_in_time():
    x, y = _sequences()
    chunks = ChunkedSequences(x, y, batch_size=BATCH, chunk_length=5)
    assert chunks.chunks_per_sequence == 3 and len(chunks) == 6
    np.testing.assert_array_equal(chunks[1][0], x[:2, 5:10])
    np.testing.assert_array_equal(chunks[2][1], y[:2, 10:])
    np.testing.assert_array_equal(chunks[3][0], x[2:4, :5])


@pytest.mark.parametrize(
    "make, match",
    [
        (
            lambda x, y: ChunkedSequences(x[:3], y[:3], batch_size=2, chunk_length=4),
            "multiple of the stateful batch size",
        ),
        (
            lambda x, y: ChunkedSequences(x, y[:, :5], batch_size=2, chunk_length=4),
            "aligned",
        ),
        (
            lambda x, y: ChunkedSequences(x[:, :0], None, batch_size=2, chunk_length=4),
            "at least one",
        ),
        (
            lambda x, y: ChunkedSequences(x[0, 0], None, batch_size=2, chunk_length=4),
            "shape",
        ),
        (
            lambda x, y: ChunkedSequences(x, y, batch_size=2, chunk_length=0),
            "chunk_length",
        ),
    ],
    ids=["ragged_batch", "misaligned_targets", "empty", "rank", "zero_chunk"],
)
def test_bad_tbptt_input_is_a_clear_error(make, match):
    x, y = _sequences()
    with pytest.raises(UsageError, match=match):
        make(x, y)


def test_batch_size_must_match_the_stateful_model(tmp_path):
    x, y = _sequences(n=6)
    stateful, plain = _pair("lstm")
    with pytest.raises(UsageError, match="fixed batch size"):
        fit(
            stateful,
            ChunkedSequences(x, y, batch_size=3, chunk_length=4),
            epochs=1,
            run_dir=tmp_path,
        )
    with pytest.raises(UsageError, match="stateful recurrent layers"):
        fit(
            plain,
            ChunkedSequences(x, y, batch_size=3, chunk_length=4),
            epochs=1,
            run_dir=tmp_path,
        )


def test_chunked_validation_loss_equals_the_full_sequence_loss(tmp_path):
    # Validation chunks shorter than the training chunks still see the whole
    # sequence through the carried state, so val_loss equals the plain model's
    # loss on full sequences with the same weights.
    x, y = _sequences()
    x_val, y_val = _sequences(seed=2)
    stateful, plain = _pair("lstm")
    history = fit(
        stateful,
        ChunkedSequences(x, y, batch_size=BATCH, chunk_length=6),
        ChunkedSequences(x_val, y_val, batch_size=BATCH, chunk_length=4),
        epochs=1,
        run_dir=tmp_path,
        verbose=0,
        tensorboard=False,
    )
    plain.set_weights(stateful.get_weights())
    expected = plain.evaluate(x_val, y_val, batch_size=BATCH, verbose=0)
    np.testing.assert_allclose(history["val_loss"][0], expected, rtol=1e-5)
