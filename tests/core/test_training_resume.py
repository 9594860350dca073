"""A training run killed with SIGKILL resumes from its last epoch with nothing lost.

The test runs this file as a script in subprocesses: once straight through, once
killed in the middle of epoch 3 (after epoch 2 was backed up), then once more to
resume. The resumed run must start at epoch 3, and its final weights and full
history must equal the uninterrupted run's.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

EPOCHS = 5
STALL_EPOCH, STALL_BATCH = 2, 2  # 0-based: the third batch of the third epoch


def _train(run_dir: Path, stall: bool) -> None:
    import keras

    from rnnkit.training import fit, make_optimizer

    class EpochLog(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            with open(run_dir / "epochs_begun.txt", "a") as f:
                f.write(f"{epoch}\n")

    class StallMidEpoch(keras.callbacks.Callback):
        """Stops making progress mid-epoch and tells the test it may kill us."""

        def on_train_batch_begin(self, batch, logs=None):
            if self.params and (self._epoch, batch) == (STALL_EPOCH, STALL_BATCH):
                (run_dir / "ready_to_kill").write_text("1")
                time.sleep(600)

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch = epoch

    keras.utils.set_random_seed(11)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(64, 10, 3)).astype("float32")
    y = x[:, :, :1].mean(axis=1)
    model = keras.Sequential(
        [keras.Input((10, 3)), keras.layers.GRU(8), keras.layers.Dense(1)]
    )
    model.compile(
        optimizer=make_optimizer("adam", 1e-2, global_clipnorm=1.0), loss="mse"
    )
    callbacks = [EpochLog()] + ([StallMidEpoch()] if stall else [])
    fit(
        model,
        x,
        (x[:16], y[:16]),
        y=y,
        epochs=EPOCHS,
        run_dir=run_dir,
        batch_size=16,
        shuffle=False,
        verbose=0,
        callbacks=callbacks,
        tensorboard=False,
    )
    model.save_weights(run_dir / "final.weights.h5")


def _run(run_dir: Path, stall: bool = False) -> subprocess.Popen:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    return subprocess.Popen(
        [sys.executable, __file__, str(run_dir), "stall" if stall else "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _finish(process: subprocess.Popen) -> None:
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr.decode()[-3000:]


def _weights(path: Path) -> list:
    import h5py

    values = []
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, item: (
                values.append((name, np.array(item)))
                if isinstance(item, h5py.Dataset)
                else None
            )
        )
    return sorted(values, key=lambda pair: pair[0])


@pytest.mark.slow
def test_killed_run_resumes_from_last_epoch_with_nothing_lost(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    straight.mkdir()
    killed.mkdir()
    reference = _run(straight)  # runs beside the killed one to save wall time

    victim = _run(killed, stall=True)
    deadline = time.monotonic() + 300
    while not (killed / "ready_to_kill").exists():
        assert victim.poll() is None, victim.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the run never reached epoch 3"
        time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    assert (killed / "backup").is_dir()
    assert len(json.loads((killed / "history.json").read_text())["loss"]) == 2

    _finish(_run(killed))
    _finish(reference)

    begun = (killed / "epochs_begun.txt").read_text().split()
    assert begun == ["0", "1", "2", "2", "3", "4"]  # resumed at the killed epoch
    resumed_history = json.loads((killed / "history.json").read_text())
    straight_history = json.loads((straight / "history.json").read_text())
    assert sorted(resumed_history) == sorted(straight_history)
    for key, values in straight_history.items():
        assert len(resumed_history[key]) == EPOCHS
        np.testing.assert_allclose(resumed_history[key], values, rtol=1e-6)
    assert len((killed / "history.csv").read_text().splitlines()) == EPOCHS + 1

    for (name_a, a), (name_b, b) in zip(
        _weights(killed / "final.weights.h5"),
        _weights(straight / "final.weights.h5"),
        strict=True,
    ):
        assert name_a == name_b
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert not (killed / "backup").exists()


if __name__ == "__main__":
    _train(Path(sys.argv[1]), stall=sys.argv[2] == "stall")
