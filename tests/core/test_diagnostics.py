"""The vanishing-gradient diagnostic: ||dL/dh_t|| over t."""

import json

import keras
import numpy as np
import pytest

from rnnkit import diagnostics, models, tasks
from rnnkit.errors import UsageError
from rnnkit.layers import memory_bias_kwargs

LENGTH = 100


def _norms(cell, layer_kwargs=None, length=LENGTH):
    keras.utils.set_random_seed(0)
    x, y = tasks.adding_problem(16, length, seed=0)
    model = models.sequence_classifier(
        1, input_dim=2, regression=True, cell=cell, units=16, layer_kwargs=layer_kwargs
    )
    return diagnostics.hidden_state_gradients(model, x, y)


@pytest.mark.slow
def test_simple_rnn_gradient_vanishes_where_lstm_and_gru_keep_it():
    simple = diagnostics.vanishing_ratio(_norms("simple_rnn"))
    lstm = diagnostics.vanishing_ratio(_norms("lstm", memory_bias_kwargs("lstm")))
    gru = diagnostics.vanishing_ratio(_norms("gru", memory_bias_kwargs("gru")))
    # At step 0 of 100, SimpleRNN keeps a tiny fraction of the last step's
    # gradient; the gated cells keep orders of magnitude more.
    assert lstm / simple > 100
    assert gru / simple > 100


def test_norms_match_a_keras_rnn_replay_and_are_positive():
    norms = _norms("gru", length=12)
    assert norms.shape == (12,)
    assert np.all(norms > 0)
    # The last step's gradient only flows through the head, so it equals the
    # gradient of the loss w.r.t. the model's final recurrent output.
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    x, y = tasks.adding_problem(16, 12, seed=0)
    model = models.sequence_classifier(
        1, input_dim=2, regression=True, cell="gru", units=16
    )
    stack_out = model.get_layer("recurrent_stack")(model.get_layer("masking")(x))
    with tf.GradientTape() as tape:
        tape.watch(stack_out)
        loss = keras.ops.mean(
            keras.losses.mean_squared_error(y, model.get_layer("head")(stack_out))
        )
    gradient = np.asarray(tape.gradient(loss, stack_out)) * 16
    np.testing.assert_allclose(
        norms[-1], np.linalg.norm(gradient, axis=-1).mean(), rtol=1e-4
    )


def test_callback_saves_data_and_png(tmp_path):
    x, y, weight = tasks.copy_task(16, 12, seed=0)
    model = models.sequence_tagger(6, input_dim=6, cell="lstm", units=8)
    callback = diagnostics.GradientDiagnostic(
        x[:8], y[:8], tmp_path, every_n_epochs=1, name="copy_lstm"
    )
    model.run_eagerly = True
    model.fit(x, y, sample_weight=weight, epochs=1, verbose=0, callbacks=[callback])
    assert callback.epochs == [0, 1]
    data = np.load(tmp_path / "copy_lstm.npz")
    assert data["norms"].shape == (2, 12)
    payload = json.loads((tmp_path / "copy_lstm.json").read_text())
    np.testing.assert_allclose(payload["norms"], data["norms"])
    assert (tmp_path / "copy_lstm.png").read_bytes()[:4] == b"\x89PNG"

    curves = diagnostics.plot_gradient_curves(
        {"epoch 0": data["norms"][0], "epoch 1": data["norms"][1]}, tmp_path / "c.png"
    )
    assert curves.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "build, message",
    [
        (
            lambda: models.sequence_classifier(
                2, input_dim=2, bidirectional=True, units=4
            ),
            "bidirectional",
        ),
        (
            lambda: keras.Sequential([keras.Input((5, 2)), keras.layers.Dense(1)]),
            "No recurrent layer",
        ),
    ],
)
def test_unsupported_models_get_a_clear_error(build, message):
    model = build()
    model.compile(loss="mse")
    x, y = tasks.adding_problem(4, 5, seed=0)
    with pytest.raises(UsageError, match=message):
        diagnostics.hidden_state_gradients(model, x, y)


def test_empty_probe_and_missing_loss_are_rejected():
    model = models.sequence_classifier(1, input_dim=2, regression=True, units=4)
    with pytest.raises(UsageError, match="non-empty batch"):
        diagnostics.hidden_state_gradients(model, np.zeros((0, 5, 2)), np.zeros((0, 1)))
    uncompiled = keras.Sequential([keras.Input((5, 2)), keras.layers.LSTM(3)])
    with pytest.raises(UsageError, match="needs a loss"):
        diagnostics.hidden_state_gradients(
            uncompiled, np.zeros((2, 5, 2)), np.zeros((2, 3))
        )
