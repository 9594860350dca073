"""rnnkit.training.fit: clipping, the NaN/Inf guard, history, curves, strategies."""

import importlib.util
import json

import keras
import numpy as np
import pytest

from rnnkit.errors import UsageError
from rnnkit.training import fit, get_strategy, make_optimizer, read_history


def _data(n=64, steps=12, features=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, steps, features)).astype("float32")
    # A long-range target: the mean of the first feature over all steps.
    y = x[:, :, :1].mean(axis=1)
    return x, y


def _model(optimizer, cell=keras.layers.GRU, steps=12, features=3):
    model = keras.Sequential(
        [keras.Input((steps, features)), cell(8), keras.layers.Dense(1)],
        name="tiny",
    )
    model.compile(optimizer=optimizer, loss="mse")
    return model


class _WeightsAtEpochEnd(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = {}

    def on_epoch_end(self, epoch, logs=None):
        self.weights[epoch + 1] = [np.array(w) for w in self.model.get_weights()]


class _BlowUpAfter(keras.callbacks.Callback):
    """Raises the learning rate enormously once `epoch` epochs are done."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            self.model.optimizer.learning_rate.assign(1e12)


def test_fit_writes_run_folder_and_history(tmp_path):
    x, y = _data()
    model = _model(make_optimizer("adam", 1e-2))
    history = fit(
        model, x, (x[:16], y[:16]), y=y, epochs=3, run_dir=tmp_path, verbose=0
    )
    assert len(history["loss"]) == 3 and len(history["val_loss"]) == 3
    assert history["loss"][-1] < history["loss"][0]
    assert read_history(tmp_path / "history.json") == history
    csv_lines = (tmp_path / "history.csv").read_text().splitlines()
    assert csv_lines[0].split(",")[0] == "epoch" and len(csv_lines) == 4
    for name in ("best.keras", "training_curves.png", "last_good.weights.h5"):
        assert (tmp_path / name).stat().st_size > 0
    if importlib.util.find_spec("tensorboard") is not None:
        assert any((tmp_path / "logs").rglob("events.out.tfevents.*"))
    assert not (tmp_path / "backup").exists()  # removed after a finished run


def test_nan_guard_stops_and_keeps_last_good_epoch(tmp_path, caplog):
    # A real blow-up: after two good epochs plain SGD gets a learning rate of 1e12.
    x, y = _data()
    model = _model(keras.optimizers.SGD(0.05), cell=keras.layers.SimpleRNN)
    recorder = _WeightsAtEpochEnd()
    with caplog.at_level("WARNING", logger="rnnkit.training.callbacks"):
        history = fit(
            model,
            x,
            y=y,
            epochs=6,
            run_dir=tmp_path,
            batch_size=16,
            shuffle=False,
            verbose=0,
            callbacks=[recorder, _BlowUpAfter(2)],
        )

    assert "Non-finite loss" in caplog.text and "epoch 2 (last good)" in caplog.text
    assert len(history["loss"]) == 3  # two good epochs and the one that blew up
    assert all(np.isfinite(history["loss"][:2])) and history["loss"][2] is None

    saved = _model(keras.optimizers.SGD(0.05), cell=keras.layers.SimpleRNN)
    saved.load_weights(tmp_path / "last_good.weights.h5")
    for kept, good, current in zip(
        saved.get_weights(), recorder.weights[2], model.get_weights(), strict=True
    ):
        assert np.all(np.isfinite(kept))
        np.testing.assert_array_equal(kept, good)
        np.testing.assert_array_equal(current, good)


def _sgd_run(run_dir, lr, **clipping):
    x, y = _data(seed=1)
    keras.utils.set_random_seed(7)
    model = _model(make_optimizer("sgd", lr, **clipping), cell=keras.layers.SimpleRNN)
    history = fit(
        model,
        x,
        y=y,
        epochs=2,
        run_dir=run_dir,
        batch_size=16,
        verbose=0,
        tensorboard=False,
        nan_guard=False,
    )
    return [np.inf if v is None else v for v in history["loss"]]


@pytest.fixture(scope="module")
def plain_sgd_losses(tmp_path_factory):
    return _sgd_run(tmp_path_factory.mktemp("plain"), 2.0)


@pytest.mark.parametrize(
    "clipping",
    [{"global_clipnorm": 1.0}, {"clipnorm": 0.5}, {"clipvalue": 0.01}],
    ids=lambda c: next(iter(c)),
)
def test_clipping_tames_the_step_that_explodes_plain_sgd(
    tmp_path, clipping, plain_sgd_losses
):
    # The same learning rate, the same start: unclipped SGD on a SimpleRNN explodes
    # (the loss grows by orders of magnitude) while clipping bounds every step.
    clipped = _sgd_run(tmp_path, 2.0, **clipping)
    assert plain_sgd_losses[-1] > 1e4 * plain_sgd_losses[0] or not np.isfinite(
        plain_sgd_losses[-1]
    )
    assert all(np.isfinite(clipped))
    assert clipped[-1] < 1e-3 * plain_sgd_losses[-1]


@pytest.mark.parametrize(
    "options",
    [
        {"clipnorm": 1.0, "clipvalue": 1.0},
        {"global_clipnorm": -1.0},
        {"clipnorm": "big"},
    ],
)
def test_make_optimizer_rejects_bad_clipping(options):
    with pytest.raises(UsageError, match="Received"):
        make_optimizer("adam", 1e-3, **options)


def test_gradient_norms_over_steps_are_recorded(tmp_path):
    x, y = _data()
    model = _model(make_optimizer("adam", 1e-2, global_clipnorm=1.0))
    fit(
        model,
        x,
        y=y,
        epochs=2,
        run_dir=tmp_path,
        batch_size=16,
        verbose=0,
        tensorboard=False,
        gradient_norms=(x[:16], y[:16]),
    )
    record = json.loads((tmp_path / "gradient_norms.json").read_text())
    assert record["step"] == list(range(1, 9))
    assert all(n > 0 and np.isfinite(n) for n in record["grad_norm"])
    assert (tmp_path / "gradient_norms.png").stat().st_size > 0


@pytest.mark.parametrize("name", ["default", "mirrored"])
def test_fit_accepts_a_strategy_by_name(tmp_path, name):
    x, y = _data()
    model = _model(make_optimizer("adam", 1e-2))
    before = [np.array(w) for w in model.get_weights()]
    history = fit(
        model,
        x,
        y=y,
        epochs=2,
        run_dir=tmp_path,
        batch_size=16,
        verbose=0,
        strategy=name,
        tensorboard=False,
    )
    assert len(history["loss"]) == 2
    # The weights trained (in a rebuilt model, for mirrored) end up in `model`.
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(before, model.get_weights(), strict=True)
    )


@pytest.mark.parametrize("name", ["tpu", "", None])
def test_unknown_strategy_lists_valid_names(name):
    with pytest.raises(UsageError, match="default.*mirrored.*multi_worker"):
        get_strategy(name)


def test_multi_worker_without_tf_config_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UsageError, match="TF_CONFIG"):
        get_strategy("multi_worker")


@pytest.mark.parametrize(
    "tf_config, match",
    [
        ("not json", "malformed"),
        ('{"cluster": {}}', "malformed"),
        (
            '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", '
            '"index": 3}}',
            "not in its cluster",
        ),
    ],
    ids=["not_json", "no_workers", "index_out_of_range"],
)
def test_malformed_tf_config_is_a_clear_error(monkeypatch, tf_config, match):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(UsageError, match=match):
        get_strategy("multi_worker")


def test_distributed_trainer_refuses_keras_only_arguments(tmp_path, monkeypatch):
    # Checked before any worker is contacted: the one-worker default strategy
    # object stands in, wrapped so that fit takes the multi-worker path.
    from rnnkit.training import loop

    x, y = _data(n=8)
    monkeypatch.setattr(
        loop, "_resolve_strategy", lambda s: (get_strategy("default"), True)
    )
    with pytest.raises(UsageError, match="shuffle"):
        fit(
            _model("adam"),
            x,
            y=y,
            epochs=1,
            run_dir=tmp_path,
            batch_size=4,
            shuffle=True,
            strategy="multi_worker",
            tensorboard=False,
        )


@pytest.mark.parametrize("epochs", [0, -1, 1.5, True])
def test_fit_rejects_bad_epochs(tmp_path, epochs):
    x, y = _data(n=8)
    with pytest.raises(UsageError, match="epochs"):
        fit(_model("adam"), x, y=y, epochs=epochs, run_dir=tmp_path)


def test_fit_rejects_uncompiled_model(tmp_path):
    x, y = _data(n=8)
    model = keras.Sequential([keras.Input((12, 3)), keras.layers.GRU(4)])
    with pytest.raises(UsageError, match="compiled"):
        fit(model, x, y=y, epochs=1, run_dir=tmp_path)


def test_fit_rejects_an_array_as_validation_data(tmp_path):
    x, y = _data(n=8)
    with pytest.raises(UsageError, match="y=y"):
        fit(_model("adam"), x, y, epochs=1, run_dir=tmp_path)
