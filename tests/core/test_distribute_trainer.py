"""DistributedTrainer in one process: same updates as Keras fit, same resume."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from rnnkit.training import DistributedTrainer, fit


def _data():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(48, 6, 3)).astype("float32")
    return x, x[:, :, :1].mean(axis=1)


def _model(strategy, clipping=None):
    with strategy.scope():
        keras.utils.set_random_seed(9)
        model = keras.Sequential(
            [keras.Input((6, 3)), keras.layers.GRU(5), keras.layers.Dense(1)]
        )
        model.compile(
            optimizer=keras.optimizers.SGD(0.1, **(clipping or {})), loss="mse"
        )
    return model


@pytest.mark.parametrize(
    "clipping", [None, {"global_clipnorm": 0.05}], ids=["plain", "clipped"]
)
def test_custom_step_matches_keras_fit(tmp_path, clipping):
    x, y = _data()
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    ours, reference = _model(strategy, clipping), _model(strategy, clipping)
    history = DistributedTrainer(ours, strategy).fit(
        (x, y), (x[:16], y[:16]), epochs=2, batch_size=16, verbose=0
    )
    keras_history = reference.fit(
        x, y, batch_size=16, epochs=2, shuffle=False, verbose=0,
        validation_data=(x[:16], y[:16]),
    )  # fmt: skip
    for a, b in zip(ours.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        history.history["val_loss"], keras_history.history["val_loss"], rtol=1e-5
    )


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 2:
            raise KeyboardInterrupt


def test_trainer_resumes_from_backup_with_the_same_result(tmp_path):
    x, y = _data()
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")

    def run(run_dir, extra=()):
        model = _model(strategy)
        backup = keras.callbacks.BackupAndRestore(str(run_dir / "backup"))
        DistributedTrainer(model, strategy).fit(
            (x, y), epochs=4, batch_size=16, verbose=0, callbacks=[backup, *extra]
        )
        return model

    straight = run(tmp_path / "straight")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "resumed", extra=[_Interrupt()])
    resumed = run(tmp_path / "resumed")
    for a, b in zip(resumed.get_weights(), straight.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_fit_with_the_custom_trainer_records_real_gradient_norms(tmp_path):
    # fit's own callbacks (history, NaN guard checkpoint, gradient norms) run
    # under the custom trainer as under Keras fit, here on the default strategy.
    x, y = _data()
    model = _model(tf.distribute.get_strategy(), {"global_clipnorm": 1.0})
    history = fit(
        model, x, (x[:16], y[:16]), y=y, epochs=2, run_dir=tmp_path,
        batch_size=16, trainer="custom", gradient_norms=True, verbose=0,
        tensorboard=False,
    )  # fmt: skip
    assert len(history["loss"]) == 2 and len(history["val_loss"]) == 2
    assert (tmp_path / "last_good.weights.h5").exists()
    norms = json.loads((tmp_path / "gradient_norms.json").read_text())
    assert norms["step"] == list(range(1, 7)) and all(n > 0 for n in norms["grad_norm"])
    assert (tmp_path / "gradient_norms.png").stat().st_size > 0
