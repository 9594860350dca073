"""The cuDNN eligibility check (configuration logic; needs no GPU)."""

import warnings

import keras
import pytest

from rnnkit import models
from rnnkit.cudnn import CudnnFallbackWarning, check_cudnn, cudnn_report
from rnnkit.layers import RecurrentStack


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_defaults_are_eligible_and_silent(cell, bidirectional):
    stack = RecurrentStack(cell, units=4, num_layers=2, bidirectional=bidirectional)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CudnnFallbackWarning)
        report = check_cudnn(stack)
    assert report.eligible
    assert len(report.checked) == 2 * (2 if bidirectional else 1)


@pytest.mark.parametrize(
    "layer, reason",
    [
        (keras.layers.LSTM(4, activation="relu"), "activation='relu'"),
        (
            keras.layers.GRU(4, recurrent_activation="hard_sigmoid"),
            "recurrent_activation",
        ),
        (keras.layers.LSTM(4, recurrent_dropout=0.2), "recurrent_dropout=0.2"),
        (keras.layers.GRU(4, unroll=True), "unroll=True"),
        (keras.layers.LSTM(4, use_bias=False), "use_bias=False"),
        (keras.layers.GRU(4, reset_after=False), "reset_after=False"),
        (keras.layers.LSTM(4, use_cudnn=False), "use_cudnn=False"),
        (keras.layers.SimpleRNN(4), "SimpleRNN has no cuDNN kernel"),
    ],
)
def test_each_fallback_reason_is_named(layer, reason):
    report = cudnn_report(layer)
    assert not report.eligible
    assert reason in report.message()


def test_a_whole_model_gets_one_warning_naming_every_bad_layer():
    model = models.encoder_decoder(
        10,
        10,
        units=4,
        num_layers=2,
        cell="gru",
        activation="relu",
        layer_kwargs={"reset_after": False},
    )
    with pytest.warns(CudnnFallbackWarning) as record:
        report = check_cudnn(model)
    assert len(record) == 1
    message = str(record[0].message)
    assert "4 of 4" in message
    for path in report.checked:
        assert path in message
    assert "activation='relu'" in message and "reset_after=False" in message


def test_mixed_model_names_only_the_bad_layer():
    inputs = keras.Input((None, 3))
    hidden = keras.layers.LSTM(4, return_sequences=True, name="good")(inputs)
    outputs = keras.layers.Bidirectional(
        keras.layers.GRU(4, unroll=True, name="slow"), name="wrapper"
    )(hidden)
    report = cudnn_report(keras.Model(inputs, outputs))
    assert len(report.checked) == 3
    assert set(report.reasons) == {
        name
        for name in report.checked
        if name.startswith(report.checked[0].split("/")[0] + "/wrapper")
    }
    assert all("unroll=True" in why[0] for why in report.reasons.values())


def test_no_warning_when_asked_not_to_and_bad_argument():
    from rnnkit.errors import UsageError

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not check_cudnn(keras.layers.SimpleRNN(3), warn=False).eligible
    with pytest.raises(UsageError, match="Keras layer or model"):
        cudnn_report("lstm")
